"""Scanning read-only data for names (``readers.strings``), and where the ELF reader says that
data is (``Library.rodata``): a library compiled here that looks a shim up with ``dlsym``,
synthetic sources for chunk boundaries and the read cap, and real wheels (network-marked)."""

from __future__ import annotations

import random
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from helpers.build import compiler
from helpers.elf_builder import drop_section_headers
from helpers.elf_inspect import layout_of, patched, write
from helpers.memory_source import MemorySource
from helpers.real_wheels import real_wheel
from torch_abi_audit.model import BinaryFormat, merge_ranges
from torch_abi_audit.readers import BinaryReadError, FileBytes, parse_library, read_library
from torch_abi_audit.readers.strings import CHUNK_SIZE, find_strings
from torch_abi_audit.sources.wheels import WheelArchive

#: What the product looks for: shim names passed to dlsym/GetProcAddress.
SHIM = re.compile(rb"(?<![A-Za-z0-9_])((?:aoti_torch|torch)_[A-Za-z0-9_]+)\x00")

LOOKUP_SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>

/* Imported and called: its name is in .dynstr, not in read-only data. */
extern int aoti_torch_imported_only(void);

static const char other[] = "aoti_torch_get_dim";
/* .rodata1 is a read-only data section too; .rodatax only looks like one. */
__attribute__((used, section(".rodata1"))) static const char in_rodata1[] = "torch_in_rodata1";
__attribute__((used, section(".rodatax"))) static const char not_rodata[] = "torch_not_rodata";

/* Exported: its name is in .dynstr as well. */
const char *torch_exported_here(void) { return other; }

void *lookup(void) {
    void *f = dlsym(RTLD_DEFAULT, "torch_from_the_future");
    return f;
}

int call_imported(void) { return aoti_torch_imported_only(); }
"""
IN_RODATA = {"torch_from_the_future", "aoti_torch_get_dim", "torch_in_rodata1"}
ELSEWHERE = {"aoti_torch_imported_only", "torch_exported_here", "torch_not_rodata"}


@pytest.fixture(scope="module")
def lookup_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``liblookup.so``, compiled from :data:`LOOKUP_SOURCE` with the system C compiler."""
    directory = tmp_path_factory.mktemp("lookup")
    source = directory / "lookup.c"
    source.write_text(LOOKUP_SOURCE)
    output = directory / "liblookup.so"
    command = [compiler("c"), "-shared", "-fPIC", "-O0", "-o", str(output), str(source), "-ldl"]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return output


def scan(path: Path, ranges: Sequence[tuple[int, int]]) -> frozenset[str]:
    with path.open("rb") as handle:
        return find_strings(FileBytes(handle), ranges, SHIM)


# -- where the read-only data is (ELF) ------------------------------------------------------------


def test_rodata_of_a_compiled_library(lookup_lib: Path) -> None:
    data = lookup_lib.read_bytes()
    lib = read_library(lookup_lib)
    assert lib.format is BinaryFormat.ELF
    assert {"dlsym", "aoti_torch_imported_only"} <= lib.imports.names()
    assert lib.rodata
    assert all(offset > 0 and offset + size <= len(data) for offset, size in lib.rodata)
    # The section table, read independently: .rodata and .rodata1, not the look-alike.
    sections = layout_of(data).sections
    assert ".rodatax" in sections
    expected = [(sections[n].offset, sections[n].size) for n in (".rodata", ".rodata1")]
    assert lib.rodata == merge_ranges(expected)


def test_scan_finds_the_literals_and_nothing_else(lookup_lib: Path) -> None:
    lib = read_library(lookup_lib)
    assert scan(lookup_lib, lib.rodata) == IN_RODATA
    # The other names are in the file, only not in its read-only data.
    whole_file = ((0, lookup_lib.stat().st_size),)
    assert scan(lookup_lib, whole_file) >= IN_RODATA | ELSEWHERE


def test_sequential_source_gives_the_same_rodata(lookup_lib: Path) -> None:
    data = lookup_lib.read_bytes()
    lib = read_library(lookup_lib)
    source = MemorySource(data, sequential=True)
    streamed = parse_library(source, lookup_lib)
    assert streamed.imports == lib.imports
    # A stream's section headers (at the end of the file) are read only when rodata is used.
    table_at = layout_of(data).shoff
    assert all(offset + length <= table_at for offset, length in source.reads)
    assert streamed.rodata == lib.rodata
    assert any(offset >= table_at for offset, length in source.reads)


def test_without_section_headers_there_is_no_rodata(lookup_lib: Path, tmp_path: Path) -> None:
    stripped = write(tmp_path, drop_section_headers(lookup_lib.read_bytes()))
    lib = read_library(stripped)
    assert "dlsym" in lib.imports.names()  # read through PT_DYNAMIC
    assert lib.rodata == ()


