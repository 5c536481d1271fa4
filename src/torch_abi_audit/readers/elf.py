"""ELF shared-object reader (System V gABI, with the GNU symbol-versioning extensions).

Reads only what the audit needs, with positional reads, and finds it the way the dynamic loader
does: the file header, the program headers, the dynamic segment (``PT_DYNAMIC``), and through
its ``DT_*`` entries the dynamic symbol table (sized by ``DT_HASH`` or ``DT_GNU_HASH``), its
string table and the ``.gnu.version*`` tables. The section header table, at the end of the
file, is read only when something needs it: the read-only data sections (``Library.rodata``,
resolved when first used), the static symbol table's local symbols (when asked for), or a file
whose dynamic segment does not describe its symbols. So a compressed wheel member is
decompressed only as far as its dynamic section and string table, never through its static
symbol table, debug information or section headers. ``libtorch_cpu.so`` (434 MB) costs about
7 MB of reads.

Without section headers (``sstrip``-ed files) there are no read-only data ranges: the program
headers do not tell ``.rodata`` from the rest of a read-only segment (``.eh_frame``,
``.dynsym``...).

References: System V gABI chapter 4 (ELF header, sections, symbol table) and chapter 5 (program
headers, dynamic section); LSB Core "Symbol Versioning" for ``.gnu.version``/``_r``/``_d``.
"""

from __future__ import annotations

import struct
import sys
from array import array
from functools import partial
from pathlib import Path
from typing import NamedTuple

from torch_abi_audit.model import (
    BinaryFormat,
    LazyRanges,
    Library,
    StaticSymbolTable,
    Symbol,
    SymbolBinding,
    SymbolTable,
    SymbolType,
    VersionNeed,
    merge_ranges,
)
from torch_abi_audit.readers.elf_symbols import (
    VERSYM_INDEX,
    LazySymbols,
    SymbolColumns,
    Versions,
    layout_for,
    string_at,
)
from torch_abi_audit.readers.errors import BinaryReadError
from torch_abi_audit.readers.source import ByteSource, file_bytes, prefetched

# e_ident indices and values
_EI_CLASS = 4
_EI_DATA = 5
_ELFCLASS32 = 1
_ELFCLASS64 = 2
_ELFDATA2LSB = 1
_ELFDATA2MSB = 2

# e_type
_ET_EXEC = 2
_ET_DYN = 3
_ET_NAMES = {0: "untyped", 1: "relocatable object", 4: "core dump"}

# section types
_SHT_PROGBITS = 1
_SHT_SYMTAB = 2
_SHT_STRTAB = 3
_SHT_DYNAMIC = 6
_SHT_NOBITS = 8
_SHT_DYNSYM = 11
_SHT_GNU_VERDEF = 0x6FFFFFFD
_SHT_GNU_VERNEED = 0x6FFFFFFE
_SHT_GNU_VERSYM = 0x6FFFFFFF

# program header types
_PT_LOAD = 1
_PT_DYNAMIC = 2
_PT_INTERP = 3

# dynamic tags
_DT_NULL = 0
_DT_NEEDED = 1
_DT_HASH = 4
_DT_STRTAB = 5
_DT_SYMTAB = 6
_DT_STRSZ = 10
_DT_SYMENT = 11
_DT_SONAME = 14
_DT_RPATH = 15
_DT_RUNPATH = 29
_DT_FLAGS_1 = 0x6FFFFFFB
_DT_GNU_HASH = 0x6FFFFEF5
_DT_VERSYM = 0x6FFFFFF0
_DT_VERDEF = 0x6FFFFFFC
_DT_VERDEFNUM = 0x6FFFFFFD
_DT_VERNEED = 0x6FFFFFFE
_DT_VERNEEDNUM = 0x6FFFFFFF

# section flags
_SHF_WRITE = 0x1
_SHF_ALLOC = 0x2
_SHF_EXECINSTR = 0x4

