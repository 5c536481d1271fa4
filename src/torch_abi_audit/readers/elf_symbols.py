"""ELF symbol tables: struct layouts and the column-wise, lazy decoding of ``.dynsym``.

Split from :mod:`torch_abi_audit.readers.elf` (which finds the tables) so that each module has
one job. Decoding works on whole columns — ``st_name``, ``st_info``, ``st_shndx`` of every
entry — with ``memoryview.cast`` and slices, so a 75k-entry table is scanned in milliseconds;
:class:`Symbol` tuples are built only for the entries somebody asks for.
"""

from __future__ import annotations

import re
import struct
import sys
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from itertools import compress, repeat
from operator import itemgetter, not_

from torch_abi_audit.model import (
    Symbol,
    SymbolBinding,
    SymbolTable,
    SymbolType,
    SymbolVisibility,
)
from torch_abi_audit.readers.errors import BinaryReadError

SHN_UNDEF = 0
_STB_WEAK = 2
VERSYM_HIDDEN = 0x8000
VERSYM_INDEX = 0x7FFF

#: Per-symbol ``.gnu.version`` indices, and index -> (version name, library it is needed from).
Versions = tuple[Sequence[int], dict[int, tuple[str, str | None]]]

# st_info / st_other decoding, indexed by the raw field value.
_BINDINGS: dict[int, SymbolBinding] = {
    0: SymbolBinding.LOCAL,
    1: SymbolBinding.GLOBAL,
    2: SymbolBinding.WEAK,
    10: SymbolBinding.GNU_UNIQUE,
}
_TYPES: dict[int, SymbolType] = {
    0: SymbolType.NOTYPE,
    1: SymbolType.OBJECT,
    2: SymbolType.FUNC,
    3: SymbolType.SECTION,
    4: SymbolType.FILE,
    5: SymbolType.COMMON,
    6: SymbolType.TLS,
    10: SymbolType.GNU_IFUNC,
}
# bytes.translate() tables: 1 for a zero byte, for an STB_WEAK st_info; the other st_infos.
_IS_ZERO = bytes([1]) + bytes(255)
_IS_WEAK_INFO = bytes(int(i >> 4 == _STB_WEAK) for i in range(256))
_NOT_WEAK_INFO = bytes(i for i in range(256) if i >> 4 != _STB_WEAK)
_BINDING_BY_INFO = tuple(_BINDINGS.get(i >> 4, SymbolBinding.OTHER) for i in range(256))
_TYPE_BY_INFO = tuple(_TYPES.get(i & 0xF, SymbolType.OTHER) for i in range(256))
_VISIBILITY_BY_OTHER = tuple(
    (
        SymbolVisibility.DEFAULT,
        SymbolVisibility.INTERNAL,
        SymbolVisibility.HIDDEN,
        SymbolVisibility.PROTECTED,
    )[i & 3]
    for i in range(256)
)


@dataclass(frozen=True)
class Layout:
    """``struct`` formats for one ELF class and byte order."""

    bits: int
    order: str  # struct byte-order prefix: "<" or ">"
    header: str
    section: str
    program: str
    symbol: str
    dyn: str

    @property
    def byte_order(self) -> str:
        return "little" if self.order == "<" else "big"


def layout_for(bits: int, *, little_endian: bool) -> Layout:
    """The ``struct`` formats of a 32- or 64-bit ELF file of the given byte order."""
    order = "<" if little_endian else ">"
    if bits == 64:
        return Layout(
            64,
            order,
            header=order + "HHIQQQIHHHHHH",
            section=order + "IIQQQQIIQQ",
            program=order + "IIQQQQQQ",
            symbol=order + "IBBHQQ",
            dyn=order + "qQ",
        )
    return Layout(
        32,
        order,
        header=order + "HHIIIIIHHHHHH",
        section=order + "IIIIIIIIII",
        program=order + "IIIIIIII",
        symbol=order + "IIIBBH",
        dyn=order + "iI",
    )


def string_at(table: bytes, offset: int, what: str) -> str:
    """The NUL-terminated string starting at ``offset`` of a string table."""
    if offset >= len(table):
        raise BinaryReadError(f"{what} points outside its string table")
    end = table.find(b"\0", offset)
    if end < 0:
        raise BinaryReadError(f"{what} is not NUL-terminated")
    return table[offset:end].decode("utf-8", "backslashreplace")


def _pick(values: Sequence[int], indices: Sequence[int]) -> tuple[int, ...]:
    """``values`` at ``indices``, in one C call (``itemgetter``)."""
    if len(indices) > 1:
        return itemgetter(*indices)(values)  # type: ignore[no-any-return]
    return tuple(values[i] for i in indices)


