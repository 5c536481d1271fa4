"""The ``--check`` gate results, as the table's ``Gates:`` section and the JSON ``gates`` object.

Pure functions of an :class:`~torch_abi_audit.report.AuditResult`: every violation is listed
with its status (failed, allowed with the entry that allows it, ignored), then the baseline
entries that fail the gate themselves (stale, expired), the targets that gave nothing to judge
and the packages that could not be read.
"""

from __future__ import annotations

from typing import Any

from torch_abi_audit.gate_report import AllowEntry, expired_message, stale_message
from torch_abi_audit.renderers.escape import terminal_lines
from torch_abi_audit.report import AuditResult, GateResult, GateStatus

JSONObject = dict[str, Any]


def _result_line(result: GateResult, package_width: int, library_width: int) -> str:
    line = (
        f"  [{result.status:<7}] {result.gate:<8}  {result.package:<{package_width}}  "
        f"{result.library or '-':<{library_width}}  {result.code}"
    )
    if result.justification and result.status is not GateStatus.FAILED:
        line += f"  ({result.justification})"
    return line


def verdict(result: AuditResult) -> str:
    """``passed``, ``FAILED``, or ``INCOMPLETE`` when something asked for was not audited."""
    if result.gates_failed:
        return "FAILED"
    if result.nothing_audited or result.has_error:
        return "INCOMPLETE (not everything asked for was audited)"
    return "passed"


def gate_lines(result: AuditResult) -> list[str]:
    """The ``Gates:`` section printed after the report when ``--check`` is given (as built:
    :func:`format_gates` escapes it for the terminal)."""
    counts = dict.fromkeys(GateStatus, 0)
    for gate in result.gate_results:
        counts[gate.status] += 1
    summary = ", ".join(f"{count} {status}" for status, count in counts.items())
    lines = [f"Gates: {', '.join(result.checks)}: {verdict(result)} ({summary})"]
    package_width = max((len(r.package) for r in result.gate_results), default=0)
    library_width = max((len(r.library or "-") for r in result.gate_results), default=0)
    lines += [_result_line(r, package_width, library_width) for r in result.gate_results]
    lines += [f"  [stale  ] {stale_message(entry)}" for entry in result.stale]
    lines += [f"  [expired] {expired_message(entry)}" for entry in result.expired]
    lines += [
        f"  [nothing] {item.target}: nothing audited: {item.reason}"
        for item in result.nothing_audited
    ]
    lines += [f"  [error  ] {item.target}: not audited: {item.reason}" for item in result.unaudited]
    return lines


def format_gates(result: AuditResult) -> str:
    """:func:`gate_lines` as text for the terminal (every name in it escaped)."""
    return terminal_lines(gate_lines(result))


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


def gate_object(result: AuditResult) -> JSONObject | None:
    """The JSON ``gates`` object (``None`` without ``--check``)."""
    if not result.checks:
        return None
    return {
        "checked": list(result.checks),
        "passed": result.gates_passed,
        "results": [
            {
                "gate": gate.gate,
                "package": gate.package,
                "library": gate.library,
                "code": gate.code,
                "status": str(gate.status),
                "message": gate.message,
                "allowed_by": _entry_object(gate.allowed_by) if gate.allowed_by else None,
            }
            for gate in result.gate_results
        ],
        "stale": [
            {**_entry_object(entry), "message": stale_message(entry)} for entry in result.stale
        ],
        "expired": [
            {**_entry_object(entry), "message": expired_message(entry)} for entry in result.expired
        ],
        "unchecked": [_entry_object(entry) for entry in result.unchecked],
        "nothing_audited": [
            {"target": item.target, "reason": item.reason} for item in result.nothing_audited
        ],
        "unaudited": [{"target": item.target, "reason": item.reason} for item in result.unaudited],
    }