@pytest.mark.parametrize("shstrndx", [0, 0xFFFE], ids=["undefined", "out-of-range"])
def test_unreadable_section_names_give_no_rodata(
    lookup_lib: Path, tmp_path: Path, shstrndx: int
) -> None:
    data = lookup_lib.read_bytes()
    assert data[4] == 2  # ELFCLASS64: e_shstrndx at 0x3E
    lib = read_library(write(tmp_path, patched(data, (0x3E, "<H", shstrndx))))
    assert lib.rodata == ()
    assert "aoti_torch_imported_only" in lib.imports.names()


def test_section_past_the_end_of_the_file_is_left_out(lookup_lib: Path, tmp_path: Path) -> None:
    data = lookup_lib.read_bytes()
    layout = layout_of(data)
    rodata = layout.sections[".rodata"]
    size_at = rodata.header + 32  # Elf64_Shdr.sh_size
    lib = read_library(write(tmp_path, patched(data, (size_at, "<Q", len(data)))))
    rodata1 = layout.sections[".rodata1"]
    assert lib.rodata == ((rodata1.offset, rodata1.size),)


# -- the scan -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", range(len(b"torch_from_the_future\0") + 1))
def test_name_straddling_a_chunk_boundary(cut: int) -> None:
    name = b"torch_from_the_future\0"
    data = bytes(100 - cut) + name + b"torch_" + bytes(50)
    source = MemorySource(data)
    found = find_strings(source, [(0, len(data))], SHIM, chunk_size=100)
    assert found == {"torch_from_the_future"}
    assert all(length <= 100 for _offset, length in source.reads)
    # Every byte read once, in ascending order: the overlap is kept, not read again.
    assert source.reads == [(0, 100), (100, len(data) - 100)]


def test_name_straddling_the_default_chunk_boundary() -> None:
    name = b"aoti_torch_get_dim\0"
    data = bytes(CHUNK_SIZE - 7) + name + bytes(1000)
    source = MemorySource(data)
    assert find_strings(source, [(0, len(data))], SHIM) == {"aoti_torch_get_dim"}
    assert source.reads == [(0, CHUNK_SIZE), (CHUNK_SIZE, len(data) - CHUNK_SIZE)]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("chunk_size", [1, 3, 17, 64, 4096])
def test_chunked_scan_agrees_with_one_pass(seed: int, chunk_size: int) -> None:
    """Names (some inside longer identifiers, which must not match) in random bytes."""
    rng = random.Random(seed)
    pieces = []
    for _ in range(60):
        pieces.append(rng.randbytes(rng.randrange(0, 40)))
        name = b"torch_" + rng.choice([b"a", b"get_dim", b"x" * 200, b"q1_2"])
        prefix = rng.choice([b"", b"", b"aoti_", b"my_", b"X"])
        pieces.append(prefix + name + rng.choice([b"\0", b"", b"!"]))
    data = b"".join(pieces)
    expected = {m.group(1).decode() for m in SHIM.finditer(data)}
    assert expected  # the random data holds some names
    ranges = [(0, len(data))]
    found = find_strings(MemorySource(data), ranges, SHIM, chunk_size=chunk_size)
    assert found == expected


def test_ranges_are_read_in_ascending_order_and_merged() -> None:
    data = bytes(10) + b"torch_one\0" + bytes(10) + b"torch_tw" + b"o\0" + bytes(10)
    source = MemorySource(data)
    # Out of order, overlapping, and adjacent where a name runs from one range into the next.
    ranges = [(30, 8), (0, 15), (10, 10), (38, 12)]
    assert find_strings(source, ranges, SHIM) == {"torch_one", "torch_two"}
    assert source.reads == [(0, 20), (30, 20)]


def test_group_zero_when_the_pattern_has_no_group_and_ascii_only() -> None:
    data = b"\0torch_ok\0torch_caf\xc3\xa9\0torch_\xff\0"
    source = MemorySource(data)
    assert find_strings(source, [(0, len(data))], re.compile(rb"torch_[^\0]+")) == {"torch_ok"}
    optional = re.compile(rb"(?:(torch_[a-z]+)|(aoti_[a-z]+))\0")
    assert find_strings(MemorySource(b"aoti_x\0torch_y\0"), [(0, 15)], optional) == {"torch_y"}


def test_max_bytes_caps_the_reads() -> None:
    data = b"torch_a\0" + bytes(92) + b"torch_b\0" + bytes(92) + b"torch_c\0" + bytes(92)
    source = MemorySource(data)
    ranges = [(0, 100), (100, 100), (200, 100)]
    assert find_strings(source, ranges[::2], SHIM, max_bytes=150) == {"torch_a", "torch_c"}
    source.reads.clear()
    # Not adjacent here, so not merged: the second range is cut at the cap, the third skipped.
    found = find_strings(source, [(0, 100), (101, 99), (200, 100)], SHIM, max_bytes=150)
    assert found == {"torch_a"}
    assert source.reads == [(0, 100), (101, 50)]
    assert find_strings(source, ranges, SHIM, max_bytes=0) == frozenset()


def test_max_bytes_bounds_a_huge_range() -> None:
    class Zeros:
        """A terabyte of zeros, made up on demand."""

        sequential = False
        size = 1 << 40
        read_total = 0

        def read(self, offset: int, length: int, what: str) -> bytes:
            self.read_total += length
            return bytes(length)

    zeros = Zeros()
    found = find_strings(zeros, [(0, zeros.size)], SHIM, max_bytes=1 << 20, chunk_size=1 << 16)
    assert found == frozenset()
    assert zeros.read_total == 1 << 20


