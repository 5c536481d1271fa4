"""The Mach-O reader: hand-built images (every header flavour, symbol kind and load command),
universal files, chained fixups, corrupt input, and real macOS wheels from PyPI."""

from __future__ import annotations

import contextlib
import hashlib
import json
import pickle
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from helpers.elf_inspect import deadline, patched, write
from helpers.macho_builder import (
    CPU_TYPE_ARM,
    CPU_TYPE_ARM64,
    CPU_TYPE_ARM64_32,
    CPU_TYPE_POWERPC,
    CPU_TYPE_POWERPC64,
    CPU_TYPE_X86,
    CPU_TYPE_X86_64,
    DEFAULT_SECTIONS,
    DYLD_CHAINED_IMPORT,
    DYLD_CHAINED_IMPORT_ADDEND,
    DYLD_CHAINED_IMPORT_ADDEND64,
    DYNAMIC_LOOKUP_ORDINAL,
    EXECUTABLE_ORDINAL,
    LC_DYLD_INFO_ONLY,
    LC_LAZY_LOAD_DYLIB,
    LC_LOAD_DYLIB,
    LC_LOAD_UPWARD_DYLIB,
    LC_LOAD_WEAK_DYLIB,
    LC_REEXPORT_DYLIB,
    LC_UUID,
    MH_BUNDLE,
    MH_CORE,
    MH_DSYM,
    MH_DYLDLINK,
    MH_DYLINKER,
    MH_EXECUTE,
    MH_OBJECT,
    N_EXT,
    N_INDR,
    PLATFORM_IOS,
    PLATFORM_MACOS,
    S_CSTRING_LITERALS,
    S_REGULAR,
    SELF_LIBRARY_ORDINAL,
    Built,
    ChainedImport,
    FatSlice,
    MachO,
    NSym,
    absolute,
    bind_opcodes,
    build_fat,
    defined,
    local,
    stab,
    undefined,
    version,
)
from helpers.memory_source import MemorySource
from helpers.real_wheels import read_all, read_member, real_wheel
from torch_abi_audit.model import (
    BinaryFormat,
    Library,
    Symbol,
    SymbolBinding,
    SymbolType,
    SymbolVisibility,
)
from torch_abi_audit.readers import BinaryReadError, parse_library, read_library
from torch_abi_audit.readers.macho import chained_fixup_imports, parse_macho, read_macho
from torch_abi_audit.readers.macho_fixups import ChainedImport as FixupImport
from torch_abi_audit.readers.strings import find_strings

GLOBAL, WEAK, LOCAL = SymbolBinding.GLOBAL, SymbolBinding.WEAK, SymbolBinding.LOCAL
FUNC, OBJECT, NOTYPE, TLS = SymbolType.FUNC, SymbolType.OBJECT, SymbolType.NOTYPE, SymbolType.TLS
DEFAULT, HIDDEN = SymbolVisibility.DEFAULT, SymbolVisibility.HIDDEN

C10 = "@rpath/libc10.dylib"
TORCH_CPU = "@rpath/libtorch_cpu.dylib"
WEAKLIB = "/usr/lib/libweak.dylib"
REEXPORTED = "@rpath/libreexported.dylib"
UPWARD = "@rpath/libupward.dylib"
LAZY = "@rpath/liblazy.dylib"
SYSTEM = "/usr/lib/libSystem.B.dylib"


def imported(name: str, library: str | None, binding: SymbolBinding = GLOBAL) -> Symbol:
    return Symbol(name, False, binding, NOTYPE, DEFAULT, library=library)


def exported(
    name: str,
    type: SymbolType = FUNC,
    binding: SymbolBinding = GLOBAL,
    visibility: SymbolVisibility = DEFAULT,
) -> Symbol:
    return Symbol(name, True, binding, type, visibility)


def full_image(**changes: object) -> MachO:
    """A dylib with every kind of symbol and load command the reader looks at."""
    image = MachO(
        id_dylib="@rpath/libsample.dylib",
        dylibs=[
            (LC_LOAD_DYLIB, C10),
            (LC_LOAD_WEAK_DYLIB, WEAKLIB),
            (LC_REEXPORT_DYLIB, REEXPORTED),
            (LC_LOAD_UPWARD_DYLIB, UPWARD),
            (LC_LAZY_LOAD_DYLIB, LAZY),
            (LC_LOAD_DYLIB, TORCH_CPU),
        ],
        rpaths=["@loader_path/../lib", "@loader_path/.dylibs"],
        build_version=(PLATFORM_MACOS, version(11, 0)),
        locals=[local("_helper"), local("_private_helper", private=True), stab("_helper")],
        exports=[
            defined("_sample_api"),
            defined("__ZN6sample3fooEv", weak=True),
            defined("_sample_table", 2),
            defined("_sample_tls", 3),
            absolute("_sample_abs"),
            defined("_sample_hidden", private=True),  # N_PEXT: not an export
            NSym("_sample_alias", N_INDR | N_EXT),
        ],
        imports=[
            undefined("__ZN3c1019UndefinedTensorImpl10_singletonE", 1),
            undefined("_optional_feature", 2, weak=True),
            undefined("_reexported_fn", 3),
            undefined("_upward_fn", 4),
            undefined("_lazy_fn", 5),
            undefined("_aoti_torch_get_dim", 6),
            undefined("_PyModule_Create2", DYNAMIC_LOOKUP_ORDINAL),
            undefined("_main_program_hook", EXECUTABLE_ORDINAL),
            undefined("_self_bound", SELF_LIBRARY_ORDINAL),
            undefined("dyld_stub_binder", 1),  # no underscore on disk
        ],
    )
    return replace(image, **changes)  # type: ignore[arg-type]


FULL_IMPORTS = [
    imported("_ZN3c1019UndefinedTensorImpl10_singletonE", C10),
    imported("optional_feature", WEAKLIB, WEAK),
    imported("reexported_fn", REEXPORTED),
    imported("upward_fn", UPWARD),
    imported("lazy_fn", LAZY),
    imported("aoti_torch_get_dim", TORCH_CPU),
    imported("PyModule_Create2", None),
    imported("main_program_hook", None),
    imported("self_bound", None),
    imported("dyld_stub_binder", C10),
]
FULL_EXPORTS = [
    exported("sample_api"),
    exported("_ZN6sample3fooEv", binding=WEAK),
    exported("sample_table", OBJECT),
    exported("sample_tls", TLS),
    exported("sample_abs", OBJECT),
    exported("sample_alias", NOTYPE),
]
FULL_NEEDED = (C10, WEAKLIB, REEXPORTED, UPWARD, LAZY, TORCH_CPU)


