"""Byte sources over the members of a zip archive (a wheel), read in place with bounded memory.

Nothing is extracted. A *stored* member is read with positional reads at its offset in the
archive. A *deflated* member is decompressed as a stream, and only as far as the reader asks:
reads that move forward through the member are served as the stream passes them, and the
stream stops where the last read ends — an ELF library's dynamic section, symbols and strings
usually lie before its end, so the rest (debug information, the static symbol table, the
section header table) is never inflated. Two windows — the member's first and last
:data:`WINDOW` bytes, where headers, symbol tables and section headers live — are kept so that
the reader may return to them, and so is the last decompressed chunk, so that a read may start
where the previous one ended. A read that the stream has already passed, outside all of these,
makes the member spill into an anonymous temporary file (removed by the OS when closed, even on
a crash): the member is decompressed again into it, as far as that read needs, and every
further read is served from it. Memory stays bounded by the windows and a decompression chunk,
whatever the member's size; work by what the reader needs (a stream's output starts at
:data:`FIRST_STEP` bytes and doubles, so a member read for its first kilobytes inflates little
more than that, however far it would inflate).

Integrity: :meth:`StreamedMember.finish` reads the member to its end and checks its size and
CRC-32 when asked to (``--verify-archive``), or when what is left costs at most
:data:`VERIFY_BUDGET` bytes; otherwise the member was *cut short*, and ``finish`` says so, so
that reports can say the archive was not fully verified.

Reference: PKWARE APPNOTE.TXT 4.3.7 (local file header), 4.4 (field meanings).
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from torch_abi_audit.readers.errors import BinaryReadError
from torch_abi_audit.readers.source import ByteSource, check_range
from torch_abi_audit.sources.deflate_codec import zlib
from torch_abi_audit.sources.deflate_seek import DeflateSeeker, SeekFailed

if TYPE_CHECKING:
    import bz2
    import lzma

#: Bytes kept at each end of a streamed member.
WINDOW = 32 << 20
#: Most compressed bytes read, and decompressed bytes produced, per step.
CHUNK = 4 << 20
#: The first step of a stream; each next one doubles, up to :data:`CHUNK`.
FIRST_STEP = 64 << 10
#: Decompressed bytes a member may still cost after the reader is done, to check its size and
#: CRC-32 without being asked to (the "fixed budget" beyond what the reader needs).
VERIFY_BUDGET = 4 << 20
#: A read ending more than this far past the stream is a candidate for entering the stream in
#: the middle (:mod:`torch_abi_audit.sources.deflate_seek`) ...
SEEK_AHEAD = 8 << 20
#: ... when that decodes at most this fraction of what the stream would.
SEEK_ADVANTAGE = 2
#: Seeks a member may fail before it stops trying.
MAX_SEEK_FAILURES = 2

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_LOCAL_SIGNATURE = b"PK\x03\x04"
ZIP_STORED = 0
ZIP_DEFLATED = 8
ZIP_BZIP2 = 12
ZIP_LZMA = 14

ChunkStream = Iterator[bytes]


def member_data_offset(archive: ByteSource, header_offset: int, name: str) -> int:
    """Offset of a member's data: after its local file header, name and extra field."""
    raw = archive.read(header_offset, _LOCAL_HEADER.size, f"local header of {name}")
    fields = _LOCAL_HEADER.unpack(raw)
    if fields[0] != _LOCAL_SIGNATURE:
        raise BinaryReadError(f"{name}: bad local file header signature (corrupt archive)")
    name_length, extra_length = int(fields[-2]), int(fields[-1])
    return header_offset + _LOCAL_HEADER.size + name_length + extra_length


class MemberData(NamedTuple):
    """Where a member's bytes are and what they must check out to."""

    name: str
    start: int  # offset of the (compressed) data in the archive
    compressed_size: int
    size: int
    crc: int


