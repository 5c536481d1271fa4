"""Structure-aware mutants of ELF, Mach-O and PE libraries, for the fuzz tests.

A byte flip mostly lands in code or data, which no reader looks at. The mutants here change the
*fields* the readers trust: offsets, sizes, counts, indices, string offsets, table entries. Each
format has a small, independent and tolerant field map (:func:`elf_fields`, :func:`macho_fields`,
:func:`pe_fields`), written from the specifications, never from the product's readers:

* ELF (System V gABI, LSB symbol versioning, GNU hash): the ELF header, program headers, section
  headers, ``PT_DYNAMIC`` entries, ``.dynsym`` entries, hash table headers, version records;
  string tables as byte ranges.
* Mach-O (``loader.h``, ``fat.h``, ``nlist.h``, ``fixup-chains.h``): fat headers and arch
  records (32 and 64), the Mach header, every load command's fields (segments and sections,
  ``LC_SYMTAB``, ``LC_DYSYMTAB``, dylib and rpath commands, ``LC_DYLD_INFO``, linkedit data,
  build versions), the chained fixups header and imports, ``nlist`` entries; bind opcode
  streams and string tables as byte ranges.
* PE/COFF: the DOS ``e_lfanew``, the COFF header, the optional header and data directories,
  section headers, import and delay-import descriptors with their thunks, the export directory
  and its tables; names as byte ranges.

A :class:`Mutation` sets a field to a boundary value, moves it by a small or a power-of-two
delta, gives it any value, copies another field's value into it, flips one bit, overwrites a
byte range with hostile bytes (invalid UTF-8, control characters, no NUL), or cuts the file at a
field. :func:`mutate` applies several.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

#: How many entries of one table are mapped (enough to reach every code path, few enough that
#: the header fields keep a fair share of the mutations).
_TABLE_CAP = 24


@dataclass(frozen=True)
class Field:
    """``size`` bytes at ``offset`` holding an unsigned integer (``big`` endian or not), or,
    with ``size`` 0, the byte range ``offset .. offset + length`` (a string table, a name)."""

    name: str
    offset: int
    size: int
    big: bool = False
    length: int = 0


class _Map:
    """Collects the fields of one file; reads never fail (out of range reads give 0)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.fields: list[Field] = []

    def value(self, offset: int, size: int, big: bool = False) -> int:
        if offset < 0 or offset + size > len(self.data):
            return 0
        return int.from_bytes(self.data[offset : offset + size], "big" if big else "little")

    def add(self, name: str, offset: int, size: int, big: bool = False) -> int:
        """Map the field and return its value."""
        if offset >= 0 and offset + size <= len(self.data):
            self.fields.append(Field(name, offset, size, big))
        return self.value(offset, size, big)

    def record(self, prefix: str, offset: int, layout: str, big: bool = False) -> list[int]:
        """Map a record of consecutive fields (``layout``: ``struct`` codes without the byte
        order, e.g. ``"IIQ"``); returns their values."""
        values = []
        for index, code in enumerate(layout):
            size = struct.calcsize(code)
            values.append(self.add(f"{prefix}.{index}", offset, size, big))
            offset += size
        return values

    def span(self, name: str, offset: int, length: int) -> None:
        length = max(0, min(length, len(self.data) - offset, 1 << 16))
        if offset >= 0 and length > 0:
            self.fields.append(Field(name, offset, 0, length=length))


# -- ELF ----------------------------------------------------------------------------------------

_PT_LOAD, _PT_DYNAMIC = 1, 2
_DT_STRTAB, _DT_SYMTAB, _DT_STRSZ = 5, 6, 10
_SHT_STRTAB, _SHT_HASH, _SHT_DYNAMIC, _SHT_DYNSYM = 3, 5, 6, 11
_SHT_GNU_HASH, _SHT_VERDEF, _SHT_VERNEED, _SHT_VERSYM = (
    0x6FFFFFF6,
    0x6FFFFFFD,
    0x6FFFFFFE,
    0x6FFFFFFF,
)


