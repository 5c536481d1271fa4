"""Write small, valid Mach-O dylibs, bundles and universal files byte by byte.

No compiler on the test machines targets macOS, so the Mach-O reader's unit tests build their
inputs with :mod:`struct`: 32- and 64-bit images in either byte order, any file type and CPU,
a symbol table with ``LC_DYSYMTAB`` groups, dylib-loading commands, ``LC_ID_DYLIB``,
``LC_RPATH``, ``LC_BUILD_VERSION`` / ``LC_VERSION_MIN_MACOSX``, an
``LC_DYLD_CHAINED_FIXUPS`` imports table and ``LC_DYLD_INFO_ONLY`` bind opcode streams; and
universal files around them.

Layout of an image::

    mach_header(_64) | load commands | [section data] | chained fixups data | bind opcodes
    | lazy bind opcodes | nlist entries | string table

The ``LC_SEGMENT(_64)`` command (``__TEXT``) carries the sections that ``n_sect`` numbers
from 1. :class:`Built` says where the interesting fields landed, so that a test can corrupt
them afterwards.

Structure layouts follow Apple's ``mach-o/loader.h`` (header, load commands, segments and
sections, ``dylib_command``, ``rpath_command``, ``symtab_command``, ``dysymtab_command``,
``build_version_command``, ``version_min_command``, ``linkedit_data_command``),
``mach-o/nlist.h`` (``nlist``/``nlist_64``, ``SET_LIBRARY_ORDINAL``), ``mach-o/fat.h``
(``fat_header``, ``fat_arch``, ``fat_arch_64``) and ``mach-o/fixup-chains.h``
(``dyld_chained_fixups_header``, ``dyld_chained_import``, ``_addend``, ``_addend64``).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# mach_header magic (loader.h), fat_header magic (fat.h)
MH_MAGIC = 0xFEEDFACE
MH_MAGIC_64 = 0xFEEDFACF
FAT_MAGIC = 0xCAFEBABE
FAT_MAGIC_64 = 0xCAFEBABF

# filetype
MH_OBJECT = 0x1
MH_EXECUTE = 0x2
MH_CORE = 0x4
MH_DYLIB = 0x6
MH_DYLINKER = 0x7
MH_BUNDLE = 0x8
MH_DSYM = 0xA

# flags
MH_NOUNDEFS = 0x1
MH_DYLDLINK = 0x4
MH_TWOLEVEL = 0x80

# cpu_type_t (mach/machine.h)
CPU_ARCH_ABI64 = 0x01000000
CPU_ARCH_ABI64_32 = 0x02000000
CPU_TYPE_X86 = 7
CPU_TYPE_X86_64 = CPU_TYPE_X86 | CPU_ARCH_ABI64
CPU_TYPE_ARM = 12
CPU_TYPE_ARM64 = CPU_TYPE_ARM | CPU_ARCH_ABI64
CPU_TYPE_ARM64_32 = CPU_TYPE_ARM | CPU_ARCH_ABI64_32
CPU_TYPE_POWERPC = 18
CPU_TYPE_POWERPC64 = CPU_TYPE_POWERPC | CPU_ARCH_ABI64

# load commands
LC_REQ_DYLD = 0x80000000
LC_SEGMENT = 0x1
LC_SYMTAB = 0x2
LC_DYSYMTAB = 0xB
LC_LOAD_DYLIB = 0xC
LC_ID_DYLIB = 0xD
LC_LOAD_WEAK_DYLIB = 0x18 | LC_REQ_DYLD
LC_SEGMENT_64 = 0x19
LC_UUID = 0x1B
LC_RPATH = 0x1C | LC_REQ_DYLD
LC_REEXPORT_DYLIB = 0x1F | LC_REQ_DYLD
LC_LAZY_LOAD_DYLIB = 0x20
LC_DYLD_INFO_ONLY = 0x22 | LC_REQ_DYLD
LC_LOAD_UPWARD_DYLIB = 0x23 | LC_REQ_DYLD
LC_VERSION_MIN_MACOSX = 0x24
LC_BUILD_VERSION = 0x32
LC_DYLD_CHAINED_FIXUPS = 0x34 | LC_REQ_DYLD

PLATFORM_MACOS = 1
PLATFORM_IOS = 2

# section flags
S_REGULAR = 0x0
S_ZEROFILL = 0x1
S_CSTRING_LITERALS = 0x2
S_THREAD_LOCAL_VARIABLES = 0x13
S_ATTR_PURE_INSTRUCTIONS = 0x80000000
S_ATTR_SOME_INSTRUCTIONS = 0x00000400

# nlist (nlist.h)
N_STAB = 0xE0
N_PEXT = 0x10
N_EXT = 0x01
N_UNDF = 0x0
N_ABS = 0x2
N_INDR = 0xA
N_SECT = 0xE
N_FUN = 0x24  # a stab
N_WEAK_REF = 0x0040
N_WEAK_DEF = 0x0080
SELF_LIBRARY_ORDINAL = 0x0
DYNAMIC_LOOKUP_ORDINAL = 0xFE
EXECUTABLE_ORDINAL = 0xFF

# loader.h: bind opcodes
BIND_OPCODE_DONE = 0x00
BIND_OPCODE_SET_DYLIB_ORDINAL_IMM = 0x10
BIND_OPCODE_SET_SYMBOL_TRAILING_FLAGS_IMM = 0x40
BIND_OPCODE_SET_TYPE_IMM = 0x50
BIND_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB = 0x70
BIND_OPCODE_DO_BIND = 0x90
BIND_OPCODE_DO_BIND_ULEB_TIMES_SKIPPING_ULEB = 0xC0
BIND_SYMBOL_FLAGS_WEAK_IMPORT = 0x1
BIND_TYPE_POINTER = 1

# fixup-chains.h
DYLD_CHAINED_IMPORT = 1
DYLD_CHAINED_IMPORT_ADDEND = 2
DYLD_CHAINED_IMPORT_ADDEND64 = 3


def version(major: int, minor: int = 0, patch: int = 0) -> int:
    """A ``xxxx.yy.zz`` nibble-encoded version (``LC_BUILD_VERSION`` minos and friends)."""
    return major << 16 | minor << 8 | patch


@dataclass(frozen=True)
class NSym:
    """One ``nlist`` entry; ``name`` as stored on disk (with the C-level leading ``_``)."""

    name: str
    n_type: int
    n_sect: int = 0
    n_desc: int = 0
    n_value: int = 0


def undefined(name: str, ordinal: int = 1, *, weak: bool = False) -> NSym:
    """An undefined external symbol bound to library ``ordinal`` (``SET_LIBRARY_ORDINAL``)."""
    return NSym(name, N_UNDF | N_EXT, 0, (ordinal & 0xFF) << 8 | (N_WEAK_REF if weak else 0))


def defined(
    name: str, sect: int = 1, *, weak: bool = False, private: bool = False, value: int = 0x1000
) -> NSym:
    """A defined external symbol in section ``sect`` (``N_PEXT`` when ``private``)."""
    n_type = N_SECT | N_EXT | (N_PEXT if private else 0)
    return NSym(name, n_type, sect, N_WEAK_DEF if weak else 0, value)


def absolute(name: str, value: int = 42) -> NSym:
    """A defined external absolute symbol."""
    return NSym(name, N_ABS | N_EXT, 0, 0, value)


def local(name: str, sect: int = 1, *, private: bool = False) -> NSym:
    """A non-external definition (a private extern the linker demoted when ``private``)."""
    return NSym(name, N_SECT | (N_PEXT if private else 0), sect, 0, 0x2000)


def stab(name: str) -> NSym:
    """A debugger entry (``N_FUN``), which is never a symbol."""
    return NSym(name, N_FUN, 1, 0, 0x1000)


#: Sections of the default ``__TEXT`` segment: (sectname, segname, flags); ``n_sect`` 1, 2, 3.
DEFAULT_SECTIONS: tuple[tuple[str, str, int], ...] = (
    ("__text", "__TEXT", S_ATTR_PURE_INSTRUCTIONS | S_ATTR_SOME_INSTRUCTIONS),
    ("__data", "__DATA", S_REGULAR),
    ("__thread_vars", "__DATA", S_THREAD_LOCAL_VARIABLES),
)


def uleb128(value: int) -> bytes:
    """``value`` as an unsigned LEB128 number."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def bind_opcodes(binds: Sequence[tuple[str, int, bool]], *, lazy: bool = False) -> bytes:
    """A bind (or, with ``lazy``, a lazy-bind) opcode stream binding each ``(name as stored,
    library ordinal, weak import)`` to a pointer in segment 2, as ld64 writes them."""
    out = bytearray()
    for k, (name, ordinal, weak) in enumerate(binds):
        out.append(BIND_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB | 2)
        out += uleb128(0x1000 + 8 * k)
        out.append(BIND_OPCODE_SET_DYLIB_ORDINAL_IMM | ordinal)
        flags = BIND_SYMBOL_FLAGS_WEAK_IMPORT if weak else 0
        out.append(BIND_OPCODE_SET_SYMBOL_TRAILING_FLAGS_IMM | flags)
        out += name.encode() + b"\0"
        if lazy:
            out += bytes([BIND_OPCODE_DO_BIND, BIND_OPCODE_DONE])
        else:
            out.append(BIND_OPCODE_SET_TYPE_IMM | BIND_TYPE_POINTER)
            out.append(BIND_OPCODE_DO_BIND_ULEB_TIMES_SKIPPING_ULEB)
            out += uleb128(2) + uleb128(300)  # two binds, a multi-byte skip
    if not lazy:
        out.append(BIND_OPCODE_DONE)
    return bytes(out)


