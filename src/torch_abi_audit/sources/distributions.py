"""Installed distributions of a site-packages directory, read from ``*.dist-info``.

Each distribution's ``RECORD`` (PEP 376 / the wheel spec's "recording installed files") says which
files it installed; that is how libraries are attributed to the distribution that shipped them,
across all of its top-level directories and its vendored ``<name>.libs/`` folders. ``METADATA``
gives the name, version and ``Requires-Dist`` entries (core metadata headers only: the long
description is never parsed).
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from torch_abi_audit.files import open_regular, read_regular
from torch_abi_audit.sources.discovery import is_executable_name, is_library_name
from torch_abi_audit.sources.metadata import (
    MAX_METADATA_SIZE,
    DistributionMetadata,
    parse_metadata,
)


@dataclass(frozen=True)  # not slots: cached_property stores into the instance __dict__
class InstalledDistribution:
    """One ``*.dist-info`` directory and what its ``RECORD`` says it owns.

    ``top_level`` holds the first path components it installed inside the site directory (not
    ``..`` entries such as scripts); ``library_files`` the site-relative POSIX paths of the
    library-named files it installed; ``scripts`` the site-relative paths (``../../../bin/x``)
    of what it installed into a ``bin`` or ``Scripts`` directory outside it that is named like
    a program (a wheel's ``<dist>.data/scripts/``). ``problem`` is set when ``RECORD`` could
    not be read (the distribution then owns nothing); ``record_problems`` say what of a
    readable ``RECORD`` was left unread (beyond the budgets below). ``METADATA`` is read on
    first use of
    :attr:`metadata` (an environment holds many pure-Python distributions whose metadata the
    audit never needs); if it cannot be read, the name comes from the directory and
    ``metadata.problem`` says why.
    """

    metadata_dir: Path
    top_level: tuple[str, ...] = ()
    library_files: frozenset[str] = frozenset()
    problem: str | None = None
    record_problems: tuple[str, ...] = ()
    scripts: tuple[str, ...] = ()

    @cached_property
    def metadata(self) -> DistributionMetadata:
        """The parsed ``METADATA`` and ``WHEEL`` files (never raises)."""
        what = "METADATA"
        try:
            # Nothing is read out of the site directory, whatever links say.
            site = self.metadata_dir.parent
            raw = read_regular(self.metadata_dir / "METADATA", MAX_METADATA_SIZE, within=site)
            what = "WHEEL"
            try:
                wheel_file: bytes | None = read_regular(
                    self.metadata_dir / "WHEEL", MAX_METADATA_SIZE, within=site
                )
            except FileNotFoundError:
                wheel_file = None
            what = "METADATA"
            return parse_metadata(raw, wheel_file=wheel_file)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            return DistributionMetadata(
                self.directory_name, "", problem=f"unreadable {what}: {reason}"
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


#: Budgets for reading one ``RECORD``. The CUDA build of torch lists 15k files (2 MB) and about
#: a hundred libraries; no real distribution comes near these.
MAX_RECORD_SIZE = 16 << 20  # read in ~0.5 s
MAX_RECORD_NAMES = 10_000  # top-level entries and library paths kept
#: A RECORD line longer than this is not a path: it is skipped.
_MAX_LINE = 1 << 16


#: A program a wheel installed into the environment's ``bin`` (``Scripts`` on Windows), as its
#: RECORD spells it from the site directory (``../../../bin/tool``).
_SCRIPT_DIRECTORY = re.compile(r"^(?:\.\./)+(?:[^/]+/)*(?:bin|Scripts)/[^/]+$")


class _RecordReader:
    """Reads one ``RECORD`` as a stream, within the budgets, keeping only what attribution
    needs: the top-level entries, the library-named paths and the programs installed into a
    ``bin``/``Scripts`` directory outside the site directory."""

    def __init__(self) -> None:
        self.top_level: dict[str, None] = {}
        self.libraries: set[str] = set()
        self.scripts: set[str] = set()
        self.problems: list[str] = []

    def read(self, handle: io.FileIO) -> None:
        text = io.TextIOWrapper(io.BufferedReader(handle), encoding="utf-8", errors="replace")
        consumed = 0
        continued = False  # inside a line longer than _MAX_LINE
        while line := text.readline(_MAX_LINE):
            consumed += len(line)
            if consumed > MAX_RECORD_SIZE:
                self.problems.append(
                    f"RECORD is larger than {MAX_RECORD_SIZE >> 20} MiB: the rest is not read"
                )
                return
            # A piece of a line longer than _MAX_LINE ends without a line break (as does the
            # last line of a file, which is shorter).
            cut = len(line) == _MAX_LINE and not line.endswith(("\n", "\r"))
            if not continued and not cut:
                self._add(_record_path(line.rstrip("\r\n")))
            continued = cut
            if len(self.libraries) + len(self.top_level) + len(self.scripts) > MAX_RECORD_NAMES:
                self.problems.append(
                    f"RECORD lists more than {MAX_RECORD_NAMES:,} libraries and top-level "
                    "entries: the rest is not read"
                )
                return

    def _add(self, path: str) -> None:
        if not path:
            return
        first = path.partition("/")[0]
        if first not in self.top_level:
            normalised = _normalised(path) if first in ("", ".", "..") or "\\" in first else first
            if normalised is not None:
                top = normalised.partition("/")[0]
                if not top.endswith(".dist-info"):
                    self.top_level.setdefault(top, None)
        if _LIBRARY_HINT.search(path):
            normalised = _normalised(path)
            if normalised is not None and is_library_name(normalised):
                self.libraries.add(normalised)
        if path.startswith(".."):  # ../../../bin/tool, ..\..\Scripts\tool.exe
            normal = posixpath.normpath(path.replace("\\", "/"))
            if _SCRIPT_DIRECTORY.match(normal) and is_executable_name(normal):
                self.scripts.add(normal)


def _record_path(line: str) -> str:
    """The path of a ``path,hash,size`` line (csv: a quoted path may hold a comma)."""
    if '"' not in line:
        return line.partition(",")[0]  # torch's RECORD has 15k lines: no csv module for those
    row = next(csv.reader([line]), [])
    return row[0] if row else ""


def read_distribution(dist_info: Path) -> InstalledDistribution:
    """Read one ``*.dist-info`` directory's ``RECORD``. Never raises: problems land in
    ``problem`` (and ``metadata.problem``). Nothing out of the directory holding ``dist_info``
    is read: a link that leads there (the directory itself, or one of its files) is a
    problem."""
    record = _RecordReader()
    try:
        with open_regular(dist_info / "RECORD", within=dist_info.parent) as handle:
            record.read(handle)
    except (OSError, csv.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return InstalledDistribution(dist_info, problem=f"unreadable RECORD: {reason}")
    return InstalledDistribution(
        dist_info,
        tuple(record.top_level),
        frozenset(record.libraries),
        record_problems=tuple(record.problems),
        scripts=tuple(sorted(record.scripts)),
    )


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
