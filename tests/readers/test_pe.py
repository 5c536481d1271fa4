"""The PE/COFF reader: hand-built DLLs decoded exactly, hostile ones refused, real wheels read.

Synthetic images come from :mod:`helpers.pe_builder` (packed with ``struct``, independently of
the reader). Real Windows wheels (network-marked) are compared with
``tests/fixtures/pe_parity.json``, generated once with ``pefile`` (see the file's ``about``).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import random
import re
import struct
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.elf_inspect import deadline
from helpers.pe_builder import (
    IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT,
    IMAGE_DIRECTORY_ENTRY_EXPORT,
    IMAGE_DIRECTORY_ENTRY_IMPORT,
    IMAGE_FILE_MACHINE_AMD64,
    IMAGE_FILE_MACHINE_ARM64,
    IMAGE_FILE_MACHINE_ARMNT,
    IMAGE_FILE_MACHINE_I386,
    IMAGE_SCN_CNT_INITIALIZED_DATA,
    IMAGE_SCN_MEM_EXECUTE,
    IMAGE_SCN_MEM_READ,
    IMAGE_SCN_MEM_WRITE,
    IMAGE_SYM_CLASS_EXTERNAL,
    IMAGE_SYM_CLASS_FILE,
    CoffSymbol,
    Export,
    ExtraSection,
    Import,
    PeImage,
    build_pe,
)
from helpers.real_wheels import library_members
from helpers.wheel_builder import write_wheel
from torch_abi_audit.model import (
    BinaryFormat,
    Library,
    Symbol,
    SymbolBinding,
    SymbolType,
    SymbolVisibility,
)
from torch_abi_audit.readers import (
    BinaryReadError,
    UnsupportedFormatError,
    parse_library,
    read_library,
)
from torch_abi_audit.readers.pe import MAX_NAME_LENGTH, PeSymbols, parse_pe, read_pe
from torch_abi_audit.readers.source import check_range
from torch_abi_audit.readers.strings import find_strings
from torch_abi_audit.sources import wheel_bytes
from torch_abi_audit.sources.wheel_bytes import StreamedMember
from torch_abi_audit.sources.wheels import WheelArchive

GLOBAL = SymbolBinding.GLOBAL
NOTYPE = SymbolType.NOTYPE
FUNC = SymbolType.FUNC
DEFAULT = SymbolVisibility.DEFAULT

PARITY = Path(__file__).parent.parent / "fixtures" / "pe_parity.json"


class BytesSource:
    """A :class:`ByteSource` over bytes in memory that records every read."""

    def __init__(self, data: bytes, *, sequential: bool = False) -> None:
        self.data = data
        self.sequential = sequential
        self.reads: list[tuple[int, int, str]] = []

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, offset: int, length: int, what: str) -> bytes:
        check_range(offset, length, len(self.data), what)
        self.reads.append((offset, length, what))
        return self.data[offset : offset + length]


def parse(data: bytes, *, local_symbols: bool = False) -> Library:
    """Parse ``data`` and force every lazy part, so that late errors surface here."""
    library = parse_pe(BytesSource(data), Path("synthetic.dll"), local_symbols=local_symbols)
    for table in (library.imports, library.exports):
        table.names()
        table.with_prefix("Py", "?")
        table.symbols()
    return library


def expect_error(data: bytes, match: str | None = None, **kwargs: bool) -> BinaryReadError:
    with deadline(10), pytest.raises(BinaryReadError, match=match) as info:
        parse(data, **kwargs)
    return info.value


def imported(name: str, dll: str) -> Symbol:
    return Symbol(name, False, GLOBAL, NOTYPE, DEFAULT, library=dll)


def exported(name: str, kind: SymbolType = FUNC) -> Symbol:
    return Symbol(name, True, GLOBAL, kind, DEFAULT)


# A DLL with a bit of everything: imports by name and by ordinal from two DLLs, a delay-loaded
# DLL, and exports that are named, ordinal-only, forwarded, data, and an empty slot.
IMPORTS = (
    Import("KERNEL32.dll", ["GetProcAddress", "LoadLibraryA"]),
    Import("WS2_32.dll", [23, "send"]),
)
DELAY_IMPORTS = (Import("c10.dll", ["?warn@c10@@YAXXZ", 7]),)
EXPORTS = (
    Export("PyInit_demo"),
    Export(None),
    Export("forwarded", forwarder="OTHER.target"),
    Export(None, gap=True),
    Export("table", data=True),
    Export("AOTInductorModelCreate"),
)
EXPECTED_IMPORTS = [
    imported("GetProcAddress", "KERNEL32.dll"),
    imported("LoadLibraryA", "KERNEL32.dll"),
    imported("#23", "WS2_32.dll"),
    imported("send", "WS2_32.dll"),
    imported("?warn@c10@@YAXXZ", "c10.dll"),
    imported("#7", "c10.dll"),
]
# Named exports in name-pointer (sorted) order, then the ordinal-only one (base 10 + slot 1).
EXPECTED_EXPORTS = [
    exported("AOTInductorModelCreate"),
    exported("PyInit_demo"),
    exported("forwarded", NOTYPE),
    exported("table", NOTYPE),
    exported("#11"),
]


def full_image(bits: int = 64, **kwargs: Any) -> PeImage:
    options: dict[str, Any] = {
        "bits": bits,
        "imports": IMPORTS,
        "delay_imports": DELAY_IMPORTS,
        "exports": EXPORTS,
        "export_base": 10,
        "export_name": "demo.pyd",
    }
    options.update(kwargs)
    return build_pe(**options)


def with_tail(make: Callable[..., PeImage], tail_of: Callable[[int], bytes]) -> PeImage:
    """Build twice: once to learn where ``rdata_tail`` lands, once with the real tail.

    ``tail_of(rva)`` returns the tail's bytes given its RVA (which does not depend on them).
    """
    probe = make(rdata_tail=b"\0")
    image = make(rdata_tail=tail_of(probe.rvas["tail"]))
    assert image.rvas["tail"] == probe.rvas["tail"]
    return image


# -- decoding -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("bits", "machine"), [(64, "x86_64"), (32, "i386")])
def test_dll_is_decoded_exactly(bits: int, machine: str) -> None:
    library = parse(full_image(bits).data)
    assert library.path == Path("synthetic.dll")
    assert library.format is BinaryFormat.PE
    assert (library.machine, library.bits, library.byte_order) == (machine, bits, "little")
    assert library.needed == ("KERNEL32.dll", "WS2_32.dll", "c10.dll")
    assert library.optional_needed == ("c10.dll",)  # delay-loaded: loaded at its first call
    assert library.optional_imports() == {"?warn@c10@@YAXXZ", "#7"}
    assert not library.executable
    assert library.soname == "demo.pyd"
    assert list(library.imports) == EXPECTED_IMPORTS
    assert list(library.exports) == EXPECTED_EXPORTS
    assert library.rpath == library.runpath == ()
    assert library.local_symbols is None
    assert library.slices == () and library.min_os is None


@pytest.mark.parametrize("separate_edata", [False, True])
def test_pe32_delay_load_with_virtual_addresses(separate_edata: bool) -> None:
    """Visual C++ 6 delay-load descriptors (attributes 0) hold VAs: ImageBase is subtracted."""
    image = full_image(32, delay_va_based=True, separate_edata=separate_edata)
    library = parse(image.data)
    assert list(library.imports) == EXPECTED_IMPORTS
    assert list(library.exports) == EXPECTED_EXPORTS
    assert (".edata" in image.sections) is separate_edata


def test_export_directory_in_its_own_section() -> None:
    image = full_image(64, separate_edata=True)
    assert image.rvas["exports"] >= image.sections[".edata"].rva
    library = parse(image.data)
    assert list(library.exports) == EXPECTED_EXPORTS
    assert library.soname == "demo.pyd"


@pytest.mark.parametrize(
    ("machine", "bits", "name"),
    [
        (IMAGE_FILE_MACHINE_AMD64, 64, "x86_64"),
        (IMAGE_FILE_MACHINE_I386, 32, "i386"),
        (IMAGE_FILE_MACHINE_ARM64, 64, "arm64"),
        (IMAGE_FILE_MACHINE_ARMNT, 32, "arm"),
        (0xA641, 64, "machine-0xa641"),  # ARM64EC
        (0x5064, 64, "machine-0x5064"),  # RISC-V 64
    ],
)
def test_machine_names(machine: int, bits: int, name: str) -> None:
    library = parse(build_pe(bits=bits, machine=machine, imports=IMPORTS).data)
    assert (library.machine, library.bits) == (name, bits)


def test_bits_follow_the_optional_header_not_the_machine() -> None:
    library = parse(build_pe(bits=32, machine=IMAGE_FILE_MACHINE_AMD64).data)
    assert (library.machine, library.bits) == ("x86_64", 32)


def test_dll_without_imports_or_exports() -> None:
    library = parse(build_pe().data)
    assert list(library.imports) == [] and list(library.exports) == []
    assert library.needed == () and library.soname is None


def test_export_directory_without_a_name() -> None:
    library = parse(build_pe(exports=[Export("f")], export_name=None).data)
    assert library.soname is None
    assert list(library.exports) == [exported("f")]


def test_needed_lists_each_dll_once_imports_first() -> None:
    image = build_pe(
        imports=[
            Import("KERNEL32.dll", ["A"]),
            Import("msvcrt.dll", ["B"]),
            Import("kernel32.DLL", ["C"]),
        ],
        delay_imports=[Import("torch_cpu.dll", ["D"]), Import("MSVCRT.dll", ["E"])],
    )
    library = parse(image.data)
    assert library.needed == ("KERNEL32.dll", "msvcrt.dll", "torch_cpu.dll")
    # Only torch_cpu.dll is delay-loaded alone: msvcrt.dll is imported normally as well.
    assert library.optional_needed == ("torch_cpu.dll",)
    assert library.optional_imports() == {"D"}  # E binds to msvcrt.dll, loaded at load time
    # Every import keeps the DLL name as its own descriptor spells it.
    assert [(s.name, s.library) for s in library.imports] == [
        ("A", "KERNEL32.dll"),
        ("B", "msvcrt.dll"),
        ("C", "kernel32.DLL"),
        ("D", "torch_cpu.dll"),
        ("E", "MSVCRT.dll"),
    ]


def test_executable_is_read_and_marked() -> None:
    library = parse(full_image(dll=False).data)
    assert library.executable
    assert not parse(full_image().data).executable


def test_local_symbols_from_the_coff_symbol_table() -> None:
    symbols = [
        CoffSymbol(".text", aux=1),  # a section symbol: skipped
        CoffSymbol("helper"),  # static function
        CoffSymbol("a_static_variable_with_a_long_name", type=0),  # long name: string table
        CoffSymbol("exported", storage=IMAGE_SYM_CLASS_EXTERNAL),  # not local
        CoffSymbol("demo.c", section=-2, storage=IMAGE_SYM_CLASS_FILE, aux=1),  # a file symbol
        CoffSymbol("undefined_static", section=0),  # no section: skipped
    ]
    image = build_pe(exports=[Export("exported")], coff_symbols=symbols)
    library = parse(image.data, local_symbols=True)
    local = SymbolBinding.LOCAL
    assert library.local_symbols == (
        Symbol("helper", True, local, FUNC, DEFAULT),
        Symbol("a_static_variable_with_a_long_name", True, local, NOTYPE, DEFAULT),
    )
    assert parse(image.data).local_symbols is None  # not asked for
    assert parse(build_pe().data, local_symbols=True).local_symbols is None  # no table
    # A string table cut in the middle of its first name.
    strings_at = image.offsets["symbol_table"] + 18 * 8
    truncated = set_u32(image.data, strings_at, 4 + 10)
    expect_error(truncated, "not NUL-terminated", local_symbols=True)
    expect_error(
        set_u32(image.data, strings_at, 0x7FFFFFFF), "outside the file", local_symbols=True
    )


def test_names_are_decoded_as_utf8_with_escapes() -> None:
    library = parse(build_pe(imports=[Import("d\u00e9j\u00e0.dll", ["caf\u00e9"])]).data)
    assert library.needed == ("d\u00e9j\u00e0.dll",)
    assert library.imports.names() == frozenset({"caf\u00e9"})
    # An import name that is not UTF-8: the hint/name entry patched in place.
    image = build_pe(imports=[Import("x.dll", ["abc"])])
    (lookup,) = struct.unpack_from("<I", image.data, image.offset_of(image.rvas["imports"]))
    (hint_name,) = struct.unpack_from("<Q", image.data, image.offset_of(lookup))
    data = image.patched_rva(hint_name + 2, "<4B", *b"ab\xff\0")
    assert parse(data).imports.names() == frozenset({"ab\\xff"})


def test_rva_inside_the_headers_maps_to_itself() -> None:
    image = build_pe(imports=[Import("KERNEL32.dll", ["A"])])
    data = image.patched(0x40, b"HEADERS.dll\0")  # in the MS-DOS stub, before e_lfanew's target
    descriptor = image.offset_of(image.rvas["imports"])
    data = data[: descriptor + 12] + struct.pack("<I", 0x40) + data[descriptor + 16 :]
    assert parse(data).needed == ("HEADERS.dll",)


def test_zero_filled_part_of_a_section_reads_as_zeros() -> None:
    """An import directory in a section without file data (like .bss) lists no DLL."""
    image = build_pe(
        imports=[Import("KERNEL32.dll", ["A"])],
        extra_sections=[ExtraSection(".bss", virtual_size=0x100, raw=False)],
    )
    bss = image.sections[".bss"]
    assert bss.raw_size == 0 and bss.raw_offset == 0
    data = image.patched(
        image.directory_offset(IMAGE_DIRECTORY_ENTRY_IMPORT), struct.pack("<I", bss.rva)
    )
    library = parse(data)
    assert list(library.imports) == [] and library.needed == ()


def test_rodata_is_the_file_backed_part_of_read_only_data_sections() -> None:
    data = IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ
    image = full_image(
        rdata_tail=b"torch_from_the_future\0",
        extra_sections=[
            # 0x300 bytes in the file, of which the section maps only 0x280.
            ExtraSection(".rodat2", b"aoti_torch_get_dim\0".ljust(0x300, b"x"), 0x280),
            ExtraSection(".wdata", b"torch_writable\0", flags=data | IMAGE_SCN_MEM_WRITE),
            ExtraSection(".xdata", b"torch_executable\0", flags=data | IMAGE_SCN_MEM_EXECUTE),
            ExtraSection(".bss", virtual_size=0x100, raw=False),
        ],
    )
    rdata, rodat2 = image.sections[".rdata"], image.sections[".rodat2"]
    # .rdata's file data is padded to the file alignment; the padding is not part of it.
    assert rdata.virtual_size < rdata.raw_size
    assert rdata.raw_offset + rdata.raw_size == rodat2.raw_offset
    library = parse(image.data)
    assert library.rodata == ((rdata.raw_offset, rdata.virtual_size), (rodat2.raw_offset, 0x280))
    shim = re.compile(rb"(?<![A-Za-z0-9_])((?:aoti_torch|torch)_[A-Za-z0-9_]+)\x00")
    found = find_strings(BytesSource(image.data), library.rodata, shim)
    assert found == {"torch_from_the_future", "aoti_torch_get_dim"}
    # MSVC and this builder keep the import directory in .rdata: its hint/name entries (the
    # names of imported functions) are read-only data too.
    imported = re.compile(rb"(GetProcAddress|LoadLibraryA)\x00")
    assert find_strings(BytesSource(image.data), library.rodata, imported) == {
        "GetProcAddress",
        "LoadLibraryA",
    }


def test_zero_length_sections_are_harmless() -> None:
    image = full_image(extra_sections=[ExtraSection(".empty"), ExtraSection(".empty2")])
    assert image.sections[".empty"].virtual_size == 0
    library = parse(image.data)
    assert list(library.imports) == EXPECTED_IMPORTS


@pytest.mark.parametrize("raw_size", [16, 12, 8])
def test_thunk_array_ending_in_the_zero_fill_is_terminated_by_it(raw_size: int) -> None:
    """A lookup table whose end lies past the section's file data (zero-filled): cut after
    whole entries, or in the middle of one (its high half is then zeros)."""
    plain = build_pe(imports=[Import("KERNEL32.dll", ["GetProcAddress"])])
    descriptor = plain.offset_of(plain.rvas["imports"])
    (lookup,) = struct.unpack_from("<I", plain.data, descriptor)
    (hint_name,) = struct.unpack_from("<Q", plain.data, plain.offset_of(lookup))
    thunks = struct.pack("<2Q", 1 << 63 | 5, hint_name)
    image = build_pe(
        imports=[Import("KERNEL32.dll", ["GetProcAddress"])],
        extra_sections=[ExtraSection(".ilt", content=thunks, virtual_size=0x40)],
    )
    ilt = image.sections[".ilt"]
    data = set_u32(image.data, image.offset_of(image.rvas["imports"]), ilt.rva)
    data = set_u32(data, ilt.header_offset + 16, raw_size)  # SizeOfRawData
    expected = {16: ["#5", "GetProcAddress"], 12: ["#5", "GetProcAddress"], 8: ["#5"]}
    assert [s.name for s in parse(data).imports] == expected[raw_size]


@pytest.mark.parametrize("count", [0, 1, 13, 16, 0x20, 0xFFFFFFFF])
def test_number_of_rva_and_sizes(count: int) -> None:
    image = full_image(number_of_rva_and_sizes=count)
    library = parse(image.data)
    if count > IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT:
        assert list(library.imports) == EXPECTED_IMPORTS
    elif count > IMAGE_DIRECTORY_ENTRY_IMPORT:
        assert list(library.imports) == EXPECTED_IMPORTS[:4]  # no delay-load directory
    else:
        assert list(library.imports) == []
    assert list(library.exports) == (
        EXPECTED_EXPORTS if count > IMAGE_DIRECTORY_ENTRY_EXPORT else []
    )


def test_name_length_limit() -> None:
    def make(length: int) -> bytes:
        image = with_tail(
            lambda **kw: build_pe(imports=[Import("KERNEL32.dll", ["A"])], **kw),
            lambda _rva: b"N" * length + b"\0",
        )
        descriptor = image.offset_of(image.rvas["imports"])
        return image.patched(descriptor + 12, struct.pack("<I", image.rvas["tail"]))

    assert parse(make(MAX_NAME_LENGTH)).needed == ("N" * MAX_NAME_LENGTH,)
    expect_error(make(MAX_NAME_LENGTH + 1), "longer than 4096 bytes")


def test_descriptors_sharing_one_lookup_table() -> None:
    """Linkers never do it, but it is valid: each descriptor lists the same names."""

    def tail(rva: int) -> bytes:
        table = rva + 3 * 20 + 20
        descriptors = [struct.pack("<5I", table, 0, 0, name, table) for name in (0, 0, 0)]
        return b"".join(descriptors) + bytes(20) + struct.pack("<3Q", 1 << 63 | 1, 1 << 63 | 2, 0)

    image = with_tail(lambda **kw: build_pe(imports=[Import("KERNEL32.dll", ["A"])], **kw), tail)
    # Give every descriptor the DLL name of the built one.
    descriptor = image.offset_of(image.rvas["imports"])
    (name_rva,) = struct.unpack_from("<I", image.data, descriptor + 12)
    data = image.data
    for index in range(3):
        at = image.offset_of(image.rvas["tail"]) + 20 * index + 12
        data = data[:at] + struct.pack("<I", name_rva) + data[at + 4 :]
    directory = image.directory_offset(IMAGE_DIRECTORY_ENTRY_IMPORT)
    data = data[:directory] + struct.pack("<I", image.rvas["tail"]) + data[directory + 4 :]
    library = parse(data)
    assert library.needed == ("KERNEL32.dll",)
    assert [s.name for s in library.imports] == ["#1", "#2"] * 3


def test_lazy_tables() -> None:
    library = parse_pe(BytesSource(full_image().data), Path("demo.pyd"))
    exports = library.exports
    assert isinstance(exports, PeSymbols)
    assert exports.names() == frozenset(s.name for s in EXPECTED_EXPORTS)
    assert exports.with_prefix("PyInit_", "AOTI") == (
        exported("AOTInductorModelCreate"),
        exported("PyInit_demo"),
    )
    assert exports._symbols is None  # names and prefixes did not build the symbols
    assert exports == EXPECTED_EXPORTS
    assert exports.with_prefix("PyInit_") == (exported("PyInit_demo"),)
    assert len(library.imports) == 6 and library.imports[2] == imported("#23", "WS2_32.dll")
    assert library.symbols == tuple(EXPECTED_IMPORTS + EXPECTED_EXPORTS)
    copy = pickle.loads(pickle.dumps(library))
    assert copy.imports == EXPECTED_IMPORTS and copy.exports == EXPECTED_EXPORTS


def test_dispatch_through_parse_and_read_library(tmp_path: Path) -> None:
    path = full_image().write(tmp_path / "demo.pyd")
    for library in (
        read_library(path),
        read_pe(path),
        parse_library(BytesSource(path.read_bytes()), path),
    ):
        assert library.format is BinaryFormat.PE and library.path == path
        assert list(library.imports) == EXPECTED_IMPORTS


# -- reading order (streamed wheel members) -------------------------------------------------------


def test_sequential_source_reads_each_section_once_in_file_order() -> None:
    image = full_image(
        separate_edata=True,
        text_padding=0x4000,
        coff_symbols=[CoffSymbol("helper")],
    )
    source = BytesSource(image.data, sequential=True)
    library = parse_pe(source, Path("demo.pyd"), local_symbols=True)
    assert list(library.imports) == EXPECTED_IMPORTS and list(library.exports) == EXPECTED_EXPORTS
    body = [(o, n) for o, n, _what in source.reads if o >= image.offsets["size_of_headers"]]
    rdata, edata = image.sections[".rdata"], image.sections[".edata"]
    assert body[:2] == [
        (rdata.raw_offset, rdata.virtual_size),
        (edata.raw_offset, edata.virtual_size),
    ]
    assert [o for o, _n in body] == sorted(o for o, _n in body)  # the symbol table comes last
    assert all(o < image.offsets["size_of_headers"] for o, _n, _w in source.reads[:4])


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_LZMA])
def test_streamed_wheel_member_never_spills(
    compression: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With windows far smaller than the DLL, ascending reads are still served from the stream."""
    monkeypatch.setattr(wheel_bytes, "WINDOW", 0x400)
    monkeypatch.setattr(wheel_bytes, "CHUNK", 0x200)

    def no_spill(self: StreamedMember) -> None:
        raise AssertionError(f"{self.name}: spilled to a temporary file")

    monkeypatch.setattr(StreamedMember, "_start_spill", no_spill)
    monkeypatch.setattr(wheel_bytes, "FIRST_STEP", 0x200)
    image = full_image(separate_edata=True, text_padding=0x8000, coff_symbols=[CoffSymbol("h")])
    wheel = write_wheel(
        tmp_path,
        "demo",
        "1.0",
        ["cp311-cp311-win_amd64"],
        {"demo/_demo.pyd": image.data},
        compression=compression,
    )
    with WheelArchive(wheel) as archive:
        source = archive.open_member("demo/_demo.pyd")
        assert source.sequential
        try:
            library = parse_library(source, Path("demo/_demo.pyd"), local_symbols=True)
            source.finish()
        finally:
            source.close()
    assert list(library.imports) == EXPECTED_IMPORTS
    assert list(library.exports) == EXPECTED_EXPORTS
    assert library.local_symbols is not None and [s.name for s in library.local_symbols] == ["h"]


