"""Write small, valid ELF shared objects byte by byte, for cases no local compiler produces.

The system compiler only builds for the host (x86_64, and i386 with ``-m32``). The reader must
also handle ELFCLASS32/64 in both byte orders, foreign machines, and "section-less" files
(``sstrip``-ed: no section header table, so only ``PT_DYNAMIC`` and the ``DT_*`` entries describe
the dynamic symbols). :func:`build_elf` writes such files with :mod:`struct`.

Layout (file offset == virtual address, one ``PT_LOAD`` at offset 0 covering the whole file)::

    ELF header | program headers (PT_LOAD, PT_DYNAMIC) | .text | .dynstr | .dynsym
    | .hash and/or .gnu.hash | .gnu.version | .gnu.version_d | .gnu.version_r | .dynamic
    | .shstrtab | section header table          (the last two only with section headers)

Structure layouts follow the System V gABI (chapter 4: ELF header, sections, symbol table,
hash table; chapter 5: program header, dynamic section), the LSB Core specification "Symbol
Versioning" (``Elf*_Verdef``/``Verdaux``/``Verneed``/``Vernaux``, ``.gnu.version``) and the GNU
``DT_GNU_HASH`` format as implemented by binutils/glibc.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# EI_OSABI (gABI Figure 4-7)
ELFOSABI_NONE = 0
ELFOSABI_GNU = 3

# e_type (gABI Figure 4-2)
ET_REL = 1
ET_EXEC = 2
ET_DYN = 3
ET_CORE = 4

# e_machine (gABI Figure 4-3 and the psABI supplements)
EM_386 = 3
EM_PPC = 20
EM_PPC64 = 21
EM_S390 = 22
EM_ARM = 40
EM_X86_64 = 62
EM_AARCH64 = 183
EM_ALPHA = 0x9026  # the unofficial number Linux and binutils use

# Symbol binding, type and visibility (gABI Figures 4-17, 4-18, 4-21; STB_GNU_UNIQUE and
# STT_GNU_IFUNC are GNU extensions in the OS-specific ranges).
STB_LOCAL = 0
STB_GLOBAL = 1
STB_WEAK = 2
STB_GNU_UNIQUE = 10
STT_NOTYPE = 0
STT_OBJECT = 1
STT_FUNC = 2
STT_TLS = 6
STT_GNU_IFUNC = 10
STV_DEFAULT = 0
STV_INTERNAL = 1
STV_HIDDEN = 2
STV_PROTECTED = 3

# Section types (gABI Figure 4-9; GNU extensions from the LSB).
SHT_STRTAB = 3
SHT_HASH = 5
SHT_DYNAMIC = 6
SHT_PROGBITS = 1
SHT_DYNSYM = 11
SHT_GNU_HASH = 0x6FFFFFF6
SHT_GNU_VERDEF = 0x6FFFFFFD
SHT_GNU_VERNEED = 0x6FFFFFFE
SHT_GNU_VERSYM = 0x6FFFFFFF
SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
SHF_INFO_LINK = 0x40

# Program header types and flags (gABI Figures 5-2, 5-4).
PT_LOAD = 1
PT_DYNAMIC = 2
PF_R = 0x4

# Dynamic tags (gABI Figure 5-10; GNU/Sun extensions from the LSB).
DT_NULL = 0
DT_NEEDED = 1
DT_HASH = 4
DT_STRTAB = 5
DT_SYMTAB = 6
DT_STRSZ = 10
DT_SYMENT = 11
DT_SONAME = 14
DT_RPATH = 15
DT_RUNPATH = 29
DT_GNU_HASH = 0x6FFFFEF5
DT_VERSYM = 0x6FFFFFF0
DT_VERDEF = 0x6FFFFFFC
DT_VERDEFNUM = 0x6FFFFFFD
DT_VERNEED = 0x6FFFFFFE
DT_VERNEEDNUM = 0x6FFFFFFF

# Symbol versioning (LSB): .gnu.version indices and flags.
VER_NDX_LOCAL = 0
VER_NDX_GLOBAL = 1
VERSYM_HIDDEN = 0x8000
VER_FLG_BASE = 0x1

HashStyle = Literal["sysv", "gnu", "both"]

_DEFAULT_BASE_NAME = "synthetic.so"


@dataclass(frozen=True)
class Sym:
    """One ``.dynsym`` entry to write.

    ``version`` of a defined symbol becomes a ``.gnu.version_d`` definition; ``version`` of an
    undefined one a ``.gnu.version_r`` requirement on ``library`` (which must then be given).
    ``hidden`` sets the ``.gnu.version`` hidden bit (``name@VER`` rather than ``name@@VER``).
    """

    name: str
    defined: bool = True
    binding: int = STB_GLOBAL
    type: int = STT_FUNC
    visibility: int = STV_DEFAULT
    version: str | None = None
    library: str | None = None
    hidden: bool = False


@dataclass(frozen=True)
class ElfImage:
    """A built file: its bytes, where each part lies, and the ``.dynsym`` order used."""

    data: bytes
    parts: dict[str, tuple[int, int]]  # ".dynsym", "ehdr", "shdr", ... -> (offset, size)
    symbol_order: tuple[str, ...]  # .dynsym names from index 1 on
    bits: int
    big_endian: bool

    def write(self, path: Path) -> Path:
        """Write the image to ``path`` and return ``path``."""
        path.write_bytes(self.data)
        return path


def elf_hash(name: bytes) -> int:
    """The System V ``DT_HASH`` hash function (gABI chapter 5, "Hash Table")."""
    h = 0
    for c in name:
        h = ((h << 4) + c) & 0xFFFFFFFF
        g = h & 0xF0000000
        if g:
            h ^= g >> 24
        h &= ~g & 0xFFFFFFFF
    return h


def gnu_hash(name: bytes) -> int:
    """The ``DT_GNU_HASH`` hash function (Bernstein's djb2, ``h * 33 + c``)."""
    h = 5381
    for c in name:
        h = (h * 33 + c) & 0xFFFFFFFF
    return h


class _StringTable:
    """An ELF string table: index 0 holds the empty string (gABI "String Table")."""

    def __init__(self) -> None:
        self.data = bytearray(b"\0")
        self._offsets: dict[str, int] = {"": 0}

    def add(self, text: str) -> int:
        if text not in self._offsets:
            self._offsets[text] = len(self.data)
            self.data += text.encode() + b"\0"
        return self._offsets[text]


def build_elf(
    symbols: Sequence[Sym] = (),
    *,
    bits: Literal[32, 64] = 64,
    big_endian: bool = False,
    machine: int = EM_X86_64,
    e_type: int = ET_DYN,
    needed: Sequence[str] = (),
    soname: str | None = None,
    rpath: str | None = None,
    runpath: str | None = None,
    hash_style: HashStyle = "gnu",
    section_headers: bool = True,
) -> ElfImage:
    """Build an ELF shared object exposing ``symbols`` through its dynamic symbol table.

    ``.dynsym`` holds the null entry, then the ``STB_LOCAL`` symbols, then the undefined ones,
    then the defined ones (grouped by ``DT_GNU_HASH`` bucket when a GNU hash table is written;
    :attr:`ElfImage.symbol_order` gives the final order). Without ``section_headers`` the file
    has no section header table (``e_shoff == e_shnum == e_shstrndx == 0``).
    """
    order = ">" if big_endian else "<"
    is64 = bits == 64
    word = 8 if is64 else 4  # ElfN_Addr / ElfN_Off / ElfN_Xword size
    ehdr_fmt = order + ("16sHHIQQQIHHHHHH" if is64 else "16sHHIIIIIHHHHHH")
    phdr_fmt = order + ("IIQQQQQQ" if is64 else "IIIIIIII")
    shdr_fmt = order + ("IIQQQQIIQQ" if is64 else "IIIIIIIIII")
    sym_fmt = order + ("IBBHQQ" if is64 else "IIIBBH")
    dyn_fmt = order + ("qQ" if is64 else "iI")
    sym_size = struct.calcsize(sym_fmt)
    dyn_size = struct.calcsize(dyn_fmt)

    for sym in symbols:
        if sym.version is not None and not sym.defined and sym.library is None:
            raise ValueError(f"undefined versioned symbol {sym.name!r} needs a library")

    # -- .dynsym order ----------------------------------------------------------------------
    locals_ = [s for s in symbols if s.binding == STB_LOCAL]
    undefined = [s for s in symbols if s.binding != STB_LOCAL and not s.defined]
    defined = [s for s in symbols if s.binding != STB_LOCAL and s.defined]
    gnu = hash_style in ("gnu", "both")
    nbuckets = max(1, len(defined) // 2)
    # gABI: DT_HASH entries are Elf32_Word, but the s390x and Alpha ELF64 ABIs (and binutils,
    # glibc) use 8-byte entries there.
    hash_word = 8 if is64 and machine in (EM_S390, EM_ALPHA) else 4
    if gnu:
        # DT_GNU_HASH: hashed symbols sit at the end of .dynsym, sorted by bucket.
        defined.sort(key=lambda s: gnu_hash(s.name.encode()) % nbuckets)
    ordered = [Sym("", defined=False, binding=STB_LOCAL, type=STT_NOTYPE)]
    ordered += locals_ + undefined + defined
    symoffset = 1 + len(locals_) + len(undefined)

    # -- strings and version indices ----------------------------------------------------------
    dynstr = _StringTable()
    for lib in needed:
        dynstr.add(lib)
    for text in (soname, rpath, runpath):
        if text is not None:
            dynstr.add(text)
    for sym in ordered:
        dynstr.add(sym.name)
    def_versions = list(dict.fromkeys(s.version for s in ordered if s.defined and s.version))
    need_versions: dict[str, list[str]] = {}  # library -> versions, in first-use order
    for sym in ordered:
        if not sym.defined and sym.version and sym.library:
            versions = need_versions.setdefault(sym.library, [])
            if sym.version not in versions:
                versions.append(sym.version)
    version_index: dict[tuple[str, str | None], int] = {}  # (version, library) -> index
    next_index = 2  # 0 local, 1 global (LSB "Symbol Version Table")
    for version in def_versions:
        version_index[(version, None)] = next_index
        next_index += 1
    for lib, versions in need_versions.items():
        for version in versions:
            version_index[(version, lib)] = next_index
            next_index += 1
    versioned = bool(version_index)
    if def_versions:
        dynstr.add(soname or _DEFAULT_BASE_NAME)  # the VER_FLG_BASE definition's name
    for version_name, library in version_index:
        dynstr.add(version_name)
        if library is not None:
            dynstr.add(library)

    # -- section contents ----------------------------------------------------------------------
    ehdr_size = struct.calcsize(ehdr_fmt)
    phdr_size = struct.calcsize(phdr_fmt)
    image = bytearray(ehdr_size + 2 * phdr_size)
    parts: dict[str, tuple[int, int]] = {
        "ehdr": (0, ehdr_size),
        "phdr": (ehdr_size, 2 * phdr_size),
    }

    def place(name: str, data: bytes, align: int) -> int:
        image.extend(b"\0" * (-len(image) % align))
        parts[name] = (len(image), len(data))
        image.extend(data)
        return len(image) - len(data)

    names = [".text", ".dynstr", ".dynsym"]
    if hash_style in ("sysv", "both"):
        names.append(".hash")
    if gnu:
        names.append(".gnu.hash")
    if versioned:
        names.append(".gnu.version")
        if def_versions:
            names.append(".gnu.version_d")
        if need_versions:
            names.append(".gnu.version_r")
    names += [".dynamic", ".shstrtab"]
    index = {name: i + 1 for i, name in enumerate(names)}  # section 0 is SHN_UNDEF

    # .text: 16 bytes per defined symbol, so each has an address inside a real section.
    text_offset = place(".text", b"\xc3" * (16 * max(1, len(defined))), 16)
    text_shndx = index[".text"]
    place(".dynstr", bytes(dynstr.data), 1)

    # .dynsym (gABI "Symbol Table": Elf32_Sym / Elf64_Sym; field order differs by class).
    raw_syms = bytearray()
    slot = 0
    for sym in ordered:
        info = (sym.binding << 4) | (sym.type & 0xF)
        shndx, value, size = 0, 0, 0
        if sym.defined and sym.name:
            shndx, value, size = text_shndx, text_offset + 16 * slot, 16
            slot += 1
        name_off = dynstr.add(sym.name)
        if is64:
            raw_syms += struct.pack(sym_fmt, name_off, info, sym.visibility, shndx, value, size)
        else:
            raw_syms += struct.pack(sym_fmt, name_off, value, size, info, sym.visibility, shndx)
    dynsym_offset = place(".dynsym", bytes(raw_syms), word)

    if ".hash" in index:
        # gABI "Hash Table": nbucket, nchain, bucket[nbucket], chain[nchain], each of
        # ``hash_word`` bytes.
        nbucket = max(1, len(ordered) // 2)
        buckets = [0] * nbucket
        chains = [0] * len(ordered)
        for i, sym in enumerate(ordered[1:], start=1):
            b = elf_hash(sym.name.encode()) % nbucket
            chains[i] = buckets[b]
            buckets[b] = i
        table = [nbucket, len(ordered), *buckets, *chains]
        letter = "Q" if hash_word == 8 else "I"
        place(".hash", struct.pack(f"{order}{len(table)}{letter}", *table), hash_word)

    if gnu:
        # GNU hash: nbuckets, symoffset, bloom_size, bloom_shift, bloom[bloom_size] (ElfN_Addr),
        # buckets[nbuckets], then one chain word per hashed symbol whose low bit ends a chain.
        shift = 6
        bloom = 0
        hashes = [gnu_hash(s.name.encode()) for s in defined]
        for h in hashes:
            bloom |= 1 << (h % bits)
            bloom |= 1 << ((h >> shift) % bits)
        buckets = [0] * nbuckets
        chain: list[int] = []
        for i, h in enumerate(hashes):
            b = h % nbuckets
            if buckets[b] == 0:
                buckets[b] = symoffset + i
            last = i + 1 == len(hashes) or hashes[i + 1] % nbuckets != b
            chain.append((h & ~1) | (1 if last else 0))
        blob = struct.pack(order + "IIII", nbuckets, symoffset, 1, shift)
        blob += struct.pack(order + ("Q" if is64 else "I"), bloom)
        blob += struct.pack(f"{order}{nbuckets + len(chain)}I", *buckets, *chain)
        place(".gnu.hash", blob, word)

    verdef_count = 0
    verneed_count = 0
    if versioned:
        # .gnu.version: one Elf_Half per .dynsym entry (LSB "Symbol Version Table").
        versyms = []
        for sym in ordered:
            if sym.binding == STB_LOCAL:
                ndx = VER_NDX_LOCAL
            elif sym.version is None:
                ndx = VER_NDX_GLOBAL
            else:
                ndx = version_index[(sym.version, None if sym.defined else sym.library)]
            versyms.append(ndx | (VERSYM_HIDDEN if sym.hidden else 0))
        place(".gnu.version", struct.pack(f"{order}{len(versyms)}H", *versyms), 2)

    if def_versions:
        # .gnu.version_d: Elf_Verdef {vd_version, vd_flags, vd_ndx, vd_cnt, vd_hash, vd_aux,
        # vd_next} (20 bytes) each followed by one Elf_Verdaux {vda_name, vda_next} (8 bytes).
        # Entry 1 is the VER_FLG_BASE definition naming the file itself.
        entries = [(VER_FLG_BASE, 1, soname or _DEFAULT_BASE_NAME)]
        entries += [(0, version_index[(v, None)], v) for v in def_versions]
        blob = b""
        for n, (flags, ndx, name) in enumerate(entries):
            nxt = 28 if n + 1 < len(entries) else 0
            name_bytes = name.encode()
            blob += struct.pack(order + "HHHHIII", 1, flags, ndx, 1, elf_hash(name_bytes), 20, nxt)
            blob += struct.pack(order + "II", dynstr.add(name), 0)
        verdef_count = len(entries)
        place(".gnu.version_d", blob, 4)

    if need_versions:
        # .gnu.version_r: Elf_Verneed {vn_version, vn_cnt, vn_file, vn_aux, vn_next} (16 bytes)
        # followed by its Elf_Vernaux {vna_hash, vna_flags, vna_other, vna_name, vna_next}.
        blob = b""
        libs = list(need_versions.items())
        for n, (lib, versions) in enumerate(libs):
            size = 16 + 16 * len(versions)
            nxt = size if n + 1 < len(libs) else 0
            blob += struct.pack(order + "HHIII", 1, len(versions), dynstr.add(lib), 16, nxt)
            for k, version in enumerate(versions):
                aux_next = 16 if k + 1 < len(versions) else 0
                blob += struct.pack(
                    order + "IHHII",
                    elf_hash(version.encode()),
                    0,
                    version_index[(version, lib)],
                    dynstr.add(version),
                    aux_next,
                )
        verneed_count = len(libs)
        place(".gnu.version_r", blob, 4)

    # .dynamic (gABI "Dynamic Section"): addresses equal file offsets in this layout.
    dynamic: list[tuple[int, int]] = [(DT_NEEDED, dynstr.add(lib)) for lib in needed]
    if soname is not None:
        dynamic.append((DT_SONAME, dynstr.add(soname)))
    if rpath is not None:
        dynamic.append((DT_RPATH, dynstr.add(rpath)))
    if runpath is not None:
        dynamic.append((DT_RUNPATH, dynstr.add(runpath)))
    if ".hash" in parts:
        dynamic.append((DT_HASH, parts[".hash"][0]))
    if ".gnu.hash" in parts:
        dynamic.append((DT_GNU_HASH, parts[".gnu.hash"][0]))
    dynamic += [
        (DT_STRTAB, parts[".dynstr"][0]),
        (DT_SYMTAB, dynsym_offset),
        (DT_STRSZ, len(dynstr.data)),
        (DT_SYMENT, sym_size),
    ]
    if ".gnu.version" in parts:
        dynamic.append((DT_VERSYM, parts[".gnu.version"][0]))
    if ".gnu.version_d" in parts:
        dynamic += [(DT_VERDEF, parts[".gnu.version_d"][0]), (DT_VERDEFNUM, verdef_count)]
    if ".gnu.version_r" in parts:
        dynamic += [(DT_VERNEED, parts[".gnu.version_r"][0]), (DT_VERNEEDNUM, verneed_count)]
    dynamic.append((DT_NULL, 0))
    dynamic_offset = place(".dynamic", b"".join(struct.pack(dyn_fmt, *e) for e in dynamic), word)
    # Every string was added before .dynstr was placed; a late addition would be lost.
    assert len(dynstr.data) == parts[".dynstr"][1], "string added after .dynstr was written"

    # -- section header table (gABI "Sections") -------------------------------------------------
    shoff = shnum = shstrndx = 0
    if section_headers:
        shstrtab = _StringTable()
        for name in names:
            shstrtab.add(name)
        place(".shstrtab", bytes(shstrtab.data), 1)
        dynsym_link, dynstr_link = index[".dynsym"], index[".dynstr"]
        # name -> (sh_type, sh_flags, sh_link, sh_info, sh_addralign, sh_entsize)
        attrs: dict[str, tuple[int, int, int, int, int, int]] = {
            ".text": (SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, 0, 0, 16, 0),
            ".dynstr": (SHT_STRTAB, SHF_ALLOC, 0, 0, 1, 0),
            # sh_info of a symbol table: index of the first non-local symbol.
            ".dynsym": (SHT_DYNSYM, SHF_ALLOC, dynstr_link, 1 + len(locals_), word, sym_size),
            ".hash": (SHT_HASH, SHF_ALLOC, dynsym_link, 0, hash_word, hash_word),
            ".gnu.hash": (SHT_GNU_HASH, SHF_ALLOC, dynsym_link, 0, word, 0),
            ".gnu.version": (SHT_GNU_VERSYM, SHF_ALLOC, dynsym_link, 0, 2, 2),
            # sh_info of verdef/verneed: the number of entries.
            ".gnu.version_d": (SHT_GNU_VERDEF, SHF_ALLOC, dynstr_link, verdef_count, 4, 0),
            ".gnu.version_r": (SHT_GNU_VERNEED, SHF_ALLOC, dynstr_link, verneed_count, 4, 0),
            ".dynamic": (SHT_DYNAMIC, SHF_ALLOC | SHF_WRITE, dynstr_link, 0, word, dyn_size),
            ".shstrtab": (SHT_STRTAB, 0, 0, 0, 1, 0),
        }
        headers = bytearray(struct.calcsize(shdr_fmt))  # entry 0: SHN_UNDEF, all zero
        for name in names:
            sh_type, flags, link, info, align, entsize = attrs[name]
            offset, size = parts[name]
            addr = offset if flags & SHF_ALLOC else 0
            headers += struct.pack(
                shdr_fmt,
                shstrtab.add(name),
                sh_type,
                flags,
                addr,
                offset,
                size,
                link,
                info,
                align,
                entsize,
            )
        shoff = place("shdr", bytes(headers), word)
        shnum = len(names) + 1
        shstrndx = index[".shstrtab"]

    # -- program headers and ELF header -----------------------------------------------------
    total = len(image)
    dyn_len = parts[".dynamic"][1]
    load = (PT_LOAD, 0, 0, total, total, PF_R, 0x1000)  # type, offset, vaddr, filesz, memsz, ...
    dyn = (PT_DYNAMIC, dynamic_offset, dynamic_offset, dyn_len, dyn_len, PF_R, word)
    phdrs = b""
    for p_type, p_offset, p_vaddr, filesz, memsz, flags, align in (load, dyn):
        if is64:  # Elf64_Phdr puts p_flags second
            phdrs += struct.pack(
                phdr_fmt, p_type, flags, p_offset, p_vaddr, p_vaddr, filesz, memsz, align
            )
        else:
            phdrs += struct.pack(
                phdr_fmt, p_type, p_offset, p_vaddr, p_vaddr, filesz, memsz, flags, align
            )
    image[ehdr_size : ehdr_size + len(phdrs)] = phdrs
    # e_ident: magic, EI_CLASS, EI_DATA, EI_VERSION, EI_OSABI (ELFOSABI_GNU when GNU-specific
    # symbol bindings/types are used, as GNU ld marks such files), padding.
    gnu_specific = any(s.binding == STB_GNU_UNIQUE or s.type == STT_GNU_IFUNC for s in symbols)
    osabi = ELFOSABI_GNU if gnu_specific else ELFOSABI_NONE
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 2 if big_endian else 1, 1, osabi]) + bytes(8)
    image[:ehdr_size] = struct.pack(
        ehdr_fmt,
        ident,
        e_type,
        machine,
        1,  # e_version: EV_CURRENT
        0,  # e_entry
        ehdr_size,  # e_phoff
        shoff,
        0,  # e_flags
        ehdr_size,
        phdr_size,
        2,  # e_phnum
        struct.calcsize(shdr_fmt) if section_headers else 0,
        shnum,
        shstrndx,
    )
    return ElfImage(
        data=bytes(image),
        parts=parts,
        symbol_order=tuple(s.name for s in ordered[1:]),
        bits=bits,
        big_endian=big_endian,
    )


def drop_section_headers(data: bytes) -> bytes:
    """``data`` with ``e_shoff``, ``e_shnum`` and ``e_shstrndx`` zeroed, as ``sstrip`` leaves it.

    The section header bytes stay in the file; the header simply no longer points at them.
    """
    order = ">" if data[5] == 2 else "<"
    out = bytearray(data)
    if data[4] == 2:  # ELFCLASS64: e_shoff at 0x28 (8 bytes), e_shnum 0x3C, e_shstrndx 0x3E
        struct.pack_into(order + "Q", out, 0x28, 0)
        struct.pack_into(order + "HH", out, 0x3C, 0, 0)
    else:  # ELFCLASS32: e_shoff at 0x20 (4 bytes), e_shnum 0x30, e_shstrndx 0x32
        struct.pack_into(order + "I", out, 0x20, 0)
        struct.pack_into(order + "HH", out, 0x30, 0, 0)
    return bytes(out)
