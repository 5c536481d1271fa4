"""The ELF reader's C-level shortcuts give what the plain definitions give, and read ahead only
inside the file.

Column tricks of :class:`~torch_abi_audit.readers.elf_symbols.SymbolColumns` (imports found by
OR-ing byte columns, weak entries by ``bytes.translate``, first users, names by prefix) are
checked against entry-by-entry decoding on the compiled fixtures and, when present, on the
libraries of a real environment; :class:`~torch_abi_audit.readers.source.PrefetchedBytes`
against the source it wraps.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.build import Fixtures
from helpers.memory_source import MemorySource
from torch_abi_audit.model import Library, StaticSymbolTable, SymbolBinding
from torch_abi_audit.readers import BinaryReadError, parse_library, read_library
from torch_abi_audit.readers.elf_symbols import VERSYM_INDEX, LazySymbols, SymbolColumns
from torch_abi_audit.readers.source import PrefetchedBytes

BENCH_SITE = Path.home() / ".cache/torch-abi-audit/bench/env/lib/python3.11/site-packages"


def _entries(table: SymbolColumns) -> Iterator[tuple[int, int, int, int]]:
    """(index, st_name, st_info, st_shndx) of every entry, unpacked one by one."""
    layout = table.layout
    for index in range(table.count):
        fields = struct.unpack_from(layout.symbol, table.raw, index * table.entsize)
        if layout.bits == 64:
            name, info, _other, shndx, _value, _size = fields
        else:
            name, _value, _size, info, _other, shndx = fields
        yield index, name, info, shndx


def _check(library: Library) -> None:
    imports, exports = library.imports, library.exports
    assert isinstance(imports, LazySymbols)
    assert isinstance(exports, LazySymbols)
    table: SymbolColumns = imports._table
    entries = list(_entries(table))
    undefined = [i for i, _, _, shndx in entries if shndx == 0 and i > 0]
    assert table.undefined_indices() == undefined
    assert table.undefined_indices() is table.undefined_indices()  # kept

    weak = [i for i in undefined if entries[i][2] >> 4 == 2]
    strong = [i for i in undefined if entries[i][2] >> 4 != 2]
    assert table.split_by_weakness(undefined) == (([], undefined) if not weak else (weak, strong))

    def name_of(offset: int) -> str:
        end = table.strtab.index(b"\0", offset)
        return table.strtab[offset:end].decode("utf-8", "backslashreplace")

    assert table.names_at(undefined) == frozenset(
        name_of(entries[i][1]) for i in undefined if entries[i][1]
    )

    versions, _names = table.versions
    first: dict[int, int] = {}
    for i in undefined:
        if i < len(versions):
            first.setdefault(versions[i] & VERSYM_INDEX, i)
    expected_users = {v: name_of(entries[i][1]) for v, i in first.items() if entries[i][1]}
    assert table.first_users() == expected_users

    for symbols in (imports, exports):
        plain = StaticSymbolTable(symbols.symbols())
        fresh = type(symbols)(table, defined=symbols is exports)  # nothing decoded yet
        for prefixes in (("PyInit_", "PyModExport_"), ("_Z",), ("cuda", "Py_"), ("memcpy",)):
            assert fresh.with_prefix(*prefixes) == plain.with_prefix(*prefixes), prefixes
        probe = frozenset({"memcpy", "PyInit_x", "?torchCheckFail@detail@c10@@YAXPEBD0I0@Z"})
        probe |= frozenset(list(plain.names())[:5])
        assert type(symbols)(table, defined=symbols is exports).present(probe) == (
            plain.names() & probe
        )
        assert fresh.weak_names() == plain.weak_names()


def _elf_libraries(directory: Path) -> Iterator[Library]:
    for path in sorted(directory.iterdir()):
        if path.is_file() and not path.is_symlink():
            try:
                library = read_library(path)
            except BinaryReadError:
                continue
            if isinstance(library.imports, LazySymbols):
                yield library


def test_column_shortcuts_agree_on_the_fixtures(built: Fixtures) -> None:
    libraries = list(_elf_libraries(built.directory))
    assert len(libraries) >= 8
    for library in libraries:
        _check(library)


@pytest.mark.torch
def test_column_shortcuts_agree_on_a_real_environment() -> None:
    """Every ELF library of the benchmark environment (else of the installed torch)."""
    if BENCH_SITE.is_dir():
        roots = [p.parent for p in BENCH_SITE.rglob("*.so*") if p.is_file()]
    else:
        from helpers.real_wheels import installed_torch

        roots = [installed_torch() / "lib"]
    checked = 0
    for directory in sorted(set(roots)):
        for library in _elf_libraries(directory):
            _check(library)
            checked += 1
    assert checked > 5


# -- PrefetchedBytes ----------------------------------------------------------------------------

DATA = bytes(range(256)) * 64  # 16 KiB


def test_reads_inside_a_window_come_from_it_and_equal_the_source() -> None:
    source = MemorySource(DATA)
    prefetched = PrefetchedBytes(source)
    prefetched.prefetch(100, 1000, "window")
    assert source.reads == [(100, 1000)]
    for offset, length in [(100, 0), (100, 1000), (500, 10), (1099, 1), (1050, 50)]:
        assert prefetched.read(offset, length, "x") == DATA[offset : offset + length]
    assert source.reads == [(100, 1000)]  # all served from the window
    assert prefetched.read(99, 2, "x") == DATA[99:101]  # straddles: goes to the source
    assert prefetched.read(1099, 2, "x") == DATA[1099:1101]
    assert source.reads[1:] == [(99, 2), (1099, 2)]


def test_a_window_is_clipped_to_the_file_and_errors_stay_the_sources() -> None:
    source = MemorySource(DATA)
    prefetched = PrefetchedBytes(source)
    prefetched.prefetch(len(DATA) - 10, 1 << 20, "tail")
    assert source.reads == [(len(DATA) - 10, 10)]
    prefetched.prefetch(len(DATA), 10, "past the end")  # nothing to read there
    prefetched.prefetch(-5, 10, "before the start")
    prefetched.prefetch(0, 0, "empty")
    assert len(source.reads) == 1
    assert prefetched.read(len(DATA) - 4, 4, "x") == DATA[-4:]
    with pytest.raises(BinaryReadError, match="lies outside the file"):
        prefetched.read(len(DATA) - 4, 5, "past the end")
    with pytest.raises(BinaryReadError, match="lies outside the file"):
        prefetched.read(len(DATA) - 4, -1, "a negative length")
    with pytest.raises(BinaryReadError, match="lies outside the file"):
        prefetched.read(-1, 1, "a negative offset")


def test_a_held_range_is_not_read_again_and_a_stream_is_never_read_ahead() -> None:
    source = MemorySource(DATA)
    prefetched = PrefetchedBytes(source)
    prefetched.prefetch(0, 4096, "head")
    prefetched.prefetch(100, 100, "inside the head")
    assert source.reads == [(0, 4096)]
    stream = MemorySource(DATA, sequential=True)
    prefetched = PrefetchedBytes(stream)
    prefetched.prefetch(0, 4096, "head")
    assert stream.reads == []
    assert prefetched.read(0, 16, "x") == DATA[:16]
    assert stream.reads == [(0, 16)]


def test_a_failing_read_ahead_is_not_an_error() -> None:
    class Failing(MemorySource):
        def read(self, offset: int, length: int, what: str) -> bytes:
            if length > 100:
                raise OSError("EIO")
            return super().read(offset, length, what)

    prefetched = PrefetchedBytes(Failing(DATA))
    prefetched.prefetch(0, 4096, "head")
    assert prefetched.read(0, 16, "x") == DATA[:16]


def test_a_library_is_read_in_a_few_reads(built: Fixtures) -> None:
    """Headers, symbol and version tables of a small library come from one read of its start;
    the section headers and their names from one more (each was a system call of its own)."""
    source = MemorySource(built.versioned.read_bytes())
    library = parse_library(source, built.versioned)
    assert library.imports.names()
    assert library.version_needs
    assert len(source.reads) <= 4, source.reads
    stream = MemorySource(built.versioned.read_bytes(), sequential=True)
    streamed = parse_library(stream, built.versioned)
    assert streamed.imports.names() == library.imports.names()
    assert streamed.version_needs == library.version_needs
    assert tuple(streamed.rodata) == tuple(library.rodata)
    assert all(length < 4096 for _, length in stream.reads[:3])  # nothing read ahead


def test_weak_entries_are_found_among_the_imports(built: Fixtures) -> None:
    """The fixtures import weak symbols (``__gmon_start__``...): found by the translate path."""
    library = read_library(built.stable_plugin)
    table = library.imports._table  # type: ignore[attr-defined]
    weak, _strong = table.split_by_weakness(table.undefined_indices())
    decoded = library.imports.symbols()
    assert {s.name for s in decoded if s.binding is SymbolBinding.WEAK} == table.names_at(weak)