def elf_fields(data: bytes) -> list[Field]:
    """The structure fields of an ELF file (see the module docstring)."""
    fields = _Map(data)
    if data[:4] != b"\x7fELF" or len(data) < 52:
        return fields.fields
    fields.add("ei_class", 4, 1)
    fields.add("ei_data", 5, 1)
    wide, big = data[4] == 2, data[5] == 2
    word = "Q" if wide else "I"
    header = fields.record("ehdr", 16, f"HHI{word}{word}{word}IHHHHHH", big)
    phoff, shoff = header[4], header[5]
    phentsize, phnum, shentsize, shnum = header[8], header[9], header[10], header[11]
    program = "IIQQQQQQ" if wide else "IIIIIIII"
    segments = [
        fields.record(f"phdr{index}", phoff + index * phentsize, program, big)
        for index in range(min(phnum, _TABLE_CAP))
    ]
    # (offset, vaddr, filesz) of each PT_LOAD: p_offset, p_vaddr, p_filesz
    loads = [
        (v[2], v[3], v[5]) if wide else (v[1], v[2], v[4]) for v in segments if v[0] == _PT_LOAD
    ]
    for values in segments:
        if values[0] == _PT_DYNAMIC:
            _elf_dynamic(fields, values[2] if wide else values[1], loads, wide, big)
    section = f"II{word}{word}{word}{word}II{word}{word}"
    for index in range(min(shnum, 64)):
        values = fields.record(f"shdr{index}", shoff + index * shentsize, section, big)
        _elf_section(fields, values, wide, big)
    return fields.fields


def _file_offset(loads: list[tuple[int, int, int]], address: int) -> int:
    for offset, vaddr, size in loads:
        if vaddr <= address < vaddr + size:
            return offset + address - vaddr
    return -1


def _elf_dynamic(
    fields: _Map, offset: int, loads: list[tuple[int, int, int]], wide: bool, big: bool
) -> None:
    """``PT_DYNAMIC`` entries, and the string and symbol tables they point at (what a
    section-less file has)."""
    word = "Q" if wide else "I"
    step = struct.calcsize(word) * 2
    found: dict[int, int] = {}
    for index in range(_TABLE_CAP * 2):
        tag, value = fields.record(f"dyn{index}", offset + index * step, word * 2, big)
        found.setdefault(tag, value)
        if tag == 0:
            break
    if _DT_STRTAB in found:
        fields.span("dynstr", _file_offset(loads, found[_DT_STRTAB]), found.get(_DT_STRSZ, 256))
    if _DT_SYMTAB in found:
        _elf_symbols(fields, _file_offset(loads, found[_DT_SYMTAB]), (0, 8), wide, big)


def _elf_symbols(fields: _Map, offset: int, table: tuple[int, int], wide: bool, big: bool) -> None:
    """``table``: entry size (0: the default) and count."""
    entsize, count = table
    layout = "IBBHQQ" if wide else "IIIBBH"
    step = entsize or struct.calcsize("<" + layout)
    for index in range(1, min(count, _TABLE_CAP)):
        fields.record(f"sym{index}", offset + index * step, layout, big)


