"""Wheels as sources: check the archive, list its libraries and read its metadata, in place.

A wheel (PEP 427, the binary distribution format) is a zip archive. It is audited without
extracting anything: :class:`WheelArchive` reads the central directory, rejects hostile or
broken archives with a clear reason, and hands out each library member as a byte source
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
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

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

# Limits no real wheel comes near (the CUDA torch wheel: 13k members, 1.1 GB unpacked; its
# largest library 0.5 GB at a 1.4:1 ratio). Deflate cannot exceed ~1032:1.
MAX_MEMBERS = 100_000  # zipfile spends ~14 us on each; the CUDA torch wheel has 13k
MAX_MEMBER_SIZE = 16 << 30
MAX_TOTAL_SIZE = 64 << 30
MAX_RATIO = 200
RATIO_CHECK_ABOVE = 64 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
_SCRIPTS = re.compile(r"^[^/]+\.data/scripts/")
_ENCRYPTED = 0x1  # general purpose flag bit 0 (APPNOTE 4.4.4)
_UTF8 = 0x800  # general purpose flag bit 11: the name is UTF-8
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


# APPNOTE 4.3.16 (end of central directory record), 4.3.14-15 (the Zip64 ones).
_END = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_END = struct.Struct("<4sQ2H2L4Q")
_CENTRAL_SIGNATURE = b"PK\x01\x02"


def _central_directory_span(source: FileBytes) -> tuple[int, int] | None:
    """Where the central directory lies (offset, size), as zipfile will find it: the last end
    record, its Zip64 counterpart if it has one, the directory just before. ``None`` when the
    records cannot be found or read (zipfile then says why)."""
    tail_size = min(source.size, _END.size + 0xFFFF)
    tail = source.read(source.size - tail_size, tail_size, "end of central directory")
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _END.size > len(tail):
        return None
    fields = _END.unpack_from(tail, at)
    end = source.size - tail_size + at
    size = fields[5]
    if end >= 20:  # zipfile looks for a Zip64 locator before every end record
        locator = _ZIP64_LOCATOR.unpack(source.read(end - 20, 20, "Zip64 locator"))
        if locator[0] == b"PK\x06\x07" and end - 20 >= _ZIP64_END.size:
            end -= 20 + _ZIP64_END.size  # the Zip64 record sits right before its locator
            record = _ZIP64_END.unpack(source.read(end, _ZIP64_END.size, "Zip64 end record"))
            if record[0] != b"PK\x06\x06":
                return None
            size = record[7]
    return (end - size, size) if 0 <= size <= end else None


def _check_member_count(handle: BinaryIO) -> None:
    """Refuse an archive whose central directory holds more than :data:`MAX_MEMBERS` entries,
    before zipfile builds an object for each (500,000 cost it 9 s and 350 MB). Every entry
    starts with the central header signature, so counting signatures bounds the count from
    above; the declared count is not trusted (zipfile reads as many as the directory holds).
    Raises :class:`WheelError`.
    """
    source = FileBytes(handle)
    try:
        span = _central_directory_span(source)
    except BinaryReadError:
        return
    if span is None:
        return
    start, size = span
    count = 0
    step = 16 << 20
    for offset in range(start, start + size, step):
        # 3 bytes of overlap: a signature across two steps is counted once, in the first.
        length = min(step + 3, start + size - offset)
        count += source.read(offset, length, "central directory").count(_CENTRAL_SIGNATURE)
        if count > MAX_MEMBERS:
            raise WheelError(
                f"the central directory holds more than {MAX_MEMBERS:,} members: more than any "
                "real wheel (zip bomb?)"
            )


def _is_link(info: zipfile.ZipInfo) -> bool:
    """A member whose Unix mode (high half of the external attributes, made on Unix:
    APPNOTE 4.4.2, 4.4.15) says symbolic link: its data is the link's target path."""
    return info.create_system == _UNIX and stat.S_ISLNK(info.external_attr >> 16)


