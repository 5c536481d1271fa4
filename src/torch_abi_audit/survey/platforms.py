"""Which wheel of a release a user on a platform gets: tags ranked as an installer ranks them.

A survey platform is named by the newest tag of a platform (``manylinux_2_39_x86_64``,
``macosx_26_0_arm64``, ``win_amd64``); like pip on such a machine, it accepts the older tags
that machine also runs (older glibc baselines and the legacy ``manylinux2014``/``2010``/``1``
aliases; older macOS releases and ``universal2``: :func:`~torch_abi_audit.sources.index.
expand_platform`). For a Python version, the wheel chosen is the
one whose best tag ranks first in the list :mod:`packaging.tags` builds for that interpreter
(version-specific ABI before ``abi3`` before ``none``; newer platform before older; then the
higher build number) — the choice pip makes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from packaging import tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from torch_abi_audit.sources.index import expand_platform
from torch_abi_audit.survey.simple_api import IndexFile

#: manylinux x86_64 (glibc of a current distribution), macOS arm64, Windows x86-64.
DEFAULT_PLATFORMS = ("manylinux_2_39_x86_64", "macosx_26_0_arm64", "win_amd64")
#: The one Python the survey fetches wheels for unless told otherwise.
DEFAULT_PYTHON = "3.12"


class PlatformError(ValueError):
    """A platform tag or Python version the survey cannot use."""


def platform_tags(platform: str) -> list[str]:
    """The platform tags a machine of ``platform`` accepts, most preferred first (as pip
    expands ``--platform``). Raises :class:`PlatformError` for what is not a platform tag."""
    if not re.fullmatch(r"[a-z0-9_]+", platform):
        raise PlatformError(f"{platform!r} is not a platform tag (e.g. {DEFAULT_PLATFORMS[0]})")
    return expand_platform(platform)


def python_tuple(version: str) -> tuple[int, int]:
    """``"3.12"`` as ``(3, 12)``; raises :class:`PlatformError` for anything else."""
    match = re.fullmatch(r"3\.(\d{1,2})", version)
    if not match:
        raise PlatformError(f"--python-version takes 3.X (e.g. {DEFAULT_PYTHON}), not {version!r}")
    return (3, int(match[1]))


@dataclass(frozen=True)
class TagRanking:
    """Every tag an interpreter on a platform accepts, ranked (0 is best)."""

    platform: str
    python: str
    ranks: dict[tags.Tag, int]

    def rank(self, filename: str) -> tuple[int, int] | None:
        """(tag rank, minus build number) of a wheel, lower is better; ``None`` when the wheel
        does not install here (or its name is not a wheel's)."""
        try:
            _, _, build, wheel_tags = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            return None
        found = [self.ranks[tag] for tag in wheel_tags if tag in self.ranks]
        if not found:
            return None
        return (min(found), -(build[0] if build else 0))


def ranking(platform: str, python: str) -> TagRanking:
    """The tag ranking of CPython ``python`` on ``platform``."""
    version = python_tuple(python)
    platforms = platform_tags(platform)
    interpreter = f"cp{version[0]}{version[1]}"
    ordered = [
        *tags.cpython_tags(version, [interpreter], platforms),
        *tags.compatible_tags(version, interpreter, platforms),
    ]
    ranks: dict[tags.Tag, int] = {}
    for tag in ordered:
        ranks.setdefault(tag, len(ranks))
    return TagRanking(platform, python, ranks)


def best_wheel(files: Iterable[IndexFile], ranked: TagRanking) -> IndexFile | None:
    """The wheel of a release an installer on ``ranked``'s platform picks, if any (yanked
    files only when nothing else fits, as PEP 592 allows for a pinned release)."""
    candidates = []
    for file in files:
        if not file.is_wheel:
            continue
        rank = ranked.rank(file.filename)
        if rank is not None:
            candidates.append((file.yanked, rank, file.filename, file))
    return min(candidates)[3] if candidates else None


def pip_platform(file: IndexFile) -> str | None:
    """The ``--platform`` to hand pip so that it picks ``file``: its first platform tag
    (``None`` for a pure wheel, which installs anywhere)."""
    try:
        wheel_tags = parse_wheel_filename(file.filename)[3]
    except InvalidWheelFilename:
        return None
    platforms = sorted({tag.platform for tag in wheel_tags})
    return None if platforms == ["any"] else platforms[0]


def validate(platforms: Sequence[str], python: str) -> None:
    """Raise :class:`PlatformError` when a platform or the Python version is unusable."""
    python_tuple(python)
    for platform in platforms:
        platform_tags(platform)
