"""SARIF 2.1.0 for code scanning (GitHub's ``upload-sarif``, any SARIF viewer).

One *rule* per finding code and per verdict kind (``torch-unstable``: a library that imports
libtorch internals; ``abi3-violation``: an abi3-tagged extension module that imports CPython API
outside the stable ABI; ``not-audited``: a file that could not be read). One *result* per
finding, per unstable or abi3-violating library, per file not audited; the findings that
restate those verdicts (``torch-unstable``, and ``abi3-tagged-violations`` for a module with
violating imports) are the library results, not results of their own. A result's level is its
severity, raised to ``error`` when it failed a gate; violations a baseline allows or a
``--ignore`` ignores carry a SARIF *suppression* with the reason, so code scanning shows them
as dismissed, not as gone.

Locations point at the file: the library, or for a library inside a wheel the wheel (the member
is the result's logical location). Paths under the working directory are relative to
``%SRCROOT%`` (declared in ``originalUriBaseIds``), others absolute ``file:`` URIs. Binaries
have no lines; GitHub requires a region, so every location points at line 1. Each result has a
``partialFingerprints`` entry built from its rule, package, library and symbol set, so an alert
keeps its identity across runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, assert_never
from urllib.parse import quote

from torch_abi_audit._version import __version__
from torch_abi_audit.diff import PackageDiff
from torch_abi_audit.renderers.base import Document, RenderOptions
from torch_abi_audit.renderers.json_report import dumps
from torch_abi_audit.renderers.summary import nothing_found, relative_path
from torch_abi_audit.report import (
    AuditResult,
    CPythonLabel,
    ExtensionReport,
    GateResult,
    GateStatus,
    PackageReport,
    TorchLabel,
)
from torch_abi_audit.rules.findings import Finding, Severity, name_list
from torch_abi_audit.rules.registry import FINDING_CODES

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/torch-abi-audit/torch-abi-audit"
#: The documentation site: each rule's ``helpUri`` is the place there that explains it.
DOCUMENTATION_URI = "https://torch-abi-audit.github.io/torch-abi-audit/"
#: Where the site explains the rules that are not finding codes (a finding code's place is its
#: row of the findings table, ``verdicts/#finding-CODE``).
_HELP_PAGES = {
    "torch-unstable": "verdicts/#unstable",
    "abi3-violation": "verdicts/#cpython",
    "not-audited": "guarantees/#bad-input",
}
_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
_SRCROOT = "%SRCROOT%"
JSONObject = dict[str, Any]

#: Rules that are not finding codes: the verdict kinds. id -> (gate, text).
VERDICT_RULES = {
    "torch-unstable": (
        "torch",
        "A library imports libtorch internals outside the PyTorch Stable ABI: it is tied to the "
        "torch release it was built against and breaks on another.",
    ),
    "abi3-violation": (
        "abi3",
        "An extension module tagged abi3 imports CPython API outside the Stable ABI: the tag "
        "promises Python versions it does not load on.",
    ),
    "not-audited": (
        "",
        "A file or package could not be read or audited (corrupt, unreadable, or not found).",
    ),
}


@dataclass
class _Run:
    """The results of one SARIF run as they are collected, and the rules they use."""

    base: Path
    results: list[JSONObject] = field(default_factory=list)
    rules: dict[str, JSONObject] = field(default_factory=dict)

    def rule(
        self,
        rule_id: str,
        text: str,
        gates: str | tuple[str, ...],
        level: str,
        *,
        markdown: str = "",
        short: str = "",
    ) -> None:
        if rule_id in self.rules:
            return
        tags = ["torch-abi-audit", *((gates,) if isinstance(gates, str) else gates)]
        full: JSONObject = {"text": text, **({"markdown": markdown} if markdown else {})}
        help_text = f"{text} See {help_uri(rule_id)}"
        help_markdown = f"{markdown} See [the documentation]({help_uri(rule_id)})."
        self.rules[rule_id] = {
            "id": rule_id,
            "name": "".join(part.capitalize() for part in rule_id.split("-")),
            "shortDescription": {"text": short or text.split(". ", 1)[0].split(": ", 1)[0]},
            "fullDescription": full,
            "help": {"text": help_text, **({"markdown": help_markdown} if markdown else {})},
            "helpUri": help_uri(rule_id),
            "defaultConfiguration": {"level": level},
            "properties": {"tags": tags, "precision": "very-high"},
        }


def help_uri(rule_id: str) -> str:
    """The page of the documentation site that explains the rule ``rule_id``."""
    if rule_id in _HELP_PAGES:
        return DOCUMENTATION_URI + _HELP_PAGES[rule_id]
    if rule_id.endswith("-gate"):
        return DOCUMENTATION_URI + "verdicts/#gates"
    return f"{DOCUMENTATION_URI}verdicts/#finding-{rule_id}"


def _uri(path: Path, base: Path) -> JSONObject:
    shown = relative_path(path, base)
    if Path(shown).is_absolute():
        return {"uri": path.absolute().as_uri()}
    return {"uri": quote(shown), "uriBaseId": _SRCROOT}


def _location(package: PackageReport, library: str | None, base: Path) -> JSONObject:
    found = package.library_named(library) if library is not None else None
    if package.wheel is None and found is not None:
        return _artifact_location(package.root, False, library, base, found.path)
    return _artifact_location(package.root, package.wheel is not None, library, base)


def _artifact_location(
    root: Path, in_wheel: bool, library: str | None, base: Path, file: Path | None = None
) -> JSONObject:
    """Where a result points: the wheel at ``root`` (naming the member), or the library file
    (``file``, else ``library`` under the directory ``root``), or ``root`` itself for the
    package."""
    artifact = root
    if not in_wheel and library is not None:
        artifact = file if file is not None else root / library
    location: JSONObject = {
        "physicalLocation": {
            "artifactLocation": _uri(artifact, base),
            "region": {"startLine": 1, "startColumn": 1, "endLine": 1, "endColumn": 1},
        }
    }
    if library is not None:
        location["logicalLocations"] = [
            {"name": library.rsplit("/", 1)[-1], "fullyQualifiedName": library, "kind": "module"}
        ]
    return location


def _fingerprint(*parts: str) -> dict[str, str]:
    digest = hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return {"torchAbiAudit/v1": digest[:32], "primaryLocationLineHash": f"{digest[:16]}:1"}


def _suppressions(gates: list[GateResult]) -> list[JSONObject]:
    return [
        {
            "kind": "external",
            "status": "accepted",
            "justification": gate.justification or f"{gate.status} ({gate.gate} gate)",
        }
        for gate in gates
        if gate.status is not GateStatus.FAILED
    ]


@dataclass(frozen=True)
class _Subject:
    """What a result is about: a package, and one of its libraries (``None``: the package)."""

    package: PackageReport
    library: str | None = None


def _result(
    run: _Run,
    subject: _Subject,
    rule_id: str,
    *,
    level: str,
    message: str,
    gates: list[GateResult],
    identity: str = "",
) -> None:
    package, library = subject.package, subject.library
    # A target that names nothing (an unknown import name) has no file to point at.
    locations = [] if nothing_found(package) else [_location(package, library, run.base)]
    result: JSONObject = {
        "ruleId": rule_id,
        "level": "error" if any(g.status is GateStatus.FAILED for g in gates) else level,
        "message": {"text": message},
        "locations": locations,
        "partialFingerprints": _fingerprint(rule_id, package.name, library or "", identity),
        "properties": {
            "package": package.name,
            "gates": sorted({g.gate for g in gates if g.status is GateStatus.FAILED}),
        },
    }
    suppressions = _suppressions(gates)
    if suppressions:
        result["suppressions"] = suppressions
    run.results.append(result)


def _matching(gates: list[GateResult], code: str, library: str | None) -> list[GateResult]:
    return [g for g in gates if g.code == code and g.library == library]


def _represented(package: PackageReport, finding: Finding) -> bool:
    """True for a finding a library's verdict result stands for (see the module docstring)."""
    if finding.code == "torch-unstable":
        return True
    if finding.code != "abi3-tagged-violations":
        return False
    return all(lib.cpython.violations for lib in package.finding_libraries(finding))


