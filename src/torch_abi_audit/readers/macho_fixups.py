"""Mach-O binding information: the chained-fixups imports table and the bind opcode streams.

Split from :mod:`torch_abi_audit.readers.macho` (which finds the data in ``__LINKEDIT``), as
:mod:`~torch_abi_audit.readers.macho_symbols` is for the symbol table. Both tell, per imported
symbol, which library it binds to and whether the import is *weak* — allowed to stay unbound
(``dyld`` then writes 0) when no loaded image defines it:

* macOS 12+ binaries (``LC_DYLD_CHAINED_FIXUPS``): ``dyld_chained_import*`` entries carry a
  ``weak_import`` bit;
* older ones (``LC_DYLD_INFO(_ONLY)``): the bind and lazy-bind opcode streams set it with
  ``BIND_OPCODE_SET_SYMBOL_TRAILING_FLAGS_IMM`` and ``BIND_SYMBOL_FLAGS_WEAK_IMPORT``. (The
  "weak bind" stream is something else: it coalesces weak *definitions*.)

The ``nlist`` entry of a weak import normally carries ``N_WEAK_REF`` too; these tables are read
so that an import is weak when any of the three says so (a stripped or unusual binary may lack
one of them).

References: ``mach-o/fixup-chains.h`` (``dyld_chained_fixups_header``, ``dyld_chained_import``,
``_addend``, ``_addend64``), ``mach-o/loader.h`` (``BIND_OPCODE_*``, ``BIND_IMMEDIATE_MASK``,
``BIND_SYMBOL_FLAGS_WEAK_IMPORT``) and dyld's ``MachOAnalyzer::forEachBind`` for how the
stream is walked.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from torch_abi_audit.readers.errors import BinaryReadError

# -- mach-o/fixup-chains.h ------------------------------------------------------------------------
DYLD_CHAINED_IMPORT = 1
DYLD_CHAINED_IMPORT_ADDEND = 2
DYLD_CHAINED_IMPORT_ADDEND64 = 3
_CHAINED_FIXUPS_HEADER_SIZE = 28  # seven uint32

# -- mach-o/loader.h: bind opcodes ----------------------------------------------------------------
BIND_OPCODE_MASK = 0xF0
BIND_IMMEDIATE_MASK = 0x0F
BIND_OPCODE_DONE = 0x00
BIND_OPCODE_SET_DYLIB_ORDINAL_IMM = 0x10
BIND_OPCODE_SET_DYLIB_ORDINAL_ULEB = 0x20
BIND_OPCODE_SET_DYLIB_SPECIAL_IMM = 0x30
BIND_OPCODE_SET_SYMBOL_TRAILING_FLAGS_IMM = 0x40
BIND_OPCODE_SET_TYPE_IMM = 0x50
BIND_OPCODE_SET_ADDEND_SLEB = 0x60
BIND_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB = 0x70
BIND_OPCODE_ADD_ADDR_ULEB = 0x80
BIND_OPCODE_DO_BIND = 0x90
BIND_OPCODE_DO_BIND_ADD_ADDR_ULEB = 0xA0
BIND_OPCODE_DO_BIND_ADD_ADDR_IMM_SCALED = 0xB0
BIND_OPCODE_DO_BIND_ULEB_TIMES_SKIPPING_ULEB = 0xC0
BIND_OPCODE_THREADED = 0xD0
BIND_SUBOPCODE_THREADED_SET_BIND_ORDINAL_TABLE_SIZE_ULEB = 0x00
BIND_SYMBOL_FLAGS_WEAK_IMPORT = 0x1
# Opcodes followed by one ULEB128 / SLEB128 operand, and the one followed by two.
_ONE_OPERAND = frozenset(
    {
        BIND_OPCODE_SET_DYLIB_ORDINAL_ULEB,
        BIND_OPCODE_SET_ADDEND_SLEB,
        BIND_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB,
        BIND_OPCODE_ADD_ADDR_ULEB,
        BIND_OPCODE_DO_BIND_ADD_ADDR_ULEB,
    }
)


class ChainedImport(NamedTuple):
    """One entry of a chained-fixups imports table (``dyld_chained_import*``)."""

    lib_ordinal: int  # signed: 0 self, -1 main executable, -2 flat lookup, -3 weak lookup
    weak_import: bool
    name: str  # as stored, with its leading underscore


def parse_chained_imports(data: bytes, order: str) -> list[ChainedImport]:
    """The imports table of ``LC_DYLD_CHAINED_FIXUPS`` data (``dyld_chained_fixups_header``).

    ``order`` is the ``struct`` byte-order prefix of the image. The bit fields of
    ``dyld_chained_import*`` are read from words in that order, low bits first (every
    chained-fixups binary is little-endian). Raises :class:`BinaryReadError` for a table that
    does not fit its data.
    """
    datasize = len(data)
    if datasize < _CHAINED_FIXUPS_HEADER_SIZE:
        raise BinaryReadError(f"chained fixups data ({datasize} bytes) is too small: corrupt")
    (
        version,
        _starts_offset,
        imports_offset,
        symbols_offset,
        imports_count,
        imports_format,
        symbols_format,
    ) = struct.unpack_from(order + "7I", data)
    if version != 0:
        raise BinaryReadError(f"unknown chained fixups version {version}")
    if symbols_format != 0:
        raise BinaryReadError(f"unsupported chained fixups symbol format {symbols_format}")
    entry_size = {
        DYLD_CHAINED_IMPORT: 4,
        DYLD_CHAINED_IMPORT_ADDEND: 8,
        DYLD_CHAINED_IMPORT_ADDEND64: 16,
    }.get(imports_format)
    if entry_size is None:
        raise BinaryReadError(f"unknown chained fixups import format {imports_format}")
    if imports_count > datasize // entry_size:
        raise BinaryReadError(f"chained fixups declare {imports_count} imports: corrupt")
    if imports_offset + imports_count * entry_size > datasize or symbols_offset > datasize:
        raise BinaryReadError("chained fixups imports table lies outside its data: corrupt")
    if imports_count == 0:
        return []
    names = data[symbols_offset:]
    if imports_format == DYLD_CHAINED_IMPORT_ADDEND64:
        words = struct.unpack_from(f"{order}{imports_count * 2}Q", data, imports_offset)
        entries = [(w & 0xFFFF, (w >> 16) & 1, w >> 32, 0xFFFF) for w in words[0::2]]
    else:
        step = entry_size // 4
        words = struct.unpack_from(f"{order}{imports_count * step}I", data, imports_offset)
        entries = [(w & 0xFF, (w >> 8) & 1, w >> 9, 0xFF) for w in words[0::step]]
    imports = []
    last_nul = names.rfind(b"\0")
    for ordinal, weak, name_offset, mask in entries:
        if name_offset > last_nul:
            raise BinaryReadError("a chained fixups import name lies outside its string table")
        end = names.find(b"\0", name_offset)
        name = names[name_offset:end].decode("utf-8", "backslashreplace")
        # dyld: values above 0xF0 (0xFFF0) are the negative special ordinals.
        signed = ordinal - (mask + 1) if ordinal > mask - 0xF else ordinal
        imports.append(ChainedImport(signed, bool(weak), name))
    return imports


def _skip_leb128(data: bytes, at: int, what: str) -> int:
    """The offset just past the (U|S)LEB128 number that starts at ``at``."""
    end = len(data)
    while at < end:
        if not data[at] & 0x80:
            return at + 1
        at += 1
    raise BinaryReadError(f"{what}: a LEB128 number runs past the end of the stream: corrupt")


def bind_import_flags(data: bytes, what: str) -> dict[str, bool]:
    """Name (as stored, with its underscore) -> whether every bind of it is a weak import,
    from one ``LC_DYLD_INFO`` bind or lazy-bind opcode stream.

    The stream is walked to its end: the lazy-bind stream separates its entries with
    ``BIND_OPCODE_DONE``. Only the symbol names and their flags are kept; addresses, types and
    addends are skipped. Raises :class:`BinaryReadError` for an unknown opcode or an operand
    that runs past the end.
    """
    weak: dict[str, bool] = {}
    at = 0
    end = len(data)
    while at < end:
        byte = data[at]
        opcode, immediate = byte & BIND_OPCODE_MASK, byte & BIND_IMMEDIATE_MASK
        at += 1
        if opcode == BIND_OPCODE_SET_SYMBOL_TRAILING_FLAGS_IMM:
            stop = data.find(b"\0", at)
            if stop < 0:
                raise BinaryReadError(f"{what}: a symbol name is not NUL-terminated: corrupt")
            name = data[at:stop].decode("utf-8", "backslashreplace")
            is_weak = bool(immediate & BIND_SYMBOL_FLAGS_WEAK_IMPORT)
            weak[name] = weak.get(name, True) and is_weak
            at = stop + 1
        elif opcode in _ONE_OPERAND:
            at = _skip_leb128(data, at, what)
        elif opcode == BIND_OPCODE_DO_BIND_ULEB_TIMES_SKIPPING_ULEB:
            at = _skip_leb128(data, _skip_leb128(data, at, what), what)
        elif opcode == BIND_OPCODE_THREADED:
            if immediate == BIND_SUBOPCODE_THREADED_SET_BIND_ORDINAL_TABLE_SIZE_ULEB:
                at = _skip_leb128(data, at, what)
        elif opcode not in (
            BIND_OPCODE_DONE,
            BIND_OPCODE_SET_DYLIB_ORDINAL_IMM,
            BIND_OPCODE_SET_DYLIB_SPECIAL_IMM,
            BIND_OPCODE_SET_TYPE_IMM,
            BIND_OPCODE_DO_BIND,
            BIND_OPCODE_DO_BIND_ADD_ADDR_IMM_SCALED,
        ):
            raise BinaryReadError(f"{what}: unknown bind opcode {byte:#04x}: corrupt")
    return weak
