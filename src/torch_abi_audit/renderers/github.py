"""GitHub Actions workflow commands: one annotation per gate violation, finding and file that
could not be audited, then the table in a folded log group.

The runner turns ``::error file=F,title=T::MESSAGE`` lines on standard output into
annotations on the run and, when ``F`` is a file of the repository, on that file in the pull
request. Severities map as ``error`` -> ``::error``, ``warning`` -> ``::warning``, ``info``
-> ``::notice``; a failed gate is an error, an allowed or ignored violation a notice. A finding
that failed a gate is annotated once, as the violation. Paths are relative to the working
directory (the checkout, in a workflow) where they lie under it; a library inside a wheel points
at the wheel and names the member in the message.

Every value is escaped by GitHub's rules (:func:`~torch_abi_audit.renderers.escaping.
workflow_property`, :func:`~torch_abi_audit.renderers.escaping.workflow_data`), and the table
is wrapped in ``::stop-commands::`` with a token derived from its own text, so a name in the
audited input can neither end a command early nor start one of its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import assert_never

from torch_abi_audit.diff import PackageDiff
from torch_abi_audit.gate_report import expired_message, stale_message
from torch_abi_audit.renderers import table
from torch_abi_audit.renderers.base import Document, RenderOptions
from torch_abi_audit.renderers.escaping import workflow_data, workflow_property
from torch_abi_audit.renderers.summary import listed_findings, nothing_found, relative_path
from torch_abi_audit.report import (
    AuditResult,
    GateResult,
    GateStatus,
    PackageReport,
    TorchLabel,
)
from torch_abi_audit.rules.findings import Finding, Severity

_COMMANDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


@dataclass(frozen=True)
class Annotation:
    """One workflow command: ``error``, ``warning`` or ``notice``, the file it points at (if
    any), its title and message (all unescaped)."""

    command: str
    title: str
    message: str
    file: str | None = None

    def line(self) -> str:
        """The workflow command, escaped."""
        properties = [f"title={workflow_property(self.title)}"]
        if self.file is not None:
            properties.insert(0, f"file={workflow_property(self.file)}")
        return f"::{self.command} {','.join(properties)}::{workflow_data(self.message)}"


def _file(package: PackageReport, library: str | None, base: Path) -> str:
    """What an annotation points at: the wheel, the library file, or the package's root."""
    found = package.library_named(library) if library is not None else None
    if package.wheel is None and found is not None:
        return relative_path(found.path, base)
    if package.wheel is None and library is not None:
        return relative_path(package.root / library, base)
    return relative_path(package.root, base)


def _where(package: PackageReport, library: str | None) -> str:
    return f"{package.name} ({library})" if library else package.name


def _gate_annotation(gate: GateResult, package: PackageReport, base: Path) -> Annotation:
    failed = gate.status is GateStatus.FAILED
    what = f"{gate.code} " if gate.code else ""
    title = f"torch-abi-audit: {what}{gate.gate} gate {'failed' if failed else gate.status}"
    message = f"{_where(package, gate.library)}: {gate.message}"
    if gate.justification:
        message += f" ({gate.status}: {gate.justification})"
    return Annotation(
        "error" if failed else "notice", title, message, _file(package, gate.library, base)
    )


def _finding_annotations(package: PackageReport, covered: set[str], base: Path) -> list[Annotation]:
    def annotation(finding: Finding) -> Annotation:
        named = package.finding_libraries(finding)
        library = package.library_name(named[0].path) if len(named) == 1 else None
        return Annotation(
            _COMMANDS[finding.severity],
            f"torch-abi-audit: {finding.code}",
            f"{_where(package, library)}: {finding.message}",
            _file(package, library, base),
        )

    return [annotation(f) for f in listed_findings(package) if f.code not in covered]


def _error_annotations(package: PackageReport, base: Path) -> list[Annotation]:
    found = []
    if package.error:
        where = None if nothing_found(package) else _file(package, None, base)
        message = f"{package.name}: {package.error}"
        found.append(Annotation("error", "torch-abi-audit: not audited", message, where))
    if package.unavailable:
        found.append(
            Annotation(
                "notice", "torch-abi-audit: not available", f"{package.name}: {package.unavailable}"
            )
        )
    for problem in package.problems:
        where = package.library_name(problem.path)
        found.append(
            Annotation(
                "error",
                "torch-abi-audit: not audited",
                f"{_where(package, where)}: {problem.reason}",
                _file(package, where, base),
            )
        )
    for lib in package.libraries:
        if lib.torch_label is TorchLabel.ERROR:
            name = package.library_name(lib.path)
            message = f"{_where(package, name)}: {lib.error}"
            found.append(
                Annotation(
                    "error", "torch-abi-audit: not audited", message, _file(package, name, base)
                )
            )
    return found