def parse(data: bytes | Built, *, local_symbols: bool = False) -> Library:
    raw = data.data if isinstance(data, Built) else data
    return parse_macho(MemorySource(raw), Path("libsample.dylib"), local_symbols=local_symbols)


class StreamSource(MemorySource):
    """A model of a compressed wheel member: forward-only past a head window, served in chunks.

    Like :class:`~torch_abi_audit.sources.wheel_bytes.StreamedMember`, a read consumes whole
    chunks, so the stream may stop past what was asked; a read that starts behind the stream
    (outside the head window) would spill there, and fails the test here.
    """

    def __init__(self, data: bytes, *, head: int, chunk: int) -> None:
        super().__init__(data, sequential=True)
        self.head = head
        self.chunk = chunk
        self.position = 0

    def read(self, offset: int, length: int, what: str) -> bytes:
        end = offset + length
        if end > self.head:
            assert offset >= self.position or end <= self.head, (
                f"read of {what} at {offset:#x} lies behind the stream at {self.position:#x}"
            )
            self.position = max(self.position, -(-end // self.chunk) * self.chunk)
        return super().read(offset, length, what)


# -- thin images ----------------------------------------------------------------------------------


def test_full_dylib_decodes_exactly() -> None:
    lib = parse(full_image().build())
    assert lib.format is BinaryFormat.MACHO
    assert (lib.machine, lib.bits, lib.byte_order) == ("arm64", 64, "little")
    assert list(lib.imports) == FULL_IMPORTS
    assert list(lib.exports) == FULL_EXPORTS
    assert lib.needed == FULL_NEEDED
    assert lib.soname == "@rpath/libsample.dylib"
    assert lib.rpath == ("@loader_path/../lib", "@loader_path/.dylibs")
    assert lib.runpath == ()
    assert lib.min_os == "11.0"
    assert lib.slices == ()
    assert lib.local_symbols is None
    assert lib.symbols == tuple(FULL_IMPORTS + FULL_EXPORTS)


def test_local_symbols_on_request() -> None:
    lib = parse(full_image().build(), local_symbols=True)
    assert lib.local_symbols == (
        Symbol("helper", True, LOCAL, FUNC, DEFAULT),
        Symbol("private_helper", True, LOCAL, FUNC, HIDDEN),
        Symbol("sample_hidden", True, GLOBAL, FUNC, HIDDEN),
    )
    # The imports and exports do not change.
    assert list(lib.imports) == FULL_IMPORTS
    assert list(lib.exports) == FULL_EXPORTS


def test_no_symbol_table_gives_empty_tables() -> None:
    lib = parse(full_image(symtab=False).build(), local_symbols=True)
    assert list(lib.imports) == []
    assert list(lib.exports) == []
    assert lib.local_symbols is None
    assert lib.needed == FULL_NEEDED


@pytest.mark.parametrize(
    ("bits", "big_endian", "cputype", "machine"),
    [
        (64, False, CPU_TYPE_ARM64, "arm64"),
        (64, True, CPU_TYPE_POWERPC64, "ppc64"),
        (32, False, CPU_TYPE_X86, "i386"),
        (32, True, CPU_TYPE_POWERPC, "ppc"),
    ],
    ids=["64-little", "64-big", "32-little", "32-big"],
)
def test_header_flavours(bits: int, big_endian: bool, cputype: int, machine: str) -> None:
    image = full_image(bits=bits, big_endian=big_endian, cputype=cputype)
    lib = parse(image.build(), local_symbols=True)
    assert (lib.machine, lib.bits) == (machine, bits)
    assert lib.byte_order == ("big" if big_endian else "little")
    assert list(lib.imports) == FULL_IMPORTS
    assert list(lib.exports) == FULL_EXPORTS
    assert lib.needed == FULL_NEEDED
    assert lib.soname == "@rpath/libsample.dylib"
    assert lib.min_os == "11.0"
    assert lib.local_symbols is not None and len(lib.local_symbols) == 3


@pytest.mark.parametrize(
    ("cputype", "machine"),
    [
        (CPU_TYPE_X86_64, "x86_64"),
        (CPU_TYPE_ARM64, "arm64"),
        (CPU_TYPE_X86, "i386"),
        (CPU_TYPE_ARM, "arm"),
        (CPU_TYPE_POWERPC, "ppc"),
        (CPU_TYPE_POWERPC64, "ppc64"),
        (CPU_TYPE_ARM64_32, "arm64_32"),
        (99, "cpu-99"),
    ],
)
def test_machine_names(cputype: int, machine: str) -> None:
    assert parse(MachO(cputype=cputype).build()).machine == machine


def test_bundle_is_a_library() -> None:
    lib = parse(full_image(filetype=MH_BUNDLE, id_dylib=None).build())
    assert lib.soname is None
    assert list(lib.imports) == FULL_IMPORTS


@pytest.mark.parametrize(
    ("filetype", "message"),
    [
        (MH_OBJECT, "Mach-O object file, not a shared library"),
        (MH_CORE, "Mach-O core file, not a shared library"),
        (MH_DYLINKER, "Mach-O dynamic linker, not a shared library"),
        (MH_DSYM, r"Mach-O debug symbols \(dSYM\) file, not a shared library"),
        (0x77, "Mach-O file type 119, not a shared library"),
    ],
)
def test_other_file_types_are_refused(filetype: int, message: str, tmp_path: Path) -> None:
    path = full_image(filetype=filetype).build().write(tmp_path / "prog")
    with pytest.raises(BinaryReadError, match=message):
        read_library(path)


def test_flat_namespace_binds_no_library() -> None:
    lib = parse(full_image(flags=MH_DYLDLINK).build())
    assert {s.library for s in lib.imports} == {None}
    assert [s.name for s in lib.imports] == [s.name for s in FULL_IMPORTS]


def test_without_dysymtab_the_types_decide() -> None:
    lib = parse(full_image(dysymtab=False).build(), local_symbols=True)
    assert list(lib.imports) == FULL_IMPORTS
    assert list(lib.exports) == FULL_EXPORTS
    assert lib.local_symbols is not None
    assert [s.name for s in lib.local_symbols] == ["helper", "private_helper", "sample_hidden"]


@pytest.mark.parametrize("sequential", [False, True], ids=["random-access", "sequential"])
def test_long_names(sequential: bool) -> None:
    # The string table is read only as far as the names need, with a margin; a longer name
    # makes the reader fetch the whole table.
    image = MachO(
        dylibs=[(LC_LOAD_DYLIB, SYSTEM)],
        locals=[local("_" + "l" * 200_000)],
        exports=[defined("_short"), defined("_" + "x" * 70_000)],
        imports=[undefined("_" + "y" * 100_000)],
    )
    source = MemorySource(image.build().data, sequential=sequential)
    lib = parse_macho(source, Path("liblong.dylib"))
    assert [s.name for s in lib.exports] == ["short", "x" * 70_000]
    assert [s.name for s in lib.imports] == ["y" * 100_000]


def test_dysymtab_groups_are_honoured() -> None:
    # An undefined entry filed among the external definitions is not an import: LC_DYSYMTAB
    # says where each group is, and the reader looks only there.
    image = MachO(
        dylibs=[(LC_LOAD_DYLIB, SYSTEM)],
        exports=[defined("_f"), undefined("_stray")],
        imports=[undefined("_g")],
    )
    lib = parse(image.build())
    assert [s.name for s in lib.imports] == ["g"]
    assert [s.name for s in lib.exports] == ["f"]


def test_names_lose_exactly_one_underscore() -> None:
    image = MachO(
        dylibs=[(LC_LOAD_DYLIB, SYSTEM)],
        exports=[defined("___triple"), defined("_"), defined("plain")],
        imports=[undefined("__ZN2at6TensorC1Ev"), undefined("noprefix")],
    )
    lib = parse(image.build())
    assert [s.name for s in lib.exports] == ["__triple", "", "plain"]
    assert [s.name for s in lib.imports] == ["_ZN2at6TensorC1Ev", "noprefix"]


def test_non_ascii_names() -> None:
    image = MachO(
        dylibs=[(LC_LOAD_DYLIB, SYSTEM)],
        exports=[defined("_caf\u00e9")],
        imports=[undefined("_\u00fcber")],
    )
    lib = parse(image.build())
    assert lib.exports.names() == {"caf\u00e9"}
    assert [s.name for s in lib.imports] == ["\u00fcber"]


@pytest.mark.parametrize(
    ("build_version", "version_min", "expected"),
    [
        ((PLATFORM_MACOS, version(11, 0)), None, "11.0"),
        ((PLATFORM_MACOS, version(10, 15, 4)), None, "10.15.4"),
        ((PLATFORM_MACOS, version(14, 2)), None, "14.2"),
        (None, version(10, 9), "10.9"),
        (None, version(10, 13, 1), "10.13.1"),
        ((PLATFORM_MACOS, version(12, 0)), version(10, 9), "12.0"),
        ((PLATFORM_IOS, version(15, 0)), None, None),
        (None, None, None),
    ],
)
def test_min_os(
    build_version: tuple[int, int] | None, version_min: int | None, expected: str | None
) -> None:
    image = MachO(build_version=build_version, version_min=version_min)
    assert parse(image.build()).min_os == expected


def test_dyld_info_ranges_are_checked() -> None:
    info = bytes(40)  # every range empty: nothing to check
    assert parse(MachO(extra_commands=[(LC_DYLD_INFO_ONLY, info)]).build()).machine == "arm64"
    bad = (10**6).to_bytes(4, "little") + (16).to_bytes(4, "little") + bytes(32)
    with pytest.raises(BinaryReadError, match="LC_DYLD_INFO rebase information lies outside"):
        parse(MachO(extra_commands=[(LC_DYLD_INFO_ONLY, bad)]).build())


def test_unknown_load_commands_are_skipped() -> None:
    image = full_image(extra_commands=[(LC_UUID, bytes(16)), (0x7777, bytes(4))])
    assert list(parse(image.build()).imports) == FULL_IMPORTS


def test_ordinal_beyond_the_loaded_libraries_is_an_error() -> None:
    image = MachO(dylibs=[(LC_LOAD_DYLIB, SYSTEM)], imports=[undefined("_f", 2)])
    with pytest.raises(BinaryReadError, match="library ordinal 2, but the file loads only 1"):
        parse(image.build())


# -- read-only data -------------------------------------------------------------------------------

RODATA_SECTIONS = (
    *DEFAULT_SECTIONS,  # __text, __data, __thread_vars: indices 0-2
    ("__cstring", "__TEXT", S_CSTRING_LITERALS),  # 3
    ("__const", "__DATA_CONST", S_REGULAR),  # 4: pointers, not literals
    ("__const", "__TEXT", S_REGULAR),  # 5
    ("__oslogstring", "__TEXT", S_CSTRING_LITERALS),  # 6: no data, so zero-fill (offset 0)
)
CSTRINGS = b"torch_from_the_future\0not a shim\0".ljust(48, b"\0")
TEXT_CONST = b"\x01\x02aoti_torch_get_dim\0".ljust(32, b"\0")
SHIM = re.compile(rb"(?<![A-Za-z0-9_])((?:aoti_torch|torch)_[A-Za-z0-9_]+)\x00")


def rodata_image(*, bits: int = 64, big_endian: bool = False) -> MachO:
    return MachO(
        bits=bits,
        big_endian=big_endian,
        sections=RODATA_SECTIONS,
        section_data={3: CSTRINGS, 4: b"torch_not_rodata\0".ljust(16, b"\0"), 5: TEXT_CONST},
        dylibs=[(LC_LOAD_DYLIB, "/usr/lib/libSystem.B.dylib")],
        imports=[undefined("_dlsym"), undefined("_aoti_torch_imported_only")],
    )


@pytest.mark.parametrize(("bits", "big_endian"), [(64, False), (32, False), (64, True), (32, True)])
def test_rodata_is_cstring_sections_and_text_const(bits: int, big_endian: bool) -> None:
    built = rodata_image(bits=bits, big_endian=big_endian).build()
    lib = parse(built)
    assert lib.rodata == (
        (built.offsets["section3"], len(CSTRINGS)),
        (built.offsets["section5"], len(TEXT_CONST)),
    )
    found = find_strings(MemorySource(built.data), lib.rodata, SHIM)
    # The import's name is in the __LINKEDIT string table, not in read-only data.
    assert "aoti_torch_imported_only" in lib.imports.names()
    assert found == {"torch_from_the_future", "aoti_torch_get_dim"}


def test_rodata_of_a_universal_file_is_shifted_per_slice() -> None:
    arm = rodata_image().build()
    x86 = MachO(
        cputype=CPU_TYPE_X86_64,
        sections=RODATA_SECTIONS,
        section_data={3: b"torch_x86_only\0".ljust(16, b"\0")},
    ).build()
    fat = build_fat([FatSlice(CPU_TYPE_ARM64, arm.data), FatSlice(CPU_TYPE_X86_64, x86.data)])
    lib = parse(fat)
    arm_at, x86_at = fat.offsets["slice0"], fat.offsets["slice1"]
    assert lib.slices[0].rodata == (
        (arm_at + arm.offsets["section3"], len(CSTRINGS)),
        (arm_at + arm.offsets["section5"], len(TEXT_CONST)),
    )
    assert lib.slices[1].rodata == ((x86_at + x86.offsets["section3"], 16),)
    assert lib.rodata == lib.slices[0].rodata + lib.slices[1].rodata
    found = find_strings(MemorySource(fat.data), lib.rodata, SHIM)
    assert found == {"torch_from_the_future", "aoti_torch_get_dim", "torch_x86_only"}


def test_rodata_section_past_the_end_of_the_image_is_left_out() -> None:
    built = rodata_image().build()
    size_at = built.offsets["segment"] + 72 + 3 * 80 + 40  # section_64 3: size
    lib = parse(patched(built.data, (size_at, "<Q", len(built.data))))
    assert lib.rodata == ((built.offsets["section5"], len(TEXT_CONST)),)


# -- lazy tables ----------------------------------------------------------------------------------


def test_lazy_tables_agree_with_their_symbols() -> None:
    lib = parse(full_image().build())
    assert lib.exports.names() == {s.name for s in FULL_EXPORTS}
    assert lib.imports.names() == {s.name for s in FULL_IMPORTS}
    assert lib.exports.with_prefix("sample_t") == (
        exported("sample_table", OBJECT),
        exported("sample_tls", TLS),
    )
    assert lib.imports.with_prefix("_ZN3c10", "aoti_") == (FULL_IMPORTS[0], FULL_IMPORTS[5])
    assert lib.imports.with_prefix("nothing") == ()
    assert len(lib.exports) == len(FULL_EXPORTS)
    assert lib.exports[0] == FULL_EXPORTS[0]
    assert lib.exports == FULL_EXPORTS
    # After the full decode the same answers come from the decoded tuples.
    assert lib.exports.with_prefix("sample_t") == (FULL_EXPORTS[2], FULL_EXPORTS[3])
    assert lib.exports.names() == {s.name for s in FULL_EXPORTS}


def test_pickle_round_trip() -> None:
    lib = parse(full_image().build())
    restored = pickle.loads(pickle.dumps(lib))
    assert restored == lib
    assert list(restored.imports) == FULL_IMPORTS


def test_large_table_is_fast() -> None:
    exports = [defined(f"__ZN2at6native{k}kernelEv", 1 + k % 2) for k in range(75_000)]
    imports = [undefined(f"_import_{k}", 1) for k in range(3_000)]
    image = MachO(dylibs=[(LC_LOAD_DYLIB, C10)], exports=exports, imports=imports)
    data = image.build().data
    start = time.perf_counter()
    lib = parse(data)
    names = lib.exports.names()
    picked = lib.exports.with_prefix("_ZN2at6native1")
    imported_names = lib.imports.names()
    elapsed = time.perf_counter() - start
    assert len(names) == 75_000
    assert len(imported_names) == 3_000
    assert len(picked) == 11_111
    assert elapsed < 1.0
    start = time.perf_counter()
    symbols = lib.exports.symbols()
    assert time.perf_counter() - start < 1.0
    assert symbols[1] == exported("_ZN2at6native1kernelEv", OBJECT)


# -- chained fixups -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "imports_format",
    [DYLD_CHAINED_IMPORT, DYLD_CHAINED_IMPORT_ADDEND, DYLD_CHAINED_IMPORT_ADDEND64],
)
def test_chained_fixups_table(imports_format: int) -> None:
    image = MachO(
        dylibs=[(LC_LOAD_DYLIB, C10), (LC_LOAD_WEAK_DYLIB, WEAKLIB), (LC_LOAD_DYLIB, SYSTEM)],
        exports=[defined("_coalesced", weak=True), defined("_api")],
        imports=[
            undefined("_c10_fn", 1),
            undefined("_libc_fn", SELF_LIBRARY_ORDINAL),  # no ordinal in the nlist entry
            undefined("_PyList_New", DYNAMIC_LOOKUP_ORDINAL),
        ],
        chained=[
            ChainedImport(1, "_c10_fn"),
            ChainedImport(3, "_libc_fn", addend=8),
            ChainedImport(3, "_libc_fn", addend=16),  # the same symbol again
            ChainedImport(-2, "_PyList_New"),
            ChainedImport(2, "_only_in_fixups", weak=True),
            ChainedImport(-1, "_from_main"),
            ChainedImport(-3, "_coalesced"),  # a weak definition of the image itself
        ],
        chained_format=imports_format,
    )
    lib = parse(image.build())
    assert list(lib.imports) == [
        imported("c10_fn", C10),
        imported("libc_fn", SYSTEM),
        imported("PyList_New", None),
        imported("only_in_fixups", WEAKLIB, WEAK),
        imported("from_main", None),
    ]
    assert lib.imports.names() == {"c10_fn", "libc_fn", "PyList_New", "only_in_fixups", "from_main"}
    assert lib.imports.with_prefix("only") == (imported("only_in_fixups", WEAKLIB, WEAK),)
    table = chained_fixup_imports(MemorySource(image.build().data))
    entries = table["arm64"]
    assert entries is not None
    assert [(e.lib_ordinal, e.weak_import, e.name) for e in entries] == [
        (1, False, "_c10_fn"),
        (3, False, "_libc_fn"),
        (3, False, "_libc_fn"),
        (-2, False, "_PyList_New"),
        (2, True, "_only_in_fixups"),
        (-1, False, "_from_main"),
        (-3, False, "_coalesced"),
    ]


def test_chained_fixups_alone_give_the_imports() -> None:
    image = MachO(
        dylibs=[(LC_LOAD_DYLIB, C10)],
        exports=[defined("_api")],
        chained=[ChainedImport(1, "_c10_fn"), ChainedImport(-2, "_Py_None")],
    )
    lib = parse(image.build())
    assert list(lib.imports) == [imported("c10_fn", C10), imported("Py_None", None)]
    assert chained_fixup_imports(MemorySource(MachO().build().data)) == {"arm64": None}


# -- weak imports: what the loader lets stay unbound ----------------------------------------------


def test_weak_imports_and_weak_dylibs() -> None:
    """N_WEAK_REF, the chained-fixups weak bit and LC_LOAD_WEAK_DYLIB each make an import
    optional at load time; a strong bind of the same name (another slice) does not."""
    image = MachO(
        dylibs=[(LC_LOAD_DYLIB, C10), (LC_LOAD_WEAK_DYLIB, WEAKLIB)],
        imports=[
            undefined("__ZTHN3c104impl26raw_local_dispatch_key_setE", 1, weak=True),
            undefined("_c10_strong", 1),
            undefined("_c10_weak_in_fixups", 1),  # nlist says strong, the fixups say weak
            undefined("_from_weak_dylib", 2),
        ],
        chained=[
            ChainedImport(1, "__ZTHN3c104impl26raw_local_dispatch_key_setE", weak=True),
            ChainedImport(1, "_c10_strong"),
            ChainedImport(1, "_c10_weak_in_fixups", weak=True),
            ChainedImport(2, "_from_weak_dylib"),
        ],
    )
    lib = parse(image.build())
    assert lib.optional_needed == (WEAKLIB,)
    assert lib.imports.weak_names() == {
        "_ZTHN3c104impl26raw_local_dispatch_key_setE",
        "c10_weak_in_fixups",
    }
    assert lib.optional_imports() == {
        "_ZTHN3c104impl26raw_local_dispatch_key_setE",
        "c10_weak_in_fixups",
        "from_weak_dylib",
    }
    bindings = {s.name: s.binding for s in lib.imports}
    assert bindings["c10_weak_in_fixups"] is WEAK and bindings["c10_strong"] is GLOBAL
    assert lib.imports.with_prefix("c10_weak") == (imported("c10_weak_in_fixups", C10, WEAK),)
    # A universal file: strong in the x86_64 slice, so not optional for the file as a whole.
    strong = replace(
        image,
        cputype=CPU_TYPE_X86_64,
        chained=None,
        imports=[undefined("_c10_weak_in_fixups", 1), undefined("_from_weak_dylib", 2)],
        dylibs=[(LC_LOAD_DYLIB, C10), (LC_LOAD_DYLIB, WEAKLIB)],
    )
    fat = build_fat(
        [
            FatSlice(CPU_TYPE_ARM64, image.build().data),
            FatSlice(CPU_TYPE_X86_64, strong.build().data),
        ]
    )
    universal = parse_library(MemorySource(fat.data), Path("fat.so"))
    assert universal.optional_needed == ()
    assert universal.optional_imports() == {"_ZTHN3c104impl26raw_local_dispatch_key_setE"}


@pytest.mark.parametrize("where", ["bind", "lazy_bind"])
def test_weak_imports_from_bind_opcodes(where: str) -> None:
    """Before chained fixups, ld64 flags weak imports in the (lazy) bind opcode streams."""
    binds = [("_c10_fn", 1, False), ("_maybe_there", 1, True), ("_twice", 1, True)]
    lazy = where == "lazy_bind"
    stream = bind_opcodes(binds, lazy=lazy)
    other = bind_opcodes([("_twice", 1, False)])  # a strong bind of it elsewhere
    image = MachO(
        dylibs=[(LC_LOAD_DYLIB, C10)],
        imports=[undefined("_c10_fn"), undefined("_maybe_there"), undefined("_twice")],
        bind=other if lazy else stream,
        lazy_bind=stream if lazy else None,
    )
    lib = parse(image.build())
    expected = {"maybe_there"} if where == "lazy_bind" else {"maybe_there", "twice"}
    assert lib.imports.weak_names() == expected
    assert lib.optional_imports() == expected


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (bytes([0x40]) + b"_no_terminator", "not NUL-terminated"),
        (bytes([0x70, 0x80, 0x80]), "LEB128 number runs past the end"),
        (bytes([0xE0]), "unknown bind opcode 0xe0"),
    ],
)
def test_corrupt_bind_opcodes_are_errors(stream: bytes, message: str) -> None:
    with pytest.raises(BinaryReadError, match=message):
        parse(MachO(dylibs=[(LC_LOAD_DYLIB, C10)], bind=stream).build())