def _finding_results(run: _Run, package: PackageReport, gates: list[GateResult]) -> None:
    for finding in package.findings:
        if _represented(package, finding):
            continue
        named = [package.library_name(lib.path) for lib in package.finding_libraries(finding)]
        level = _LEVELS[finding.severity]
        declared = FINDING_CODES[finding.code]
        run.rule(
            finding.code,
            _sentence(declared.description.replace("`", "")),
            tuple(str(gate) for gate in declared.gates),
            _LEVELS[declared.severity],
            markdown=_sentence(declared.description),
            short=_short(declared.description.replace("`", "")),
        )
        related = [
            g
            for g in gates
            if g.code == finding.code and (g.library is None or g.library in finding.libraries)
        ]
        subject = _Subject(package, named[0] if named else None)
        message = f"{package.name}: {finding.message}"
        _result(
            run,
            subject,
            finding.code,
            level=level,
            message=message,
            gates=related,
            identity=",".join(named),
        )


def _sentence(description: str) -> str:
    """A registry description (one lower-case clause) as a sentence."""
    return description[:1].upper() + description[1:].rstrip(".") + "."


def _short(description: str) -> str:
    """A finding code's short description: its description up to the first clause break (not
    a colon: ``Requires-Dist: torch`` is one)."""
    cut = min(
        (i for i in (description.find(mark) for mark in (". ", "; ", " (")) if i > 0),
        default=len(description),
    )
    return _sentence(description[:cut]).rstrip(".")


