"""Independent views of ELF files for the reader tests: a byte-level layout parser for
patching fixtures, readelf as an oracle, and small utilities (deadline, patch, write).

These never use the product's reader, so the tests compare it against something else.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import pytest

from helpers.build import Fixtures
from torch_abi_audit.model import (
    Library,
    Symbol,
    SymbolBinding,
    SymbolType,
    SymbolVisibility,
)
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