@dataclass(frozen=True)
class ChainedImport:
    """One ``dyld_chained_import*`` entry; ``ordinal`` signed (``-2`` is flat lookup)."""

    ordinal: int
    name: str
    weak: bool = False
    addend: int = 0


@dataclass(frozen=True)
class Built:
    """An image's bytes and where its fields are (byte offsets in ``data``)."""

    data: bytes
    offsets: dict[str, int]

    def write(self, path: Path) -> Path:
        path.write_bytes(self.data)
        return path


@dataclass
class MachO:
    """A Mach-O image to build; the defaults make a 64-bit little-endian arm64 dylib."""

    bits: int = 64
    big_endian: bool = False
    cputype: int = CPU_TYPE_ARM64
    cpusubtype: int = 0
    filetype: int = MH_DYLIB
    flags: int = MH_DYLDLINK | MH_TWOLEVEL
    sections: Sequence[tuple[str, str, int]] = DEFAULT_SECTIONS
    id_dylib: str | None = None
    #: (load command, install name), in load-command order: ordinals 1..n.
    dylibs: Sequence[tuple[int, str]] = ()
    rpaths: Sequence[str] = ()
    #: (platform, encoded minos) of an ``LC_BUILD_VERSION``.
    build_version: tuple[int, int] | None = None
    #: encoded version of an ``LC_VERSION_MIN_MACOSX``.
    version_min: int | None = None
    #: ``LC_DYSYMTAB`` groups, in table order: locals, external definitions, undefined.
    locals: Sequence[NSym] = ()
    exports: Sequence[NSym] = ()
    imports: Sequence[NSym] = ()
    symtab: bool = True
    dysymtab: bool = True
    chained: Sequence[ChainedImport] | None = None
    chained_format: int = DYLD_CHAINED_IMPORT
    #: ``LC_DYLD_INFO_ONLY`` bind and lazy-bind opcode streams (see :func:`bind_opcodes`).
    bind: bytes | None = None
    lazy_bind: bytes | None = None
    #: Raw load commands appended last: (cmd, payload after cmd/cmdsize).
    extra_commands: Sequence[tuple[int, bytes]] = field(default_factory=list)
    #: File contents of sections, by index in ``sections``: placed after the load commands (16-byte
    #: aligned, in index order) with the section's ``offset`` and ``size`` set. The other
    #: sections stay zero-fill (offset and size 0).
    section_data: Mapping[int, bytes] = field(default_factory=dict)

    @property
    def order(self) -> str:
        return ">" if self.big_endian else "<"

    def _command(self, cmd: int, payload: bytes) -> bytes:
        size = 8 + len(payload)
        padded = size + (-size % (8 if self.bits == 64 else 4))
        return struct.pack(self.order + "II", cmd, padded) + payload + bytes(padded - size)

    def _string_command(self, cmd: int, fixed: bytes, text: str) -> bytes:
        """A command with an ``lc_str`` as its first field, the string after ``fixed``."""
        offset = 8 + 4 + len(fixed)
        payload = struct.pack(self.order + "I", offset) + fixed + text.encode() + b"\0"
        return self._command(cmd, payload)

    def _segment(self) -> bytes:
        o = self.order
        sections = b""
        for sectname, segname, flags in self.sections:
            name = sectname.encode().ljust(16, b"\0") + segname.encode().ljust(16, b"\0")
            if self.bits == 64:
                sections += name + struct.pack(o + "QQIIIIIIII", 0, 0, 0, 0, 0, 0, flags, 0, 0, 0)
            else:
                sections += name + struct.pack(o + "IIIIIIIII", 0, 0, 0, 0, 0, 0, flags, 0, 0)
        segment = b"__TEXT".ljust(16, b"\0")
        nsects = len(self.sections)
        if self.bits == 64:
            fixed = segment + struct.pack(o + "QQQQiiII", 0, 0x4000, 0, 0, 5, 5, nsects, 0)
            return self._command(LC_SEGMENT_64, fixed + sections)
        fixed = segment + struct.pack(o + "IIIIiiII", 0, 0x4000, 0, 0, 5, 5, nsects, 0)
        return self._command(LC_SEGMENT, fixed + sections)

    def _chained_blob(self) -> bytes:
        """``dyld_chained_fixups_header``, an empty starts table, the imports and their names."""
        assert self.chained is not None
        o = self.order
        names = b"\0"
        name_offsets = []
        for entry in self.chained:
            name_offsets.append(len(names))
            names += entry.name.encode() + b"\0"
        table = b""
        for entry, name_offset in zip(self.chained, name_offsets, strict=True):
            if self.chained_format == DYLD_CHAINED_IMPORT_ADDEND64:
                word = (entry.ordinal & 0xFFFF) | int(entry.weak) << 16 | name_offset << 32
                table += struct.pack(o + "QQ", word, entry.addend & (2**64 - 1))
            else:
                word32 = (entry.ordinal & 0xFF) | int(entry.weak) << 8 | name_offset << 9
                table += struct.pack(o + "I", word32)
                if self.chained_format == DYLD_CHAINED_IMPORT_ADDEND:
                    table += struct.pack(o + "i", entry.addend)
        starts_offset = 32  # dyld_chained_starts_in_image: seg_count 0
        imports_offset = starts_offset + 8
        symbols_offset = imports_offset + len(table)
        header = struct.pack(
            o + "7I",
            0,
            starts_offset,
            imports_offset,
            symbols_offset,
            len(self.chained),
            self.chained_format,
            0,
        )
        blob = header + bytes(4) + struct.pack(o + "II", 0, 0) + table + names
        return blob + bytes(-len(blob) % 8)

    def build(self) -> Built:
        o = self.order
        entsize = 16 if self.bits == 64 else 12
        header_size = 32 if self.bits == 64 else 28
        symbols = [*self.locals, *self.exports, *self.imports]

        strings = [b" \0"]
        strx = []
        size = 2
        for sym in symbols:
            strx.append(size)
            encoded = sym.name.encode() + b"\0"
            strings.append(encoded)
            size += len(encoded)
        strings.append(bytes(-size % 8))
        strtab = b"".join(strings)

        commands: list[tuple[str, bytes]] = [("segment", self._segment())]
        if self.id_dylib is not None:
            fixed = struct.pack(o + "III", 2, 0x10000, 0x10000)
            commands.append(("id_dylib", self._string_command(LC_ID_DYLIB, fixed, self.id_dylib)))
        for k, (cmd, name) in enumerate(self.dylibs):
            fixed = struct.pack(o + "III", 2, 0x10000, 0x10000)
            commands.append((f"dylib{k}", self._string_command(cmd, fixed, name)))
        for k, path in enumerate(self.rpaths):
            commands.append((f"rpath{k}", self._string_command(LC_RPATH, b"", path)))
        if self.build_version is not None:
            platform, minos = self.build_version
            payload = struct.pack(o + "IIII", platform, minos, version(14, 0), 0)
            commands.append(("build_version", self._command(LC_BUILD_VERSION, payload)))
        if self.version_min is not None:
            payload = struct.pack(o + "II", self.version_min, version(14, 0))
            commands.append(("version_min", self._command(LC_VERSION_MIN_MACOSX, payload)))
        # Placeholders for the commands whose offsets depend on the total size.
        if self.chained is not None:
            commands.append(("chained_cmd", self._command(LC_DYLD_CHAINED_FIXUPS, bytes(8))))
        if self.bind is not None or self.lazy_bind is not None:
            commands.append(("dyld_info_cmd", self._command(LC_DYLD_INFO_ONLY, bytes(40))))
        if self.symtab:
            commands.append(("symtab_cmd", self._command(LC_SYMTAB, bytes(16))))
        if self.symtab and self.dysymtab:
            commands.append(("dysymtab_cmd", self._command(LC_DYSYMTAB, bytes(72))))
        for k, (cmd, payload) in enumerate(self.extra_commands):
            commands.append((f"extra{k}", self._command(cmd, payload)))

        offsets: dict[str, int] = {}
        at = header_size
        for key, raw in commands:
            offsets[key] = at
            at += len(raw)
        sizeofcmds = at - header_size
        linkedit = at + (-at % 16)
        placed: dict[int, int] = {}
        for index in sorted(self.section_data):
            placed[index] = linkedit
            linkedit += len(self.section_data[index])
            linkedit += -linkedit % 16
        chained_blob = self._chained_blob() if self.chained is not None else b""
        chained_at = linkedit
        bind_blob, lazy_blob = self.bind or b"", self.lazy_bind or b""
        bind_at = chained_at + len(chained_blob)
        lazy_at = bind_at + len(bind_blob)
        symoff = lazy_at + len(lazy_blob)
        symoff += -symoff % 8
        stroff = symoff + len(symbols) * entsize

        out = bytearray()
        magic = MH_MAGIC_64 if self.bits == 64 else MH_MAGIC
        out += struct.pack(
            o + "IiiIIII",
            magic,
            self.cputype,
            self.cpusubtype,
            self.filetype,
            len(commands),
            sizeofcmds,
            self.flags,
        )
        if self.bits == 64:
            out += bytes(4)
        offsets["ncmds"] = 16
        offsets["sizeofcmds"] = 20
        offsets["first_cmdsize"] = header_size + 4
        for _key, raw in commands:
            out += raw
        for index, at in placed.items():
            out += bytes(at - len(out))
            out += self.section_data[index]
            offsets[f"section{index}"] = at
        out += bytes(linkedit - len(out))
        # section(_64) k of the first (segment) command: size at 40 (36), offset at 48 (40).
        records = offsets["segment"] + (72 if self.bits == 64 else 56)
        for index, at in placed.items():
            record = records + index * (80 if self.bits == 64 else 68)
            if self.bits == 64:
                struct.pack_into(o + "Q", out, record + 40, len(self.section_data[index]))
                struct.pack_into(o + "I", out, record + 48, at)
            else:
                struct.pack_into(o + "II", out, record + 36, len(self.section_data[index]), at)
        out += chained_blob + bind_blob + lazy_blob
        out += bytes(symoff - len(out))
        for sym, index in zip(symbols, strx, strict=True):
            if self.bits == 64:
                out += struct.pack(
                    o + "IBBHQ", index, sym.n_type, sym.n_sect, sym.n_desc, sym.n_value
                )
            else:
                out += struct.pack(
                    o + "IBBHI", index, sym.n_type, sym.n_sect, sym.n_desc, sym.n_value
                )
        out += strtab

        if self.chained is not None:
            struct.pack_into(
                o + "II", out, offsets["chained_cmd"] + 8, chained_at, len(chained_blob)
            )
            offsets["chained"] = chained_at
        if "dyld_info_cmd" in offsets:
            fields = (0, 0, bind_at, len(bind_blob), 0, 0, lazy_at, len(lazy_blob), 0, 0)
            struct.pack_into(o + "10I", out, offsets["dyld_info_cmd"] + 8, *fields)
            offsets["bind"], offsets["lazy_bind"] = bind_at, lazy_at
        if self.symtab:
            struct.pack_into(
                o + "IIII",
                out,
                offsets["symtab_cmd"] + 8,
                symoff,
                len(symbols),
                stroff,
                len(strtab),
            )
            offsets["symoff"] = offsets["symtab_cmd"] + 8
            offsets["nsyms"] = offsets["symtab_cmd"] + 12
            offsets["stroff"] = offsets["symtab_cmd"] + 16
            offsets["strsize"] = offsets["symtab_cmd"] + 20
            offsets["symbols"] = symoff
            offsets["strings"] = stroff
        if self.symtab and self.dysymtab:
            nlocal, next_ = len(self.locals), len(self.exports)
            groups = (0, nlocal, nlocal, next_, nlocal + next_, len(self.imports))
            struct.pack_into(o + "6I", out, offsets["dysymtab_cmd"] + 8, *groups)
        return Built(bytes(out), offsets)