def test_executable_is_read_and_marked() -> None:
    lib = parse(full_image(filetype=MH_EXECUTE, id_dylib=None).build())
    assert lib.executable
    assert list(lib.imports) == FULL_IMPORTS
    assert not parse(full_image().build()).executable


def test_chained_ordinal_beyond_the_loaded_libraries_is_an_error() -> None:
    image = MachO(dylibs=[(LC_LOAD_DYLIB, C10)], chained=[ChainedImport(4, "_f")])
    with pytest.raises(
        BinaryReadError, match="chained fixups import is bound to library ordinal 4"
    ):
        parse(image.build())


def chained_header(built: Built) -> int:
    return built.offsets["chained"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (0, 1, "unknown chained fixups version 1"),
        (20, 9, "unknown chained fixups import format 9"),
        (24, 1, "unsupported chained fixups symbol format 1"),
        (16, 0x7FFFFFFF, "chained fixups declare 2147483647 imports"),
        (8, 0x7FFFFFF0, "chained fixups imports table lies outside its data"),
        (12, 0x7FFFFFF0, "chained fixups imports table lies outside its data"),
    ],
    ids=["version", "imports-format", "symbols-format", "count", "imports-offset", "symbols"],
)
def test_corrupt_chained_fixups_header(field: int, value: int, message: str) -> None:
    built = MachO(dylibs=[(LC_LOAD_DYLIB, C10)], chained=[ChainedImport(1, "_f")]).build()
    data = patched(built.data, (chained_header(built) + field, "<I", value))
    with deadline(10), pytest.raises(BinaryReadError, match=message):
        parse(data)


