"""Write wheels for the tests: valid ones with :mod:`zipfile`, hostile ones byte by byte.

:func:`write_wheel` writes a valid wheel (PEP 427, the binary distribution format): the file
name built from the distribution name, version and tags, and a ``.dist-info`` directory with
``METADATA`` (core metadata 2.1), ``WHEEL`` and ``RECORD``.

:func:`build_zip` / :func:`write_raw_zip` write archives that :mod:`zipfile` refuses to write:
declared CRC-32 and sizes that lie, several central-directory entries sharing one local header
(overlapping members), duplicate or unsafe names. Local file headers, the central directory and
the end of central directory record are packed by hand with :mod:`struct`, following the PKWARE
APPNOTE.TXT (4.3.7 local file header, 4.3.12 central directory header, 4.3.16 end of central
directory record, 4.5.3 Zip64 extended information extra field). :class:`RawLayout` says where
every member's bytes landed, so that a test can corrupt them afterwards (:func:`flip_byte`,
:func:`truncate`).
"""

from __future__ import annotations

import base64
import bz2
import hashlib
import lzma
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

STORED = zipfile.ZIP_STORED
DEFLATED = zipfile.ZIP_DEFLATED
BZIP2 = zipfile.ZIP_BZIP2
LZMA = zipfile.ZIP_LZMA
#: The raw LZMA1 filter :func:`lzma_payload` compresses with (lc=3, lp=0, pb=2: the defaults).
LZMA_FILTER = {"id": lzma.FILTER_LZMA1, "dict_size": 1 << 20, "lc": 3, "lp": 0, "pb": 2}
#: Bytes before the raw LZMA1 stream in a member: SDK version, properties size, properties.
LZMA_HEADER_SIZE = 9

# APPNOTE 4.3.7, 4.3.12, 4.3.16.
_LOCAL_HEADER = struct.Struct("<4sHHHHHLLLHH")
_CENTRAL_HEADER = struct.Struct("<4sHHHHHHLLLHHHHHLL")
_END_RECORD = struct.Struct("<4sHHHHLLH")
_LOCAL_SIGNATURE = b"PK\x03\x04"
_CENTRAL_SIGNATURE = b"PK\x01\x02"
_END_SIGNATURE = b"PK\x05\x06"
_ZIP64_EXTRA_ID = 0x0001
_UTF8_FLAG = 0x0800  # general purpose bit 11: the name is UTF-8 (APPNOTE 4.4.4)
_LZMA_EOS_FLAG = 0x0002  # general purpose bit 1 for LZMA: the stream has an end marker
_MAX32 = 0xFFFF_FFFF
_VERSION_MADE_BY = (3 << 8) | 20  # Unix, APPNOTE 2.0
_VERSION_NEEDED = 20
_VERSION_NEEDED_ZIP64 = 45
_DOS_TIME = 0  # 00:00:00
_DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01
_EXTERNAL_ATTR = 0o100644 << 16  # a regular file, rw-r--r--
_FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)


# -- valid wheels ---------------------------------------------------------------------------


def normalize_name(name: str) -> str:
    """A distribution name as wheel file names and ``.dist-info`` directories spell it."""
    return re.sub(r"[-_.]+", "_", name).lower()


def compressed_tag_set(tags: Sequence[str]) -> str:
    """The ``python-abi-platform`` part of a wheel file name for ``tags`` (PEP 425).

    Each part lists its distinct values joined with dots, in first-seen order. Such a name
    stands for every combination of the parts, so ``tags`` must be exactly those combinations;
    :class:`ValueError` otherwise.
    """
    if not tags:
        raise ValueError("a wheel needs at least one tag")
    parts: list[list[str]] = [[], [], []]
    seen: set[tuple[str, str, str]] = set()
    for tag in tags:
        pieces = tag.split("-")
        if len(pieces) != 3 or not all(pieces):
            raise ValueError(f"not a python-abi-platform tag: {tag!r}")
        seen.add((pieces[0], pieces[1], pieces[2]))
        for values, piece in zip(parts, pieces, strict=True):
            if piece not in values:
                values.append(piece)
    product = {(p, a, s) for p in parts[0] for a in parts[1] for s in parts[2]}
    if product != seen:
        raise ValueError(f"tags {list(tags)} do not form a compressed tag set")
    return "-".join(".".join(values) for values in parts)


def wheel_filename(name: str, version: str, tags: Sequence[str]) -> str:
    """``{name}-{version}-{python}-{abi}-{platform}.whl`` (PEP 427)."""
    return f"{normalize_name(name)}-{version.replace('-', '_')}-{compressed_tag_set(tags)}.whl"