def workflow_annotations(result: AuditResult, base: Path) -> list[Annotation]:
    """Every annotation of a result, gate violations first (GitHub shows only the first few
    of each kind per step), then errors, then the findings no violation covers."""
    gates = [
        _gate_annotation(gate, package, base)
        for package in result.packages
        for gate in result.gate_results
        if gate.concerns(package)
    ]
    errors = [a for p in result.packages for a in _error_annotations(p, base)]
    errors += [
        Annotation("error", "torch-abi-audit: baseline", message)
        for message in [*map(stale_message, result.stale), *map(expired_message, result.expired)]
    ]
    errors += [
        Annotation("error", "torch-abi-audit: nothing audited", f"{item.target}: {item.reason}")
        for item in result.nothing_audited
    ]
    findings = []
    for package in result.packages:
        covered = {g.code for g in result.gate_results if g.concerns(package) and g.code}
        findings += _finding_annotations(package, covered, base)
    rank = {"error": 0, "warning": 1, "notice": 2}
    return gates + errors + sorted(findings, key=lambda a: rank[a.command])


def _summary(result: AuditResult) -> Annotation:
    libraries = sum(len(p.libraries) for p in result.packages)
    text = f"{len(result.packages)} packages, {libraries} libraries audited"
    if result.checks:
        failed = len(result.failed)
        stale = len(result.stale) + len(result.expired)
        outcome = f"{failed} violations" if failed else "passed"
        if stale:
            outcome += f", {stale} stale or expired baseline entries"
        text += f"; gates {', '.join(result.checks)}: {outcome}"
    findings = sum(len(listed_findings(p)) for p in result.packages)
    text += f"; {findings} finding{'' if findings == 1 else 's'}"
    return Annotation("notice", "torch-abi-audit", text)


def render(document: Document, options: RenderOptions) -> str:
    """``--format github``: the annotations, a summary notice, and the table in a log group."""
    match document:
        case PackageDiff():
            annotations = diff_annotations(document, options.working_directory)
        case AuditResult():
            annotations = workflow_annotations(document, options.working_directory)
            annotations.append(_summary(document))
        case _:
            assert_never(document)
    lines = [a.line() for a in annotations]
    report = table.render(document, options)
    # Nothing in the table may be read as a command: a token the input cannot know (it is
    # derived from the very text it would have to contain) stops command processing.
    token = (
        "torch-abi-audit-"
        + hashlib.sha256(report.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    )
    lines += [
        "::group::torch-abi-audit report",
        f"::stop-commands::{token}",
        report,
        f"::{token}::",
        "::endgroup::",
    ]
    return "\n".join(lines) + "\n"


def diff_annotations(diff: PackageDiff, base: Path) -> list[Annotation]:
    """A diff's annotations: each regression (an error when it fails a gate ``--check``
    asked for, else a warning), each finding fixed (a notice), what could not be read on
    either side (an error), then a summary notice."""
    new = diff.new
    failed = set(diff.failed)

    def where(library: str | None) -> str:
        if new.in_wheel or library is None:
            return relative_path(new.root, base)
        return relative_path(new.root / library, base)

    found = [
        Annotation(
            "error" if regression in failed else "warning",
            f"torch-abi-audit: {regression.gate} regression",
            f"{new.label}: {regression.reason}",
            where(regression.library),
        )
        for regression in diff.regressions
    ]
    found += [
        Annotation(
            "notice",
            f"torch-abi-audit: fixed {finding.code}",
            f"{new.label}: no longer {finding.code}: {finding.message}",
            where(None),
        )
        for finding in diff.findings_fixed
    ]
    found += [
        Annotation("error", "torch-abi-audit: not read", error, where(None))
        for error in diff.errors
    ]
    text = (
        f"{diff.old.label} -> {new.label}: unstable imports {diff.old.unstable} -> "
        f"{new.unstable} ({diff.unstable_removed} removed, {diff.unstable_added} added), "
        f"{len(diff.regressions)} regression{'' if len(diff.regressions) == 1 else 's'}"
        + (" in what could be read (not everything was)" if diff.errors else "")
    )
    if diff.checks:
        text += f"; gates {', '.join(str(c) for c in diff.checks)}: "
        text += f"{len(failed)} failed" if failed else "passed"
    found.append(Annotation("notice", "torch-abi-audit diff", text))
    return found