def _library_results(run: _Run, package: PackageReport, gates: list[GateResult]) -> None:
    for lib in package.libraries:
        name = package.library_name(lib.path)
        if lib.torch_label is TorchLabel.ERROR:
            _rule(run, "not-audited", "error")
            message = f"{package.name} ({name}) could not be audited: {lib.error}"
            subject = _Subject(package, name)
            _result(run, subject, "not-audited", level="error", message=message, gates=[])
        elif lib.torch_label is TorchLabel.UNSTABLE:
            related = _matching(gates, "torch-unstable", name)
            _unstable_result(run, _Subject(package, name), lib, related)
        if lib.cpython_label is CPythonLabel.ABI3_TAGGED_VIOLATIONS and lib.cpython.violations:
            _rule(run, "abi3-violation", "warning")
            symbols = name_list(lib.cpython.violations, 5)
            message = (
                f"{package.name} ({name}) is tagged abi3 but imports {symbols}"
                " from outside the Stable ABI"
            )
            related = _matching(gates, "abi3-tagged-violations", name)
            identity = ",".join(lib.cpython.violations)
            subject = _Subject(package, name)
            _result(
                run,
                subject,
                "abi3-violation",
                level="warning",
                message=message,
                gates=related,
                identity=identity,
            )


def _unstable_result(
    run: _Run, subject: _Subject, lib: ExtensionReport, gates: list[GateResult]
) -> None:
    package, name = subject.package, subject.library
    level = "note" if package.is_torch else "warning"
    _rule(run, "torch-unstable", "warning")
    details = lib.torch.unstable_details
    shown = name_list([u.demangled for u in details])
    message = f"{package.name} ({name}) imports {len(details)} libtorch-internal symbols: {shown}"
    identity = ",".join(sorted(u.symbol for u in details))
    _result(
        run, subject, "torch-unstable", level=level, message=message, gates=gates, identity=identity
    )


def _rule(run: _Run, rule_id: str, level: str) -> None:
    gate, text = VERDICT_RULES[rule_id]
    run.rule(rule_id, text, gate, level)


def _package_results(run: _Run, package: PackageReport, gates: list[GateResult]) -> None:
    if package.error or package.problems:
        _rule(run, "not-audited", "error")
        reasons = [package.error] if package.error else []
        reasons += [f"{package.library_name(p.path)}: {p.reason}" for p in package.problems]
        message = f"{package.name} could not be audited: {'; '.join(reasons)}"
        _result(run, _Subject(package), "not-audited", level="error", message=message, gates=[])
    _finding_results(run, package, gates)
    _library_results(run, package, gates)


def sarif_log(result: AuditResult, base: Path) -> JSONObject:
    """The SARIF log of a result: one run, its rules and results."""
    run = _Run(base)
    for package in result.packages:
        _package_results(run, package, [g for g in result.gate_results if g.concerns(package)])
    return _log(run, base, successful=not result.has_error)


def _log(run: _Run, base: Path, *, successful: bool) -> JSONObject:
    base_uri = base.absolute().as_uri().rstrip("/") + "/"
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "torch-abi-audit",
                        "version": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": list(run.rules.values()),
                    }
                },
                "originalUriBaseIds": {_SRCROOT: {"uri": base_uri}},
                "invocations": [
                    {
                        "executionSuccessful": successful,
                        "workingDirectory": {"uri": base_uri},
                    }
                ],
                "results": run.results,
            }
        ],
    }


#: Rules of a diff's regressions, by gate.
REGRESSION_RULES = {
    "torch": "The new build regresses on the torch gate: a library became unstable or gained "
    "unstable imports, or the torch it needs rose.",
    "abi3": "The new build regresses on the abi3 gate: an abi3 promise it kept before is broken.",
    "metadata": "The new build has a packaging finding of severity error or warning the old "
    "one did not have.",
    "load": "The new build is predicted not to load where the old one did.",
}


def diff_sarif_log(diff: PackageDiff, base: Path) -> JSONObject:
    """The SARIF log of a diff: one result per regression (an error when it fails a gate
    ``--check`` asked for, else a warning), located at the new build (its wheel, or the
    library)."""
    run = _Run(base)
    failed = set(diff.failed)
    new = diff.new
    for regression in diff.regressions:
        rule_id = f"{regression.gate}-regression"
        run.rule(rule_id, REGRESSION_RULES[str(regression.gate)], str(regression.gate), "warning")
        library = regression.library
        location = _artifact_location(new.root, new.in_wheel, library, base)
        run.results.append(
            {
                "ruleId": rule_id,
                "level": "error" if regression in failed else "warning",
                "message": {"text": f"{diff.old.label} -> {new.label}: {regression.reason}"},
                "locations": [location],
                "partialFingerprints": _fingerprint(
                    rule_id, new.name, library or "", regression.reason
                ),
                "properties": {"package": new.name, "gates": [str(regression.gate)]},
            }
        )
    return _log(run, base, successful=not diff.errors)


def render(document: Document, options: RenderOptions) -> str:
    """``--format sarif``: the SARIF 2.1.0 log, indented when ``options.pretty`` (written as
    the JSON report is: valid UTF-8 whatever the names hold)."""
    match document:
        case PackageDiff():
            log = diff_sarif_log(document, options.working_directory)
        case AuditResult():
            log = sarif_log(document, options.working_directory)
        case _:
            assert_never(document)
    return dumps(log, pretty=options.pretty)
