"""Two audits of one package compared: how far along a port is, and what regressed.

:func:`diff_packages` takes the reports of an old and a new build of a package (wheels,
directories, downloads or saved JSON reports — all are :class:`PackageReport` by then) and says,
library by library, what changed for torch and CPython: libraries added and removed, verdict
changes, unstable imports removed and added grouped by the libtorch entity they belong to, shims
gained and lost, min-torch changes; for the package, the torch and CPython verdicts, the torch
floor, and findings fixed and introduced. :attr:`PackageDiff.regressions` lists what got worse,
each under the ``--check`` gate it belongs to.

Libraries are matched by their path in the distribution, then — for those left — by that path
with the parts a rebuild changes taken out (a Python tag ``.cpython-311-x86_64-linux-gnu`` or
``.abi3``, an auditwheel/delvewheel hash ``-915b4635``, a version ``.so.1.2``), then by that
file name alone, then by the file name without trailing digits (``libfoo_core8`` ~
``libfoo_core``); a looser key only pairs libraries that are alone with it on both sides.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from packaging.version import InvalidVersion, Version

from torch_abi_audit.checks import CheckPolicy
from torch_abi_audit.paths import relative_or_name
from torch_abi_audit.report import (
    CPythonLabel,
    CPythonVerdict,
    ExtensionReport,
    PackageReport,
    TorchLabel,
    TorchVerdict,
)
from torch_abi_audit.rules.findings import Finding, name_list
from torch_abi_audit.rules.registry import finding_gates, restates_verdict
from torch_abi_audit.rules.replacements import Advice, ReplacementTable
from torch_abi_audit.rules.torch_abi import TorchRules, UnstableReason, torch_rules
from torch_abi_audit.rules.torch_table import TorchAbiTable


class LibraryStatus(StrEnum):
    """How a library fared between the two builds."""

    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class EntityChange:
    """Unstable imports of one libtorch entity that a library gained or lost: the entity (as
    the migration plan shows it), its imported names (demangled) and what replaces it."""

    entity: str
    symbols: tuple[str, ...]
    advice: Advice


@dataclass(frozen=True)
class Side:
    """One library as one build has it (``None`` fields: not audited)."""

    path: str
    torch_label: str
    cpython_label: str | None
    min_torch: str | None
    unstable: int
    stable_shims: int
    error: str | None = None


@dataclass(frozen=True)
class LibraryChange:
    """One library compared. ``old``/``new`` are ``None`` for an added/removed library;
    ``matched_by`` says how the two were paired (``path``, ``normalized path``, ``file
    name``, ``file name without digits``). ``removed``/``added`` are the unstable imports it
    lost and gained, by entity; ``entities_gained`` the entities it did not use at all before
    (a rebuild that only mangles a name differently gains none)."""

    status: LibraryStatus
    old: Side | None
    new: Side | None
    matched_by: str | None = None
    removed: tuple[EntityChange, ...] = ()
    added: tuple[EntityChange, ...] = ()
    shims_added: tuple[str, ...] = ()
    shims_removed: tuple[str, ...] = ()
    cpython_added: tuple[str, ...] = ()
    cpython_removed: tuple[str, ...] = ()
    entities_gained: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The new path, else the old one."""
        side = self.new or self.old
        assert side is not None
        return side.path


@dataclass(frozen=True)
class PackageSummary:
    """A build of the package as a whole: how it is named in the output and its roll-ups;
    ``root`` is where it was read (a wheel, a directory, a saved report's root), ``in_wheel``
    whether its libraries are members of the wheel at ``root``."""

    label: str
    name: str
    version: str | None
    torch_verdict: str
    cpython_verdict: str
    min_torch: str | None
    libraries: int
    unstable: int
    root: Path = Path()
    in_wheel: bool = False


@dataclass(frozen=True)
class Regression:
    """Something the new build does worse, the ``--check`` gate it fails, and the library of
    the new build it is about (``None``: the package)."""

    gate: CheckPolicy
    reason: str
    library: str | None = None