def dist_info_dir(name: str, version: str) -> str:
    """``{name}-{version}.dist-info``, as the wheel's file name spells them."""
    return f"{normalize_name(name)}-{version.replace('-', '_')}.dist-info"


def metadata_text(name: str, version: str, requires: Iterable[str] = ()) -> str:
    """Core metadata 2.1: ``Name``, ``Version`` and one ``Requires-Dist`` per requirement."""
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    return "\n".join(lines) + "\n\n"


def wheel_text(tags: Sequence[str], *, root_is_purelib: bool = False) -> str:
    """The ``WHEEL`` file: format version, generator, purelib flag and one ``Tag`` per tag."""
    lines = [
        "Wheel-Version: 1.0",
        "Generator: torch-abi-audit-tests (wheel_builder)",
        f"Root-Is-Purelib: {'true' if root_is_purelib else 'false'}",
    ]
    lines += [f"Tag: {tag}" for tag in tags]
    return "\n".join(lines) + "\n"


def record_text(files: dict[str, bytes], record_name: str) -> str:
    """``RECORD``: ``path,sha256=<urlsafe base64, unpadded>,size`` per file, itself unhashed."""
    lines = []
    for member, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        lines.append(f"{member},sha256={digest.decode('ascii')},{len(data)}")
    lines.append(f"{record_name},,")
    return "\n".join(lines) + "\n"


def wheel_contents(
    name: str,
    version: str,
    tags: Sequence[str],
    files: dict[str, bytes],
    *,
    requires: Iterable[str] = (),
    root_is_purelib: bool = False,
) -> dict[str, bytes]:
    """Every member of a wheel: ``files``, then ``METADATA``, ``WHEEL`` and ``RECORD``."""
    dist_info = dist_info_dir(name, version)
    contents = dict(files)
    contents[f"{dist_info}/METADATA"] = metadata_text(name, version, requires).encode()
    contents[f"{dist_info}/WHEEL"] = wheel_text(tags, root_is_purelib=root_is_purelib).encode()
    record = f"{dist_info}/RECORD"
    contents[record] = record_text(contents, record).encode()
    return contents


def write_wheel(
    directory: Path,
    name: str,
    version: str,
    tags: Sequence[str],
    files: dict[str, bytes],
    *,
    requires: Iterable[str] = (),
    compression: int = zipfile.ZIP_DEFLATED,
    root_is_purelib: bool = False,
    modes: Mapping[str, int] | None = None,
) -> Path:
    """Write a valid wheel of ``files`` (member name -> bytes) into ``directory``.

    ``tags`` are full ``python-abi-platform`` tags (``cp311-abi3-manylinux_2_28_x86_64``);
    they must form a compressed tag set (see :func:`compressed_tag_set`). Every member is
    written with ``compression`` (``zipfile.ZIP_STORED``, ``ZIP_DEFLATED``, ``ZIP_BZIP2``,
    ``ZIP_LZMA``). ``modes`` gives members a Unix permission other than ``0o644`` (``0o755``:
    runnable, as repair tools copy libraries without an extension). Returns the wheel's path.
    """
    path = directory / wheel_filename(name, version, tags)
    contents = wheel_contents(
        name, version, tags, files, requires=requires, root_is_purelib=root_is_purelib
    )
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for member, data in contents.items():
            info = zipfile.ZipInfo(member, date_time=_FIXED_DATE_TIME)
            info.compress_type = compression
            mode = (modes or {}).get(member)
            info.external_attr = _EXTERNAL_ATTR if mode is None else (0o100000 | mode) << 16
            archive.writestr(info, data)
    return path


# -- hostile archives -----------------------------------------------------------------------


@dataclass(frozen=True)
class RawEntry:
    """One central-directory entry of a hand-written archive, and what it lies about.

    ``data`` is the member's content; it is written ``STORED``, ``DEFLATED`` (raw deflate at
    ``level``: level 0 gives deflate *stored blocks*, whose bytes can be flipped without
    breaking the stream), ``BZIP2`` or ``LZMA`` (see :func:`lzma_payload`). ``payload``
    replaces the bytes written as the member's data (already compressed). ``crc``,
    ``compressed_size`` and ``size`` override what the local and central headers declare
    (sizes of 4 GiB and more get a Zip64 extra field); ``flags`` are general purpose bits to
    set (bit 0: encrypted) and ``version_needed`` the "version needed to extract" both headers
    declare. ``reuse`` makes this entry's central-directory record point at the local header
    (and data) of the earlier entry with that index, instead of writing its own: two members
    overlapping completely; the reused entry's method, flags, CRC and sizes are declared unless
    overridden here. ``external_attr`` is the central directory's external attributes (the
    Unix mode in the high half: a regular file by default).
    """

    name: str
    data: bytes = b""
    method: int = STORED
    level: int = 6
    payload: bytes | None = None
    crc: int | None = None
    compressed_size: int | None = None
    size: int | None = None
    flags: int = 0
    version_needed: int | None = None
    reuse: int | None = None
    external_attr: int = _EXTERNAL_ATTR


