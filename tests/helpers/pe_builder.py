"""Write small PE32 and PE32+ images byte by byte, for the PE reader's tests.

No Windows toolchain runs here, and the reader must also face what a linker never writes
(truncations, RVAs outside every section, unterminated tables). :func:`build_pe` packs a DLL
(or an EXE) with :mod:`struct`, independently of the product's reader:

    MS-DOS header (e_lfanew) | PE signature | COFF file header | optional header with 16 data
    directories | section table | .text | .data | .rdata | [.edata] | [extra sections]
    | [COFF symbol table and string table]

``.rdata`` holds the import directory (its lookup tables, address tables, hint/name entries
and DLL names), the delay-load directory (with its name tables; the module handles and address
tables are in ``.data``), then the export directory with its tables and strings (unless
``separate_edata`` moves them to their own ``.edata`` section), then ``rdata_tail``: raw bytes
a test can point RVAs at. Every section's VirtualSize is its exact content length, so a table
running past its content runs off the section.

Layouts follow the Microsoft PE Format specification: "MS-DOS Stub", "COFF File Header",
"Optional Header" (PE32/PE32+ layouts, "Optional Header Data Directories"), "Section Table",
"The .idata Section", "Delay-Load Import Tables", "The .edata Section", "COFF Symbol Table".
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_FILE_MACHINE_I386 = 0x14C
IMAGE_FILE_MACHINE_ARMNT = 0x1C4
IMAGE_FILE_MACHINE_AMD64 = 0x8664
IMAGE_FILE_MACHINE_ARM64 = 0xAA64

IMAGE_FILE_EXECUTABLE_IMAGE = 0x0002
IMAGE_FILE_LARGE_ADDRESS_AWARE = 0x0020
IMAGE_FILE_32BIT_MACHINE = 0x0100
IMAGE_FILE_DLL = 0x2000

IMAGE_SCN_CNT_CODE = 0x00000020
IMAGE_SCN_CNT_INITIALIZED_DATA = 0x00000040
IMAGE_SCN_CNT_UNINITIALIZED_DATA = 0x00000080
IMAGE_SCN_MEM_EXECUTE = 0x20000000
IMAGE_SCN_MEM_READ = 0x40000000
IMAGE_SCN_MEM_WRITE = 0x80000000

IMAGE_DIRECTORY_ENTRY_EXPORT = 0
IMAGE_DIRECTORY_ENTRY_IMPORT = 1
IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT = 13

IMAGE_SYM_CLASS_EXTERNAL = 2
IMAGE_SYM_CLASS_STATIC = 3
IMAGE_SYM_CLASS_FILE = 103
IMAGE_SYM_DTYPE_FUNCTION = 2

FILE_ALIGNMENT = 0x200
SECTION_ALIGNMENT = 0x1000
E_LFANEW = 0x80
IMAGE_BASE_32 = 0x10000000
IMAGE_BASE_64 = 0x180000000

_DOS_HEADER_SIZE = 0x40
_FILE_HEADER = struct.Struct("<HHIIIHH")
_SECTION_HEADER = struct.Struct("<8sIIIIIIHHI")
_IMPORT_DESCRIPTOR = struct.Struct("<IIIII")
_DELAY_DESCRIPTOR = struct.Struct("<8I")
_EXPORT_DIRECTORY = struct.Struct("<IIHHIIIIIII")
_COFF_SYMBOL = struct.Struct("<8sIhHBB")
_DIRECTORIES = 16


def align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


@dataclass(frozen=True)
class Import:
    """The imports from one DLL: a name (by name), or an int (by ordinal)."""

    dll: str
    names: Sequence[str | int]


@dataclass(frozen=True)
class Export:
    """One Export Address Table slot, in ordinal order (ordinal = base + slot index).

    ``name`` None exports by ordinal only; ``forwarder`` ("OTHER.func") makes the slot point
    at that string inside the export directory; ``data`` at ``.data`` instead of ``.text``;
    ``gap`` leaves the slot empty (RVA 0).
    """

    name: str | None
    forwarder: str | None = None
    data: bool = False
    gap: bool = False


@dataclass(frozen=True)
class ExtraSection:
    """A section appended after the built ones: ``content`` is file-backed, the rest of
    ``virtual_size`` zero-filled; ``raw`` False gives it no file data at all (like ``.bss``).
    ``flags`` replaces its Characteristics (default: initialised, or uninitialised without
    ``raw``, readable data)."""

    name: str
    content: bytes = b""
    virtual_size: int | None = None
    raw: bool = True
    flags: int | None = None


@dataclass(frozen=True)
class CoffSymbol:
    """A COFF symbol table record (plus ``aux`` zeroed auxiliary records)."""

    name: str
    section: int = 1
    type: int = IMAGE_SYM_DTYPE_FUNCTION << 4
    storage: int = IMAGE_SYM_CLASS_STATIC
    aux: int = 0


@dataclass
class _Planned:
    """A section to write: its content, flags, and VirtualSize (default: the content's)."""

    name: str
    blob: _Blob
    flags: int
    virtual_size: int | None = None
    raw: bool = True


@dataclass(frozen=True)
class SectionInfo:
    name: str
    rva: int
    virtual_size: int
    raw_offset: int
    raw_size: int
    header_offset: int


@dataclass
class PeImage:
    """A built image: its bytes, and where things are (file offsets and RVAs)."""

    data: bytes
    bits: int
    offsets: dict[str, int]  # "file_header", "optional_header", "directories", "sections"...
    sections: dict[str, SectionInfo]
    rvas: dict[str, int] = field(default_factory=dict)  # "imports", "delay", "exports", "tail"

    def offset_of(self, rva: int) -> int:
        """The file offset of ``rva`` (which must lie in a section's file data)."""
        for section in self.sections.values():
            if section.rva <= rva < section.rva + section.raw_size:
                return section.raw_offset + rva - section.rva
        raise ValueError(f"RVA {rva:#x} is in no section")

    def patched(self, offset: int, new: bytes) -> bytes:
        """The image's bytes with ``new`` written at ``offset``."""
        return self.data[:offset] + new + self.data[offset + len(new) :]

    def patched_rva(self, rva: int, fmt: str, *values: int) -> bytes:
        """The image's bytes with ``values`` packed (``struct`` ``fmt``) at ``rva``."""
        return self.patched(self.offset_of(rva), struct.pack(fmt, *values))

    def directory_offset(self, index: int) -> int:
        """File offset of data directory ``index`` (its VirtualAddress, then its Size)."""
        return self.offsets["directories"] + 8 * index

    def write(self, path: Path) -> Path:
        path.write_bytes(self.data)
        return path


class _Blob:
    """The content of one section under construction, at a known RVA."""

    def __init__(self, rva: int) -> None:
        self.rva = rva
        self.data = bytearray()

    def add(self, raw: bytes, alignment: int = 4) -> int:
        """Append ``raw`` (after padding to ``alignment``); return its RVA."""
        self.data += bytes(align(len(self.data), alignment) - len(self.data))
        at = self.rva + len(self.data)
        self.data += raw
        return at

    def put(self, rva: int, fmt: str, *values: int) -> None:
        struct.pack_into(fmt, self.data, rva - self.rva, *values)

    @property
    def end(self) -> int:
        return self.rva + len(self.data)


def _next_rva(blob: _Blob) -> int:
    return align(max(blob.end, blob.rva + 1), SECTION_ALIGNMENT)


def build_pe(
    *,
    bits: int = 64,
    machine: int | None = None,
    dll: bool = True,
    imports: Sequence[Import] = (),
    delay_imports: Sequence[Import] = (),
    delay_va_based: bool = False,
    exports: Sequence[Export] = (),
    export_name: str | None = "synthetic.dll",
    export_base: int = 1,
    separate_edata: bool = False,
    terminate_imports: bool = True,
    rdata_tail: bytes = b"",
    extra_sections: Sequence[ExtraSection] = (),
    coff_symbols: Sequence[CoffSymbol] = (),
    number_of_rva_and_sizes: int = _DIRECTORIES,
    text_padding: int = 0,
) -> PeImage:
    """Build a PE image (see the module docstring for the layout).

    ``text_padding`` zero bytes after the code push the later sections further into the file.
    """
    if machine is None:
        machine = IMAGE_FILE_MACHINE_AMD64 if bits == 64 else IMAGE_FILE_MACHINE_I386
    thunk = "<Q" if bits == 64 else "<I"
    thunk_size = bits // 8
    ordinal_flag = 1 << (bits - 1)
    image_base = IMAGE_BASE_64 if bits == 64 else IMAGE_BASE_32
    rvas: dict[str, int] = {}

    # .text: one 16-byte "function" (int3 padding after a ret) per code export.
    text = _Blob(SECTION_ALIGNMENT)
    text.add(b"\xc3" + b"\xcc" * 15)  # DllMain
    code_rvas = [text.add(b"\xc3" + b"\xcc" * 15, 16) for _ in exports]
    text.data += bytes(text_padding)

    # .data: data exports, then per delay-loaded DLL its module handle and address table.
    data = _Blob(_next_rva(text))
    data.add(bytes(8))
    data_rvas = [data.add(bytes(8), 8) for _ in exports]
    delay_slots = []
    for entry in delay_imports:
        hmod = data.add(bytes(thunk_size), 8)
        iat = data.add(bytes(thunk_size * (len(entry.names) + 1)), 8)
        delay_slots.append((hmod, iat))

    # .rdata: import directory, delay-load directory, their tables and strings.
    rdata = _Blob(_next_rva(data))
    descriptors_size = _IMPORT_DESCRIPTOR.size * (len(imports) + 1)
    import_dir = rdata.add(bytes(descriptors_size)) if imports and terminate_imports else 0
    delay_dir = 0
    if delay_imports:
        delay_dir = rdata.add(bytes(_DELAY_DESCRIPTOR.size * (len(delay_imports) + 1)))

    def lookup_table(names: Sequence[str | int], va: bool) -> int:
        values = []
        for name in names:
            if isinstance(name, int):
                values.append(ordinal_flag | name)
            else:
                hint_name = rdata.add(struct.pack("<H", 0) + name.encode() + b"\0", 2)
                values.append(hint_name + image_base if va else hint_name)
        return rdata.add(b"".join(struct.pack(thunk, v) for v in [*values, 0]), thunk_size)

    import_fields = []
    for entry in imports:
        lookup = lookup_table(entry.names, va=False)
        address = rdata.add(bytes(rdata.data[lookup - rdata.rva :]), thunk_size)
        name = rdata.add(entry.dll.encode() + b"\0", 2)
        import_fields.append((lookup, 0, 0, name, address))
    for index, (entry, (hmod, iat)) in enumerate(zip(delay_imports, delay_slots, strict=True)):
        name_table = lookup_table(entry.names, va=delay_va_based)
        name = rdata.add(entry.dll.encode() + b"\0", 2)
        fields = [1, name, hmod, iat, name_table, 0, 0, 0]
        if delay_va_based:
            fields = [0] + [v + image_base if v else 0 for v in fields[1:]]
        rdata.put(delay_dir + index * _DELAY_DESCRIPTOR.size, "<8I", *fields)

    # Exports: directory, address table, name pointers, ordinals, strings (one contiguous run).
    export_dir = export_size = 0
    if exports and not separate_edata:
        export_dir, export_size = _exports(
            rdata, exports, name=export_name, base=export_base, code=code_rvas, data=data_rvas
        )
    if rdata_tail:
        rvas["tail"] = rdata.add(rdata_tail, 1)
    if imports and not terminate_imports:
        import_dir = rdata.add(bytes(descriptors_size - _IMPORT_DESCRIPTOR.size))
    for index, values in enumerate(import_fields):
        rdata.put(import_dir + index * _IMPORT_DESCRIPTOR.size, "<5I", *values)

    read_only = IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ
    planned = [
        _Planned(".text", text, IMAGE_SCN_CNT_CODE | IMAGE_SCN_MEM_EXECUTE | IMAGE_SCN_MEM_READ),
        _Planned(".data", data, read_only | IMAGE_SCN_MEM_WRITE),
        _Planned(".rdata", rdata, read_only),
    ]
    if exports and separate_edata:
        edata = _Blob(_next_rva(rdata))
        export_dir, export_size = _exports(
            edata, exports, name=export_name, base=export_base, code=code_rvas, data=data_rvas
        )
        planned.append(_Planned(".edata", edata, read_only))
    next_rva = _next_rva(planned[-1].blob)
    for extra in extra_sections:
        blob = _Blob(next_rva)
        blob.data += extra.content
        virtual_size = len(extra.content) if extra.virtual_size is None else extra.virtual_size
        flags = IMAGE_SCN_CNT_INITIALIZED_DATA if extra.raw else IMAGE_SCN_CNT_UNINITIALIZED_DATA
        flags |= IMAGE_SCN_MEM_READ
        if extra.flags is not None:
            flags = extra.flags
        planned.append(_Planned(extra.name, blob, flags, virtual_size, raw=extra.raw))
        next_rva = align(next_rva + max(virtual_size, len(extra.content), 1), SECTION_ALIGNMENT)
    rvas.update(imports=import_dir, delay=delay_dir, exports=export_dir)

    directories = [(0, 0)] * _DIRECTORIES
    if export_dir:
        directories[IMAGE_DIRECTORY_ENTRY_EXPORT] = (export_dir, export_size)
    if import_dir:
        directories[IMAGE_DIRECTORY_ENTRY_IMPORT] = (import_dir, descriptors_size)
    if delay_dir:
        size = _DELAY_DESCRIPTOR.size * (len(delay_imports) + 1)
        directories[IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT] = (delay_dir, size)
    return _assemble(
        bits=bits,
        machine=machine,
        dll=dll,
        image_base=image_base,
        planned=planned,
        directories=directories[:number_of_rva_and_sizes],
        declared_directories=number_of_rva_and_sizes,
        coff_symbols=coff_symbols,
        rvas=rvas,
    )


def _exports(
    blob: _Blob,
    exports: Sequence[Export],
    *,
    name: str | None,
    base: int,
    code: list[int],
    data: list[int],
) -> tuple[int, int]:
    """Write an export directory and its tables into ``blob``; return (RVA, size)."""
    directory = blob.add(bytes(_EXPORT_DIRECTORY.size))
    functions = blob.add(bytes(4 * len(exports)))
    named = sorted((e.name, slot) for slot, e in enumerate(exports) if e.name is not None)
    pointers = blob.add(bytes(4 * len(named)))
    ordinals = blob.add(bytes(2 * len(named)), 2)
    dll_name = blob.add(name.encode() + b"\0", 1) if name is not None else 0
    for index, (export, slot) in enumerate(named):
        blob.put(pointers + 4 * index, "<I", blob.add(export.encode() + b"\0", 1))
        blob.put(ordinals + 2 * index, "<H", slot)
    forwarders = {
        slot: blob.add(e.forwarder.encode() + b"\0", 1)
        for slot, e in enumerate(exports)
        if e.forwarder is not None
    }
    for slot, entry in enumerate(exports):
        if entry.gap:
            address = 0
        elif entry.forwarder is not None:
            address = forwarders[slot]
        else:
            address = data[slot] if entry.data else code[slot]
        blob.put(functions + 4 * slot, "<I", address)
    size = blob.end - directory
    blob.put(
        directory,
        "<IIHHIIIIIII",
        0,
        0,
        0,
        0,
        dll_name,
        base,
        len(exports),
        len(named),
        functions,
        pointers,
        ordinals,
    )
    return directory, size


def _assemble(
    *,
    bits: int,
    machine: int,
    dll: bool,
    image_base: int,
    planned: list[_Planned],
    directories: list[tuple[int, int]],
    declared_directories: int,
    coff_symbols: Sequence[CoffSymbol],
    rvas: dict[str, int],
) -> PeImage:
    optional_size = (96 if bits == 32 else 112) + 8 * len(directories)
    section_table = E_LFANEW + 4 + _FILE_HEADER.size + optional_size
    size_of_headers = align(section_table + _SECTION_HEADER.size * len(planned), FILE_ALIGNMENT)

    sections: dict[str, SectionInfo] = {}
    raw_offset = size_of_headers
    bodies = []
    for index, section in enumerate(planned):
        content = bytes(section.blob.data) if section.raw else b""
        virtual_size = len(content) if section.virtual_size is None else section.virtual_size
        raw_size = align(len(content), FILE_ALIGNMENT)
        sections[section.name] = SectionInfo(
            section.name,
            section.blob.rva,
            virtual_size,
            raw_offset if raw_size else 0,
            raw_size,
            section_table + index * _SECTION_HEADER.size,
        )
        bodies.append(content + bytes(raw_size - len(content)))
        raw_offset += raw_size
    image_end = max((s.rva + max(s.virtual_size, 1) for s in sections.values()), default=0)
    size_of_image = align(max(image_end, size_of_headers), SECTION_ALIGNMENT)

    symbol_table = 0
    symbols_blob = b""
    if coff_symbols:
        symbol_table = raw_offset
        strings = bytearray()
        records = []
        for symbol in coff_symbols:
            encoded = symbol.name.encode()
            if len(encoded) <= 8:
                name = encoded.ljust(8, b"\0")
            else:
                name = struct.pack("<II", 0, 4 + len(strings))
                strings += encoded + b"\0"
            records.append(
                _COFF_SYMBOL.pack(name, 0, symbol.section, symbol.type, symbol.storage, symbol.aux)
            )
            records.extend(bytes(_COFF_SYMBOL.size) for _ in range(symbol.aux))
        symbols_blob = b"".join(records) + struct.pack("<I", 4 + len(strings)) + bytes(strings)
    record_count = sum(1 + s.aux for s in coff_symbols)

    characteristics = IMAGE_FILE_EXECUTABLE_IMAGE
    characteristics |= IMAGE_FILE_LARGE_ADDRESS_AWARE if bits == 64 else IMAGE_FILE_32BIT_MACHINE
    if dll:
        characteristics |= IMAGE_FILE_DLL
    dos = bytearray(E_LFANEW)
    dos[0:2] = b"MZ"
    struct.pack_into("<H", dos, 0x18, _DOS_HEADER_SIZE)  # e_lfarlc: a new header follows
    struct.pack_into("<I", dos, 0x3C, E_LFANEW)
    file_header = _FILE_HEADER.pack(
        machine, len(planned), 0, symbol_table, record_count, optional_size, characteristics
    )
    text_size = len(planned[0].blob.data)
    common = (SECTION_ALIGNMENT, FILE_ALIGNMENT, 6, 0, 0, 0, 6, 0, 0, size_of_image)
    if bits == 64:
        optional = struct.pack(
            "<HBBIIIII" + "QIIHHHHHHIIIIHHQQQQII",
            0x20B, 14, 0, text_size, 0, 0, SECTION_ALIGNMENT, SECTION_ALIGNMENT,
            image_base, *common, size_of_headers, 0, 2, 0x160,
            0x100000, 0x1000, 0x100000, 0x1000, 0, declared_directories,
        )  # fmt: skip
    else:
        optional = struct.pack(
            "<HBBIIIIII" + "IIIHHHHHHIIIIHHIIIIII",
            0x10B, 14, 0, text_size, 0, 0, SECTION_ALIGNMENT, SECTION_ALIGNMENT, 0,
            image_base, *common, size_of_headers, 0, 2, 0x140,
            0x100000, 0x1000, 0x100000, 0x1000, 0, declared_directories,
        )  # fmt: skip
    optional += b"".join(struct.pack("<II", rva, size) for rva, size in directories)
    table = b""
    for section, info in zip(planned, sections.values(), strict=True):
        table += _SECTION_HEADER.pack(
            section.name.encode()[:8],
            info.virtual_size,
            info.rva,
            info.raw_size,
            info.raw_offset,
            0,
            0,
            0,
            0,
            section.flags,
        )
    headers = bytes(dos) + b"PE\0\0" + file_header + optional + table
    headers += bytes(size_of_headers - len(headers))
    image = headers + b"".join(bodies) + symbols_blob
    offsets = {
        "e_lfanew": 0x3C,
        "signature": E_LFANEW,
        "file_header": E_LFANEW + 4,
        "optional_header": E_LFANEW + 4 + _FILE_HEADER.size,
        "directories": E_LFANEW + 4 + _FILE_HEADER.size + (96 if bits == 32 else 112),
        "sections": section_table,
        "symbol_table": symbol_table,
        "size_of_headers": size_of_headers,
    }
    return PeImage(image, bits, offsets, sections, rvas)
