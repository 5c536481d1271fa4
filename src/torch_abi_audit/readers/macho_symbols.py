"""Mach-O symbol tables: the ``nlist`` entries of ``LC_SYMTAB``, decoded lazily.

Split from :mod:`torch_abi_audit.readers.macho` (which finds the tables) so that each module
has one job, as :mod:`~torch_abi_audit.readers.elf_symbols` is for ELF. Columns (``n_type``,
``n_sect``, ``n_desc`` of every entry) are sliced out of the raw table at once; names are decoded
only for the entries somebody asks for. A universal file's imports and exports are the
:class:`UnionSymbols` of its slices' tables.

Reference: ``mach-o/nlist.h`` (``nlist``/``nlist_64``, ``n_type``/``n_desc`` bits,
``GET_LIBRARY_ORDINAL``).
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Sequence
from enum import IntEnum
from functools import partial
from itertools import chain, compress

from torch_abi_audit.model import (
    Symbol,
    SymbolBinding,
    SymbolTable,
    SymbolType,
    SymbolVisibility,
)
from torch_abi_audit.readers.errors import BinaryReadError

# n_type bits and values, n_desc flags (mach-o/nlist.h)
N_STAB = 0xE0
N_PEXT = 0x10
N_TYPE = 0x0E
N_EXT = 0x01
N_UNDF = 0x0
N_ABS = 0x2
N_INDR = 0xA
N_PBUD = 0xC
N_SECT = 0xE
N_WEAK_REF = 0x0040
N_WEAK_DEF = 0x0080


def column32(raw: bytes, entsize: int, offset: int, swap: bool) -> list[int]:
    """The 32-bit field at ``offset`` of every ``entsize``-byte entry (``entsize % 4 == 0``)."""
    values = array("I", memoryview(raw).cast("I")[offset // 4 :: entsize // 4])
    if swap:
        values.byteswap()
    return values.tolist()


def _column16(raw: bytes, entsize: int, offset: int, swap: bool) -> list[int]:
    """The 16-bit field at ``offset`` of every ``entsize``-byte entry (``entsize % 2 == 0``)."""
    values = array("H", memoryview(raw).cast("H")[offset // 2 :: entsize // 2])
    if swap:
        values.byteswap()
    return values.tolist()


class SymbolKind(IntEnum):
    """Which entries of the symbol table a :class:`MachOSymbols` holds."""

    IMPORT = 0
    EXPORT = 1
    LOCAL = 2


# n_type -> what the entry is (nlist.h): stabs are debugger entries and never symbols.
def _is_import(n_type: int) -> bool:
    kind = n_type & N_TYPE
    return not n_type & N_STAB and bool(n_type & N_EXT) and kind in (N_UNDF, N_PBUD)


def _is_export(n_type: int) -> bool:
    kind = n_type & N_TYPE
    return (
        not n_type & N_STAB
        and n_type & (N_EXT | N_PEXT) == N_EXT
        and kind in (N_SECT, N_ABS, N_INDR)
    )


def _is_local(n_type: int) -> bool:
    """Defined but not exported: non-external, or a private extern (``N_PEXT``)."""
    kind = n_type & N_TYPE
    return (
        not n_type & N_STAB
        and kind in (N_SECT, N_ABS, N_INDR)
        and (not n_type & N_EXT or bool(n_type & N_PEXT))
    )


_IS_IMPORT = bytes(_is_import(t) for t in range(256))
_IS_EXPORT = bytes(_is_export(t) for t in range(256))
_IS_LOCAL = bytes(_is_local(t) for t in range(256))
_SELECTORS = {
    SymbolKind.IMPORT: _IS_IMPORT,
    SymbolKind.EXPORT: _IS_EXPORT,
    SymbolKind.LOCAL: _IS_LOCAL,
}


class NlistTable:
    """The ``nlist``/``nlist_64`` entries read from ``LC_SYMTAB``, as columns.

    ``n_strx``, ``n_type``, ``n_sect`` and ``n_desc`` of every entry are pulled out once with
    ``memoryview.cast`` and slices; names are decoded from the string table only for the
    entries somebody asks for, and :class:`Symbol` tuples built only when asked for.
    """

    def __init__(
        self,
        raw: bytes,
        entsize: int,
        *,
        big_endian: bool,
        strtab: bytes,
        section_types: Sequence[SymbolType],
    ) -> None:
        swap = big_endian != (sys.byteorder == "big")
        self.count = len(raw) // entsize
        self.strx = column32(raw, entsize, 0, swap)
        self.types = raw[4::entsize]
        self.sects = raw[5::entsize]
        self.descs = _column16(raw, entsize, 6, swap)
        self.strtab = strtab
        self.section_types = section_types
        self._text: tuple[str, bool] | None = None

    def select(self, kind: SymbolKind, candidates: range) -> list[int]:
        """The entries of ``candidates`` that are of ``kind`` and have a name."""
        table = _SELECTORS[kind]
        types, strx = self.types, self.strx
        return [
            i
            for i in compress(candidates, map(table.__getitem__, types[candidates.start :]))
            if strx[i]
        ]

    def validate_names(self, indices: Iterable[int]) -> None:
        """Check that the names of ``indices`` are NUL-terminated strings inside the table,
        and keep only the part of the table those names need.

        Raises :class:`BinaryReadError` otherwise, so that the lazy tables never fail later.
        """
        highest = max((self.strx[i] for i in indices), default=-1)
        if highest < 0:
            self.strtab = b""
            return
        if highest >= len(self.strtab):
            raise BinaryReadError("a symbol name points outside the string table")
        end = self.strtab.find(b"\0", highest)
        if end < 0:
            raise BinaryReadError("a symbol name is not NUL-terminated")
        if end + 1 < len(self.strtab):
            self.strtab = self.strtab[: end + 1]

    def _strings(self) -> tuple[str, bool]:
        if self._text is None:
            ascii_only = self.strtab.isascii()
            self._text = (self.strtab.decode("ascii") if ascii_only else "", ascii_only)
        return self._text

    def names(self, indices: Sequence[int]) -> list[str]:
        """The names of ``indices``, one leading ``_`` stripped (validated beforehand)."""
        strx = self.strx
        offsets = [strx[i] for i in indices]
        text, ascii_only = self._strings()
        if ascii_only:
            find = text.find
            # A bool is 0 or 1: skip the first character when it is the underscore.
            return [text[o + (text[o] == "_") : find("\0", o)] for o in offsets]
        strtab = self.strtab
        names = []
        for o in offsets:
            end = strtab.find(b"\0", o)
            start = o + (strtab[o] == 0x5F)
            names.append(strtab[start:end].decode("utf-8", "backslashreplace"))
        return names

    def ordinals(self, indices: Sequence[int]) -> list[int]:
        """``GET_LIBRARY_ORDINAL(n_desc)`` of ``indices``."""
        descs = self.descs
        return [(descs[i] >> 8) & 0xFF for i in indices]

    def decode(
        self,
        indices: Sequence[int],
        names: Sequence[str],
        kind: SymbolKind,
        libraries: Sequence[str | None] | None,
    ) -> tuple[Symbol, ...]:
        """:class:`Symbol` tuples for ``indices`` (whose ``names`` the caller already has)."""
        types, sects, descs = self.types, self.sects, self.descs
        n = len(indices)
        if kind == SymbolKind.IMPORT:
            weak_flags = [descs[i] & N_WEAK_REF for i in indices]
            symbol_types = [SymbolType.NOTYPE] * n
            visibilities = [SymbolVisibility.DEFAULT] * n
        else:
            weak_flags = [descs[i] & N_WEAK_DEF for i in indices]
            section_types = self.section_types
            symbol_types = [
                section_types[sects[i]]
                if types[i] & N_TYPE == N_SECT
                else SymbolType.OBJECT
                if types[i] & N_TYPE == N_ABS
                else SymbolType.NOTYPE
                for i in indices
            ]
            visibilities = [
                SymbolVisibility.HIDDEN if types[i] & N_PEXT else SymbolVisibility.DEFAULT
                for i in indices
            ]
        bindings = [SymbolBinding.WEAK if w else SymbolBinding.GLOBAL for w in weak_flags]
        if kind == SymbolKind.LOCAL:
            bindings = [
                b if types[i] & N_EXT else SymbolBinding.LOCAL
                for b, i in zip(bindings, indices, strict=True)
            ]
        rows = zip(
            names,
            [kind != SymbolKind.IMPORT] * n,
            bindings,
            symbol_types,
            visibilities,
            [None] * n,
            [False] * n,
            libraries if libraries is not None else [None] * n,
            strict=True,
        )
        # tuple.__new__ skips the generated NamedTuple __new__ and its argument handling.
        return tuple(map(partial(tuple.__new__, Symbol), rows))


class MachOSymbols(SymbolTable):
    """The imports, exports or local symbols of one image, decoded on demand.

    ``extra`` holds symbols found outside the ``nlist`` table (chained-fixups imports), which
    follow the table's entries. ``weak`` names imports that the binding information (chained
    fixups, bind opcodes) marks as weak imports even where their ``nlist`` entry lacks
    ``N_WEAK_REF``.
    """

    __slots__ = (
        "_extra",
        "_indices",
        "_kind",
        "_libraries",
        "_names",
        "_symbols",
        "_table",
        "_weak",
    )

    def __init__(
        self,
        table: NlistTable,
        indices: list[int],
        kind: SymbolKind,
        *,
        names: list[str] | None = None,
        libraries: list[str | None] | None = None,
        extra: tuple[Symbol, ...] = (),
        weak: frozenset[str] = frozenset(),
    ) -> None:
        self._weak = weak
        self._table = table
        self._indices = indices
        self._kind = kind
        self._libraries = libraries
        self._extra = extra
        self._names = names
        self._symbols: tuple[Symbol, ...] | None = None

    def _name_list(self) -> list[str]:
        if self._names is None:
            self._names = self._table.names(self._indices)
        return self._names

    def _weakened(self, symbols: tuple[Symbol, ...]) -> tuple[Symbol, ...]:
        if not self._weak:
            return symbols
        return tuple(
            s._replace(binding=SymbolBinding.WEAK) if s.name in self._weak else s for s in symbols
        )

    def symbols(self) -> tuple[Symbol, ...]:
        if self._symbols is None:
            decoded = self._table.decode(
                self._indices, self._name_list(), self._kind, self._libraries
            )
            self._symbols = self._weakened(decoded) + self._extra
        return self._symbols

    def names(self) -> frozenset[str]:
        if self._symbols is not None:
            return frozenset(s.name for s in self._symbols)
        return frozenset(self._name_list()).union(s.name for s in self._extra)

    def weak_names(self) -> frozenset[str]:
        if self._symbols is not None or self._kind != SymbolKind.IMPORT:
            return super().weak_names()
        # From the n_desc column, without building a Symbol per import.
        descs = self._table.descs
        weak: set[str] = set(self._weak)
        strong: set[str] = set()
        for index, name in zip(self._indices, self._name_list(), strict=True):
            if descs[index] & N_WEAK_REF:
                weak.add(name)
            elif name not in self._weak:
                strong.add(name)
        for symbol in self._extra:
            if symbol.binding is SymbolBinding.WEAK or symbol.name in self._weak:
                weak.add(symbol.name)
            else:
                strong.add(symbol.name)
        return frozenset(weak - strong) & self.names()

    def with_prefix(self, *prefixes: str) -> tuple[Symbol, ...]:
        if self._symbols is not None:
            return super().with_prefix(*prefixes)
        names = self._name_list()
        picked = [k for k, name in enumerate(names) if name.startswith(prefixes)]
        libraries = self._libraries
        decoded = self._table.decode(
            [self._indices[k] for k in picked],
            [names[k] for k in picked],
            self._kind,
            None if libraries is None else [libraries[k] for k in picked],
        )
        extra = tuple(s for s in self._extra if s.name.startswith(prefixes))
        return self._weakened(decoded) + extra


class UnionSymbols(SymbolTable):
    """The union of the tables of a universal file's slices, in slice order, without repeats."""

    __slots__ = ("_parts", "_symbols")

    def __init__(self, parts: Sequence[SymbolTable]) -> None:
        self._parts = tuple(parts)
        self._symbols: tuple[Symbol, ...] | None = None

    def symbols(self) -> tuple[Symbol, ...]:
        if self._symbols is None:
            merged = chain.from_iterable(part.symbols() for part in self._parts)
            self._symbols = tuple(dict.fromkeys(merged))
        return self._symbols

    def names(self) -> frozenset[str]:
        return frozenset().union(*(part.names() for part in self._parts))

    def with_prefix(self, *prefixes: str) -> tuple[Symbol, ...]:
        if self._symbols is not None:
            return super().with_prefix(*prefixes)
        found = chain.from_iterable(part.with_prefix(*prefixes) for part in self._parts)
        return tuple(dict.fromkeys(found))


# -- one image ------------------------------------------------------------------------------------