class _Output:
    """Counts and checksums a member's bytes as they come; refuses more than it declares.

    With ``defer_checksum``, the CRC-32 of the first :data:`WINDOW` bytes is computed only
    when the member turns out to be read past them or to its end: a stream that stops early
    (most large libraries) never pays for it. For a streamed member's first stream, whose head
    window keeps those chunks anyway (they cost no memory here).
    """

    def __init__(self, member: MemberData, *, defer_checksum: bool = False) -> None:
        self.member = member
        self.produced = 0
        self.crc = 0
        self._pending: list[bytes] | None = [] if defer_checksum else None  # not checksummed

    def take(self, data: bytes) -> bytes:
        """Account for ``data``; a zip bomb lying about its size fails as soon as it overflows."""
        self.produced += len(data)
        if self.produced > self.member.size:
            raise BinaryReadError(
                f"{self.member.name}: decompresses past its declared size of "
                f"{self.member.size} bytes (zip bomb?)"
            )
        if self._pending is not None and self.produced <= WINDOW:
            self._pending.append(data)
        else:
            self._checksum_pending()
            self.crc = zlib.crc32(data, self.crc)
        return data

    def _checksum_pending(self) -> None:
        for chunk in self._pending or ():
            self.crc = zlib.crc32(chunk, self.crc)
        self._pending = None

    def verify(self) -> None:
        """Check the total size and the CRC-32 against the central directory."""
        self._checksum_pending()
        name, size = self.member.name, self.member.size
        if self.produced != size:
            raise BinaryReadError(
                f"{name}: decompresses to {self.produced} bytes, the archive declares {size} "
                "(corrupt)"
            )
        if self.crc != self.member.crc:
            raise BinaryReadError(f"{name}: CRC-32 mismatch (corrupt or tampered archive member)")


class Progress:
    """How far a stream from the start of a member got: compressed bytes consumed, bytes
    produced (a point of the compressed-to-output mapping, for :class:`DeflateSeeker`)."""

    def __init__(self) -> None:
        self.compressed = 0
        self.produced = 0


def inflate(
    archive: ByteSource,
    member: MemberData,
    progress: Progress | None = None,
    *,
    defer_checksum: bool = False,
) -> ChunkStream:
    """Decompress a deflated member chunk by chunk, checking its size and CRC at the end.

    Never produces more than the declared ``size``: a member that inflates beyond it (a zip
    bomb lying about its size) fails as soon as it does. ``progress``, if given, follows it.
    ``defer_checksum``: see :class:`_Output` (for a consumer that keeps the first
    :data:`WINDOW` bytes).
    """
    name, start, compressed_size = member.name, member.start, member.compressed_size
    decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
    output = _Output(member, defer_checksum=defer_checksum)
    progress = progress or Progress()
    progress.compressed = progress.produced = 0
    consumed = 0
    pending = b""
    step = FIRST_STEP
    while True:
        if not pending:
            if consumed >= compressed_size:
                break
            length = min(step, compressed_size - consumed)
            pending = archive.read(start + consumed, length, f"compressed data of {name}")
            consumed += length
        try:
            out = decompressor.decompress(pending, step)
        except zlib.error as exc:
            raise BinaryReadError(f"{name}: corrupt deflate data ({exc})") from exc
        pending = decompressor.unconsumed_tail
        progress.compressed, progress.produced = consumed - len(pending), output.produced + len(out)
        if out:
            yield output.take(out)
            step = min(step * 2, CHUNK)
        if decompressor.eof:
            break
    tail = decompressor.flush()
    if tail:
        yield output.take(tail)
    output.verify()


