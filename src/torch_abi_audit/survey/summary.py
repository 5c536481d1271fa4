"""What a survey store says, in numbers: the headline, per package, and the plotted series.

Pure queries over the store (:class:`~torch_abi_audit.survey.store.SurveyStore`); the markdown
and HTML renderers only format a :class:`Summary`. A wheel counts once however many platforms
selected it; "uses torch" means its libraries import from libtorch (stable or not).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from packaging.version import InvalidVersion, Version

from torch_abi_audit.report import TorchVerdict
from torch_abi_audit.rules.registry import FINDING_CODES, Gate, declared
from torch_abi_audit.survey.loads import (
    CATEGORIES,
    judged_builds,
    load_category,
    load_reasons,
    release_of,
    stored_loads,
)
from torch_abi_audit.survey.store import SurveyStore

STABLE = str(TorchVerdict.STABLE)
UNSTABLE = str(TorchVerdict.UNSTABLE)
NO_TORCH = str(TorchVerdict.NO_TORCH)
UNREADABLE = str(TorchVerdict.ERROR)
#: Findings that say a stable wheel declares a torch floor lower than it needs, or none
#: (looked up in the registry, so a renamed code fails at import, not silently at zero).
UNDER_DECLARED = tuple(
    declared(code).code for code in ("torch-floor-missing", "torch-floor-too-low")
)
#: The finding that says an unstable wheel admits torch releases it was not built for.
UNPINNED = declared("torch-unpinned-unstable").code
#: The build column of wheels stored before the build judged against was recorded.
NOT_RECORDED = "build not recorded"


def metadata_codes() -> frozenset[str]:
    """The finding codes the report counts as metadata findings, from the registry: those the
    ``metadata`` gate fails on, and the informational packaging notes no gate fails on
    (``torch-over-pinned``, ``abi3-not-free-threaded``…). Not the codes that restate a
    library's verdict (``torch-unstable``…: the verdict plots count those wheels), nor the load
    and target gates' (the loads plot says what loads)."""
    return frozenset(
        code
        for code, entry in FINDING_CODES.items()
        if not entry.restates_verdict and (Gate.METADATA in entry.gates or not entry.gates)
    )


@dataclass(frozen=True)
class PackageSummary:
    """One package across the releases and platforms surveyed."""

    name: str
    releases: int
    wheels: int
    stable: int
    unstable: int
    no_torch: int
    failed: int
    newest: str
    newest_verdicts: dict[str, str]
    newest_min_torch: str | None
    platforms_missing: int
    unreadable: int = 0  # audited, but some library could not be read (torch verdict error)

    @property
    def ships_stable(self) -> bool:
        """True when any of its wheels keeps to the stable ABI."""
        return self.stable > 0


@dataclass(frozen=True)
class Headline:
    """The numbers a reader wants first."""

    packages: int
    releases: int
    wheels: int
    audited: int
    failed: int
    libraries: int
    bytes: int
    stable_wheels: int
    unstable_wheels: int
    no_torch_wheels: int
    packages_with_stable: tuple[str, ...]
    packages_all_stable: tuple[str, ...]
    under_declared: int
    under_declared_packages: tuple[str, ...]
    unpinned: int
    unpinned_packages: tuple[str, ...]
    load_against: str | None
    wall_seconds: float
    cpu_seconds: float
    unreadable_wheels: int = 0


@dataclass(frozen=True)
class Summary:
    """Everything the report shows."""

    headline: Headline
    packages: tuple[PackageSummary, ...]
    months: tuple[tuple[str, int, int, int], ...]  # month, stable, unstable, no-torch
    min_torch: tuple[tuple[str, int], ...]  # release, stable wheels needing it
    findings: tuple[tuple[str, str, int], ...]  # metadata finding code, severity, wheels
    loads: tuple[LoadRow, ...]
    # filename, stage, reason: wheels not audited, and (stage "library") those audited whose
    # libraries could not all be read
    failures: tuple[tuple[str, str, str], ...]
    platforms: tuple[str, ...] = field(default=())
    load_builds: tuple[str, ...] = field(default=())  # the columns of LoadRow.per_build
    load_reasons: tuple[tuple[str, str, int], ...] = field(default=())  # category, why, wheels


def _version_key(text: str) -> tuple[int, Version | str]:
    try:
        return (0, Version(text))
    except InvalidVersion:
        return (1, text)