_SHN_UNDEF = 0
_SHN_XINDEX = 0xFFFF
_VER_NDX_GLOBAL = 1
_VER_FLG_BASE = 0x1
_VER_FLG_WEAK = 0x2
_DF_1_PIE = 0x08000000

# ELF64 machines whose DT_HASH table is made of 8-byte words instead of the gABI's Elf32_Word:
# s390x and Alpha (binutils elf64-s390.c / elf64-alpha.c: sizeof_hash_entry = 8; glibc's
# Elf_Symndx is 64-bit there).
_WIDE_HASH_MACHINES = frozenset({22, 0x9026})

# Machine names as the toolchains (and wheel platform tags) spell them.
_MACHINES = {
    2: "sparc",
    3: "i386",
    8: "mips",
    20: "ppc",
    21: "ppc64",
    22: "s390x",
    40: "arm",
    43: "sparcv9",
    50: "ia64",
    62: "x86_64",
    183: "aarch64",
    243: "riscv",
    258: "loongarch",
}

# Upper bounds that keep hostile headers from asking for absurd work.
_MAX_VERSION_ENTRIES = 65536
_MAX_DYNAMIC_ENTRIES = 1 << 20

#: Read-only data sections are those named ``.rodata``, ``.rodata.<anything>`` or ``.rodata1``
#: (gABI "Special Sections"; GCC's ``.rodata.str1.1`` and ``-fdata-sections`` names): the
#: longest name prefix to look at is ``.rodata1`` and its NUL.
_RODATA_NAMES = (b".rodata\0", b".rodata.", b".rodata1\0")
_RODATA_NAME_SPAN = max(len(prefix) for prefix in _RODATA_NAMES)
#: Most of the section name table read for them (a linked library's is a few hundred bytes; a
#: hostile one must not pull in the file).
_MAX_NAMES_READ = 1 << 20
#: Read ahead of the section header table, for the section name table (a few hundred bytes,
#: usually just before it).
_NAMES_BEFORE_SECTIONS = 2048
#: Read at once where the version requirements or definitions start (a few hundred bytes).
_VERSION_PREFETCH = 4096


class _Section(NamedTuple):
    """One section header, its fields in file order (``Elf32_Shdr`` and ``Elf64_Shdr`` alike)."""

    name: int  # offset of the name in the section name string table
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int
    align: int
    entsize: int


# tuple.__new__ skips the generated NamedTuple __new__ and its argument handling.
_new_section = partial(tuple.__new__, _Section)


class _Segment(NamedTuple):
    """One program header (the fields the reader uses)."""

    type: int
    offset: int
    vaddr: int
    filesz: int


