"""``--check`` gates: which audited packages violate a policy, and why.

* ``torch``: a package whose torch verdict is ``torch-unstable`` (it reaches into libtorch
  internals and will break on another torch release), or whose libraries import shims newer
  than ``--target-version`` (``above-target-version``). torch itself implements those internals
  and is never gated: ``--env --check torch`` asks whether the packages *built on* torch keep to
  the stable ABI.
* ``abi3``: an ``abi3``-tagged extension that imports CPython API outside the stable ABI, or
  stable-ABI symbols newer than the version its tag promises (the tag promises something the
  binary does not keep; what ``abi3audit --strict`` fails), a module that claims ``abi3t``
  without the export hook an abi3t build has (``abi3t-without-export-hook``), or a torch-using
  package whose extension modules are not all abi3-compliant. Packages without torch and
  without an abi3 claim are out of scope, so that ``--env --check abi3`` gates the packages
  this tool is about rather than all of NumPy.
* ``metadata``: a packaging-metadata finding of severity error or warning (the torch
  requirement does not match what the libraries need, the wheel tags do not match the modules).
* ``load``: a library predicted not to load on the torch loading is predicted against (the
  scanned environment's torch, ``--torch PATH`` or ``--torch-version X.Y``): the
  ``load-failure`` and ``needs-newer-torch`` findings. Without such a torch there is nothing
  to gate.
* ``both``: ``torch`` and ``abi3``; ``all``: every gate.

``--check`` may be given several times; a package fails if it fails any gate given.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from torch_abi_audit.report import (
    CPythonLabel,
    CPythonVerdict,
    GateResult,
    GateStatus,
    PackageReport,
    TorchVerdict,
)
from torch_abi_audit.rules.findings import Finding


class CheckPolicy(StrEnum):
    """The policies ``--check`` accepts."""

    TORCH = "torch"
    ABI3 = "abi3"
    METADATA = "metadata"
    LOAD = "load"
    BOTH = "both"
    ALL = "all"


_GATES = {
    CheckPolicy.TORCH: {CheckPolicy.TORCH},
    CheckPolicy.ABI3: {CheckPolicy.ABI3},
    CheckPolicy.METADATA: {CheckPolicy.METADATA},
    CheckPolicy.LOAD: {CheckPolicy.LOAD},
    CheckPolicy.BOTH: {CheckPolicy.TORCH, CheckPolicy.ABI3},
    CheckPolicy.ALL: {CheckPolicy.TORCH, CheckPolicy.ABI3, CheckPolicy.METADATA, CheckPolicy.LOAD},
}


def gates(policies: Iterable[CheckPolicy]) -> frozenset[CheckPolicy]:
    """The elementary gates (torch, abi3, metadata) that ``policies`` switch on."""
    return frozenset(gate for policy in policies for gate in _GATES[policy])


#: Distributions that implement libtorch rather than build on it.
TORCH_IMPLEMENTATIONS = frozenset({"torch"})


def is_torch_itself(package: PackageReport) -> bool:
    """True for the torch distribution (or an unowned ``torch`` directory)."""
    name = package.distribution.name if package.distribution else package.name
    return name.lower().replace("_", "-") in TORCH_IMPLEMENTATIONS


@dataclass(frozen=True)
class _Reason:
    """Why a package fails a gate: in words, and the library and finding code behind it."""

    message: str
    library: str | None = None
    code: str | None = None


def _torch_reasons(package: PackageReport) -> list[_Reason]:
    held = [_finding_reason(package, f) for f in package.findings if f.code in TORCH_FINDINGS]
    if package.torch_verdict is not TorchVerdict.UNSTABLE or is_torch_itself(package):
        return held
    unstable = [lib for lib in package.libraries if lib.torch.uses_torch and not lib.torch.stable]
    names = ", ".join(lib.path.name for lib in unstable[:3])
    if len(unstable) > 3:
        names += f" and {len(unstable) - 3} more"
    library = package.library_name(unstable[0].path) if len(unstable) == 1 else None
    return [_Reason(f"uses libtorch internals outside the stable ABI ({names})", library), *held]


def _abi3_reasons(package: PackageReport) -> list[_Reason]:
    reasons = []
    tagged_violations = [
        ext
        for ext in package.extensions
        if ext.cpython_label is CPythonLabel.ABI3_TAGGED_VIOLATIONS
    ]
    for ext in tagged_violations:
        symbols = ", ".join(ext.cpython.violations[:3])
        more = len(ext.cpython.violations) - 3
        if more > 0:
            symbols += f" and {more} more"
        reasons.append(
            _Reason(
                f"{ext.path.name} is tagged abi3 but imports {symbols}",
                package.library_name(ext.path),
            )
        )
    for lib in package.libraries:
        cpython = lib.cpython
        if cpython.future_symbols:
            symbols = ", ".join(name for name, _ in cpython.future_symbols[:3])
            reasons.append(
                _Reason(
                    f"{lib.path.name} uses the Python {cpython.computed} ABI but is tagged for "
                    f"{cpython.baseline} ({symbols})",
                    package.library_name(lib.path),
                )
            )
    for finding in package.findings:
        if finding.code in ABI3_FINDINGS:
            reasons.append(
                _Reason(finding.message, _evidence_library(package, finding), finding.code)
            )
    uses_torch = package.torch_verdict in (TorchVerdict.STABLE, TorchVerdict.UNSTABLE)
    verdict = package.cpython_verdict
    if (
        uses_torch
        and not tagged_violations
        and verdict
        in (
            CPythonVerdict.NOT_ABI3,
            CPythonVerdict.MIXED,
        )
    ):
        reasons.append(_Reason(f"CPython ABI is {verdict} (not abi3-compliant)"))
    return reasons


#: Findings that say a library will not load; the ``load`` gate's, not the ``metadata`` one's.
LOAD_FINDINGS = frozenset({"load-failure", "needs-newer-torch"})
#: Findings about a broken abi3 promise that the per-library verdicts do not carry; the ``abi3``
#: gate fails them (as an error finding, the ``metadata`` gate does too, like
#: ``abi3-newer-than-tag``).
ABI3_FINDINGS = frozenset({"abi3t-without-export-hook"})


#: Findings about the torch side of a build that the ``torch`` gate fails (not ``metadata``).
TORCH_FINDINGS = frozenset({"above-target-version"})


def _evidence_library(package: PackageReport, finding: Finding) -> str | None:
    """The library a finding is about, if its evidence names exactly one."""
    named = package.finding_libraries(finding)
    return package.library_name(named[0].path) if len(named) == 1 else None


def _finding_reason(package: PackageReport, finding: Finding) -> _Reason:
    return _Reason(finding.message, _evidence_library(package, finding), finding.code)


def _metadata_reasons(package: PackageReport) -> list[_Reason]:
    return [
        _finding_reason(package, f)
        for f in package.findings
        if f.fails_check and f.code not in LOAD_FINDINGS | TORCH_FINDINGS
    ]


def _load_reasons(package: PackageReport) -> list[_Reason]:
    return [_finding_reason(package, f) for f in package.findings if f.code in LOAD_FINDINGS]


_REASONS = {
    CheckPolicy.TORCH: _torch_reasons,
    CheckPolicy.ABI3: _abi3_reasons,
    CheckPolicy.METADATA: _metadata_reasons,
    CheckPolicy.LOAD: _load_reasons,
}


def gate_results(
    packages: Iterable[PackageReport], policies: Iterable[CheckPolicy]
) -> tuple[GateResult, ...]:
    """Every violation of the gates ``policies`` switch on, one per package, gate and reason,
    in package order (what the renderers show and the exit code is decided on)."""
    active = [gate for gate in _REASONS if gate in gates(policies)]
    return tuple(
        GateResult(
            str(gate),
            package.name,
            GateStatus.FAILED,
            reason.message,
            reason.library,
            reason.code,
            root=package.root,
        )
        for package in packages
        for gate in active
        for reason in _REASONS[gate](package)
    )


def violation_lines(failed: Sequence[GateResult], policies: Iterable[CheckPolicy]) -> list[str]:
    """The summary printed on stderr when a gate fails: one line per package and its reasons
    (as built: names in them come from the audited input and are escaped where printed)."""
    named = ", ".join(str(p) for p in dict.fromkeys(policies))
    packages = list(dict.fromkeys(r.package for r in failed))
    lines = [f"FAIL: --check {named} found {len(packages)} non-compliant package(s):"]
    for package in packages:
        reasons = "; ".join(
            f"{r.code}: {r.message}" if r.code and r.gate != CheckPolicy.ABI3 else r.message
            for r in failed
            if r.package == package
        )
        lines.append(f"  {package}: {reasons}")
    return lines
