"""The human-readable table (the documented default output).

Pure functions from reports to text. The layout — block lines, row labels and their column
widths, the ``(stable_shim=N, unstable=M)`` suffix, ``-v`` symbol lists cut at 15 — is a contract
users grep and paste into pull requests; additions only ever come as new lines or trailing
columns.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from torch_abi_audit.renderers.base import Document, RenderOptions
from torch_abi_audit.renderers.escape import terminal_lines, terminal_text
from torch_abi_audit.renderers.gates import format_gates
from torch_abi_audit.renderers.summary import (
    CPYTHON_VERDICT_LABELS,
    LOAD_STATUS_LABELS,
    TORCH_VERDICT_LABELS,
    counted,
    environment_order,
    finding_counts,
    listed_findings,
    needs_attention,
    nothing_found,
    package_version,
)
from torch_abi_audit.report import (
    AuditResult,
    EnvironmentReport,
    ExtensionReport,
    PackageReport,
    SliceReport,
    TorchLabel,
    TorchVerdict,
)
from torch_abi_audit.rules.cpython_abi import version_key
from torch_abi_audit.rules.load_prediction import LoadStatus
from torch_abi_audit.rules.torch_abi import UnstableReason

#: How many symbols ``-v`` lists per library before "... N more".
VERBOSE_SYMBOL_LIMIT = 15


def _display_path(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _limited(lines: list[str], prefix: str, limit: int = VERBOSE_SYMBOL_LIMIT) -> list[str]:
    shown = [f"        {prefix}{line}" for line in lines[:limit]]
    if len(lines) > limit:
        shown.append(f"        ... {len(lines) - limit} more")
    return shown


def _basename(name: str) -> str:
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def _slice_line(part: SliceReport) -> str:
    """``slice arm64: STABLE, abi3-ok, min-torch=2.10.0, macOS 11.0`` under a universal binary."""
    facts = [str(part.torch_label), str(part.cpython_label)]
    if part.torch.stable and part.torch.min_torch_version:
        facts.append(f"min-torch={part.torch.min_torch_version}")
    if part.torch.unstable_symbols:
        facts.append(f"unstable={len(part.torch.unstable_symbols)}")
    if part.min_os:
        facts.append(f"macOS {part.min_os}")
    return f"        slice {part.machine}: {', '.join(facts)}"


def _load_details(lib: ExtensionReport) -> list[str]:
    """``-v``: the release build judged against, every missing library, undefined symbol and
    failed bundled dependency behind a failed load prediction, what the data cannot tell behind
    an unknown one, and what is missing but optional (weak imports, weak-linked or delay-loaded
    libraries)."""
    load = lib.load
    if load is None:
        return []
    demangled = {u.symbol: u.demangled for u in lib.torch.unstable_details}
    lines: list[str] = []
    if load.build is not None:
        lines.append(f"        judged against: {load.build}")
    if load.fails:
        lines += _limited(list(load.missing_libraries[1:]), "also: ")
        lines += _limited(
            [demangled.get(name, name) for name in load.undefined_symbols],
            f"not exported by {load.against}: ",
        )
        lines += _limited(list(load.failed_dependencies), "needs, and will not load: ")
    elif load.status is LoadStatus.UNKNOWN:
        lines += _limited(list(load.undecided_libraries), "not known to be installed: ")
        lines += _limited(
            [demangled.get(name, name) for name in load.undecided_symbols], "not recorded: "
        )
    lines += _limited(
        [demangled.get(name, name) for name in load.weak_undefined_symbols],
        f"weak, not in {load.against} (the load goes on): ",
    )
    lines += _limited(
        list(load.missing_optional_libraries), "weak-linked or delay-loaded, not found: "
    )
    return lines


@dataclass
class SymbolLedger:
    """The symbols of one package for ``-v``: in how many of its libraries each one occurs,
    and which are listed already, so that a symbol fifteen libraries import is listed once
    (with "in 15 libraries") instead of fifteen times."""

    occurrences: Counter[str] = field(default_factory=Counter)
    listed: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, package: PackageReport) -> SymbolLedger:
        """The ledger of ``package``'s libraries."""
        occurrences: Counter[str] = Counter()
        for lib in package.libraries:
            occurrences.update({f"t:{u.symbol}" for u in lib.torch.unstable_details})
            occurrences.update({f"c:{name}" for name in lib.cpython.violations})
        return cls(occurrences)

    def lines(self, items: list[tuple[str, str]], prefix: str, what: str) -> list[str]:
        """``prefix`` lines for the (key, text) ``items`` not listed yet (at most
        :data:`VERBOSE_SYMBOL_LIMIT`), and one line counting those listed above."""
        fresh = [(key, text) for key, text in items if key not in self.listed]
        shown = [
            text
            + (f"  (in {self.occurrences[key]} libraries)" if self.occurrences[key] > 1 else "")
            for key, text in fresh
        ]
        self.listed.update(key for key, _ in fresh)
        lines = _limited(shown, prefix)
        repeated = len(items) - len(fresh)
        if repeated:
            also = "also " if fresh else ""
            lines.append(f"        ({also}{repeated} {what} listed above)")
        return lines