def test_chained_import_name_outside_its_strings() -> None:
    built = MachO(dylibs=[(LC_LOAD_DYLIB, C10)], chained=[ChainedImport(1, "_f")]).build()
    imports_at = chained_header(built) + 40  # see MachO._chained_blob
    data = patched(built.data, (imports_at, "<I", 1 | 0x7FFFFF << 9))
    with pytest.raises(BinaryReadError, match="import name lies outside its string table"):
        parse(data)


# -- universal files ------------------------------------------------------------------------------


def fat_pair(*, fat64: bool = False, align: int = 12) -> Built:
    arm = full_image(build_version=(PLATFORM_MACOS, version(11, 0)))
    intel = full_image(
        cputype=CPU_TYPE_X86_64,
        build_version=None,
        version_min=version(10, 9),
        dylibs=[*full_image().dylibs, (LC_LOAD_DYLIB, "/usr/lib/libiconv.2.dylib")],
        rpaths=["@loader_path/../lib", "@loader_path/intel"],
        exports=[*full_image().exports, defined("_intel_only")],
        imports=[*full_image().imports, undefined("_iconv", 7)],
    )
    return build_fat(
        [FatSlice(CPU_TYPE_X86_64, intel.build().data), FatSlice(CPU_TYPE_ARM64, arm.build().data)],
        fat64=fat64,
        align=align,
    )