@pytest.mark.parametrize(
    "ranges",
    [[(90, 20)], [(-1, 4)], [(0, -1)], [(0, 10), (200, 0)], [(0, 101)]],
    ids=["straddling-eof", "negative-offset", "negative-size", "empty-past-eof", "one-too-many"],
)
def test_out_of_range_ranges_are_refused_before_reading(ranges: list[tuple[int, int]]) -> None:
    source = MemorySource(b"torch_a\0" + bytes(92))
    with pytest.raises(BinaryReadError, match="lies outside the file"):
        find_strings(source, ranges, SHIM)
    assert source.reads == []


def test_truncated_library_is_refused(lookup_lib: Path, tmp_path: Path) -> None:
    lib = read_library(lookup_lib)
    offset, size = lib.rodata[0]
    truncated = write(tmp_path, lookup_lib.read_bytes()[: offset + size // 2])
    with pytest.raises(BinaryReadError, match="truncated or corrupt"):
        scan(truncated, lib.rodata)


@pytest.mark.parametrize(
    "options", [{"chunk_size": 0}, {"max_bytes": -1}, {"max_name": -1}], ids=str
)
def test_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="chunk_size must be positive"):
        find_strings(MemorySource(b""), [], SHIM, **options)


# -- real wheels ----------------------------------------------------------------------------------

#: (wheel, member) of torchaudio 2.11.0's main library on each platform.
TORCHAUDIO_2_11 = [
    ("torchaudio-2.11.0-cp311-cp311-macosx_11_0_arm64.whl", "torchaudio/lib/libtorchaudio.abi3.so"),
    ("torchaudio-2.11.0-cp311-cp311-win_amd64.whl", "torchaudio/lib/libtorchaudio.pyd"),
    (
        "torchaudio-2.11.0-cp311-cp311-manylinux_2_28_x86_64.whl",
        "torchaudio/lib/libtorchaudio.abi3.so",
    ),
]
#: An operator name and a source file path (``__FILE__`` in a TORCH_CHECK) that the library's
#: read-only data holds on every platform (Windows spells the path with a backslash).
KNOWN = re.compile(rb"(?<![A-Za-z0-9_])(rnnt_loss_forward|libtorchaudio[/\\]lfilter\.cpp)\x00")


@pytest.mark.network
@pytest.mark.parametrize(("wheel", "member"), TORCHAUDIO_2_11, ids=["macos", "windows", "linux"])
def test_real_libraries_hold_known_strings_in_rodata(wheel: str, member: str) -> None:
    with WheelArchive(real_wheel(wheel)) as archive:
        source = archive.open_member(member)
        try:
            lib = parse_library(source, Path(member))
            assert lib.rodata
            assert all(offset > 0 and offset + size <= source.size for offset, size in lib.rodata)
            found = find_strings(source, lib.rodata, KNOWN)
            source.finish()
        finally:
            source.close()
    assert "rnnt_loss_forward" in found
    assert {name.replace("\\", "/") for name in found} == {
        "rnnt_loss_forward",
        "libtorchaudio/lfilter.cpp",
    }


def test_a_needle_skips_chunks_without_candidates(lookup_lib: Path) -> None:
    """With ``needle`` (a substring of every match) the scan finds the same names, chunk size
    and carried-over bytes notwithstanding, and skips chunks that cannot hold one."""
    lib = read_library(lookup_lib)
    whole_file = ((0, lookup_lib.stat().st_size),)
    with lookup_lib.open("rb") as handle:
        source = FileBytes(handle)
        for ranges in (lib.rodata, whole_file):
            for chunk_size in (7, 64, 4096):
                plain = find_strings(source, ranges, SHIM, chunk_size=chunk_size)
                fast = find_strings(
                    source, ranges, SHIM, chunk_size=chunk_size, needle=b"torch_", needle_lead=5
                )
                assert fast == plain
        assert find_strings(source, whole_file, SHIM, needle=b"no such needle") == frozenset()


@pytest.mark.parametrize("pattern", [SHIM, re.compile(rb"((?:aoti_)?torch_[A-Za-z0-9_]+)\x00")])
def test_needle_scan_equals_a_full_scan_on_random_bytes(pattern: re.Pattern[bytes]) -> None:
    rng = random.Random(1616)
    pieces = [b"torch_", b"aoti_", b"aoti_torch_", b"x", b"_", b"\x00", b"9", b"torch_torch_"]
    for _ in range(2000):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 30)))
        source = MemorySource(data)
        whole = ((0, len(data)),)
        for chunk_size in (3, 11, 1000):
            plain = find_strings(source, whole, pattern, chunk_size=chunk_size, max_name=64)
            fast = find_strings(
                source,
                whole,
                pattern,
                chunk_size=chunk_size,
                max_name=64,
                needle=b"torch_",
                needle_lead=5,
            )
            assert fast == plain, (data, chunk_size)
