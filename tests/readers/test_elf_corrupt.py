"""Bad input: every malformed, truncated or hostile file gives BinaryReadError, never a crash
or a hang."""

from __future__ import annotations

import contextlib
import random
import re
import subprocess
from pathlib import Path

import pytest

from helpers.build import SOURCES, Fixtures, compiler
from helpers.elf_builder import (
    ET_CORE,
    ET_EXEC,
    Sym,
    build_elf,
    drop_section_headers,
)
from helpers.elf_inspect import (
    deadline,
    dynamic_entry,
    dynsym_index,
    fixture_path,
    layout_of,
    patched,
    read_fully,
    write,
)
from torch_abi_audit.readers import BinaryReadError, UnsupportedFormatError, read_library
from torch_abi_audit.readers.elf import read_elf

# -- bad input -----------------------------------------------------------------------------------


def expect_read_error(path: Path, match: str | None = None) -> BinaryReadError:
    with deadline(10), pytest.raises(BinaryReadError, match=match) as info:
        read_fully(path)
    return info.value


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x7fEL",
        b"\x7fELF",
        b"hello, I am a text file pretending to be a library\n" * 20,
        b"\x7fELF" + bytes(range(256)) * 4,
        b"\x7fELF\x03\x01\x01" + bytes(57),  # unknown EI_CLASS
        b"\x7fELF\x00\x01\x01" + bytes(57),  # ELFCLASSNONE
        b"\x7fELF\x02\x07\x01" + bytes(57),  # unknown EI_DATA
        b"\x7fELF\x02\x01\x01" + bytes(9),  # identification only, no header
        # A valid identification and e_type ET_DYN, then seeded random bytes.
        b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x03\x00" + random.Random(7).randbytes(4000),
        b"\x7fELF\x01\x02\x01" + bytes(9) + b"\x00\x03" + random.Random(8).randbytes(4000),
    ],
    ids=[
        "empty",
        "3-bytes",
        "magic",
        "text",
        "garbage",
        "class-3",
        "class-0",
        "data-7",
        "ident",
        "random-64le",
        "random-32be",
    ],
)
def test_not_an_elf_shared_object(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "libbad.so"
    path.write_bytes(content)
    expect_read_error(path)
    with pytest.raises(BinaryReadError) as info:
        read_library(path)
    assert not isinstance(info.value, UnsupportedFormatError)


def test_truncated_copies(built: Fixtures, tmp_path: Path) -> None:
    data = built.versioned.read_bytes()
    cuts = [*range(0, 4096, 97), len(data) // 2, len(data) - 100, len(data) - 1]
    for size in cuts:
        path = tmp_path / f"cut{size}.so"
        path.write_bytes(data[:size])
        expect_read_error(path)


def test_truncated_32_bit_copies(built: Fixtures, tmp_path: Path) -> None:
    data = built.tiny32.read_bytes()
    for size in [*range(0, 2048, 61), len(data) - 1]:
        path = tmp_path / f"cut{size}.so"
        path.write_bytes(data[:size])
        expect_read_error(path)


def test_section_headers_beyond_eof(built: Fixtures, tmp_path: Path) -> None:
    data = built.versioned.read_bytes()
    expect_read_error(
        write(tmp_path, patched(data, (0x28, "<Q", len(data) + 64))), "extends past the end"
    )
    expect_read_error(write(tmp_path, patched(data, (0x28, "<Q", 1 << 63))), "extends past the end")


def test_program_headers_beyond_eof(built: Fixtures, tmp_path: Path) -> None:
    data = drop_section_headers(built.versioned.read_bytes())
    expect_read_error(write(tmp_path, patched(data, (0x20, "<Q", len(data)))))
    expect_read_error(write(tmp_path, patched(data, (0x38, "<H", 0xFFFF))))


def test_huge_section_count(built: Fixtures, tmp_path: Path) -> None:
    data = built.versioned.read_bytes()
    expect_read_error(write(tmp_path, patched(data, (0x3C, "<H", 0xFFFF))), "extends past the end")
    # Extended numbering (e_shnum == 0: the count is section 0's sh_size) with a huge count.
    layout = layout_of(data)
    huge = patched(data, (0x3C, "<H", 0), (layout.shoff + 32, "<Q", 1 << 40))
    expect_read_error(write(tmp_path, huge), "extends past the end")


def test_section_header_size_zero(built: Fixtures, tmp_path: Path) -> None:
    data = built.versioned.read_bytes()
    expect_read_error(write(tmp_path, patched(data, (0x3A, "<H", 0))), "too small")


DT_SYMENT = 11
DT_GNU_HASH = 0x6FFFFEF5
DT_UNKNOWN = 0x6FFFFEFF  # an OS-specific tag no reader knows: the entry is ignored


def without_hash_tags(data: bytes) -> bytes:
    """``data`` with its DT_GNU_HASH entry renamed: the dynamic section no longer sizes the
    symbol table, so the reader takes it from the section headers."""
    return patched(data, (dynamic_entry(data, layout_of(data), DT_GNU_HASH), "<Q", DT_UNKNOWN))


def test_symbol_entry_size(built: Fixtures, tmp_path: Path) -> None:
    data = built.versioned.read_bytes()
    expected = read_elf(built.versioned).imports
    # DT_SYMENT (the loader's view) and sh_entsize (the sections'): 0 means "unknown", the
    # reader uses the class's Elf_Sym size; less than an Elf64_Sym is corrupt.
    syment = dynamic_entry(data, layout_of(data), DT_SYMENT) + 8
    sections = without_hash_tags(data)
    dynsym = layout_of(data).sections[".dynsym"]
    entsize = dynsym.header + layout_of(data).sh_entsize_at
    for base, at in ((data, syment), (sections, entsize)):
        lib = read_elf(write(tmp_path, patched(base, (at, "<Q", 0)), "zero.so"))
        assert lib.imports == expected
        expect_read_error(write(tmp_path, patched(base, (at, "<Q", 1))), "entry size")


def test_dynsym_link_out_of_range(built: Fixtures, tmp_path: Path) -> None:
    data = without_hash_tags(built.versioned.read_bytes())
    layout = layout_of(data)
    at = layout.sections[".dynsym"].header + layout.sh_link_at
    expect_read_error(write(tmp_path, patched(data, (at, "<I", 99))), "out of range")
    expect_read_error(write(tmp_path, patched(data, (at, "<I", 0))), "out of range")


def test_the_section_headers_are_read_only_when_needed(built: Fixtures, tmp_path: Path) -> None:
    """The loader's view needs no section header: a library whose table is gone (or cut off by
    a truncation after the dynamic data) reads the same, with no read-only data ranges."""
    data = built.versioned.read_bytes()
    expected = read_elf(built.versioned)
    layout = layout_of(data)
    cut = write(tmp_path, data[: layout.shoff], "cut.so")
    lib = read_elf(cut)
    assert lib.imports == expected.imports and lib.exports == expected.exports
    assert lib.needed == expected.needed and lib.soname == expected.soname
    assert lib.rodata == ()
    # Asked for, the static symbol table needs them: then the cut is an error.
    expect_read_error(cut, "section header table")


def test_string_offsets_beyond_the_table(built: Fixtures, tmp_path: Path) -> None:
    data = built.versioned.read_bytes()
    layout = layout_of(data)
    dynsym = layout.sections[".dynsym"]
    # An import's or an export's name: names are validated when the file is read, so the lazy
    # tables never fail later.
    for symbol in ("cos", "foo_api"):
        at = dynsym.offset + dynsym_index(data, layout, symbol) * dynsym.entsize
        expect_read_error(write(tmp_path, patched(data, (at, "<I", 0xFFFFFF))), "string table")
    # DT_NEEDED and DT_SONAME values.
    needed = dynamic_entry(data, layout, 1) + 8
    expect_read_error(write(tmp_path, patched(data, (needed, "<Q", 1 << 20))), "DT_NEEDED")
    soname = dynamic_entry(data, layout, 14) + 8
    expect_read_error(write(tmp_path, patched(data, (soname, "<Q", 1 << 20))), "DT_SONAME")
    # A version requirement's library and version name (Elf64_Verneed.vn_file, Vernaux.vna_name).
    verneed = layout.sections[".gnu.version_r"].offset
    expect_read_error(write(tmp_path, patched(data, (verneed + 4, "<I", 1 << 20))), "string")
    expect_read_error(write(tmp_path, patched(data, (verneed + 16 + 8, "<I", 1 << 20))), "string")
    # A string that runs to the end of its table without a NUL.
    dynstr = layout.sections[".dynstr"]
    last = patched(data, (dynstr.offset + dynstr.size - 1, "<B", ord("x")))
    expect_read_error(write(tmp_path, last))


def test_unterminated_export_name(tmp_path: Path) -> None:
    """A name running off the end of .dynstr fails the read itself, not a later accessor."""
    image = build_elf([Sym("imp", defined=False), Sym("zed")], hash_style="sysv")
    offset, size = image.parts[".dynstr"]
    assert image.data[offset : offset + size].endswith(b"zed\0")
    path = write(tmp_path, patched(image.data, (offset + size - 1, "<B", ord("x"))))
    with pytest.raises(BinaryReadError, match="NUL-terminated"):
        read_elf(path)


@pytest.mark.parametrize("strip", [False, True], ids=["sections", "no-sections"])
def test_version_chains_terminate(built: Fixtures, tmp_path: Path, strip: bool) -> None:
    """Version chains with hostile counts and links end, with a result or a BinaryReadError.

    The vn_next/vna_next/vd_next links are relative: 0 ends a chain, so an entry whose link
    points back at itself is one whose link is 0 while the count (sh_info, DT_VERNEEDNUM)
    claims billions of entries.
    """
    data = built.versioned.read_bytes()
    layout = layout_of(data)
    verneed = layout.sections[".gnu.version_r"]
    verdef = layout.sections[".gnu.version_d"]
    counts = [
        (verneed.header + layout.sh_info_at, "<I", 0xFFFFFFFF),
        (dynamic_entry(data, layout, 0x6FFFFFFF) + 8, "<Q", 0xFFFFFFFF),  # DT_VERNEEDNUM
        (verdef.header + layout.sh_info_at, "<I", 0xFFFFFFFF),
        (dynamic_entry(data, layout, 0x6FFFFFFD) + 8, "<Q", 0xFFFFFFFF),  # DT_VERDEFNUM
    ]
    want = read_elf(built.versioned)

    def prepare(content: bytes, name: str) -> Path:
        return write(tmp_path, drop_section_headers(content) if strip else content, f"{name}.so")

    # Links of 0 end the chains whatever the counts say: the versions read as before.
    self_loops = {
        "self-loop": patched(data, *counts),
        "aux-self-loop": patched(data, *counts, (verneed.offset + 2, "<H", 0xFFFF)),  # vn_cnt
    }
    for name, content in self_loops.items():
        with deadline(10):
            lib = read_fully(prepare(content, name))
        assert lib.imports == want.imports, name
        assert lib.exports == want.exports, name
    # Links that step into the middle of entries: garbage, but the walk must end.
    hostile = {
        "next-into-aux": patched(data, *counts, (verneed.offset + 12, "<I", 16)),  # vn_next
        "next-by-one": patched(data, *counts, (verneed.offset + 12, "<I", 1)),
        "aux-next-by-one": patched(
            data, *counts, (verneed.offset + 2, "<H", 0xFFFF), (verneed.offset + 16 + 12, "<I", 1)
        ),
        "verdef-next-by-one": patched(data, *counts, (verdef.offset + 16, "<I", 1)),
    }
    for name, content in hostile.items():
        path = prepare(content, name)
        with deadline(10), contextlib.suppress(BinaryReadError):
            read_fully(path)


def test_section_less_without_hash_table(built: Fixtures, tmp_path: Path) -> None:
    data = built.versioned.read_bytes()
    gnu_hash_tag = dynamic_entry(data, layout_of(data), 0x6FFFFEF5)
    # Turn DT_GNU_HASH into an unknown OS-specific tag: nothing sizes .dynsym any more.
    no_hash = drop_section_headers(patched(data, (gnu_hash_tag, "<q", 0x6FFFFEF0)))
    expect_read_error(write(tmp_path, no_hash), "hash")


def test_section_less_hostile_hash_tables(built: Fixtures, tmp_path: Path) -> None:
    sysv = built.sysv_hash.read_bytes()
    hash_at = layout_of(sysv).sections[".hash"].offset
    huge_nchain = drop_section_headers(patched(sysv, (hash_at + 4, "<I", 0xFFFFFFFF)))
    expect_read_error(write(tmp_path, huge_nchain, "nchain.so"), "outside")
    gnu = built.versioned.read_bytes()
    gnu_at = layout_of(gnu).sections[".gnu.hash"].offset
    huge_buckets = drop_section_headers(patched(gnu, (gnu_at, "<I", 0xFFFFFFFF)))
    expect_read_error(write(tmp_path, huge_buckets, "nbuckets.so"), "bucket")
    huge_bloom = drop_section_headers(patched(gnu, (gnu_at + 8, "<I", 0xFFFFFFFF)))
    expect_read_error(write(tmp_path, huge_bloom, "bloom.so"), "outside")
    # A DT_SYMTAB address outside every PT_LOAD segment.
    symtab = dynamic_entry(gnu, layout_of(gnu), 6) + 8
    unmapped = drop_section_headers(patched(gnu, (symtab, "<Q", 1 << 40)))
    expect_read_error(write(tmp_path, unmapped, "unmapped.so"), "not in any loaded segment")


def compile_to(tmp_path: Path, *flags: str, name: str) -> Path:
    output = tmp_path / name
    subprocess.run(
        [compiler("c"), *flags, "-o", str(output)], check=True, capture_output=True, text=True
    )
    return output


def test_relocatable_object_is_rejected(tmp_path: Path) -> None:
    obj = compile_to(tmp_path, "-c", "-fPIC", str(SOURCES / "plain.c"), name="plain.o")
    error = expect_read_error(obj, "not a shared object")
    assert "relocatable" in str(error)


def test_executables_are_read_and_marked(tmp_path: Path, built: Fixtures) -> None:
    source = tmp_path / "main.c"
    source.write_text("#include <math.h>\nint main(int c, char** v) { return (int)cos(c); }\n")
    try:
        exe = compile_to(tmp_path, "-no-pie", str(source), "-lm", name="main")
    except subprocess.CalledProcessError as exc:  # pragma: no cover - toolchain without -no-pie
        pytest.skip(f"cannot link a non-PIE executable: {exc.stderr}")
    pie = compile_to(tmp_path, "-fPIE", "-pie", str(source), "-lm", name="main-pie")
    for path in (exe, pie):
        library = read_library(path)
        assert library.executable, path.name
        assert "libm.so.6" in library.needed
        assert "cos" in library.imports.names()
    # A shared object is not one, even with an interpreter: glibc's own libc.so.6 has one.
    assert not read_library(built.versioned).executable


def test_other_object_types_are_rejected(tmp_path: Path) -> None:
    path = build_elf([Sym("f")], e_type=ET_CORE, bits=32, big_endian=True).write(tmp_path / "x")
    error = expect_read_error(path, "not a shared object")
    assert "core" in str(error)
    executable = build_elf([Sym("f")], e_type=ET_EXEC, bits=32, big_endian=True)
    assert read_library(executable.write(tmp_path / "y")).executable


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b"\xcf\xfa\xed\xfe\x07\x00\x00\x01", "Mach-O file type 0, not a shared library"),
        (b"\xfe\xed\xfa\xce\x00\x00\x00\x12", "Mach-O file type 0, not a shared library"),
        (b"\xca\xfe\xba\xbe\x00\x00\x00\x02", "universal binary slice 0 (cpu-0) is empty"),
    ],
)
def test_hollow_mach_o_headers_are_errors(tmp_path: Path, head: bytes, message: str) -> None:
    path = write(tmp_path, head + bytes(120), "lib.bin")
    with pytest.raises(BinaryReadError, match=re.escape(message)) as info:
        read_library(path)
    assert not isinstance(info.value, UnsupportedFormatError)