@dataclass(frozen=True)
class RawLayout:
    """Where :func:`build_zip` put each entry (same order as the entries).

    ``header_offsets`` are the local headers the central directory points at;
    ``data_offsets`` the first byte of each entry's (compressed) data; ``payloads`` the bytes
    written there.
    """

    header_offsets: tuple[int, ...]
    data_offsets: tuple[int, ...]
    payloads: tuple[bytes, ...]
    central_directory_offset: int
    size: int


@dataclass(frozen=True)
class _Declared:
    method: int
    crc: int
    compressed_size: int
    size: int
    flags: int = 0
    version_needed: int | None = None

    @property
    def zip64(self) -> bool:
        return self.size >= _MAX32 or self.compressed_size >= _MAX32

    def version(self) -> int:
        if self.version_needed is not None:
            return self.version_needed
        return _VERSION_NEEDED_ZIP64 if self.zip64 else _VERSION_NEEDED


def lzma_payload(data: bytes) -> bytes:
    """``data`` as an LZMA zip member stores it (APPNOTE 5.8.8): LZMA SDK version (2 bytes),
    properties size (2 bytes), the LZMA1 properties (``lc``/``lp``/``pb`` packed in one byte,
    then the dictionary size), then the raw LZMA1 stream of :data:`LZMA_FILTER`, with its end
    marker."""
    packed = (LZMA_FILTER["pb"] * 5 + LZMA_FILTER["lp"]) * 9 + LZMA_FILTER["lc"]
    properties = bytes([packed]) + LZMA_FILTER["dict_size"].to_bytes(4, "little")
    stream = lzma.compress(data, format=lzma.FORMAT_RAW, filters=[LZMA_FILTER])
    return struct.pack("<BBH", 9, 20, len(properties)) + properties + stream


def _compress(entry: RawEntry) -> bytes:
    if entry.payload is not None:
        return entry.payload
    if entry.method == STORED:
        return entry.data
    if entry.method == DEFLATED:
        compressor = zlib.compressobj(entry.level, zlib.DEFLATED, -zlib.MAX_WBITS)
        return compressor.compress(entry.data) + compressor.flush()
    if entry.method == BZIP2:
        return bz2.compress(entry.data)
    if entry.method == LZMA:
        return lzma_payload(entry.data)
    raise ValueError(f"method {entry.method}: give the compressed bytes as payload")


def _zip64_extra(values: Sequence[int]) -> bytes:
    if not values:
        return b""
    body = b"".join(struct.pack("<Q", value) for value in values)
    return struct.pack("<HH", _ZIP64_EXTRA_ID, len(body)) + body


def _encoded_name(name: str) -> tuple[bytes, int]:
    try:
        return name.encode("ascii"), 0
    except UnicodeEncodeError:
        return name.encode("utf-8"), _UTF8_FLAG


def _local_header(name: str, declared: _Declared) -> bytes:
    raw_name, flags = _encoded_name(name)
    zip64 = declared.zip64
    # APPNOTE 4.5.3: in a local header the Zip64 field holds both sizes.
    extra = _zip64_extra([declared.size, declared.compressed_size]) if zip64 else b""
    header = _LOCAL_HEADER.pack(
        _LOCAL_SIGNATURE,
        declared.version(),
        flags | declared.flags,
        declared.method,
        _DOS_TIME,
        _DOS_DATE,
        declared.crc,
        _MAX32 if zip64 else declared.compressed_size,
        _MAX32 if zip64 else declared.size,
        len(raw_name),
        len(extra),
    )
    return header + raw_name + extra