class SymbolColumns:
    """One ELF symbol table, decoded entry by entry on request.

    Column access (``st_shndx`` to find imports, ``st_name`` to find names) goes through
    ``memoryview.cast`` so that scanning 75k entries costs a few milliseconds; full
    :class:`Symbol` tuples are built only for the entries asked for.
    """

    def __init__(self, layout: Layout, raw: bytes, entsize: int, strtab: bytes) -> None:
        minimum = struct.calcsize(layout.symbol)
        if entsize < minimum:
            raise BinaryReadError(f"symbol entry size {entsize} is too small")
        self.layout = layout
        self.entsize = entsize
        self.count = len(raw) // entsize
        self.raw = raw[: self.count * entsize]
        self.strtab = strtab
        self.versions: Versions = ((), {})
        self._text: tuple[str, bool] | None = None
        self._columns: dict[int, list[int]] = {}
        self._undefined: list[int] | None = None

    def _column16(self, offset: int) -> list[int]:
        """The 16-bit field at ``offset`` of every entry, in native byte order (may be swapped).

        Callers compare only against zero, which no byte swap changes.
        """
        cached = self._columns.get(offset)
        if cached is None:
            if self.entsize % 2 == 0 and len(self.raw) % 2 == 0:
                view = memoryview(self.raw).cast("H")
                cached = view[offset // 2 :: self.entsize // 2].tolist()
            else:
                cached = [
                    int.from_bytes(self.raw[i : i + 2], "little")
                    for i in range(offset, len(self.raw), self.entsize)
                ]
            self._columns[offset] = cached
        return cached

    def _column32(self, offset: int) -> list[int]:
        """The 32-bit field at ``offset`` of every entry, in the file's byte order."""
        key = -1 - offset  # 16-bit columns use non-negative keys
        if key in self._columns:
            return self._columns[key]
        self._columns[key] = self._read_column32(offset)
        return self._columns[key]

    def _read_column32(self, offset: int) -> list[int]:
        if self.entsize % 4 == 0 and len(self.raw) % 4 == 0:
            column = memoryview(self.raw).cast("I")[offset // 4 :: self.entsize // 4]
            if (self.layout.order == "<") != (sys.byteorder == "little"):
                values = array("I", column.tobytes())  # bytes: copied, not item by item
                values.byteswap()
                return values.tolist()
            return column.tolist()
        return [
            int.from_bytes(self.raw[i : i + 4], self.layout.byte_order)  # type: ignore[arg-type]
            for i in range(offset, len(self.raw), self.entsize)
        ]

    def validate_names(self) -> None:
        """Check that every name offset points at a NUL-terminated string inside the table.

        Raises :class:`BinaryReadError` otherwise. Cheap (one column, ``max``, ``rfind``), and
        it lets the lazy tables decode without error handling of their own.
        """
        offsets = self._column32(0)
        if not offsets:
            return
        highest = max(offsets)
        if highest >= len(self.strtab):
            raise BinaryReadError("a symbol name points outside the string table")
        if highest > self.strtab.rfind(b"\0"):
            raise BinaryReadError("a symbol name is not NUL-terminated")

    def names_at(self, indices: list[int]) -> frozenset[str]:
        """The names of the entries at ``indices``, without building :class:`Symbol` tuples."""
        wanted = [offset for offset in _pick(self._column32(0), indices) if offset]
        if not wanted:
            return frozenset()
        highest = max(wanted)
        if highest >= len(self.strtab):
            raise BinaryReadError("a symbol name points outside the string table")
        text, ascii_only = self._strings()
        if ascii_only:
            # Every name must end at a NUL inside the table, as decode() requires; otherwise
            # find() returns -1 and the slice would silently drop the name's last character.
            if highest > text.rfind("\0"):
                raise BinaryReadError("a symbol name is not NUL-terminated")
            find = text.find
            return frozenset([text[offset : find("\0", offset)] for offset in wanted])
        return frozenset(string_at(self.strtab, offset, "symbol name") for offset in wanted)

    def undefined_indices(self) -> list[int]:
        """Indices of the entries with ``st_shndx == SHN_UNDEF`` (the imports); kept (the
        imports and the version requirements' first users both ask)."""
        if self._undefined is None:
            self._undefined = self._find_undefined()
        return self._undefined

    def _find_undefined(self) -> list[int]:
        # The two bytes of every st_shndx, as two byte strings OR-ed together as big integers:
        # a zero byte of the result is an entry whose st_shndx is zero (SHN_UNDEF), in either
        # byte order. translate() turns those into selectors for compress(): all in C.
        at = 6 if self.layout.bits == 64 else 14
        count = self.count
        low = int.from_bytes(self.raw[at :: self.entsize], "little")
        high = int.from_bytes(self.raw[at + 1 :: self.entsize], "little")
        selectors = (low | high).to_bytes(count, "little").translate(_IS_ZERO)
        found = list(compress(range(count), selectors))
        return found[1:] if found and found[0] == 0 else found  # entry 0 is the null symbol

    def defined_indices(self) -> list[int]:
        """Indices of the entries that define their symbol (the exports)."""
        column = self._column16(6 if self.layout.bits == 64 else 14)
        return list(compress(range(len(column)), column))

    def split_by_weakness(self, indices: list[int]) -> tuple[list[int], list[int]]:
        """``indices`` split into ``STB_WEAK`` entries and the others (one pass over the
        ``st_info`` column)."""
        infos = self.raw[4 if self.layout.bits == 64 else 12 :: self.entsize]
        if not infos.translate(None, _NOT_WEAK_INFO):
            return [], indices  # no weak entry at all (translate deletes every other st_info)
        weak_flags = _pick(infos.translate(_IS_WEAK_INFO), indices)
        weak = list(compress(indices, weak_flags))
        if not weak:
            return [], indices
        return weak, list(compress(indices, map(not_, weak_flags)))

    def first_users(self) -> dict[int, str]:
        """Version index -> the name of the first import bound to it (``.gnu.version``)."""
        version_indices = self.versions[0]
        count = len(version_indices)
        undefined = self.undefined_indices()
        if undefined and undefined[-1] >= count:
            undefined = [i for i in undefined if i < count]
        column = _pick(version_indices, undefined)  # raw values: the hidden bit still set
        first: dict[int, int] = {}
        for raw in set(column):  # a handful of values: tuple.index scans in C
            version = raw & VERSYM_INDEX
            at = undefined[column.index(raw)]
            if version not in first or at < first[version]:
                first[version] = at
        if not first:
            return {}
        offsets = self._column32(0)
        text = self.strtab
        return {
            version: string_at(text, offsets[i], "symbol name")
            for version, i in first.items()
            if offsets[i]
        }

    def _strings(self) -> tuple[str, bool]:
        """The string table as text, and whether text offsets equal byte offsets (ASCII)."""
        if self._text is None:
            ascii_only = self.strtab.isascii()
            decoded = self.strtab.decode("ascii") if ascii_only else ""
            self._text = (decoded, ascii_only)
        return self._text

    def decode(self, indices: Iterable[int]) -> tuple[Symbol, ...]:
        """Full :class:`Symbol` tuples for ``indices`` (unnamed entries are skipped).

        Works column by column (each a C-level pass: slices, comprehensions, ``map``) with the
        string table decoded once, so the interpreter loop runs once per column, not once per
        field of every symbol.
        """
        is64 = self.layout.bits == 64
        names = self._column32(0)
        wanted = [i for i in indices if names[i]]  # unnamed entries carry nothing to audit
        if not wanted:
            return ()
        offsets = [names[i] for i in wanted]
        text, ascii_only = self._strings()
        if max(offsets) >= len(self.strtab):
            raise BinaryReadError("a symbol name points outside the string table")
        if ascii_only:
            if max(offsets) > text.rfind("\0"):
                raise BinaryReadError("a symbol name is not NUL-terminated")
            find = text.find
            symbol_names = [text[o : find("\0", o)] for o in offsets]
        else:
            strtab = self.strtab
            symbol_names = [string_at(strtab, o, "symbol name") for o in offsets]
        infos = self.raw[4 if is64 else 12 :: self.entsize]
        others = self.raw[5 if is64 else 13 :: self.entsize]
        sections = self._column16(6 if is64 else 14)
        version_indices, version_names = self.versions
        n_versions = len(version_indices)
        raw_versions = [version_indices[i] if i < n_versions else 0 for i in wanted]
        resolved = [version_names.get(v & VERSYM_INDEX) for v in raw_versions]
        rows = zip(
            symbol_names,
            [sections[i] != SHN_UNDEF for i in wanted],
            [_BINDING_BY_INFO[infos[i]] for i in wanted],
            [_TYPE_BY_INFO[infos[i]] for i in wanted],
            [_VISIBILITY_BY_OTHER[others[i]] for i in wanted],
            [r[0] if r else None for r in resolved],
            [
                bool(v & VERSYM_HIDDEN) and r is not None
                for v, r in zip(raw_versions, resolved, strict=True)
            ],
            [r[1] if r else None for r in resolved],
            strict=True,
        )
        # tuple.__new__ skips the generated NamedTuple __new__ and its argument handling.
        return tuple(map(partial(tuple.__new__, Symbol), rows))


@lru_cache(maxsize=32)
def _unusual_characters(names: frozenset[str]) -> frozenset[str]:
    """The characters of ``names`` that are not letters, digits or ``_`` (the same few sets of
    names are asked about for every library)."""
    return frozenset(char for name in names for char in name if not char.isalnum() and char != "_")


@lru_cache(maxsize=32)
def _prefix_pattern(prefixes: tuple[str, ...]) -> re.Pattern[bytes]:
    """Any of ``prefixes``, as bytes (the same few prefixes are asked about for every library)."""
    return re.compile(b"|".join(re.escape(p.encode()) for p in prefixes))


class LazySymbols(SymbolTable):
    """The undefined (imports) or defined (exports) entries of ``.dynsym``, decoded on demand."""

    __slots__ = ("_defined", "_indices", "_names", "_symbols", "_table")

    def __init__(self, table: SymbolColumns, *, defined: bool) -> None:
        self._table = table
        self._defined = defined
        self._indices: list[int] | None = None
        self._symbols: tuple[Symbol, ...] | None = None
        self._names: frozenset[str] | None = None

    def _entry_indices(self) -> list[int]:
        if self._indices is None:
            table = self._table
            self._indices = table.defined_indices() if self._defined else table.undefined_indices()
        return self._indices

    def symbols(self) -> tuple[Symbol, ...]:
        if self._symbols is None:
            self._symbols = self._table.decode(self._entry_indices())
        return self._symbols

    def names(self) -> frozenset[str]:
        # Asked several times per library (rules, entry points, run-time lookups): kept.
        if self._names is None:
            if self._symbols is not None:
                self._names = frozenset(s.name for s in self._symbols)
            else:
                self._names = self._table.names_at(self._entry_indices())
        return self._names

    def weak_names(self) -> frozenset[str]:
        if self._symbols is not None:
            return super().weak_names()
        if self._defined:
            return super().weak_names()
        indices = self._entry_indices()
        weak, strong = self._table.split_by_weakness(indices)
        if not weak:
            return frozenset()
        names = self._table.names_at(weak)
        if len(self.names()) == len(indices):
            return names  # no name appears twice: none is also imported strongly
        return names - self._table.names_at(strong)

    def bound_to(self, accept: Callable[[str], bool]) -> dict[str, str]:
        # Bindings come from version requirements only: when no required library is accepted
        # (the usual case: libtorch does not version its symbols), no symbol needs decoding.
        libraries = {library for _, library in self._table.versions[1].values() if library}
        if not any(accept(library) for library in libraries):
            return {}
        return super().bound_to(accept)

    def present(self, names: frozenset[str]) -> frozenset[str]:
        # A name absent from the string table is in neither table: most libraries are
        # answered by a substring search, without decoding a name.
        # bytes.__contains__ is a fast substring search; one regular expression alternating
        # over the names is many times slower on a large string table.
        strtab = self._table.strtab
        # A name with a character the table lacks is not there: one search for that character
        # (an ELF string table holds no "?" or "@": no MSVC name needs a search of its own).
        lacking = {char for char in _unusual_characters(names) if char.encode() not in strtab}
        candidates = frozenset(
            n for n in names if not lacking.intersection(n) and n.encode() + b"\0" in strtab
        )
        return self.names() & candidates if candidates else frozenset()

    def with_prefix(self, *prefixes: str) -> tuple[Symbol, ...]:
        if self._symbols is None:
            # A prefix absent from the string table cannot start any name: skip the decode.
            # One scan of the (possibly megabytes of) strings for all prefixes at once.
            if _prefix_pattern(prefixes).search(self._table.strtab) is None:
                return ()
            # Decode only the entries whose name starts with a prefix, found in C on the
            # string table (an extension exports its entry point among thousands of names).
            table = self._table
            text, ascii_only = table._strings()
            if ascii_only and all(prefixes) and "\0" not in "".join(prefixes):
                indices = self._entry_indices()
                offsets = map(table._column32(0).__getitem__, indices)
                starts = map(text.startswith, repeat(prefixes, len(indices)), offsets)
                return table.decode(list(compress(indices, starts)))
        return super().with_prefix(*prefixes)
