"""Random access into a deflated member: decode from a block in the middle, safely.

Deflate (RFC 1951) is a chain of blocks, each decoded with the 32 KiB of output before it (the
*window*) for back-references. A reader that needs bytes near the end of a large member — a
CUDA library's dynamic section after its GPU code, the string table patchelf moved to the end
of libtorch — would otherwise inflate the whole member. :class:`DeflateSeeker` enters the stream
at a block near the bytes wanted instead, and serves them only when they are proven to be the
member's bytes at the offsets asked for. Three things have to hold, and each is checked:

1. **Where the output lies.** Output offsets are unknown in the middle of a stream; they are
   known at its end (the member's declared size) and at block boundaries whose offset was found
   before (*anchors*). A *probe* decodes from a candidate block start ``c`` to the anchor just
   above it and checks that it arrives there *exactly*: after feeding the bits up to the
   anchor's bit, it appends an empty final fixed-Huffman block (``1 10 0000000``); the decoder
   reaches the end of the stream, with nothing left over, only if it stood at a block boundary
   at that very bit (mid-block, these 10 bits are symbols of the current block, and whatever
   block header follows them starts with a 0 bit or asks for a stored block's LEN that never
   comes: no end of stream). For the member's end, decoding must reach the end of the stream
   on its last byte. Then ``c`` lies ``len(output)`` bytes before the anchor.
2. **What the window was.** Each probe decodes twice, with a window of all 0x00 and of all
   0xFF. Every byte that a back-reference copies, directly or through other copies, from the
   unknown window differs between the two (0x00 against 0xFF), and every byte made only of
   literals is the same in both: so a byte equal in both is proven independent of the window.
   Bytes are served only from a range in which no byte differed (differences are recorded in
   small pieces while the two decoders run); once the last 32 KiB of both outputs agree, all
   later output agrees, and one decoder goes on. A wanted byte that depends on the window
   makes the seeker enter earlier, or give up.
3. **That ``c`` starts a true block.** A false start (bits that merely look like a block
   header) decodes garbage; if that garbage ran into a true boundary, everything after would
   be true data, correctly placed (offsets count from the anchor), but the garbage and the
   bytes copied from it would not be — and they are the same with either window. So data is
   served only from an anchor that is *confirmed*: a second probe, from a block start found by
   a separate search further back, decoded to it and arrived there exactly. If the anchor were
   a false start, that second chain of blocks would have to run from its own start, without a
   decoding error, onto exactly the same false position — a false chain that never met a true
   boundary on the way (meeting one, it would follow the true chain, which does not pass
   through a false position). On the real members this was measured on (libtorch_cuda.so, a
   vllm CUDA extension: about 8 million candidate positions), no false start survived past
   its header: none decoded a single byte. Bytes served come from the confirmed anchor on,
   and are window-independent relative to *it*, so what was decoded before it does not matter.

What remains is a stream built on purpose to parse validly from two bit alignments (a second
deflate stream hidden inside stored blocks of the first): the seeker would read the hidden one.
Reading such a member only as far as needed is what "not fully verified" in a report means;
``--verify-archive`` reads every member from its start (and never seeks), so it cannot be
fooled that way.

Everything is bounded: the search scans at most :data:`SEARCH_REACH` compressed bytes per probe
with at most :data:`MAX_TRIALS` trial decodes, a member gets at most :data:`MAX_PROBES`
probes, and a seek gives up once it has decoded more than the sequential read it replaces
would. Giving up returns ``None``, and the caller inflates from the start as before.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

from torch_abi_audit.sources.deflate_codec import zlib
from torch_abi_audit.sources.deflate_search import (
    TRIAL_INPUT,
    WINDOW_SIZE,
    ZERO_WINDOW,
    BlockStart,
    block_starts,
    entry_prefix,
)

ONES_WINDOW = b"\xff" * WINDOW_SIZE
#: An empty final fixed-Huffman block: BFINAL 1, BTYPE 01, end-of-block code 0000000.
_TERMINATOR, _TERMINATOR_BITS = 0b011, 10
#: Compressed bytes scanned for a block start per probe.
SEARCH_REACH = 1 << 20
#: Compressed bytes scanned at a time (regions overlap by the trial input), from the first
#: region's size up.
_FIRST_SCAN = 4 << 10
_SCAN_STEP = 32 << 10
#: Trial decodes per probe.
MAX_TRIALS = 4000
#: Probes per member.
MAX_PROBES = 16
#: Compressed bytes fed to the decoders at a time.
_FEED = 256 << 10
#: Output produced per decoder call ...
_OUT_STEP = 1 << 20
#: ... and while two decoders still disagree somewhere in the last window.
_PAIRED_STEP = 64 << 10
#: The resolution of the record of bytes that depend on the window.
_SPAN = 1 << 10
#: The first probe from the end starts this far before it (compressed bytes): it teaches the
#: seeker the compression ratio near the end before it aims further.
_FIRST_STEP = 64 << 10
#: The compression ratio near an anchor is measured over at least this much (compressed bytes).
_RATIO_SPAN = 256 << 10
#: A confirming probe starts this far below the anchor it confirms (compressed bytes).
_CONFIRM_STEP = 48 << 10
#: Output bytes kept before the first byte wanted, besides those the window taints.
_MIN_MARGIN = 128 << 10
#: Output bytes a read decodes past what it asked for, kept for the reads that follow it.
_READ_AHEAD = 256 << 10
#: The member's last output bytes kept for later reads (section headers, string tables).
_KEPT = 16 << 20
#: Output bytes a probe keeps from its start: the bytes a read wants, if it passes them.
_PROBE_KEEP = 16 << 20
#: Output bytes kept of what reads decoded.
_KEPT_READS = 8 << 20


class SeekFailed(Exception):
    """The seek gave up (no block start found, budget spent): inflate from the start instead."""


class _OverBudget(SeekFailed):
    """The seek decoded as much as reading from the start would have."""


@dataclass
class Anchor:
    """A block start whose output offset is known, and what decodes from it showed about the
    window: which of their bytes depended on it."""

    start: BlockStart
    offset: int  # output offset of the block's first byte
    #: How far decodes from here went (output offset).
    extent: int
    #: Spans (first, last output offset) of the bytes decoded from here that depended on the
    #: window, ascending.
    differences: list[tuple[int, int]]
    #: Whether all output from here after ``differences`` is independent of the window (the
    #: two decoders agreed for good before ``extent``).
    proven: bool
    confirmed: bool = False  # a probe from a separately found block start arrived here

    @property
    def clean(self) -> int:
        """The output offset after the last byte seen to depend on the window."""
        return self.differences[-1][1] + 1 if self.differences else self.offset

    def may_serve(self, offset: int, end: int) -> bool:
        """Whether output ``[offset, end)`` decoded from here may be the member's: no byte of
        it depended on the window in the decodes seen so far, and past their extent (unless
        proven), none after the last that did (a decode will tell)."""
        if offset < self.offset:
            return False
        if self.proven or end <= self.extent:
            return not any(low < end and high >= offset for low, high in self.differences)
        return self.clean <= offset

    def clean_until(self, end: int, limit: int) -> int:
        """How far from ``end`` (up to ``limit``) output decoded from here stays independent of
        the window, for a range up to ``end`` that :meth:`may_serve`."""
        for low, high in self.differences:
            if high >= end:
                return max(end, min(low, limit))
        return limit

    def learn(self, pair: _Pair) -> None:
        """Take in what a decode from here showed beyond what earlier decodes did."""
        old_extent = self.extent
        self.extent = max(self.extent, self.offset + pair.produced)
        self.differences += [
            (self.offset + low, self.offset + high)
            for low, high in pair.differences
            if self.offset + high >= old_extent
        ]
        self.proven = self.proven or pair.ones is None


class _Input:
    """The decoder input for a decode entered at block start ``start``: the compressed bytes
    from there, after a prefix that puts the block's first bit where it lies in its byte
    (:func:`~torch_abi_audit.sources.deflate_search.entry_input`); the prefix's output
    (``skip`` bytes) is not the member's."""

    def __init__(self, read: Callable[[int, int], bytes], size: int, start: BlockStart) -> None:
        self._read = read
        self._size = size  # compressed bytes of the member
        self.start = start
        self._shift = start.bit & 7
        # _merged: the prefix's bits in the block's first byte
        self._head, self._merged, self.prefix, self.skip = entry_prefix(self._shift, start.stored)

    def length(self, compressed_size: int) -> int:
        """Input bytes up to the member's end."""
        return len(self._head) + compressed_size - (self.start.bit >> 3)

    def position(self, stream_bit: int) -> int:
        """The input bit that holds stream bit ``stream_bit``."""
        return stream_bit - self.start.bit + self.prefix

    def bytes(self, first: int, stop: int) -> bytes:
        """Input bytes ``[first, stop)``, padded with zero bits past the member's end."""
        whole = len(self._head)
        data = self._head[first:stop]
        low = max(first, whole)
        if low < stop:
            begin = (self.start.bit >> 3) + low - whole
            end = min((self.start.bit >> 3) + stop - whole, self._size)
            body = self._read(begin, end - begin) if end > begin else b""
            if low == whole and body and self._shift:
                kept = body[0] & (0xFF << self._shift) & 0xFF
                body = bytes([kept | self._merged]) + body[1:]
            data += body
        return data + bytes(stop - first - len(data))