# -- bad input ------------------------------------------------------------------------------------


def set_u32(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack("<I", value) + data[offset + 4 :]


def set_u16(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack("<H", value) + data[offset + 2 :]


@pytest.mark.parametrize(
    ("bits", "local_symbols"), [(64, False), (32, False), (64, True)], ids=["64", "32", "coff"]
)
def test_every_truncation_is_refused(bits: int, local_symbols: bool) -> None:
    coff = [CoffSymbol("helper"), CoffSymbol("a_long_static_symbol_name")] if local_symbols else []
    image = full_image(bits, coff_symbols=coff)
    rdata = image.sections[".rdata"]
    needed_end = len(image.data) if local_symbols else rdata.raw_offset + rdata.virtual_size
    with deadline(60):
        for cut in range(len(image.data)):
            data = image.data[:cut]
            if cut < needed_end:
                with pytest.raises(BinaryReadError):
                    parse(data, local_symbols=local_symbols)
            else:  # only the alignment padding of the last section is gone
                assert list(parse(data, local_symbols=local_symbols).imports) == EXPECTED_IMPORTS


@pytest.mark.parametrize(
    ("content", "unsupported"),
    [
        (b"MZ", False),
        (b"MZ" + bytes(61), False),  # one byte short of e_lfanew's end
        (b"MZ\x90\x00\x03\x00\x00\x00" + bytes(120), True),  # an MS-DOS program
        (b"MZ" + bytes(0x16) + b"\x40\x00" + bytes(0x22) + b"\x40\0\0\0NE" + bytes(64), True),
        (b"MZ" + bytes(0x16) + b"\x40\x00" + bytes(0x22) + b"\x40\0\0\0LX" + bytes(64), True),
        (b"MZ" + bytes(0x16) + b"\x40\x00" + bytes(0x22) + b"\x40\0\0\0PE\0\0", False),
        (b"\x7fELF" + bytes(100), False),
        (b"MZ" + random.Random(3).randbytes(5000), False),
    ],
    ids=["MZ", "short-dos-header", "dos-program", "ne", "lx", "pe-no-file-header", "elf", "random"],
)
def test_not_a_pe_image(content: bytes, unsupported: bool) -> None:
    error = expect_error(content)
    assert isinstance(error, UnsupportedFormatError) is unsupported, error


@pytest.mark.parametrize("e_lfanew", [0, 0x3C, 0x1000, 0x7FFFFFFF, 0xFFFFFFFF, -3])
def test_bogus_e_lfanew(e_lfanew: int) -> None:
    image = full_image()
    value = len(image.data) + e_lfanew if e_lfanew < 0 else e_lfanew
    error = expect_error(set_u32(image.data, 0x3C, value))
    assert not isinstance(error, UnsupportedFormatError)  # e_lfarlc says a PE header follows


def test_huge_number_of_sections() -> None:
    image = full_image()
    data = set_u16(image.data, image.offsets["file_header"] + 2, 0xFFFF)
    expect_error(data, "section table .65535 sections")


@pytest.mark.parametrize(
    ("size", "match"),
    [
        (0, "without an optional header"),
        (1, "without an optional header"),
        (0x10, "too small for a PE32\\+ optional header"),
        (112 + 8 * 15, "room for 15 data directories"),
        (0xFFFF, "optional header lies outside the file"),
    ],
)
def test_inconsistent_size_of_optional_header(size: int, match: str) -> None:
    image = full_image()
    expect_error(set_u16(image.data, image.offsets["file_header"] + 16, size), match)


def test_unknown_optional_header_magic() -> None:
    image = full_image()
    expect_error(set_u16(image.data, image.offsets["optional_header"], 0x107), "magic 0x107")


@pytest.mark.parametrize(
    "directory",
    [
        IMAGE_DIRECTORY_ENTRY_EXPORT,
        IMAGE_DIRECTORY_ENTRY_IMPORT,
        IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT,
    ],
)
@pytest.mark.parametrize("rva", [0x7FFF0000, 0xFFFFFFF0, 0x3FF0])
def test_directory_outside_every_section(directory: int, rva: int) -> None:
    image = full_image()
    expect_error(
        set_u32(image.data, image.directory_offset(directory), rva), "outside every section"
    )


def test_overlapping_sections_are_refused() -> None:
    image = full_image()
    header = image.sections[".rdata"].header_offset
    data = set_u32(image.data, header + 12, image.sections[".data"].rva + 0x10)
    expect_error(data, "overlaps the one before it or is out of order")


def test_many_sections() -> None:
    """Thousands of (empty) sections: RVA lookups stay cheap."""
    extra = [ExtraSection(f".s{i}") for i in range(3000)]
    image = full_image(extra_sections=extra)
    with deadline(10):
        assert list(parse(image.data).imports) == EXPECTED_IMPORTS


def test_directory_in_a_zero_length_section() -> None:
    image = full_image(extra_sections=[ExtraSection(".empty")])
    rva = image.sections[".empty"].rva
    expect_error(set_u32(image.data, image.directory_offset(IMAGE_DIRECTORY_ENTRY_IMPORT), rva))


def test_section_data_beyond_the_end_of_the_file() -> None:
    image = full_image()
    header = image.sections[".rdata"].header_offset
    # PointerToRawData past the end of the file.
    expect_error(set_u32(image.data, header + 20, len(image.data) + 0x200), "past the end of the")
    # SizeOfRawData past it: harmless while VirtualSize says how much is mapped...
    huge_raw = set_u32(image.data, header + 16, 0x7FFFFFFF)
    assert list(parse(huge_raw).imports) == EXPECTED_IMPORTS
    # ...but not without one (VirtualSize 0: SizeOfRawData is the section's size).
    expect_error(set_u32(huge_raw, header + 8, 0), "extends past the end of the")


def test_import_directory_without_a_terminator() -> None:
    image = full_image(terminate_imports=False)
    assert (
        image.rvas["imports"] + 2 * 20
        == image.sections[".rdata"].rva + image.sections[".rdata"].virtual_size
    )
    expect_error(image.data, "without a terminating null entry")


def test_delay_directory_without_a_terminator() -> None:
    def tail(_rva: int) -> bytes:
        # A copy of the c10.dll descriptor as the last bytes of .rdata: no null entry follows.
        return plain.data[delay : delay + 32]

    plain = full_image(rdata_tail=bytes(32))
    delay = plain.offset_of(plain.rvas["delay"])
    image = with_tail(full_image, tail)
    directory = image.directory_offset(IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT)
    data = set_u32(image.data, directory, image.rvas["tail"])
    expect_error(data, "delay-load directory .* without a terminating null entry")


@pytest.mark.parametrize("bits", [64, 32])
def test_thunk_array_running_off_the_section(bits: int) -> None:
    flag = 1 << (bits - 1)
    code = "Q" if bits == 64 else "I"
    image = with_tail(
        lambda **kw: full_image(bits, **kw), lambda _rva: struct.pack(f"<4{code}", *[flag | 1] * 4)
    )
    descriptor = image.offset_of(image.rvas["imports"])
    expect_error(set_u32(image.data, descriptor, image.rvas["tail"]), "runs off the end of section")


def test_unterminated_names() -> None:
    image = with_tail(full_image, lambda _rva: b"UNTERMINATED")
    tail = image.rvas["tail"]
    descriptor = image.offset_of(image.rvas["imports"])
    expect_error(set_u32(image.data, descriptor + 12, tail), "not NUL-terminated")
    # A hint/name entry whose name runs to the end of the section.
    thunk_at = struct.unpack_from("<I", image.data, descriptor)[0]
    expect_error(image.patched_rva(thunk_at, "<Q", tail - 2), "not NUL-terminated")
    # An export name, and the export directory's DLL name.
    directory = image.offset_of(image.rvas["exports"])
    (pointers,) = struct.unpack_from("<I", image.data, directory + 32)
    expect_error(image.patched_rva(pointers, "<I", tail), "not NUL-terminated")
    expect_error(set_u32(image.data, directory + 12, tail), "not NUL-terminated")


def test_reserved_bits_in_a_64_bit_lookup_entry() -> None:
    image = full_image()
    descriptor = image.offset_of(image.rvas["imports"])
    (table,) = struct.unpack_from("<I", image.data, descriptor)
    expect_error(image.patched_rva(table, "<Q", 1 << 40 | 0x2000), "reserved bits")


def test_bad_import_descriptor_fields() -> None:
    image = full_image()
    descriptor = image.offset_of(image.rvas["imports"])
    expect_error(set_u32(image.data, descriptor + 12, 0), "DLL name .* is empty")
    expect_error(set_u32(image.data, descriptor + 12, 0x7FFFFFF0), "outside every section")
    no_tables = set_u32(set_u32(image.data, descriptor, 0), descriptor + 16, 0)
    expect_error(no_tables, "has no lookup table")
    expect_error(set_u32(image.data, descriptor, 0x7FFFFFF0), "outside every section")
    # OriginalFirstThunk 0: the Import Address Table (unbound, so the same names) is used.
    assert list(parse(set_u32(image.data, descriptor, 0)).imports) == EXPECTED_IMPORTS


def test_bad_delay_descriptor_fields() -> None:
    image = full_image(32, delay_va_based=True)
    descriptor = image.offset_of(image.rvas["delay"])
    expect_error(set_u32(image.data, descriptor + 4, 0x1000), "not an address inside the image")
    expect_error(set_u32(image.data, descriptor + 16, 0), "no import name table")
    image64 = full_image()
    descriptor = image64.offset_of(image64.rvas["delay"])
    expect_error(set_u32(image64.data, descriptor + 16, 0), "no import name table")
    expect_error(set_u32(image64.data, descriptor + 4, 0), "is empty")


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        (20, 0xFFFFFFFF, "export address table"),  # NumberOfFunctions
        (24, 0xFFFFFFFF, "export name pointer table"),  # NumberOfNames
        (20, 2, "refers to entry"),  # NumberOfFunctions below the ordinals in use
        (28, 0x7FFFFFF0, "outside every section"),  # AddressOfFunctions
        (32, 0x7FFFFFF0, "outside every section"),  # AddressOfNames
        (36, 0x7FFFFFF0, "outside every section"),  # AddressOfNameOrdinals
        (12, 0x7FFFFFF0, "outside every section"),  # Name
    ],
)
def test_bad_export_directory_fields(field: int, value: int, match: str) -> None:
    image = full_image()
    directory = image.offset_of(image.rvas["exports"])
    expect_error(set_u32(image.data, directory + field, value), match)


