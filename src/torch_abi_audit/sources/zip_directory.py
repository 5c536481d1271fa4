"""The central directory of a zip archive, read in one pass (PKWARE APPNOTE.TXT 4.3.12-4.3.16).

:mod:`zipfile` builds a ``ZipInfo`` object per member, and decodes names through a charmap
codec: the 13,000 members of the torch CUDA wheel cost it ~40 ms before an audit can read a
byte of a library (and more when names are measured again). This module reads the same
records into light :class:`Entry` tuples, with the attributes of ``ZipInfo`` that the wheel
source uses and the length of each name as stored.

It accepts and refuses what CPython 3.11's ``zipfile`` does, with the same reasons: the end
record is the last 22 bytes when the archive has no comment, else the last signature in the
final 64 KiB; a Zip64 locator before it leads to the Zip64 end record (archives spanning
several disks are refused); data prepended to the archive shifts every offset; a truncated
directory, a bad entry signature, a "version needed to extract" above 6.3 and a malformed
extra field are errors; a name ends at its first NUL (``filename``; ``orig_filename`` keeps
all of it). Unlike ``zipfile``, the result does not change with the Python version.
"""

from __future__ import annotations

import os
import struct
from typing import Any, NamedTuple

from torch_abi_audit.readers.errors import BinaryReadError
from torch_abi_audit.readers.source import ByteSource

_END = struct.Struct("<4s4H2LH")  # APPNOTE 4.3.16
_END_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")  # 4.3.15
_ZIP64_END = struct.Struct("<4sQ2H2L4Q")  # 4.3.14
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # 4.3.12
_CENTRAL_SIGNATURE = b"PK\x01\x02"
_EXTRA_HEADER = struct.Struct("<HH")
_ZIP64_EXTRA = 0x0001  # 4.5.3
_UTF8 = 0x800  # general purpose bit 11: the name is UTF-8 (else code page 437)
_MAX_EXTRACT_VERSION = 63  # what zipfile reads
_COMMENT_REACH = 1 << 16


class ZipDirectoryError(Exception):
    """The file is not a readable zip archive; the message says why (as ``zipfile`` would)."""


