"""Hostile and broken wheels, and what the audit must say about each (shared by the wheel tests
and the hostile-input suite)."""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from helpers.build import Fixtures
from helpers.wheel_builder import (
    BZIP2,
    DEFLATED,
    LZMA,
    LZMA_FILTER,
    LZMA_HEADER_SIZE,
    STORED,
    RawEntry,
    flip_byte,
    truncate,
    wheel_entries,
    wheel_filename,
    write_raw_zip,
    write_wheel,
)

TAG = "py3-none-manylinux_2_28_x86_64"
GOOD = "pkg/libgood.so"  # an intact library next to each hostile member
#: A symbolic link's Unix mode in a member's external attributes (APPNOTE 4.4.15).
SYMLINK_ATTR = 0o120777 << 16


@dataclass(frozen=True)
class Hostile:
    """A broken wheel and what its report must say.

    ``where``: the package's ``error``, one of its ``problems``, or the ``error`` of the library
    ``member``. ``message`` is a substring of the error, or the problem itself (the only one).
    ``metadata`` is False when ``METADATA`` is what cannot be read.
    """

    path: Path
    where: Literal["error", "problem", "library"]
    message: str
    member: str | None = None
    metadata: bool = True


def _breaking_offset(payload: bytes, skip: int, decompress: Callable[[bytes], object]) -> int:
    """An offset in ``payload`` (past its first ``skip`` bytes) where flipping the byte makes
    ``decompress`` reject the data."""
    for offset in range(max(skip, len(payload) // 2), len(payload)):
        corrupted = bytearray(payload)
        corrupted[offset] ^= 0xFF
        try:
            decompress(bytes(corrupted[skip:]))
        except (zlib.error, lzma.LZMAError):
            return offset
    raise AssertionError("no byte flip breaks the stream")


def _inflate(data: bytes) -> bytes:
    return zlib.decompressobj(-zlib.MAX_WBITS).decompress(data)


def _unlzma(data: bytes) -> bytes:
    return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[LZMA_FILTER]).decompress(data)


def hostile_wheels(built: Fixtures, directory: Path) -> dict[str, Hostile]:
    good = built.stable_plugin.read_bytes()
    bad = built.unstable_lib.read_bytes()
    cases: dict[str, Hostile] = {}

    def raw_wheel(case: str, extra: list[RawEntry], *, method: int = DEFLATED) -> Path:
        """A wheel of GOOD and the dist-info (entries 0-3), then ``extra``."""
        name = case.replace("-", "_")
        entries = wheel_entries(name, "1.0", [TAG], {GOOD: good}, method=method)
        path = directory / wheel_filename(name, "1.0", [TAG])
        write_raw_zip(path, entries + extra)
        return path

    # -- the whole file is unreadable ---------------------------------------------------------
    not_zip = directory / "not_a_zip-1.0-py3-none-any.whl"
    not_zip.write_text("this is a text file, not a zip archive\n")
    cases["not-a-zip"] = Hostile(not_zip, "error", "not a readable zip archive")

    truncated = write_wheel(directory, "truncated", "1.0", [TAG], {GOOD: good})
    truncate(truncated, truncated.stat().st_size // 2)
    cases["truncated"] = Hostile(truncated, "error", "not a readable zip archive")

    # zipfile refuses the whole archive when one entry needs a newer "version to extract".
    newer = RawEntry("pkg/libnew.so", bad, method=DEFLATED, version_needed=64)
    cases["version-too-new"] = Hostile(
        raw_wheel("version-too-new", [newer]),
        "error",
        "not a readable zip archive (zip file version 6.4)",
    )

    # -- one member is corrupt: its library reports the error ----------------------------------
    # A flipped byte in the .comment section: the ELF still parses, only the CRC-32 tells.
    comment = bad.index(b"GCC: (") + 2
    member = "pkg/libcrc.so"
    path = directory / wheel_filename("crc_stored", "1.0", [TAG])
    entries = wheel_entries("crc_stored", "1.0", [TAG], {GOOD: good}, method=STORED)
    layout = write_raw_zip(path, [*entries, RawEntry(member, bad, method=STORED)])
    flip_byte(path, layout.data_offsets[-1] + comment)
    cases["crc-stored"] = Hostile(path, "library", "CRC-32 mismatch", member)

    # Deflate level 0 writes stored deflate blocks: the flipped byte keeps the stream valid.
    path = directory / wheel_filename("crc_deflated", "1.0", [TAG])
    entries = wheel_entries("crc_deflated", "1.0", [TAG], {GOOD: good})
    layout = write_raw_zip(path, [*entries, RawEntry(member, bad, method=DEFLATED, level=0)])
    assert layout.payloads[-1].count(b"GCC: (") == 1
    flip_byte(path, layout.data_offsets[-1] + layout.payloads[-1].index(b"GCC: (") + 2)
    cases["crc-deflated"] = Hostile(path, "library", "CRC-32 mismatch", member)

    # At level 9 a flipped byte may break the deflate stream itself: pick one that does.
    path = directory / wheel_filename("broken_deflate", "1.0", [TAG])
    entries = wheel_entries("broken_deflate", "1.0", [TAG], {GOOD: good})
    layout = write_raw_zip(path, [*entries, RawEntry(member, bad, method=DEFLATED, level=9)])
    flip_byte(path, layout.data_offsets[-1] + _breaking_offset(layout.payloads[-1], 0, _inflate))
    cases["broken-deflate"] = Hostile(path, "library", "corrupt deflate data", member)

    path = directory / wheel_filename("broken_lzma", "1.0", [TAG])
    entries = wheel_entries("broken_lzma", "1.0", [TAG], {GOOD: good})
    layout = write_raw_zip(path, [*entries, RawEntry(member, bad, method=LZMA)])
    offset = _breaking_offset(layout.payloads[-1], LZMA_HEADER_SIZE, _unlzma)
    flip_byte(path, layout.data_offsets[-1] + offset)
    cases["broken-lzma"] = Hostile(path, "library", "corrupt LZMA data", member)

    liar = good + bytes((1 << 20) - len(good))
    path = raw_wheel("inflate-past", [RawEntry("pkg/libliar.so", liar, method=DEFLATED, size=1000)])
    cases["inflate-past"] = Hostile(
        path, "library", "decompresses past its declared size of 1000 bytes", "pkg/libliar.so"
    )

    # 64 MiB of zeros in 79 bytes of bzip2, declared as 1000 zero bytes (with their CRC-32).
    bomb = RawEntry(
        "pkg/libbz.so",
        method=BZIP2,
        payload=bz2.compress(bytes(64 << 20), 9),
        size=1000,
        crc=zlib.crc32(bytes(1000)),
    )
    cases["bzip2-bomb"] = Hostile(
        raw_wheel("bzip2-bomb", [bomb]),
        "library",
        "decompresses past its declared size of 1000 bytes",
        "pkg/libbz.so",
    )

    for case, method in [("encrypted-deflated", DEFLATED), ("encrypted-bzip2", BZIP2)]:
        encrypted = RawEntry("pkg/libenc.so", bad, method=method, flags=0x1)
        cases[case] = Hostile(
            raw_wheel(case, [encrypted]), "library", "is encrypted", "pkg/libenc.so"
        )

    # -- hostile structure: a problem names the member, which is never read ---------------------
    huge = RawEntry("pkg/libhuge.so", bad, method=DEFLATED, size=20 << 30)
    cases["huge"] = Hostile(
        raw_wheel("huge", [huge]),
        "problem",
        "pkg/libhuge.so: declared size 21474836480 bytes is absurd",
        "pkg/libhuge.so",
    )

    path = directory / wheel_filename("ratio", "1.0", [TAG])
    zeros = 70 << 20
    layout = write_raw_zip(
        path,
        [
            *wheel_entries("ratio", "1.0", [TAG], {GOOD: good}),
            RawEntry("pkg/libbomb.so", bytes(zeros), method=DEFLATED),
        ],
    )
    ratio = zeros // len(layout.payloads[-1])
    assert ratio > 1000
    cases["ratio"] = Hostile(
        path,
        "problem",
        f"pkg/libbomb.so: compression ratio {ratio}:1 is absurd (zip bomb?)",
        "pkg/libbomb.so",
    )

    for case, name, reason in [
        ("dotdot", "pkg/../../libevil.so", "contains '..'"),
        ("absolute", "/etc/x.so", "is an absolute path"),
        ("backslash", "pkg\\libevil.so", "contains a backslash"),
    ]:
        cases[case] = Hostile(
            raw_wheel(case, [RawEntry(name, bad, method=DEFLATED)]),
            "problem",
            f"unsafe member name {name!r}: {reason}",
            name,
        )

    duplicate = RawEntry("pkg/libdup.so", bad, method=DEFLATED)
    cases["duplicate"] = Hostile(
        raw_wheel("duplicate", [duplicate, duplicate]),
        "problem",
        "duplicate member name 'pkg/libdup.so'",
        "pkg/libdup.so",
    )

    overlap = [
        RawEntry("pkg/liba.so", bad, method=DEFLATED),
        RawEntry("pkg/libb.so", reuse=4),  # 3 dist-info entries and GOOD come first
    ]
    cases["overlap"] = Hostile(
        raw_wheel("overlap", overlap),
        "problem",
        "members 'pkg/liba.so' and 'pkg/libb.so' overlap (zip bomb?)",
        "pkg/libb.so",
    )

    # A stored member is its own bytes: declaring more than it holds reads into the members
    # after it (an overlap the header offsets do not show).
    sneaky = RawEntry("pkg/libsneaky.so", payload=b"", size=len(good), crc=zlib.crc32(good))
    cases["stored-size-lie"] = Hostile(
        raw_wheel("stored-size-lie", [sneaky, RawEntry("pkg/libnext.so", good)]),
        "problem",
        f"pkg/libsneaky.so: stored member declares {len(good)} bytes but holds 0 "
        "(corrupt or overlapping)",
        "pkg/libsneaky.so",
    )

    link = RawEntry("pkg/liblink.so", b"../../../../usr/lib/libc.so.6", external_attr=SYMLINK_ATTR)
    cases["symlink-member"] = Hostile(
        raw_wheel("symlink-member", [link]),
        "problem",
        "pkg/liblink.so: a symbolic link member (to the path it holds): wheels carry no links, "
        "it is not read",
        "pkg/liblink.so",
    )

    # zipfile ends the name at the NUL: it would be audited as pkg/libnul.so.
    nul = "pkg/libnul.so\0/../../evil.txt"
    cases["nul-name"] = Hostile(
        raw_wheel("nul-name", [RawEntry(nul, bad, method=DEFLATED)]),
        "problem",
        f"unsafe member name {nul!r}: contains a NUL byte",
        "pkg/libnul.so",
    )

    # -- METADATA cannot be read ------------------------------------------------------------
    name = "encrypted_metadata"
    entries = [
        replace(entry, flags=0x1) if entry.name.endswith("/METADATA") else entry
        for entry in wheel_entries(name, "1.0", [TAG], {GOOD: good})
    ]
    path = directory / wheel_filename(name, "1.0", [TAG])
    write_raw_zip(path, entries)
    cases["encrypted-metadata"] = Hostile(
        path,
        "problem",
        f"unreadable METADATA: {name}-1.0.dist-info/METADATA is encrypted",
        metadata=False,
    )
    return cases