def test_export_name_pointer_outside_every_section() -> None:
    image = full_image()
    directory = image.offset_of(image.rvas["exports"])
    (pointers,) = struct.unpack_from("<I", image.data, directory + 32)
    expect_error(image.patched_rva(pointers + 4, "<I", 0x7FFFFFF0), "outside every section")


def test_export_tables_in_the_zero_fill_are_refused() -> None:
    """A count of four billion in a huge zero-filled section must not allocate gigabytes."""
    image = full_image(
        extra_sections=[ExtraSection(".bss", virtual_size=0xFFFFF000 - 0x10000, raw=False)]
    )
    directory = image.offset_of(image.rvas["exports"])
    data = set_u32(image.data, directory + 28, image.sections[".bss"].rva)
    data = set_u32(data, directory + 20, 0x10000000)
    expect_error(data, "runs past the file data")


def _many_descriptors(shared: bool) -> bytes:
    """5000 import descriptors on one 64-entry lookup table (``shared``), or each on the table
    starting one entry later (overlapping tables): far more entries than the file holds."""
    count, entries = 5000, 64

    def tail(rva: int) -> bytes:
        table = rva + 20 * (count + 1)
        name = table + 8 * (entries + count + 1)
        descriptors = [
            struct.pack("<5I", table + (0 if shared else 8 * (i % entries)), 0, 0, name, 0)
            for i in range(count)
        ]
        thunks = struct.pack(f"<{entries + count}Q", *[1 << 63 | 1] * (entries + count))
        return b"".join(descriptors) + bytes(20) + thunks + bytes(8) + b"LOOP.dll\0"

    image = with_tail(build_pe, tail)
    directory = image.directory_offset(IMAGE_DIRECTORY_ENTRY_IMPORT)
    return set_u32(image.data, directory, image.rvas["tail"])


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "overlapping"])
def test_repeated_lookup_tables_are_bounded(shared: bool) -> None:
    expect_error(_many_descriptors(shared), "more entries than the file has room for")


