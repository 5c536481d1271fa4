"""The ``--check`` gate results, as table lines and as the JSON ``gates`` object.

Pure functions of a :class:`~torch_abi_audit.gate_report.GateReport`: every violation is
listed with its status (failed, allowed with the entry that allows it, ignored), then the
baseline entries that fail the gate themselves (stale, expired).
"""

from __future__ import annotations

from typing import Any

from torch_abi_audit.gate_report import (
    AllowEntry,
    GateReport,
    GateResult,
    GateStatus,
    expired_message,
    stale_message,
)
from torch_abi_audit.renderers.escape import terminal_lines

JSONObject = dict[str, Any]


def _entry_note(entry: AllowEntry) -> str:
    expires = f"; expires {entry.expires}" if entry.expires else ""
    return f"{entry.where}: {entry.reason}{expires}"


def _result_line(result: GateResult, package_width: int, library_width: int) -> str:
    line = (
        f"  [{result.status:<7}] {result.gate:<8}  {result.package:<{package_width}}  "
        f"{result.library or '-':<{library_width}}  {result.code}"
    )
    if result.status is GateStatus.ALLOWED and result.allowed_by is not None:
        line += f"  ({_entry_note(result.allowed_by)})"
    elif result.status is GateStatus.IGNORED:
        line += "  (--ignore)"
    return line


def gate_lines(report: GateReport) -> list[str]:
    """The ``Gates:`` section printed after the report when ``--check`` is given (as built:
    :func:`format_gates` escapes it for the terminal)."""
    if report.failed or report.stale or report.expired:
        verdict = "FAILED"
    elif report.nothing_audited or report.unaudited:
        verdict = "INCOMPLETE (not everything asked for was audited)"
    else:
        verdict = "passed"
    gates = ", ".join(str(gate) for gate in report.gates)
    counts = dict.fromkeys(GateStatus, 0)
    for result in report.results:
        counts[result.status] += 1
    summary = ", ".join(f"{count} {status}" for status, count in counts.items())
    lines = [f"Gates: {gates}: {verdict} ({summary})"]
    package_width = max((len(r.package) for r in report.results), default=0)
    library_width = max((len(r.library or "-") for r in report.results), default=0)
    lines += [_result_line(r, package_width, library_width) for r in report.results]
    lines += [f"  [stale  ] {stale_message(entry)}" for entry in report.stale]
    lines += [f"  [expired] {expired_message(entry)}" for entry in report.expired]
    lines += [
        f"  [nothing] {item.target}: nothing audited: {item.reason}"
        for item in report.nothing_audited
    ]
    lines += [f"  [error  ] {item.target}: not audited: {item.reason}" for item in report.unaudited]
    return lines


def format_gates(report: GateReport) -> str:
    """:func:`gate_lines` as text for the terminal (every name in it escaped)."""
    return terminal_lines(gate_lines(report))


def _entry_object(entry: AllowEntry) -> JSONObject:
    return {
        "source": str(entry.source) if entry.source else None,
        "index": entry.index,
        "library": entry.library,
        "package": entry.package,
        "check": entry.check,
        "reason": entry.reason,
        "expires": entry.expires.isoformat() if entry.expires else None,
    }


def gate_object(report: GateReport | None) -> JSONObject | None:
    """The JSON ``gates`` object (``None`` without ``--check``)."""
    if report is None:
        return None
    return {
        "checked": [str(gate) for gate in report.gates],
        "passed": report.passed,
        "results": [
            {
                "gate": str(result.gate),
                "package": result.package,
                "library": result.library,
                "code": result.code,
                "status": str(result.status),
                "message": result.message,
                "allowed_by": _entry_object(result.allowed_by) if result.allowed_by else None,
            }
            for result in report.results
        ],
        "stale": [
            {**_entry_object(entry), "message": stale_message(entry)} for entry in report.stale
        ],
        "expired": [
            {**_entry_object(entry), "message": expired_message(entry)} for entry in report.expired
        ],
        "unchecked": [_entry_object(entry) for entry in report.unchecked],
        "nothing_audited": [
            {"target": item.target, "reason": item.reason} for item in report.nothing_audited
        ],
        "unaudited": [{"target": item.target, "reason": item.reason} for item in report.unaudited],
    }