@dataclass(frozen=True)
class PackageDiff:
    """The comparison of two builds of a package (see the module docstring).

    ``checks`` are the gates ``--check`` asked for (what :attr:`failed` judges by) and
    ``errors`` what could not be read on either side (exit code 2); the command sets both.
    """

    old: PackageSummary
    new: PackageSummary
    libraries: tuple[LibraryChange, ...]
    findings_fixed: tuple[Finding, ...] = ()
    findings_introduced: tuple[Finding, ...] = ()
    regressions: tuple[Regression, ...] = field(default=())
    checks: tuple[CheckPolicy, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def failed(self) -> tuple[Regression, ...]:
        """The regressions that fail the gates asked for (:attr:`checks`): exit code 1."""
        return self.failing(self.checks) if self.checks else ()

    def failing(self, policies: Iterable[CheckPolicy]) -> tuple[Regression, ...]:
        """The regressions that fail any of ``policies`` (``all`` and ``both`` as for the
        audit's ``--check``)."""
        from torch_abi_audit.checks import gates

        active = {CheckPolicy(gate) for gate in gates(policies)}
        return tuple(r for r in self.regressions if r.gate in active)

    @property
    def unstable_removed(self) -> int:
        """Unstable imports the new build no longer has (removed libraries' included)."""
        return sum(len(e.symbols) for lib in self.libraries for e in lib.removed)

    @property
    def unstable_added(self) -> int:
        """Unstable imports the new build gained (added libraries' included)."""
        return sum(len(e.symbols) for lib in self.libraries for e in lib.added)


# -- matching libraries ------------------------------------------------------------------------

_PYTHON_TAG = re.compile(
    r"\.(?:cpython-\d+\w*(?:-[\w]+)*|pypy\d+-pp\d+(?:-[\w]+)*|cp\d+-[\w]+|abi3t?)"
    r"(?=\.(?:so|pyd|dylib|dll)$)"
)
_HASH = re.compile(r"-[0-9a-f]{8}(?:[0-9a-f]{24})?(?=\.(?:so|dylib|dll|pyd)\b)")
_SO_VERSION = re.compile(r"(\.so|\.dylib|\.dll|\.pyd)(?:\.\d+)+$")
_DYLIB_VERSION = re.compile(r"(?:\.\d+)+(\.dylib)$")
_TRAILING_DIGITS = re.compile(r"[-_.]?\d+(?=\.(?:so|pyd|dylib|dll)$)")


def normalized_name(path: str) -> str:
    """``path`` without what a rebuild changes: Python tags, auditwheel/delvewheel hashes,
    shared-library versions (``torchaudio/lib/_torchaudio.cpython-311-x86_64-linux-gnu.so`` ->
    ``torchaudio/lib/_torchaudio.so``; ``libz-915b4635.so.1`` -> ``libz.so``)."""
    directory, _, base = path.replace("\\", "/").rpartition("/")
    base = _DYLIB_VERSION.sub(r"\1", _SO_VERSION.sub(r"\1", base))
    base = _HASH.sub("", _PYTHON_TAG.sub("", base))
    return f"{directory}/{base}" if directory else base


def _file_name(path: str) -> str:
    return normalized_name(path).rpartition("/")[2]


def _family(path: str) -> str:
    return _TRAILING_DIGITS.sub("", _file_name(path))


_MATCHERS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("path", lambda p: p),
    ("normalized path", normalized_name),
    ("file name", _file_name),
    ("file name without digits", _family),
)


def match_libraries(
    old: Sequence[str], new: Sequence[str]
) -> tuple[list[tuple[str, str, str]], list[str], list[str]]:
    """Pair the library paths of two builds: ``(pairs (old, new, how), only old, only new)``.

    Each key (see :data:`_MATCHERS`) pairs the libraries left unpaired that are alone with it
    on both sides.
    """
    left, right = list(old), list(new)
    pairs: list[tuple[str, str, str]] = []
    for how, key in _MATCHERS:
        old_keys: dict[str, list[str]] = {}
        new_keys: dict[str, list[str]] = {}
        for path in left:
            old_keys.setdefault(key(path), []).append(path)
        for path in right:
            new_keys.setdefault(key(path), []).append(path)
        for value, olds in old_keys.items():
            news = new_keys.get(value, [])
            if len(olds) == 1 and len(news) == 1:
                pairs.append((olds[0], news[0], how))
        paired_old = {p[0] for p in pairs}
        paired_new = {p[1] for p in pairs}
        left = [p for p in left if p not in paired_old]
        right = [p for p in right if p not in paired_new]
    return pairs, left, right


# -- comparing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tables:
    rules: TorchRules
    replacements: ReplacementTable
    shims: TorchAbiTable


def _side(path: str, lib: ExtensionReport) -> Side:
    audited = lib.error is None and lib.skipped is None
    return Side(
        path,
        str(lib.torch_label),
        str(lib.cpython_label) if audited else None,
        lib.torch.min_torch_version,
        len(lib.torch.unstable_details),
        lib.torch.stable_shim_count,
        lib.error or lib.skipped,
    )


