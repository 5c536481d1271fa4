"""Markdown for pull requests and ``$GITHUB_STEP_SUMMARY``: a summary table, the gate
outcome, then one folded ``<details>`` block per package with its libraries, findings and the
symbols that matter, each listed once for the package ("in 5 libraries").

GitHub refuses comments over :data:`GITHUB_COMMENT_LIMIT` characters, and a report of a whole
environment easily exceeds that. The renderer therefore tries ever shorter renderings
(:data:`LEVELS`: fewer symbols per package, fewer library rows, details only for the packages
that need attention, no details, fewer summary rows) and keeps the first that fits, ending with
a note that says exactly what it left out. Every name from an audited file is escaped
(:mod:`torch_abi_audit.renderers.escaping`): it cannot add a row, close a block or mention
anyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import assert_never

from torch_abi_audit._version import __version__
from torch_abi_audit.diff import PackageDiff
from torch_abi_audit.gate_report import expired_message, stale_message
from torch_abi_audit.renderers.base import Document, RenderOptions
from torch_abi_audit.renderers.diff import diff_markdown
from torch_abi_audit.renderers.escaping import html_text, markdown_code, markdown_text
from torch_abi_audit.renderers.migration import plan_markdown
from torch_abi_audit.renderers.summary import (
    CPYTHON_VERDICT_LABELS,
    LOAD_STATUS_LABELS,
    TORCH_VERDICT_LABELS,
    SymbolUse,
    counted,
    cpython_violation_uses,
    environment_order,
    finding_counts,
    listed_findings,
    needs_attention,
    nothing_found,
    package_version,
    unstable_symbol_uses,
)
from torch_abi_audit.report import (
    AuditResult,
    ExtensionReport,
    GateResult,
    GateStatus,
    PackageReport,
    TorchLabel,
    TorchVerdict,
)
from torch_abi_audit.rules.load_prediction import LoadStatus

#: The longest comment GitHub accepts on a pull request or issue (characters).
GITHUB_COMMENT_LIMIT = 65_536


@dataclass(frozen=True)
class Level:
    """How much one rendering shows: symbols and library rows per package (``None``: all),
    which packages get a details block (``all``, ``attention``, ``none``), and how many rows
    the summary table keeps (``None``: all)."""

    symbols: int | None
    libraries: int | None
    details: str
    rows: int | None = None


#: From everything to the bare summary; the first rendering that fits is kept.
LEVELS = (
    Level(None, None, "all"),
    Level(200, None, "all"),
    Level(100, None, "all"),
    Level(50, None, "all"),
    Level(25, None, "all"),
    Level(10, 40, "all"),
    Level(5, 15, "attention"),
    Level(3, 5, "attention"),
    Level(0, 0, "none"),
)


@dataclass
class _LeftOut:
    """What a rendering left out, counted as it goes, to say so at the end."""

    symbols: int = 0
    libraries: int = 0
    details: list[str] = field(default_factory=list)
    rows: int = 0
    hidden: int = 0

    def note(self) -> list[str]:
        parts = []
        if self.symbols:
            parts.append(f"{self.symbols} symbol rows")
        if self.libraries:
            parts.append(f"{self.libraries} library rows")
        if self.details:
            parts.append(f"the details of {len(self.details)} packages")
        if self.rows:
            parts.append(f"{self.rows} packages from the summary table")
        if not parts:
            return []
        return [
            "",
            f"> Shortened to fit GitHub's {GITHUB_COMMENT_LIMIT:,}-character limit for comments: "
            f"left out {', '.join(parts)}. `--format json` has everything.",
        ]


def _cell(text: str) -> str:
    return markdown_text(text) if text else "-"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _loads(package: PackageReport) -> str:
    status = package.load_status
    return LOAD_STATUS_LABELS[status] if status else "-"


def _verdict(package: PackageReport) -> str:
    label = TORCH_VERDICT_LABELS[package.torch_verdict]
    bad = package.torch_verdict in (TorchVerdict.UNSTABLE, TorchVerdict.ERROR)
    return f"**{label}**" if bad else label


def _summary_row(package: PackageReport) -> list[str]:
    return [
        markdown_code(package.name),
        _cell(package_version(package)),
        _verdict(package),
        _cell(package.min_torch_version or ""),
        CPYTHON_VERDICT_LABELS[package.cpython_verdict],
        _loads(package),
        finding_counts(package),
    ]


def _shown(result: AuditResult, show_all: bool) -> list[PackageReport]:
    if result.environment is None:
        return list(result.packages)
    packages = environment_order(result.packages)
    return [p for p in packages if show_all or p.torch_verdict is not TorchVerdict.NO_TORCH]


def _heading(result: AuditResult, shown: Sequence[PackageReport]) -> list[str]:
    libraries = sum(len(p.libraries) for p in result.packages)
    what = f"{counted(len(result.packages), 'package')}, "
    what += counted(libraries, "library", "libraries")
    if result.environment is not None:
        what += f" in {markdown_code(str(result.environment.site_packages))}"
    hidden = len(result.packages) - len(shown)
    if hidden:
        what += f" ({hidden} without torch use not listed; `--all` lists them)"
    reference = result.torch_reference
    loads = f" Loading predicted against {markdown_text(reference.label)}." if reference else ""
    return [f"## torch-abi-audit {__version__}", "", f"Audited {what}.{loads}"]


def _gate_lines(result: AuditResult) -> list[str]:
    """The gate outcome and one row per violation (failed, allowed or ignored)."""
    if not result.checks:
        return []
    asked = ", ".join(result.checks)
    failed = result.failed
    if failed:
        packages = len({r.package for r in failed})
        outcome = (
            f"**failed**: {counted(len(failed), 'violation')} in {counted(packages, 'package')}"
        )
    elif result.gates_failed:
        outcome = "**failed**: the baseline is out of date"
    else:
        outcome = "passed"
    others = [r for r in result.gate_results if r.status is not GateStatus.FAILED]
    if others:
        outcome += f" ({len(others)} allowed or ignored, shown below)"
    lines = ["", f"Gates ({asked}): {outcome}."]
    if result.gate_results:
        lines += [
            "",
            *_table(("Gate", "Status", "Package", "Library", "Reason"), _gate_rows(result)),
        ]
    problems = [f"- **stale** {markdown_text(stale_message(entry))}" for entry in result.stale]
    problems += [
        f"- **expired** {markdown_text(expired_message(entry))}" for entry in result.expired
    ]
    problems += [
        f"- **nothing audited** {markdown_text(f'{item.target}: {item.reason}')}"
        for item in result.nothing_audited
    ]
    return [*lines, "", *problems] if problems else lines


def _gate_rows(result: AuditResult) -> list[list[str]]:
    def row(gate: GateResult) -> list[str]:
        status = f"**{gate.status}**" if gate.status is GateStatus.FAILED else str(gate.status)
        reason = gate.message + (f" ({gate.justification})" if gate.justification else "")
        return [
            gate.gate,
            status,
            markdown_code(gate.package),
            markdown_code(gate.library) if gate.library else "-",
            markdown_text(reason),
        ]

    return [row(gate) for gate in result.gate_results]


def _library_rows(package: PackageReport) -> list[list[str]]:
    def row(lib: ExtensionReport) -> list[str]:
        name = markdown_code(package.library_name(lib.path))
        label = lib.torch_label
        if label in (TorchLabel.ERROR, TorchLabel.SKIPPED):
            return [name, f"**{label}**", "-", "-", "-", "-", _cell(lib.error or lib.skipped or "")]
        torch = lib.torch
        floor = torch.min_torch_version if torch.stable and torch.min_torch_version else ""
        loads = LOAD_STATUS_LABELS[lib.load.status] if lib.load else "-"
        unstable = str(len(torch.unstable_symbols)) if torch.uses_torch else "-"
        shims = str(torch.stable_shim_count) if torch.uses_torch else "-"
        return [name, str(label), str(lib.cpython_label), shims, unstable, _cell(floor), loads]

    return [row(lib) for lib in package.libraries]


def _where(use: SymbolUse) -> str:
    if len(use.libraries) == 1:
        return markdown_code(use.libraries[0])
    return f"in {len(use.libraries)} libraries"


def _symbol_table(
    title: str, uses: list[SymbolUse], limit: int | None, left_out: _LeftOut
) -> list[str]:
    if not uses:
        return []
    imports = sum(len(use.libraries) for use in uses)
    shown = uses if limit is None else uses[:limit]
    left_out.symbols += len(uses) - len(shown)
    lines = ["", f"**{title}**: {len(uses)} distinct, {imports} imports", ""]
    if shown and any(u.reason for u in shown):
        rows = [[markdown_code(u.shown), _cell(u.reason), _where(u)] for u in shown]
        lines += _table(("Symbol", "Why", "Where"), rows)
    elif shown:
        lines += _table(("Symbol", "Where"), [[markdown_code(u.shown), _where(u)] for u in shown])
    if len(shown) < len(uses):
        lines += ["", f"… and {len(uses) - len(shown)} more."]
    return lines


def _source_lines(package: PackageReport) -> list[str]:
    if nothing_found(package):
        return []
    facts = []
    if package.wheel is not None:
        facts.append(f"wheel {markdown_code(package.wheel.filename)}")
        facts.append(f"tags {markdown_code(', '.join(package.wheel.tags))}")
        if not package.wheel.verified:
            count = len(package.wheel.unverified_members)
            facts.append(
                f"not fully verified ({counted(count, 'library', 'libraries')} read only as far "
                "as needed; `--verify-archive` checks every CRC-32)"
            )
    else:
        facts.append(f"at {markdown_code(str(package.root))}")
    dist = package.distribution
    if dist is not None:
        requires = ", ".join(dist.requires_torch)
        facts.append(f"requires {markdown_code(requires)}" if requires else "no torch requirement")
    return ["", "; ".join(facts) + "."]


def _problem_lines(package: PackageReport) -> list[str]:
    lines = []
    if package.error:
        lines += ["", f"**Error**: {markdown_text(package.error)}"]
    if package.unavailable:
        lines += ["", f"Not available: {markdown_text(package.unavailable)}"]
    for problem in package.problems:
        where = package.library_name(problem.path)
        lines += ["", f"**Problem** {markdown_code(where)}: {markdown_text(problem.reason)}"]
    return lines


def _finding_lines(package: PackageReport) -> list[str]:
    findings = listed_findings(package)
    if not findings:
        return []
    lines = ["", "**Findings**", ""]
    for finding in findings:
        severity = f"**{finding.severity}**" if finding.fails_check else str(finding.severity)
        lines.append(f"- {severity} `{finding.code}`: {markdown_text(finding.message)}")
    return lines


#: The load outcomes whose messages a package's details list, under these headings.
_LOAD_HEADINGS = (
    (LoadStatus.FAILS, "Will not load"),
    (LoadStatus.UNKNOWN, "Cannot tell whether it loads"),
)


def _load_lines(package: PackageReport) -> list[str]:
    lines: list[str] = []
    for status, heading in _LOAD_HEADINGS:
        libraries = [lib for lib in package.libraries if lib.load and lib.load.status is status]
        if libraries:
            lines += ["", f"**{heading}**", ""]
        for lib in libraries:
            assert lib.load is not None
            name = markdown_code(package.library_name(lib.path))
            lines.append(f"- {name}: {markdown_text(lib.load.message)}")
    return lines


def _details(package: PackageReport, level: Level, left_out: _LeftOut) -> list[str]:
    summary = (
        f"<b>{html_text(package.name)}</b> {html_text(package_version(package))}: "
        f"{TORCH_VERDICT_LABELS[package.torch_verdict]}, {len(package.libraries)} libraries, "
        f"findings: {finding_counts(package)}"
    )
    lines = ["", "<details>", f"<summary>{summary}</summary>"]
    lines += _source_lines(package) + _problem_lines(package)
    rows = _library_rows(package)
    kept = rows if level.libraries is None else rows[: level.libraries]
    left_out.libraries += len(rows) - len(kept)
    if kept:
        header = ("Library", "Torch", "CPython", "Shims", "Unstable", "Min torch", "Loads")
        lines += ["", *_table(header, kept)]
    if len(kept) < len(rows):
        lines += ["", f"… and {len(rows) - len(kept)} more libraries."]
    lines += _finding_lines(package) + _load_lines(package)
    uses = unstable_symbol_uses(package)
    lines += _symbol_table("Unstable symbols", uses, level.symbols, left_out)
    violations = cpython_violation_uses(package)
    lines += _symbol_table(
        "CPython symbols outside the stable ABI", violations, level.symbols, left_out
    )
    if package.migration is not None and package.migration.occurrences:
        lines += ["", "**Migration plan** (`--explain`)", "", *plan_markdown(package.migration)]
    return [*lines, "", "</details>"]


def _wants_details(package: PackageReport, level: Level) -> bool:
    if level.details == "none":
        return False
    return level.details == "all" or needs_attention(package)


def render_at(result: AuditResult, options: RenderOptions, level: Level) -> str:
    """The report at one level of detail (see :data:`LEVELS`)."""
    left_out = _LeftOut()
    shown = _shown(result, options.show_all)
    lines = _heading(result, shown) + _gate_lines(result)
    if level.rows is not None:  # cutting rows: keep those that need attention
        shown = sorted(shown, key=lambda p: not needs_attention(p))
    rows = shown if level.rows is None else shown[: level.rows]
    left_out.rows = len(shown) - len(rows)
    if rows:
        header = ("Package", "Version", "Torch ABI", "Min torch", "CPython", "Loads", "Findings")
        lines += ["", *_table(header, [_summary_row(p) for p in rows])]
    if left_out.rows:
        lines += ["", f"… and {left_out.rows} more packages."]
    if result.environment is not None:
        for problem in result.environment.problems:
            where = markdown_code(str(problem.path))
            lines += ["", f"**Problem** {where}: {markdown_text(problem.reason)}"]
    for package in shown:
        if _wants_details(package, level):
            lines += _details(package, level, left_out)
        else:
            left_out.details.append(package.name)
    lines += left_out.note()
    return "\n".join(lines) + "\n"


def render(document: Document, options: RenderOptions) -> str:
    """``--format markdown``: the most detailed rendering that fits in a GitHub comment."""
    match document:
        case PackageDiff():
            return render_diff(document)
        case AuditResult():
            return render_audit(document, options)
        case _:
            assert_never(document)


def render_diff(diff: PackageDiff) -> str:
    """A diff for a pull request: with its entity changes if that fits in a comment, else
    without them (and saying so)."""
    text = diff_markdown(diff)
    if len(text) <= GITHUB_COMMENT_LIMIT:
        return text
    return diff_markdown(diff, details=False)


def render_audit(document: AuditResult, options: RenderOptions) -> str:
    """An audit result at the most detailed level that fits in a GitHub comment."""
    for level in LEVELS:
        text = render_at(document, options, level)
        if len(text) <= GITHUB_COMMENT_LIMIT:
            return text
    # Even the bare summary is too long (thousands of packages): keep the rows that fit.
    low, high = 0, len(document.packages)
    while low < high:
        middle = (low + high + 1) // 2
        fits = render_at(document, options, Level(0, 0, "none", middle))
        low, high = (middle, high) if len(fits) <= GITHUB_COMMENT_LIMIT else (low, middle - 1)
    return render_at(document, options, Level(0, 0, "none", low))
