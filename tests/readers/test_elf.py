"""The native ELF reader, on compiled fixtures, hand-built files and corrupt input.

``readelf`` (binutils) serves as an independent oracle where it is installed; the product itself
never runs it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import random
import re
import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Literal, NamedTuple

import pytest

from helpers.build import SOURCES, Fixtures, compiler
from helpers.elf_builder import (
    EM_386,
    EM_AARCH64,
    EM_ARM,
    EM_PPC,
    EM_PPC64,
    EM_S390,
    ET_CORE,
    ET_EXEC,
    STB_GLOBAL,
    STB_GNU_UNIQUE,
    STB_WEAK,
    STT_FUNC,
    STT_GNU_IFUNC,
    STT_NOTYPE,
    STT_OBJECT,
    STT_TLS,
    STV_DEFAULT,
    STV_HIDDEN,
    STV_PROTECTED,
    ElfImage,
    HashStyle,
    Sym,
    build_elf,
    drop_section_headers,
)
from torch_abi_audit.model import (
    BinaryFormat,
    Library,
    StaticSymbolTable,
    Symbol,
    SymbolBinding,
    SymbolType,
    SymbolVisibility,
)
from torch_abi_audit.readers import BinaryReadError, UnsupportedFormatError, read_library
from torch_abi_audit.readers.elf import read_elf

READELF = shutil.which("readelf")
needs_readelf = pytest.mark.skipif(READELF is None, reason="binutils readelf is not installed")

# Every compiled fixture (attribute names of helpers.build.Fixtures).
FIXTURES = [
    "abi3_ext",
    "private_ext",
    "abi3_bad_ext",
    "stable_plugin",
    "unstable_lib",
    "signature_lib",
    "versioned",
    "sysv_hash",
    "tiny32",
]

GLIBC_VERSION = re.compile(r"GLIBC_2\.\d+(\.\d+)?")


def fixture_path(built: Fixtures, name: str) -> Path:
    path = getattr(built, name)
    assert isinstance(path, Path)
    return path


def by_name(symbols: tuple[Symbol, ...]) -> dict[str, Symbol]:
    return {s.name: s for s in symbols}


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail (``TimeoutError``) if the block runs longer than ``seconds``: hangs become errors.

    Needs ``SIGALRM`` (POSIX); elsewhere the block simply runs unguarded.
    """
    if not hasattr(signal, "setitimer"):  # pragma: no cover - Windows
        yield
        return

    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise TimeoutError(f"no result within {seconds} s: the reader hangs")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def read_fully(path: Path) -> Library:
    """Read ``path`` and force every lazy part, so late decoding errors surface here."""
    library = read_elf(path, local_symbols=True)
    # names() and with_prefix() first: they have fast paths that skip the full decode.
    library.exports.names()
    library.exports.with_prefix("foo", "_Z")
    library.exports.symbols()
    return library


# -- a small independent view of the layout (little-endian fixtures), for patching bytes --------


@dataclass(frozen=True)
class Section:
    name: str
    header: int  # file offset of the section header
    type: int
    offset: int
    size: int
    link: int
    entsize: int


@dataclass(frozen=True)
class Layout:
    is64: bool
    phoff: int
    phnum: int
    phentsize: int
    shoff: int
    sections: dict[str, Section]

    # Offsets of fields inside a section header / symbol / dynamic entry.
    @property
    def sh_link_at(self) -> int:
        return 40 if self.is64 else 24

    @property
    def sh_info_at(self) -> int:
        return 44 if self.is64 else 28

    @property
    def sh_entsize_at(self) -> int:
        return 56 if self.is64 else 36

    @property
    def dyn_size(self) -> int:
        return 16 if self.is64 else 8


def layout_of(data: bytes) -> Layout:
    """Parse the header and section headers of a little-endian ELF file."""
    assert data[:4] == b"\x7fELF" and data[5] == 1
    is64 = data[4] == 2
    if is64:
        phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
        phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", data, 0x36)
        shdr = "<IIQQQQIIQQ"
    else:
        phoff, shoff = struct.unpack_from("<II", data, 0x1C)
        phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", data, 0x2A)
        shdr = "<IIIIIIIIII"
    raw = [struct.unpack_from(shdr, data, shoff + i * shentsize) for i in range(shnum)]
    names_at = raw[shstrndx][4]
    sections = {}
    for i, (name, sh_type, _f, _a, offset, size, link, _info, _al, entsize) in enumerate(raw):
        start = names_at + name
        text = data[start : data.index(b"\0", start)].decode()
        sections[text] = Section(text, shoff + i * shentsize, sh_type, offset, size, link, entsize)
    return Layout(is64, phoff, phnum, phentsize, shoff, sections)