class _Pair:
    """Two decoders of the same input, windows of 0x00 and of 0xFF, until their outputs agree.

    Every output byte copied from the window, directly or through other copies, differs between
    the two; every other byte is the same in both. So a byte equal in both is proven independent
    of the window, and a range of output in which none differed can be served even before the
    two agree for good. ``differences`` records the spans of output indices (first, last) in
    which they differed, piece by piece; the second decoder is dropped once the last
    :data:`WINDOW_SIZE` bytes agree (all later output then agrees too).

    Keeps the first ``keep_first`` output bytes, the last ``keep_last``, and those in
    ``keep_range`` (output offsets from the entry)."""

    def __init__(
        self,
        skip: int = 0,
        *,
        keep_first: int = 0,
        keep_last: int = 0,
        keep_range: tuple[int, int] = (0, 0),
    ) -> None:
        self.skip = skip  # output bytes of the input's prefix, not counted
        self.zero = zlib.decompressobj(-zlib.MAX_WBITS, zdict=ZERO_WINDOW)
        self.ones: zlib._Decompress | None = zlib.decompressobj(-zlib.MAX_WBITS, zdict=ONES_WINDOW)
        self.produced = 0
        self.last_difference = -1  # output index of the last byte that differed
        self.differences: list[tuple[int, int]] = []
        self.keep_first = keep_first
        self.keep_last = keep_last
        self.keep_range = keep_range
        self.head: list[bytes] = []
        self.tail: list[bytes] = []
        self.tail_size = 0
        self.range: list[bytes] = []

    def copy(self) -> _Pair:
        twin = _Pair.__new__(_Pair)
        twin.__dict__.update(self.__dict__)
        twin.zero = self.zero.copy()
        twin.ones = self.ones.copy() if self.ones is not None else None
        twin.differences = list(self.differences)
        twin.head, twin.tail, twin.range = list(self.head), list(self.tail), list(self.range)
        return twin

    def feed(self, data: bytes, limit: int, until: int | None = None) -> None:
        """Decode ``data``, or as much of it as makes ``until`` output bytes (the rest of it is
        then dropped: a pair stopped that way is done); raises :class:`SeekFailed` on a decoding
        error or once more than ``limit`` bytes were produced."""
        try:
            while True:
                # Small pieces while the two disagree: differences are located within them,
                # and the second decoder stops soon after the two agree.
                step = _PAIRED_STEP if self.ones is not None else _OUT_STEP
                out = self.zero.decompress(data, step)
                other = self.ones.decompress(data, step) if self.ones is not None else out
                self._account(out, other, limit)
                data = self.zero.unconsumed_tail
                if self.zero.eof or (not data and len(out) < step):
                    return
                if until is not None and self.produced >= until:
                    return
        except zlib.error as exc:
            raise SeekFailed(f"not a block start ({exc})") from exc

    def _account(self, out: bytes, other: bytes, limit: int) -> None:
        if self.skip:
            cut = min(self.skip, len(out))
            self.skip -= cut
            out, other = out[cut:], other[cut:]
        start = self.produced
        if out is not other and out != other:  # pieces are small while the two decoders run
            spans = _differing_spans(out, other, start)
            self.differences += spans
            self.last_difference = spans[-1][1]
        self.produced += len(out)
        if self.ones is not None and self.produced - self.last_difference > WINDOW_SIZE:
            self.ones = None  # the windows now agree: all later output does
        if self.produced > limit:
            raise _OverBudget("the seek would decode more than reading from the start does")
        if not out:
            return
        if start < self.keep_first:
            self.head.append(out[: self.keep_first - start])
        if self.keep_last:
            self.tail.append(out)
            self.tail_size += len(out)
            while self.tail_size - len(self.tail[0]) >= self.keep_last:
                self.tail_size -= len(self.tail.pop(0))
        low, high = self.keep_range
        if low < self.produced and start < high:
            self.range.append(out[max(low - start, 0) : high - start])

    def ended(self, spare: int = 0) -> bool:
        """Whether both decoders reached the end of the stream with at most ``spare`` input
        bytes left over (and none unread)."""
        ends = [self.zero] if self.ones is None else [self.zero, self.ones]
        # After the end, zlib leaves what follows in unused_data, or in unconsumed_tail when
        # the call that reached it was given an output limit.
        return all(d.eof and len(d.unused_data) + len(d.unconsumed_tail) <= spare for d in ends)

    def first_bytes(self, start: int, stop: int) -> bytes:
        """Output ``[start, stop)`` of the first ``keep_first`` bytes (cut at what was
        produced)."""
        found, at = [], 0
        for piece in self.head:
            if at < stop and start < at + len(piece):
                found.append(piece[max(start - at, 0) : stop - at])
            at += len(piece)
        return b"".join(found)

    @property
    def first_size(self) -> int:
        """How many of the first ``keep_first`` output bytes are kept."""
        return min(self.produced, self.keep_first)

    def last_bytes(self) -> bytes:
        """The last ``keep_last`` output bytes."""
        extra = self.tail_size - self.keep_last
        if extra > 0:  # the first piece starts before them: one copy of the rest, not two
            return b"".join([memoryview(self.tail[0])[extra:], *self.tail[1:]])
        return b"".join(self.tail)

    def range_bytes(self) -> bytes:
        """The output in ``keep_range``."""
        return b"".join(self.range)


