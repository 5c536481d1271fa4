"""Installed distributions of a site-packages directory, read from ``*.dist-info``.

Each distribution's ``RECORD`` (PEP 376 / the wheel spec's "recording installed files") says which
files it installed; that is how libraries are attributed to the distribution that shipped them,
across all of its top-level directories and its vendored ``<name>.libs/`` folders. ``METADATA``
gives the name, version and ``Requires-Dist`` entries (core metadata headers only: the long
description is never parsed).
"""

from __future__ import annotations

import csv
import posixpath
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from torch_abi_audit.sources.discovery import is_executable_name, is_library_name
from torch_abi_audit.sources.metadata import DistributionMetadata, parse_metadata


@dataclass(frozen=True)  # not slots: cached_property stores into the instance __dict__
class InstalledDistribution:
    """One ``*.dist-info`` directory and what its ``RECORD`` says it owns.

    ``top_level`` holds the first path components it installed inside the site directory (not
    ``..`` entries such as scripts); ``library_files`` the site-relative POSIX paths of the
    library-named files it installed; ``scripts`` the site-relative paths (``../../../bin/x``)
    of what it installed into a ``bin`` or ``Scripts`` directory outside it that is named like
    a program (a wheel's ``<dist>.data/scripts/``). ``problem`` is set when ``RECORD`` could
    not be read (the distribution then owns nothing). ``METADATA`` is read on first use of
    :attr:`metadata` (an environment holds many pure-Python distributions whose metadata the
    audit never needs); if it cannot be read, the name comes from the directory and
    ``metadata.problem`` says why.
    """

    metadata_dir: Path
    top_level: tuple[str, ...] = ()
    library_files: frozenset[str] = frozenset()
    problem: str | None = None
    scripts: tuple[str, ...] = ()

    @cached_property
    def metadata(self) -> DistributionMetadata:
        """The parsed ``METADATA`` and ``WHEEL`` files (never raises)."""
        try:
            wheel_file = self.metadata_dir / "WHEEL"
            return parse_metadata(
                (self.metadata_dir / "METADATA").read_bytes(),
                wheel_file=wheel_file.read_bytes() if wheel_file.is_file() else None,
            )
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            return DistributionMetadata(
                self.directory_name, "", problem=f"unreadable METADATA: {exc}"
            )

    @property
    def directory_name(self) -> str:
        """The project name as the ``.dist-info`` directory spells it."""
        return self.metadata_dir.name.removesuffix(".dist-info").split("-", 1)[0]

    @property
    def name(self) -> str:
        """The project name from ``METADATA``."""
        return self.metadata.name

    @property
    def version(self) -> str:
        """The version from ``METADATA`` (empty if it could not be read)."""
        return self.metadata.version

    @property
    def torch_requirements(self) -> tuple[str, ...]:
        """The ``Requires-Dist`` entries that name ``torch`` (see :class:`DistributionMetadata`)."""
        return self.metadata.torch_requirements


_NAME_SEPARATORS = re.compile(r"[-_.]+")
# A cheap pre-filter for library-like paths; is_library_name decides.
_LIBRARY_HINT = re.compile(r"\.(?:so|dylib|pyd|dll)", re.IGNORECASE)


def _normalised(path: str) -> str | None:
    """A RECORD path as a POSIX path relative to the site directory, or ``None`` if outside."""
    path = path.replace("\\", "/")
    if "/." in path or "//" in path or path.startswith("."):
        path = posixpath.normpath(path)  # rare: ./x, a/../b, a//b
    if not path or path.startswith(("../", "/")) or path == "..":
        return None
    return path


_SCRIPT_DIRECTORY = re.compile(r"^(?:\.\./)+(?:[^/]+/)*(?:bin|Scripts)/[^/]+$")


def _scripts(paths: list[str]) -> tuple[str, ...]:
    """The RECORD paths outside the site directory, in a ``bin``/``Scripts`` directory, named
    like a program (``../../../bin/tool``, ``..\\..\\Scripts\\tool.exe``)."""
    found = []
    for path in paths:
        if not path.startswith(".."):
            continue
        normal = posixpath.normpath(path.replace("\\", "/"))
        if _SCRIPT_DIRECTORY.match(normal) and is_executable_name(normal):
            found.append(normal)
    return tuple(sorted(set(found)))


def _read_record(dist_info: Path) -> tuple[tuple[str, ...], frozenset[str], tuple[str, ...]]:
    text = (dist_info / "RECORD").read_text(encoding="utf-8", errors="replace")
    if '"' in text:
        # A quoted path (holding a comma or a quote): let the csv module split every line.
        paths = [row[0] for row in csv.reader(text.splitlines()) if row and row[0]]
    else:
        # Plain "path,hash,size" lines (torch's RECORD has 15k): split without the csv module.
        paths = [line.partition(",")[0] for line in text.splitlines() if line]
    top_level: dict[str, None] = {}
    for path in paths:
        first = path.partition("/")[0]
        if first in top_level:
            continue
        normalised = _normalised(path) if first in ("", ".", "..") or "\\" in first else first
        if normalised is None:
            continue
        top = normalised.partition("/")[0]
        if not top.endswith(".dist-info"):
            top_level.setdefault(top, None)
    libraries = set()
    for path in filter(_LIBRARY_HINT.search, paths):
        normalised = _normalised(path)
        if normalised is not None and is_library_name(normalised):
            libraries.add(normalised)
    return tuple(top_level), frozenset(libraries), _scripts(paths)


def read_distribution(dist_info: Path) -> InstalledDistribution:
    """Read one ``*.dist-info`` directory's ``RECORD``. Never raises: problems land in
    ``problem`` (and ``metadata.problem``)."""
    try:
        top_level, libraries, scripts = _read_record(dist_info)
    except (OSError, csv.Error) as exc:
        return InstalledDistribution(dist_info, problem=f"unreadable RECORD: {exc}")
    return InstalledDistribution(dist_info, top_level, libraries, scripts=scripts)


def find_distributions(site_dir: Path) -> list[InstalledDistribution]:
    """Every ``*.dist-info`` distribution installed in ``site_dir``, sorted by name.

    Raises :class:`OSError` if ``site_dir`` cannot be listed.
    """
    found = [
        read_distribution(entry)
        for entry in site_dir.iterdir()
        if entry.name.endswith(".dist-info") and entry.is_dir()
    ]
    # PEP 503 normalisation, spelled out: packaging.utils would import packaging.tags here.
    return sorted(found, key=lambda d: _NAME_SEPARATORS.sub("-", d.directory_name).lower())