# bzip2 and LZMA members are decompressed here too rather than through zipfile, whose reader
# decompresses each compressed read in one go (79 bytes of bzip2 can become 64 MiB in memory,
# silently cut to the declared size) and lets lzma.LZMAError escape: bounded output per step,
# size and CRC-32 checked, as for deflate.
def _lzma_decompressor(archive: ByteSource, member: MemberData) -> lzma.LZMADecompressor:
    """The raw LZMA1 decoder for a member's stream (APPNOTE 5.8.8: after a 4-byte header of LZMA
    SDK version and properties size come 5 bytes of properties, ``lc``/``lp``/``pb`` packed in
    one byte and the dictionary size)."""
    import lzma

    name = member.name
    if member.compressed_size < 9:
        raise BinaryReadError(f"{name}: corrupt LZMA data (no LZMA header)")
    header = archive.read(member.start, 9, f"LZMA header of {name}")
    packed, dict_size = header[4], int.from_bytes(header[5:9], "little")
    if int.from_bytes(header[2:4], "little") != 5 or packed >= 9 * 5 * 5:
        raise BinaryReadError(f"{name}: corrupt LZMA data (bad LZMA properties)")
    pb, rest = divmod(packed, 45)
    lp, lc = divmod(rest, 9)
    lzma1 = {"id": lzma.FILTER_LZMA1, "lc": lc, "lp": lp, "pb": pb, "dict_size": dict_size}
    try:
        return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[lzma1])
    except (lzma.LZMAError, ValueError) as exc:
        raise BinaryReadError(f"{name}: corrupt LZMA data ({exc})") from exc


def decompress(archive: ByteSource, member: MemberData, method: int) -> ChunkStream:
    """Decompress a bzip2 or LZMA member chunk by chunk, checking its size and CRC at the end.

    Like :func:`inflate`, never produces more than the declared ``size``.
    """
    name, start, compressed_size = member.name, member.start, member.compressed_size
    decompressor: bz2.BZ2Decompressor | lzma.LZMADecompressor
    errors: tuple[type[Exception], ...]
    if method == ZIP_BZIP2:
        import bz2

        kind, decompressor, errors, consumed = "bzip2", bz2.BZ2Decompressor(), (OSError,), 0
    else:
        import lzma

        kind, errors, consumed = "LZMA", (lzma.LZMAError,), 9
        decompressor = _lzma_decompressor(archive, member)
    output = _Output(member)
    step = FIRST_STEP
    while not decompressor.eof:
        data = b""
        if decompressor.needs_input:
            if consumed >= compressed_size:
                break  # a stream without an end marker, or a truncated one: sizes tell
            length = min(step, compressed_size - consumed)
            data = archive.read(start + consumed, length, f"compressed data of {name}")
            consumed += length
        try:
            out = decompressor.decompress(data, step)
        except errors as exc:
            raise BinaryReadError(f"{name}: corrupt {kind} data ({exc})") from exc
        if out:
            yield output.take(out)
            step = min(step * 2, CHUNK)
    output.verify()


def stored_chunks(archive: ByteSource, member: MemberData) -> ChunkStream:
    """A stored member as chunks, with its CRC checked at the end."""
    output = _Output(member)
    for offset in range(0, member.size, CHUNK):
        length = min(CHUNK, member.size - offset)
        yield output.take(archive.read(member.start + offset, length, f"data of {member.name}"))
    output.verify()


class StoredMember:
    """A stored (uncompressed) member: positional reads straight from the archive."""

    sequential = False

    def __init__(self, archive: ByteSource, member: MemberData) -> None:
        check_range(member.start, member.size, archive.size, f"data of {member.name}")
        self._archive = archive
        self._member = member
        self._start = member.start
        self._size = member.size
        self.name = member.name

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int, what: str) -> bytes:
        check_range(offset, length, self._size, what)
        return self._archive.read(self._start + offset, length, what)

    def finish(self, *, verify: bool = False) -> bool:
        """Check the member's CRC-32 (reads it once, in chunks) when ``verify`` is true or the
        member is at most :data:`VERIFY_BUDGET` bytes; returns whether it was checked.

        Raises :class:`BinaryReadError` when the check fails.
        """
        if not verify and self._size > VERIFY_BUDGET:
            return False
        for _chunk in stored_chunks(self._archive, self._member):
            pass
        return True

    def close(self) -> None:
        """Nothing to release: the archive belongs to the caller."""


