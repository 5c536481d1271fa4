"""Wheels as sources: check the archive, list its libraries and read its metadata, in place.

A wheel (PEP 427, the binary distribution format) is a zip archive. It is audited without
extracting anything: :class:`WheelArchive` reads the central directory
(:mod:`torch_abi_audit.sources.zip_directory`), rejects hostile or broken archives with a clear
reason, and hands out each library member as a byte source
(:mod:`torch_abi_audit.sources.wheel_bytes`).

Hostile archives: unsafe member names (absolute, ``..``, drive letters, backslashes, NUL — as
the central directory spells them), duplicate names, symbolic-link members, members that overlap
each other (the "non-recursive zip bomb"), and declared sizes or compression ratios no real wheel
has. Such problems are reported; the members that are safe to read are still audited. An archive
whose central directory holds more members than any wheel is refused before it is parsed, and
metadata members are read as bounded streams (a bomb cannot inflate past its declared size).
"""

from __future__ import annotations

import itertools
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from torch_abi_audit.files import open_regular
from torch_abi_audit.readers.detect import MAGIC_SIZE, detect_format
from torch_abi_audit.readers.errors import BinaryReadError
from torch_abi_audit.readers.source import FileBytes
from torch_abi_audit.sources.deflate_seek import DeflateSeeker
from torch_abi_audit.sources.discovery import (
    has_execute_bit,
    is_executable_name,
    is_library_name,
)
from torch_abi_audit.sources.metadata import (
    MAX_METADATA_SIZE,
    DistributionMetadata,
    parse_metadata,
)
from torch_abi_audit.sources.wheel_bytes import (
    ZIP_BZIP2,
    ZIP_DEFLATED,
    ZIP_LZMA,
    ZIP_STORED,
    ChunkStream,
    MemberData,
    Progress,
    StoredMember,
    StreamedMember,
    decompress,
    inflate,
    member_data_offset,
    stored_chunks,
)
from torch_abi_audit.sources.zip_directory import (
    Entry,
    TooManyEntries,
    ZipDirectoryError,
    read_directory,
)

# Limits no real wheel comes near (the CUDA torch wheel: 13k members, 1.1 GB unpacked; its
# largest library 0.5 GB at a 1.4:1 ratio). Deflate cannot exceed ~1032:1.
MAX_MEMBERS = 100_000  # the CUDA torch wheel has 13k
MAX_MEMBER_SIZE = 16 << 30
MAX_TOTAL_SIZE = 64 << 30
MAX_RATIO = 200
RATIO_CHECK_ABOVE = 64 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
_SCRIPTS = re.compile(r"^[^/]+\.data/scripts/")
_ENCRYPTED = 0x1  # general purpose flag bit 0 (APPNOTE 4.4.4)
_UNIX = 3  # "version made by" high byte: the host system whose attributes are recorded


class WheelError(Exception):
    """The file cannot be read as a wheel at all (not a zip archive, truncated, unreadable)."""


class WheelMember(NamedTuple):
    """A library inside a wheel: the unit of work for the engine."""

    wheel: Path
    name: str
    size: int

    @property
    def display_path(self) -> Path:
        """``<wheel>/<member>``: what reports call this library."""
        return self.wheel / self.name


@dataclass(frozen=True)
class WheelInfo:
    """What the file name of a wheel says (PEP 427), parsed by ``packaging``."""

    filename: str
    name: str
    version: str
    build: str | None
    tags: tuple[str, ...]

    @property
    def abi_tags(self) -> frozenset[str]:
        """The ABI parts of the tags (``cp311``, ``abi3``, ``none``)."""
        return frozenset(tag.split("-")[1] for tag in self.tags)

    @property
    def platforms(self) -> frozenset[str]:
        """The platform parts of the tags (``manylinux_2_28_x86_64``, ``any``)."""
        return frozenset(tag.split("-")[2] for tag in self.tags)