def _name_length(info: zipfile.ZipInfo) -> int:
    """The length in bytes of a member's name as stored (UTF-8 when general purpose bit 11 is
    set, else code page 437: APPNOTE 4.4.4 and appendix D)."""
    encoding = "utf-8" if info.flag_bits & _UTF8 else "cp437"
    return len(info.orig_filename.encode(encoding, errors="surrogateescape"))


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
        try:
            _check_member_count(self._handle)
            self._zip = zipfile.ZipFile(self._handle)
            self._bytes = FileBytes(self._handle)
            infos = self._zip.infolist()
        # zipfile raises NotImplementedError for an entry that needs a newer "version needed to
        # extract" than it supports.
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            OSError,
            EOFError,
            ValueError,
            NotImplementedError,
        ) as exc:
            self._handle.close()
            raise WheelError(f"not a readable zip archive ({exc})") from exc
        self._infos: dict[str, zipfile.ZipInfo] = {}
        self._unsafe: set[str] = set()
        self._check(infos)

    def _check(self, infos: list[zipfile.ZipInfo]) -> None:
        total = 0
        for info in infos:
            name = info.filename
            # zipfile cuts a name at its first NUL (``filename``): the check reads the name as
            # the central directory spells it (``orig_filename``).
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

    def _check_overlaps(self, infos: list[zipfile.ZipInfo]) -> None:
        # Each member's local header, name and data must end before the next member begins;
        # overlapping entries let a small archive declare gigabytes (APPNOTE 4.3.6 layout).
        ordered = sorted(infos, key=lambda i: i.header_offset)
        for current, following in itertools.pairwise(ordered):
            end = current.header_offset + 30 + _name_length(current) + current.compress_size
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
            if info.is_dir() or name in self._unsafe or is_library_name(name):
                continue
            script = _SCRIPTS.match(name) is not None
            if not script and not is_executable_name(name):
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
                lambda: inflate(self._bytes, data, progress), info.file_size, name, seeker
            )
        if info.compress_type in (ZIP_BZIP2, ZIP_LZMA):  # bug fix: see wheel_bytes.decompress
            method = info.compress_type
            return StreamedMember(
                lambda: decompress(self._bytes, data, method), info.file_size, name
            )
        # Other methods: zipfile's own reader, which refuses them (NotImplementedError).
        return StreamedMember(lambda: self._zip_chunks(info), info.file_size, name)

    def _seeker(self, data: MemberData) -> DeflateSeeker:
        archive, start, what = self._bytes, data.start, f"compressed data of {data.name}"

        def read(offset: int, length: int) -> bytes:
            length = max(0, min(length, data.compressed_size - offset))
            return archive.read(start + offset, length, what)

        return DeflateSeeker(read, data.compressed_size, data.size)

    def _zip_chunks(self, info: zipfile.ZipInfo) -> ChunkStream:
        try:
            with self._zip.open(info) as stream:
                while chunk := stream.read(4 << 20):
                    yield chunk
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise BinaryReadError(f"{info.filename}: {exc}") from exc

    def reopen(self) -> None:
        """Read through a file descriptor of this process's own (after a fork), keeping the
        parsed central directory: a worker must not share its parent's file position, which
        zipfile seeks, and parsing a directory of 13k entries again costs each worker ~50 ms.
        Raises :class:`WheelError` when the file cannot be opened any more."""
        try:
            handle = open_regular(self.path)  # swapped for a FIFO since: refused, not waited on
        except OSError as exc:
            raise WheelError(f"cannot read: {exc.strerror or exc}") from exc
        self._handle = handle
        self._bytes = FileBytes(handle)
        self._zip.fp = handle  # zipfile reads members through fp (its directory is parsed)

    def close(self) -> None:
        """Close the archive file."""
        self._zip.close()
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
        archive = WheelArchive(path)
        _open_archives[path] = archive
    return archive


def close_wheels() -> None:
    """Close every archive :func:`open_wheel` opened in this process."""
    _inherited.clear()
    while _open_archives:  # an inherited descriptor is closed in this process only
        _open_archives.popitem()[1].close()