def _differing_spans(out: bytes, other: bytes, base: int) -> list[tuple[int, int]]:
    """Where ``out`` and ``other`` (of equal length, not equal) differ, as spans (first, last)
    of output indices from ``base``: one per run of :data:`_SPAN`-byte blocks that differ at
    all, from the first differing byte to the last (slices compare at memory speed; a loop
    over bytes would not)."""
    spans = []
    run: int | None = None  # where the current run of differing blocks starts
    for at in range(0, len(out) + _SPAN, _SPAN):
        if at < len(out) and out[at : at + _SPAN] != other[at : at + _SPAN]:
            if run is None:
                run = at
            continue
        if run is not None:
            first = run + _first_difference(out[run : run + _SPAN], other[run : run + _SPAN])
            last_block = at - _SPAN
            block, theirs = out[last_block:at], other[last_block:at]
            spans.append((base + first, base + last_block + _last_difference(block, theirs)))
            run = None
    return spans


def _first_difference(mine: bytes, theirs: bytes) -> int:
    """The index of the first byte where ``mine`` and ``theirs`` (not equal) differ."""
    low, high = 0, len(mine)  # mine[:low] equal, mine[:high] not
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if mine[:middle] == theirs[:middle] else (low, middle)
    return low


def _last_difference(mine: bytes, theirs: bytes) -> int:
    """The index of the last byte where ``mine`` and ``theirs`` (not equal) differ."""
    low, high = 0, len(mine)  # mine[low:] differs, mine[high:] does not
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if mine[middle:] == theirs[middle:] else (middle, high)
    return low


