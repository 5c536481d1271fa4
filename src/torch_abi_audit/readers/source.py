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


class PrefetchedBytes:
    """A :class:`ByteSource` that serves reads lying inside ranges read ahead from memory.

    A reader that knows it will read many small, nearby pieces (headers, version tables) reads
    the range around them once with :meth:`prefetch`; each later read inside it is a slice
    instead of a system call. Reads outside every prefetched range go to the wrapped source
    unchanged, with its bounds checks and errors. On a ``sequential`` source :meth:`prefetch`
    does nothing (a stream must not be read further than the reader needs).
    """

    __slots__ = ("_windows", "sequential", "source")

    def __init__(self, source: ByteSource) -> None:
        self.source = source
        self.sequential = source.sequential
        self._windows: list[tuple[int, int, bytes]] = []  # (start, end, bytes)

    @property
    def size(self) -> int:
        return self.source.size

    def prefetch(self, offset: int, length: int, what: str) -> None:
        """Read ``[offset, offset + length)``, clipped to the source, in one read, unless it is
        already held. Never fails: a range that cannot be read is simply not held."""
        if self.sequential:
            return
        size = self.source.size
        if not 0 <= offset < size or length <= 0:
            return
        end = min(offset + length, size)
        for start, stop, _data in self._windows:
            if start <= offset and end <= stop:
                return
        try:
            data = self.source.read(offset, end - offset, what)
        except (BinaryReadError, OSError):
            return
        self._windows.append((offset, end, data))

    def read(self, offset: int, length: int, what: str) -> bytes:
        if length >= 0:
            end = offset + length
            for start, stop, data in self._windows:
                if start <= offset and end <= stop:
                    return data[offset - start : end - start]
        return self.source.read(offset, length, what)


def prefetched(source: ByteSource) -> PrefetchedBytes:
    """``source`` as a :class:`PrefetchedBytes` (itself when it already is one)."""
    return source if isinstance(source, PrefetchedBytes) else PrefetchedBytes(source)


@contextmanager
def file_bytes(path: Path | str) -> Iterator[FileBytes]:
    """A :class:`FileBytes` over the regular file ``path``, closed on exit.

    Raises :class:`OSError` if it cannot be opened, and
    :class:`~torch_abi_audit.files.NotRegularFileError` (never blocking) if it is a FIFO, a
    device, a socket or a directory.
    """
    with open_regular(path) as handle:
        yield FileBytes(handle)