def parse_wheel_name(path: Path) -> WheelInfo:
    """Parse a wheel's file name. Raises :class:`ValueError` if it is not a valid one."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    try:
        name, version, build, tags = parse_wheel_filename(path.name)
    except InvalidWheelFilename as exc:
        raise ValueError(str(exc)) from exc
    return WheelInfo(
        filename=path.name,
        name=str(name),
        version=str(version),
        build="".join(str(part) for part in build) or None,
        tags=tuple(sorted(str(tag) for tag in tags)),
    )


def unsafe_name_reason(name: str) -> str | None:
    """Why a member name would escape or confuse an extraction, or ``None`` if it is safe."""
    if "\0" in name:
        return "contains a NUL byte"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/") or _DRIVE.match(name):
        return "is an absolute path"
    if ".." in name.split("/"):
        return "contains '..'"
    return None


def _is_link(info: Entry) -> bool:
    """A member whose Unix mode (high half of the external attributes, made on Unix:
    APPNOTE 4.4.2, 4.4.15) says symbolic link: its data is the link's target path."""
    return info.create_system == _UNIX and stat.S_ISLNK(info.external_attr >> 16)


class WheelArchive:
    """An open wheel: validated central directory, library members and metadata.

    Raises :class:`WheelError` from the constructor when the file is not a readable zip
    archive. Structural problems that still allow reading (hostile names, duplicates, zip-bomb
    sizes) are collected in :attr:`problems`, and the members concerned are never read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []
        try:
            self._handle = open_regular(path)  # a FIFO named *.whl is refused, not waited on
        except OSError as exc:
            raise WheelError(f"cannot read: {exc.strerror or exc}") from exc
        self._bytes = FileBytes(self._handle)
        try:
            infos = read_directory(self._bytes, MAX_MEMBERS)
        except TooManyEntries as exc:
            self._handle.close()
            raise WheelError(f"{exc}: more than any real wheel (zip bomb?)") from exc
        except (ZipDirectoryError, OSError) as exc:
            self._handle.close()
            raise WheelError(f"not a readable zip archive ({exc})") from exc
        self._infos: dict[str, Entry] = {}
        self._unsafe: set[str] = set()
        self._check(infos)

    @classmethod
    def of_members(cls, path: Path, entries: Iterable[Entry]) -> WheelArchive:
        """The archive at ``path``, knowing only ``entries`` of its central directory (members a
        process that read and checked the whole directory found safe to read): for a worker
        process that reads those members, without reading the directory again.

        Raises :class:`WheelError` when the file cannot be opened.
        """
        archive = cls.__new__(cls)
        archive.path = path
        archive.problems = []
        try:
            archive._handle = open_regular(path)
        except OSError as exc:
            raise WheelError(f"cannot read: {exc.strerror or exc}") from exc
        archive._bytes = FileBytes(archive._handle)
        archive._infos = {entry.filename: entry for entry in entries}
        archive._unsafe = set()
        return archive

    def add_entries(self, entries: Iterable[Entry]) -> None:
        """Know more members of an archive made :meth:`of_members` (entries it has stay)."""
        for entry in entries:
            self._infos.setdefault(entry.filename, entry)

    def entries(self, names: Iterable[str]) -> list[Entry]:
        """The central directory entries of the members ``names`` (those it has)."""
        return [self._infos[name] for name in names if name in self._infos]

    def _check(self, infos: list[Entry]) -> None:
        total = 0
        for info in infos:
            name = info.filename
            # A name is cut at its first NUL (``filename``, as zipfile does): the check reads
            # the name as the central directory spells it (``orig_filename``).
            reason = unsafe_name_reason(info.orig_filename)
            if reason is not None:
                self.problems.append(f"unsafe member name {info.orig_filename!r}: {reason}")
                self._unsafe.add(name)
            if name in self._infos:
                self.problems.append(f"duplicate member name {name!r}")
                self._unsafe.add(name)
                continue
            self._infos[name] = info
            total += info.file_size
            if info.file_size > MAX_MEMBER_SIZE:
                self.problems.append(f"{name}: declared size {info.file_size} bytes is absurd")
                self._unsafe.add(name)
            elif info.file_size > RATIO_CHECK_ABOVE and info.file_size > MAX_RATIO * max(
                1, info.compress_size
            ):
                self.problems.append(
                    f"{name}: compression ratio {info.file_size // max(1, info.compress_size)}:1 "
                    "is absurd (zip bomb?)"
                )
                self._unsafe.add(name)
            elif info.compress_type == ZIP_STORED and info.compress_size != info.file_size:
                # A stored member is read for file_size bytes from its data: a smaller
                # compress_size would let it read into the members after it unnoticed by the
                # overlap check, which measures compressed sizes.
                self.problems.append(
                    f"{name}: stored member declares {info.file_size} bytes but holds "
                    f"{info.compress_size} (corrupt or overlapping)"
                )
                self._unsafe.add(name)
            if _is_link(info):
                self.problems.append(
                    f"{name}: a symbolic link member (to the path it holds): wheels carry no "
                    "links, it is not read"
                )
                self._unsafe.add(name)
        if total > MAX_TOTAL_SIZE:
            self.problems.append(f"members declare {total} bytes in all (zip bomb?)")
            self._unsafe.update(self._infos)
        self._check_overlaps(infos)

    def _check_overlaps(self, infos: list[Entry]) -> None:
        # Each member's local header, name and data must end before the next member begins;
        # overlapping entries let a small archive declare gigabytes (APPNOTE 4.3.6 layout).
        ordered = sorted(infos, key=lambda i: i.header_offset)
        for current, following in itertools.pairwise(ordered):
            end = current.header_offset + 30 + current.name_length + current.compress_size
            if end > following.header_offset:
                self.problems.append(
                    f"members {current.filename!r} and {following.filename!r} overlap (zip bomb?)"
                )
                self._unsafe.update({current.filename, following.filename})

    # -- contents -------------------------------------------------------------------------

    def library_members(self) -> list[WheelMember]:
        """The library-named members that are safe to read, in name order."""
        return [
            WheelMember(self.path, name, info.file_size)
            for name, info in sorted(self._infos.items())
            if not info.is_dir() and name not in self._unsafe and is_library_name(name)
        ]

    def executable_members(self) -> list[WheelMember]:
        """The members that are programs, in name order: everything under ``<dist>.data/scripts/``
        (installed into the environment's ``bin``/``Scripts``), and members named like programs
        (no extension, or ``.exe``) that are executable by their recorded Unix mode or lie in a
        ``bin`` directory. Only those have their first bytes read (inflated from the member's
        start), and only ELF, Mach-O and PE images are kept: scripts are not programs to audit.
        """
        found = []
        for name, info in sorted(self._infos.items()):
            script = _SCRIPTS.match(name) is not None
            if not script and not is_executable_name(name):  # most names: cheap to tell
                continue
            if info.is_dir() or name in self._unsafe or is_library_name(name):
                continue
            runnable = (
                script
                or name.lower().endswith(".exe")
                or "/bin/" in f"/{name}"
                or has_execute_bit(info.external_attr >> 16)
            )
            if runnable and self._starts_like_a_binary(name):
                found.append(WheelMember(self.path, name, info.file_size))
        return found

    def _starts_like_a_binary(self, name: str) -> bool:
        try:
            member = self.open_member(name)
        except BinaryReadError:
            return False
        try:
            head = member.read(0, min(MAGIC_SIZE, member.size), "magic")
        except BinaryReadError:
            return False
        finally:
            member.close()
        return detect_format(head) is not None

    def member_names(self) -> list[str]:
        """Every member that is safe to read (directories included), in name order."""
        return sorted(name for name in self._infos if name not in self._unsafe)

    def read_text(self, name: str) -> str:
        """A small text member (metadata, ``version.py``), decoded leniently.

        Raises :class:`WheelError` if it is missing, unsafe, too large or corrupt.
        """
        return self._read_small(name).decode("utf-8", errors="replace")

    def dist_info_dir(self) -> str | None:
        """The archive's ``*.dist-info`` directory (PEP 427: exactly one, at the top)."""
        found = sorted(
            {
                name.split("/", 1)[0]
                for name in self._infos
                if name.split("/", 1)[0].endswith(".dist-info") and "/" in name
            }
        )
        if len(found) > 1:
            self.problems.append(f"several .dist-info directories: {', '.join(found)}")
        return found[0] if found else None

    def metadata(self) -> DistributionMetadata:
        """``METADATA`` and ``WHEEL`` of the wheel; never raises (problems say why not)."""
        fallback = DistributionMetadata(self.path.name.split("-", 1)[0], "")
        dist_info = self.dist_info_dir()
        if dist_info is None:
            self.problems.append("no .dist-info directory: not a valid wheel")
            return fallback
        try:
            raw = self._read_small(f"{dist_info}/METADATA")
            wheel_file = self._read_small(f"{dist_info}/WHEEL", required=False)
            return parse_metadata(raw, wheel_file=wheel_file)
        except (WheelError, ValueError, UnicodeDecodeError) as exc:
            problem = f"unreadable METADATA: {exc}"
            self.problems.append(problem)
            return DistributionMetadata(fallback.name, "", problem=problem)

    def _read_small(self, name: str, *, required: bool = True) -> bytes:
        """A metadata member (``METADATA``, ``WHEEL``, ``RECORD``, ``version.py``), whole.

        Decompressed as a stream that stops at the size the central directory declares
        (itself at most :data:`MAX_METADATA_SIZE`): a member that inflates past it (a bzip2
        bomb declaring 200 bytes) fails after one bounded step, and memory stays within the
        budget whatever the compression ratio. Size and CRC-32 are checked. Raises
        :class:`WheelError` if the member is missing, unsafe, too large, encrypted, compressed
        with a method no reader here knows, or corrupt.
        """
        info = self._infos.get(name)
        if info is None or name in self._unsafe:
            if required:
                raise WheelError(f"{name} is missing")
            return b""
        if info.file_size > MAX_METADATA_SIZE:
            raise WheelError(
                f"{name} declares {info.file_size} bytes, more than the "
                f"{MAX_METADATA_SIZE >> 20} MiB read of a metadata file"
            )
        if info.flag_bits & _ENCRYPTED:
            raise WheelError(f"{name} is encrypted")
        try:
            start = member_data_offset(self._bytes, info.header_offset, name)
            data = MemberData(name, start, info.compress_size, info.file_size, info.CRC)
            return b"".join(self._metadata_chunks(info.compress_type, data))
        except BinaryReadError as exc:
            raise WheelError(str(exc)) from exc

    def _metadata_chunks(self, method: int, data: MemberData) -> ChunkStream:
        if method == ZIP_STORED:
            return stored_chunks(self._bytes, data)
        if method == ZIP_DEFLATED:
            return inflate(self._bytes, data)
        if method in (ZIP_BZIP2, ZIP_LZMA):
            return decompress(self._bytes, data, method)
        raise BinaryReadError(f"{data.name}: compression method {method} is not supported")

    def open_member(self, name: str, *, seek: bool = True) -> StoredMember | StreamedMember:
        """A byte source over one member. Raises :class:`BinaryReadError` if it cannot be.

        ``seek``: a deflated member may be entered in the middle for reads far into it
        (:mod:`torch_abi_audit.sources.deflate_seek`); without it, it is only ever decompressed
        from its start (every byte served is then proven by the stream from the start, as
        ``--verify-archive`` wants)."""
        info = self._infos.get(name)
        if info is None or name in self._unsafe:
            raise BinaryReadError(f"{name}: not a readable member of {self.path.name}")
        if info.flag_bits & _ENCRYPTED:
            # Encrypted data would otherwise be read as if it were plain (stored, deflate).
            raise BinaryReadError(f"{name}: the member is encrypted, it cannot be read")
        start = member_data_offset(self._bytes, info.header_offset, name)
        data = MemberData(name, start, info.compress_size, info.file_size, info.CRC)
        if info.compress_type == ZIP_STORED:
            return StoredMember(self._bytes, data)
        if info.compress_type == ZIP_DEFLATED:
            progress = Progress()
            seeker = (self._seeker(data), progress) if seek else None
            return StreamedMember(
                lambda: inflate(self._bytes, data, progress, defer_checksum=True),
                info.file_size,
                name,
                seeker,
                spill_chunks=lambda: inflate(self._bytes, data, progress),
            )
        if info.compress_type in (ZIP_BZIP2, ZIP_LZMA):  # bug fix: see wheel_bytes.decompress
            method = info.compress_type
            return StreamedMember(
                lambda: decompress(self._bytes, data, method), info.file_size, name
            )
        # Other methods (zipfile knows no more than these four either).
        method = info.compress_type
        raise BinaryReadError(f"{name}: compression method {method} is not supported")

    def _seeker(self, data: MemberData) -> DeflateSeeker:
        archive, start, what = self._bytes, data.start, f"compressed data of {data.name}"

        def read(offset: int, length: int) -> bytes:
            length = max(0, min(length, data.compressed_size - offset))
            return archive.read(start + offset, length, what)

        return DeflateSeeker(read, data.compressed_size, data.size)

    def reopen(self) -> None:
        """Read through a file descriptor of this process's own (after a fork), keeping the
        parsed central directory (a directory of 13k entries costs ~15 ms to read again), on
        a descriptor whose position is not shared with the parent.
        Raises :class:`WheelError` when the file cannot be opened any more."""
        try:
            handle = open_regular(self.path)  # swapped for a FIFO since: refused, not waited on
        except OSError as exc:
            raise WheelError(f"cannot read: {exc.strerror or exc}") from exc
        self._handle = handle
        self._bytes = FileBytes(handle)

    def close(self) -> None:
        """Close the archive file."""
        self._handle.close()

    def __enter__(self) -> WheelArchive:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# Archives opened by this process, reused between listing a wheel and reading its members (the
# central directory of a torch wheel holds 13k entries). A forked worker keeps its parent's
# parsed directories but reads through file descriptors of its own (its parent's file
# position, which zipfile seeks, must not be shared), opened when it first uses the archive.
_open_archives: dict[Path, WheelArchive] = {}
_inherited: set[Path] = set()
_MAX_OPEN = 32
# Entries of members a worker was handed with its work (see :func:`member_entries`), for
# archives it has not opened: it reads those members without reading the directory.
_handed: dict[Path, dict[str, Entry]] = {}


def member_entries(members: Iterable[WheelMember]) -> dict[Path, list[Entry]]:
    """The central directory entries of ``members`` in the archives this process has open
    (read and checked), by archive: what a worker forked before they were opened needs to read
    those members (:func:`receive_entries`)."""
    found: dict[Path, list[str]] = {}
    for member in members:
        if member.wheel in _open_archives:
            found.setdefault(member.wheel, []).append(member.name)
    return {path: _open_archives[path].entries(names) for path, names in found.items()}


def receive_entries(entries: dict[Path, list[Entry]]) -> None:
    """Take entries from :func:`member_entries` (in a worker): :func:`open_wheel` then reads
    those members of an archive this process has not read the directory of."""
    for path, found in entries.items():
        _handed.setdefault(path, {}).update((entry.filename, entry) for entry in found)
        archive = _open_archives.get(path)
        if archive is not None and path not in _inherited:
            archive.add_entries(found)


def _after_fork() -> None:
    _inherited.update(_open_archives)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def open_wheel(path: Path) -> WheelArchive:
    """The open :class:`WheelArchive` for ``path``, shared within this process.

    Raises :class:`WheelError` as the constructor does. Close them all with
    :func:`close_wheels`.
    """
    archive = _open_archives.get(path)
    if archive is not None and path in _inherited:
        _inherited.discard(path)
        try:
            archive.reopen()
        except WheelError:
            del _open_archives[path]
            raise
    if archive is None:
        if len(_open_archives) >= _MAX_OPEN:
            oldest = next(iter(_open_archives))
            _inherited.discard(oldest)
            _open_archives.pop(oldest).close()
        handed = _handed.get(path)
        archive = WheelArchive.of_members(path, handed.values()) if handed else WheelArchive(path)
        _open_archives[path] = archive
    return archive


def close_wheels() -> None:
    """Close every archive :func:`open_wheel` opened in this process."""
    _inherited.clear()
    _handed.clear()
    while _open_archives:  # an inherited descriptor is closed in this process only
        _open_archives.popitem()[1].close()