def fuzz_regions(image: PeImage) -> list[range]:
    """Headers, and the import, delay-load and export data in .rdata."""
    rdata = image.sections[".rdata"]
    return [
        range(image.offsets["sections"] + 40 * len(image.sections)),
        range(rdata.raw_offset, rdata.raw_offset + rdata.virtual_size),
    ]


@pytest.mark.parametrize("bits", [64, 32])
def test_random_corruption_never_crashes(bits: int) -> None:
    image = full_image(bits, coff_symbols=[CoffSymbol("helper"), CoffSymbol("x" * 20)])
    regions = fuzz_regions(image)
    generator = random.Random(bits)
    outcomes = {"parsed": 0, "refused": 0}
    with deadline(60):
        for _ in range(1500):
            data = bytearray(image.data)
            for _flip in range(generator.randint(1, 4)):
                region = generator.choice(regions)
                offset = generator.choice(region)
                data[offset] = generator.choice([0, 0xFF, 0x7F, 0x80, generator.randrange(256)])
            try:
                parse(bytes(data), local_symbols=True)
                outcomes["parsed"] += 1
            except BinaryReadError:
                outcomes["refused"] += 1
    assert outcomes["parsed"] and outcomes["refused"]


# -- real wheels ----------------------------------------------------------------------------------