def _central_header(
    name: str, declared: _Declared, header_offset: int, external_attr: int = _EXTERNAL_ATTR
) -> bytes:
    raw_name, flags = _encoded_name(name)
    # APPNOTE 4.5.3: the central Zip64 field holds only the values that overflow, in order.
    overflowing = [value for value in (declared.size, declared.compressed_size) if value >= _MAX32]
    extra = _zip64_extra(overflowing)
    header = _CENTRAL_HEADER.pack(
        _CENTRAL_SIGNATURE,
        _VERSION_MADE_BY,
        declared.version(),
        flags | declared.flags,
        declared.method,
        _DOS_TIME,
        _DOS_DATE,
        declared.crc,
        min(declared.compressed_size, _MAX32),
        min(declared.size, _MAX32),
        len(raw_name),
        len(extra),
        0,  # comment length
        0,  # disk number start
        0,  # internal attributes
        external_attr,
        header_offset,
    )
    return header + raw_name + extra


def build_zip(entries: Sequence[RawEntry]) -> tuple[bytes, RawLayout]:
    """Pack ``entries`` into a zip archive; returns its bytes and where everything went."""
    body = bytearray()
    declared_by_index: list[_Declared] = []
    header_offsets: list[int] = []
    data_offsets: list[int] = []
    payloads: list[bytes] = []
    for index, entry in enumerate(entries):
        if entry.reuse is not None:
            if not 0 <= entry.reuse < index:
                raise ValueError(f"entry {index} can only reuse an earlier entry")
            base = declared_by_index[entry.reuse]
            declared = _Declared(
                base.method,
                base.crc if entry.crc is None else entry.crc,
                base.compressed_size if entry.compressed_size is None else entry.compressed_size,
                base.size if entry.size is None else entry.size,
                base.flags | entry.flags,
                base.version_needed if entry.version_needed is None else entry.version_needed,
            )
            header_offsets.append(header_offsets[entry.reuse])
            data_offsets.append(data_offsets[entry.reuse])
            payloads.append(payloads[entry.reuse])
            declared_by_index.append(declared)
            continue
        payload = _compress(entry)
        declared = _Declared(
            entry.method,
            zlib.crc32(entry.data) if entry.crc is None else entry.crc,
            len(payload) if entry.compressed_size is None else entry.compressed_size,
            len(entry.data) if entry.size is None else entry.size,
            entry.flags | (_LZMA_EOS_FLAG if entry.method == LZMA else 0),
            entry.version_needed,
        )
        header_offsets.append(len(body))
        body += _local_header(entry.name, declared)
        data_offsets.append(len(body))
        body += payload
        payloads.append(payload)
        declared_by_index.append(declared)
    central_offset = len(body)
    for entry, declared, offset in zip(entries, declared_by_index, header_offsets, strict=True):
        body += _central_header(entry.name, declared, offset, entry.external_attr)
    central_size = len(body) - central_offset
    body += _END_RECORD.pack(
        _END_SIGNATURE, 0, 0, len(entries), len(entries), central_size, central_offset, 0
    )
    layout = RawLayout(
        tuple(header_offsets), tuple(data_offsets), tuple(payloads), central_offset, len(body)
    )
    return bytes(body), layout


def write_raw_zip(path: Path, entries: Sequence[RawEntry]) -> RawLayout:
    """Write :func:`build_zip` of ``entries`` to ``path``; returns the layout."""
    data, layout = build_zip(entries)
    path.write_bytes(data)
    return layout


def wheel_entries(
    name: str,
    version: str,
    tags: Sequence[str],
    files: dict[str, bytes],
    *,
    requires: Iterable[str] = (),
    method: int = DEFLATED,
) -> list[RawEntry]:
    """The members of a valid wheel (see :func:`wheel_contents`) as :class:`RawEntry` values,
    to which a test appends or among which it mixes hostile entries."""
    contents = wheel_contents(name, version, tags, files, requires=requires)
    return [RawEntry(member, data, method=method) for member, data in contents.items()]


# -- corrupting afterwards --------------------------------------------------------------------


def flip_byte(path: Path, offset: int, mask: int = 0xFF) -> None:
    """XOR the byte at ``offset`` of ``path`` with ``mask`` (in place)."""
    if not 0 < mask <= 0xFF:
        raise ValueError("mask must flip at least one bit of one byte")
    with path.open("r+b") as handle:
        handle.seek(offset)
        old = handle.read(1)
        if len(old) != 1:
            raise ValueError(f"{path} has no byte at offset {offset}")
        handle.seek(offset)
        handle.write(bytes([old[0] ^ mask]))


def truncate(path: Path, size: int) -> None:
    """Cut ``path`` down to its first ``size`` bytes."""
    with path.open("r+b") as handle:
        handle.truncate(size)
