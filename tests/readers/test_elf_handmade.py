"""The ELF reader on hand-built files: other classes, byte orders, machines and hash styles."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, NamedTuple

import pytest

from helpers.elf_builder import (
    EM_386,
    EM_AARCH64,
    EM_ARM,
    EM_PPC,
    EM_PPC64,
    EM_S390,
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
)
from helpers.elf_inspect import (
    assert_matches_readelf,
    needs_readelf,
    readelf,
    readelf_dynamic_strings,
)
from torch_abi_audit.model import (
    Symbol,
    SymbolBinding,
    SymbolType,
    SymbolVisibility,
)
from torch_abi_audit.readers.elf import read_elf

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
