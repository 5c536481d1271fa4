"""The ELF reader on libraries compiled during the test run, cross-checked against readelf
and against the same files with their section headers removed (the loader's view)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from helpers.build import Fixtures
from helpers.elf_builder import (
    drop_section_headers,
)
from helpers.elf_inspect import (
    FIXTURES,
    GLIBC_VERSION,
    assert_matches_readelf,
    by_name,
    dynamic_entry,
    fixture_path,
    layout_of,
    needs_readelf,
    patched,
    readelf_dynamic_strings,
    write,
)
from torch_abi_audit.model import (
    BinaryFormat,
    Symbol,
    SymbolBinding,
    SymbolType,
    SymbolVisibility,
)
from torch_abi_audit.readers import read_library
from torch_abi_audit.readers.elf import read_elf

# -- the compiled fixtures --------------------------------------------------------------------


def test_versioned_library_metadata(built: Fixtures) -> None:
    lib = read_elf(built.versioned)
    assert lib.path == built.versioned
    assert lib.format is BinaryFormat.ELF
    assert lib.soname == "libfoo.so.1"
    # libm always; libc only where the toolchain does not link --as-needed (Debian does).
    assert lib.needed[0] == "libm.so.6"
    assert set(lib.needed) <= {"libm.so.6", "libc.so.6"}
    assert lib.runpath == ("$ORIGIN/../lib",)
    assert lib.rpath == ()
    assert (lib.machine, lib.bits, lib.byte_order) == ("x86_64", 64, "little")
    assert lib.local_symbols is None


def test_versioned_library_imports(built: Fixtures) -> None:
    imports = by_name(read_elf(built.versioned).imports.symbols())
    cos = imports["cos"]
    assert not cos.defined
    assert cos.version is not None and GLIBC_VERSION.fullmatch(cos.version), cos.version
    assert cos.library == "libm.so.6"
    assert (cos.binding, cos.type) == (SymbolBinding.GLOBAL, SymbolType.FUNC)
    hook = imports["optional_hook"]
    assert not hook.defined
    assert hook.binding is SymbolBinding.WEAK
    assert hook.version is None and hook.library is None
    assert all(not s.defined for s in imports.values())
    assert "foo_api" not in imports


def test_versioned_library_exports(built: Fixtures) -> None:
    lib = read_elf(built.versioned)
    exports = by_name(lib.exports.symbols())
    api = exports["foo_api"]
    assert api == Symbol(
        "foo_api",
        True,
        SymbolBinding.GLOBAL,
        SymbolType.FUNC,
        SymbolVisibility.DEFAULT,
        "FOO_1.0",
        False,
        None,
    )
    assert exports["foo_weak"].binding is SymbolBinding.WEAK
    assert exports["foo_protected"].visibility is SymbolVisibility.PROTECTED
    assert exports["foo_tls"].type is SymbolType.TLS
    assert exports["foo_data"].type is SymbolType.OBJECT
    assert exports["foo_call_hook"].type is SymbolType.FUNC
    api_names = {"foo_api", "foo_weak", "foo_protected", "foo_data", "foo_tls", "foo_call_hook"}
    assert all(exports[name].version == "FOO_1.0" for name in api_names)
    # The version script hides everything else; the linker adds the version's own symbol.
    assert set(exports) - api_names <= {"FOO_1.0"}
    assert "helper" not in exports


def test_local_symbols_on_request(built: Fixtures) -> None:
    lib = read_elf(built.versioned, local_symbols=True)
    assert lib.local_symbols is not None
    local = by_name(lib.local_symbols)
    assert local["helper"].type is SymbolType.FUNC
    assert all(s.binding is SymbolBinding.LOCAL for s in lib.local_symbols)
    assert "foo_api" not in local
    # Requesting locals changes nothing else.
    plain = read_elf(built.versioned)
    assert (lib.imports, lib.exports, lib.needed) == (plain.imports, plain.exports, plain.needed)


def test_gnu_unique_binding(built: Fixtures) -> None:
    exports = by_name(read_elf(built.unstable_lib).exports.symbols())
    counter = exports["_ZZ12call_countervE7counter"]
    assert counter.binding is SymbolBinding.GNU_UNIQUE
    assert counter.type is SymbolType.OBJECT
    assert exports["unstable_entry"].binding is SymbolBinding.GLOBAL


def test_32_bit_library(built: Fixtures) -> None:
    lib = read_elf(built.tiny32)
    assert (lib.machine, lib.bits, lib.byte_order) == ("i386", 32, "little")
    assert [s.name for s in lib.imports] == ["imported_function"]
    assert lib.exports.names() == {"exported_function"}
    (exported,) = lib.exports.symbols()
    assert (exported.type, exported.binding) == (SymbolType.FUNC, SymbolBinding.GLOBAL)


def test_sysv_hash_build_reads_like_gnu_hash_build(built: Fixtures) -> None:
    gnu, sysv = read_elf(built.versioned), read_elf(built.sysv_hash)
    assert sorted(gnu.imports) == sorted(sysv.imports)
    assert sorted(gnu.exports.symbols()) == sorted(sysv.exports.symbols())
    assert (gnu.needed, gnu.soname, gnu.runpath) == (sysv.needed, sysv.soname, sysv.runpath)


def test_read_library_follows_symlinks(built: Fixtures) -> None:
    via_link = read_library(built.versioned_link)
    direct = read_library(built.versioned)
    assert via_link.soname == direct.soname == "libfoo.so.1"
    assert via_link.imports == direct.imports


# -- readelf cross-checks ----------------------------------------------------------------------


@needs_readelf
@pytest.mark.parametrize("name", FIXTURES)
def test_dynamic_symbols_match_readelf(built: Fixtures, name: str) -> None:
    path = fixture_path(built, name)
    assert_matches_readelf(read_elf(path), path)


@needs_readelf
@pytest.mark.parametrize("name", FIXTURES)
def test_dynamic_strings_match_readelf(built: Fixtures, name: str) -> None:
    path = fixture_path(built, name)
    lib = read_elf(path)
    theirs = readelf_dynamic_strings(path)
    assert list(lib.needed) == theirs["NEEDED"]
    assert ([lib.soname] if lib.soname else []) == theirs["SONAME"]
    assert list(lib.runpath) == [p for v in theirs["RUNPATH"] for p in v.split(":") if p]
    assert list(lib.rpath) == [p for v in theirs["RPATH"] for p in v.split(":") if p]


# -- no section headers: the loader's view -----------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "versioned",  # DT_GNU_HASH, versions defined and needed
        "sysv_hash",  # DT_HASH
        "tiny32",  # ELFCLASS32, DT_GNU_HASH
        "unstable_lib",  # GNU-unique, C++
        "stable_plugin",
    ],
)
def test_section_less_copy_reads_the_same(built: Fixtures, name: str, tmp_path: Path) -> None:
    original = fixture_path(built, name)
    copy = tmp_path / original.name
    copy.write_bytes(drop_section_headers(original.read_bytes()))
    want, got = read_elf(original, local_symbols=True), read_elf(copy, local_symbols=True)
    assert got.imports == want.imports
    assert got.exports.symbols() == want.exports.symbols()
    assert got.exports.names() == want.exports.names()
    assert (got.needed, got.soname, got.runpath, got.rpath) == (
        want.needed,
        want.soname,
        want.runpath,
        want.rpath,
    )
    assert (got.machine, got.bits, got.byte_order) == (want.machine, want.bits, want.byte_order)
    # The copy really went through the fallback: no sections, so no static symbol table.
    assert want.local_symbols is not None
    assert got.local_symbols is None


def test_dynamic_entries_after_dt_null_are_ignored(built: Fixtures, tmp_path: Path) -> None:
    """gABI: DT_NULL ends the dynamic array; the linker's padding after it is not read."""
    data = built.versioned.read_bytes()
    layout = layout_of(data)
    dynamic = layout.sections[".dynamic"]
    after_null = dynamic_entry(data, layout, 0) + layout.dyn_size
    assert after_null + layout.dyn_size <= dynamic.offset + dynamic.size  # there is padding
    needed = struct.unpack_from("<Q", data, dynamic_entry(data, layout, 1) + 8)[0]
    # A stray DT_NEEDED "m.so.6" (the tail of "libm.so.6") in the padding.
    stray = patched(data, (after_null, "<q", 1), (after_null + 8, "<Q", needed + 3))
    for content in (stray, drop_section_headers(stray)):
        assert read_elf(write(tmp_path, content)).needed == read_elf(built.versioned).needed


def test_section_less_versions_survive(built: Fixtures, tmp_path: Path) -> None:
    copy = tmp_path / "libfoo.so.1"
    copy.write_bytes(drop_section_headers(built.sysv_hash.read_bytes()))
    lib = read_elf(copy)
    cos = by_name(lib.imports.symbols())["cos"]
    assert cos.library == "libm.so.6"
    assert cos.version is not None and GLIBC_VERSION.fullmatch(cos.version)
    assert by_name(lib.exports.symbols())["foo_api"].version == "FOO_1.0"
