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
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from torch_abi_audit.files import RealPaths, open_regular, read_at_most, read_regular
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
            real_path = RealPaths()  # both files: the site's real path is resolved once
            raw = read_regular(
                self.metadata_dir / "METADATA", MAX_METADATA_SIZE, within=site, real_path=real_path
            )
            what = "WHEEL"
            try:
                wheel_file: bytes | None = read_regular(
                    self.metadata_dir / "WHEEL", MAX_METADATA_SIZE, within=site, real_path=real_path
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
# A cheap pre-filter for library-like paths; is_library_name decides. The fast RECORD reader
# looks for the same extensions (_NAMED_HINT): one list for both.
_LIBRARY_EXTENSIONS = "so|dylib|pyd|dll"
_LIBRARY_HINT = re.compile(rf"\.(?:{_LIBRARY_EXTENSIONS})", re.IGNORECASE)


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
    """Reads one ``RECORD`` within the budgets, keeping only what attribution needs: the
    top-level entries (in order of first appearance), the library-named paths and the programs
    installed into a ``bin``/``Scripts`` directory outside the site directory.

    :meth:`read` tries :meth:`read_whole` (the whole file at once, with C-level string and
    regular-expression operations: torch's 15k lines in a few milliseconds) and falls back to
    :meth:`read_lines` (a stream read line by line, the reference) whenever the input is
    unusual. Both give the same ``top_level``, ``libraries``, ``scripts`` and ``problems``
    for every input; a test compares them.
    """

    def __init__(self) -> None:
        self.top_level: dict[str, None] = {}
        self.libraries: set[str] = set()
        self.scripts: set[str] = set()
        self.problems: list[str] = []

    def read(self, handle: io.FileIO) -> None:
        """Read the ``RECORD`` open in ``handle`` (a regular file, at its start)."""
        if not self.read_whole(read_at_most(handle, MAX_RECORD_SIZE + 1)):
            handle.seek(0)
            self.read_lines(handle)

    def read_lines(self, handle: io.FileIO) -> None:
        """Read ``handle`` as a stream, one line at a time, within the budgets."""
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
        self._add_named(path)

    def _add_named(self, path: str) -> None:
        """Keep ``path`` if it names a library or a program installed into ``bin``."""
        if _LIBRARY_HINT.search(path):
            normalised = _normalised(path)
            if normalised is not None and is_library_name(normalised):
                self.libraries.add(normalised)
        if path.startswith(".."):  # ../../../bin/tool, ..\..\Scripts\tool.exe
            normal = posixpath.normpath(path.replace("\\", "/"))
            if _SCRIPT_DIRECTORY.match(normal) and is_executable_name(normal):
                self.scripts.add(normal)

    def read_whole(self, data: bytes) -> bool:
        r"""Read ``data``, the start of a ``RECORD`` (up to ``MAX_RECORD_SIZE + 1`` bytes), as
        a whole if it is usual, and say whether it was read; when it was not, nothing was
        kept and :meth:`read_lines` must read the file.

        Why this keeps what :meth:`read_lines` keeps, whenever it returns ``True``:

        * Lines. The stream decodes UTF-8 (with replacement) and translates ``\r\n`` and a
          lone ``\r`` to ``\n``. Data that is not strict UTF-8, or holds a ``\r`` that is not
          followed by ``\n``, is left to the stream. Otherwise every ``\r`` ends a line, just
          before its ``\n``, and the stream's lines are the text's lines split at ``\n`` (only:
          ``readline`` knows no other separator, nor do the patterns below), each without the
          ``\r`` that may end it.
        * Budgets. At most ``MAX_RECORD_SIZE`` bytes decode to at most as many characters:
          the size budget is never reached. Data with a line of ``_MAX_LINE - 1`` characters
          or more (counting its ``\r``: where ``readline`` might cut it) is left to the stream.
          What is kept only grows line by line, so if the final count is within
          ``MAX_RECORD_NAMES`` it was after every line; if not, the stream says where it stops.
        * Paths. Data with a ``"`` (where the stream parses a line as CSV) or a backslash
          (which :func:`_normalised` turns into ``/``) is left to the stream. Otherwise a
          line's path is what precedes its first comma (or the line's end), as in
          :func:`_record_path`.
        * Top-level entries. For a line whose first path component is an ordinary name, the
          stream keeps that name unless it ends in ``.dist-info``; an empty first component (an
          empty line, ``/abs``) or ``..`` gives nothing (:func:`_normalised` keeps such a path
          absolute, or starting with ``..``, and returns ``None``); data with a ``.`` first
          component (``./x`` is ``x``) is left to the stream. So the entries are the distinct
          ordinary first components in order of first appearance: ``dict.fromkeys`` of the
          first component of each run of lines that share it.
        * Libraries and programs. The stream looks at a path further only when it matches
          :data:`_LIBRARY_HINT` or starts with ``..``. :data:`_NAMED_HINT` finds every such
          match anywhere in the text (and a few more, which :meth:`_RecordReader._add_named`
          then drops); a line whose first match begins before the line's first comma (none of
          the hint's characters is a comma or a line break) is a line whose path holds one,
          and each of those paths goes through the stream's own :meth:`_add_named`, once. What
          it keeps are sets: the order they are found in does not matter.
        """
        if len(data) > MAX_RECORD_SIZE or b'"' in data or b"\\" in data:
            return False
        if _LONE_RETURN.search(data):
            return False
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return False
        if _has_long_line(text, _MAX_LINE - 1):
            return False
        firsts = dict.fromkeys(_FIRST_COMPONENT_RUNS.findall(text))
        if "." in firsts:
            return False
        kept = _RecordReader()
        kept.top_level = dict.fromkeys(
            first
            for first in firsts
            if first and first != ".." and not first.endswith(".dist-info")
        )
        # Lines are taken lazily, and the budget checked as they are: a RECORD listing
        # hundreds of thousands of libraries goes to the stream, which stops at the budget,
        # after MAX_RECORD_NAMES of them here, not all of them.
        named = len(kept.top_level)
        if named > MAX_RECORD_NAMES:
            return False
        # The first match from a line start, then on from the next line: each character is
        # looked at a bounded number of times, however many matches a line holds.
        search, position = _NAMED_HINT.search, 0
        while (match := search(text, position)) is not None:
            hint = match.start()
            start = text.rfind("\n", position, hint) + 1 or position  # its line's start
            end = text.find("\n", hint)
            position = len(text) if end < 0 else end + 1
            if text.find(",", start, hint) >= 0:
                continue  # after the line's first comma: not in its path (nor a later match)
            kept._add_named(_line_path(text, start))
            if named + len(kept.libraries) + len(kept.scripts) > MAX_RECORD_NAMES:
                return False
        self.top_level, self.libraries, self.scripts = kept.top_level, kept.libraries, kept.scripts
        return True


#: A ``\r`` that does not end a line (the stream would make it one).
_LONE_RETURN = re.compile(rb"\r(?!\n)")
#: One match per run of lines that share their first path component (captured, without a
#: ``\r``): the first line whole, then the lines that follow with the same first component
#: (followed by ``,`` or ``/``). An empty match may follow the last line.
_FIRST_COMPONENT_RUNS = re.compile(r"([^,/\r\n]*)[^\n]*\n?(?:\1[,/][^\n]*\n)*")
#: What makes a line's path worth a look (:meth:`_RecordReader.read_whole`): a match of
#: :data:`_LIBRARY_HINT` or a ``..`` (every path that matches the hint or starts with ``..``
#: holds one). Searched unanchored, from its leading dot: a pattern anchored at each line start
#: was tried at every character of the text (65 ms for the 3 MB of the benchmark environment's
#: RECORDs, against 7 ms).
_NAMED_HINT = re.compile(rf"\.(?:{_LIBRARY_EXTENSIONS}|\.)", re.IGNORECASE)


def _has_long_line(text: str, limit: int) -> bool:
    r"""True when a line of ``text`` holds ``limit`` characters or more (before its ``\n``).

    Looks at ``limit`` characters at a time from a line's start: if they hold no line break,
    that line is long; if they do, every line up to the last of them is shorter than
    ``limit``, and the next window starts after it.
    """
    start = 0
    while len(text) - start >= limit:
        end = text.rfind("\n", start, start + limit)
        if end < 0:
            return True
        start = end + 1
    return False


def _line_path(text: str, start: int) -> str:
    r"""The path of the line starting at ``start``: up to its first comma, or its end (a
    ``\r`` before its ``\n`` is not part of it)."""
    end = text.find("\n", start)
    if end < 0:
        end = len(text)
    comma = text.find(",", start, end)
    if comma >= 0:
        return text[start:comma]
    return text[start:end].removesuffix("\r")


def _record_path(line: str) -> str:
    """The path of a ``path,hash,size`` line (csv: a quoted path may hold a comma)."""
    if '"' not in line:
        return line.partition(",")[0]  # torch's RECORD has 15k lines: no csv module for those
    row = next(csv.reader([line]), [])
    return row[0] if row else ""


def read_distribution(dist_info: Path, real_path: RealPaths | None = None) -> InstalledDistribution:
    """Read one ``*.dist-info`` directory's ``RECORD``. Never raises: problems land in
    ``problem`` (and ``metadata.problem``). Nothing out of the directory holding ``dist_info``
    is read: a link that leads there (the directory itself, or one of its files) is a
    problem. ``real_path`` resolves real paths for that check (one per scan of a site
    directory; default: afresh)."""
    record = _RecordReader()
    try:
        record_file = dist_info / "RECORD"
        with open_regular(record_file, within=dist_info.parent, real_path=real_path) as handle:
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


def _record_size(dist_info: Path) -> int:
    """The size of ``dist_info``'s ``RECORD``, an order only: 0 when it cannot be told, or
    when ``dist_info`` is a link (which may lead out of the site directory: never looked into
    before :func:`read_distribution` has checked it)."""
    try:
        return 0 if dist_info.is_symlink() else (dist_info / "RECORD").lstat().st_size
    except OSError:
        return 0


def find_distributions(
    site_dir: Path, on_read: Callable[[InstalledDistribution], object] | None = None
) -> list[InstalledDistribution]:
    """Every ``*.dist-info`` distribution installed in ``site_dir``, sorted by name.

    ``on_read`` is called with each distribution as soon as its ``RECORD`` is read (an
    environment scan starts on its libraries while the other ``RECORD``s are read); the
    largest ``RECORD``s are read first, the packages with the most files, and usually with
    the largest libraries. Raises :class:`OSError` if ``site_dir`` cannot be listed.
    """
    real_path = RealPaths()
    directories = [
        entry
        for entry in site_dir.iterdir()
        if entry.name.endswith(".dist-info") and entry.is_dir()
    ]
    if on_read is not None:
        directories.sort(key=_record_size, reverse=True)
    found = []
    for entry in directories:
        dist = read_distribution(entry, real_path)
        found.append(dist)
        if on_read is not None:
            on_read(dist)
    # PEP 503 normalisation, spelled out: packaging.utils would import packaging.tags here.
    return sorted(found, key=lambda d: _NAME_SEPARATORS.sub("-", d.directory_name).lower())
