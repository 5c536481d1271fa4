"""Windows PE/COFF image reader (DLLs, ``.pyd`` extension modules and ``.exe`` programs), in
pure Python.

Reads only what the audit needs: the MS-DOS stub's ``e_lfanew``, the PE signature, the COFF
file header, the optional header (PE32 and PE32+) with its data directories, the section table,
and then the import, delay-load import and export directories (``Library.rodata`` comes from the
section table alone). Imports come with the DLL they are bound to (``Symbol.library``); an import
by ordinal is named ``#<ordinal>``, and so is an export that has no name.

Every table is parsed from whole sections read into memory, one read per section, in ascending
file order: a streamed wheel member (``ByteSource.sequential``) then serves them in one pass
without spilling to a temporary file. A DLL's ``.rdata`` (which holds all three directories
with MSVC) may be tens of megabytes; it is dropped once the names are decoded.

Reference: Microsoft "PE Format" specification (learn.microsoft.com/windows/win32/debug/pe-format),
sections "MS-DOS Stub (Image Only)", "Signature (Image Only)", "COFF File Header (Object and
Image)", "Optional Header (Image Only)", "Optional Header Data Directories (Image Only)",
"Section Table (Section Headers)", "The .edata Section (Image Only)", "The .idata Section",
"Delay-Load Import Tables (Image Only)" and "COFF Symbol Table"; the ``ImgDelayDescr`` layout and
its ``dlattrRva`` attribute are those of the Windows SDK's ``delayimp.h``.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from itertools import repeat
from pathlib import Path
from typing import NamedTuple

from torch_abi_audit.model import (
    BinaryFormat,
    Library,
    StaticSymbolTable,
    Symbol,
    SymbolBinding,
    SymbolTable,
    SymbolType,
    SymbolVisibility,
    merge_ranges,
)
from torch_abi_audit.readers.errors import BinaryReadError, UnsupportedFormatError
from torch_abi_audit.readers.source import ByteSource, file_bytes

# "MS-DOS Stub (Image Only)" and "Signature (Image Only)".
IMAGE_DOS_SIGNATURE = b"MZ"
IMAGE_NT_SIGNATURE = b"PE\0\0"
_E_LFARLC_OFFSET = 0x18  # MS-DOS relocation table offset; >= 0x40 when a new header follows
_E_LFANEW_OFFSET = 0x3C
_DOS_HEADER_SIZE = 0x40
# Older "new executable" headers that e_lfanew may point at instead (Win16 NE, OS/2 LE/LX).
_OTHER_NEW_HEADERS = {b"NE": "16-bit Windows (NE)", b"LE": "OS/2 or VxD (LE)", b"LX": "OS/2 (LX)"}

# "COFF File Header (Object and Image)": Machine, NumberOfSections, TimeDateStamp,
# PointerToSymbolTable, NumberOfSymbols, SizeOfOptionalHeader, Characteristics.
_FILE_HEADER = struct.Struct("<HHIIIHH")
IMAGE_FILE_DLL = 0x2000

# "Machine Types", named as wheel platform tags spell them.
IMAGE_FILE_MACHINE_I386 = 0x14C
IMAGE_FILE_MACHINE_ARMNT = 0x1C4
IMAGE_FILE_MACHINE_AMD64 = 0x8664
IMAGE_FILE_MACHINE_ARM64 = 0xAA64
_MACHINES = {
    IMAGE_FILE_MACHINE_AMD64: "x86_64",
    IMAGE_FILE_MACHINE_I386: "i386",
    IMAGE_FILE_MACHINE_ARM64: "arm64",
    IMAGE_FILE_MACHINE_ARMNT: "arm",
}

# "Optional Header (Image Only)": magic, and the offsets of the fields the reader uses in the
# PE32 and PE32+ layouts (ImageBase, SizeOfHeaders, NumberOfRvaAndSizes, the data directories).
IMAGE_NT_OPTIONAL_HDR32_MAGIC = 0x10B
IMAGE_NT_OPTIONAL_HDR64_MAGIC = 0x20B


class _OptionalLayout(NamedTuple):
    bits: int
    image_base: str  # struct format of ImageBase, read at offset 24 (PE32+) or 28 (PE32)
    image_base_offset: int
    rva_count_offset: int  # NumberOfRvaAndSizes
    directories_offset: int  # the first IMAGE_DATA_DIRECTORY


_OPTIONAL_LAYOUTS = {
    IMAGE_NT_OPTIONAL_HDR32_MAGIC: _OptionalLayout(32, "<I", 28, 92, 96),
    IMAGE_NT_OPTIONAL_HDR64_MAGIC: _OptionalLayout(64, "<Q", 24, 108, 112),
}
_SIZE_OF_HEADERS_OFFSET = 60  # the same in both layouts

# "Optional Header Data Directories (Image Only)".
IMAGE_NUMBEROF_DIRECTORY_ENTRIES = 16
IMAGE_DIRECTORY_ENTRY_EXPORT = 0
IMAGE_DIRECTORY_ENTRY_IMPORT = 1
IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT = 13
_DATA_DIRECTORY = struct.Struct("<II")  # VirtualAddress, Size

# "Section Table (Section Headers)": Name, VirtualSize, VirtualAddress, SizeOfRawData,
# PointerToRawData, PointerToRelocations, PointerToLinenumbers, NumberOfRelocations,
# NumberOfLinenumbers, Characteristics.
_SECTION_HEADER = struct.Struct("<8sIIIIIIHHI")
IMAGE_SCN_CNT_CODE = 0x00000020
IMAGE_SCN_CNT_INITIALIZED_DATA = 0x00000040
IMAGE_SCN_MEM_EXECUTE = 0x20000000
IMAGE_SCN_MEM_WRITE = 0x80000000

# ".idata Section": Import Directory Table entry (OriginalFirstThunk alias Import Lookup Table
# RVA, TimeDateStamp, ForwarderChain, Name RVA, FirstThunk alias Import Address Table RVA).
_IMPORT_DESCRIPTOR = struct.Struct("<IIIII")
IMAGE_ORDINAL_FLAG32 = 1 << 31
IMAGE_ORDINAL_FLAG64 = 1 << 63
_ORDINAL_MASK = 0xFFFF
_HINT_NAME_RVA_MASK = 0x7FFFFFFF  # bits 30-0 of a by-name lookup entry
_HINT_SIZE = 2

# "Delay-Load Import Tables (Image Only)" / delayimp.h ImgDelayDescr: grAttrs, rvaDLLName,
# rvaHmod, rvaIAT, rvaINT, rvaBoundIAT, rvaUnloadIAT, dwTimeStamp.
_DELAY_DESCRIPTOR = struct.Struct("<8I")
DLATTR_RVA = 0x1  # the descriptor holds RVAs (VC++ 7.0 and later), not VAs

# ".edata Section": Export Directory Table (Export Flags, Time/Date Stamp, Major/Minor Version,
# Name RVA, Ordinal Base, Address Table Entries, Number of Name Pointers, Export Address Table
# RVA, Name Pointer RVA, Ordinal Table RVA).
_EXPORT_DIRECTORY = struct.Struct("<IIHHIIIIIII")

# "COFF Symbol Table": Name, Value, SectionNumber, Type, StorageClass, NumberOfAuxSymbols.
_COFF_SYMBOL = struct.Struct("<8sIhHBB")
IMAGE_SYM_CLASS_STATIC = 3
IMAGE_SYM_DTYPE_FUNCTION = 2

#: Longest name (DLL, import, export, forwarder) accepted, in bytes.
MAX_NAME_LENGTH = 4096
# Entries unpacked per step when scanning a zero-terminated thunk array.
_THUNK_CHUNK = 4096


class _Section(NamedTuple):
    """One section header, reduced to what mapping RVAs needs."""

    name: str
    virtual_address: int
    extent: int  # bytes mapped at virtual_address: VirtualSize, or SizeOfRawData when that is 0
    raw_offset: int  # PointerToRawData
    raw_size: int  # file-backed bytes: min(SizeOfRawData, extent); the rest reads as zeros
    characteristics: int


class _Region:
    """The bytes of one section (or of the headers) as mapped at its RVA.

    ``data`` holds the file-backed part; RVAs from ``start + len(data)`` up to ``end`` are the
    zero-filled rest of the section ("Section Table": "If this value is greater than
    SizeOfRawData, the section is zero-padded").
    """

    __slots__ = ("data", "end", "name", "start")

    def __init__(self, name: str, start: int, end: int, data: bytes) -> None:
        self.name = name
        self.start = start
        self.end = end
        self.data = data

    @property
    def data_end(self) -> int:
        """RVA just past the file-backed bytes."""
        return self.start + len(self.data)


class PeSymbols(SymbolTable):
    """Imports or exports of a PE image: names decoded up front, :class:`Symbol` tuples on use.

    The names are needed by every audit (and decoding them validates the file), but tens of
    thousands of tuples for ``torch_cpu.dll``'s exports are only built when somebody asks.
    ``types`` gives the types of the entries at the indices it is passed (default: NOTYPE).
    """

    __slots__ = ("_defined", "_libraries", "_names", "_symbols", "_types")

    def __init__(
        self,
        names: list[str],
        *,
        defined: bool,
        libraries: list[str] | None = None,
        types: Callable[[Sequence[int]], list[SymbolType]] | None = None,
    ) -> None:
        self._names = names
        self._defined = defined
        self._libraries = libraries
        self._types = types
        self._symbols: tuple[Symbol, ...] | None = None

    def _build(self, indices: Iterable[int] | None) -> tuple[Symbol, ...]:
        wanted = range(len(self._names)) if indices is None else list(indices)
        rows = zip(
            [self._names[i] for i in wanted],
            repeat(self._defined),
            repeat(SymbolBinding.GLOBAL),
            self._types(wanted) if self._types is not None else repeat(SymbolType.NOTYPE),
            repeat(SymbolVisibility.DEFAULT),
            repeat(None),
            repeat(False),
            [self._libraries[i] for i in wanted] if self._libraries is not None else repeat(None),
        )
        # tuple.__new__ skips the generated NamedTuple __new__ and its argument handling.
        return tuple(map(partial(tuple.__new__, Symbol), rows))

    def symbols(self) -> tuple[Symbol, ...]:
        if self._symbols is None:
            self._symbols = self._build(None)
        return self._symbols

    def names(self) -> frozenset[str]:
        return frozenset(self._names)

    def with_prefix(self, *prefixes: str) -> tuple[Symbol, ...]:
        if self._symbols is not None:
            return super().with_prefix(*prefixes)
        return self._build(i for i, name in enumerate(self._names) if name.startswith(prefixes))


class _Imports(NamedTuple):
    """The imports of one directory (normal or delay-load), in descriptor order."""

    dlls: list[str]
    names: list[str]
    libraries: list[str]

    def add(self, dll: str, names: list[str]) -> None:
        """Record the names imported from one DLL."""
        self.dlls.append(dll)
        self.names.extend(names)
        self.libraries.extend([dll] * len(names))


class _PeFile:
    """Parses one PE image; :meth:`library` builds the format-neutral model."""

    def __init__(self, path: Path, source: ByteSource) -> None:
        self.path = path
        self.source = source
        self._regions: dict[int, _Region] = {}
        self._headers_region: _Region | None = None
        self._strings: dict[int, str] = {}
        self._thunk_arrays: dict[int, list[int]] = {}
        self._section_starts: list[int] = []
        self._read_headers()
        # Every thunk array entry is a distinct slot of the file: more entries than the file
        # holds means lookup tables that overlap one another (a hostile file), not a big DLL.
        self._thunk_budget = source.size // self.thunk_size + 1

    # -- headers ------------------------------------------------------------------------------

    def _read_headers(self) -> None:
        source = self.source
        if source.size < _DOS_HEADER_SIZE:
            raise BinaryReadError(
                f"file of {source.size} bytes is too short for an MS-DOS header: truncated"
            )
        dos = source.read(0, _DOS_HEADER_SIZE, "MS-DOS header")
        if dos[:2] != IMAGE_DOS_SIGNATURE:
            raise BinaryReadError("not a PE file (no MZ signature)")
        (e_lfanew,) = struct.unpack_from("<I", dos, _E_LFANEW_OFFSET)
        headers_at = e_lfanew + len(IMAGE_NT_SIGNATURE) + _FILE_HEADER.size
        if headers_at > source.size:
            raise BinaryReadError(
                f"e_lfanew ({e_lfanew:#x}) points past the end of the {source.size}-byte file: "
                "truncated or corrupt"
            )
        signature = source.read(e_lfanew, len(IMAGE_NT_SIGNATURE), "PE signature")
        if signature != IMAGE_NT_SIGNATURE:
            self._not_pe(dos, e_lfanew, signature)
        (
            self.machine,
            number_of_sections,
            _timestamp,
            self.symbol_table_offset,
            self.symbol_count,
            optional_size,
            self.characteristics,
        ) = _FILE_HEADER.unpack(
            source.read(e_lfanew + len(IMAGE_NT_SIGNATURE), _FILE_HEADER.size, "COFF file header")
        )
        optional_at = headers_at
        self._read_optional_header(optional_at, optional_size)
        self.sections = self._read_sections(optional_at + optional_size, number_of_sections)

    @staticmethod
    def _not_pe(dos: bytes, e_lfanew: int, signature: bytes) -> None:
        """Explain an MZ file whose ``e_lfanew`` does not lead to a PE signature."""
        kind = _OTHER_NEW_HEADERS.get(signature[:2])
        if kind is not None:
            raise UnsupportedFormatError(f"{kind} executable, not a PE image")
        (e_lfarlc,) = struct.unpack_from("<H", dos, _E_LFARLC_OFFSET)
        if e_lfarlc < _DOS_HEADER_SIZE:
            # A plain MS-DOS program: its header has no room for e_lfanew, which is then code
            # or relocations ("MS-DOS Stub": only an image's stub points at a PE header).
            raise UnsupportedFormatError("MS-DOS program without a PE header, not a PE image")
        raise BinaryReadError(f"no PE signature at e_lfanew ({e_lfanew:#x}): corrupt PE file")

    def _read_optional_header(self, offset: int, size: int) -> None:
        if size < 2:
            raise BinaryReadError(
                f"PE image without an optional header (SizeOfOptionalHeader {size})"
            )
        raw = self.source.read(offset, size, "optional header")
        (magic,) = struct.unpack_from("<H", raw, 0)
        layout = _OPTIONAL_LAYOUTS.get(magic)
        if layout is None:
            raise BinaryReadError(f"unknown optional header magic {magic:#x} (not PE32 or PE32+)")
        if size < layout.directories_offset:
            kind = "PE32+" if layout.bits == 64 else "PE32"
            raise BinaryReadError(
                f"SizeOfOptionalHeader {size} is too small for a {kind} optional header "
                f"({layout.directories_offset} bytes before the data directories)"
            )
        self.bits = layout.bits
        self.thunk_size = layout.bits // 8
        (image_base,) = struct.unpack_from(layout.image_base, raw, layout.image_base_offset)
        (size_of_headers,) = struct.unpack_from("<I", raw, _SIZE_OF_HEADERS_OFFSET)
        self.image_base: int = image_base
        self.size_of_headers: int = size_of_headers
        (declared,) = struct.unpack_from("<I", raw, layout.rva_count_offset)
        count = min(declared, IMAGE_NUMBEROF_DIRECTORY_ENTRIES)
        room = (size - layout.directories_offset) // _DATA_DIRECTORY.size
        if count > room:
            raise BinaryReadError(
                f"SizeOfOptionalHeader {size} leaves room for {room} data directories, but "
                f"NumberOfRvaAndSizes is {declared}: corrupt optional header"
            )
        self.directories = [
            _DATA_DIRECTORY.unpack_from(raw, layout.directories_offset + i * _DATA_DIRECTORY.size)
            for i in range(count)
        ]

    def _read_sections(self, offset: int, count: int) -> list[_Section]:
        length = count * _SECTION_HEADER.size
        if offset + length > self.source.size:
            raise BinaryReadError(
                f"section table ({count} sections at {offset:#x}) extends past the end of the "
                f"{self.source.size}-byte file: truncated or corrupt"
            )
        raw = self.source.read(offset, length, "section table")
        sections = []
        end = 0
        for fields in _SECTION_HEADER.iter_unpack(raw):
            name, virtual_size, virtual_address, raw_size, raw_offset, *_, characteristics = fields
            extent = virtual_size or raw_size
            file_backed = min(raw_size, extent) if raw_offset else 0
            section = _Section(
                name.rstrip(b"\0").decode("ascii", "backslashreplace"),
                virtual_address,
                extent,
                raw_offset,
                file_backed,
                characteristics,
            )
            # "Section Table": in an image, sections are in ascending order of their virtual
            # addresses, and do not overlap (the loader refuses anything else). RVA lookups
            # rely on it (a bisection, whatever the number of sections).
            # The loader maps every section's file-backed bytes: a section whose bytes run past
            # the end of the file means the file was cut short, even when the tables read here
            # lie before the cut. (Only the alignment padding of the last one may be missing.)
            if file_backed and raw_offset + file_backed > self.source.size:
                raise BinaryReadError(
                    f"section {section.name!r} ({file_backed} bytes at {raw_offset:#x}) extends "
                    f"past the end of the {self.source.size}-byte file: truncated or corrupt"
                )
            if virtual_address < end:
                raise BinaryReadError(
                    f"section {section.name!r} at RVA {virtual_address:#x} overlaps the one "
                    "before it or is out of order: corrupt section table"
                )
            end = virtual_address + extent
            sections.append(section)
        self._section_starts = [s.virtual_address for s in sections]
        return sections

    def directory(self, index: int) -> tuple[int, int]:
        """(RVA, size) of data directory ``index``; (0, 0) when the image has none."""
        if index < len(self.directories):
            rva, size = self.directories[index]
            return int(rva), int(size)
        return 0, 0

    # -- mapping RVAs -------------------------------------------------------------------------

    def _section_index(self, rva: int) -> int | None:
        index = bisect.bisect_right(self._section_starts, rva) - 1
        if index >= 0:
            section = self.sections[index]
            if rva < section.virtual_address + section.extent:
                return index
        return None

    def prefetch(self, rvas: Iterable[int]) -> None:
        """Read the sections holding ``rvas``, one read each, in ascending file order."""
        indices = {i for i in (self._section_index(rva) for rva in rvas if rva) if i is not None}
        for index in sorted(indices, key=lambda i: self.sections[i].raw_offset):
            self._section_region(index)

    def _section_region(self, index: int) -> _Region:
        region = self._regions.get(index)
        if region is None:
            section = self.sections[index]
            data = b""
            if section.raw_size:
                data = self.source.read(
                    section.raw_offset, section.raw_size, f"section {section.name!r}"
                )
            start = section.virtual_address
            region = _Region(section.name, start, start + section.extent, data)
            self._regions[index] = region
        return region

    def region_at(self, rva: int, what: str) -> _Region:
        """The in-memory section (or headers) that ``rva`` falls in."""
        index = self._section_index(rva)
        if index is not None:
            return self._section_region(index)
        headers_end = min(self.size_of_headers, self.source.size)
        if 0 <= rva < headers_end:
            if self._headers_region is None:
                data = self.source.read(0, headers_end, "headers")
                self._headers_region = _Region("headers", 0, headers_end, data)
            return self._headers_region
        raise BinaryReadError(f"{what} (RVA {rva:#x}) is outside every section of the image")

    def bytes_at(self, rva: int, length: int, what: str, *, file_backed: bool = False) -> bytes:
        """``length`` bytes at ``rva``, all within one section.

        Past the section's file data they read as zeros, unless ``file_backed`` (tables whose
        length comes from a count in the file must be in the file: a count of four billion in a
        huge zero-filled section must not allocate gigabytes).
        """
        region = self.region_at(rva, what)
        if rva + length > region.end:
            raise BinaryReadError(
                f"{what} (RVA {rva:#x}, {length} bytes) runs past the end of section "
                f"{region.name!r}"
            )
        offset = rva - region.start
        chunk = region.data[offset : offset + length]
        if len(chunk) < length:
            if file_backed:
                raise BinaryReadError(
                    f"{what} (RVA {rva:#x}, {length} bytes) runs past the file data of section "
                    f"{region.name!r}"
                )
            chunk += bytes(length - len(chunk))
        return chunk

    def string_at(self, rva: int, what: str) -> str:
        """The NUL-terminated string at ``rva`` (at most :data:`MAX_NAME_LENGTH` bytes)."""
        cached = self._strings.get(rva)
        if cached is not None:
            return cached
        region = self.region_at(rva, what)
        data = region.data
        offset = rva - region.start
        end = data.find(b"\0", offset, offset + MAX_NAME_LENGTH + 1)
        if end < 0:
            available = len(data) - offset
            if available > MAX_NAME_LENGTH:
                raise BinaryReadError(
                    f"{what} at RVA {rva:#x} is longer than {MAX_NAME_LENGTH} bytes "
                    "(no terminating NUL)"
                )
            if region.end <= region.data_end:
                raise BinaryReadError(
                    f"{what} at RVA {rva:#x} is not NUL-terminated within section {region.name!r}"
                )
            end = max(offset, len(data))  # the section's zero fill terminates it
        text = data[offset:end].decode("utf-8", "backslashreplace")
        self._strings[rva] = text
        return text

    def thunks(self, rva: int, what: str) -> list[int]:
        """The entries of the zero-terminated lookup table at ``rva`` (".idata Section":
        "Import Lookup Table"), without the terminator."""
        values = self._thunk_arrays.get(rva)
        if values is None:
            values = self._scan_thunks(rva, what)
            self._thunk_arrays[rva] = values
        # Charged on every use: descriptors sharing one table must not multiply the work either.
        self._thunk_budget -= len(values)
        if self._thunk_budget < 0:
            raise BinaryReadError(
                "import lookup tables hold more entries than the file has room for "
                "(overlapping or repeated import descriptors): corrupt import data"
            )
        return values

    def _scan_thunks(self, rva: int, what: str) -> list[int]:
        region = self.region_at(rva, what)
        data = region.data
        size = self.thunk_size
        code = "Q" if size == 8 else "I"
        limit = region.end - region.start  # relative to the region
        position = rva - region.start
        values: list[int] = []
        while True:
            if position + size > limit:
                raise BinaryReadError(
                    f"{what} at RVA {rva:#x} runs off the end of section {region.name!r} "
                    "without a terminating zero entry"
                )
            available = len(data) - position
            if available <= 0:
                break  # the zero-filled rest of the section terminates it
            if available < size:  # the last file-backed bytes, then zeros
                value = int.from_bytes(data[position:] + bytes(size - available), "little")
                if value == 0:
                    break
                values.append(value)
                position += size
                continue
            count = min(_THUNK_CHUNK, available // size, (limit - position) // size)
            chunk = struct.unpack_from(f"<{count}{code}", data, position)
            if 0 in chunk:
                values.extend(chunk[: chunk.index(0)])
                break
            values.extend(chunk)
            position += count * size
            if len(values) > self._thunk_budget:
                break  # over budget: thunks() reports it
        return values

    # -- imports ------------------------------------------------------------------------------

    def _symbol_names(self, rva: int, what: str, dll: str, *, va_based: bool) -> list[str]:
        """Names of the imports listed by the lookup table at ``rva`` (".idata Section":
        "Import Lookup Table", "Hint/Name Table")."""
        ordinal_flag = IMAGE_ORDINAL_FLAG64 if self.bits == 64 else IMAGE_ORDINAL_FLAG32
        names = []
        for value in self.thunks(rva, f"{what} of {dll}"):
            if value & ordinal_flag:
                names.append(f"#{value & _ORDINAL_MASK}")
                continue
            hint_name = value - self.image_base if va_based else value
            if not 0 <= hint_name <= _HINT_NAME_RVA_MASK:
                raise BinaryReadError(
                    f"{what} of {dll}: entry {value:#x} is neither an ordinal nor a hint/name "
                    "RVA (reserved bits set)"
                )
            names.append(self.string_at(hint_name + _HINT_SIZE, f"import name from {dll}"))
        return names

    def _dll_name(self, rva: int, what: str) -> str:
        name = self.string_at(rva, what) if rva else ""
        if not name:
            raise BinaryReadError(f"{what} is empty")
        return name

    def _descriptors(
        self, directory: int, layout: struct.Struct, what: str
    ) -> Iterator[tuple[int, tuple[int, ...]]]:
        """``(index, fields)`` of each entry of a descriptor table, up to its all-zero
        terminator, which must lie in the section the table starts in."""
        rva, _size = self.directory(directory)
        if not rva:
            return
        region = self.region_at(rva, what)
        for index in range((region.end - rva) // layout.size):
            at = rva + index * layout.size
            fields = layout.unpack(self.bytes_at(at, layout.size, f"{what} entry"))
            if not any(fields):
                return
            yield index, fields
        raise BinaryReadError(
            f"{what} at RVA {rva:#x} runs off the end of section {region.name!r} "
            "without a terminating null entry"
        )

    def imports(self) -> _Imports:
        """The Import Directory Table (".idata Section"), terminated by an all-zero entry."""
        result = _Imports([], [], [])
        entries = self._descriptors(
            IMAGE_DIRECTORY_ENTRY_IMPORT, _IMPORT_DESCRIPTOR, "import directory"
        )
        for index, fields in entries:
            lookup, _timestamp, _forwarder_chain, name_rva, address_table = fields
            dll = self._dll_name(name_rva, f"DLL name of import directory entry {index}")
            table = lookup or address_table
            if not table:
                raise BinaryReadError(f"import directory entry for {dll} has no lookup table")
            names = self._symbol_names(table, "import lookup table", dll, va_based=False)
            result.add(dll, names)
        return result

    def delay_imports(self) -> _Imports:
        """The Delay-Load Directory Table ("Delay-Load Import Tables"), terminated by an
        all-zero entry.

        Descriptors without ``dlattrRva`` (Visual C++ 6) hold virtual addresses: in a PE32 image
        they are turned into RVAs by subtracting ImageBase, as are their name table entries.
        A PE32+ image cannot hold 64-bit addresses in these 32-bit fields: its fields are
        always RVAs.
        """
        result = _Imports([], [], [])
        entries = self._descriptors(
            IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT, _DELAY_DESCRIPTOR, "delay-load directory"
        )
        for index, fields in entries:
            attributes, name_at, _hmod, _iat, name_table, *_ = fields
            va_based = not attributes & DLATTR_RVA and self.bits == 32
            what = f"delay-load directory entry {index}"
            if va_based:
                name_at = self._va_to_rva(name_at, f"DLL name of {what}")
                name_table = self._va_to_rva(name_table, f"import name table of {what}")
            dll = self._dll_name(name_at, f"DLL name of {what}")
            if not name_table:
                raise BinaryReadError(f"delay-load entry for {dll} has no import name table")
            names = self._symbol_names(
                name_table, "delay import name table", dll, va_based=va_based
            )
            result.add(dll, names)
        return result

    def _va_to_rva(self, address: int, what: str) -> int:
        """The RVA of a virtual address (0 stays 0: no address)."""
        if not address:
            return 0
        if address < self.image_base:
            raise BinaryReadError(
                f"{what} ({address:#x}) is not an address inside the image "
                f"(ImageBase {self.image_base:#x})"
            )
        return address - self.image_base

    # -- exports ------------------------------------------------------------------------------

    def exports(self) -> tuple[PeSymbols, str | None]:
        """The export table (".edata Section") and the DLL name it records.

        Named exports come first, in Export Name Pointer Table order (sorted by the linker),
        then the exports that only have an ordinal, as ``#<ordinal>``. Forwarders (an Export
        Address Table entry inside the export directory) are exports like any other.
        """
        rva, size = self.directory(IMAGE_DIRECTORY_ENTRY_EXPORT)
        if not rva:
            return PeSymbols([], defined=True), None
        (
            _flags,
            _timestamp,
            _major,
            _minor,
            name_rva,
            base,
            function_count,
            name_count,
            functions_rva,
            names_rva,
            ordinals_rva,
        ) = _EXPORT_DIRECTORY.unpack(self.bytes_at(rva, _EXPORT_DIRECTORY.size, "export directory"))
        soname = self.string_at(name_rva, "export directory DLL name") if name_rva else None
        functions: tuple[int, ...] = ()
        if function_count:
            functions = struct.unpack(
                f"<{function_count}I",
                self.bytes_at(
                    functions_rva, 4 * function_count, "export address table", file_backed=True
                ),
            )
        names: list[str] = []
        addresses: list[int] = []
        named: set[int] = set()
        if name_count:
            pointers = struct.unpack(
                f"<{name_count}I",
                self.bytes_at(
                    names_rva, 4 * name_count, "export name pointer table", file_backed=True
                ),
            )
            ordinals = struct.unpack(
                f"<{name_count}H",
                self.bytes_at(
                    ordinals_rva, 2 * name_count, "export ordinal table", file_backed=True
                ),
            )
            if max(ordinals) >= function_count:
                raise BinaryReadError(
                    f"export ordinal table refers to entry {max(ordinals)} of a "
                    f"{function_count}-entry export address table"
                )
            decoded = self._export_names(pointers)
            for name, ordinal in zip(decoded, ordinals, strict=True):
                address = functions[ordinal]
                named.add(ordinal)
                if address:  # an empty slot exports nothing
                    names.append(name)
                    addresses.append(address)
        for index, address in enumerate(functions):
            if address and index not in named:
                names.append(f"#{index + base}")
                addresses.append(address)
        types = partial(self._export_types, addresses, rva, size)
        return PeSymbols(names, defined=True, types=types), soname

    def _export_names(self, pointers: tuple[int, ...]) -> list[str]:
        """Decode the names the Export Name Pointer Table points at.

        When every pointer lies in the file data of one section (as linkers lay them out), the
        names are cut out of it in list comprehensions; otherwise, or when one is bad, name by
        name, which reports the culprit.
        """
        region = self.region_at(min(pointers), "export name")
        if max(pointers) < region.data_end:
            data = region.data
            offsets = [p - region.start for p in pointers]
            find = data.find
            ends = [find(b"\0", o, o + MAX_NAME_LENGTH + 1) for o in offsets]
            if -1 not in ends:
                return [
                    data[o:e].decode("utf-8", "backslashreplace")
                    for o, e in zip(offsets, ends, strict=True)
                ]
        return [self.string_at(p, "export name") for p in pointers]

    def _export_types(
        self, addresses: list[int], directory_rva: int, directory_size: int, wanted: Sequence[int]
    ) -> list[SymbolType]:
        """FUNC for an export in a code section; NOTYPE for data and forwarders (for the
        exports at the ``wanted`` indices)."""
        spans = sorted(
            (s.virtual_address, s.virtual_address + s.extent)
            for s in self.sections
            if s.characteristics & (IMAGE_SCN_CNT_CODE | IMAGE_SCN_MEM_EXECUTE)
        )
        starts = [start for start, _end in spans]
        directory_end = directory_rva + directory_size
        types = []
        for address in [addresses[i] for i in wanted]:
            kind = SymbolType.NOTYPE
            if not directory_rva <= address < directory_end:
                at = bisect.bisect_right(starts, address) - 1
                if at >= 0 and address < spans[at][1]:
                    kind = SymbolType.FUNC
            types.append(kind)
        return types

    # -- COFF symbol table --------------------------------------------------------------------

    def local_symbols(self) -> tuple[Symbol, ...] | None:
        """The ``IMAGE_SYM_CLASS_STATIC`` entries of the COFF symbol table ("COFF Symbol
        Table"), which MinGW leaves in unstripped images; ``None`` when there is none (MSVC
        keeps symbols in PDB files)."""
        if not self.symbol_table_offset or not self.symbol_count:
            return None
        length = self.symbol_count * _COFF_SYMBOL.size
        raw = self.source.read(self.symbol_table_offset, length, "COFF symbol table")
        strings_at = self.symbol_table_offset + length
        strings = b""
        if strings_at + 4 <= self.source.size:
            (strings_size,) = struct.unpack("<I", self.source.read(strings_at, 4, "string table"))
            if strings_size > 4:
                strings = self.source.read(strings_at, strings_size, "COFF string table")
        found = []
        index = 0
        while index < self.symbol_count:
            name, _value, section, kind, storage, aux = _COFF_SYMBOL.unpack_from(
                raw, index * _COFF_SYMBOL.size
            )
            index += 1 + aux
            if storage != IMAGE_SYM_CLASS_STATIC or section <= 0:
                continue
            text = self._coff_name(name, strings)
            if aux and text.startswith("."):
                continue  # a section symbol (its auxiliary record is a section definition)
            derived = (kind >> 4) & 0x3
            found.append(
                Symbol(
                    text,
                    True,
                    SymbolBinding.LOCAL,
                    SymbolType.FUNC if derived == IMAGE_SYM_DTYPE_FUNCTION else SymbolType.NOTYPE,
                    SymbolVisibility.DEFAULT,
                )
            )
        return tuple(found)

    @staticmethod
    def _coff_name(name: bytes, strings: bytes) -> str:
        """A symbol name: 8 bytes inline, or (first four bytes zero) an offset into the string
        table ("Symbol Name Representation")."""
        if name[:4] == b"\0\0\0\0":
            (offset,) = struct.unpack_from("<I", name, 4)
            if not 4 <= offset < len(strings):
                raise BinaryReadError("a COFF symbol name points outside the string table")
            end = strings.find(b"\0", offset)
            if end < 0:
                raise BinaryReadError("a COFF symbol name is not NUL-terminated")
            raw = strings[offset:end]
        else:
            raw = name.split(b"\0", 1)[0]
        return raw.decode("utf-8", "backslashreplace")

    # -- the model ----------------------------------------------------------------------------

    def rodata(self) -> tuple[tuple[int, int], ...]:
        """(file offset, size) of the file-backed part of the read-only initialised data
        sections (``.rdata``): ``IMAGE_SCN_CNT_INITIALIZED_DATA`` without
        ``IMAGE_SCN_MEM_WRITE`` or ``IMAGE_SCN_MEM_EXECUTE``. The section table already
        checked that every section's file-backed bytes lie within the file."""
        return merge_ranges(
            (s.raw_offset, s.raw_size)
            for s in self.sections
            if s.characteristics & IMAGE_SCN_CNT_INITIALIZED_DATA
            and not s.characteristics & (IMAGE_SCN_MEM_WRITE | IMAGE_SCN_MEM_EXECUTE)
        )

    def library(self, *, local_symbols: bool) -> Library:
        directories = (
            IMAGE_DIRECTORY_ENTRY_EXPORT,
            IMAGE_DIRECTORY_ENTRY_IMPORT,
            IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT,
        )
        self.prefetch(self.directory(d)[0] for d in directories)
        exports, soname = self.exports()
        imports = self.imports()
        delayed = self.delay_imports()
        needed: list[str] = []
        seen: set[str] = set()
        for dll in imports.dlls + delayed.dlls:
            key = dll.lower()  # the Windows loader matches module names case-insensitively
            if key not in seen:
                seen.add(key)
                needed.append(dll)
        # A DLL that is only delay-loaded is loaded by the first call into it, not at load time.
        loaded_now = {dll.lower() for dll in imports.dlls}
        delay_only = tuple(dll for dll in needed if dll.lower() not in loaded_now)
        import_table: SymbolTable = StaticSymbolTable()
        if imports.names or delayed.names:
            import_table = PeSymbols(
                imports.names + delayed.names,
                defined=False,
                libraries=imports.libraries + delayed.libraries,
            )
        locals_ = self.local_symbols() if local_symbols else None
        # The names are decoded: release the section bytes and the lookup caches.
        self._regions.clear()
        self._headers_region = None
        self._strings.clear()
        self._thunk_arrays.clear()
        return Library(
            path=self.path,
            format=BinaryFormat.PE,
            machine=_MACHINES.get(self.machine, f"machine-{self.machine:#06x}"),
            bits=self.bits,
            byte_order="little",
            imports=import_table,
            exports=exports,
            needed=tuple(needed),
            soname=soname,
            local_symbols=locals_,
            rodata=self.rodata(),
            optional_needed=delay_only,
            executable=not self.characteristics & IMAGE_FILE_DLL,
        )