def dynsym_index(data: bytes, layout: Layout, name: str) -> int:
    """Index of ``name`` in ``.dynsym`` (st_name is the first field in both classes)."""
    dynsym, dynstr = layout.sections[".dynsym"], layout.sections[".dynstr"]
    for i in range(dynsym.size // dynsym.entsize):
        (st_name,) = struct.unpack_from("<I", data, dynsym.offset + i * dynsym.entsize)
        start = dynstr.offset + st_name
        if data[start : data.index(b"\0", start)] == name.encode():
            return i
    raise AssertionError(f"{name} is not in .dynsym")


def dynamic_entry(data: bytes, layout: Layout, tag: int) -> int:
    """File offset of the first ``.dynamic`` entry with ``tag``."""
    dynamic = layout.sections[".dynamic"]
    fmt = "<qQ" if layout.is64 else "<iI"
    for at in range(dynamic.offset, dynamic.offset + dynamic.size, layout.dyn_size):
        if struct.unpack_from(fmt, data, at)[0] == tag:
            return at
    raise AssertionError(f"no dynamic tag {tag:#x}")


def patched(data: bytes, *edits: tuple[int, str, int]) -> bytes:
    """``data`` with ``struct.pack_into(fmt, at, value)`` applied for each (at, fmt, value)."""
    out = bytearray(data)
    for at, fmt, value in edits:
        struct.pack_into(fmt, out, at, value)
    return bytes(out)


def write(tmp_path: Path, data: bytes, name: str = "libcorrupt.so") -> Path:
    """Write ``data`` to ``tmp_path / name``."""
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- readelf as an oracle -------------------------------------------------------------------------

READELF_SYMBOL = re.compile(
    r"^\s*\d+:\s+[0-9a-fA-F]+\s+\S+\s+(?P<type>\S+)\s+(?P<bind>\S+)\s+(?P<vis>\S+)"
    r"\s+(?P<ndx>\S+)\s?(?P<name>.*)$"
)
READELF_TYPES = {
    "NOTYPE": SymbolType.NOTYPE,
    "OBJECT": SymbolType.OBJECT,
    "FUNC": SymbolType.FUNC,
    "SECTION": SymbolType.SECTION,
    "FILE": SymbolType.FILE,
    "COMMON": SymbolType.COMMON,
    "TLS": SymbolType.TLS,
    "IFUNC": SymbolType.GNU_IFUNC,
}
READELF_BINDINGS = {
    "LOCAL": SymbolBinding.LOCAL,
    "GLOBAL": SymbolBinding.GLOBAL,
    "WEAK": SymbolBinding.WEAK,
    "UNIQUE": SymbolBinding.GNU_UNIQUE,
}


@dataclass(frozen=True)
class ReadelfSymbol:
    name: str
    defined: bool
    binding: SymbolBinding
    type: SymbolType
    visibility: SymbolVisibility
    version: str | None
    hidden: bool


def readelf(*args: str) -> str:
    assert READELF is not None
    return subprocess.run([READELF, "-W", *args], check=True, capture_output=True, text=True).stdout


def readelf_dynamic_symbols(path: Path) -> list[ReadelfSymbol]:
    """The named ``.dynsym`` entries as ``readelf --dyn-syms -W`` lists them."""
    found = []
    for line in readelf("--dyn-syms", str(path)).splitlines():
        match = READELF_SYMBOL.match(line)
        if match is None or not match["name"]:
            continue
        name = re.sub(r" \(\d+\)$", "", match["name"])  # "cos@GLIBC_2.2.5 (3)": version index
        version: str | None = None
        hidden = False
        if "@" in name:
            name, sep, version = name.partition("@@") if "@@" in name else name.partition("@")
            hidden = sep == "@"
        found.append(
            ReadelfSymbol(
                name,
                match["ndx"] != "UND",
                READELF_BINDINGS[match["bind"]],
                READELF_TYPES[match["type"]],
                SymbolVisibility(match["vis"].lower()),
                version,
                hidden,
            )
        )
    return found


def readelf_dynamic_strings(path: Path) -> dict[str, list[str]]:
    """NEEDED / SONAME / RPATH / RUNPATH values from ``readelf -d``."""
    found: dict[str, list[str]] = {"NEEDED": [], "SONAME": [], "RPATH": [], "RUNPATH": []}
    pattern = re.compile(r"\((NEEDED|SONAME|RPATH|RUNPATH)\)\s+[^\[]*\[(.*)\]$")
    for line in readelf("-d", str(path)).splitlines():
        match = pattern.search(line)
        if match:
            found[match[1]].append(match[2])
    return found


def assert_matches_readelf(library: Library, path: Path) -> None:
    """Our dynamic symbols equal readelf's, name by name, field by field."""
    theirs = readelf_dynamic_symbols(path)
    ours = list(library.symbols)
    assert sorted((s.name, s.defined) for s in ours) == sorted((s.name, s.defined) for s in theirs)
    ours_by_key = {(s.name, s.defined, s.version): s for s in ours}
    for their in theirs:
        # readelf prints the symbol that names a version definition (``FOO_1.0``, ABS) without
        # a version suffix; the reader reports the version it is tied to.
        version = their.version
        if version is None and (their.name, their.defined, their.name) in ours_by_key:
            version = their.name
        key = (their.name, their.defined, version)
        assert key in ours_by_key, f"readelf lists {key}, the reader does not"
        our = ours_by_key[key]
        assert (our.binding, our.type, our.visibility) == (
            their.binding,
            their.type,
            their.visibility,
        ), their.name
        if their.defined and their.version is not None:
            assert our.version_hidden == their.hidden, their.name


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


# -- hand-built files: other classes, byte orders and machines ---------------------------------

SYNTHETIC_SYMBOLS = [
    Sym("cos", defined=False, version="GLIBC_2.2.5", library="libm.so.6"),
    Sym("sin", defined=False, version="GLIBC_2.2.5", library="libm.so.6"),
    Sym("malloc", defined=False, version="GLIBC_2.0", library="libc.so.6"),
    Sym("memcpy", defined=False, version="GLIBC_2.14", library="libc.so.6"),
    Sym("__cxa_finalize", defined=False, binding=STB_WEAK, type=STT_NOTYPE),
    Sym("aoti_torch_get_dim", defined=False, type=STT_NOTYPE),
    Sym("api_v2", version="API_2"),
    Sym("api_v1", version="API_1", hidden=True),
    Sym("counter", type=STT_OBJECT, version="API_2"),
    Sym("tls_slot", type=STT_TLS),
    Sym("weak_default", binding=STB_WEAK),
    Sym("protected_fn", visibility=STV_PROTECTED),
    Sym("hidden_fn", visibility=STV_HIDDEN),
    Sym("unique_obj", binding=STB_GNU_UNIQUE, type=STT_OBJECT),
    Sym("resolver", type=STT_GNU_IFUNC),
    Sym("_ZN3c106detail14torchCheckFailEPKcS2_jS2_"),
]


class Target(NamedTuple):
    bits: Literal[32, 64]
    big_endian: bool
    machine: int  # e_machine
    name: str  # what the reader calls it


TARGETS = [
    Target(32, True, EM_PPC, "ppc"),
    Target(64, True, EM_S390, "s390x"),  # 8-byte DT_HASH entries
    Target(64, True, EM_PPC64, "ppc64"),
    Target(64, False, EM_AARCH64, "aarch64"),
    Target(32, False, EM_386, "i386"),
    Target(32, False, EM_ARM, "arm"),
]
TARGET_IDS = [f"{t.name}-{t.bits}{'be' if t.big_endian else 'le'}" for t in TARGETS]
HASH_STYLES: list[HashStyle] = ["gnu", "sysv", "both"]


def expected_symbol(spec: Sym) -> Symbol:
    return Symbol(
        spec.name,
        spec.defined,
        {
            STB_GLOBAL: SymbolBinding.GLOBAL,
            STB_WEAK: SymbolBinding.WEAK,
            STB_GNU_UNIQUE: SymbolBinding.GNU_UNIQUE,
        }[spec.binding],
        {
            STT_NOTYPE: SymbolType.NOTYPE,
            STT_OBJECT: SymbolType.OBJECT,
            STT_FUNC: SymbolType.FUNC,
            STT_TLS: SymbolType.TLS,
            STT_GNU_IFUNC: SymbolType.GNU_IFUNC,
        }[spec.type],
        {
            STV_DEFAULT: SymbolVisibility.DEFAULT,
            STV_HIDDEN: SymbolVisibility.HIDDEN,
            STV_PROTECTED: SymbolVisibility.PROTECTED,
        }[spec.visibility],
        spec.version,
        spec.hidden,
        spec.library,
    )


def synthetic(target: Target, hash_style: HashStyle, *, section_headers: bool) -> ElfImage:
    return build_elf(
        SYNTHETIC_SYMBOLS,
        bits=target.bits,
        big_endian=target.big_endian,
        machine=target.machine,
        needed=["libm.so.6", "libc.so.6", "libtorch_cpu.so"],
        soname="libsynthetic.so.2",
        rpath="/opt/a:/opt/b",
        runpath="$ORIGIN:$ORIGIN/../lib",
        hash_style=hash_style,
        section_headers=section_headers,
    )


@pytest.mark.parametrize("section_headers", [True, False], ids=["sections", "no-sections"])
@pytest.mark.parametrize("hash_style", HASH_STYLES)
@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_synthetic_library_reads_back_exactly(
    tmp_path: Path, target: Target, hash_style: HashStyle, section_headers: bool
) -> None:
    image = synthetic(target, hash_style, section_headers=section_headers)
    lib = read_elf(image.write(tmp_path / "libsynthetic.so"))
    assert (lib.bits, lib.byte_order, lib.machine) == (
        target.bits,
        "big" if target.big_endian else "little",
        target.name,
    )
    assert lib.needed == ("libm.so.6", "libc.so.6", "libtorch_cpu.so")
    assert lib.soname == "libsynthetic.so.2"
    assert lib.rpath == ("/opt/a", "/opt/b")
    assert lib.runpath == ("$ORIGIN", "$ORIGIN/../lib")
    specs = {s.name: s for s in SYNTHETIC_SYMBOLS}
    in_table_order = [expected_symbol(specs[name]) for name in image.symbol_order]
    assert lib.imports == tuple(s for s in in_table_order if not s.defined)
    assert lib.exports.symbols() == tuple(s for s in in_table_order if s.defined)
    assert lib.local_symbols is None


@needs_readelf
@pytest.mark.parametrize("hash_style", HASH_STYLES)
@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_synthetic_library_matches_readelf(
    tmp_path: Path, target: Target, hash_style: HashStyle
) -> None:
    """The builder writes what binutils understands, and the reader agrees with binutils."""
    image = synthetic(target, hash_style, section_headers=True)
    path = image.write(tmp_path / "lib.so")
    assert_matches_readelf(read_elf(path), path)
    theirs = readelf_dynamic_strings(path)
    assert theirs["NEEDED"] == ["libm.so.6", "libc.so.6", "libtorch_cpu.so"]
    versions = readelf("-V", str(path))
    assert re.search(r"File: libm\.so\.6\s+Cnt: 1\n", versions)  # cos, sin: one GLIBC_2.2.5
    assert re.search(r"File: libc\.so\.6\s+Cnt: 2\n", versions)  # GLIBC_2.0, GLIBC_2.14
    assert re.search(r"Flags: BASE\s+Index: 1\s+Cnt: 1\s+Name: libsynthetic\.so\.2", versions)
    assert re.search(r"Index: \d+\s+Cnt: 1\s+Name: API_1", versions)


def test_unknown_machine_is_named_by_number(tmp_path: Path) -> None:
    lib = read_elf(build_elf([Sym("f")], machine=0x1234).write(tmp_path / "lib.so"))
    assert lib.machine == "machine-4660"


@pytest.mark.parametrize("hash_style", HASH_STYLES)
@pytest.mark.parametrize(
    "symbols",
    [[], [Sym("only_import", defined=False)], [Sym("only_export")]],
    ids=["empty", "imports-only", "exports-only"],
)
def test_section_less_edge_tables(
    tmp_path: Path, symbols: list[Sym], hash_style: HashStyle
) -> None:
    image = build_elf(symbols, hash_style=hash_style, section_headers=False, needed=["libc.so.6"])
    lib = read_elf(image.write(tmp_path / "lib.so"))
    assert [s.name for s in lib.imports] == [s.name for s in symbols if not s.defined]
    assert [s.name for s in lib.exports] == [s.name for s in symbols if s.defined]
    assert lib.needed == ("libc.so.6",)


def test_many_symbols_gnu_hash_without_sections(tmp_path: Path) -> None:
    """Several GNU hash buckets: the reader must walk the last bucket's chain to its end."""
    symbols = [Sym(f"export_{i}") for i in range(200)] + [
        Sym(f"import_{i}", defined=False) for i in range(50)
    ]
    image = build_elf(symbols, hash_style="gnu", section_headers=False, big_endian=True)
    lib = read_elf(image.write(tmp_path / "lib.so"))
    assert len(lib.imports) == 50
    assert lib.exports.names() == {f"export_{i}" for i in range(200)}


# -- bad input -----------------------------------------------------------------------------------


def expect_read_error(path: Path, match: str | None = None) -> BinaryReadError:
    with deadline(10), pytest.raises(BinaryReadError, match=match) as info:
        read_fully(path)
    return info.value


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x7fEL",
        b"\x7fELF",
        b"hello, I am a text file pretending to be a library\n" * 20,
        b"\x7fELF" + bytes(range(256)) * 4,
        b"\x7fELF\x03\x01\x01" + bytes(57),  # unknown EI_CLASS
        b"\x7fELF\x00\x01\x01" + bytes(57),  # ELFCLASSNONE
        b"\x7fELF\x02\x07\x01" + bytes(57),  # unknown EI_DATA
        b"\x7fELF\x02\x01\x01" + bytes(9),  # identification only, no header
        # A valid identification and e_type ET_DYN, then seeded random bytes.
        b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x03\x00" + random.Random(7).randbytes(4000),
        b"\x7fELF\x01\x02\x01" + bytes(9) + b"\x00\x03" + random.Random(8).randbytes(4000),
    ],
    ids=[
        "empty",
        "3-bytes",
        "magic",
        "text",
        "garbage",
        "class-3",
        "class-0",
        "data-7",
        "ident",
        "random-64le",
        "random-32be",
    ],
)
def test_not_an_elf_shared_object(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "libbad.so"
    path.write_bytes(content)
    expect_read_error(path)
    with pytest.raises(BinaryReadError) as info:
        read_library(path)
    assert not isinstance(info.value, UnsupportedFormatError)


def test_truncated_copies(built: Fixtures, tmp_path: Path) -> None:
    data = built.versioned.read_bytes()
    cuts = [*range(0, 4096, 97), len(data) // 2, len(data) - 100, len(data) - 1]
    for size in cuts:
        path = tmp_path / f"cut{size}.so"
        path.write_bytes(data[:size])
        expect_read_error(path)


def test_truncated_32_bit_copies(built: Fixtures, tmp_path: Path) -> None:
    data = built.tiny32.read_bytes()
    for size in [*range(0, 2048, 61), len(data) - 1]:
        path = tmp_path / f"cut{size}.so"
        path.write_bytes(data[:size])
        expect_read_error(path)


def test_section_headers_beyond_eof(built: Fixtures, tmp_path: Path) -> None:
    data = built.versioned.read_bytes()
    expect_read_error(
        write(tmp_path, patched(data, (0x28, "<Q", len(data) + 64))), "extends past the end"
    )
    expect_read_error(write(tmp_path, patched(data, (0x28, "<Q", 1 << 63))), "extends past the end")


def test_program_headers_beyond_eof(built: Fixtures, tmp_path: Path) -> None:
    data = drop_section_headers(built.versioned.read_bytes())
    expect_read_error(write(tmp_path, patched(data, (0x20, "<Q", len(data)))))
    expect_read_error(write(tmp_path, patched(data, (0x38, "<H", 0xFFFF))))


def test_huge_section_count(built: Fixtures, tmp_path: Path) -> None:
    data = built.versioned.read_bytes()
    expect_read_error(write(tmp_path, patched(data, (0x3C, "<H", 0xFFFF))), "extends past the end")
    # Extended numbering (e_shnum == 0: the count is section 0's sh_size) with a huge count.
    layout = layout_of(data)
    huge = patched(data, (0x3C, "<H", 0), (layout.shoff + 32, "<Q", 1 << 40))
    expect_read_error(write(tmp_path, huge), "extends past the end")


def test_section_header_size_zero(built: Fixtures, tmp_path: Path) -> None:
    data = built.versioned.read_bytes()
    expect_read_error(write(tmp_path, patched(data, (0x3A, "<H", 0))), "too small")


def test_symbol_entry_size(built: Fixtures, tmp_path: Path) -> None:
    data = built.versioned.read_bytes()
    dynsym = layout_of(data).sections[".dynsym"]
    at = dynsym.header + layout_of(data).sh_entsize_at
    # sh_entsize 0 means "unknown": the reader uses the class's Elf_Sym size.
    lib = read_elf(write(tmp_path, patched(data, (at, "<Q", 0)), "zero.so"))
    assert lib.imports == read_elf(built.versioned).imports
    # An entry size smaller than an Elf64_Sym is corrupt.
    expect_read_error(write(tmp_path, patched(data, (at, "<Q", 1))), "entry size")


def test_dynsym_link_out_of_range(built: Fixtures, tmp_path: Path) -> None:
    data = built.versioned.read_bytes()
    layout = layout_of(data)
    at = layout.sections[".dynsym"].header + layout.sh_link_at
    expect_read_error(write(tmp_path, patched(data, (at, "<I", 99))), "out of range")
    expect_read_error(write(tmp_path, patched(data, (at, "<I", 0))), "out of range")


def test_string_offsets_beyond_the_table(built: Fixtures, tmp_path: Path) -> None:
    data = built.versioned.read_bytes()
    layout = layout_of(data)
    dynsym = layout.sections[".dynsym"]
    # An import's or an export's name: names are validated when the file is read, so the lazy
    # tables never fail later.
    for symbol in ("cos", "foo_api"):
        at = dynsym.offset + dynsym_index(data, layout, symbol) * dynsym.entsize
        expect_read_error(write(tmp_path, patched(data, (at, "<I", 0xFFFFFF))), "string table")
    # DT_NEEDED and DT_SONAME values.
    needed = dynamic_entry(data, layout, 1) + 8
    expect_read_error(write(tmp_path, patched(data, (needed, "<Q", 1 << 20))), "DT_NEEDED")
    soname = dynamic_entry(data, layout, 14) + 8
    expect_read_error(write(tmp_path, patched(data, (soname, "<Q", 1 << 20))), "DT_SONAME")
    # A version requirement's library and version name (Elf64_Verneed.vn_file, Vernaux.vna_name).
    verneed = layout.sections[".gnu.version_r"].offset
    expect_read_error(write(tmp_path, patched(data, (verneed + 4, "<I", 1 << 20))), "string")
    expect_read_error(write(tmp_path, patched(data, (verneed + 16 + 8, "<I", 1 << 20))), "string")
    # A string that runs to the end of its table without a NUL.
    dynstr = layout.sections[".dynstr"]
    last = patched(data, (dynstr.offset + dynstr.size - 1, "<B", ord("x")))
    expect_read_error(write(tmp_path, last))


def test_unterminated_export_name(tmp_path: Path) -> None:
    """A name running off the end of .dynstr fails the read itself, not a later accessor."""
    image = build_elf([Sym("imp", defined=False), Sym("zed")], hash_style="sysv")
    offset, size = image.parts[".dynstr"]
    assert image.data[offset : offset + size].endswith(b"zed\0")
    path = write(tmp_path, patched(image.data, (offset + size - 1, "<B", ord("x"))))
    with pytest.raises(BinaryReadError, match="NUL-terminated"):
        read_elf(path)


@pytest.mark.parametrize("strip", [False, True], ids=["sections", "no-sections"])
def test_version_chains_terminate(built: Fixtures, tmp_path: Path, strip: bool) -> None:
    """Version chains with hostile counts and links end, with a result or a BinaryReadError.

    The vn_next/vna_next/vd_next links are relative: 0 ends a chain, so an entry whose link
    points back at itself is one whose link is 0 while the count (sh_info, DT_VERNEEDNUM)
    claims billions of entries.
    """
    data = built.versioned.read_bytes()
    layout = layout_of(data)
    verneed = layout.sections[".gnu.version_r"]
    verdef = layout.sections[".gnu.version_d"]
    counts = [
        (verneed.header + layout.sh_info_at, "<I", 0xFFFFFFFF),
        (dynamic_entry(data, layout, 0x6FFFFFFF) + 8, "<Q", 0xFFFFFFFF),  # DT_VERNEEDNUM
        (verdef.header + layout.sh_info_at, "<I", 0xFFFFFFFF),
        (dynamic_entry(data, layout, 0x6FFFFFFD) + 8, "<Q", 0xFFFFFFFF),  # DT_VERDEFNUM
    ]
    want = read_elf(built.versioned)

    def prepare(content: bytes, name: str) -> Path:
        return write(tmp_path, drop_section_headers(content) if strip else content, f"{name}.so")

    # Links of 0 end the chains whatever the counts say: the versions read as before.
    self_loops = {
        "self-loop": patched(data, *counts),
        "aux-self-loop": patched(data, *counts, (verneed.offset + 2, "<H", 0xFFFF)),  # vn_cnt
    }
    for name, content in self_loops.items():
        with deadline(10):
            lib = read_fully(prepare(content, name))
        assert lib.imports == want.imports, name
        assert lib.exports == want.exports, name
    # Links that step into the middle of entries: garbage, but the walk must end.
    hostile = {
        "next-into-aux": patched(data, *counts, (verneed.offset + 12, "<I", 16)),  # vn_next
        "next-by-one": patched(data, *counts, (verneed.offset + 12, "<I", 1)),
        "aux-next-by-one": patched(
            data, *counts, (verneed.offset + 2, "<H", 0xFFFF), (verneed.offset + 16 + 12, "<I", 1)
        ),
        "verdef-next-by-one": patched(data, *counts, (verdef.offset + 16, "<I", 1)),
    }
    for name, content in hostile.items():
        path = prepare(content, name)
        with deadline(10), contextlib.suppress(BinaryReadError):
            read_fully(path)


def test_section_less_without_hash_table(built: Fixtures, tmp_path: Path) -> None:
    data = built.versioned.read_bytes()
    gnu_hash_tag = dynamic_entry(data, layout_of(data), 0x6FFFFEF5)
    # Turn DT_GNU_HASH into an unknown OS-specific tag: nothing sizes .dynsym any more.
    no_hash = drop_section_headers(patched(data, (gnu_hash_tag, "<q", 0x6FFFFEF0)))
    expect_read_error(write(tmp_path, no_hash), "hash")


def test_section_less_hostile_hash_tables(built: Fixtures, tmp_path: Path) -> None:
    sysv = built.sysv_hash.read_bytes()
    hash_at = layout_of(sysv).sections[".hash"].offset
    huge_nchain = drop_section_headers(patched(sysv, (hash_at + 4, "<I", 0xFFFFFFFF)))
    expect_read_error(write(tmp_path, huge_nchain, "nchain.so"), "outside")
    gnu = built.versioned.read_bytes()
    gnu_at = layout_of(gnu).sections[".gnu.hash"].offset
    huge_buckets = drop_section_headers(patched(gnu, (gnu_at, "<I", 0xFFFFFFFF)))
    expect_read_error(write(tmp_path, huge_buckets, "nbuckets.so"), "bucket")
    huge_bloom = drop_section_headers(patched(gnu, (gnu_at + 8, "<I", 0xFFFFFFFF)))
    expect_read_error(write(tmp_path, huge_bloom, "bloom.so"), "outside")
    # A DT_SYMTAB address outside every PT_LOAD segment.
    symtab = dynamic_entry(gnu, layout_of(gnu), 6) + 8
    unmapped = drop_section_headers(patched(gnu, (symtab, "<Q", 1 << 40)))
    expect_read_error(write(tmp_path, unmapped, "unmapped.so"), "not in any loaded segment")


def compile_to(tmp_path: Path, *flags: str, name: str) -> Path:
    output = tmp_path / name
    subprocess.run(
        [compiler("c"), *flags, "-o", str(output)], check=True, capture_output=True, text=True
    )
    return output


def test_relocatable_object_is_rejected(tmp_path: Path) -> None:
    obj = compile_to(tmp_path, "-c", "-fPIC", str(SOURCES / "plain.c"), name="plain.o")
    error = expect_read_error(obj, "not a shared object")
    assert "relocatable" in str(error)


def test_executable_is_rejected(tmp_path: Path) -> None:
    source = tmp_path / "main.c"
    source.write_text("int main(void) { return 0; }\n")
    try:
        exe = compile_to(tmp_path, "-no-pie", str(source), name="main")
    except subprocess.CalledProcessError as exc:  # pragma: no cover - toolchain without -no-pie
        pytest.skip(f"cannot link a non-PIE executable: {exc.stderr}")
    error = expect_read_error(exe, "not a shared object")
    assert "executable" in str(error)


@pytest.mark.parametrize(("e_type", "word"), [(ET_EXEC, "executable"), (ET_CORE, "core")])
def test_other_object_types_are_rejected(tmp_path: Path, e_type: int, word: str) -> None:
    path = build_elf([Sym("f")], e_type=e_type, bits=32, big_endian=True).write(tmp_path / "x")
    error = expect_read_error(path, "not a shared object")
    assert word in str(error)


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\xcf\xfa\xed\xfe\x07\x00\x00\x01", "Mach-O"),
        (b"\xfe\xed\xfa\xce\x00\x00\x00\x12", "Mach-O"),
        (b"\xca\xfe\xba\xbe\x00\x00\x00\x02", "Mach-O"),
        (b"MZ\x90\x00\x03\x00\x00\x00", "PE"),
    ],
)
def test_other_formats_are_unsupported(tmp_path: Path, head: bytes, kind: str) -> None:
    path = write(tmp_path, head + bytes(120), "lib.bin")
    with pytest.raises(UnsupportedFormatError, match=kind):
        read_library(path)