def test_ms_dos_program_is_unsupported(tmp_path: Path) -> None:
    path = write(tmp_path, b"MZ\x90\x00\x03\x00\x00\x00" + bytes(120), "lib.bin")
    with pytest.raises(UnsupportedFormatError, match="MS-DOS"):
        read_library(path)


def test_java_class_is_not_mach_o(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xca\xfe\xba\xbe\x00\x00\x00\x34" + bytes(64), "Main.class")
    with pytest.raises(BinaryReadError) as info:
        read_library(path)
    assert not isinstance(info.value, UnsupportedFormatError)


def fuzz_regions(data: bytes, *, section_headers: bool) -> list[range]:
    """Header, program headers, section headers, .dynamic and the symbol/version metadata."""
    layout = layout_of(data)
    regions = [
        range(64 if layout.is64 else 52),
        range(layout.phoff, layout.phoff + layout.phnum * layout.phentsize),
    ]
    if section_headers:
        regions.append(range(layout.shoff, len(data)))
    for name in (".dynamic", ".dynsym", ".gnu.hash", ".hash", ".gnu.version_r", ".gnu.version_d"):
        section = layout.sections.get(name)
        if section is not None:
            regions.append(range(section.offset, section.offset + section.size))
    return regions


@pytest.mark.parametrize(
    ("name", "strip"),
    [("versioned", False), ("versioned", True), ("sysv_hash", True), ("tiny32", False)],
)
def test_byte_flip_fuzz(built: Fixtures, tmp_path: Path, name: str, strip: bool) -> None:
    """Single-byte corruptions yield a Library or a BinaryReadError: nothing else, no hang."""
    original = fixture_path(built, name).read_bytes()
    regions = fuzz_regions(original, section_headers=not strip)
    data = drop_section_headers(original) if strip else original
    rng = random.Random(f"{name}-{strip}-20250101")
    outcomes = {"library": 0, "error": 0}
    failures = []
    for n in range(300):
        region = rng.choice(regions)
        offset = rng.choice(region)
        mutated = bytearray(data)
        mutated[offset] ^= rng.randrange(1, 256)
        path = write(tmp_path, bytes(mutated), f"fuzz{n}.so")
        try:
            with deadline(10):
                read_fully(path)
            outcomes["library"] += 1
        except BinaryReadError:
            outcomes["error"] += 1
        except Exception as exc:  # the point of the test: report, don't stop at the first
            failures.append(f"offset {offset:#x}: {type(exc).__name__}: {exc}")
        path.unlink()
    assert not failures, "\n".join(failures)
    assert outcomes["library"] and outcomes["error"], outcomes  # both paths were exercised