def _packages(store: SurveyStore) -> tuple[PackageSummary, ...]:
    wheels = store.query(
        "SELECT package, version, key, status, torch_verdict, min_torch FROM wheels"
    )
    selections = store.query("SELECT package, version, platform, key FROM selections")
    by_key = {row["key"]: row for row in wheels}
    grouped: dict[str, list[tuple[str, str, str | None]]] = defaultdict(list)
    for row in selections:
        grouped[row["package"]].append((row["version"], row["platform"], row["key"]))
    result = []
    for name in sorted(grouped):
        rows = grouped[name]
        newest = max((version for version, _, _ in rows), key=_version_key)
        keys = {key for _, _, key in rows if key in by_key}
        verdicts = Counter(by_key[key]["torch_verdict"] or by_key[key]["status"] for key in keys)
        newest_verdicts = {
            platform: (by_key[key]["torch_verdict"] or by_key[key]["status"])
            if key in by_key
            else ("no wheel" if key is None else "pending")
            for version, platform, key in rows
            if version == newest
        }
        floors = [
            by_key[key]["min_torch"]
            for version, _, key in rows
            if version == newest and key in by_key and by_key[key]["min_torch"]
        ]
        result.append(
            PackageSummary(
                name=name,
                releases=len({version for version, _, _ in rows}),
                wheels=len(keys),
                stable=verdicts[STABLE],
                unstable=verdicts[UNSTABLE],
                no_torch=verdicts[NO_TORCH],
                failed=sum(1 for key in keys if by_key[key]["status"] == "failed"),
                unreadable=verdicts[UNREADABLE],
                newest=newest,
                newest_verdicts=newest_verdicts,
                newest_min_torch=max(floors, key=_version_key) if floors else None,
                platforms_missing=sum(1 for _, _, key in rows if key is None),
            )
        )
    return tuple(result)


def _with_finding(store: SurveyStore, codes: tuple[str, ...]) -> tuple[int, tuple[str, ...]]:
    marks = ",".join("?" for _ in codes)
    rows = store.query(
        "SELECT DISTINCT w.key, w.package FROM wheels w JOIN findings f ON f.key = w.key "
        f"WHERE w.status = 'audited' AND f.code IN ({marks})",
        codes,
    )
    return len(rows), tuple(sorted({row["package"] for row in rows}))


def _load_against(store: SurveyStore) -> str | None:
    """The release loading was predicted on; several, comma-separated, when runs of one store
    predicted on different releases (each wheel keeps its own: the categories use it)."""
    rows = store.query(
        "SELECT DISTINCT load_against FROM wheels WHERE load_against IS NOT NULL "
        "ORDER BY load_against"
    )
    labels = sorted((str(row["load_against"]) for row in rows), key=_label_key)
    return ", ".join(labels) if labels else None


def _label_key(label: str) -> tuple[int, Version | str]:
    return _version_key(release_of(label) or label)


def _headline(store: SurveyStore, packages: tuple[PackageSummary, ...]) -> Headline:
    totals = store.query(
        "SELECT COUNT(*) AS wheels, SUM(status='audited') AS audited, "
        "SUM(status='failed') AS failed, COALESCE(SUM(size), 0) AS bytes, "
        "SUM(torch_verdict=?) AS stable, SUM(torch_verdict=?) AS unstable, "
        "SUM(torch_verdict=?) AS no_torch, SUM(torch_verdict=?) AS unreadable, "
        "COALESCE(SUM(libraries), 0) AS libraries FROM wheels",
        (STABLE, UNSTABLE, NO_TORCH, UNREADABLE),
    )[0]
    runs = store.query(
        "SELECT COALESCE(SUM(wall_seconds), 0) AS wall, COALESCE(SUM(cpu_seconds), 0) AS cpu "
        "FROM runs"
    )[0]
    releases = store.query("SELECT COUNT(DISTINCT package || ' ' || version) AS n FROM selections")
    under, under_packages = _with_finding(store, UNDER_DECLARED)
    unpinned, unpinned_packages = _with_finding(store, (UNPINNED,))
    return Headline(
        packages=len(packages),
        releases=int(releases[0]["n"]),
        wheels=int(totals["wheels"]),
        audited=int(totals["audited"] or 0),
        failed=int(totals["failed"] or 0),
        libraries=int(totals["libraries"]),
        bytes=int(totals["bytes"]),
        stable_wheels=int(totals["stable"] or 0),
        unstable_wheels=int(totals["unstable"] or 0),
        no_torch_wheels=int(totals["no_torch"] or 0),
        packages_with_stable=tuple(p.name for p in packages if p.ships_stable),
        packages_all_stable=tuple(
            p.name
            for p in packages
            if p.newest_verdicts
            and all(v == STABLE for v in p.newest_verdicts.values() if v != "no wheel")
            and any(v == STABLE for v in p.newest_verdicts.values())
        ),
        under_declared=under,
        under_declared_packages=under_packages,
        unpinned=unpinned,
        unpinned_packages=unpinned_packages,
        load_against=_load_against(store),
        wall_seconds=float(runs["wall"]),
        cpu_seconds=float(runs["cpu"]),
        unreadable_wheels=int(totals["unreadable"] or 0),
    )


