"""``--check`` gates: which findings fail which gate, with exceptions, and the failure text.

A gate fails on the findings whose code the registry (:mod:`torch_abi_audit.rules.registry`)
lists for it:

* ``torch``: ``torch-unstable`` — a library reaches into libtorch internals and will break on
  another torch release (torch itself implements them and is never gated: ``--env --check
  torch`` asks whether the packages *built on* torch keep to the stable ABI); and, with
  ``--target-version``, ``above-target-version`` — shims newer than the promised release.
* ``abi3``: an ``abi3``-tagged extension that imports CPython API outside the stable ABI
  (``abi3-tagged-violations``, what ``abi3audit --strict`` fails), or stable-ABI symbols newer
  than its tag promises (``abi3-newer-than-tag``), a module that claims ``abi3t`` without the
  export hook, or a torch-using package whose extension modules are not all abi3
  (``not-abi3-compliant``). Packages without torch and without an abi3 claim are out of scope,
  so that ``--env --check abi3`` gates the packages this tool is about rather than all of NumPy.
* ``metadata``: the packaging findings (torch requirement, wheel tags, bundled interpreter,
  deprecated shims) of severity error or warning.
* ``load``: a library predicted not to load (``load-failure``, ``needs-newer-torch``); without
  a torch to predict against there is nothing to gate.
* ``both``: ``torch`` and ``abi3``; ``all``: every gate.

``--check`` takes comma lists and may be repeated. A violation's code given to ``--ignore`` is
ignored; one covered by a baseline entry is allowed; both are still reported, with their
status. Baseline entries that cover nothing, or are past their date, fail the gate.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from torch_abi_audit.baseline import entry_gates, entry_matches
from torch_abi_audit.gate_report import AllowEntry, expired_message, stale_message
from torch_abi_audit.report import AuditResult, GateResult, GateStatus, PackageReport
from torch_abi_audit.rules.findings import Finding, name_list
from torch_abi_audit.rules.registry import FINDING_CODES, Gate


class CheckPolicy(StrEnum):
    """The policies ``--check`` accepts."""

    TORCH = "torch"
    ABI3 = "abi3"
    METADATA = "metadata"
    LOAD = "load"
    BOTH = "both"
    ALL = "all"


_GATES = {
    CheckPolicy.TORCH: (Gate.TORCH,),
    CheckPolicy.ABI3: (Gate.ABI3,),
    CheckPolicy.METADATA: (Gate.METADATA,),
    CheckPolicy.LOAD: (Gate.LOAD,),
    CheckPolicy.BOTH: (Gate.TORCH, Gate.ABI3),
    CheckPolicy.ALL: tuple(Gate),
}


def parse_policies(text: str) -> list[CheckPolicy]:
    """The policies in a comma list (``torch,abi3``); raises :class:`ValueError` naming an
    unknown one."""
    policies = []
    for part in text.split(","):
        name = part.strip()
        try:
            policies.append(CheckPolicy(name))
        except ValueError:
            known = ", ".join(str(p) for p in CheckPolicy)
            raise ValueError(f"invalid choice: {name!r} (choose from {known})") from None
    return policies


def policy_argument(text: str) -> list[CheckPolicy]:
    """:func:`parse_policies` as an argparse ``type``."""
    try:
        return parse_policies(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def gates(policies: Iterable[CheckPolicy]) -> tuple[Gate, ...]:
    """The elementary gates ``policies`` switch on, in the registry's order."""
    wanted = {gate for policy in policies for gate in _GATES[CheckPolicy(policy)]}
    return tuple(gate for gate in Gate if gate in wanted)


def _package_names(package: PackageReport) -> tuple[str, ...]:
    names = [package.name]
    if package.distribution is not None and package.distribution.name:
        names.append(package.distribution.name)
    return tuple(names)


def _is_expired(entry: AllowEntry, today: date) -> bool:
    return entry.expires is not None and today >= entry.expires


@dataclass(frozen=True)
class GateVerdict:
    """What the gates found: every violation with its status, and the baseline entries that
    fail the gates themselves (``stale``, ``expired``) or were not judged (``unchecked``)."""

    results: tuple[GateResult, ...] = ()
    stale: tuple[AllowEntry, ...] = ()
    expired: tuple[AllowEntry, ...] = ()
    unchecked: tuple[AllowEntry, ...] = ()


