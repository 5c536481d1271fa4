"""A port's to-do list: each unstable libtorch entity a package uses, once, with what replaces it.

A library's unstable imports repeat across a package (``c10::detail::torchCheckFail`` from every
``TORCH_CHECK`` of fifteen libraries) and, one by one, say little. :func:`plan_migration` groups
them by the libtorch entity they belong to (:meth:`TorchRules.unstable_entity`: the entity a C++
name names, the libtorch type a signature passes, the C symbol itself), counts occurrences (one
per library importing it) and libraries, looks up what PyTorch says replaces each
(:mod:`torch_abi_audit.rules.replacements`), ranks them by how much of the port they are, and says
what using the replacements means for the oldest torch the package can load on: the newest
release among today's shims and the replacements' ``since``.

Inputs are plain facts (library name, torch analysis), so the same plan serves wheels, installed
packages and saved reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from packaging.version import Version

from torch_abi_audit.rules.replacements import Advice, ReplacementTable
from torch_abi_audit.rules.torch_abi import TorchAnalysis, TorchRules, UnstableReason
from torch_abi_audit.rules.torch_table import TorchAbiTable


@dataclass(frozen=True)
class EntityUse:
    """One libtorch entity a package uses outside the stable ABI.

    ``entity`` is how it is shown (``c10::detail::torchCheckFail``, ``aten::select.int``);
    ``occurrences`` the unstable imports that belong to it, one per library and symbol;
    ``libraries`` the libraries importing it; ``symbols`` its distinct imported names;
    ``in_signatures`` true when it is a libtorch type the package's own functions pass (not an
    import of libtorch code); ``advice`` what replaces it.
    """

    entity: str
    advice: Advice
    occurrences: int
    libraries: tuple[str, ...]
    symbols: tuple[str, ...]
    in_signatures: bool = False


@dataclass(frozen=True)
class MigrationPlan:
    """Every unstable entity of a package, ranked (most occurrences first).

    ``occurrences`` counts all unstable imports, ``covered`` those whose entity has a
    replacement. ``current_floor`` is the oldest torch today's shim imports allow (``None``
    without shims); ``floor_after`` the oldest once every replacement is used, and
    ``raised_by`` the replacements newer than today's floor that set it.
    """

    entities: tuple[EntityUse, ...] = ()
    occurrences: int = 0
    covered: int = 0
    current_floor: str | None = None
    floor_after: str | None = None
    raised_by: tuple[tuple[str, str], ...] = ()

    @property
    def coverage(self) -> float:
        """The share of unstable imports whose entity has a replacement (1.0 when none)."""
        return self.covered / self.occurrences if self.occurrences else 1.0

    @property
    def replaceable(self) -> tuple[EntityUse, ...]:
        """The entities with a replacement."""
        return tuple(e for e in self.entities if e.advice.has_replacement)


def plan_migration(
    libraries: Sequence[tuple[str, TorchAnalysis]],
    rules: TorchRules,
    replacements: ReplacementTable,
    shims: TorchAbiTable,
) -> MigrationPlan:
    """The plan for a package whose libraries (name, torch analysis) are given."""
    found: dict[str, tuple[Advice, list[str], list[str], set[str], bool]] = {}
    total = 0
    for name, torch in libraries:
        for unstable in torch.unstable_details:
            total += 1
            scope = rules.unstable_entity(unstable)
            advice = replacements.lookup(scope, shims)
            signature = unstable.reason is UnstableReason.SIGNATURE
            key = advice.entity + (" (in signatures)" if signature else "")
            _, occurrences, libs, symbols, _ = found.setdefault(
                key, (advice, [], [], set(), signature)
            )
            occurrences.append(name)
            if name not in libs:
                libs.append(name)
            symbols.add(unstable.symbol)
    uses = [
        EntityUse(key, advice, len(occ), tuple(libs), tuple(sorted(symbols)), signature)
        for key, (advice, occ, libs, symbols, signature) in found.items()
    ]
    uses.sort(key=lambda u: (-u.occurrences, -len(u.libraries), u.entity))
    covered = sum(u.occurrences for u in uses if u.advice.has_replacement)
    current = _newest(a.min_torch_version for _, a in libraries)
    raised = _raised_by(uses, current)
    after = _newest([current, *(since for _, since in raised)])
    return MigrationPlan(tuple(uses), total, covered, current, after, raised)


def _newest(versions: Iterable[str | None]) -> str | None:
    known = [Version(v) for v in versions if v]
    return str(max(known)) if known else None


def _raised_by(uses: Sequence[EntityUse], floor: str | None) -> tuple[tuple[str, str], ...]:
    """(replacement, since) for every replacement newer than ``floor``, newest first."""
    newer: dict[str, str] = {}
    for use in uses:
        since = use.advice.since
        replacement = use.advice.replacement
        if replacement is None or since is None:
            continue
        if floor is None or Version(since) > Version(floor):
            # torch_call_dispatcher("aten::add", "Tensor"): the shim is what needs a release.
            newer.setdefault(replacement.split("(", 1)[0], since)
    return tuple(sorted(newer.items(), key=lambda item: (Version(item[1]), item[0]), reverse=True))