@pytest.mark.parametrize("fat64", [False, True], ids=["fat", "fat64"])
def test_universal_file(fat64: bool, tmp_path: Path) -> None:
    path = fat_pair(fat64=fat64).write(tmp_path / "_ext.abi3.so")
    lib = read_library(path, local_symbols=True)
    assert lib.format is BinaryFormat.MACHO
    assert (lib.machine, lib.bits, lib.byte_order) == ("arm64+x86_64", 64, "little")
    intel, arm = lib.slices
    assert (intel.machine, arm.machine) == ("x86_64", "arm64")
    assert (intel.min_os, arm.min_os, lib.min_os) == ("10.9", "11.0", "11.0")
    assert list(arm.imports) == FULL_IMPORTS
    assert list(intel.imports) == [*FULL_IMPORTS, imported("iconv", "/usr/lib/libiconv.2.dylib")]
    assert list(arm.exports) == FULL_EXPORTS
    assert list(intel.exports) == [*FULL_EXPORTS, exported("intel_only")]
    # The container: unions in slice (file) order, each symbol once.
    assert list(lib.imports) == list(intel.imports)
    assert list(lib.exports) == list(intel.exports)
    assert lib.imports.names() == intel.imports.names()
    assert lib.exports.with_prefix("intel") == (exported("intel_only"),)
    assert lib.needed == (*FULL_NEEDED, "/usr/lib/libiconv.2.dylib")
    assert lib.rpath == ("@loader_path/../lib", "@loader_path/intel", "@loader_path/.dylibs")
    assert lib.soname == "@rpath/libsample.dylib"
    assert lib.local_symbols is not None and len(lib.local_symbols) == 3
    assert all(s.path == path for s in (lib, *lib.slices))


