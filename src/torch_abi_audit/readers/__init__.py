"""Binary readers: bytes on disk -> the format-neutral :class:`~torch_abi_audit.model.Library`.

:func:`read_library` detects the format from magic bytes once and dispatches to the reader for
that format. Readers never import rules; they raise only :class:`BinaryReadError` (or its
subclass :class:`UnsupportedFormatError`) for bad input, and :class:`OSError` when the file
cannot be opened.
"""

from __future__ import annotations

from pathlib import Path

from torch_abi_audit.model import BinaryFormat, Library
from torch_abi_audit.readers.detect import MAGIC_SIZE, detect_format
from torch_abi_audit.readers.elf import parse_elf
from torch_abi_audit.readers.errors import BinaryReadError, UnsupportedFormatError
from torch_abi_audit.readers.source import ByteSource, FileBytes, file_bytes, prefetched

__all__ = [
    "BinaryReadError",
    "ByteSource",
    "FileBytes",
    "UnsupportedFormatError",
    "detect_format",
    "parse_library",
    "read_head",
    "read_library",
]

#: How much of a library's start :func:`parse_library` reads at once (a read of 64 KiB costs
#: little more than one of 16 bytes: the system call dominates).
HEAD_PREFETCH = 64 << 10


def read_head(path: Path) -> bytes:
    """The first :data:`~torch_abi_audit.readers.detect.MAGIC_SIZE` bytes of ``path``.

    Raises :class:`OSError` if the file cannot be read.
    """
    with file_bytes(path) as source:
        return source.read(0, min(MAGIC_SIZE, source.size), "file header")


def read_library(path: Path, *, local_symbols: bool = False) -> Library:
    """Read the compiled library at ``path``, whatever its container format.

    Raises :class:`UnsupportedFormatError` for binaries of a kind this release cannot read
    (MS-DOS, NE, LE/LX executables), :class:`BinaryReadError` for anything that is not a
    readable shared library, and :class:`OSError` if the file cannot be opened.
    """
    with file_bytes(path) as source:
        return parse_library(source, path, local_symbols=local_symbols)


def parse_library(source: ByteSource, path: Path, *, local_symbols: bool = False) -> Library:
    """Parse the library whose bytes ``source`` gives (``path`` names it), whatever its format.

    Raises :class:`UnsupportedFormatError` for binaries of a kind this release cannot read
    and :class:`BinaryReadError` for anything that is not a readable shared library.
    """
    # The headers, and in a small library most of its tables, lie in its first bytes: one
    # read of them instead of a system call per header (nothing on a stream).
    source = prefetched(source)
    source.prefetch(0, HEAD_PREFETCH, "file header")
    head = source.read(0, min(MAGIC_SIZE, source.size), "file header")
    fmt = detect_format(head)
    if fmt is BinaryFormat.ELF:
        return parse_elf(source, path, local_symbols=local_symbols)
    # The Mach-O and PE readers are imported when a library needs them (~4 ms at start-up,
    # which an audit of Linux libraries never uses).
    if fmt is BinaryFormat.MACHO:
        from torch_abi_audit.readers.macho import parse_macho

        return parse_macho(source, path, local_symbols=local_symbols)
    if fmt is BinaryFormat.PE:
        from torch_abi_audit.readers.pe import parse_pe

        return parse_pe(source, path, local_symbols=local_symbols)
    if not head:
        raise BinaryReadError("empty file, not a shared library")
    raise BinaryReadError("not a shared library (no ELF, Mach-O or PE magic)")