def _justification(entry: AllowEntry) -> str:
    expires = f"; expires {entry.expires}" if entry.expires else ""
    return f"{entry.where}: {entry.reason}{expires}"


def _judged(
    package: PackageReport,
    gate: Gate,
    found: Finding,
    library: str | None,
    status: tuple[GateStatus, AllowEntry | None],
) -> GateResult:
    state, entry = status
    if state is GateStatus.ALLOWED and entry is not None:
        justification: str | None = _justification(entry)
    else:
        justification = "--ignore" if state is GateStatus.IGNORED else None
    return GateResult(
        str(gate),
        package.name,
        state,
        found.message,
        library,
        found.code,
        justification,
        package.root,
        entry,
    )


def evaluate(
    packages: Iterable[PackageReport],
    checked: Sequence[Gate],
    *,
    ignore: Iterable[str] = (),
    allow: Sequence[AllowEntry] = (),
    today: date | None = None,
) -> GateVerdict:
    """Every violation of the ``checked`` gates in ``packages``, with its status, and the
    baseline entries that are stale or expired (those concerning only gates not checked are
    ``unchecked``, not judged)."""
    today = today or date.today()
    ignored = frozenset(ignore)
    relevant = [entry for entry in allow if entry_gates(entry) & set(checked)]
    expired = [entry for entry in relevant if _is_expired(entry, today)]
    used: set[AllowEntry] = set()
    results = []
    for package in packages:
        names = _package_names(package)
        for gate in checked:  # by gate, then in the order of the findings
            for found in package.findings:
                declared = FINDING_CODES.get(found.code)
                if declared is None or gate not in declared.gates:
                    continue
                for library in found.libraries or (None,):
                    matching = [
                        entry
                        for entry in relevant
                        if entry_matches(entry, gate, found.code, names, library)
                    ]
                    used.update(matching)
                    valid = [entry for entry in matching if entry not in expired]
                    if found.code in ignored:
                        status: tuple[GateStatus, AllowEntry | None] = (GateStatus.IGNORED, None)
                    elif valid:
                        status = (GateStatus.ALLOWED, valid[0])
                    else:
                        status = (GateStatus.FAILED, None)
                    results.append(_judged(package, gate, found, library, status))
    return GateVerdict(
        results=tuple(results),
        stale=tuple(e for e in relevant if e not in used and e not in expired),
        expired=tuple(expired),
        unchecked=tuple(entry for entry in allow if entry not in relevant),
    )


def _failure_lines(report: AuditResult) -> list[str]:
    """One line per failed finding and gate, naming the libraries that fail it."""
    groups: dict[tuple[str, str, str | None, str], list[GateResult]] = {}
    for result in report.failed:
        key = (result.package, result.gate, result.code, result.message)
        groups.setdefault(key, []).append(result)
    lines = []
    for (package, gate, code, message), results in groups.items():
        libraries = [r.library for r in results if r.library]
        where = f" ({name_list(libraries)})" if libraries else ""
        lines.append(f"  {package}: [{gate}] {code}{where}: {message}")
    return lines


def failure_lines(report: AuditResult, policies: Iterable[CheckPolicy]) -> list[str]:
    """The summary printed on stderr when a gate fails (none when every gate passed), as built:
    the names in it come from the audited input and are escaped where they are printed."""
    if not report.gates_failed:
        return []
    named = ",".join(str(p) for p in dict.fromkeys(policies))
    failing_packages = list(dict.fromkeys(r.package for r in report.failed))
    if failing_packages:
        lines = [f"FAIL: --check {named} found {len(failing_packages)} non-compliant package(s):"]
    else:
        lines = [f"FAIL: --check {named}: the baseline is out of date:"]
    lines += _failure_lines(report)
    lines += [f"  {stale_message(entry)}" for entry in report.stale]
    lines += [f"  {expired_message(entry)}" for entry in report.expired]
    allowed = sum(1 for r in report.gate_results if r.status is GateStatus.ALLOWED)
    ignored = sum(1 for r in report.gate_results if r.status is GateStatus.IGNORED)
    if allowed or ignored:
        lines.append(
            f"  ({allowed} violation(s) allowed by the baseline, {ignored} ignored: the report "
            "lists them)"
        )
    return lines
