"""What the ``--check`` gates decided: result types, as frozen dataclasses.

A *violation* is one finding of a code a checked gate lists, for one library it names (or for
the package, when the finding is about the package as a whole). Each gets a status: ``failed``
(it fails the gate), ``allowed`` (a baseline entry covers it), ``ignored`` (its code was given
to ``--ignore``). Baseline entries that cover nothing (stale) or are past their date (expired)
fail the gate too. Renderers read these; :mod:`torch_abi_audit.checks` makes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path

from torch_abi_audit.rules.registry import Gate


class GateStatus(StrEnum):
    """What became of one violation."""

    FAILED = "failed"
    ALLOWED = "allowed"
    IGNORED = "ignored"


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
class GateResult:
    """One violation of a gate: the package, the library (``None``: the package as a whole),
    the finding's code and message, and its status (with the entry that allowed it)."""

    gate: Gate
    package: str
    library: str | None
    code: str
    message: str
    status: GateStatus
    allowed_by: AllowEntry | None = None


@dataclass(frozen=True)
class NothingAudited:
    """A requested target that gave nothing to judge under ``--check`` (an operational error:
    a gate must not pass on a typo or an empty build)."""

    target: str
    reason: str


@dataclass(frozen=True)
class GateReport:
    """The gates checked, every violation with its status, and the baseline entries that fail
    the gate themselves: ``stale`` (they cover no current violation) and ``expired``.
    ``unchecked`` entries concern only gates this run did not check: not judged.
    ``nothing_audited`` are the targets that gave nothing to judge, ``unaudited`` the packages
    (or directories) that could not be read: the gates cannot pass on them (exit 2)."""

    gates: tuple[Gate, ...]
    results: tuple[GateResult, ...] = ()
    stale: tuple[AllowEntry, ...] = ()
    expired: tuple[AllowEntry, ...] = ()
    unchecked: tuple[AllowEntry, ...] = ()
    nothing_audited: tuple[NothingAudited, ...] = ()
    unaudited: tuple[NothingAudited, ...] = ()

    @property
    def failed(self) -> tuple[GateResult, ...]:
        """The violations that fail their gate."""
        return tuple(r for r in self.results if r.status is GateStatus.FAILED)

    @property
    def passed(self) -> bool:
        """True when no violation failed, every baseline entry is current, and every target
        was read and audited something."""
        return not (
            self.failed or self.stale or self.expired or self.nothing_audited or self.unaudited
        )


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
