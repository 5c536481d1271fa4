"""Mach-O shared-library reader: dylibs and bundles, thin (32/64-bit, either byte order) or
universal ("fat").

Reads only what the audit needs, with positional reads in ascending file order (a compressed
wheel member is a forward-only stream): the header and load commands of each slice, then the
parts of its ``__LINKEDIT`` segment that hold the ``LC_SYMTAB`` entries, their string table and
the ``LC_DYLD_CHAINED_FIXUPS`` imports table, before moving on to the next slice.

* Imports are the undefined external ``nlist`` entries, exports the defined external ones that
  are not private externs; ``LC_DYSYMTAB`` says where each group is, when present. Names lose
  the one leading ``_`` of the C-level mangling, so they match ELF names.
* Binding is ``WEAK`` for ``N_WEAK_REF`` imports and ``N_WEAK_DEF`` exports; a definition is a
  ``FUNC`` in a code section (``S_ATTR_*_INSTRUCTIONS``, ``__text``), ``TLS`` in a
  ``S_THREAD_LOCAL_VARIABLES`` one, else an ``OBJECT``; private externs are ``HIDDEN``.
* The library an import is bound to comes from the two-level namespace ordinal in ``n_desc``
  (``GET_LIBRARY_ORDINAL``), which indexes the dylib-loading commands in load-command order.
* macOS 12+ binaries use chained fixups: the imports table of ``LC_DYLD_CHAINED_FIXUPS`` names
  every bound symbol with its library ordinal. It fills the library of imports whose ``nlist``
  entry carries none and adds imports found only there. ``LC_DYLD_INFO(_ONLY)`` bind opcodes
  are not decoded (the ``nlist`` table already lists every bound symbol); their ranges are only
  bounds-checked.

Reads that lie close together are merged for sequential sources, and the next slice of a
universal file is read ahead with the current one's tables, so that a streamed member never has
to go back. The string table is read only as far as the needed names reach (ld64 writes external
names before local ones).

A universal file becomes one :class:`~torch_abi_audit.model.Library` whose ``slices`` hold one
``Library`` per architecture; its own imports and exports are the union of theirs.

``Library.rodata`` comes from the section records of the segment commands (no extra read): the
``S_CSTRING_LITERALS`` sections of any segment (``__TEXT,__cstring``, ``__oslogstring``...) and
``__TEXT,__const``, as absolute file offsets (a slice's are shifted by the slice's offset).

References (Apple's cctools / dyld headers): ``mach-o/loader.h`` (``mach_header``, load
commands, ``segment_command``/``section``, ``dylib_command``, ``rpath_command``,
``build_version_command``, ``linkedit_data_command``), ``mach-o/nlist.h`` (``nlist``/``nlist_64``,
``n_type``/``n_desc`` bits, ``GET_LIBRARY_ORDINAL``), ``mach-o/fat.h`` (``fat_header``,
``fat_arch``, ``fat_arch_64``) and ``mach-o/fixup-chains.h`` (``dyld_chained_fixups_header``,
``dyld_chained_import*``).
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterable
from itertools import chain, pairwise
from pathlib import Path
from typing import NamedTuple

from torch_abi_audit.model import (
    BinaryFormat,
    Library,
    Symbol,
    SymbolBinding,
    SymbolType,
    SymbolVisibility,
    merge_ranges,
)
from torch_abi_audit.readers.errors import BinaryReadError
from torch_abi_audit.readers.macho_fixups import (
    ChainedImport,
    bind_import_flags,
    parse_chained_imports,
)
from torch_abi_audit.readers.macho_symbols import (
    MachOSymbols,
    NlistTable,
    SymbolKind,
    UnionSymbols,
    column32,
)
from torch_abi_audit.readers.source import ByteSource, file_bytes

# -- mach-o/fat.h ---------------------------------------------------------------------------------
FAT_MAGIC = 0xCAFEBABE
FAT_MAGIC_64 = 0xCAFEBABF
_FAT_ARCH = struct.Struct(">iiIII")  # cputype, cpusubtype, offset, size, align
_FAT_ARCH_64 = struct.Struct(">iiQQII")  # ... offset and size 64-bit, align, reserved
#: More architectures than any universal file has; also what tells a Java class file apart.
MAX_FAT_ARCHS = 32

# -- mach-o/loader.h: header ----------------------------------------------------------------------
MH_MAGIC = 0xFEEDFACE
MH_CIGAM = 0xCEFAEDFE
MH_MAGIC_64 = 0xFEEDFACF
MH_CIGAM_64 = 0xCFFAEDFE

MH_OBJECT = 0x1
MH_EXECUTE = 0x2
MH_FVMLIB = 0x3
MH_CORE = 0x4
MH_PRELOAD = 0x5
MH_DYLIB = 0x6
MH_DYLINKER = 0x7
MH_BUNDLE = 0x8
MH_DYLIB_STUB = 0x9
MH_DSYM = 0xA
MH_KEXT_BUNDLE = 0xB
MH_FILESET = 0xC
_FILETYPE_NAMES = {
    MH_OBJECT: "object file",
    MH_EXECUTE: "executable",
    MH_FVMLIB: "fixed VM shared library",
    MH_CORE: "core file",
    MH_PRELOAD: "preloaded executable",
    MH_DYLINKER: "dynamic linker",
    MH_DYLIB_STUB: "dylib stub",
    MH_DSYM: "debug symbols (dSYM) file",
    MH_KEXT_BUNDLE: "kernel extension",
    MH_FILESET: "file set",
}

MH_TWOLEVEL = 0x80  # mach_header.flags: two-level namespace bindings

CPU_ARCH_ABI64 = 0x01000000
CPU_ARCH_ABI64_32 = 0x02000000
CPU_TYPE_X86 = 7
CPU_TYPE_X86_64 = CPU_TYPE_X86 | CPU_ARCH_ABI64
CPU_TYPE_ARM = 12
CPU_TYPE_ARM64 = CPU_TYPE_ARM | CPU_ARCH_ABI64
CPU_TYPE_ARM64_32 = CPU_TYPE_ARM | CPU_ARCH_ABI64_32
CPU_TYPE_POWERPC = 18
CPU_TYPE_POWERPC64 = CPU_TYPE_POWERPC | CPU_ARCH_ABI64
# Machine names as wheel platform tags spell them (macosx_11_0_arm64, ..._x86_64, ..._i386).
_MACHINES = {
    CPU_TYPE_X86: "i386",
    CPU_TYPE_X86_64: "x86_64",
    CPU_TYPE_ARM: "arm",
    CPU_TYPE_ARM64: "arm64",
    CPU_TYPE_ARM64_32: "arm64_32",
    CPU_TYPE_POWERPC: "ppc",
    CPU_TYPE_POWERPC64: "ppc64",
}

# -- mach-o/loader.h: load commands ---------------------------------------------------------------
LC_REQ_DYLD = 0x80000000
LC_SEGMENT = 0x1
LC_SYMTAB = 0x2
LC_DYSYMTAB = 0xB
LC_LOAD_DYLIB = 0xC
LC_ID_DYLIB = 0xD
LC_LOAD_WEAK_DYLIB = 0x18 | LC_REQ_DYLD
LC_SEGMENT_64 = 0x19
LC_RPATH = 0x1C | LC_REQ_DYLD
LC_REEXPORT_DYLIB = 0x1F | LC_REQ_DYLD
LC_LAZY_LOAD_DYLIB = 0x20
LC_DYLD_INFO = 0x22
LC_DYLD_INFO_ONLY = 0x22 | LC_REQ_DYLD
LC_LOAD_UPWARD_DYLIB = 0x23 | LC_REQ_DYLD
LC_VERSION_MIN_MACOSX = 0x24
LC_BUILD_VERSION = 0x32
LC_DYLD_CHAINED_FIXUPS = 0x34 | LC_REQ_DYLD
#: The commands that load a dylib; two-level ordinals 1..n index them in this (file) order.
DYLIB_LOADING_COMMANDS = frozenset(
    {
        LC_LOAD_DYLIB,
        LC_LOAD_WEAK_DYLIB,
        LC_REEXPORT_DYLIB,
        LC_LOAD_UPWARD_DYLIB,
        LC_LAZY_LOAD_DYLIB,
    }
)
PLATFORM_MACOS = 1

_LOAD_COMMAND_SIZE = 8  # struct load_command: cmd, cmdsize
_DYLIB_COMMAND_SIZE = 24  # cmd, cmdsize, name.offset, timestamp, current/compatibility version
_RPATH_COMMAND_SIZE = 12  # cmd, cmdsize, path.offset
_SYMTAB_COMMAND_SIZE = 24  # cmd, cmdsize, symoff, nsyms, stroff, strsize
_DYSYMTAB_COMMAND_SIZE = 80  # cmd, cmdsize, 18 x uint32 (the first six are used)
_DYLD_INFO_COMMAND_SIZE = 48  # cmd, cmdsize, 5 x (offset, size)
_LINKEDIT_DATA_COMMAND_SIZE = 16  # cmd, cmdsize, dataoff, datasize
_VERSION_MIN_COMMAND_SIZE = 16  # cmd, cmdsize, version, sdk
_BUILD_VERSION_COMMAND_SIZE = 24  # cmd, cmdsize, platform, minos, sdk, ntools

# section flags (loader.h)
SECTION_TYPE = 0x000000FF
S_CSTRING_LITERALS = 0x2
S_THREAD_LOCAL_VARIABLES = 0x13
S_ATTR_PURE_INSTRUCTIONS = 0x80000000
S_ATTR_SOME_INSTRUCTIONS = 0x00000400

# -- mach-o/nlist.h -------------------------------------------------------------------------------
SELF_LIBRARY_ORDINAL = 0x0
MAX_LIBRARY_ORDINAL = 0xFD
DYNAMIC_LOOKUP_ORDINAL = 0xFE
EXECUTABLE_ORDINAL = 0xFF


#: Reads of a sequential source closer than this are merged (more than the 4 MB decompression
#: step of :mod:`torch_abi_audit.sources.wheel_bytes`).
_COALESCE_GAP = 8 << 20
#: How much of the next slice of a universal file a sequential source reads ahead, so that the
#: slice's header and load commands need no read behind the stream: all of a slice up to
#: :data:`_LOOKAHEAD_WHOLE` bytes (its ``__LINKEDIT`` tables lie within a decompression step of
#: its start), else its first :data:`_LOOKAHEAD` bytes.
_LOOKAHEAD = 1 << 20
_LOOKAHEAD_WHOLE = 16 << 20
#: How far past the start of the last name needed the string table is read (see
#: :meth:`_MachOImage._read_strings`).
_NAME_MARGIN = 64 << 10


def machine_name(cputype: int) -> str:
    """The wheel-tag spelling of a ``cpu_type_t`` (``arm64``, ``x86_64``), or ``cpu-<n>``."""
    return _MACHINES.get(cputype, f"cpu-{cputype}")


def format_version(encoded: int) -> str:
    """A ``xxxx.yy.zz`` nibble-encoded version as ``X.Y`` (``X.Y.Z`` when the patch is set)."""
    major, minor, patch = encoded >> 16, (encoded >> 8) & 0xFF, encoded & 0xFF
    return f"{major}.{minor}.{patch}" if patch else f"{major}.{minor}"


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _strip_underscore(name: str) -> str:
    return name[1:] if name.startswith("_") else name


class _View:
    """The bytes of one Mach-O image: the whole file, or one slice of a universal file.

    Every offset in an image is relative to its start and must lie within it.
    """

    def __init__(self, source: ByteSource, base: int, size: int, label: str) -> None:
        self.source = source
        self.base = base
        self.size = size
        self.label = label

    def check(self, offset: int, length: int, what: str) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise BinaryReadError(
                f"{what} lies outside the {self.label} (offset {offset:#x}, {length} bytes, "
                f"{self.label} is {self.size} bytes): truncated or corrupt"
            )

    def read(self, offset: int, length: int, what: str) -> bytes:
        self.check(offset, length, what)
        return self.source.read(self.base + offset, length, what)


class _Lookahead:
    """A sequential source that also serves reads from one range read ahead (:meth:`keep`)."""

    sequential = True

    def __init__(self, source: ByteSource) -> None:
        self._source = source
        self._kept_at = 0
        self._kept = b""

    @property
    def size(self) -> int:
        return self._source.size

    def keep(self, offset: int, data: bytes) -> None:
        self._kept_at, self._kept = offset, data

    def read(self, offset: int, length: int, what: str) -> bytes:
        start = offset - self._kept_at
        if start >= 0 and start + length <= len(self._kept):
            return self._kept[start : start + length]
        return self._source.read(offset, length, what)


class _Piece(NamedTuple):
    """A planned read: ``length`` bytes at absolute ``offset``, filed under ``key``."""

    offset: int
    length: int
    key: str
    what: str


def _fetch(source: ByteSource, pieces: Iterable[_Piece]) -> dict[str, bytes]:
    """Read ``pieces`` in ascending file order.

    A sequential source (a compressed wheel member) decompresses in steps of up to a few
    megabytes and keeps only what was asked for outside its end windows, so a later read that
    starts inside the step that served the previous one would force it to spill to disk:
    pieces closer than :data:`_COALESCE_GAP` are read as one range there.
    """
    got: dict[str, bytes] = {}
    groups: list[list[_Piece]] = []
    group_end = 0
    for piece in sorted(pieces, key=lambda p: p.offset):
        if piece.length == 0:
            got[piece.key] = b""
        elif groups and source.sequential and piece.offset - group_end <= _COALESCE_GAP:
            groups[-1].append(piece)
            group_end = max(group_end, piece.offset + piece.length)
        else:
            groups.append([piece])
            group_end = piece.offset + piece.length
    for group in groups:
        if len(group) == 1:
            piece = group[0]
            got[piece.key] = source.read(piece.offset, piece.length, piece.what)
            continue
        start = group[0].offset
        end = max(p.offset + p.length for p in group)
        data = source.read(start, end - start, " and ".join(p.what for p in group))
        for piece in group:
            got[piece.key] = data[piece.offset - start : piece.offset - start + piece.length]
    return got


# -- symbol tables --------------------------------------------------------------------------------


class _Symtab(NamedTuple):
    symoff: int
    nsyms: int
    stroff: int
    strsize: int


class _Dysymtab(NamedTuple):
    ilocalsym: int
    nlocalsym: int
    iextdefsym: int
    nextdefsym: int
    iundefsym: int
    nundefsym: int


class _Linkedit(NamedTuple):
    """What :meth:`_MachOImage._read_linkedit` reads (see there)."""

    symbols: bytes
    first: int
    strings: bytes
    chained: list[ChainedImport] | None
    weak_binds: dict[str, bool]  # name as stored -> every bind of it is a weak import


class _MachOImage:
    """Parses one thin Mach-O image; :meth:`library` builds the format-neutral model."""

    def __init__(self, view: _View, path: Path, following: _View | None = None) -> None:
        self.view = view
        self.path = path
        self.following = following  # the next slice of a universal file
        self.label = view.label
        magic = int.from_bytes(view.read(0, 4, "Mach-O magic"), "little")
        if magic == MH_MAGIC:
            self.bits, self.big_endian = 32, False
        elif magic == MH_CIGAM:
            self.bits, self.big_endian = 32, True
        elif magic == MH_MAGIC_64:
            self.bits, self.big_endian = 64, False
        elif magic == MH_CIGAM_64:
            self.bits, self.big_endian = 64, True
        else:
            raise BinaryReadError(f"the {self.label} is not a Mach-O image (magic {magic:#010x})")
        self.order = ">" if self.big_endian else "<"
        header_size = 32 if self.bits == 64 else 28
        (
            _magic,
            self.cputype,
            _cpusubtype,
            self.filetype,
            ncmds,
            sizeofcmds,
            self.flags,
        ) = struct.unpack(self.order + "IiiIIII", view.read(0, 28, "Mach-O header"))
        if self.bits == 64:
            view.check(0, header_size, "Mach-O header")
        if sizeofcmds > view.size - header_size:
            raise BinaryReadError(
                f"load commands ({sizeofcmds} bytes) extend past the end of the "
                f"{view.size}-byte {self.label}: truncated or corrupt"
            )
        if ncmds > sizeofcmds // _LOAD_COMMAND_SIZE:
            raise BinaryReadError(
                f"{ncmds} load commands cannot fit in sizeofcmds ({sizeofcmds} bytes): corrupt"
            )
        self.ncmds = ncmds
        self.commands = view.read(header_size, sizeofcmds, "load commands")
        # What the load commands say.
        self.section_types: list[SymbolType] = [SymbolType.OBJECT]  # n_sect 0 is NO_SECT
        self.symtab: _Symtab | None = None
        self.dysymtab: _Dysymtab | None = None
        self.dylibs: list[str] = []
        self.weak_dylibs: list[str] = []  # LC_LOAD_WEAK_DYLIB: dyld goes on without them
        self.bind_streams: list[tuple[str, int, int]] = []  # LC_DYLD_INFO (lazy) bind opcodes
        self.install_name: str | None = None
        self.rpaths: list[str] = []
        self.build_min_os: str | None = None
        self.version_min_os: str | None = None
        self.chained_fixups: tuple[int, int] | None = None
        self.rodata: list[tuple[int, int]] = []  # (offset in the image, size)
        self._parse_commands()

    @property
    def machine(self) -> str:
        return machine_name(self.cputype)

    # -- load commands --------------------------------------------------------------------------

    def _parse_commands(self) -> None:
        raw = self.commands
        order = self.order
        offset = 0
        for index in range(self.ncmds):
            if offset + _LOAD_COMMAND_SIZE > len(raw):
                raise BinaryReadError(
                    f"load command {index} lies past the end of sizeofcmds: corrupt"
                )
            cmd, cmdsize = struct.unpack_from(order + "II", raw, offset)
            if cmdsize < _LOAD_COMMAND_SIZE or cmdsize % 4:
                raise BinaryReadError(
                    f"load command {index} ({cmd:#x}) has an invalid cmdsize {cmdsize}: corrupt"
                )
            if offset + cmdsize > len(raw):
                raise BinaryReadError(
                    f"load command {index} ({cmd:#x}, {cmdsize} bytes) extends past "
                    f"sizeofcmds ({len(raw)} bytes): corrupt"
                )
            self._command(cmd, raw[offset : offset + cmdsize])
            offset += cmdsize

    def _fields(self, body: bytes, fmt: str, minimum: int, what: str) -> tuple[int, ...]:
        if len(body) < minimum:
            raise BinaryReadError(f"{what} command is too small ({len(body)} bytes): corrupt")
        return struct.unpack_from(self.order + fmt, body, _LOAD_COMMAND_SIZE)

    def _lc_str(self, body: bytes, minimum: int, what: str) -> str:
        """The string of an ``lc_str`` field (its offset is the command's third word)."""
        (offset,) = self._fields(body, "I", minimum, what)
        if not minimum <= offset < len(body):
            raise BinaryReadError(
                f"{what} string offset {offset} lies outside its command: corrupt"
            )
        end = body.find(b"\0", offset)
        if end < 0:
            raise BinaryReadError(f"{what} string is not NUL-terminated: corrupt")
        return body[offset:end].decode("utf-8", "backslashreplace")

    def _command(self, cmd: int, body: bytes) -> None:
        if cmd in (LC_SEGMENT, LC_SEGMENT_64):
            self._segment(body, is64=cmd == LC_SEGMENT_64)
        elif cmd == LC_SYMTAB:
            if self.symtab is not None:
                raise BinaryReadError("more than one LC_SYMTAB command: corrupt")
            self.symtab = _Symtab(*self._fields(body, "IIII", _SYMTAB_COMMAND_SIZE, "LC_SYMTAB"))
        elif cmd == LC_DYSYMTAB:
            if self.dysymtab is not None:
                raise BinaryReadError("more than one LC_DYSYMTAB command: corrupt")
            fields = self._fields(body, "6I", _DYSYMTAB_COMMAND_SIZE, "LC_DYSYMTAB")
            self.dysymtab = _Dysymtab(*fields)
        elif cmd in DYLIB_LOADING_COMMANDS:
            self.dylibs.append(self._lc_str(body, _DYLIB_COMMAND_SIZE, "dylib load"))
            if cmd == LC_LOAD_WEAK_DYLIB:
                self.weak_dylibs.append(self.dylibs[-1])
        elif cmd == LC_ID_DYLIB:
            self.install_name = self._lc_str(body, _DYLIB_COMMAND_SIZE, "LC_ID_DYLIB")
        elif cmd == LC_RPATH:
            self.rpaths.append(self._lc_str(body, _RPATH_COMMAND_SIZE, "LC_RPATH"))
        elif cmd == LC_BUILD_VERSION:
            platform, minos = self._fields(
                body, "II", _BUILD_VERSION_COMMAND_SIZE, "LC_BUILD_VERSION"
            )
            if platform == PLATFORM_MACOS and self.build_min_os is None:
                self.build_min_os = format_version(minos)
        elif cmd == LC_VERSION_MIN_MACOSX:
            (version,) = self._fields(body, "I", _VERSION_MIN_COMMAND_SIZE, "LC_VERSION_MIN_MACOSX")
            if self.version_min_os is None:
                self.version_min_os = format_version(version)
        elif cmd in (LC_DYLD_INFO, LC_DYLD_INFO_ONLY):
            fields = self._fields(body, "10I", _DYLD_INFO_COMMAND_SIZE, "LC_DYLD_INFO")
            names = ("rebase", "bind", "weak bind", "lazy bind", "export")
            for name, offset, size in zip(names, fields[0::2], fields[1::2], strict=True):
                if size:
                    self.view.check(offset, size, f"LC_DYLD_INFO {name} information")
                    if name in ("bind", "lazy bind"):  # where weak imports are flagged
                        self.bind_streams.append((name, offset, size))
        elif cmd == LC_DYLD_CHAINED_FIXUPS:
            if self.chained_fixups is not None:
                raise BinaryReadError("more than one LC_DYLD_CHAINED_FIXUPS command: corrupt")
            dataoff, datasize = self._fields(
                body, "II", _LINKEDIT_DATA_COMMAND_SIZE, "LC_DYLD_CHAINED_FIXUPS"
            )
            self.view.check(dataoff, datasize, "chained fixups")
            self.chained_fixups = (dataoff, datasize)

    def _segment(self, body: bytes, *, is64: bool) -> None:
        # segment_command(_64): segname[16], addresses and sizes, protections, nsects, flags;
        # then nsects section(_64) records: sectname[16], segname[16], addr, size, offset,
        # align, reloff, nreloc, flags, reserved...
        name = "LC_SEGMENT_64" if is64 else "LC_SEGMENT"
        header, fmt = (72, "16sQQQQiiII") if is64 else (56, "16sIIIIiiII")
        fields = self._fields(body, fmt, header, name)
        fileoff, filesize, nsects = fields[3], fields[4], fields[7]
        # dyld maps every segment's file range (and checks the code signature at the end of
        # __LINKEDIT): one that runs past the image means it was cut short.
        if fileoff + filesize > self.view.size:
            label = body[:16].rstrip(b"\0").decode("ascii", "backslashreplace")
            raise BinaryReadError(
                f"segment {label} ({filesize} bytes at {fileoff:#x}) extends past the end of "
                f"the {self.view.label} ({self.view.size} bytes): truncated or corrupt"
            )
        section_size, flags_at = (80, 64) if is64 else (68, 56)
        # section(_64): size (uint64 or uint32) at 40 (36), offset (uint32) at 48 (40).
        placement = self.order + ("QI" if is64 else "II")
        placement_at = 40 if is64 else 36
        if nsects > (len(body) - header) // section_size:
            raise BinaryReadError(f"{name} declares {nsects} sections, more than its cmdsize holds")
        for k in range(nsects):
            at = header + k * section_size
            sectname = body[at : at + 16].split(b"\0", 1)[0]
            (flags,) = struct.unpack_from(self.order + "I", body, at + flags_at)
            if flags & SECTION_TYPE == S_CSTRING_LITERALS or (
                sectname == b"__const" and body[at + 16 : at + 32].split(b"\0", 1)[0] == b"__TEXT"
            ):
                size, offset = struct.unpack_from(placement, body, at + placement_at)
                # Offset 0 is a zero-fill section: nothing in the file.
                if offset and size and offset + size <= self.view.size:
                    self.rodata.append((self.view.base + offset, size))
            if flags & (S_ATTR_PURE_INSTRUCTIONS | S_ATTR_SOME_INSTRUCTIONS) or (
                sectname == b"__text"
            ):
                kind = SymbolType.FUNC
            elif flags & SECTION_TYPE == S_THREAD_LOCAL_VARIABLES:
                kind = SymbolType.TLS
            else:
                kind = SymbolType.OBJECT
            self.section_types.append(kind)

    # -- __LINKEDIT -----------------------------------------------------------------------------

    def _symtab_span(self, local_symbols: bool) -> tuple[int, int]:
        """The entries to read: all of them, or only the external ones that LC_DYSYMTAB finds."""
        assert self.symtab is not None
        nsyms = self.symtab.nsyms
        dysymtab = self.dysymtab
        if dysymtab is None:
            return 0, nsyms
        for what, first, count in (
            ("local", dysymtab.ilocalsym, dysymtab.nlocalsym),
            ("external", dysymtab.iextdefsym, dysymtab.nextdefsym),
            ("undefined", dysymtab.iundefsym, dysymtab.nundefsym),
        ):
            if first + count > nsyms:
                raise BinaryReadError(
                    f"LC_DYSYMTAB {what} symbols ({count} from {first}) lie beyond the "
                    f"{nsyms} symbols of LC_SYMTAB: corrupt"
                )
        if local_symbols:
            return 0, nsyms
        ranges = [
            (first, first + count)
            for first, count in (
                (dysymtab.iextdefsym, dysymtab.nextdefsym),
                (dysymtab.iundefsym, dysymtab.nundefsym),
            )
            if count
        ]
        if not ranges:
            return 0, 0
        return min(r[0] for r in ranges), max(r[1] for r in ranges)

    def _read_linkedit(self, local_symbols: bool) -> _Linkedit:
        """The ``nlist`` entries of the span, the index of its first entry, the string table,
        the chained imports and the weak-import flags of the bind opcodes.

        The pieces are read in ascending file order (see :func:`_fetch`), followed, for a
        sequential source, by the start of the next slice of a universal file.
        """
        entsize = 16 if self.bits == 64 else 12
        view = self.view
        pieces: list[_Piece] = []
        first = 0
        if self.symtab is not None:
            symtab = self.symtab
            if symtab.nsyms > (view.size - min(symtab.symoff, view.size)) // entsize:
                raise BinaryReadError(
                    f"symbol table ({symtab.nsyms} entries at {symtab.symoff:#x}) extends past "
                    f"the end of the {view.size}-byte {self.label}: truncated or corrupt"
                )
            view.check(symtab.stroff, symtab.strsize, "string table")
            first, end = self._symtab_span(local_symbols)
            at, length = symtab.symoff + first * entsize, (end - first) * entsize
            pieces.append(_Piece(view.base + at, length, "symbols", "symbol table"))
            if view.source.sequential:  # read in passing; trimmed to what is named later
                strings = _Piece(view.base + symtab.stroff, symtab.strsize, "strings", "strtab")
                pieces.append(strings)
        if self.chained_fixups is not None:
            dataoff, datasize = self.chained_fixups
            pieces.append(_Piece(view.base + dataoff, datasize, "fixups", "chained fixups"))
        for name, offset, size in self.bind_streams:
            pieces.append(_Piece(view.base + offset, size, name, f"{name} opcodes"))
        following = self.following
        lookahead = view.source if isinstance(view.source, _Lookahead) else None
        if following is not None and lookahead is not None:
            size = following.size
            length = size if size <= _LOOKAHEAD_WHOLE else _LOOKAHEAD
            pieces.append(_Piece(following.base, length, "following", "next slice"))
        got = _fetch(view.source, pieces)
        if following is not None and lookahead is not None:
            lookahead.keep(following.base, got["following"])
        if self.symtab is not None and "strings" not in got:
            got["strings"] = self._read_strings(self.symtab, got["symbols"], entsize)
        chained = None
        if self.chained_fixups is not None:
            chained = parse_chained_imports(got["fixups"], self.order)
        weak_binds: dict[str, bool] = {}
        for name, _offset, _size in self.bind_streams:
            for symbol, weak in bind_import_flags(got[name], f"{name} opcodes").items():
                weak_binds[symbol] = weak_binds.get(symbol, True) and weak
        return _Linkedit(
            got.get("symbols", b""), first, got.get("strings", b""), chained, weak_binds
        )

    def _read_strings(self, symtab: _Symtab, raw: bytes, entsize: int) -> bytes:
        """The start of the string table, as far as the names of the ``raw`` entries reach.

        ld64 writes the names of external symbols first, so an unstripped library's string
        table is mostly local names the audit does not need (``libtorch_cpu.dylib``: 3 of 62
        MB). A name not ended within :data:`_NAME_MARGIN` bytes makes the whole table read.
        """
        if not raw:
            return b""
        swap = self.big_endian != (sys.byteorder == "big")
        highest = max(column32(raw, entsize, 0, swap))
        length = min(symtab.strsize, highest + _NAME_MARGIN)
        data = self.view.read(symtab.stroff, length, "string table")
        if length < symtab.strsize and data.find(b"\0", highest) < 0:
            data = self.view.read(symtab.stroff, symtab.strsize, "string table")
        return data

    # -- the model ------------------------------------------------------------------------------

    def _library_of(self, ordinal: int) -> str | None:
        """The install name an ``n_desc`` library ordinal (``GET_LIBRARY_ORDINAL``) names."""
        if not self.flags & MH_TWOLEVEL or ordinal in (
            SELF_LIBRARY_ORDINAL,
            DYNAMIC_LOOKUP_ORDINAL,
            EXECUTABLE_ORDINAL,
        ):
            return None
        if ordinal > len(self.dylibs):
            raise BinaryReadError(
                f"a symbol is bound to library ordinal {ordinal}, but the {self.label} loads "
                f"only {len(self.dylibs)} libraries: corrupt"
            )
        return self.dylibs[ordinal - 1]

    def _chained_library_of(self, ordinal: int) -> str | None:
        """The install name a chained-fixups ordinal names (non-positive ones are special)."""
        if ordinal <= 0 or not self.flags & MH_TWOLEVEL:
            return None
        if ordinal > len(self.dylibs):
            raise BinaryReadError(
                f"a chained fixups import is bound to library ordinal {ordinal}, but the "
                f"{self.label} loads only {len(self.dylibs)} libraries: corrupt"
            )
        return self.dylibs[ordinal - 1]

    def library(self, *, local_symbols: bool) -> Library:
        if self.filetype not in (MH_DYLIB, MH_BUNDLE, MH_EXECUTE):
            kind = _FILETYPE_NAMES.get(self.filetype, f"file type {self.filetype}")
            raise BinaryReadError(f"Mach-O {kind}, not a shared library or executable")
        raw, first, strtab, chained, weak_binds = self._read_linkedit(local_symbols)
        entsize = 16 if self.bits == 64 else 12
        table = NlistTable(
            raw,
            entsize,
            big_endian=self.big_endian,
            strtab=strtab,
            section_types=self.section_types + [SymbolType.OBJECT] * 256,
        )
        span = range(table.count)

        def candidates(start: int, count: int) -> range:
            if self.dysymtab is None:
                return span
            return range(max(0, start - first), max(0, start - first + count))

        dysymtab = self.dysymtab or _Dysymtab(0, 0, 0, 0, 0, 0)
        import_indices = table.select(
            SymbolKind.IMPORT, candidates(dysymtab.iundefsym, dysymtab.nundefsym)
        )
        export_indices = table.select(
            SymbolKind.EXPORT, candidates(dysymtab.iextdefsym, dysymtab.nextdefsym)
        )
        local_indices: list[int] = []
        if local_symbols and self.symtab is not None:
            # Private externs may sit among the external definitions: look at every entry.
            local_indices = table.select(SymbolKind.LOCAL, span)
        table.validate_names(chain(import_indices, export_indices, local_indices))

        import_names = table.names(import_indices)
        libraries = [self._library_of(o) for o in table.ordinals(import_indices)]
        extra: list[Symbol] = []
        weak = {_strip_underscore(name) for name, is_weak in weak_binds.items() if is_weak}
        if chained:
            extra = self._merge_chained(chained, import_names, libraries, table, export_indices)
            weak.update(_strip_underscore(e.name) for e in chained if e.weak_import)
        imports = MachOSymbols(
            table,
            import_indices,
            SymbolKind.IMPORT,
            names=import_names,
            libraries=libraries,
            extra=tuple(extra),
            weak=frozenset(weak),
        )
        exports = MachOSymbols(table, export_indices, SymbolKind.EXPORT)
        locals_: tuple[Symbol, ...] | None = None
        if local_symbols and self.symtab is not None:
            locals_ = MachOSymbols(table, local_indices, SymbolKind.LOCAL).symbols()
        return Library(
            path=self.path,
            format=BinaryFormat.MACHO,
            machine=self.machine,
            bits=self.bits,
            byte_order="big" if self.big_endian else "little",
            imports=imports,
            exports=exports,
            needed=tuple(self.dylibs),
            soname=self.install_name,
            rpath=tuple(self.rpaths),
            local_symbols=locals_,
            min_os=self.build_min_os or self.version_min_os,
            rodata=merge_ranges(self.rodata),
            optional_needed=tuple(n for n in self.weak_dylibs if self.dylibs.count(n) == 1),
            executable=self.filetype == MH_EXECUTE,
        )

    def _merge_chained(
        self,
        chained: list[ChainedImport],
        import_names: list[str],
        libraries: list[str | None],
        table: NlistTable,
        export_indices: list[int],
    ) -> list[Symbol]:
        """Fill missing libraries from the chained-fixups imports; return imports only there.

        A weak definition of the image itself is bound through the table too (ordinal 0 or
        weak lookup, so that dyld can coalesce it): names the image exports are not imports.
        """
        position = {name: k for k, name in enumerate(import_names)}
        exported: frozenset[str] | None = None
        extra: dict[str, Symbol] = {}
        for entry in chained:
            name = _strip_underscore(entry.name)
            if not name:
                continue
            library = self._chained_library_of(entry.lib_ordinal)
            k = position.get(name)
            if k is not None:
                if libraries[k] is None and library is not None:
                    libraries[k] = library
                continue
            if name in extra:
                continue
            if exported is None:
                exported = frozenset(table.names(export_indices))
            if name in exported:
                continue
            binding = SymbolBinding.WEAK if entry.weak_import else SymbolBinding.GLOBAL
            extra[name] = Symbol(
                name,
                False,
                binding,
                SymbolType.NOTYPE,
                SymbolVisibility.DEFAULT,
                library=library,
            )
        return list(extra.values())


# -- universal files ------------------------------------------------------------------------------


class FatArch(NamedTuple):
    """One ``fat_arch``/``fat_arch_64`` record."""

    cputype: int
    offset: int
    size: int


def fat_archs(source: ByteSource) -> list[FatArch]:
    """The architecture slices a universal file declares, checked, in ascending file order.

    Raises :class:`BinaryReadError` for an absurd count, a slice outside the file, over the
    header or overlapping another.
    """
    magic, nfat_arch = struct.unpack(">II", source.read(0, 8, "fat header"))
    record = _FAT_ARCH_64 if magic == FAT_MAGIC_64 else _FAT_ARCH
    if nfat_arch == 0:
        raise BinaryReadError("universal binary with no architectures")
    if nfat_arch > MAX_FAT_ARCHS:
        raise BinaryReadError(f"universal binary declares {nfat_arch} architectures: corrupt")
    table_end = 8 + nfat_arch * record.size
    raw = source.read(8, nfat_arch * record.size, "fat architecture table")
    archs = []
    for k in range(nfat_arch):
        cputype, _subtype, offset, size, *_rest = record.unpack_from(raw, k * record.size)
        name = machine_name(cputype)
        if size == 0:
            raise BinaryReadError(f"universal binary slice {k} ({name}) is empty: corrupt")
        if offset < table_end:
            raise BinaryReadError(
                f"universal binary slice {k} ({name}) overlaps the fat header: corrupt"
            )
        if offset + size > source.size:
            raise BinaryReadError(
                f"universal binary slice {k} ({name}, {size} bytes at {offset:#x}) extends past "
                f"the end of the {source.size}-byte file: truncated or corrupt"
            )
        archs.append(FatArch(cputype, offset, size))
    archs.sort(key=lambda arch: arch.offset)
    for current, following in pairwise(archs):
        if current.offset + current.size > following.offset:
            raise BinaryReadError(
                f"universal binary slices {machine_name(current.cputype)} and "
                f"{machine_name(following.cputype)} overlap: corrupt"
            )
    return archs


def _ordered_union(groups: Iterable[Iterable[str]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(chain.from_iterable(groups)))


def _parse_fat(source: ByteSource, path: Path, *, local_symbols: bool) -> Library:
    archs = fat_archs(source)
    if source.sequential:
        source = _Lookahead(source)
    views = [
        _View(source, arch.offset, arch.size, f"{machine_name(arch.cputype)} slice")
        for arch in archs
    ]
    slices = []
    for k, (arch, view) in enumerate(zip(archs, views, strict=True)):
        label = view.label
        following = views[k + 1] if k + 1 < len(views) else None
        try:
            image = _MachOImage(view, path, following)
            if image.cputype != arch.cputype:
                raise BinaryReadError(
                    f"the fat header says {machine_name(arch.cputype)} but the slice holds "
                    f"{image.machine}: corrupt"
                )
            slices.append(image.library(local_symbols=local_symbols))
        except BinaryReadError as exc:
            raise BinaryReadError(f"{label}: {exc}") from exc
    versions = [s.min_os for s in slices if s.min_os is not None]
    orders = {s.byte_order for s in slices}
    locals_: tuple[Symbol, ...] | None = None
    if local_symbols:
        locals_ = tuple(dict.fromkeys(chain.from_iterable(s.local_symbols or () for s in slices)))
    return Library(
        path=path,
        format=BinaryFormat.MACHO,
        machine="+".join(sorted({s.machine for s in slices})),
        bits=max(s.bits for s in slices),
        byte_order=orders.pop() if len(orders) == 1 else "mixed",
        imports=UnionSymbols([s.imports for s in slices]),
        exports=UnionSymbols([s.exports for s in slices]),
        needed=_ordered_union(s.needed for s in slices),
        soname=next((s.soname for s in slices if s.soname is not None), None),
        rpath=_ordered_union(s.rpath for s in slices),
        local_symbols=locals_,
        slices=tuple(slices),
        min_os=max(versions, key=_version_key, default=None),
        rodata=merge_ranges(chain.from_iterable(s.rodata for s in slices)),
        # Optional only where every slice that loads it may go on without it.
        optional_needed=tuple(
            name
            for name in _ordered_union(s.optional_needed for s in slices)
            if all(name in s.optional_needed or name not in s.needed for s in slices)
        ),
        executable=any(s.executable for s in slices),
    )


def parse_macho(source: ByteSource, path: Path, *, local_symbols: bool = False) -> Library:
    """Parse the Mach-O dylib, bundle or executable whose bytes ``source`` gives (``path``
    names it; an ``MH_EXECUTE`` image is marked ``executable``).

    A universal file gives one :class:`~torch_abi_audit.model.Library` with a ``slices`` entry
    per architecture. With ``local_symbols`` the non-exported definitions of the symbol table
    are read too.

    Raises :class:`BinaryReadError` for anything that is not a readable Mach-O dylib, bundle or
    executable (object files, dSYM files and kernel extensions included).
    """
    try:
        if source.size < 8:
            raise BinaryReadError(f"{source.size}-byte file: too short for a Mach-O header")
        magic = int.from_bytes(source.read(0, 4, "Mach-O magic"), "big")
        if magic in (FAT_MAGIC, FAT_MAGIC_64):
            return _parse_fat(source, path, local_symbols=local_symbols)
        image = _MachOImage(_View(source, 0, source.size, "file"), path)
        return image.library(local_symbols=local_symbols)
    except (struct.error, ValueError, OverflowError, MemoryError, IndexError) as exc:
        raise BinaryReadError(f"corrupt Mach-O structure ({exc})") from exc


def chained_fixup_imports(source: ByteSource) -> dict[str, tuple[ChainedImport, ...] | None]:
    """The ``LC_DYLD_CHAINED_FIXUPS`` imports table of each image, by machine.

    ``None`` for an image without chained fixups. For diagnostics and tests:
    :func:`parse_macho` already merges these tables into the imports it reports. Raises
    :class:`BinaryReadError` as :func:`parse_macho` does.
    """
    try:
        if source.size < 8:
            raise BinaryReadError(f"{source.size}-byte file: too short for a Mach-O header")
        magic = int.from_bytes(source.read(0, 4, "Mach-O magic"), "big")
        if magic in (FAT_MAGIC, FAT_MAGIC_64):
            views = [
                _View(source, arch.offset, arch.size, f"{machine_name(arch.cputype)} slice")
                for arch in fat_archs(source)
            ]
        else:
            views = [_View(source, 0, source.size, "file")]
        found: dict[str, tuple[ChainedImport, ...] | None] = {}
        for view in views:
            image = _MachOImage(view, Path(view.label))
            table = None
            if image.chained_fixups is not None:
                dataoff, datasize = image.chained_fixups
                data = view.read(dataoff, datasize, "chained fixups")
                table = tuple(parse_chained_imports(data, image.order))
            found[image.machine] = table
        return found
    except (struct.error, ValueError, OverflowError, MemoryError, IndexError) as exc:
        raise BinaryReadError(f"corrupt Mach-O structure ({exc})") from exc


def read_macho(path: Path, *, local_symbols: bool = False) -> Library:
    """Read the Mach-O dylib or bundle at ``path`` (see :func:`parse_macho`).

    Raises :class:`BinaryReadError` as :func:`parse_macho` does, and :class:`OSError` if the
    file cannot be opened.
    """
    with file_bytes(path) as source:
        return parse_macho(source, path, local_symbols=local_symbols)