def _months(store: SurveyStore) -> tuple[tuple[str, int, int, int], ...]:
    rows = store.query(
        "SELECT substr(upload_time, 1, 7) AS month, SUM(torch_verdict=?) AS stable, "
        "SUM(torch_verdict=?) AS unstable, SUM(torch_verdict=?) AS no_torch FROM wheels "
        "WHERE status='audited' AND upload_time IS NOT NULL GROUP BY month ORDER BY month",
        (STABLE, UNSTABLE, NO_TORCH),
    )
    return tuple(
        (row["month"], int(row["stable"]), int(row["unstable"]), int(row["no_torch"]))
        for row in rows
    )


@dataclass(frozen=True)
class LoadRow:
    """The wheels of one load category (:data:`~torch_abi_audit.survey.loads.CATEGORIES`):
    ``wheels`` in all and ``per_build`` per build judged against (in
    :attr:`Summary.load_builds` order)."""

    category: str
    wheels: int
    per_build: tuple[int, ...] = ()


def _loads(
    store: SurveyStore,
) -> tuple[tuple[LoadRow, ...], tuple[str, ...], tuple[tuple[str, str, int], ...]]:
    """The load rows, the builds judged against, and (category, reason, wheels) for the
    wheels that fail or cannot be told."""
    rows = store.query(
        "SELECT torch_verdict, load_status, requires_torch, load_against, report_json "
        "FROM wheels WHERE status='audited' AND torch_verdict IN (?, ?)",
        (STABLE, UNSTABLE),
    )
    counts: Counter[tuple[str, str]] = Counter()
    reasons: Counter[tuple[str, str]] = Counter()
    for row in rows:
        status = row["load_status"]
        category = load_category(
            row["torch_verdict"], status, row["requires_torch"], release_of(row["load_against"])
        )
        loads = stored_loads(row["report_json"])
        builds = judged_builds(loads)
        counts[(category, " + ".join(builds) or NOT_RECORDED)] += 1
        if category.endswith((", fails", ", unknown")):
            for reason in load_reasons(loads, status):
                reasons[(category, reason)] += 1
    builds = tuple(sorted({build for _, build in counts}, key=lambda b: (b == NOT_RECORDED, b)))
    load_rows = tuple(
        LoadRow(
            category,
            sum(n for (c, _), n in counts.items() if c == category),
            tuple(counts[(category, build)] for build in builds),
        )
        for category in CATEGORIES
        if any(c == category for c, _ in counts)
    )
    why = tuple(
        (category, reason, n)
        for (category, reason), n in sorted(
            reasons.items(), key=lambda item: (CATEGORIES.index(item[0][0]), -item[1])
        )
    )
    return load_rows, builds, why


def summarize(store: SurveyStore) -> Summary:
    """The :class:`Summary` of everything in ``store``."""
    packages = _packages(store)
    floors = store.query(
        "SELECT min_torch, COUNT(*) AS n FROM wheels WHERE torch_verdict=? "
        "AND min_torch IS NOT NULL GROUP BY min_torch",
        (STABLE,),
    )
    codes = sorted(metadata_codes())
    findings = store.query(
        "SELECT f.code, f.severity, COUNT(DISTINCT f.key) AS n FROM findings f "
        "JOIN wheels w ON w.key = f.key WHERE w.status='audited' "
        f"AND f.code IN ({','.join('?' for _ in codes)}) "
        "GROUP BY f.code, f.severity ORDER BY n DESC, f.code",
        codes,
    )
    loads, builds, reasons = _loads(store)
    failures = store.query(
        "SELECT filename, stage, error FROM wheels WHERE status='failed' UNION ALL "
        "SELECT w.filename, 'library', group_concat(l.path || ': ' || l.error, '; ') "
        "FROM wheels w JOIN libraries l ON l.key = w.key WHERE w.status='audited' "
        "AND l.torch_label='ERROR' GROUP BY w.key ORDER BY filename"
    )
    platforms = store.query("SELECT DISTINCT platform FROM selections ORDER BY platform")
    return Summary(
        headline=_headline(store, packages),
        packages=packages,
        months=_months(store),
        min_torch=tuple(
            sorted(
                ((r["min_torch"], int(r["n"])) for r in floors), key=lambda p: _version_key(p[0])
            )
        ),
        findings=tuple((r["code"], r["severity"], int(r["n"])) for r in findings),
        loads=loads,
        failures=tuple((r["filename"], r["stage"] or "", r["error"] or "") for r in failures),
        platforms=tuple(r["platform"] for r in platforms),
        load_builds=builds,
        load_reasons=reasons,
    )
