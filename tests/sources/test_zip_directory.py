"""The central directory reader against zipfile: the same entries, or the same refusal.

Archives written by :mod:`zipfile` (names in ASCII and UTF-8, directories, a comment, Zip64
extra fields), packed by hand (code page 437 and NUL in names, data prepended to the archive, a
Zip64 end record) and broken on purpose (truncated, bad signatures, a newer "version needed to
extract", corrupt extra fields, several disks, not a zip at all): for each, both readers agree
on every attribute the wheel source uses, or both refuse it with the same reason.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.wheel_builder import RawEntry, build_zip
from torch_abi_audit.readers.source import FileBytes
from torch_abi_audit.sources.zip_directory import (
    TooManyEntries,
    ZipDirectoryError,
    read_directory,
)

_FIELDS = (
    "filename",
    "orig_filename",
    "create_system",
    "extract_version",
    "flag_bits",
    "compress_type",
    "CRC",
    "compress_size",
    "file_size",
    "external_attr",
    "header_offset",
)
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")


def _written() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("pkg/__init__.py", b"")
        archive.writestr("pkg/libstable.so", b"\x7fELF" + bytes(5000))
        archive.writestr("pkg/données/é.txt", "utf-8 name")
        archive.writestr("pkg/sub/", b"")
        with archive.open("pkg/big.bin", "w", force_zip64=True) as member:
            member.write(b"zip64 sizes in the extra field")
        archive.comment = b"an archive comment"
    return buffer.getvalue()


def _raw(entries: list[RawEntry] | None = None) -> bytes:
    entries = entries or [RawEntry("pkg/a.so", b"a" * 100), RawEntry("pkg/b.txt", b"b")]
    return build_zip(entries)[0]


def _with_central(data: bytes, index: int, **changes: int | bytes) -> bytes:
    """``data`` with fields of central entry ``index`` replaced (by _CENTRAL's positions)."""
    names = [
        "signature",
        "create_version",
        "create_system",
        "extract_version",
        "reserved",
        "flags",
        "method",
        "time",
        "date",
        "crc",
        "compress_size",
        "file_size",
        "name_length",
        "extra_length",
        "comment_length",
        "disk",
        "internal",
        "external",
        "header_offset",
    ]
    at = data.index(b"PK\x01\x02")
    for _ in range(index):
        before = _CENTRAL.unpack_from(data, at)
        at += _CENTRAL.size + before[12] + before[13] + before[14]
    fields = list(_CENTRAL.unpack_from(data, at))
    for name, value in changes.items():
        fields[names.index(name)] = value
    return data[:at] + _CENTRAL.pack(*fields) + data[at + _CENTRAL.size :]


def _renamed(data: bytes, old: bytes, new: bytes, flags: int = 0) -> bytes:
    """``data`` with a member name replaced everywhere (same length) and ``flags`` set."""
    assert len(old) == len(new)
    data = data.replace(old, new)
    return _with_central(data, 0, flags=flags)


def _zip64_end(data: bytes, *, disks: int = 1) -> bytes:
    """``data`` with a Zip64 end record and locator before its end record, which then says
    0xFFFF... for the directory's size and offset (as archives past 4 GiB do)."""
    end = data.rindex(b"PK\x05\x06")
    fields = list(struct.unpack_from("<4s4H2LH", data, end))
    size, offset = fields[5], fields[6]
    record = struct.pack(
        "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, fields[3], fields[4], size, offset
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, end, disks)
    fields[5], fields[6] = 0xFFFF_FFFF, 0xFFFF_FFFF
    return data[:end] + record + locator + struct.pack("<4s4H2LH", *fields)


def _with_extra(data: bytes, extra: bytes, **changes: int | bytes) -> bytes:
    """``data`` with ``extra`` as the first central entry's extra field (the end record's
    directory size grown to match)."""
    at = data.index(b"PK\x01\x02")
    name_length = _CENTRAL.unpack_from(data, at)[12]
    patched = _with_central(data, 0, extra_length=len(extra), **changes)
    cut = at + _CENTRAL.size + name_length
    patched = patched[:cut] + extra + patched[cut:]
    end = patched.rindex(b"PK\x05\x06")
    fields = list(struct.unpack_from("<4s4H2LH", patched, end))
    fields[5] += len(extra)
    return patched[:end] + struct.pack("<4s4H2LH", *fields)


ARCHIVES: dict[str, Callable[[], bytes]] = {
    "zipfile-written": _written,
    "hand-packed": _raw,
    "cp437-name": lambda: _renamed(_raw(), b"pkg/a.so", b"pkg/\x82.so"),
    "bad-utf8-name": lambda: _renamed(_raw(), b"pkg/a.so", b"pkg/\xff.so", flags=0x800),
    "nul-in-name": lambda: _renamed(_raw(), b"pkg/a.so", b"pkg\x00a.so"),
    "prepended-data": lambda: b"#!/bin/sh self-extractor\n" + _raw(),
    "zip64-end-record": lambda: _zip64_end(_raw()),
    "several-disks": lambda: _zip64_end(_raw(), disks=2),
    "truncated": lambda: _raw()[:-30],
    "bad-entry-signature": lambda: _with_central(_raw(), 1, signature=b"PK\x01\x03"),
    "version-6.4": lambda: _with_central(_raw(), 0, extract_version=64),
    "corrupt-extra": lambda: _with_extra(_raw(), struct.pack("<HH", 0x5455, 100) + b"1234"),
    "zip64-extra-without-the-size": lambda: _with_extra(
        _raw(), struct.pack("<HH", 0x0001, 0), file_size=0xFFFF_FFFF
    ),
    "zip64-extra-sizes": lambda: _with_extra(
        _raw(),
        struct.pack("<HHQQ", 0x0001, 16, 100, 100),
        file_size=0xFFFF_FFFF,
        compress_size=0xFFFF_FFFF,
    ),
    "unknown-extra": lambda: _with_extra(_raw(), struct.pack("<HH", 0x7875, 4) + b"1234"),
    "directory-before-the-file": lambda: _raw()[-22:],
    "not-a-zip": lambda: b"this is a text file, not a zip archive\n" * 3,
    "tiny": lambda: b"PK",
    "empty": lambda: b"",
}


@pytest.mark.parametrize("case", sorted(ARCHIVES))
def test_entries_or_refusal_as_zipfile(case: str, tmp_path: Path) -> None:
    path = tmp_path / "archive.zip"
    path.write_bytes(ARCHIVES[case]())
    with path.open("rb", buffering=0) as handle:
        try:
            theirs = zipfile.ZipFile(handle).infolist()
        except (zipfile.BadZipFile, NotImplementedError, ValueError) as exc:
            with pytest.raises(ZipDirectoryError) as refused:
                read_directory(FileBytes(handle), 1000)
            assert str(refused.value) == str(exc) or isinstance(exc, UnicodeDecodeError)
            return
        mine = read_directory(FileBytes(handle), 1000)
    assert len(mine) == len(theirs) > 0
    for entry, info in zip(mine, theirs, strict=True):
        assert {f: getattr(entry, f) for f in _FIELDS} == {f: getattr(info, f) for f in _FIELDS}
        assert entry.is_dir() == info.is_dir()
        encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
        assert entry.name_length == len(info.orig_filename.encode(encoding))


def test_more_entries_than_accepted_are_refused_before_any_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    path.write_bytes(_raw([RawEntry(f"m{i}", b"") for i in range(11)]))
    with path.open("rb", buffering=0) as handle:
        assert len(read_directory(FileBytes(handle), 11)) == 11
        with pytest.raises(TooManyEntries, match="more than 10 members"):
            read_directory(FileBytes(handle), 10)