def test_universal_union_keeps_differing_symbols() -> None:
    one = MachO(dylibs=[(LC_LOAD_DYLIB, C10)], imports=[undefined("_f", 1)])
    other = MachO(
        cputype=CPU_TYPE_X86_64,
        dylibs=[(LC_LOAD_DYLIB, SYSTEM)],
        imports=[undefined("_f", 1)],
        build_version=(PLATFORM_MACOS, version(10, 15)),
    )
    built = build_fat(
        [FatSlice(CPU_TYPE_ARM64, one.build().data), FatSlice(CPU_TYPE_X86_64, other.build().data)]
    )
    lib = parse(built)
    assert list(lib.imports) == [imported("f", C10), imported("f", SYSTEM)]
    assert lib.imports.names() == {"f"}
    assert lib.min_os == "10.15"


def test_universal_reads_go_forward() -> None:
    # Slices far apart, the second beyond the head window: every read must start at or after
    # the point the stream has reached, as a compressed wheel member requires.
    built = fat_pair(align=16)
    source = StreamSource(built.data, head=built.offsets["slice1"] - 1, chunk=4096)
    lib = parse_library(source, Path("_ext.so"))
    read_all(lib)
    offsets = [offset for offset, _length in source.reads]
    assert offsets == sorted(offsets)
    assert list(lib.slices[1].imports) == FULL_IMPORTS


def test_thin_reads_go_forward() -> None:
    built = full_image(chained=[ChainedImport(1, "_c10_fn")]).build()
    source = StreamSource(built.data, head=built.offsets["chained"], chunk=64)
    lib = parse_library(source, Path("libsample.dylib"))
    read_all(lib)
    offsets = [offset for offset, _length in source.reads]
    assert offsets == sorted(offsets)


# -- corrupt input --------------------------------------------------------------------------------


def expect_error(data: bytes, match: str | None = None) -> BinaryReadError:
    with deadline(10), pytest.raises(BinaryReadError, match=match) as info:
        read_all(parse(data, local_symbols=True))
    return info.value


def rich_image() -> MachO:
    return full_image(chained=[ChainedImport(1, "__ZN3c1019UndefinedTensorImpl10_singletonE")])


def test_every_truncation_fails_cleanly() -> None:
    data = rich_image().build().data
    with deadline(60):
        for cut in range(len(data)):
            with pytest.raises(BinaryReadError):
                parse(data[:cut], local_symbols=True)


def test_every_truncation_of_a_universal_file_fails_cleanly() -> None:
    data = fat_pair().data
    with deadline(60):
        for cut in range(0, len(data), 7):
            with pytest.raises(BinaryReadError):
                parse(data[:cut], local_symbols=True)


@pytest.mark.parametrize(
    ("key", "fmt", "value", "message"),
    [
        ("first_cmdsize", "<I", 0, "invalid cmdsize 0"),
        ("first_cmdsize", "<I", 4, "invalid cmdsize 4"),
        ("first_cmdsize", "<I", 0xFFFFFFF0, "extends past sizeofcmds"),
        ("first_cmdsize", "<I", 314, "invalid cmdsize 314"),
        ("ncmds", "<I", 0xFFFFFFFF, "4294967295 load commands cannot fit"),
        ("ncmds", "<I", 40, "lies past the end of sizeofcmds"),
        ("sizeofcmds", "<I", 0xFFFFFFFF, "load commands .* extend past the end"),
        ("sizeofcmds", "<I", 16, "14 load commands cannot fit in sizeofcmds"),
        ("sizeofcmds", "<I", 320, "extends past sizeofcmds"),
        ("symoff", "<I", 0x7FFFFFFF, "symbol table .* extends past the end"),
        ("nsyms", "<I", 0xFFFFFFFF, "symbol table .* extends past the end"),
        ("stroff", "<I", 0x7FFFFFFF, "string table lies outside the file"),
        ("strsize", "<I", 0xFFFFFFFF, "string table lies outside the file"),
        ("strsize", "<I", 4, "a symbol name points outside the string table"),
        ("chained_cmd", "<I", 0x7FFFFFFF, None),  # dataoff (patched below at +8)
    ],
)
def test_corrupt_header_fields(key: str, fmt: str, value: int, message: str | None) -> None:
    built = rich_image().build()
    at = built.offsets[key] + (8 if key == "chained_cmd" else 0)
    error = expect_error(patched(built.data, (at, fmt, value)), message)
    if key == "chained_cmd":
        assert "chained fixups lies outside the file" in str(error)