def test_java_class_is_not_mach_o(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xca\xfe\xba\xbe\x00\x00\x00\x34" + bytes(64), "Main.class")
    with pytest.raises(BinaryReadError) as info:
        read_library(path)
    assert not isinstance(info.value, UnsupportedFormatError)


def fuzz_regions(data: bytes, *, section_headers: bool) -> list[range]:
    """Header, program headers, section headers, .dynamic and the symbol/version metadata."""
    layout = layout_of(data)
    regions = [
        range(64 if layout.is64 else 52),
        range(layout.phoff, layout.phoff + layout.phnum * layout.phentsize),
    ]
    if section_headers:
        regions.append(range(layout.shoff, len(data)))
    for name in (".dynamic", ".dynsym", ".gnu.hash", ".hash", ".gnu.version_r", ".gnu.version_d"):
        section = layout.sections.get(name)
        if section is not None:
            regions.append(range(section.offset, section.offset + section.size))
    return regions


@pytest.mark.parametrize(
    ("name", "strip"),
    [("versioned", False), ("versioned", True), ("sysv_hash", True), ("tiny32", False)],
)
def test_byte_flip_fuzz(built: Fixtures, tmp_path: Path, name: str, strip: bool) -> None:
    """Single-byte corruptions yield a Library or a BinaryReadError: nothing else, no hang."""
    original = fixture_path(built, name).read_bytes()
    regions = fuzz_regions(original, section_headers=not strip)
    data = drop_section_headers(original) if strip else original
    rng = random.Random(f"{name}-{strip}-20250101")
    outcomes = {"library": 0, "error": 0}
    failures = []
    for n in range(300):
        region = rng.choice(regions)
        offset = rng.choice(region)
        mutated = bytearray(data)
        mutated[offset] ^= rng.randrange(1, 256)
        path = write(tmp_path, bytes(mutated), f"fuzz{n}.so")
        try:
            with deadline(10):
                read_fully(path)
            outcomes["library"] += 1
        except BinaryReadError:
            outcomes["error"] += 1
        except Exception as exc:  # the point of the test: report, don't stop at the first
            failures.append(f"offset {offset:#x}: {type(exc).__name__}: {exc}")
        path.unlink()
    assert not failures, "\n".join(failures)
    assert outcomes["library"] and outcomes["error"], outcomes  # both paths were exercised


# -- SymbolTable ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["versioned", "unstable_lib", "stable_plugin", "tiny32"])
def test_export_names_match_symbols(built: Fixtures, name: str) -> None:
    path = fixture_path(built, name)
    lazy = read_elf(path).exports
    names_first = lazy.names()  # before anything is decoded
    symbols = lazy.symbols()
    assert names_first == {s.name for s in symbols} == lazy.names()
    assert len(lazy) == len(symbols)
    assert list(lazy) == list(symbols)
    assert lazy[0] == symbols[0] and lazy[-1] == symbols[-1]
    assert tuple(lazy[1:3]) == symbols[1:3]


def test_with_prefix(built: Fixtures) -> None:
    exports = read_elf(built.versioned).exports
    foo = exports.with_prefix("foo_")
    assert {s.name for s in foo} == {
        "foo_api",
        "foo_weak",
        "foo_protected",
        "foo_data",
        "foo_tls",
        "foo_call_hook",
    }
    assert foo == tuple(s for s in exports.symbols() if s.name.startswith("foo_"))
    assert {s.name for s in exports.with_prefix("foo_api", "foo_tls")} == {"foo_api", "foo_tls"}
    assert exports.with_prefix("zz_absent_") == ()
    assert read_elf(built.versioned).exports.with_prefix("zz_absent_", "_ZN3c10") == ()


def test_with_prefix_absent_does_not_decode(
    built: Fixtures, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An absent prefix is answered from the string table, without decoding any symbol."""
    from torch_abi_audit.readers import elf_symbols

    lib = read_elf(built.versioned)

    def refuse(self: object, indices: object) -> tuple[Symbol, ...]:
        raise AssertionError("decoded although the prefix is absent")

    monkeypatch.setattr(elf_symbols.SymbolColumns, "decode", refuse)
    assert lib.exports.with_prefix("absent_") == ()
    with pytest.raises(AssertionError, match="decoded"):
        lib.exports.with_prefix("foo_")


def test_pickle_round_trip(built: Fixtures) -> None:
    lib = read_elf(built.versioned, local_symbols=True)
    restored = pickle.loads(pickle.dumps(lib))
    assert isinstance(restored, Library)
    assert isinstance(restored.exports, StaticSymbolTable)
    assert restored == lib
    assert restored.exports.symbols() == lib.exports.symbols()
    assert restored.exports.names() == lib.exports.names()
    assert restored.local_symbols == lib.local_symbols
    assert restored.imports == lib.imports


# -- a real torch build (optional) ----------------------------------------------------------------


@pytest.mark.torch
def test_libtorch_cpu() -> None:
    torch_dir = os.environ.get("TORCH_ABI_AUDIT_TORCH_DIR")
    if not torch_dir:
        pytest.skip("TORCH_ABI_AUDIT_TORCH_DIR is not set")
    path = Path(torch_dir) / "lib" / "libtorch_cpu.so"
    if not path.is_file():
        pytest.skip(f"{path} does not exist")
    lib = read_elf(path)
    assert lib.bits == 64
    start = time.perf_counter()
    assert lib.exports.with_prefix("zz_no_such_prefix_") == ()
    assert time.perf_counter() - start < 1.0
    assert len(lib.exports) > 70000
    glibc = [s for s in lib.imports if s.version and s.version.startswith("GLIBC_")]
    assert glibc
    assert all(GLIBC_VERSION.fullmatch(s.version or "") for s in glibc)
    # Each version requirement names a DT_NEEDED library (ld-linux-x86-64.so.2 included).
    assert {s.library for s in glibc} <= set(lib.needed)
    assert {"libc.so.6", "libm.so.6"} <= {s.library for s in glibc}
    assert lib.exports.with_prefix("_ZN2at")