@dataclass(frozen=True)
class FatSlice:
    cputype: int
    data: bytes
    cpusubtype: int = 0


def build_fat(slices: Sequence[FatSlice], *, fat64: bool = False, align: int = 12) -> Built:
    """A universal file of ``slices``, each aligned to ``2**align`` bytes.

    ``offsets`` holds ``nfat_arch`` and, per slice ``k``, ``arch{k}`` (its ``fat_arch``
    record), ``arch{k}_offset`` and ``arch{k}_size`` (those fields) and ``slice{k}`` (its data).
    """
    record = 32 if fat64 else 20
    header = struct.pack(">II", FAT_MAGIC_64 if fat64 else FAT_MAGIC, len(slices))
    at = 8 + record * len(slices)
    placed = []
    for piece in slices:
        at += -at % (1 << align)
        placed.append(at)
        at += len(piece.data)
    out = bytearray(header)
    offsets = {"nfat_arch": 4}
    for k, (piece, offset) in enumerate(zip(slices, placed, strict=True)):
        offsets[f"arch{k}"] = len(out)
        if fat64:
            out += struct.pack(
                ">iiQQII", piece.cputype, piece.cpusubtype, offset, len(piece.data), align, 0
            )
            offsets[f"arch{k}_offset"] = offsets[f"arch{k}"] + 8
            offsets[f"arch{k}_size"] = offsets[f"arch{k}"] + 16
        else:
            out += struct.pack(
                ">iiIII", piece.cputype, piece.cpusubtype, offset, len(piece.data), align
            )
            offsets[f"arch{k}_offset"] = offsets[f"arch{k}"] + 8
            offsets[f"arch{k}_size"] = offsets[f"arch{k}"] + 12
    for k, (piece, offset) in enumerate(zip(slices, placed, strict=True)):
        out += bytes(offset - len(out))
        offsets[f"slice{k}"] = offset
        out += piece.data
    return Built(bytes(out), offsets)
