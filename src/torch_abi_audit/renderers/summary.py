"""What several renderers say alike: verdict labels, finding counts, which packages need
attention, paths relative to a base, and symbols de-duplicated across the libraries of a
package ("in 5 libraries")."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from torch_abi_audit.report import (
    CPythonVerdict,
    ExtensionReport,
    PackageReport,
    TorchVerdict,
)
from torch_abi_audit.rules.findings import Finding
from torch_abi_audit.rules.load_prediction import LoadStatus
from torch_abi_audit.rules.registry import restates_verdict
from torch_abi_audit.rules.torch_abi import UnstableReason

TORCH_VERDICT_LABELS = {
    TorchVerdict.STABLE: "STABLE",
    TorchVerdict.UNSTABLE: "UNSTABLE",
    TorchVerdict.NO_TORCH: "NO-TORCH",
    TorchVerdict.ERROR: "ERROR",
}
CPYTHON_VERDICT_LABELS = {
    CPythonVerdict.ABI3_COMPLIANT: "abi3",
    CPythonVerdict.NOT_ABI3: "no",
    CPythonVerdict.MIXED: "mixed",
    CPythonVerdict.NO_EXTENSIONS: "n/a",
}
#: The LOADS column, by package load status.
LOAD_STATUS_LABELS = {
    LoadStatus.LOADS: "yes",
    LoadStatus.FAILS: "NO",
    LoadStatus.UNKNOWN: "unknown",
    LoadStatus.TIED: "tied",
}
_ENV_ORDER = {
    TorchVerdict.UNSTABLE: 0,
    TorchVerdict.ERROR: 1,
    TorchVerdict.STABLE: 2,
    TorchVerdict.NO_TORCH: 3,
}


def counted(number: int, singular: str, plural: str | None = None) -> str:
    """``1 library``, ``3 libraries``: ``number`` and the noun that agrees with it (``plural``
    defaults to ``singular`` + ``s``)."""
    return f"{number} {singular if number == 1 else plural or singular + 's'}"


def package_version(package: PackageReport) -> str:
    """The package's version, ``-`` when it has no distribution."""
    return package.distribution.version if package.distribution else "-"


def environment_order(packages: Iterable[PackageReport]) -> list[PackageReport]:
    """Packages as environment reports list them: unstable, errors, stable, no torch; then by
    name."""
    return sorted(packages, key=lambda p: (_ENV_ORDER[p.torch_verdict], p.name.lower()))


def listed_findings(package: PackageReport) -> tuple[Finding, ...]:
    """The findings a report lists among a package's findings: not those that restate a row
    label (``torch-unstable`` and the like, there so that every gate violation has a code),
    which the library rows already show; they appear with the gate results."""
    return tuple(f for f in package.findings if not restates_verdict(f.code))


def finding_counts(package: PackageReport) -> str:
    """``1 error, 2 info`` style counts of a package's listed findings, or ``-``."""
    counts: dict[str, int] = {}
    for finding in listed_findings(package):
        counts[finding.severity] = counts.get(finding.severity, 0) + 1
    parts = [f"{counts[s]} {s}" for s in ("error", "warning", "info") if s in counts]
    return ", ".join(parts) if parts else "-"


def needs_attention(package: PackageReport) -> bool:
    """Unstable, not audited, predicted not to load, a stable package with a torch floor to
    declare, or a finding that fails a gate: the packages whose details a reader wants."""
    return (
        package.torch_verdict in (TorchVerdict.UNSTABLE, TorchVerdict.ERROR)
        or package.load_status is LoadStatus.FAILS
        or (package.torch_verdict is TorchVerdict.STABLE and package.min_torch_version is not None)
        or any(f.fails_check for f in listed_findings(package))
    )


def nothing_found(package: PackageReport) -> bool:
    """True for a target that names nothing (an unknown import name, a missing path): it has
    an error and no file, distribution or wheel, so there is no root to show."""
    return bool(package.error) and not (
        package.libraries or package.problems or package.distribution or package.wheel
    )


def relative_path(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` (POSIX separators) when it lies under it, else as given."""
    try:
        relative = os.path.relpath(path, base)
    except ValueError:  # another drive on Windows
        return path.as_posix()
    if relative == ".." or relative.startswith(".." + os.sep):
        return path.as_posix()
    return Path(relative).as_posix()


@dataclass(frozen=True)
class SymbolUse:
    """One symbol and the libraries of a package that import it.

    ``shown`` is the name as people read it (demangled), ``reason`` why it counts when that
    is not obvious from the name (empty otherwise), ``libraries`` the libraries' paths inside
    the package, in package order.
    """

    shown: str
    reason: str
    libraries: tuple[str, ...]


def _collect(
    package: PackageReport, symbols: Callable[[ExtensionReport], Iterable[tuple[str, str, str]]]
) -> list[SymbolUse]:
    found: dict[str, tuple[str, str, list[str]]] = {}
    for lib in package.libraries:
        name = package.library_name(lib.path)
        for key, shown, reason in symbols(lib):
            entry = found.setdefault(key, (shown, reason, []))
            if name not in entry[2]:
                entry[2].append(name)
    uses = [SymbolUse(shown, reason, tuple(libs)) for shown, reason, libs in found.values()]
    # Most widely used first (what a port fixes once for many libraries); stable otherwise.
    return sorted(uses, key=lambda use: -len(use.libraries))


def _unstable(lib: ExtensionReport) -> Iterable[tuple[str, str, str]]:
    for use in lib.torch.unstable_details:
        reason = "" if use.reason is UnstableReason.NAMESPACE else use.detail
        yield use.symbol, use.demangled, reason


def _cpython(lib: ExtensionReport) -> Iterable[tuple[str, str, str]]:
    for name in lib.cpython.violations:
        yield name, name, ""


def unstable_symbol_uses(package: PackageReport) -> list[SymbolUse]:
    """Every libtorch-internal symbol the package imports, once, with the libraries that
    import it."""
    return _collect(package, _unstable)


def cpython_violation_uses(package: PackageReport) -> list[SymbolUse]:
    """Every CPython symbol outside the stable ABI the package imports, once."""
    return _collect(package, _cpython)
