"""A byte source over bytes in memory that records its reads, for the reader tests."""

from __future__ import annotations

from torch_abi_audit.readers.source import check_range


class MemorySource:
    """A :class:`~torch_abi_audit.readers.source.ByteSource` over ``data``.

    ``reads`` records every ``(offset, length)`` asked for, so that tests can check what a
    reader reads and in which order; ``sequential`` makes it pose as a forward-only stream.
    Reads outside ``data`` raise :class:`~torch_abi_audit.readers.errors.BinaryReadError`.
    """

    def __init__(self, data: bytes, *, sequential: bool = False) -> None:
        self.data = data
        self.sequential = sequential
        self.reads: list[tuple[int, int]] = []

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, offset: int, length: int, what: str) -> bytes:
        check_range(offset, length, len(self.data), what)
        self.reads.append((offset, length))
        return self.data[offset : offset + length]