def _entity_changes(
    details: Iterable[tuple[str, str, UnstableReason, str]], tables: _Tables
) -> tuple[EntityChange, ...]:
    """(symbol, demangled, reason, detail) grouped by entity, most symbols first."""
    from torch_abi_audit.rules.torch_abi import UnstableSymbol

    grouped: dict[str, tuple[Advice, list[str]]] = {}
    for symbol, demangled, reason, detail in details:
        unstable = UnstableSymbol(symbol, demangled, reason, detail)
        advice = tables.replacements.lookup(tables.rules.unstable_entity(unstable), tables.shims)
        key = advice.entity + (" (in signatures)" if reason is UnstableReason.SIGNATURE else "")
        grouped.setdefault(key, (advice, []))[1].append(demangled)
    changes = [
        EntityChange(key, tuple(sorted(names)), advice) for key, (advice, names) in grouped.items()
    ]
    return tuple(sorted(changes, key=lambda c: (-len(c.symbols), c.entity)))


def _details(lib: ExtensionReport | None) -> dict[str, tuple[str, str, UnstableReason, str]]:
    if lib is None:
        return {}
    return {
        u.symbol: (u.symbol, u.demangled, u.reason, u.detail) for u in lib.torch.unstable_details
    }


def compare_libraries(
    old: tuple[str, ExtensionReport] | None,
    new: tuple[str, ExtensionReport] | None,
    tables: _Tables,
    matched_by: str | None = None,
) -> LibraryChange:
    """One library compared (``old`` or ``new`` absent for an added or removed library)."""
    old_lib = old[1] if old else None
    new_lib = new[1] if new else None
    before, after = _details(old_lib), _details(new_lib)
    removed = _entity_changes((before[s] for s in sorted(before.keys() - after.keys())), tables)
    added = _entity_changes((after[s] for s in sorted(after.keys() - before.keys())), tables)
    used_before = {c.entity for c in _entity_changes(before.values(), tables)}
    gained = tuple(c.entity for c in added if c.entity not in used_before)
    shims_old = set(old_lib.torch.stable_shims) if old_lib else set()
    shims_new = set(new_lib.torch.stable_shims) if new_lib else set()
    capi_old = set(old_lib.cpython.violations) if old_lib else set()
    capi_new = set(new_lib.cpython.violations) if new_lib else set()
    old_side = _side(old[0], old[1]) if old else None
    new_side = _side(new[0], new[1]) if new else None
    if old_side is None:
        status = LibraryStatus.ADDED
    elif new_side is None:
        status = LibraryStatus.REMOVED
    else:
        same = (
            not removed
            and not added
            and shims_old == shims_new
            and capi_old == capi_new
            and (old_side.torch_label, old_side.cpython_label, old_side.min_torch)
            == (new_side.torch_label, new_side.cpython_label, new_side.min_torch)
        )
        status = LibraryStatus.UNCHANGED if same else LibraryStatus.CHANGED
    return LibraryChange(
        status,
        old_side,
        new_side,
        matched_by,
        removed,
        added,
        tuple(sorted(shims_new - shims_old)),
        tuple(sorted(shims_old - shims_new)),
        tuple(sorted(capi_new - capi_old)),
        tuple(sorted(capi_old - capi_new)),
        gained,
    )


def summarize(report: PackageReport, label: str) -> PackageSummary:
    """A build's roll-ups."""
    dist = report.distribution
    return PackageSummary(
        label,
        dist.name if dist else report.name,
        dist.version if dist else None,
        str(report.torch_verdict),
        str(report.cpython_verdict),
        report.min_torch_version,
        len(report.libraries),
        sum(len(lib.torch.unstable_details) for lib in report.libraries),
        report.root,
        report.wheel is not None,
    )


def diff_packages(
    old: PackageReport,
    new: PackageReport,
    tables: _Tables | None = None,
    labels: tuple[str, str] | None = None,
) -> PackageDiff:
    """Compare two builds of a package (see the module docstring). ``labels`` name them in
    the output (default: their distribution name and version, or their roots)."""
    if tables is None:
        from torch_abi_audit.rules.replacements import load_replacements
        from torch_abi_audit.rules.torch_table import load_table

        tables = _Tables(torch_rules(), load_replacements(), load_table())
    old_libs = {relative_or_name(lib.path, old.root): lib for lib in old.libraries}
    new_libs = {relative_or_name(lib.path, new.root): lib for lib in new.libraries}
    pairs, only_old, only_new = match_libraries(list(old_libs), list(new_libs))
    changes = [
        compare_libraries((o, old_libs[o]), (n, new_libs[n]), tables, how) for o, n, how in pairs
    ]
    changes += [compare_libraries((o, old_libs[o]), None, tables) for o in only_old]
    changes += [compare_libraries(None, (n, new_libs[n]), tables) for n in only_new]
    changes.sort(key=lambda c: c.name)
    fixed, introduced = _finding_changes(old.findings, new.findings)
    old_label, new_label = labels or (_label(old), _label(new))
    summary_old, summary_new = summarize(old, old_label), summarize(new, new_label)
    regressions = _regressions(changes, summary_old, summary_new, introduced)
    return PackageDiff(
        summary_old, summary_new, tuple(changes), fixed, introduced, tuple(regressions)
    )