def test_name_offset_outside_the_string_table() -> None:
    built = rich_image().build()
    data = patched(built.data, (built.offsets["symbols"] + 16 * 3, "<I", 0x00FFFFFF))
    expect_error(data, "a symbol name points outside the string table")


def test_dysymtab_groups_beyond_the_table() -> None:
    built = rich_image().build()
    iundefsym = built.offsets["dysymtab_cmd"] + 8 + 16
    expect_error(patched(built.data, (iundefsym, "<I", 1000)), "LC_DYSYMTAB undefined symbols")


def test_dylib_name_offset_outside_its_command() -> None:
    built = rich_image().build()
    expect_error(
        patched(built.data, (built.offsets["dylib0"] + 8, "<I", 4096)),
        "dylib load string offset 4096 lies outside its command",
    )
    expect_error(
        patched(built.data, (built.offsets["dylib0"] + 8, "<I", 4)),
        "string offset 4 lies outside",
    )


def test_string_without_terminator() -> None:
    built = MachO(rpaths=["@loader_path"]).build()
    at = built.offsets["rpath0"]
    size = int.from_bytes(built.data[at + 4 : at + 8], "little")
    data = bytearray(built.data)
    data[at + 12 : at + size] = b"x" * (size - 12)
    expect_error(bytes(data), "LC_RPATH string is not NUL-terminated")


def test_too_many_sections() -> None:
    built = rich_image().build()
    nsects = built.offsets["segment"] + 8 + 16 + 32 + 8
    expect_error(patched(built.data, (nsects, "<I", 0xFFFFFFFF)), "declares 4294967295 sections")


def test_too_small_commands() -> None:
    small = MachO(symtab=False, extra_commands=[(0x2, bytes(4))]).build()  # 16 bytes, not 24
    expect_error(small.data, r"LC_SYMTAB command is too small \(16 bytes\)")
    twice = MachO(extra_commands=[(0x2, bytes(16))]).build()
    expect_error(twice.data, "more than one LC_SYMTAB")


def test_bad_magic_inside_parse_macho() -> None:
    expect_error(b"\x00\x01\x02\x03" + bytes(60), "not a Mach-O image")
    expect_error(b"\xcf\xfa\xed\xfe", "too short")


def fat_field(built: Built, key: str, value: int, fmt: str = ">I") -> bytes:
    return patched(built.data, (built.offsets[key], fmt, value))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda b: fat_field(b, "nfat_arch", 0), "universal binary with no architectures"),
        (lambda b: fat_field(b, "nfat_arch", 0xFFFFFFFF), "declares 4294967295 architectures"),
        (lambda b: fat_field(b, "nfat_arch", 33), "declares 33 architectures"),
        (lambda b: fat_field(b, "arch1_offset", 0x7FFFFFFF), "extends past the end"),
        (lambda b: fat_field(b, "arch1_size", 0x7FFFFFFF), "extends past the end"),
        (lambda b: fat_field(b, "arch1_size", 0), "is empty"),
        (lambda b: fat_field(b, "arch0_offset", 8), "overlaps the fat header"),
        (
            lambda b: fat_field(b, "arch0_size", b.offsets["slice1"] - b.offsets["slice0"] + 16),
            "slices x86_64 and arm64 overlap",
        ),
        (lambda b: fat_field(b, "arch1_offset", b.offsets["slice0"]), "overlap"),
        (lambda b: fat_field(b, "arch0", CPU_TYPE_ARM), "fat header says arm but the slice"),
        (
            lambda b: patched(b.data, (b.offsets["slice1"], ">I", 0x12345678)),
            "arm64 slice: the arm64 slice is not a Mach-O image",
        ),
        (
            lambda b: patched(b.data, (b.offsets["slice1"] + 12, "<I", MH_OBJECT)),
            "arm64 slice: Mach-O object file, not a shared library",
        ),
    ],
    ids=[
        "no-archs",
        "huge-count",
        "too-many",
        "offset-beyond-eof",
        "size-beyond-eof",
        "empty",
        "over-header",
        "overlap-size",
        "overlap-offset",
        "cputype-mismatch",
        "not-macho",
        "object-slice",
    ],
)
def test_corrupt_universal_files(edit: Callable[[Built], bytes], message: str) -> None:
    expect_error(edit(fat_pair()), message)


def test_fat64_slice_beyond_eof() -> None:
    built = fat_pair(fat64=True)
    expect_error(fat_field(built, "arch1_offset", 1 << 40, ">Q"), "extends past the end")


@pytest.mark.parametrize("seed", range(40))
def test_random_corruption_never_crashes(seed: int) -> None:
    rng = random.Random(seed)
    built = rich_image().build() if seed % 2 else fat_pair()
    data = bytearray(built.data)
    # Mostly the header and load commands (where counts and offsets live), some anywhere.
    for _ in range(rng.randint(1, 8)):
        limit = 600 if rng.random() < 0.8 else len(data)
        data[rng.randrange(min(limit, len(data)))] = rng.randrange(256)
    with deadline(10), contextlib.suppress(BinaryReadError):
        read_all(parse(bytes(data), local_symbols=True))


def test_dispatch_through_read_library(tmp_path: Path) -> None:
    path = full_image().build().write(tmp_path / "libsample.dylib")
    lib = read_library(path)
    assert lib.path == path
    assert list(lib.imports) == FULL_IMPORTS
    assert read_macho(path) == lib
    java = write(tmp_path, b"\xca\xfe\xba\xbe\x00\x00\x00\x34" + bytes(64), "Main.class")
    with pytest.raises(BinaryReadError, match="no ELF, Mach-O or PE magic"):
        read_library(java)