def library_lines(
    lib: ExtensionReport,
    root: Path,
    *,
    verbose: bool = False,
    ledger: SymbolLedger | None = None,
) -> list[str]:
    """The row for one library, plus its ``-v`` detail lines (symbols already listed for an
    earlier library of the same package, per ``ledger``, are counted, not repeated)."""
    shown = _display_path(lib.path, root)
    label = lib.torch_label
    if label is TorchLabel.ERROR:
        return [f"    [{label:<8}] [{'n/a':<22}] {shown}  (error: {lib.error})"]
    if label is TorchLabel.SKIPPED:
        return [f"    [{label:<8}] [{'n/a':<22}] {shown}  (skipped: {lib.skipped})"]
    line = f"    [{label:<8}] [{lib.cpython_label:<22}] {shown}"
    torch = lib.torch
    if torch.uses_torch:
        line += f"  (stable_shim={torch.stable_shim_count}, unstable={len(torch.unstable_symbols)})"
        if torch.stable and torch.min_torch_version:
            line += f"  min-torch={torch.min_torch_version}"
        if torch.torch_libraries:
            line += f"  torch-libs={','.join(_basename(n) for n in torch.torch_libraries)}"
    lines = [line]
    lines += [_slice_line(part) for part in lib.slices]
    if lib.load is not None and lib.load.status in (LoadStatus.FAILS, LoadStatus.UNKNOWN):
        lines.append(f"        {lib.load.message}")
    cpython = lib.cpython
    if cpython.future_symbols:
        symbols = ", ".join(f"{name} ({version})" for name, version in cpython.future_symbols)
        lines.append(
            f"        uses the Python {cpython.computed} ABI, but is tagged for the Python "
            f"{cpython.baseline} ABI: {symbols}"
        )
    if verbose:
        lines += _verbose_lines(lib, ledger or SymbolLedger())
    return lines


def _verbose_lines(lib: ExtensionReport, ledger: SymbolLedger) -> list[str]:
    """``-v``: load details, what the file is a copy of, minimum macOS, what sets the torch
    floor, optional and unknown shims, then the unstable symbols and CPython violations."""
    torch = lib.torch
    lines = _load_details(lib)
    if lib.runtime is not None:
        lines.append(f"        a copy of {lib.runtime.name} ({lib.runtime.evidence})")
    if lib.min_os and not lib.slices:
        lines.append(f"        minimum macOS: {lib.min_os}")
    if torch.stable and torch.min_torch_symbols:
        defining = ", ".join(torch.min_torch_symbols[:5])
        extra = len(torch.min_torch_symbols) - 5
        if extra > 0:
            defining += f", +{extra} more"
        lines.append(f"        requires torch {torch.min_torch_version}: {defining}")
    if torch.optional_shims:
        lines.extend(_limited(list(torch.optional_shims), "optional at run time (dlsym): "))
    if torch.unknown_shims:
        lines.extend(_limited(list(torch.unknown_shims), "shim not in the table (newer torch?): "))
    details = [
        (
            f"t:{u.symbol}",
            (
                u.demangled
                if u.reason is UnstableReason.NAMESPACE
                else f"{u.demangled}  <- {u.detail}"
            )
            + (
                f"  [{_basename(u.library)}]"
                if u.library and u.reason is not UnstableReason.LIBRARY
                else ""
            ),
        )
        for u in torch.unstable_details
    ]
    lines.extend(ledger.lines(details, "torch unstable: ", "unstable symbols"))
    violations = [(f"c:{name}", name) for name in lib.cpython.violations]
    lines.extend(ledger.lines(violations, "cpython violation: ", "cpython violations"))
    return lines


