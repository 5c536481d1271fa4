"""Baseline entries and unaudited targets, as the gate results carry them.

A *violation* (:class:`torch_abi_audit.report.GateResult`) is one finding of a code a checked
gate lists, for one library it names (or for the package, when the finding is about the
package as a whole), with a status: ``failed``, ``allowed`` (an :class:`AllowEntry` covers it)
or ``ignored`` (its code was given to ``--ignore``). Entries that cover nothing (stale) or are
past their date (expired) fail the gate too. This module sits below the report, which refers
to its types; :mod:`torch_abi_audit.checks` judges, :mod:`torch_abi_audit.baseline` reads and
writes entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path


@dataclass(frozen=True)
class AllowEntry:
    """One known exception (``[[allow]]`` in a baseline file or the configuration).

    It covers the violations of ``check`` (a gate name or a finding code) in the libraries
    whose path inside the distribution matches the glob ``library`` and/or in the package
    named ``package``. ``source`` and ``index`` say where it was written (for messages).
    """

    check: str
    reason: str
    library: str | None = None
    package: str | None = None
    expires: date | None = None
    source: Path | None = None
    index: int = 0

    @property
    def where(self) -> str:
        """``baseline.toml, entry 3``."""
        return f"{self.source.name}, entry {self.index}" if self.source else f"entry {self.index}"

    @property
    def label(self) -> str:
        """``baseline.toml, entry 3 (library "pkg/_C.so", check "torch")``."""
        subject = [f'library "{self.library}"'] if self.library else []
        subject += [f'package "{self.package}"'] if self.package else []
        subject.append(f'check "{self.check}"')
        return f"{self.where} ({', '.join(subject)})"


@dataclass(frozen=True)
class NothingAudited:
    """A requested target that gave nothing to judge under ``--check`` (an operational error:
    a gate must not pass on a typo or an empty build)."""

    target: str
    reason: str


def stale_message(entry: AllowEntry) -> str:
    """What a stale entry's failure says."""
    return (
        f"stale baseline entry {entry.label}: it matches no current violation (fixed, or the "
        "library is gone): remove it"
    )


def expired_message(entry: AllowEntry) -> str:
    """What an expired entry's failure says."""
    return (
        f"expired baseline entry {entry.label}: expired on {entry.expires} "
        f"(reason: {entry.reason}): fix the violation, or renew the entry with a new date"
    )
