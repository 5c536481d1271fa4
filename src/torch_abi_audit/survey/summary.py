"""What a survey store says, in numbers: the headline, per package, and the plotted series.

Pure queries over the store (:class:`~torch_abi_audit.survey.store.SurveyStore`); the markdown
and HTML renderers only format a :class:`Summary`. A wheel counts once however many platforms
selected it; "uses torch" means its libraries import from libtorch (stable or not).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from torch_abi_audit.survey.store import SurveyStore

STABLE = "torch-stable"
UNSTABLE = "torch-unstable"
NO_TORCH = "no-torch"
#: Findings that say a stable wheel declares a torch floor lower than it needs, or none.
UNDER_DECLARED = ("torch-floor-missing", "torch-floor-too-low")
#: The finding that says an unstable wheel admits torch releases it was not built for.
UNPINNED = "torch-unpinned-unstable"


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


@dataclass(frozen=True)
class Summary:
    """Everything the report shows."""

    headline: Headline
    packages: tuple[PackageSummary, ...]
    months: tuple[tuple[str, int, int, int], ...]  # month, stable, unstable, no-torch
    min_torch: tuple[tuple[str, int], ...]  # release, stable wheels needing it
    findings: tuple[tuple[str, str, int], ...]  # code, severity, wheels
    loads: tuple[tuple[str, int], ...]  # status, wheels
    failures: tuple[tuple[str, str, str], ...]  # filename, stage, reason
    platforms: tuple[str, ...] = field(default=())


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


def _headline(store: SurveyStore, packages: tuple[PackageSummary, ...]) -> Headline:
    totals = store.query(
        "SELECT COUNT(*) AS wheels, SUM(status='audited') AS audited, "
        "SUM(status='failed') AS failed, COALESCE(SUM(size), 0) AS bytes, "
        "SUM(torch_verdict=?) AS stable, SUM(torch_verdict=?) AS unstable, "
        "SUM(torch_verdict=?) AS no_torch, COALESCE(SUM(libraries), 0) AS libraries, "
        "MAX(load_against) AS against FROM wheels",
        (STABLE, UNSTABLE, NO_TORCH),
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
        load_against=totals["against"],
        wall_seconds=float(runs["wall"]),
        cpu_seconds=float(runs["cpu"]),
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


def admits(requirements: str | None, release: str) -> bool | None:
    """Whether ``Requires-Dist: torch`` entries (``'; '``-joined, as stored) let pip install
    torch ``release`` beside the wheel; ``None`` when the wheel declares no torch."""
    specifier = SpecifierSet()
    found = False
    for text in (requirements or "").split("; "):
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if canonicalize_name(requirement.name) == "torch":
            specifier &= requirement.specifier
            found = True
    return specifier.contains(release, prereleases=True) if found else None


#: The outcomes of a load prediction, for unstable wheels too (tied-to-build before 1.7).
PREDICTED = ("loads", "fails", "unknown")


def load_category(
    verdict: str, status: str | None, requirements: str | None, release: str | None
) -> str:
    """What loading a wheel that uses torch on the newest ``release`` is predicted to do.

    Stable wheels: their prediction, ``loads``, ``fails`` (shims newer than, or removed by, the
    release; a missing CUDA runtime) or ``unknown``. Unstable wheels are judged against the
    release's build too (``unstable, loads`` / ``fails`` / ``unknown``) — unless their
    metadata pins another torch, so that pip never puts them beside the release: ``unstable,
    pinned elsewhere``. Rows stored before release builds were judged (``tied-to-build``) are
    split by their metadata alone (``unstable, admits it`` / ``no torch requirement``).
    """
    if verdict == STABLE:
        return status or "no prediction"
    if release is None:
        return "unstable"
    allowed = admits(requirements, release)
    if allowed is False:
        return "unstable, pinned elsewhere"
    if status in PREDICTED:
        return f"unstable, {status}"
    return "unstable, no torch requirement" if allowed is None else "unstable, admits it"


def _loads(store: SurveyStore) -> tuple[tuple[str, int], ...]:
    rows = store.query(
        "SELECT torch_verdict, load_status, requires_torch, load_against FROM wheels "
        "WHERE status='audited' AND torch_verdict IN (?, ?)",
        (STABLE, UNSTABLE),
    )
    counts: Counter[str] = Counter()
    for row in rows:
        against = row["load_against"]
        release = against.split()[-1] if against else None
        counts[
            load_category(row["torch_verdict"], row["load_status"], row["requires_torch"], release)
        ] += 1
    order = [
        "loads",
        "fails",
        "unknown",
        "unstable, loads",
        "unstable, fails",
        "unstable, unknown",
        "unstable, pinned elsewhere",
        "unstable, admits it",
        "unstable, no torch requirement",
        "unstable",
        "no prediction",
    ]
    return tuple((name, counts[name]) for name in order if counts[name])


def summarize(store: SurveyStore) -> Summary:
    """The :class:`Summary` of everything in ``store``."""
    packages = _packages(store)
    floors = store.query(
        "SELECT min_torch, COUNT(*) AS n FROM wheels WHERE torch_verdict=? "
        "AND min_torch IS NOT NULL GROUP BY min_torch",
        (STABLE,),
    )
    findings = store.query(
        "SELECT f.code, f.severity, COUNT(DISTINCT f.key) AS n FROM findings f "
        "JOIN wheels w ON w.key = f.key WHERE w.status='audited' "
        "GROUP BY f.code, f.severity ORDER BY n DESC, f.code"
    )
    loads = _loads(store)
    failures = store.query(
        "SELECT filename, stage, error FROM wheels WHERE status='failed' ORDER BY filename"
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
    )