def load_parity() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(PARITY.read_text(encoding="utf-8"))
    return document


def read_members(filename: str) -> Iterator[tuple[str, Library]]:
    """Every ``.pyd``/``.dll`` member of a wheel, read in place like the audit does."""
    return library_members(filename, (".pyd", ".dll"))


def summary(entries: list[Any], expected: dict[str, Any]) -> dict[str, Any]:
    """Sorted ``entries`` summarised the way the parity file stores them (see its "about")."""
    if "entries" in expected:
        return {"count": len(entries), "entries": entries}
    lines = ["\t".join(e) if isinstance(e, list) else e for e in entries]
    edge = len(expected["first"])
    return {
        "count": len(entries),
        "sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
        "first": entries[:edge],
        "last": entries[-edge:],
    }


@pytest.mark.network
@pytest.mark.parametrize("filename", sorted(load_parity()["wheels"]))
def test_real_wheel_parity_with_pefile(filename: str) -> None:
    expected_members = load_parity()["wheels"][filename]
    seen = {}
    for name, library in read_members(filename):
        expected = expected_members[name]
        seen[name] = library
        assert library.format is BinaryFormat.PE and library.machine == "x86_64", name
        assert library.bits == (64 if expected["pe32plus"] else 32), name
        assert list(library.needed) == expected["needed"], name
        assert library.soname == expected["soname"], name
        imports = sorted([s.library or "", s.name] for s in library.imports)
        assert summary(imports, expected["imports"]) == expected["imports"], name
        exports = sorted(s.name for s in library.exports)  # duplicates kept
        assert summary(exports, expected["exports"]) == expected["exports"], name
        # Every import carries the DLL it comes from, one of the needed ones.
        assert all(s.library in library.needed for s in library.imports), name
    assert sorted(seen) == sorted(expected_members)