class TooManyEntries(ZipDirectoryError):
    """The central directory holds more entries than the caller accepts (counted by their
    signatures before any is decoded: the declared count is not trusted)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the central directory holds more than {limit:,} members")
        self.limit = limit


class Entry(NamedTuple):
    """One member as the central directory describes it (``ZipInfo``'s names)."""

    filename: str  # the name up to its first NUL
    orig_filename: str  # the whole name
    name_length: int  # bytes of the name as stored
    create_system: int  # high byte of "version made by": whose attributes these are
    extract_version: int
    flag_bits: int
    compress_type: int
    CRC: int  # zipfile's name
    compress_size: int
    file_size: int
    external_attr: int
    header_offset: int  # of the local header, in the file

    def is_dir(self) -> bool:
        """Whether the member is a directory (its name ends with ``/``)."""
        return self.filename.endswith("/")


class _EndRecord(NamedTuple):
    location: int  # where the end record lies
    size: int  # of the central directory
    offset: int  # of the central directory, as declared
    zip64: bool


def read_directory(source: ByteSource, max_entries: int) -> list[Entry]:
    """Every entry of the archive's central directory, in its order.

    Raises :class:`TooManyEntries` when it holds more than ``max_entries`` entries (before
    decoding any), :class:`ZipDirectoryError` when the archive cannot be read as ``zipfile``
    would refuse it, and :class:`OSError` when the file cannot be read.
    """
    try:
        end = _end_record(source)
        if end is None:
            raise ZipDirectoryError("File is not a zip file")
        # Data before the archive (a self-extractor's) shifts every offset by this much.
        shift = end.location - end.size - end.offset
        if end.zip64:
            shift -= _ZIP64_END.size + _ZIP64_LOCATOR.size
        start = end.offset + shift
        if start < 0:
            raise ZipDirectoryError("Bad offset for central directory")
        length = max(0, min(end.size, source.size - start))
        data = source.read(start, length, "central directory") if length else b""
    except BinaryReadError as exc:
        raise ZipDirectoryError(str(exc)) from exc
    if data.count(_CENTRAL_SIGNATURE) > max_entries:  # an upper bound of the entries
        raise TooManyEntries(max_entries)
    return _entries(data, end.size, shift)


def _end_record(source: ByteSource) -> _EndRecord | None:
    """The end of central directory record, found as zipfile finds it; None if there is none."""
    size = source.size
    if size < _END.size:
        return None
    last = source.read(size - _END.size, _END.size, "end of central directory")
    if last.startswith(_END_SIGNATURE) and last.endswith(b"\0\0"):  # no archive comment
        return _with_zip64(source, size - _END.size, _END.unpack(last))
    first = max(size - _COMMENT_REACH - _END.size, 0)
    tail = source.read(first, size - first, "end of central directory")
    at = tail.rfind(_END_SIGNATURE)
    if at < 0 or len(tail) - at < _END.size:
        return None
    return _with_zip64(source, first + at, _END.unpack_from(tail, at))


def _with_zip64(source: ByteSource, location: int, fields: tuple[Any, ...]) -> _EndRecord:
    size, offset = int(fields[5]), int(fields[6])
    plain = _EndRecord(location, size, offset, zip64=False)
    if location < _ZIP64_LOCATOR.size:
        return plain
    locator = _ZIP64_LOCATOR.unpack(
        source.read(location - _ZIP64_LOCATOR.size, _ZIP64_LOCATOR.size, "Zip64 locator")
    )
    if locator[0] != b"PK\x06\x07":
        return plain
    if locator[1] != 0 or locator[3] > 1:
        raise ZipDirectoryError("zipfiles that span multiple disks are not supported")
    record_at = location - _ZIP64_LOCATOR.size - _ZIP64_END.size
    if record_at < 0:  # zipfile's seek before the start of the file fails
        raise ZipDirectoryError("File is not a zip file")
    record = _ZIP64_END.unpack(source.read(record_at, _ZIP64_END.size, "Zip64 end record"))
    if record[0] != b"PK\x06\x06":
        return plain
    return _EndRecord(location, record[8], record[9], zip64=True)


def _entries(data: bytes, declared: int, shift: int) -> list[Entry]:
    """The entries in ``data`` (the directory, ``declared`` bytes long unless truncated)."""
    entries = []
    unpack = _CENTRAL.unpack_from
    at = 0
    while at < declared:
        if len(data) - at < _CENTRAL.size:
            raise ZipDirectoryError("Truncated central directory")
        (
            signature,
            _create_version,
            create_system,
            extract_version,
            _reserved,
            flags,
            method,
            _time,
            _date,
            crc,
            compress_size,
            file_size,
            name_length,
            extra_length,
            comment_length,
            _disk,
            _internal,
            external,
            header_offset,
        ) = unpack(data, at)
        if signature != _CENTRAL_SIGNATURE:
            raise ZipDirectoryError("Bad magic number for central directory")
        name_at = at + _CENTRAL.size
        raw = data[name_at : name_at + name_length]
        name = raw.decode("ascii") if raw.isascii() else _decode_name(raw, flags)
        if extract_version > _MAX_EXTRACT_VERSION:
            raise ZipDirectoryError(f"zip file version {extract_version / 10:.1f}")
        if extra_length:
            extra = data[name_at + name_length : name_at + name_length + extra_length]
            file_size, compress_size, header_offset = _zip64_sizes(
                extra, file_size, compress_size, header_offset
            )
        entries.append(
            Entry(
                name if _PLAIN_SEPARATOR and "\0" not in name else _member_name(name),
                name,
                len(raw),
                create_system,
                extract_version,
                flags,
                method,
                crc,
                compress_size,
                file_size,
                external,
                header_offset + shift,
            )
        )
        at = name_at + name_length + extra_length + comment_length
    return entries


#: Whether names need no separator conversion on this platform.
_PLAIN_SEPARATOR = os.sep == "/"


def _member_name(name: str) -> str:
    """The name as zipfile's ``filename``: cut at its first NUL, with ``/`` for the path
    separator of the platform (on Windows)."""
    cut = name.find("\0")
    if cut >= 0:
        name = name[:cut]
    if os.sep != "/" and os.sep in name:
        name = name.replace(os.sep, "/")
    return name


def _decode_name(raw: bytes, flags: int) -> str:
    """A member name: UTF-8 when general purpose bit 11 says so, else code page 437 (APPNOTE
    appendix D; both read ASCII as ASCII). Raises :class:`ZipDirectoryError` for bad UTF-8."""
    try:
        return raw.decode("utf-8" if flags & _UTF8 else "cp437")
    except UnicodeDecodeError as exc:
        raise ZipDirectoryError(str(exc)) from exc


def _zip64_sizes(
    extra: bytes, file_size: int, compress_size: int, header_offset: int
) -> tuple[int, int, int]:
    """The sizes and offset, from the Zip64 extra field where the 32-bit fields are full
    (APPNOTE 4.5.3); every extra field must be whole, as zipfile requires."""
    while len(extra) >= _EXTRA_HEADER.size:
        kind, length = _EXTRA_HEADER.unpack_from(extra)
        if length + 4 > len(extra):
            raise ZipDirectoryError(f"Corrupt extra field {kind:04x} (size={length})")
        if kind == _ZIP64_EXTRA:
            values = extra[4 : length + 4]
            field = ""
            try:
                if file_size in (0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF):
                    field = "File size"
                    (file_size,), values = struct.unpack("<Q", values[:8]), values[8:]
                if compress_size == 0xFFFF_FFFF:
                    field = "Compress size"
                    (compress_size,), values = struct.unpack("<Q", values[:8]), values[8:]
                if header_offset == 0xFFFF_FFFF:
                    field = "Header offset"
                    (header_offset,) = struct.unpack("<Q", values[:8])
            except struct.error:
                raise ZipDirectoryError(f"Corrupt zip64 extra field. {field} not found.") from None
        extra = extra[length + 4 :]
    return file_size, compress_size, header_offset