def _load_line(report: PackageReport) -> list[str]:
    """``Loads:`` in a package block, when loading was predicted against a torch."""
    reference = report.torch_reference
    status = report.load_status
    if reference is None or status is None:
        return []
    if status is LoadStatus.FAILS:
        judged = sum(1 for lib in report.libraries if lib.load is not None)
        failed = len(report.load_failures)
        return [f"  Loads:       NO, not with {reference.label} ({failed} of {judged} libraries)"]
    if status is LoadStatus.UNKNOWN:
        judged = sum(1 for lib in report.libraries if lib.load is not None)
        unknown = sum(
            1 for lib in report.libraries if lib.load and lib.load.status is LoadStatus.UNKNOWN
        )
        return [
            f"  Loads:       unknown with {reference.label} (the data cannot tell for {unknown} "
            f"of {judged} libraries)"
        ]
    if status is LoadStatus.TIED:
        return [
            f"  Loads:       only with the torch it was built for (unstable); "
            f"{reference.label} is unverified"
        ]
    return [f"  Loads:       yes, with {reference.label}"]


def _abi3_version_line(report: PackageReport) -> list[str]:
    """``abi3 version: tagged 3.9 (wheel tag), uses 3.10`` for packages with abi3 modules."""
    judged = [lib.cpython for lib in report.libraries if lib.cpython.baseline]
    if not judged:
        return []
    baseline = judged[0].baseline
    source = judged[0].baseline_source
    computed = max((c.computed or "3.2" for c in judged), key=version_key)
    return [f"  abi3 version: tagged {baseline} ({source}), uses {computed}"]


def format_package(report: PackageReport, *, verbose: bool = False) -> str:
    """The documented per-package block (every name in it escaped for the terminal)."""
    return terminal_lines(_package_lines(report, verbose=verbose))


def _package_lines(report: PackageReport, *, verbose: bool = False) -> list[str]:
    lines = [f"Package: {report.name}"]
    if report.unavailable:
        lines.append(f"  Not available: {report.unavailable}")
        return lines
    if nothing_found(report):  # an unknown name or missing path: no root to invent
        lines.append(f"  Error: {report.error}")
        return lines
    lines.append(f"  Root: {report.root}")
    if report.wheel is not None:
        lines.append(f"  Wheel tags: {', '.join(report.wheel.tags)}")
        if not report.wheel.verified:
            count = len(report.wheel.unverified_members)
            lines.append(
                f"  Archive:     not fully verified: {count} of {len(report.libraries)} "
                "libraries read only as far as needed (--verify-archive checks every CRC-32)"
            )
    if report.distribution is not None:
        dist = report.distribution
        # Unreadable metadata leaves the name the archive or directory gives, and no version.
        lines.append(f"  Distribution: {dist.name} {dist.version or '(version unknown)'}")
    lines += [
        f"  Torch ABI:   {TORCH_VERDICT_LABELS[report.torch_verdict]}",
        f"  Min torch:   {report.min_torch_version or 'n/a'}",
        *_load_line(report),
        f"  CPython ABI: {CPYTHON_VERDICT_LABELS[report.cpython_verdict]}",
        *_abi3_version_line(report),
        f"  Extensions:  {len(report.extensions)}",
        f"  Bundled libs: {len(report.bundled_libs)}",
        *([f"  Executables: {len(report.executables)}"] if report.executables else []),
    ]
    if report.error:
        lines.append(f"  Error: {report.error}")
    for problem in report.problems:
        where = _display_path(problem.path, report.root)
        lines.append(
            f"  Problem: {where}: {problem.reason}"
            if where != "."
            else f"  Problem: {problem.reason}"
        )
    findings = listed_findings(report)
    if findings:
        lines.append("  Findings:")
        lines += [f"    [{f.severity}] {f.code}: {f.message}" for f in findings]
    ledger = SymbolLedger.of(report)
    if report.extensions:
        lines.append("  -- extensions --")
        for lib in report.extensions:
            lines.extend(library_lines(lib, report.root, verbose=verbose, ledger=ledger))
    if report.bundled_libs:
        lines.append("  -- bundled libs --")
        for lib in report.bundled_libs:
            lines.extend(library_lines(lib, report.root, verbose=verbose, ledger=ledger))
    if report.migration is not None:
        from torch_abi_audit.renderers.migration import plan_lines  # only with --explain

        lines.extend(plan_lines(report.migration))
    if report.executables:
        lines.append("  -- executables --")
        for lib in report.executables:
            lines.extend(library_lines(lib, report.root, verbose=verbose, ledger=ledger))
    return lines


def format_packages(reports: list[PackageReport], *, verbose: bool = False) -> str:
    """Several package blocks, each followed by a blank line (target mode)."""
    return "".join(format_package(r, verbose=verbose) + "\n\n" for r in reports).rstrip("\n")