def parse_pe(source: ByteSource, path: Path, *, local_symbols: bool = False) -> Library:
    """Parse the PE DLL or executable whose bytes ``source`` gives (``path`` names it).

    Returns the format-neutral :class:`~torch_abi_audit.model.Library`: imports (with their
    DLLs) and delay-load imports, exports, ``needed`` (imported then delay-loaded DLLs),
    ``optional_needed`` (the DLLs that are only delay-loaded) and ``soname`` (the export
    directory's DLL name). An image without ``IMAGE_FILE_DLL`` (an ``.exe``) is read the same
    way and marked ``executable``. With ``local_symbols`` the COFF symbol table's static
    entries are read too, where the image has one.

    Raises :class:`BinaryReadError` for anything that is not a readable PE image,
    :class:`UnsupportedFormatError` for MS-DOS, NE and LE/LX executables.
    """
    try:
        return _PeFile(path, source).library(local_symbols=local_symbols)
    except (struct.error, ValueError, OverflowError, MemoryError, IndexError) as exc:
        raise BinaryReadError(f"corrupt PE structure ({exc})") from exc


def read_pe(path: Path, *, local_symbols: bool = False) -> Library:
    """Read the PE DLL or executable at ``path`` (see :func:`parse_pe`).

    Raises :class:`BinaryReadError` as :func:`parse_pe` does, and :class:`OSError` if the file
    cannot be opened.
    """
    with file_bytes(path) as source:
        return parse_pe(source, path, local_symbols=local_symbols)