def test_member_of_a_wheel(tmp_path: Path) -> None:
    from helpers.wheel_builder import write_wheel

    member = "fake/_ext.abi3.so"
    tags = ["cp311-abi3-macosx_10_9_universal2"]
    wheel = write_wheel(tmp_path, "fake", "1.0", tags, {member: fat_pair().data})
    lib = read_member(wheel, member)
    assert lib.machine == "arm64+x86_64"
    assert list(lib.slices[1].imports) == FULL_IMPORTS


# -- real wheels (PyPI) ---------------------------------------------------------------------------

PARITY = Path(__file__).resolve().parent.parent / "fixtures" / "macho_parity.json"


def member_chained_imports(wheel: Path, member: str) -> dict[str, tuple[FixupImport, ...] | None]:
    from torch_abi_audit.sources.wheels import WheelArchive

    with WheelArchive(wheel) as archive:
        source = archive.open_member(member)
        try:
            return chained_fixup_imports(source)
        finally:
            source.close()


def slice_for(lib: Library, arch: str) -> Library:
    found = [s for s in (lib.slices or (lib,)) if s.machine == arch]
    assert len(found) == 1, f"no single {arch} slice in {lib.machine}"
    return found[0]


def parity_entries() -> Iterator[dict[str, object]]:
    yield from json.loads(PARITY.read_text())["entries"]


@pytest.mark.network
def test_cryptography_universal2() -> None:
    wheel = real_wheel("cryptography-48.0.1-cp311-abi3-macosx_10_9_universal2.whl")
    lib = read_member(wheel, "cryptography/hazmat/bindings/_rust.abi3.so")
    assert lib.machine == "arm64+x86_64"
    assert sorted(s.machine for s in lib.slices) == ["arm64", "x86_64"]
    assert lib.needed == ("/usr/lib/libiconv.2.dylib", "/usr/lib/libSystem.B.dylib")
    assert lib.soname == "@rpath/cryptography.hazmat.bindings._rust.abi3.so"
    for part in lib.slices:
        # Linked with -undefined dynamic_lookup: CPython is found at run time, flat.
        python = part.imports.with_prefix("PyModule_", "PyModuleDef_")
        assert {s.name for s in python} >= {"PyModule_ExecDef", "PyModuleDef_Init"}
        assert {s.library for s in part.imports.with_prefix("Py", "_Py")} == {None}
        assert {s.library for s in part.imports.with_prefix("malloc")} == {
            "/usr/lib/libSystem.B.dylib"
        }
        assert part.exports.with_prefix("PyInit__rust") == (exported("PyInit__rust"),)
    assert {s.min_os for s in lib.slices} == {"10.13", "11.0"}
    assert lib.min_os == "11.0"
    assert lib.imports.names() == set().union(*(s.imports.names() for s in lib.slices))


@pytest.mark.network
def test_torchaudio_2_11_binds_to_libtorch_cpu() -> None:
    wheel = real_wheel("torchaudio-2.11.0-cp311-cp311-macosx_11_0_arm64.whl")
    for member in ("torchaudio/lib/libtorchaudio.abi3.so", "torchaudio/lib/_torchaudio.abi3.so"):
        lib = read_member(wheel, member)
        assert lib.machine == "arm64"
        assert lib.needed[:3] == (C10, "@rpath/libtorch.dylib", TORCH_CPU)
        shims = lib.imports.with_prefix("aoti_torch_", "torch_")
        assert shims
        assert {s.library for s in shims} == {TORCH_CPU}
        assert lib.min_os == "11.0"


@pytest.mark.network
def test_torchaudio_2_9_imports_cxx_symbols() -> None:
    wheel = real_wheel("torchaudio-2.9.1-cp311-cp311-macosx_11_0_arm64.whl")
    lib = read_member(wheel, "torchaudio/lib/libtorchaudio.so")
    c10 = lib.imports.with_prefix("_ZN3c10")
    at = lib.imports.with_prefix("_ZN2at")
    assert c10
    assert at
    assert {s.library for s in c10} <= {C10, TORCH_CPU}
    assert not lib.imports.with_prefix("__Z")  # exactly one underscore was stripped
    assert lib.soname == "@rpath/libtorchaudio.so"


@pytest.mark.network
def test_torchcodec_chained_fixups_agree_with_the_symbol_table() -> None:
    wheel = real_wheel("torchcodec-0.17.0-cp311-cp311-macosx_14_0_arm64.whl")
    from torch_abi_audit.sources.wheels import WheelArchive

    with WheelArchive(wheel) as archive:
        members = [m.name for m in archive.library_members()]
    own = [m for m in members if m.startswith("torchcodec/libtorchcodec_")]
    with_fixups = 0
    for member in own:
        lib = read_member(wheel, member)
        assert lib.min_os is not None and tuple(map(int, lib.min_os.split("."))) <= (14, 0)
        table = member_chained_imports(wheel, member)["arm64"]
        if table is None:
            continue
        with_fixups += 1
        exports = lib.exports.names()
        chained = {e.name[1:] if e.name.startswith("_") else e.name for e in table}
        # Weak definitions of the library itself are bound through the table for coalescing.
        assert chained - exports == lib.imports.names(), member
        by_name = {s.name: s.library for s in lib.imports}
        for entry in table:
            name = entry.name[1:]
            if entry.lib_ordinal > 0 and name in by_name:
                assert by_name[name] == lib.needed[entry.lib_ordinal - 1]
    assert with_fixups >= 3


@pytest.mark.network
@pytest.mark.parametrize(
    "entry",
    list(parity_entries()),
    ids=lambda e: (
        f"{str(e['wheel']).split('-')[0]}-{str(e['wheel']).split('-')[1]}:"
        f"{Path(str(e['member'])).name}:{e['arch']}"
    ),
)
def test_parity_with_llvm(entry: dict[str, object]) -> None:
    """Imports and needed libraries as LLVM's tools saw them (tests/fixtures/macho_parity.json)."""
    lib = slice_for(
        read_member(real_wheel(str(entry["wheel"])), str(entry["member"])), str(entry["arch"])
    )
    names = sorted(lib.imports.names())
    assert list(lib.needed) == entry["needed"]
    assert len(names) == entry["undefined_count"]
    if "undefined" in entry:
        assert names == entry["undefined"]
    else:
        assert names[:20] == entry["undefined_first"]
        assert names[-20:] == entry["undefined_last"]
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()
    assert digest == entry["undefined_sha256"]