def format_environment(
    report: EnvironmentReport, *, verbose: bool = False, show_all: bool = False
) -> str:
    """The environment table, unstable packages first; ``-v`` adds the blocks of the packages
    that need attention (unstable, error, stable with a torch floor, or failing findings).
    Every name in it is escaped for the terminal."""
    header = [f"Site-packages: {report.site_packages}"]
    header += [f"  also scanned: {extra}" for extra in report.search_paths[1:]]
    if report.torch_reference is not None:
        reference = report.torch_reference
        where = f" ({reference.root})" if reference.root else ""
        header.append(f"Loads predicted against: {reference.label}{where}")
    shown = [p for p in report.packages if show_all or p.torch_verdict is not TorchVerdict.NO_TORCH]
    out = list(header)
    if shown:
        # Cells are escaped before they are measured, so that the columns stay aligned.
        names = {id(p): terminal_text(p.name) for p in shown}
        versions = {id(p): terminal_text(package_version(p)) for p in shown}
        name_width = max(16, min(40, max(map(len, names.values()))))
        out.append("")
        version_width = max(7, *map(len, versions.values()))
        # LOADS, a trailing column, only when loading was predicted against a torch.
        loads = report.torch_reference is not None
        findings_width = max(8, *(len(finding_counts(p)) for p in shown)) if loads else 0
        out.append(
            f"  {'PACKAGE':<{name_width}}  {'TORCH':<8}  {'MIN-TORCH':<9}  {'CPYTHON':<8}  "
            f"EXTS  BUNDLED  {'VERSION':<{version_width}}  {'FINDINGS':<{findings_width}}"
            + ("  LOADS" if loads else "")
        )
        out.append(
            f"  {'-' * name_width}  {'-' * 8}  {'-' * 9}  {'-' * 8}  ----  -------  "
            f"{'-' * version_width}  {'-' * max(8, findings_width)}" + ("  -----" if loads else "")
        )
        for package in environment_order(shown):
            name = names[id(package)]
            if len(name) > name_width:
                name = name[: name_width - 1] + "…"
            row = (
                f"  {name:<{name_width}}  {TORCH_VERDICT_LABELS[package.torch_verdict]:<8}  "
                f"{package.min_torch_version or '-':<9}  "
                f"{CPYTHON_VERDICT_LABELS[package.cpython_verdict]:<8}  "
                f"{len(package.extensions):>4}  {len(package.bundled_libs):>7}  "
                f"{versions[id(package)]:<{version_width}}  "
                f"{finding_counts(package):<{findings_width}}"
            )
            if loads:
                status = package.load_status
                row += f"  {LOAD_STATUS_LABELS[status] if status else '-'}"
            out.append(row.rstrip())
    else:
        out.append("  (no packages with libtorch use found; pass --all to list everything)")
    for problem in report.problems:
        out.append(f"  Problem: {problem.path}: {problem.reason}")
    hidden = len(report.packages) - len(shown)
    libraries = sum(len(p.libraries) for p in report.packages)
    summary = (
        f"{counted(len(report.packages), 'package')} with compiled libraries, "
        f"{counted(libraries, 'library', 'libraries')}"
    )
    if hidden:
        summary += f"; {hidden} without torch use hidden (--all shows them)"
    out += ["", summary]
    failing = [p.name for p in report.packages if p.load_status is LoadStatus.FAILS]
    if report.torch_reference is not None and failing:
        out.append(
            f"{counted(len(failing), 'package')} will not load with "
            f"{report.torch_reference.label}: {', '.join(failing)}"
        )
    if verbose:
        for package in environment_order(shown):
            if needs_attention(package):
                out += ["", *_package_lines(package, verbose=True)]
    elif any(p.migration is not None and p.migration.occurrences for p in shown):
        # --explain without -v: the plans of the packages that have something to port.
        for package in sorted(shown, key=lambda p: p.name.lower()):
            if package.migration is not None and package.migration.occurrences:
                from torch_abi_audit.renderers.migration import plan_lines

                out += ["", f"Package: {package.name}", *plan_lines(package.migration)]
    return terminal_lines(out)


def render(document: Document, options: RenderOptions) -> str:
    """``--format table``: the environment table, or one block per target package, then, under
    ``--check``, the ``Gates:`` section (every violation with its status); for a diff, the
    comparison."""
    match document:
        case AuditResult() if document.environment is not None:
            text = format_environment(
                document.environment, verbose=options.verbose, show_all=options.show_all
            )
        case AuditResult():
            text = format_packages(list(document.packages), verbose=options.verbose)
        case _:  # a diff (its modules load only for one; mypy checks that nothing else is left)
            from torch_abi_audit.renderers.diff import diff_lines

            return terminal_lines(diff_lines(document, verbose=options.verbose))
    if document.checks:
        text = text.rstrip("\n") + "\n\n" + format_gates(document)
    return text
