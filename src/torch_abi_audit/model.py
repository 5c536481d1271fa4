"""The format-neutral model of a compiled library.

Every binary reader (ELF, Mach-O, PE) turns bytes into one :class:`Library`.
Rules, reports and renderers only ever see this model, never a format's raw structures, so a
rule written once applies to every platform.

Symbols are plain named tuples: a large library (``libtorch_cpu.so``: 75k dynamic symbols)
materialises its table in tens of milliseconds, which a frozen dataclass per symbol would not.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple, overload


class BinaryFormat(StrEnum):
    """Container format of a compiled library, detected from its magic bytes."""

    ELF = "elf"
    MACHO = "mach-o"
    PE = "pe"


class SymbolBinding(StrEnum):
    """Linkage scope of a symbol (ELF ``STB_*``; other formats map onto these)."""

    LOCAL = "local"
    GLOBAL = "global"
    WEAK = "weak"
    GNU_UNIQUE = "gnu-unique"
    OTHER = "other"


class SymbolType(StrEnum):
    """What a symbol names (ELF ``STT_*``; other formats map onto these)."""

    NOTYPE = "notype"
    OBJECT = "object"
    FUNC = "func"
    SECTION = "section"
    FILE = "file"
    COMMON = "common"
    TLS = "tls"
    GNU_IFUNC = "gnu-ifunc"
    OTHER = "other"


class SymbolVisibility(StrEnum):
    """Visibility of a symbol (ELF ``STV_*``)."""

    DEFAULT = "default"
    INTERNAL = "internal"
    HIDDEN = "hidden"
    PROTECTED = "protected"


class Symbol(NamedTuple):
    """One symbol of a library's symbol table.

    ``name`` is the raw linker name (mangled for C++; on Mach-O the leading ``_`` is stripped so
    names match ELF ones). ``version`` is the symbol version (``GLIBC_2.2.5``) where the format
    records one; ``version_hidden`` marks a non-default (``name@VER`` rather than ``name@@VER``)
    version. ``library`` is the library an import is bound to where the format records it
    (ELF version requirements, Mach-O two-level namespace ordinals, PE import DLLs). A PE import
    by ordinal is named ``#<ordinal>``.
    """

    name: str
    defined: bool
    binding: SymbolBinding
    type: SymbolType
    visibility: SymbolVisibility
    version: str | None = None
    version_hidden: bool = False
    library: str | None = None


class VersionNeed(NamedTuple):
    """One symbol version a file requires from a library (ELF ``Elf_Vernaux``).

    ``library`` is the needed file that must define it (``libc.so.6``), ``version`` the version
    name (``GLIBC_2.34``), ``weak`` the ``VER_FLG_WEAK`` flag (glibc's loader then only warns
    when the version is missing), ``symbol`` one import bound to that version, if any.
    """

    library: str
    version: str
    weak: bool = False
    symbol: str | None = None


class SymbolTable(Sequence[Symbol]):
    """A library's imports or exports, decoded on first use.

    Big libraries import and export tens of thousands of symbols of which an audit needs only
    the names (or a few prefixes), so readers hand out lazy tables; :meth:`names` and
    :meth:`with_prefix` answer those questions without building a :class:`Symbol` per entry.
    A table compares equal to any sequence of the same symbols. Pickling materialises it.
    """

    __slots__ = ()

    @abstractmethod
    def symbols(self) -> tuple[Symbol, ...]:
        """Every exported symbol, in table order."""

    def names(self) -> frozenset[str]:
        """The distinct names in the table (what the rules and symbol resolution look at)."""
        return frozenset(s.name for s in self.symbols())

    def with_prefix(self, *prefixes: str) -> tuple[Symbol, ...]:
        """The exported symbols whose names start with one of ``prefixes``."""
        return tuple(s for s in self.symbols() if s.name.startswith(prefixes))

    def present(self, names: frozenset[str]) -> frozenset[str]:
        """Which of ``names`` the table holds (a probe for a few marker names: tables that can
        answer without decoding every name do)."""
        return self.names() & names

    def weak_names(self) -> frozenset[str]:
        """The names whose every entry in the table is ``WEAK``.

        For imports these are the references the dynamic loader lets stay unresolved (ELF
        ``STB_WEAK`` undefined symbols, Mach-O weak imports): the library loads without them and
        the address reads as null. A name that is also imported strongly (one slice of a
        universal binary weak, another not) is not weak.
        """
        weak: set[str] = set()
        strong: set[str] = set()
        for symbol in self.symbols():
            (weak if symbol.binding is SymbolBinding.WEAK else strong).add(symbol.name)
        return frozenset(weak - strong)

    def bound_to(self, accept: Callable[[str], bool]) -> dict[str, str]:
        """Name -> library for the symbols bound to a library that ``accept`` says yes to.

        Only formats that record bindings (PE import DLLs, Mach-O two-level namespace, ELF
        symbol versions) give any. The first binding of a name wins.
        """
        bound: dict[str, str] = {}
        for symbol in self.symbols():
            if symbol.library is not None and symbol.name not in bound and accept(symbol.library):
                bound[symbol.name] = symbol.library
        return bound

    @overload
    def __getitem__(self, index: int) -> Symbol: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Symbol]: ...
    def __getitem__(self, index: int | slice) -> Symbol | Sequence[Symbol]:
        return self.symbols()[index]

    def __len__(self) -> int:
        return len(self.symbols())

    def __iter__(self) -> Iterator[Symbol]:
        return iter(self.symbols())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SymbolTable):
            return self.symbols() == other.symbols()
        if isinstance(other, Sequence) and not isinstance(other, str):
            return self.symbols() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.symbols())

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {len(self)} symbols>"

    def __reduce__(self) -> tuple[type[StaticSymbolTable], tuple[tuple[Symbol, ...]]]:
        return (StaticSymbolTable, (self.symbols(),))


class StaticSymbolTable(SymbolTable):
    """An :class:`SymbolTable` over symbols that are already decoded."""

    __slots__ = ("_symbols",)

    def __init__(self, symbols: Iterable[Symbol] = ()) -> None:
        self._symbols = tuple(symbols)

    def symbols(self) -> tuple[Symbol, ...]:
        return self._symbols


@dataclass(frozen=True)
class Library:
    """A compiled shared library as read from disk, independent of its container format.

    ``imports`` are the undefined symbols of the dynamic table, ``exports`` the defined ones;
    both are lazily decoded :class:`SymbolTable` objects.

    ``machine`` uses the names of wheel platform tags: ``x86_64``, ``i386``, ``aarch64`` (ELF),
    ``arm64`` (Mach-O, PE), ``ppc64le``... A universal (fat) Mach-O file is one ``Library``
    whose ``slices`` hold one ``Library`` per architecture; its own ``imports`` and ``exports``
    are the union of the slices' and its ``machine`` joins theirs with ``+``
    (``arm64+x86_64``). ``min_os`` is the oldest OS release the binary declares it runs on
    (macOS: ``LC_BUILD_VERSION`` / ``LC_VERSION_MIN_MACOSX``), for a thin file or a slice.

    ``needed`` lists the libraries the loader must find (ELF ``DT_NEEDED``; Mach-O
    ``LC_LOAD_DYLIB``, ``LC_LOAD_WEAK_DYLIB``, ``LC_REEXPORT_DYLIB``...; PE imported and
    delay-loaded DLLs); ``soname`` the library's own install name (ELF ``DT_SONAME``, Mach-O
    ``LC_ID_DYLIB``); ``rpath``/``runpath`` the search paths it carries (Mach-O ``LC_RPATH``
    entries are reported as ``rpath``).
    ``optional_needed`` is the part of ``needed`` the loader does not require: Mach-O
    ``LC_LOAD_WEAK_DYLIB`` libraries (dyld goes on without them) and PE delay-loaded DLLs that
    are not also imported normally (loaded at the first call, not at load time). ELF has none.
    ``executable`` says the file is a program rather than a shared library: an ELF ``ET_EXEC``
    file or a position-independent executable (``DF_1_PIE``, or ``PT_INTERP`` without a
    ``DT_SONAME``), a Mach-O ``MH_EXECUTE`` image, a PE image without ``IMAGE_FILE_DLL``.
    ``version_needs`` are the symbol versions the file requires (ELF ``.gnu.version_r``,
    what glibc's loader checks before anything runs); other formats have none.
    ``local_symbols`` holds the static symbol table's ``LOCAL`` entries when the reader was asked
    for them and the file has one (stripped files do not), else ``None``.

    ``rodata`` lists where the file keeps its read-only constant data, where compilers put C
    string literals (a name passed to ``dlsym`` or ``GetProcAddress`` among them): ``(file
    offset, size)`` pairs lying within the file, in ascending offset order, adjacent ones merged
    (see :func:`merge_ranges`). The sections it covers are ELF ``SHT_PROGBITS`` sections that are
    ``SHF_ALLOC`` without ``SHF_WRITE`` or ``SHF_EXECINSTR`` and are named ``.rodata``,
    ``.rodata.*`` or ``.rodata1``; Mach-O ``S_CSTRING_LITERALS`` sections of any segment and
    ``__TEXT,__const``; PE sections that are ``IMAGE_SCN_CNT_INITIALIZED_DATA`` without
    ``IMAGE_SCN_MEM_WRITE`` or ``IMAGE_SCN_MEM_EXECUTE`` (``.rdata``), their file-backed part
    only. Offsets are absolute: a universal Mach-O slice's ranges are shifted by the slice's
    offset, and the universal file's ``rodata`` is the union of its slices'. It is empty when
    the file does not say where those sections are: an ELF file without section headers
    (``sstrip``) or whose section names cannot be read (see the ELF reader), and sections
    that lie outside the file or hold no file bytes (zero-fill) are left out. An ELF library
    read from a stream (a compressed wheel member) gives a :class:`LazyRanges`: its section
    headers are read only if ``rodata`` is used, which must happen while its source is open.
    """

    path: Path
    format: BinaryFormat
    machine: str
    bits: int
    byte_order: str
    imports: SymbolTable = field(default_factory=StaticSymbolTable)
    exports: SymbolTable = field(default_factory=StaticSymbolTable)
    needed: tuple[str, ...] = ()
    soname: str | None = None
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()
    local_symbols: tuple[Symbol, ...] | None = None
    slices: tuple[Library, ...] = ()
    min_os: str | None = None
    rodata: Sequence[tuple[int, int]] = ()
    optional_needed: tuple[str, ...] = ()
    executable: bool = False
    version_needs: tuple[VersionNeed, ...] = ()

    @property
    def symbols(self) -> tuple[Symbol, ...]:
        """Every dynamic symbol: imports, then exports."""
        return self.imports.symbols() + self.exports.symbols()

    def optional_imports(self) -> frozenset[str]:
        """The imports whose absence does not stop the loader from loading this file.

        Weak references (:meth:`SymbolTable.weak_names`) and imports bound only to an
        ``optional_needed`` library (a weak-linked dylib, a delay-loaded DLL: resolved when it is
        first called, or never). They may still be libtorch internals: this says nothing about
        *what* they are, only that loading does not need them.
        """
        optional = self.imports.weak_names()
        if not self.optional_needed:
            return optional
        lowered = {name.lower() for name in self.optional_needed}
        by_optional: set[str] = set()
        by_required: set[str] = set()
        for symbol in self.imports.symbols():
            if symbol.library is None:
                continue
            (by_optional if symbol.library.lower() in lowered else by_required).add(symbol.name)
        return optional | frozenset(by_optional - by_required)


class LazyRanges(Sequence[tuple[int, int]]):
    """``(offset, size)`` ranges found when first used (:attr:`Library.rodata` of a library read
    from a stream, whose section headers lie at its end). Compares equal to any sequence of the
    same ranges; pickling resolves it. Resolve it while the library's source is still open."""

    __slots__ = ("_find", "_ranges")

    def __init__(self, find: Callable[[], tuple[tuple[int, int], ...]]) -> None:
        self._find: Callable[[], tuple[tuple[int, int], ...]] | None = find
        self._ranges: tuple[tuple[int, int], ...] = ()

    def resolved(self) -> tuple[tuple[int, int], ...]:
        """The ranges (found on the first call)."""
        if self._find is not None:
            self._ranges = self._find()
            self._find = None
        return self._ranges

    @overload
    def __getitem__(self, index: int) -> tuple[int, int]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[tuple[int, int]]: ...
    def __getitem__(self, index: int | slice) -> tuple[int, int] | Sequence[tuple[int, int]]:
        return self.resolved()[index]

    def __len__(self) -> int:
        return len(self.resolved())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return self.resolved() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.resolved())

    def __repr__(self) -> str:
        return repr(self.resolved()) if self._find is None else "<LazyRanges: unresolved>"

    def __reduce__(self) -> tuple[type[tuple[tuple[int, int], ...]], tuple[object, ...]]:
        return (tuple, (self.resolved(),))


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """``(offset, size)`` ranges in ascending offset order, overlapping or adjacent ones merged
    and empty ones dropped: the form of :attr:`Library.rodata`."""
    merged: list[list[int]] = []
    for offset, size in sorted(r for r in ranges if r[1] > 0):
        if merged and offset <= merged[-1][0] + merged[-1][1]:
            last = merged[-1]
            last[1] = max(last[1], offset + size - last[0])
        else:
            merged.append([offset, size])
    return tuple((offset, size) for offset, size in merged)
