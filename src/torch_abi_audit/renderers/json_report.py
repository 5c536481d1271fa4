"""JSON output: the documented shape plus roll-ups, with a ``schema_version``.

The shape is described by ``schema/report.schema.json`` (shipped in the package, see
:func:`load_schema`). Field names of the predecessor's output are kept; new fields are only
ever added. Bump :data:`SCHEMA_VERSION`'s minor number for additions, its major number for
anything that could break a consumer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from torch_abi_audit import package_data
from torch_abi_audit._version import __version__
from torch_abi_audit.renderers.base import Document, RenderOptions
from torch_abi_audit.renderers.gates import gate_object
from torch_abi_audit.report import (
    AuditResult,
    EnvironmentReport,
    ExtensionReport,
    PackageReport,
    TorchReference,
)
from torch_abi_audit.rules.cpython_abi import CPythonAnalysis
from torch_abi_audit.rules.findings import Finding
from torch_abi_audit.rules.registry import finding_gates
from torch_abi_audit.rules.torch_abi import TorchAnalysis

if TYPE_CHECKING:  # diffs, explanations and load predictions: their modules load when used
    from torch_abi_audit.diff import PackageDiff
    from torch_abi_audit.rules.explain import Explanation
    from torch_abi_audit.rules.load_prediction import LoadPrediction

SCHEMA_VERSION = "1.13"
SCHEMA_FILE = "report.schema.json"

JSONObject = dict[str, Any]


def _torch_object(torch: TorchAnalysis) -> JSONObject:
    return {
        "uses_torch": torch.uses_torch,
        "stable": torch.stable,
        "unstable_symbols": list(torch.unstable_symbols),
        "stable_shim_count": torch.stable_shim_count,
        "unstable_details": [
            {
                "symbol": u.symbol,
                "demangled": u.demangled,
                "reason": str(u.reason),
                "detail": u.detail,
                "library": u.library,
            }
            for u in torch.unstable_details
        ],
        "stable_shims": list(torch.stable_shims),
        "unknown_shims": list(torch.unknown_shims),
        "min_torch_version": torch.min_torch_version,
        "min_torch_symbols": list(torch.min_torch_symbols),
        "torch_libraries": list(torch.torch_libraries),
        "optional_shims": list(torch.optional_shims),
        "weak_imports": list(torch.weak_imports),
    }


def _cpython_object(cpython: CPythonAnalysis) -> JSONObject:
    return {
        "intent": cpython.intent,
        "compliant": cpython.compliant,
        "violations": list(cpython.violations),
        "capi_symbol_count": cpython.capi_symbol_count,
        "python_library": cpython.python_library,
        "python_version": cpython.python_version,
        "baseline": cpython.baseline,
        "baseline_source": cpython.baseline_source,
        "computed": cpython.computed,
        "needs_python": cpython.needs_python,
        "non_abi3_symbols": list(cpython.violations),
        "future_symbols": dict(cpython.future_symbols),
        "abi3t": cpython.abi3t,
        "free_threaded": cpython.free_threaded,
    }


def library_object(lib: ExtensionReport) -> JSONObject:
    """One library (extension module or bundled library)."""
    audited = lib.error is None and lib.skipped is None
    return {
        "path": str(lib.path),
        "distribution_path": lib.distribution_path,
        "kind": str(lib.kind),
        "format": lib.format,
        "machine": lib.machine,
        "min_os": lib.min_os,
        "soname": lib.soname,
        "needed": list(lib.needed),
        "optional_needed": list(lib.optional_needed),
        "version_needs": [
            {"library": n.library, "version": n.version, "weak": n.weak, "symbol": n.symbol}
            for n in lib.version_needs
        ],
        "runtime": (
            {
                "kind": str(lib.runtime.kind),
                "name": lib.runtime.name,
                "evidence": lib.runtime.evidence,
            }
            if lib.runtime
            else None
        ),
        "runpath": list(lib.runpath),
        "rpath": list(lib.rpath),
        "entry_points": list(lib.entry_points),
        "torch_label": str(lib.torch_label),
        "cpython_label": str(lib.cpython_label) if audited else None,
        "cpython": _cpython_object(lib.cpython),
        "torch": _torch_object(lib.torch),
        "slices": [
            {
                "machine": part.machine,
                "min_os": part.min_os,
                "torch_label": str(part.torch_label),
                "cpython_label": str(part.cpython_label),
                "cpython": _cpython_object(part.cpython),
                "torch": _torch_object(part.torch),
            }
            for part in lib.slices
        ],
        "load": _load_object(lib.load),
        "error": lib.error,
        "skipped": lib.skipped,
        "verified": lib.verified,
    }


def _load_object(load: LoadPrediction | None) -> JSONObject | None:
    if load is None:
        return None
    return {
        "against": load.against,
        "status": str(load.status),
        "message": load.message,
        "missing_libraries": list(load.missing_libraries),
        "undefined_symbols": list(load.undefined_symbols),
        "newer_shims": list(load.newer_shims),
        "removed_shims": list(load.removed_shims),
        "weak_undefined_symbols": list(load.weak_undefined_symbols),
        "missing_optional_libraries": list(load.missing_optional_libraries),
        "failed_dependencies": list(load.failed_dependencies),
        "cxx11_abi_mismatch": list(load.cxx11_abi_mismatch),
        "build": load.build,
        "undecided_symbols": list(load.undecided_symbols),
        "undecided_libraries": list(load.undecided_libraries),
    }


def finding_object(finding: Finding) -> JSONObject:
    """A finding as JSON: code, severity, message, evidence, libraries and the gates its code
    fails."""
    return {
        "code": finding.code,
        "severity": str(finding.severity),
        "message": finding.message,
        "evidence": finding.evidence,
        "libraries": list(finding.libraries),
        "gates": [str(gate) for gate in finding_gates(finding.code)],
    }


def _reference_object(reference: TorchReference | None) -> JSONObject | None:
    if reference is None:
        return None
    return {
        "label": reference.label,
        "version": reference.version,
        "root": str(reference.root) if reference.root else None,
        "origin": reference.origin,
        "variant": reference.variant,
        "cuda_major": reference.cuda_major,
    }


def package_object(report: PackageReport) -> JSONObject:
    """One package, with its roll-ups (``torch_verdict``, ``cpython_verdict``)."""
    dist = report.distribution
    return {
        "name": report.name,
        "root": str(report.root),
        "distribution": (
            {
                "name": dist.name,
                "version": dist.version,
                "requires_torch": list(dist.requires_torch),
                "tags": list(dist.tags),
            }
            if dist
            else None
        ),
        "wheel": (
            {
                "path": str(report.wheel.path),
                "filename": report.wheel.filename,
                "tags": list(report.wheel.tags),
                "verified": report.wheel.verified,
                "unverified_members": list(report.wheel.unverified_members),
            }
            if report.wheel
            else None
        ),
        "torch_verdict": str(report.torch_verdict),
        "cpython_verdict": str(report.cpython_verdict),
        "min_torch_version": report.min_torch_version,
        "extensions": [library_object(lib) for lib in report.extensions],
        "bundled_libs": [library_object(lib) for lib in report.bundled_libs],
        "executables": [library_object(lib) for lib in report.executables],
        "error": report.error,
        "problems": [{"path": str(p.path), "reason": p.reason} for p in report.problems],
        "findings": [finding_object(f) for f in report.findings],
        "unavailable": report.unavailable,
        "torch_reference": _reference_object(report.torch_reference),
        "load_status": str(report.load_status) if report.load_status else None,
        "migration": _plan_object(report),
    }


def _envelope(document: str) -> JSONObject:
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "torch-abi-audit", "version": __version__},
        "document": document,
    }


def environment_object(report: EnvironmentReport) -> JSONObject:
    """A whole environment (``--env``, ``--site-packages``, ``--python``)."""
    return {
        **_envelope("environment"),
        "site_packages": str(report.site_packages),
        "search_paths": [str(p) for p in report.search_paths],
        "packages": [package_object(p) for p in report.packages],
        "problems": [{"path": str(p.path), "reason": p.reason} for p in report.problems],
        "torch_reference": _reference_object(report.torch_reference),
    }


def single_package_object(report: PackageReport) -> JSONObject:
    """One target: the package object itself, with the envelope fields added at the top."""
    return {**_envelope("package"), **package_object(report)}


def targets_object(packages: tuple[PackageReport, ...]) -> JSONObject:
    """Several targets (or a target that holds several packages): their package objects, and
    the torch loading was predicted against. No site-packages: none was scanned."""
    reference = next((p.torch_reference for p in packages if p.torch_reference), None)
    return {
        **_envelope("targets"),
        "packages": [package_object(p) for p in packages],
        "torch_reference": _reference_object(reference),
    }


def document_object(result: AuditResult) -> JSONObject:
    """The JSON document for a result: an environment, one package, or several targets, with
    the gate results (``gates``: ``null`` without ``--check``)."""
    if result.environment is not None:
        document = environment_object(result.environment)
    elif len(result.packages) == 1:
        document = single_package_object(result.packages[0])
    else:
        document = targets_object(result.packages)
    document["gates"] = gate_object(result)
    return document


# Characters the json module leaves raw with ensure_ascii=False that must not reach a stream as
# they are: lone surrogates (file-name bytes that are not UTF-8, PEP 383: a UTF-8 stream refuses
# them), DEL and the C1 controls (a terminal acts on U+009B), U+2028/U+2029 (line breaks to
# JavaScript). They only ever occur inside strings, where \uXXXX stands for them exactly.
_RAW_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def dumps(document: JSONObject, *, pretty: bool = True) -> str:
    """Serialise a document: indented for people, or compact on one line.

    Compact output goes through the json module's C encoder (indentation forces the pure-Python
    one), which matters for an environment report of several megabytes. Lone surrogates, DEL,
    the C1 controls and U+2028/U+2029 are written as ``\\uXXXX`` escapes (the json module
    already escapes the C0 controls), so that the output is valid UTF-8 and safe on a terminal,
    and reads back to the same strings.
    """
    # A document is a tree built for this call: no cycle to look for in it.
    if pretty:
        text = json.dumps(document, indent=2, ensure_ascii=False, check_circular=False)
    else:
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), check_circular=False)
    if text.isascii() and "\x7f" not in text:
        return text  # the usual document: nothing to escape (two C scans, not a regex pass)
    return _RAW_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def _plan_object(report: PackageReport) -> JSONObject | None:
    """The package's migration plan (``--explain``), if it has one."""
    if not report.migration:
        return None
    from torch_abi_audit.renderers.migration import plan_object

    return plan_object(report.migration)


def load_schema() -> JSONObject:
    """The JSON Schema (draft 2020-12) that every document above satisfies."""

    text = package_data.read_text("schema", SCHEMA_FILE)
    schema: JSONObject = json.loads(text)
    return schema


def diff_document(diff: PackageDiff) -> JSONObject:
    """The JSON document of ``diff`` (``document: diff``)."""
    from torch_abi_audit.renderers.diff import diff_object

    return {**_envelope("diff"), "diff": diff_object(diff)}


def explain_document(explanations: Sequence[Explanation]) -> JSONObject:
    """The JSON document of the ``explain`` subcommand (``document: explain``)."""
    from torch_abi_audit.renderers.migration import explanation_object

    return {**_envelope("explain"), "symbols": [explanation_object(e) for e in explanations]}


def render(document: Document, options: RenderOptions) -> str:
    """``--format json``: the documented JSON document, indented when ``options.pretty``."""
    match document:
        case AuditResult():
            return dumps(document_object(document), pretty=options.pretty)
        case _:  # a diff (mypy checks that nothing else is left)
            return dumps(diff_document(document), pretty=options.pretty)
