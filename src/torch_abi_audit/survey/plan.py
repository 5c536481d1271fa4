"""From package names to the wheels to audit: releases chosen, one wheel per platform.

For each package the index lists its releases (:mod:`.simple_api`); ``--releases`` keeps the
newest N, all, or those a version specifier admits; for each release and platform the wheel an
installer there would pick is chosen (:mod:`.platforms`). A release without such a wheel is a
:class:`Selection` with a reason (the report counts platform coverage), not a job.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from torch_abi_audit.survey.platforms import TagRanking, best_wheel, pip_platform, ranking
from torch_abi_audit.survey.simple_api import IndexFile, Project


class ReleaseSpecError(ValueError):
    """A ``--releases`` value that is neither a count, ``all``, nor a version specifier."""


@dataclass(frozen=True)
class ReleaseFilter:
    """Which releases of a package to survey: the newest ``count`` (``None``: all) of those
    ``specifier`` admits (pre-releases only with ``include_pre``)."""

    count: int | None = 3
    specifier: SpecifierSet | None = None
    include_pre: bool = False

    def choose(self, project: Project) -> list[Version]:
        """The chosen release versions, newest first. A project that has published only
        pre-releases is surveyed on those, as pip installs them when nothing else exists."""
        include_pre = self.include_pre or not project.versions()
        versions = project.versions(include_pre=include_pre)
        if self.specifier is not None:
            versions = [v for v in versions if self.specifier.contains(v, prereleases=include_pre)]
        return versions if self.count is None else versions[: self.count]


def parse_releases(text: str, *, include_pre: bool = False) -> ReleaseFilter:
    """``--releases``: ``N`` (the newest N), ``all``, or a specifier (``>=0.10,<1``)."""
    value = text.strip()
    if value == "all":
        return ReleaseFilter(None, None, include_pre)
    if re.fullmatch(r"\d+", value):
        if int(value) < 1:
            raise ReleaseSpecError("--releases N needs N >= 1")
        return ReleaseFilter(int(value), None, include_pre)
    try:
        specifier = SpecifierSet(value)
    except InvalidSpecifier as exc:
        raise ReleaseSpecError(
            f"--releases takes N, 'all' or a version specifier such as '>=0.10,<1', not {text!r}"
        ) from exc
    return ReleaseFilter(None, specifier, include_pre)


@dataclass(frozen=True)
class WheelJob:
    """One wheel to fetch and audit: everything a worker needs, nothing it must look up.

    ``pip_platform`` is the ``--platform`` that makes pip fetch exactly this file; ``index`` the
    index it was listed on when that is not pip's own (``--index-url``); ``keep_dir``
    keeps the wheel there after the audit (``None``: fetched into a temporary directory under
    ``work_dir``, or the worker's temporary directory, and deleted); ``torch_version`` is the
    release loading is predicted against.
    """

    package: str
    version: str
    filename: str
    url: str
    sha256: str | None
    size: int | None
    upload_time: str | None
    pip_platform: str | None
    python: str
    torch_version: str | None = None
    work_dir: str | None = None
    keep_dir: str | None = None
    index: str | None = None

    @property
    def key(self) -> str:
        """The store's key: the sha256 the index gives, else the file name."""
        return self.sha256 or f"unhashed:{self.filename}"


@dataclass(frozen=True)
class Selection:
    """What a platform gets of a release: a wheel (its key) or the reason there is none."""

    package: str
    version: str
    platform: str
    python: str
    upload_time: str | None
    key: str | None = None
    reason: str | None = None


@dataclass
class Plan:
    """The jobs (one per distinct wheel) and every release x platform selection."""

    jobs: list[WheelJob] = field(default_factory=list)
    selections: list[Selection] = field(default_factory=list)


def _release_time(files: Sequence[IndexFile]) -> str | None:
    times = [f.upload_time for f in files if f.upload_time]
    return min(times) if times else None


def _no_wheel_reason(files: Sequence[IndexFile], ranked: TagRanking) -> str:
    wheels = [f for f in files if f.is_wheel]
    if not wheels:
        return "the release has no wheels (source distribution only)"
    return f"no wheel for {ranked.platform} and Python {ranked.python} ({len(wheels)} other wheels)"


def plan_project(
    project: Project,
    releases: ReleaseFilter,
    platforms: Sequence[str],
    python: str,
    *,
    torch_version: str | None = None,
) -> Plan:
    """The jobs and selections for one project (a wheel several platforms share is one job)."""
    rankings = [ranking(platform, python) for platform in platforms]
    plan = Plan()
    seen: set[str] = set()
    for version in releases.choose(project):
        files = project.releases[version]
        released = _release_time(files)
        for ranked in rankings:
            wheel = best_wheel(files, ranked)
            if wheel is None:
                plan.selections.append(
                    Selection(
                        project.name,
                        str(version),
                        ranked.platform,
                        python,
                        released,
                        reason=_no_wheel_reason(files, ranked),
                    )
                )
                continue
            job = WheelJob(
                project.name,
                str(version),
                wheel.filename,
                wheel.url,
                wheel.sha256,
                wheel.size,
                wheel.upload_time or released,
                # A pure wheel: ask for this platform, where nothing but a pure wheel fits.
                pip_platform(wheel) or ranked.platform,
                python,
                torch_version,
            )
            plan.selections.append(
                Selection(project.name, str(version), ranked.platform, python, released, job.key)
            )
            if job.key not in seen:
                seen.add(job.key)
                plan.jobs.append(job)
    return plan
