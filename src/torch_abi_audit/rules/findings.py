"""Findings: structured statements about a package that the verdict labels do not carry.

A finding has a stable ``code`` (what scripts match on, declared once in
:mod:`torch_abi_audit.rules.registry` with its default severity and gates), a ``severity``, a
one-sentence ``message``, ``evidence`` (the facts it rests on, JSON-ready) and the
``libraries`` it is about (paths inside the distribution; none for the package as a whole).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    """How much a finding matters."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


#: Severities that call for attention (the table expands packages that have them).
FAILING = frozenset({Severity.ERROR, Severity.WARNING})

Evidence = dict[str, str | list[str] | None]


@dataclass(frozen=True)
class Finding:
    """One statement about a package, with the evidence behind it."""

    code: str
    severity: Severity
    message: str
    evidence: Evidence = field(default_factory=dict, hash=False, compare=True)
    libraries: tuple[str, ...] = ()

    @property
    def fails_check(self) -> bool:
        """True for errors and warnings (which gates fail is the registry's to say)."""
        return self.severity in FAILING


def name_list(items: Sequence[str], shown: int = 3) -> str:
    """``a, b, c and 2 more``: the first ``shown`` items, then how many were left out."""
    text = ", ".join(items[:shown])
    return text + (f" and {len(items) - shown} more" if len(items) > shown else "")