class _ElfFile:
    """Parses one ELF file; :meth:`library` builds the format-neutral model."""

    def __init__(self, path: Path, reader: ByteSource) -> None:
        self.path = path
        self.reader = prefetched(reader)
        ident = reader.read(0, 16, "ELF identification")
        if ident[:4] != b"\x7fELF":
            raise BinaryReadError("not an ELF file")
        if ident[_EI_CLASS] not in (_ELFCLASS32, _ELFCLASS64):
            raise BinaryReadError(f"unknown ELF class {ident[_EI_CLASS]}")
        if ident[_EI_DATA] not in (_ELFDATA2LSB, _ELFDATA2MSB):
            raise BinaryReadError(f"unknown ELF byte order {ident[_EI_DATA]}")
        self.layout = layout_for(
            64 if ident[_EI_CLASS] == _ELFCLASS64 else 32,
            little_endian=ident[_EI_DATA] == _ELFDATA2LSB,
        )
        size = struct.calcsize(self.layout.header)
        (
            self.e_type,
            self.e_machine,
            _version,
            _entry,
            self.e_phoff,
            self.e_shoff,
            _flags,
            _ehsize,
            self.e_phentsize,
            self.e_phnum,
            self.e_shentsize,
            self.e_shnum,
            self.e_shstrndx,
        ) = struct.unpack(self.layout.header, self.reader.read(16, size, "ELF header"))
        self.segments = self._segments()
        self._section_table: list[_Section] | None = None
        # (version index, needed file, version name, weak) of every Elf_Vernaux read.
        self.version_needs: list[tuple[int, str, str, bool]] = []

    @property
    def sections(self) -> list[_Section]:
        """The section header table, read on first use (it lies at the end of the file)."""
        if self._section_table is None:
            self._section_table = self._sections()
        return self._section_table

    # -- tables -------------------------------------------------------------------------------

    def _sections(self) -> list[_Section]:
        if self.e_shoff == 0:
            return []
        entsize = struct.calcsize(self.layout.section)
        if self.e_shentsize < entsize:
            raise BinaryReadError(f"section header size {self.e_shentsize} is too small")
        count = self.e_shnum
        if count == 0:
            # Extended numbering (gABI): the real count sits in section 0's sh_size.
            first = self._section_at(self.e_shoff)
            count = first.size
        if self.e_shoff + count * self.e_shentsize > self.reader.size:
            raise BinaryReadError(
                f"section header table ({count} entries at {self.e_shoff:#x}) extends past the "
                f"end of the {self.reader.size}-byte file: truncated or corrupt"
            )
        # The section name table usually lies just before the section headers: one read for
        # both (only the names of the read-only data sections are read from it, later).
        length = count * self.e_shentsize
        before = min(self.e_shoff, _NAMES_BEFORE_SECTIONS)
        self.reader.prefetch(self.e_shoff - before, before + length, "section header table")
        raw = self.reader.read(self.e_shoff, length, "section header table")
        if self.e_shentsize == entsize:
            return list(map(_new_section, struct.iter_unpack(self.layout.section, raw)))
        return [self._unpack_section(raw, i * self.e_shentsize) for i in range(count)]

    def _section_at(self, offset: int) -> _Section:
        raw = self.reader.read(offset, struct.calcsize(self.layout.section), "section header")
        return self._unpack_section(raw, 0)

    def _unpack_section(self, raw: bytes, offset: int) -> _Section:
        return _new_section(struct.unpack_from(self.layout.section, raw, offset))

    def _segments(self) -> list[_Segment]:
        if self.e_phoff == 0 or self.e_phnum == 0:
            return []
        entsize = struct.calcsize(self.layout.program)
        if self.e_phentsize < entsize:
            raise BinaryReadError(f"program header size {self.e_phentsize} is too small")
        raw = self.reader.read(
            self.e_phoff, self.e_phnum * self.e_phentsize, "program header table"
        )
        if self.e_phentsize == entsize:
            rows = list(struct.iter_unpack(self.layout.program, raw))
        else:
            rows = [
                struct.unpack_from(self.layout.program, raw, i * self.e_phentsize)
                for i in range(self.e_phnum)
            ]
        if self.layout.bits == 64:  # p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz...
            return [_Segment(row[0], row[2], row[3], row[5]) for row in rows]
        return [_Segment(row[0], row[1], row[2], row[4]) for row in rows]  # p_type, p_offset...

    def _section(self, sh_type: int) -> _Section | None:
        for section in self.sections:
            if section.type == sh_type:
                return section
        return None

    def _linked(self, section: _Section) -> _Section:
        if not 0 < section.link < len(self.sections):
            raise BinaryReadError(f"section link {section.link} is out of range")
        return self.sections[section.link]

    def _section_bytes(self, section: _Section, what: str) -> bytes:
        if section.type == _SHT_NOBITS:
            raise BinaryReadError(f"{what} occupies no file space")
        return self.reader.read(section.offset, section.size, what)

    def _file_offset(self, vaddr: int, what: str) -> int:
        """Map a virtual address to a file offset through the ``PT_LOAD`` segments."""
        for segment in self.segments:
            if segment.type == _PT_LOAD and segment.vaddr <= vaddr < segment.vaddr + segment.filesz:
                return vaddr - segment.vaddr + segment.offset
        raise BinaryReadError(f"{what} address {vaddr:#x} is not in any loaded segment")

    # -- dynamic section ----------------------------------------------------------------------

    def _dynamic_entries(self) -> list[tuple[int, int]]:
        """The dynamic section's entries, up to ``DT_NULL``: from ``PT_DYNAMIC`` (what the
        loader reads), else from an ``SHT_DYNAMIC`` section."""
        segment = next((s for s in self.segments if s.type == _PT_DYNAMIC), None)
        if segment is not None:
            offset, size = segment.offset, segment.filesz
        else:
            dynamic = self._section(_SHT_DYNAMIC)
            if dynamic is None or dynamic.type == _SHT_NOBITS:
                return []
            offset, size = dynamic.offset, dynamic.size
        entsize = struct.calcsize(self.layout.dyn)
        count = min(size // entsize, _MAX_DYNAMIC_ENTRIES)
        raw = self.reader.read(offset, count * entsize, "dynamic section")
        # The entries up to the first DT_NULL tag: found in the tag column (zero in either byte
        # order), then unpacked at once.
        tags = memoryview(raw).cast("q" if self.layout.bits == 64 else "i")[::2].tolist()
        end = tags.index(_DT_NULL) if _DT_NULL in tags else count
        return list(struct.iter_unpack(self.layout.dyn, raw[: end * entsize]))

    # -- symbols ------------------------------------------------------------------------------

    def _dynamic_symbol_table(
        self, dynamic: list[tuple[int, int]]
    ) -> tuple[bytes, int, bytes] | None:
        """(symbol table bytes, entry size, string table bytes), or ``None`` if there is none.

        The loader's view when the dynamic section gives the tables and a hash table to size
        the symbol table; else the ``SHT_DYNSYM`` section and the string table it links.
        """
        tags = dict(dynamic)
        count: int | None = None
        if self._loader_view(tags):
            count = self._symbol_count_from_hash(tags)
            if count is not None:
                return self._loader_symbol_table(tags, count)
        section = self._section(_SHT_DYNSYM)
        if section is not None:
            strtab = self._linked(section)
            entsize = section.entsize or struct.calcsize(self.layout.symbol)
            return (
                self._section_bytes(section, "dynamic symbol table"),
                entsize,
                self._section_bytes(strtab, "dynamic string table"),
            )
        if _DT_SYMTAB not in tags or _DT_STRTAB not in tags:
            return None
        if count is None:  # a GNU hash table that hashes nothing: its symbol offset, at least
            count = self._symbol_count_from_hash(tags, at_least=True)
        assert count is not None
        return self._loader_symbol_table(tags, count)

    def _loader_view(self, tags: dict[int, int]) -> bool:
        """Whether the dynamic section locates the symbol table, its strings and a hash table
        that sizes it (every linked shared object's does)."""
        return (
            _DT_SYMTAB in tags and _DT_STRTAB in tags and (_DT_HASH in tags or _DT_GNU_HASH in tags)
        )

    def _loader_symbol_table(self, tags: dict[int, int], count: int) -> tuple[bytes, int, bytes]:
        symtab_offset = self._file_offset(tags[_DT_SYMTAB], "DT_SYMTAB")
        entsize = tags.get(_DT_SYMENT) or struct.calcsize(self.layout.symbol)
        strtab_offset = self._file_offset(tags[_DT_STRTAB], "DT_STRTAB")
        strsz = tags.get(_DT_STRSZ, 0)
        return (
            self.reader.read(symtab_offset, count * entsize, "dynamic symbol table"),
            entsize,
            self.reader.read(strtab_offset, strsz, "dynamic string table"),
        )

    def _symbol_count_from_hash(
        self, tags: dict[int, int], *, at_least: bool = False
    ) -> int | None:
        """How many entries the dynamic symbol table has, from ``DT_HASH`` (its chain count)
        or ``DT_GNU_HASH`` (the end of the last hashed symbol's chain). A GNU hash table that
        hashes no symbol does not tell: ``None`` (an executable that exports nothing keeps its
        imports after the symbol offset), or with ``at_least`` its symbol offset."""
        order = self.layout.order
        if _DT_HASH in tags:
            offset = self._file_offset(tags[_DT_HASH], "DT_HASH")
            wide = self.layout.bits == 64 and self.e_machine in _WIDE_HASH_MACHINES
            fmt = order + ("QQ" if wide else "II")
            raw = self.reader.read(offset, struct.calcsize(fmt), "DT_HASH")
            _nbucket, nchain = struct.unpack(fmt, raw)
            return int(nchain)
        if _DT_GNU_HASH in tags:
            offset = self._file_offset(tags[_DT_GNU_HASH], "GNU_HASH")
            return self._gnu_hash_symbol_count(offset, at_least=at_least)
        raise BinaryReadError("no section headers and no hash table: cannot size .dynsym")

    def _gnu_hash_symbol_count(self, offset: int, *, at_least: bool) -> int | None:
        order = self.layout.order
        nbuckets, symoffset, bloom_size, _shift = struct.unpack(
            order + "IIII", self.reader.read(offset, 16, "GNU_HASH header")
        )
        buckets_at = offset + 16 + bloom_size * (self.layout.bits // 8)
        if nbuckets > self.reader.size // 4:
            raise BinaryReadError("GNU_HASH bucket count exceeds the file size")
        buckets = struct.unpack(
            f"{order}{nbuckets}I", self.reader.read(buckets_at, nbuckets * 4, "GNU_HASH buckets")
        )
        last = max(buckets, default=0)
        if last < symoffset:
            return int(symoffset) if at_least else None
        chains_at = buckets_at + nbuckets * 4
        start = chains_at + (last - symoffset) * 4
        # The chain of the last bucket ends at the first value with its low bit set. Read it in
        # bounded chunks: a corrupt table must not pull the rest of a huge file into memory.
        # Chains are short: the first chunk is small (a stream stops right after it), later
        # ones grow.
        position = 0
        chunk = 64
        while start + position * 4 < self.reader.size:
            length = min(chunk, (self.reader.size - start) // 4 - position) * 4
            if length <= 0:
                break
            raw = self.reader.read(start + position * 4, length, "GNU_HASH chain")
            for index, (value,) in enumerate(struct.iter_unpack(order + "I", raw)):
                if value & 1:
                    return int(last + position + index + 1)
            position += length // 4
            chunk = min(chunk * 4, 4096)
        raise BinaryReadError("GNU_HASH chain does not terminate")

    def _versions(
        self, dynamic: list[tuple[int, int]], strtab: bytes, symbol_count: int
    ) -> Versions:
        """Per-symbol ``.gnu.version`` indices and index -> (version name, needed library)."""
        order = self.layout.order
        tags = dict(dynamic)
        # The tables the symbol table was found by: the dynamic section's, else the sections'.
        sections = not self._loader_view(tags)
        versym_section = self._section(_SHT_GNU_VERSYM) if sections else None
        raw_versym: bytes | None = None
        if versym_section is not None and versym_section.type != _SHT_NOBITS:
            raw_versym = self.reader.read(
                versym_section.offset, min(versym_section.size, symbol_count * 2), ".gnu.version"
            )
        elif _DT_VERSYM in tags:
            raw_versym = self.reader.read(
                self._file_offset(tags[_DT_VERSYM], "DT_VERSYM"), symbol_count * 2, ".gnu.version"
            )
        if raw_versym is None:
            return (), {}
        if len(raw_versym) % 2:  # struct's error, as before ("unpack requires a buffer...")
            struct.unpack(f"{order}{len(raw_versym) // 2}H", raw_versym)
        # An array, not a tuple of ints: only the entries asked for become Python ints.
        indices = array("H", raw_versym)
        if (order == "<") != (sys.byteorder == "little"):
            indices.byteswap()
        names: dict[int, tuple[str, str | None]] = {}

        verneed = self._section(_SHT_GNU_VERNEED) if sections else None
        if verneed is not None:
            self._read_verneed(verneed.offset, verneed.info, strtab, names)
        elif _DT_VERNEED in tags:
            offset = self._file_offset(tags[_DT_VERNEED], "DT_VERNEED")
            self._read_verneed(offset, tags.get(_DT_VERNEEDNUM, 0), strtab, names)

        verdef = self._section(_SHT_GNU_VERDEF) if sections else None
        if verdef is not None:
            self._read_verdef(verdef.offset, verdef.info, strtab, names)
        elif _DT_VERDEF in tags:
            offset = self._file_offset(tags[_DT_VERDEF], "DT_VERDEF")
            self._read_verdef(offset, tags.get(_DT_VERDEFNUM, 0), strtab, names)
        return indices, names

    def _read_verneed(
        self, offset: int, count: int, strtab: bytes, names: dict[int, tuple[str, str | None]]
    ) -> None:
        order = self.layout.order
        # The entries lie together: one read for them (each was a system call of its own).
        self.reader.prefetch(offset, _VERSION_PREFETCH, "version requirements")
        for _ in range(min(count, _MAX_VERSION_ENTRIES)):
            _ver, cnt, file_off, aux, nxt = struct.unpack(
                order + "HHIII", self.reader.read(offset, 16, "version requirement")
            )
            library = string_at(strtab, file_off, "version requirement file")
            aux_offset = offset + aux
            for _ in range(min(cnt, _MAX_VERSION_ENTRIES)):
                _hash, flags, other, name_off, aux_next = struct.unpack(
                    order + "IHHII", self.reader.read(aux_offset, 16, "version requirement entry")
                )
                version = string_at(strtab, name_off, "version name")
                names[other & VERSYM_INDEX] = (version, library)
                self.version_needs.append(
                    (other & VERSYM_INDEX, library, version, bool(flags & _VER_FLG_WEAK))
                )
                if aux_next == 0:
                    break
                aux_offset += aux_next
            if nxt == 0:
                break
            offset += nxt

    def _read_verdef(
        self, offset: int, count: int, strtab: bytes, names: dict[int, tuple[str, str | None]]
    ) -> None:
        order = self.layout.order
        self.reader.prefetch(offset, _VERSION_PREFETCH, "version definitions")
        for _ in range(min(count, _MAX_VERSION_ENTRIES)):
            _ver, flags, ndx, cnt, _hash, aux, nxt = struct.unpack(
                order + "HHHHIII", self.reader.read(offset, 20, "version definition")
            )
            if cnt and not flags & _VER_FLG_BASE:
                (name_off, _aux_next) = struct.unpack(
                    order + "II", self.reader.read(offset + aux, 8, "version definition name")
                )
                names[ndx & VERSYM_INDEX] = (string_at(strtab, name_off, "version name"), None)
            if nxt == 0:
                break
            offset += nxt

    def _local_symbols(self) -> tuple[Symbol, ...] | None:
        symtab = self._section(_SHT_SYMTAB)
        if symtab is None:
            return None
        strtab = self._linked(symtab)
        entsize = symtab.entsize or struct.calcsize(self.layout.symbol)
        # gABI: sh_info of SHT_SYMTAB is one greater than the index of the last local symbol.
        local_count = min(symtab.info, symtab.size // max(entsize, 1))
        raw = self.reader.read(symtab.offset, local_count * entsize, "symbol table")
        table = SymbolColumns(self.layout, raw, entsize, self._section_bytes(strtab, "strtab"))
        return tuple(
            s
            for s in table.decode(range(1, table.count))
            if s.binding is SymbolBinding.LOCAL
            and s.type not in (SymbolType.FILE, SymbolType.SECTION)
        )

    # -- read-only data -----------------------------------------------------------------------

    def _rodata(self) -> tuple[tuple[int, int], ...]:
        """(file offset, size) of the read-only data sections (``.rodata``, ``.rodata.*``,
        ``.rodata1``), merged; empty without section headers.

        Only the names of the candidate sections (allocated, read-only, not code, with file
        bytes) are read from the section name table, in one read. A name table that cannot be
        read or spans more than :data:`_MAX_NAMES_READ` bytes for them gives no ranges: the
        reader does not fail on what it needs only for this.
        """
        size = self.reader.size
        candidates = [
            s
            for s in self.sections
            if s.type == _SHT_PROGBITS
            and s.flags & _SHF_ALLOC
            and not s.flags & (_SHF_WRITE | _SHF_EXECINSTR)
            and 0 < s.size <= size - min(s.offset, size)
        ]
        names = self._section_names(candidates)
        if names is None:
            return ()
        start, table = names
        found = []
        for section in candidates:
            at = section.name - start
            if table.startswith(_RODATA_NAMES, at, at + _RODATA_NAME_SPAN):
                found.append((section.offset, section.size))
        return merge_ranges(found)

    def _section_names(self, candidates: list[_Section]) -> tuple[int, bytes] | None:
        """(offset in the name table, bytes) of the part of ``.shstrtab`` that holds the
        ``candidates``' names, or ``None`` when it cannot (or should not) be read."""
        if not candidates:
            return None
        index = self.e_shstrndx
        if index == _SHN_XINDEX:  # gABI: the real index is in section 0's sh_link
            index = self.sections[0].link
        if index == _SHN_UNDEF or index >= len(self.sections):
            return None
        shstrtab = self.sections[index]
        if shstrtab.type != _SHT_STRTAB:
            return None
        start = min(s.name for s in candidates)
        end = min(max(s.name for s in candidates) + _RODATA_NAME_SPAN, shstrtab.size)
        if not 0 <= start < end <= start + _MAX_NAMES_READ:
            return None
        offset = shstrtab.offset + start
        try:
            return start, self.reader.read(offset, end - start, "section name table")
        except BinaryReadError:
            return None

    # -- the model ----------------------------------------------------------------------------

    def _version_needs(self, table: SymbolColumns | None) -> tuple[VersionNeed, ...]:
        """The version requirements, each with the first import bound to it (if any)."""
        if not self.version_needs:
            return ()
        users = table.first_users() if table is not None else {}
        return tuple(
            VersionNeed(library, version, weak, users.get(index))
            for index, library, version, weak in self.version_needs
        )

    def _is_executable(self, dynamic: list[tuple[int, int]], soname: str | None) -> bool:
        """ET_EXEC, or a position-independent executable: ``DF_1_PIE`` (binutils >= 2.26,
        lld, gold), or, for older linkers, an interpreter (``PT_INTERP``) and no soname.
        (glibc's ``libc.so.6`` has an interpreter too, and a soname.)"""
        if self.e_type == _ET_EXEC:
            return True
        flags_1 = dict(dynamic).get(_DT_FLAGS_1, 0)
        if flags_1 & _DF_1_PIE:
            return True
        return soname is None and any(s.type == _PT_INTERP for s in self.segments)

    def library(self, *, local_symbols: bool) -> Library:
        if self.e_type not in (_ET_DYN, _ET_EXEC):
            kind = _ET_NAMES.get(self.e_type, f"type {self.e_type}")
            raise BinaryReadError(f"ELF {kind}, not a shared object or executable")
        dynamic = self._dynamic_entries()
        found = self._dynamic_symbol_table(dynamic)
        imports: SymbolTable = StaticSymbolTable()
        exports: SymbolTable = StaticSymbolTable()
        table: SymbolColumns | None = None
        if found is not None:
            raw, entsize, dynstr = found
            table = SymbolColumns(self.layout, raw, entsize, dynstr)
            table.validate_names()  # so that the lazy tables below cannot fail later
            table.versions = self._versions(dynamic, dynstr, table.count)
            imports = LazySymbols(table, defined=False)
            exports = LazySymbols(table, defined=True)
        else:
            dynstr = self._dynamic_strings(dynamic)
        needed: list[str] = []
        rpath: list[str] = []
        runpath: list[str] = []
        soname: str | None = None
        for tag, value in dynamic:
            if tag == _DT_NEEDED:
                needed.append(string_at(dynstr, value, "DT_NEEDED"))
            elif tag == _DT_SONAME:
                soname = string_at(dynstr, value, "DT_SONAME")
            elif tag == _DT_RPATH:
                rpath.extend(string_at(dynstr, value, "DT_RPATH").split(":"))
            elif tag == _DT_RUNPATH:
                runpath.extend(string_at(dynstr, value, "DT_RUNPATH").split(":"))
        return Library(
            path=self.path,
            format=BinaryFormat.ELF,
            machine=_MACHINES.get(self.e_machine, f"machine-{self.e_machine}"),
            bits=self.layout.bits,
            byte_order=self.layout.byte_order,
            imports=imports,
            exports=exports,
            needed=tuple(needed),
            soname=soname,
            rpath=tuple(p for p in rpath if p),
            runpath=tuple(p for p in runpath if p),
            local_symbols=self._local_symbols() if local_symbols else None,
            # Files are cheap to read anywhere: their ranges now. A stream (a wheel member)
            # would have to be decompressed to its end for the section headers: only when asked.
            rodata=LazyRanges(self._rodata_or_none)
            if self.reader.sequential
            else self._rodata_or_none(),
            executable=self._is_executable(dynamic, soname),
            version_needs=self._version_needs(table),
        )

    def _rodata_or_none(self) -> tuple[tuple[int, int], ...]:
        """:meth:`_rodata`, with a section header table that cannot be read giving no ranges
        (asked for after the symbols were read: this must not fail the library)."""
        try:
            return self._rodata()
        except (BinaryReadError, struct.error, ValueError, OverflowError, MemoryError):
            return ()

    def _dynamic_strings(self, dynamic: list[tuple[int, int]]) -> bytes:
        tags = dict(dynamic)
        if _DT_STRTAB not in tags:
            return b""
        offset = self._file_offset(tags[_DT_STRTAB], "DT_STRTAB")
        return self.reader.read(offset, tags.get(_DT_STRSZ, 0), "dynamic string table")


def parse_elf(source: ByteSource, path: Path, *, local_symbols: bool = False) -> Library:
    """Parse the ELF shared object whose bytes ``source`` gives (``path`` names it).

    Returns the format-neutral :class:`~torch_abi_audit.model.Library`. With ``local_symbols``
    the static symbol table's local entries are read too (slow on unstripped giants such as
    ``libtorch_cpu.so``, so off by default).

    Executables (``ET_EXEC`` and position-independent ones) are read like shared objects and
    marked ``executable``.

    Raises :class:`BinaryReadError` for anything that is not a readable ELF shared object or
    executable (relocatable objects and core dumps included).
    """
    try:
        return _ElfFile(path, source).library(local_symbols=local_symbols)
    except (struct.error, ValueError, OverflowError, MemoryError) as exc:
        raise BinaryReadError(f"corrupt ELF structure ({exc})") from exc


def read_elf(path: Path, *, local_symbols: bool = False) -> Library:
    """Read the ELF shared object at ``path`` (see :func:`parse_elf`).

    Raises :class:`BinaryReadError` as :func:`parse_elf` does, and :class:`OSError` if the file
    cannot be opened.
    """
    with file_bytes(path) as source:
        return parse_elf(source, path, local_symbols=local_symbols)
