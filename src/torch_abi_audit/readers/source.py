"""Where a reader's bytes come from: bounds-checked positional reads.

Readers parse through a :class:`ByteSource` instead of a file object, so that one reader serves a
file on disk (:class:`FileBytes`) and a member of a wheel read in place (the sources in
:mod:`torch_abi_audit.sources.wheel_bytes`). :class:`FileBytes` uses ``os.pread`` where the
platform has it (one system call per read, no shared file position) and ``seek`` + ``read``
elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

from torch_abi_audit.files import open_regular
from torch_abi_audit.readers.errors import BinaryReadError


class ByteSource(Protocol):
    """Random access to the bytes of one binary.

    ``sequential`` sources (a compressed wheel member, decompressed as a stream) serve reads
    cheaply only in ascending offset order, apart from windows they keep at the start and the
    end; readers then issue their reads in file order where they can.
    """

    sequential: bool

    @property
    def size(self) -> int:
        """Total size in bytes."""
        ...

    def read(self, offset: int, length: int, what: str) -> bytes:
        """Exactly ``length`` bytes at ``offset``.

        Raises :class:`BinaryReadError` naming ``what`` when the range lies outside the source.
        """
        ...


def check_range(offset: int, length: int, size: int, what: str) -> None:
    """Raise :class:`BinaryReadError` unless ``[offset, offset + length)`` lies within ``size``."""
    if offset < 0 or length < 0 or offset + length > size:
        raise BinaryReadError(
            f"{what} lies outside the file (offset {offset:#x}, {length} bytes, "
            f"file is {size} bytes): truncated or corrupt"
        )


class FileBytes:
    """A :class:`ByteSource` over an open binary file."""

    sequential = False

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._fd = handle.fileno()
        self._size = os.fstat(self._fd).st_size
        self._pread = getattr(os, "pread", None)

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int, what: str) -> bytes:
        check_range(offset, length, self._size, what)
        if self._pread is not None:
            data: bytes = self._pread(self._fd, length, offset)
        else:  # Windows: no pread
            self._handle.seek(offset)
            data = self._handle.read(length)
        if len(data) != length:
            raise BinaryReadError(f"short read of {what}: the file changed or is truncated")
        return data


@contextmanager
def file_bytes(path: Path | str) -> Iterator[FileBytes]:
    """A :class:`FileBytes` over the regular file ``path``, closed on exit.

    Raises :class:`OSError` if it cannot be opened, and
    :class:`~torch_abi_audit.files.NotRegularFileError` (never blocking) if it is a FIFO, a
    device, a socket or a directory.
    """
    with open_regular(path) as handle:
        yield FileBytes(handle)
