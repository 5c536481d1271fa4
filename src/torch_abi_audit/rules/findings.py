"""Findings: structured statements about a package that the verdict labels do not carry.

A finding has a stable ``code`` (what scripts match on), a ``severity``, a one-sentence
``message`` and ``evidence`` (the facts it rests on, JSON-ready). ``--check metadata`` fails on
errors and warnings; information never fails a gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    """How much a finding matters."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


#: Severities that fail ``--check``.
FAILING = frozenset({Severity.ERROR, Severity.WARNING})

Evidence = dict[str, str | list[str] | None]


@dataclass(frozen=True)
class Finding:
    """One statement about a package, with the evidence behind it."""

    code: str
    severity: Severity
    message: str
    evidence: Evidence = field(default_factory=dict, hash=False, compare=True)

    @property
    def fails_check(self) -> bool:
        """True for errors and warnings."""
        return self.severity in FAILING