def _terminated(data: bytes, bits: int) -> bytes:
    """The first ``bits`` bits of ``data`` followed by an empty final fixed-Huffman block."""
    value = int.from_bytes(data, "little") & ((1 << bits) - 1)
    value |= _TERMINATOR << bits
    return value.to_bytes((bits + _TERMINATOR_BITS + 7) // 8, "little")


class DeflateSeeker:
    """Reads of a raw deflate stream's output at any offset, entering it in the middle.

    ``read(offset, length)`` reads the member's compressed bytes. :meth:`read` raises
    :class:`SeekFailed` when it cannot serve a range safely within its budgets; the caller then
    inflates from the start. Anchors found stay known for the next reads of the same member.
    """

    def __init__(self, read: Callable[[int, int], bytes], compressed_size: int, size: int) -> None:
        self._read = read
        self._compressed_size = compressed_size
        self._size = size
        self._anchors: list[Anchor] = []  # in stream order (and so in output order)
        self._pieces: list[tuple[int, bytes, Anchor]] = []  # served output, by its anchor
        self._probes = 0
        self._frontier = (0, 0)  # (compressed bit, output offset) the front stream reached
        self._margin = _MIN_MARGIN
        self._allowance = 0  # output bytes the current read may still decode
        self._tail_held = False  # the member's last bytes are among the pieces
        self._aims = 0  # probes the current read aimed below an anchor (each landed above)
        #: Output bytes decoded by probes and reads so far (what seeking cost).
        self.decoded = 0

    # -- what the caller asks ------------------------------------------------------------------

    def note_frontier(self, compressed_bytes: int, produced: int) -> None:
        """Where the stream read from the start stands: a point of the compressed-to-output
        mapping the seeker aims with, and below which it never seeks."""
        self._frontier = (compressed_bytes * 8, produced)

    def cost(self, offset: int) -> int:
        """About how many output bytes a seek to ``offset`` decodes: from the bytes wanted to
        the nearest known offset above them (the member's end, at first)."""
        above = [a.offset for a in self._anchors if a.offset > offset]
        return min(above, default=self._size) - offset + self._margin

    def read(self, offset: int, end: int, budget: int) -> bytes:
        """The member's bytes ``[offset, end)``, decoding at most about ``budget`` bytes.

        Raises :class:`SeekFailed` when they cannot be served safely within the budgets.
        """
        self._allowance = budget
        self._aims = 0
        while True:
            # A probe may have decoded the bytes wanted: they are held once its anchor is
            # confirmed.
            held = self._held(offset, end)
            if held is not None:
                return held
            anchor = self._serving_anchor(offset, end)
            if anchor is not None:
                data = self._serve(anchor, offset, end)
                if data is not None:
                    return data
                continue
            if self._probes >= MAX_PROBES:
                raise SeekFailed("too many probes")
            self._probe_below(offset, end)

    # -- anchors ---------------------------------------------------------------------------

    def _serving_anchor(self, offset: int, end: int) -> Anchor | None:
        """The highest confirmed anchor that may serve ``[offset, end)``."""
        for anchor in reversed(self._anchors):
            if anchor.confirmed and anchor.may_serve(offset, end):
                return anchor
        return None

    def _insert(self, anchor: Anchor) -> None:
        keys = [a.start.bit for a in self._anchors]
        self._anchors.insert(bisect.bisect_left(keys, anchor.start.bit), anchor)

    def _held(self, offset: int, end: int) -> bytes | None:
        for start, data, anchor in self._pieces:
            if anchor.confirmed and start <= offset and end <= start + len(data):
                return data[offset - start : end - start]
        return None

    def _keep(self, start: int, data: bytes, anchor: Anchor, *, tail: bool = False) -> None:
        """Keep decoded output for later reads: the member's last bytes (``tail``, kept for
        good), and what reads decoded (the most recent :data:`_KEPT_READS` bytes of it)."""
        if tail:
            self._pieces.insert(0, (start, data, anchor))
            self._tail_held = True
            return
        self._pieces.append((start, data, anchor))
        first = 1 if self._tail_held else 0
        while sum(len(piece[1]) for piece in self._pieces[first:]) > _KEPT_READS:
            del self._pieces[first]

    # -- decoding ----------------------------------------------------------------------------

    def _input(self, start: BlockStart) -> _Input:
        return _Input(self._read, self._compressed_size, start)

    def _feed(self, pair: _Pair, source: _Input, first: int, stop: int) -> None:
        """Feed input bytes ``[first, stop)`` to ``pair``, a piece at a time."""
        for at in range(first, stop, _FEED):
            pair.feed(source.bytes(at, min(at + _FEED, stop)), self._allowance)

    def _decode_to(
        self, pair: _Pair, source: _Input, upper: Anchor | None, *, through: bool = False
    ) -> _Pair:
        """Decode from ``source``'s block start to ``upper`` (None: the member's end) and check
        that the decoders arrive there exactly; returns the decoders that did. With
        ``through``, they go on past ``upper`` to the member's end (and must arrive there too,
        having produced exactly what ``upper``'s offset says is left).

        Raises :class:`SeekFailed` when they do not arrive.
        """
        if upper is None:
            self._decode_to_end(pair, source, 0)
            return pair
        header = self._read_bits(upper.start)
        ends = [source.position(bit) for bit in upper.start.header_bits(*header)]
        if not ends or min(ends) < 0:
            raise SeekFailed("the anchor lies before the block start")
        whole = min(ends) >> 3
        self._feed(pair, source, 0, whole)
        for end in ends:
            twin = pair.copy()
            tail = source.bytes(whole, (end >> 3) + 1)
            twin.feed(_terminated(tail, end - whole * 8), self._allowance)
            if not twin.ended():
                continue
            if not through:
                return twin
            self._decode_to_end(pair, source, whole)
            if pair.produced - twin.produced != self._size - upper.offset:
                raise SeekFailed("two decodes disagree about a block's offset")
            return pair
        raise SeekFailed("decoding from here does not arrive at the anchor")

    def _decode_to_end(self, pair: _Pair, source: _Input, first: int) -> None:
        """Feed the rest of the member from input byte ``first``; the last block must end
        within the member's last byte (what follows it there is padding)."""
        stop = source.length(self._compressed_size)
        self._feed(pair, source, first, stop)
        last_byte = source.position(self._compressed_size * 8 - 8) >> 3
        if not pair.ended(spare=stop - last_byte - 1):
            raise SeekFailed("decoding from here does not end where the member ends")

    def _read_bits(self, start: BlockStart) -> tuple[bytes, int]:
        """The compressed bytes around a stored block's header, and the bit they start at."""
        first = max(start.bit - 16, 0) >> 3
        return self._read(first, (start.bit >> 3) - first + 2), first * 8

    # -- serving ---------------------------------------------------------------------------

    def _spend(self, pair: _Pair) -> None:
        self.decoded += pair.produced
        self._allowance -= pair.produced

    def _read_stop(self, offset: int, end: int) -> int:
        """Where a read of ``[offset, end)`` stops decoding: a little past ``end``."""
        return min(self._size, max(end, offset + _READ_AHEAD))

    def _serve(self, anchor: Anchor, offset: int, end: int) -> bytes | None:
        """Decode from ``anchor`` through ``[offset, end)`` (and a little further); returns the
        bytes, or None when some depend on the window (the anchor then knows it)."""
        relative = (offset - anchor.offset, self._read_stop(offset, end) - anchor.offset)
        source = self._input(anchor.start)
        pair = _Pair(source.skip, keep_range=relative)
        if anchor.proven:
            pair.ones = None  # what depends on the window is known: the differences
        stop = source.length(self._compressed_size)
        at = 0
        try:
            while pair.produced < relative[1] and not pair.zero.eof and at < stop:
                pair.feed(source.bytes(at, min(at + _FEED, stop)), self._allowance, relative[1])
                at += _FEED
        finally:
            self._spend(pair)
        if pair.produced < relative[1]:
            raise SeekFailed("the stream ends before the member's declared size")
        if not anchor.proven:
            anchor.learn(pair)
        if not anchor.may_serve(offset, end):
            # The bytes wanted depend on the window: enter at least twice as far before them.
            self._margin = max(self._margin, 2 * (offset - anchor.offset))
            return None
        data = pair.range_bytes()
        data = data[: anchor.clean_until(end, offset + len(data)) - offset]
        self._keep(offset, data, anchor)
        return data[: end - offset]

    # -- probing -----------------------------------------------------------------------------

    def _probe_below(self, offset: int, end: int) -> None:
        """Find a block start below the anchors, aiming at a margin before ``offset``, decode
        from it to the anchor above and record it. Where the stretch searched holds no block
        start (a long block), the search goes on in the stretch before it. ``[offset, end)``
        is what the read wants: a probe that decodes it keeps it."""
        self._probes += 1
        upper, lowest_bit = self._aim(offset, end)
        limit = upper.start.bit - 16 if upper is not None else self._compressed_size * 8
        trials = [MAX_TRIALS]
        low, high = lowest_bit >> 3, limit >> 3
        scanned = 0
        while scanned < SEARCH_REACH and trials[0] > 0 and low < high:
            reach = min(high, low + SEARCH_REACH - scanned)
            if self._search(low, reach, limit, upper, trials=trials, wanted=(offset, end)):
                return
            scanned += high - low
            floor = self._frontier[0] >> 3
            low, high = max(floor, low - 2 * max(high - low, _SCAN_STEP)), low
        raise SeekFailed("no block start found")

    def _search(
        self,
        low: int,
        high: int,
        limit: int,
        upper: Anchor | None,
        *,
        trials: list[int],
        wanted: tuple[int, int],
    ) -> bool:
        """Scan compressed bytes ``[low, high)`` for block starts below ``limit`` (other than
        the anchors') and record the first one from which a probe arrives; returns whether one
        did. Regions grow from :data:`_FIRST_SCAN` to :data:`_SCAN_STEP`: a block start usually
        lies within a few kilobytes of where the search begins."""
        known = {anchor.start for anchor in self._anchors}
        at, step = low, _FIRST_SCAN
        while at < high:
            region_end = min(at + step + TRIAL_INPUT + 1, self._compressed_size)
            region = self._read(at, region_end - at)
            for start in block_starts(region, at * 8, trials):
                if start.bit >= limit:
                    return False
                if start in known:
                    continue
                try:
                    self._record(start, upper, wanted)
                except _OverBudget:
                    raise
                except SeekFailed:
                    continue  # not a block start after all: the next candidate
                return True
            if trials[0] <= 0:
                return False
            at += step
            step = min(2 * step, _SCAN_STEP)
        return False

    def _aim(self, offset: int, end: int) -> tuple[Anchor | None, int]:
        """The anchor to probe below (None: the member's end) and the compressed bit to start
        searching from.

        An anchor that may serve ``[offset, end)`` but is not confirmed yet gets a short probe
        just below it. Otherwise the probe aims at a margin before ``offset`` (more than the
        window-tainted stretches seen so far), at the higher of two compression ratios: of the
        stretch just above the anchor it starts below (the member's next bytes), and of all the
        stretch below it, down to where the stream from the start stands: a probe that lands
        above the bytes wanted costs one more probe, one that lands far below them decodes all
        the way up. Each time the read's last probe landed above them, the step grows by half.
        The first probe starts a little before the member's end.
        """
        floor_bit, floor_offset = self._frontier
        for anchor in reversed(self._anchors):
            if not anchor.confirmed and anchor.may_serve(offset, end):
                return anchor, max(anchor.start.bit - _CONFIRM_STEP * 8, floor_bit)
        target = max(offset - self._margin, 0)
        end_bit = self._compressed_size * 8
        if not self._anchors:
            return None, max(end_bit - _FIRST_STEP * 8, floor_bit)
        index = next((i for i, a in enumerate(self._anchors) if a.offset > target), None)
        if index is None:  # below the member's end, at the ratio of the stretch above it
            top = self._anchors[-1]
            ratio = (self._size - top.offset) / max(end_bit - top.start.bit, 1)
            step = (self._size - target) / max(ratio, 1e-9)
            return None, max(end_bit - max(int(step), _CONFIRM_STEP * 8), floor_bit)
        upper = self._anchors[index]
        bit, out = end_bit, self._size  # the stretch above: to the first anchor far enough up
        for above in self._anchors[index + 1 :]:
            if above.start.bit - upper.start.bit >= _RATIO_SPAN * 8:
                bit, out = above.start.bit, above.offset
                break
        local = (out - upper.offset) / max(bit - upper.start.bit, 1)
        below = (upper.offset - floor_offset) / max(upper.start.bit - floor_bit, 1)
        step = (upper.offset - target) / max(local, below, 1e-9) * 1.5 ** min(self._aims, 10)
        self._aims += 1
        return upper, max(upper.start.bit - max(int(step), _CONFIRM_STEP * 8), floor_bit)

    def _record(self, start: BlockStart, upper: Anchor | None, wanted: tuple[int, int]) -> None:
        """Decode from ``start`` to ``upper`` (exact arrival) and record it as an anchor.

        Until the member's last bytes are held, a probe that ends near the member's end goes on
        to it and keeps them (the readers come back for section headers and string tables
        there). A probe whose first :data:`_PROBE_KEEP` output bytes hold the ``wanted`` range
        keeps it, to serve once the anchor is confirmed (instead of decoding it again)."""
        tail_wanted = not self._tail_held and (
            upper is None or self._size - upper.offset <= _KEPT // 2
        )
        source = self._input(start)
        pair = _Pair(source.skip, keep_first=_PROBE_KEEP, keep_last=_KEPT if tail_wanted else 0)
        try:
            pair = self._decode_to(pair, source, upper, through=tail_wanted)
        finally:
            self._spend(pair)
        offset = (self._size if tail_wanted or upper is None else upper.offset) - pair.produced
        if offset < 0:
            raise SeekFailed("decodes to more than the member's declared size")
        anchor = Anchor(start, offset, offset, [], proven=False)
        anchor.learn(pair)
        self._insert(anchor)
        if upper is not None:
            upper.confirmed = True
        if anchor.proven:
            self._margin = max(self._margin, 2 * (anchor.clean - offset))
        if tail_wanted:
            tail = pair.last_bytes()
            tail_start = self._size - len(tail)
            kept_from = max(tail_start, anchor.clean)
            # Held for good if much of it is proven: else a later probe keeps it again.
            if self._size - kept_from >= min(len(tail), _KEPT // 2) // 2:
                self._keep(kept_from, tail[kept_from - tail_start :], anchor, tail=True)
        held = offset + pair.first_size
        if anchor.may_serve(*wanted) and wanted[1] <= held:
            stop = anchor.clean_until(wanted[1], min(self._read_stop(*wanted), held))
            self._keep(wanted[0], pair.first_bytes(wanted[0] - offset, stop - offset), anchor)