def _elf_section(fields: _Map, header: list[int], wide: bool, big: bool) -> None:
    kind, offset, size, entsize = header[1], header[4], header[5], header[9]
    if kind == _SHT_STRTAB:
        fields.span("strtab", offset, size)
    elif kind == _SHT_DYNSYM:
        step = entsize or (24 if wide else 16)
        _elf_symbols(fields, offset, (step, size // max(step, 1)), wide, big)
    elif kind == _SHT_HASH:
        fields.record("hash", offset, "II", big)
    elif kind == _SHT_GNU_HASH:
        fields.record("gnu_hash", offset, "IIII", big)
    elif kind == _SHT_VERSYM:
        for index in range(min(size // 2, _TABLE_CAP)):
            fields.add(f"versym{index}", offset + 2 * index, 2, big)
    elif kind in (_SHT_VERNEED, _SHT_VERDEF):
        _elf_versions(fields, kind, offset, big)


def _elf_versions(fields: _Map, kind: int, offset: int, big: bool) -> None:
    """``Elf*_Verneed`` + ``Vernaux`` or ``Elf*_Verdef`` + ``Verdaux`` chains (LSB)."""
    head, aux = ("HHIII", "IHHII") if kind == _SHT_VERNEED else ("HHHHIII", "II")
    aux_at, next_at = (2, 3) if kind == _SHT_VERNEED else (5, 6)
    for index in range(8):
        values = fields.record(f"ver{index}", offset, head, big)
        aux_offset = offset + values[aux_at]
        for k in range(4):
            record = fields.record(f"ver{index}.aux{k}", aux_offset, aux, big)
            if not record[-1]:
                break
            aux_offset += record[-1]
        if not values[next_at]:
            break
        offset += values[next_at]


# -- Mach-O -------------------------------------------------------------------------------------

_MH_MAGICS = {b"\xfe\xed\xfa\xce", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe"}
_FAT_MAGICS = {b"\xca\xfe\xba\xbe": False, b"\xca\xfe\xba\xbf": True}
_LC_SEGMENT, _LC_SYMTAB, _LC_DYSYMTAB, _LC_SEGMENT_64 = 0x1, 0x2, 0xB, 0x19
_DYLIB_COMMANDS = {0xC, 0xD, 0x18 | 0x80000000, 0x1F | 0x80000000, 0x20, 0x23 | 0x80000000}
_LC_RPATH = 0x1C | 0x80000000
_LC_DYLD_INFO = {0x22, 0x22 | 0x80000000}
_LC_CHAINED_FIXUPS = 0x34 | 0x80000000
_LINKEDIT_DATA = {0x1D, 0x1E, 0x26, 0x29, 0x2B, 0x2E, 0x33 | 0x80000000, _LC_CHAINED_FIXUPS}
_LC_BUILD_VERSION, _VERSION_MINS = 0x32, {0x24, 0x25, 0x2F, 0x30}


def macho_fields(data: bytes) -> list[Field]:
    """The structure fields of a thin or universal Mach-O file (see the module docstring)."""
    fields = _Map(data)
    magic = data[:4]
    if magic in _FAT_MAGICS:
        wide = _FAT_MAGICS[magic]
        count = fields.add("nfat_arch", 4, 4, True)
        layout = "iiQQII" if wide else "iiIII"
        step = struct.calcsize(">" + layout)
        for index in range(min(count, 8)):
            values = fields.record(f"fat_arch{index}", 8 + index * step, layout, True)
            if data[values[2] : values[2] + 4] in _MH_MAGICS:
                _macho_image(fields, values[2], f"slice{index}.")
    elif magic in _MH_MAGICS:
        _macho_image(fields, 0, "")
    return fields.fields


def _macho_image(fields: _Map, base: int, prefix: str) -> None:
    data = fields.data
    big = data[base : base + 4] in (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf")
    wide = data[base : base + 4] in (b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe")
    header = fields.record(f"{prefix}mh", base + 4, "iiIIII", big)
    ncmds = header[3]
    at = base + (32 if wide else 28)
    for index in range(min(ncmds, 64)):
        _cmd, size = fields.record(f"{prefix}lc{index}", at, "II", big)
        _macho_command(fields, base, at, big, f"{prefix}lc{index}.")
        if size < 8:
            break
        at += size


def _macho_command(fields: _Map, base: int, at: int, big: bool, prefix: str) -> None:
    cmd, size = fields.value(at, 4, big), fields.value(at + 4, 4, big)
    body = at + 8
    if cmd in (_LC_SEGMENT, _LC_SEGMENT_64):
        wide = cmd == _LC_SEGMENT_64
        values = fields.record(prefix + "seg", body + 16, "QQQQiiII" if wide else "IIIIiiII", big)
        fields.span(prefix + "segname", body, 16)
        section = "QQIIIIIIII" if wide else "IIIIIIIII"
        step = 80 if wide else 68
        first = body + (64 if wide else 48)
        for index in range(min(values[6], 8)):
            fields.record(f"{prefix}sect{index}", first + index * step + 32, section, big)
    elif cmd == _LC_SYMTAB:
        symoff, nsyms, stroff, strsize = fields.record(prefix + "symtab", body, "IIII", big)
        fields.span(prefix + "strtab", base + stroff, strsize)
        layout = "IBBHQ" if _wide(fields, base) else "IBBHI"
        step = struct.calcsize("<" + layout)
        for index in range(min(nsyms, _TABLE_CAP)):
            fields.record(f"{prefix}nlist{index}", base + symoff + index * step, layout, big)
    elif cmd == _LC_DYSYMTAB:
        fields.record(prefix + "dysymtab", body, "I" * 18, big)
    elif cmd in _DYLIB_COMMANDS or cmd == _LC_RPATH:
        name = fields.add(prefix + "name_offset", body, 4, big)
        if cmd in _DYLIB_COMMANDS:
            fields.record(prefix + "dylib", body + 4, "III", big)
        fields.span(prefix + "name", at + name, size - name)
    elif cmd in _LC_DYLD_INFO:
        values = fields.record(prefix + "dyld_info", body, "I" * 10, big)
        for index in (2, 4, 6):  # bind, weak bind, lazy bind opcode streams
            fields.span(f"{prefix}opcodes{index}", base + values[index], values[index + 1])
    elif cmd in _LINKEDIT_DATA:
        dataoff, _datasize = fields.record(prefix + "linkedit", body, "II", big)
        if cmd == _LC_CHAINED_FIXUPS:
            _chained_fixups(fields, base + dataoff, prefix)
    elif cmd == _LC_BUILD_VERSION:
        fields.record(prefix + "build", body, "IIII", big)
    elif cmd in _VERSION_MINS:
        fields.record(prefix + "version_min", body, "II", big)


def _wide(fields: _Map, base: int) -> bool:
    return fields.data[base : base + 4] in (b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe")


def _chained_fixups(fields: _Map, at: int, prefix: str) -> None:
    """``dyld_chained_fixups_header`` and its imports table (always little-endian)."""
    header = fields.record(prefix + "fixups", at, "IIIIIII")
    imports, symbols, count, kind = header[2], header[3], header[4], header[5]
    step = {1: 4, 2: 8, 3: 16}.get(kind, 4)
    for index in range(min(count, _TABLE_CAP)):
        fields.add(f"{prefix}import{index}", at + imports + index * step, 4)
    fields.span(prefix + "fixup_symbols", at + symbols, 1 << 12)
    starts = at + header[1]
    segments = fields.add(prefix + "seg_count", starts, 4)
    for index in range(min(segments, 8)):
        fields.add(f"{prefix}seg_start{index}", starts + 4 + 4 * index, 4)


# -- PE -----------------------------------------------------------------------------------------


class _Sections:
    """RVA -> file offset, from a PE section table."""

    def __init__(self, ranges: list[tuple[int, int, int]]) -> None:
        self.ranges = ranges  # (rva, size, raw offset)

    def offset(self, rva: int) -> int:
        for start, size, raw in self.ranges:
            if start <= rva < start + size:
                return raw + rva - start
        return -1


def pe_fields(data: bytes) -> list[Field]:
    """The structure fields of a PE image (see the module docstring)."""
    fields = _Map(data)
    if data[:2] != b"MZ":
        return fields.fields
    pe = fields.add("e_lfanew", 0x3C, 4)
    if data[pe : pe + 4] != b"PE\0\0":
        return fields.fields
    coff = fields.record("coff", pe + 4, "HHIIIHH")
    sections, optional_size = coff[1], coff[5]
    optional = pe + 24
    wide = fields.add("opt.magic", optional, 2) == 0x20B
    fields.record("opt.sizes", optional + 56, "IIII")  # SizeOfImage .. CheckSum
    count_at = optional + (108 if wide else 92)
    directories = min(fields.add("opt.rvas", count_at, 4), 16)
    entries = [fields.record(f"dir{i}", count_at + 4 + 8 * i, "II") for i in range(directories)]
    table = optional + optional_size
    ranges = []
    for index in range(min(sections, 32)):
        at = table + 40 * index
        fields.span(f"section{index}.name", at, 8)
        values = fields.record(f"section{index}", at + 8, "IIIIIIHHI")
        ranges.append((values[1], max(values[0], values[2]), values[3]))
    rva = _Sections(ranges)
    if len(entries) > 0:
        _pe_exports(fields, rva, entries[0][0])
    if len(entries) > 1:
        _pe_imports(fields, rva, entries[1][0], wide, delay=False)
    if len(entries) > 13:
        _pe_imports(fields, rva, entries[13][0], wide, delay=True)
    return fields.fields


def _pe_exports(fields: _Map, rva: _Sections, directory: int) -> None:
    at = rva.offset(directory)
    if at < 0:
        return
    values = fields.record("export", at, "IIHHIIIIIII")
    name, functions, names, ordinals = values[4], values[8], values[9], values[10]
    fields.span("export.name", rva.offset(name), 64)
    for index in range(min(values[7], _TABLE_CAP)):
        fields.add(f"export.name{index}", rva.offset(names) + 4 * index, 4)
        fields.add(f"export.ordinal{index}", rva.offset(ordinals) + 2 * index, 2)
    for index in range(min(values[6], _TABLE_CAP)):
        fields.add(f"export.function{index}", rva.offset(functions) + 4 * index, 4)


def _pe_imports(fields: _Map, rva: _Sections, directory: int, wide: bool, *, delay: bool) -> None:
    at = rva.offset(directory)
    if at < 0:
        return
    kind = "delay" if delay else "import"
    layout, step = ("IIIIIIII", 32) if delay else ("IIIII", 20)
    thunk = 8 if wide else 4
    for index in range(_TABLE_CAP):
        values = fields.record(f"{kind}{index}", at + step * index, layout)
        if not any(values):
            break
        name, names = (values[1], values[4]) if delay else (values[3], values[0] or values[4])
        fields.span(f"{kind}{index}.dll", rva.offset(name), 64)
        table = rva.offset(names)
        for k in range(8):
            entry = fields.add(f"{kind}{index}.thunk{k}", table + thunk * k, thunk)
            if not entry:
                break
            if not entry >> (thunk * 8 - 1):
                fields.span(f"{kind}{index}.hint{k}", rva.offset(entry & 0x7FFFFFFF), 48)


# -- mutations ----------------------------------------------------------------------------------

#: What a :class:`Mutation` does to its field.
KINDS = ("boundary", "delta", "any", "copy", "bit", "bytes", "cut")
#: Replacement bytes for a byte range: invalid UTF-8, controls, no terminator, huge lengths.
HOSTILE_BYTES = (
    b"\xff\xfe\xfd",
    b"\x1b]0;owned\x07\x1b[2J",
    b"A" * 300,
    b"_ZN3c10" + b"N" * 64,
    b"\x00",
    b"\xc0\x80\xed\xa0\x80",
    b"@rpath/../../../../etc/passwd",
    b"__TEXT\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
)


@dataclass(frozen=True)
class Mutation:
    """One change to one field: ``kind`` (see :data:`KINDS`) and a ``choice`` it reads as it
    needs (which boundary, which delta, which value, which other field, which bit...)."""

    field: int
    kind: str
    choice: int


def _boundaries(size: int, file_size: int) -> list[int]:
    top = (1 << (8 * size)) - 1
    values = [0, 1, 2, 3, 4, 7, 8, 0x7F, 0x80, 0xFF, top, top - 1, top >> 1, (top >> 1) + 1]
    values += [file_size, file_size - 1, file_size + 1, file_size // 2, file_size * 2, 0x10000]
    return [value & top for value in values]


def _set(data: bytearray, field: Field, value: int) -> None:
    top = (1 << (8 * field.size)) - 1
    raw = (value & top).to_bytes(field.size, "big" if field.big else "little")
    data[field.offset : field.offset + field.size] = raw


def apply(data: bytearray, fields: list[Field], mutation: Mutation) -> bytearray:
    """``data`` with ``mutation`` applied (``data`` itself is changed when not cut)."""
    field = fields[mutation.field % len(fields)]
    choice = mutation.choice
    if mutation.kind == "cut":
        return data[: field.offset + choice % max(1, field.size or field.length)]
    if field.size == 0 or mutation.kind == "bytes":
        hostile = HOSTILE_BYTES[choice % len(HOSTILE_BYTES)]
        start = field.offset + (choice >> 3) % max(1, field.length or field.size)
        data[start : start + len(hostile)] = hostile[: max(0, len(data) - start)]
        return data
    current = int.from_bytes(
        data[field.offset : field.offset + field.size], "big" if field.big else "little"
    )
    value: int
    if mutation.kind == "boundary":
        options = _boundaries(field.size, len(data))
        value = options[choice % len(options)]
    elif mutation.kind == "delta":
        delta = (choice % 129) - 64 if choice & 0x100 else 1 << (choice % (8 * field.size))
        value = current + delta if choice & 0x200 else current - delta
    elif mutation.kind == "copy":
        other = fields[choice % len(fields)]
        size = other.size or 4
        value = int.from_bytes(data[other.offset : other.offset + size], "little")
    elif mutation.kind == "bit":
        value = current ^ (1 << (choice % (8 * field.size)))
    else:  # any
        value = choice
    _set(data, field, value)
    return data


def mutate(seed: bytes, fields: list[Field], mutations: list[Mutation]) -> bytes:
    """``seed`` with every mutation applied in turn (against the seed's field map)."""
    data = bytearray(seed)
    for mutation in mutations:
        if not fields:
            break
        data = apply(data, fields, mutation)
    return bytes(data)


FIELD_MAPS: dict[str, Callable[[bytes], list[Field]]] = {
    "elf": elf_fields,
    "mach-o": macho_fields,
    "pe": pe_fields,
}


def describe(fields: list[Field], mutations: list[Mutation]) -> Iterator[str]:
    """Each mutation in words, for a failure message."""
    for mutation in mutations:
        field = fields[mutation.field % len(fields)] if fields else None
        yield f"{mutation.kind}({mutation.choice}) on {field}"