class StreamedMember:
    """A compressed member decompressed front to back, as far as it is read, with windows at
    both ends."""

    sequential = True

    def __init__(
        self,
        chunks: Callable[[], ChunkStream],
        size: int,
        name: str,
        seeker: tuple[DeflateSeeker, Progress] | None = None,
        *,
        spill_chunks: Callable[[], ChunkStream] | None = None,
    ) -> None:
        # ``spill_chunks`` decompresses the member again for a spill (default: ``chunks``): a
        # stream whose first chunks are not kept in a window.
        self._open_chunks = spill_chunks or chunks
        # A deflated member may be entered in the middle for reads far ahead of the stream
        # (:mod:`torch_abi_audit.sources.deflate_seek`); ``Progress`` follows the stream.
        self._seeker: DeflateSeeker | None = seeker[0] if seeker else None
        self._progress: Progress | None = seeker[1] if seeker else None
        self._seek_failures = 0
        self._size = size
        self.name = name
        self._stream: ChunkStream | None = chunks()
        self._position = 0  # decompressed bytes consumed from the stream
        # The tail window starts where the head window ends at the earliest, so that no byte of
        # a member smaller than two windows is kept twice.
        self._tail_start = max(WINDOW, size - WINDOW)
        # The chunks that overlap a window, as the stream produced them (kept, not copied):
        # (offset in the member, bytes), in ascending order; _starts holds their offsets.
        self._pieces: list[tuple[int, bytes]] = []
        self._starts: list[int] = []
        self._last = (0, b"")  # the last chunk consumed
        self._last_read = (0, b"")  # the last read served outside the windows
        self._spill: BinaryIO | None = None
        self._spilled = 0  # bytes of the member written to the spill file

    @property
    def size(self) -> int:
        return self._size

    @property
    def spilled(self) -> bool:
        """Whether a read went back past what the stream holds (the member was decompressed a
        second time, into a temporary file)."""
        return self._spill is not None

    def read(self, offset: int, length: int, what: str) -> bytes:
        check_range(offset, length, self._size, what)
        end = offset + length
        if self._spill is not None:
            return self._from_spill(offset, end, what)
        data = b""
        if offset < self._position:  # the part the stream has passed, if something holds it
            passed = self._retained(offset, min(end, self._position))
            if passed is None:  # nothing does: enter the stream there, or decompress again
                sought = self._seek(offset, end, end)
                if sought is not None:
                    return sought
                self._start_spill()
                return self._from_spill(offset, end, what)
            data = passed
        elif end > self._position + SEEK_AHEAD:  # far ahead: enter the stream there?
            sought = self._seek(offset, end, end - self._position)
            if sought is not None:
                return sought
        if end > self._position:
            data += self._advance(max(offset, self._position), end)
        if offset >= WINDOW and end <= self._tail_start:
            self._last_read = (offset, data)
        return data

    def _retained(self, start: int, stop: int) -> bytes | None:
        """``member[start:stop]`` for a range the stream has passed, pieced together from the
        windows, the last chunk and the last read; None if some of it is held by none."""
        found: list[bytes] = []
        while start < stop:
            piece = self._piece_at(start)
            if piece is None:
                return None
            at, data = piece
            taken = data[start - at : stop - at]
            found.append(taken)
            start += len(taken)
        return found[0] if len(found) == 1 else b"".join(found)  # b"" when nothing is

    def _piece_at(self, offset: int) -> tuple[int, bytes] | None:
        index = bisect.bisect_right(self._starts, offset) - 1
        if index >= 0:
            at, data = self._pieces[index]
            if offset < at + len(data):
                return at, data
        for at, data in (self._last, self._last_read):
            if at <= offset < at + len(data):
                return at, data
        return None

    def _advance(self, want_start: int, want_end: int) -> bytes:
        """Consume the stream up to ``want_end``, keeping the windows and the wanted range."""
        wanted: list[bytes] = []
        while self._position < want_end:
            chunk = self._next_chunk()
            chunk_start = self._position
            chunk_end = chunk_start + len(chunk)
            if chunk_start < WINDOW or chunk_end > self._tail_start:
                self._pieces.append((chunk_start, chunk))
                self._starts.append(chunk_start)
            if chunk_end > want_start and chunk_start < want_end:
                if want_start <= chunk_start and chunk_end <= want_end:
                    wanted.append(chunk)
                else:
                    wanted.append(chunk[max(0, want_start - chunk_start) : want_end - chunk_start])
            self._position = chunk_end
            if chunk:
                self._last = (chunk_start, chunk)
        return wanted[0] if len(wanted) == 1 else b"".join(wanted)  # b"" when nothing is

    def _next_chunk(self) -> bytes:
        assert self._stream is not None
        try:
            return next(self._stream)
        except StopIteration:
            raise BinaryReadError(
                f"{self.name}: ends at {self._position} bytes, before its declared size"
            ) from None

    # -- entering the stream in the middle -----------------------------------------------------

    def _seek(self, offset: int, end: int, alternative: int) -> bytes | None:
        """``member[offset:end]`` decoded from a block near it, when that costs clearly less
        than the ``alternative`` (bytes the stream would decompress instead); None otherwise,
        or when the seek gives up (after a few failures, the member stops trying)."""
        if self._seeker is None or self._progress is None:
            return None
        if SEEK_ADVANTAGE * self._seeker.cost(offset) > alternative:
            return None
        self._seeker.note_frontier(self._progress.compressed, self._position)
        try:
            return self._seeker.read(offset, end, budget=alternative)
        except SeekFailed:
            self._seek_failures += 1
            if self._seek_failures >= MAX_SEEK_FAILURES:
                self._seeker = None
            return None

    @property
    def seek_decoded(self) -> int:
        """Bytes decoded by entering the stream in the middle (0 if it never was)."""
        return self._seeker.decoded if self._seeker is not None else 0

    # -- spilling --------------------------------------------------------------------------

    def _start_spill(self) -> None:
        """Drop the windows and start a new stream that fills a temporary file on demand."""
        import tempfile

        self._spill = tempfile.TemporaryFile(prefix="torch-abi-audit-")  # noqa: SIM115 - kept
        self._spilled = 0
        self._close_stream()
        self._stream = self._open_chunks()
        self._position = 0

    def _from_spill(self, offset: int, end: int, what: str) -> bytes:
        assert self._spill is not None
        while self._spilled < end:
            chunk = self._next_chunk()
            self._spill.seek(self._spilled)
            self._spill.write(chunk)
            self._spilled += len(chunk)
            self._position = self._spilled
        self._spill.seek(offset)
        data = self._spill.read(end - offset)
        if len(data) != end - offset:
            raise BinaryReadError(f"short read of {what} from the spill file")
        return data

    # -- the end ---------------------------------------------------------------------------

    def finish(self, *, verify: bool = False) -> bool:
        """Read the member to its end, which checks its size and CRC-32, when ``verify`` is
        true or at most :data:`VERIFY_BUDGET` bytes are left; returns whether it did (False:
        the member was cut short, its integrity is unchecked).

        Raises :class:`BinaryReadError` when the check fails.
        """
        if self._stream is None:
            return True
        if not verify and self._size - self._position > VERIFY_BUDGET:
            return False
        for chunk in self._stream:
            self._position += len(chunk)
        self._stream = None
        return True

    def _close_stream(self) -> None:
        if self._stream is not None:
            close = getattr(self._stream, "close", None)
            if close is not None:
                close()
            self._stream = None
        self._pieces = []
        self._starts = []
        self._last = (0, b"")
        self._last_read = (0, b"")

    def close(self) -> None:
        """Release the windows, the stream and any spill file."""
        self._close_stream()
        if self._spill is not None:
            self._spill.close()
            self._spill = None
