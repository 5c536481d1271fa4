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
from torch_abi_audit.readers.elf import read_elf
from torch_abi_audit.readers.errors import BinaryReadError, UnsupportedFormatError

__all__ = [
    "BinaryReadError",
    "UnsupportedFormatError",
    "detect_format",
    "read_head",
    "read_library",
]


def read_head(path: Path) -> bytes:
    """The first :data:`~torch_abi_audit.readers.detect.MAGIC_SIZE` bytes of ``path``.

    Raises :class:`OSError` if the file cannot be read.
    """
    with path.open("rb", buffering=0) as handle:
        return handle.read(MAGIC_SIZE)


def read_library(path: Path, *, local_symbols: bool = False) -> Library:
    """Read the compiled library at ``path``, whatever its container format.

    Raises :class:`UnsupportedFormatError` for Mach-O and PE files (their readers are not part of
    this release), :class:`BinaryReadError` for anything that is not a readable shared library,
    and :class:`OSError` if the file cannot be opened.
    """
    head = read_head(path)
    fmt = detect_format(head)
    if fmt is BinaryFormat.ELF:
        return read_elf(path, local_symbols=local_symbols)
    if fmt is BinaryFormat.MACHO:
        raise UnsupportedFormatError("Mach-O: format not yet supported")
    if fmt is BinaryFormat.PE:
        raise UnsupportedFormatError("PE/COFF: format not yet supported")
    if not head:
        raise BinaryReadError("empty file, not a shared library")
    raise BinaryReadError("not a shared library (no ELF, Mach-O or PE magic)")