def _label(report: PackageReport) -> str:
    dist = report.distribution
    if dist is not None:
        return f"{dist.name} {dist.version}"
    return report.name


def _finding_changes(
    old: Sequence[Finding], new: Sequence[Finding]
) -> tuple[tuple[Finding, ...], tuple[Finding, ...]]:
    """(fixed, introduced): findings whose code only the old, or only the new build has."""
    old_codes = {f.code for f in old}
    new_codes = {f.code for f in new}
    # Findings that restate a verdict are the libraries' changes, compared on their own.
    fixed = tuple(f for f in old if f.code not in new_codes and not restates_verdict(f.code))
    introduced = tuple(f for f in new if f.code not in old_codes and not restates_verdict(f.code))
    return fixed, introduced


def _version(text: str | None) -> Version | None:
    if not text:
        return None
    try:
        return Version(text)
    except InvalidVersion:
        return None


_ABI3_GOOD = frozenset({str(CPythonLabel.ABI3_OK), str(CPythonLabel.ABI3_TAGGED_NO_CAPI)})
_CPYTHON_RANK = {
    str(CPythonVerdict.ABI3_COMPLIANT): 0,
    str(CPythonVerdict.NO_EXTENSIONS): 0,
    str(CPythonVerdict.MIXED): 1,
    str(CPythonVerdict.NOT_ABI3): 2,
}


def _library_regressions(change: LibraryChange) -> list[Regression]:
    """What one library does worse in the new build."""
    old, new = change.old, change.new
    found: list[Regression] = []
    if new is None:
        return found
    unstable = str(TorchLabel.UNSTABLE)
    if old is None:
        if new.torch_label == unstable:
            found.append(
                Regression(
                    CheckPolicy.TORCH,
                    f"new library {new.path} is UNSTABLE ({new.unstable} unstable imports)",
                    new.path,
                )
            )
        return found
    if new.torch_label == unstable and old.torch_label != unstable:
        found.append(Regression(CheckPolicy.TORCH, f"{new.path} became UNSTABLE", new.path))
    elif change.entities_gained or new.unstable > old.unstable:
        entities = list(change.entities_gained)
        what = f": {name_list(entities)}" if entities else ""
        found.append(
            Regression(
                CheckPolicy.TORCH,
                f"{new.path} gained unstable imports ({old.unstable} -> {new.unstable}){what}",
                new.path,
            )
        )
    if old.cpython_label in _ABI3_GOOD and new.cpython_label == str(
        CPythonLabel.ABI3_TAGGED_VIOLATIONS
    ):
        found.append(
            Regression(
                CheckPolicy.ABI3,
                f"{new.path} broke its abi3 promise ({old.cpython_label} -> {new.cpython_label})",
                new.path,
            )
        )
    elif change.cpython_added and new.cpython_label == str(CPythonLabel.ABI3_TAGGED_VIOLATIONS):
        found.append(
            Regression(
                CheckPolicy.ABI3,
                f"{new.path} imports more CPython API outside the stable ABI: "
                f"{', '.join(change.cpython_added[:3])}",
                new.path,
            )
        )
    return found


def _finding_gate(finding: Finding) -> CheckPolicy:
    """The gate a new finding fails: its code's first gate in the registry (``metadata`` for
    a code no gate lists)."""
    gates = finding_gates(finding.code)
    return CheckPolicy(gates[0]) if gates else CheckPolicy.METADATA


def _regressions(
    changes: Sequence[LibraryChange],
    old: PackageSummary,
    new: PackageSummary,
    introduced: Sequence[Finding],
) -> list[Regression]:
    found = [r for change in changes for r in _library_regressions(change)]
    unstable = str(TorchVerdict.UNSTABLE)
    if new.torch_verdict == unstable and old.torch_verdict != unstable:
        found.append(Regression(CheckPolicy.TORCH, "the package became torch-unstable"))
    old_floor, new_floor = _version(old.min_torch), _version(new.min_torch)
    if old_floor and new_floor and new_floor > old_floor:
        found.append(
            Regression(CheckPolicy.TORCH, f"min torch rose from {old_floor} to {new_floor}")
        )
    if _CPYTHON_RANK.get(new.cpython_verdict, 0) > _CPYTHON_RANK.get(old.cpython_verdict, 0):
        found.append(
            Regression(
                CheckPolicy.ABI3,
                f"CPython ABI went from {old.cpython_verdict} to {new.cpython_verdict}",
            )
        )
    for finding in introduced:
        if finding.fails_check:
            found.append(
                Regression(
                    _finding_gate(finding),
                    f"new {finding.severity} {finding.code}: {finding.message}",
                )
            )
    return found