@pytest.mark.network
def test_real_abi3_extension_imports_from_python3_dll() -> None:
    libraries = dict(read_members("cryptography-50.0.2-cp311-abi3-win_amd64.whl"))
    rust = libraries["cryptography/hazmat/bindings/_rust.pyd"]
    assert "PyInit__rust" in rust.exports.names()
    assert rust.needed[0] == "python3.dll"
    python = [s for s in rust.imports if s.library == "python3.dll"]
    assert len(python) > 100 and all(s.name.startswith(("Py", "_Py")) for s in python)
    assert not any(
        dll.lower().startswith("python3") and dll != "python3.dll" for dll in rust.needed
    )


@pytest.mark.network
def test_real_torch_stable_abi_imports() -> None:
    """torchaudio 2.11 uses the torch stable C shim: plain C names from torch_cpu.dll."""
    libraries = dict(read_members("torchaudio-2.11.0-cp311-cp311-win_amd64.whl"))
    for name, library in libraries.items():
        torch = [s.name for s in library.imports if s.library == "torch_cpu.dll"]
        assert torch, name
        assert all(n.startswith(("aoti_torch_", "torch_")) for n in torch), (name, torch)
        assert "c10.dll" not in library.needed


@pytest.mark.network
def test_real_msvc_decorated_imports() -> None:
    """torchaudio 2.9.1 links the C++ API: MSVC-decorated names from c10.dll and torch_cpu.dll."""
    libraries = dict(read_members("torchaudio-2.9.1-cp311-cp311-win_amd64.whl"))
    for name, library in libraries.items():
        c10 = [s.name for s in library.imports if s.library == "c10.dll"]
        assert c10 and all(n.startswith("?") for n in c10), name
        assert any("@c10@@" in n for n in c10), name
        torch = [s.name for s in library.imports if s.library == "torch_cpu.dll"]
        assert any(n.startswith("?") and "@at@@" in n for n in torch), name
