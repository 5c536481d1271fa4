"""Where deflate blocks may start in the middle of a raw deflate stream (RFC 1951, section 3.2).

A deflate stream is a chain of blocks; nothing marks where one starts but its header, and the
header is not byte-aligned. :func:`block_starts` finds the places in a stretch of compressed
bytes where a block could start, cheaply enough to scan hundreds of kilobytes in milliseconds,
and confirms each with a short trial decode by zlib. What it returns are *candidates*: whether
one is a true block boundary is decided by :mod:`torch_abi_audit.sources.deflate_seek`, which
decodes from it to a point known to be one.

Two kinds of blocks can be entered (fixed-Huffman blocks have a 3-bit header and no structure
to look for, so they are not):

- *Dynamic-Huffman blocks* (BTYPE 2): every bit position is a lane of a bit-sliced computation
  over Python integers (bit ``p`` of ``x >> j`` is stream bit ``p + j``), which keeps the lanes
  whose header fields are valid: BTYPE, HLIT <= 29, HDIST <= 29, and a code-length code that
  is *complete* — the sum of ``2**-len`` over its nonzero lengths is exactly 1 (RFC 1951 3.2.7;
  zlib rejects an incomplete or over-subscribed one, "invalid code lengths set"). About one
  position in a thousand survives; zlib then decodes a little from each.
- *Stored blocks* (BTYPE 0): byte-aligned, with LEN and NLEN = ~LEN (RFC 1951 3.2.4), after a
  3-bit header that lies at most 10 bits before LEN. Found with the same bit-plane arithmetic.

Work is linear in the bytes scanned, and the number of trial decodes is bounded by the caller.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import NamedTuple

from torch_abi_audit.sources.deflate_codec import zlib

#: Bits of a dynamic header the filter looks at: 17 of fields, then up to 19 3-bit lengths.
_DYNAMIC_HEADER_BITS = 17 + 19 * 3
#: A stored block's header (3 bits) starts at most this many bits before its LEN field.
STORED_HEADER_REACH = 10
#: The 32 KiB a decoder may refer back to (RFC 1951 2.2): the window.
WINDOW_SIZE = 32 << 10
ZERO_WINDOW = bytes(WINDOW_SIZE)
#: Compressed bytes a trial decode reads from a candidate.
TRIAL_INPUT = 2 << 10
#: Output a trial decode may produce (a trial only has to get through a header and some data).
TRIAL_OUTPUT = 64 << 10


class BlockStart(NamedTuple):
    """A candidate block start. For a dynamic block, ``bit`` is its first header bit; for a
    stored block, ``bit`` is the (byte-aligned) first bit of its LEN field, and the 3-bit header
    lies somewhere in the :data:`STORED_HEADER_REACH` bits before it."""

    bit: int
    stored: bool

    def header_bits(self, stream: bytes, stream_bit: int) -> tuple[int, ...]:
        """The exact bits where this block's header may begin: one for a dynamic block; for a
        stored block every position in reach whose three bits read BTYPE 0 (``stream`` holds
        the compressed bytes from ``stream_bit``, a multiple of 8)."""
        if not self.stored:
            return (self.bit,)
        found = []
        for bit in range(self.bit - STORED_HEADER_REACH, self.bit - 2):
            rel = bit - stream_bit
            if rel < 0:
                continue
            value = int.from_bytes(stream[rel >> 3 : (rel >> 3) + 2], "little") >> (rel & 7)
            if value & 0b110 == 0:  # BTYPE (bits 1-2) = 00; BFINAL (bit 0) either
                found.append(bit)
        return tuple(found)


def _planes(x: int, count: int) -> list[int]:
    return [x >> j for j in range(count)]


def _hclen_at_least(hclen: list[int], every: int) -> list[int]:
    """``[HCLEN >= k]`` as a lane mask for k = 0..15 (HCLEN is four bit planes, LSB first)."""
    masks = [every]
    for k in range(1, 16):
        at_least = every
        for j in range(4):  # compare from the least significant bit up
            at_least = (hclen[j] & at_least) if (k >> j) & 1 else (hclen[j] | at_least)
        masks.append(at_least)
    return masks


def dynamic_lanes(x: int, lanes: int) -> int:
    """The lanes ``p < lanes`` where a dynamic-Huffman block header with valid fields and a
    complete code-length code starts, as a bit mask (``x`` holds the stream's bits, LSB first).

    The code-length code's Kraft sum is added up lane by lane in an 8-bit bit-sliced
    accumulator: a length ``n`` in 1..7 adds ``2**(7-n)``; a complete code sums to exactly 128.
    """
    every = (1 << lanes) - 1
    s = _planes(x, _DYNAMIC_HEADER_BITS)
    valid = s[2] & ~s[1] & every  # BTYPE = 2: bits 1, 2 = 0, 1
    valid &= ~(s[4] & s[5] & s[6] & s[7])  # HLIT (bits 3-7) <= 29
    valid &= ~(s[9] & s[10] & s[11] & s[12])  # HDIST (bits 8-12) <= 29
    active = _hclen_at_least(s[13:17], valid)  # HCLEN + 4 lengths are present
    total = [0] * 8
    overflow = 0
    for i in range(19):
        present = valid if i < 4 else active[i - 3]
        b0, b1, b2 = s[17 + 3 * i], s[18 + 3 * i], s[19 + 3 * i]
        high, low = b2 & present, present & ~b2
        odd_one, even_two, three = b0 & ~b1, b1 & ~b0, b0 & b1
        zero_two = ~(b0 | b1)
        # One-hot weight planes, weight 2**k for k = 0..6: lengths 7, 6, 5, 4, 3, 2, 1.
        weight = (
            three & high,
            even_two & high,
            odd_one & high,
            zero_two & high,
            three & low,
            even_two & low,
            odd_one & low,
        )
        carry = 0
        for k in range(7):
            added = weight[k] | carry  # one-hot weights: never both
            before = total[k]
            total[k] = before ^ added
            carry = before & added
        before = total[7]
        total[7] = before ^ carry
        overflow |= before & carry
    below = total[0] | total[1] | total[2] | total[3] | total[4] | total[5] | total[6]
    return valid & total[7] & ~below & ~overflow


def stored_lanes(x: int, length: int) -> int:
    """Byte positions ``q`` (as bit ``8 * q`` of the mask) where LEN and NLEN = ~LEN could lie,
    with room for a stored header before them."""
    if length < 5:
        return 0
    differs = x ^ (x >> 16)  # bit i: stream bit i differs from bit i + 16
    run = differs & (differs >> 1)
    run &= run >> 2
    run &= run >> 4
    run &= run >> 8  # bit i: bits i..i+15 all differ from the 16 after them
    byte_starts = int.from_bytes(b"\x01" * (length - 4), "little") & ~0xFF  # q >= 1, q + 4 <= len
    return run & byte_starts


def _lanes(mask: int) -> Iterator[int]:
    while mask:
        lowest = mask & -mask
        yield lowest.bit_length() - 1
        mask ^= lowest


def _huffman(code: int, length: int) -> tuple[int, int]:
    """A Huffman code as stream bits: deflate packs codes from their most significant bit."""
    return int(f"{code:0{length}b}"[::-1], 2), length


# Fixed-Huffman pieces (RFC 1951 3.2.6): a match of length 3 (code 257) at distance 1
# (distance code 0), 12 bits; one at distance 5 (distance code 4, one extra bit 0), 13 bits.
_MATCH_12 = (_huffman(1, 7), _huffman(0, 5))
_MATCH_13 = (_huffman(1, 7), _huffman(4, 5), (0, 1))


@cache
def alignment_block(shift: int) -> tuple[int, int, int]:
    """A non-final fixed-Huffman block whose length in bits is ``shift`` modulo 8, as
    ``(bits, length, output bytes)``.

    Put before the stream's bits from a block start at bit ``shift`` of a byte, it puts that
    byte back on a byte boundary of the decoder's input — which stored blocks, padded to the
    stream's byte boundaries, need. It holds only back-references of length 3 into the window,
    so its output is the window's (0x00 with a window of zeros, 0xFF with one of 0xFF) and
    changes nothing the window comparison proves.
    """
    for twelve in range(4):
        for thirteen in range(8):
            if (10 + 12 * twelve + 13 * thirteen) % 8 == shift % 8:
                pieces = [(0b010, 3)]  # BFINAL 0, BTYPE 01
                pieces += [piece for _ in range(twelve) for piece in _MATCH_12]
                pieces += [piece for _ in range(thirteen) for piece in _MATCH_13]
                pieces.append(_huffman(0, 7))  # end of block
                value = length = 0
                for bits, count in pieces:
                    value |= bits << length
                    length += count
                return value, length, 3 * (twelve + thirteen)
    raise AssertionError("every residue is reachable")  # pragma: no cover - 10, 12, 13 cover


def entry_input(region: bytes, bit: int, stored: bool) -> tuple[bytes, int]:
    """Decoder input that starts a decode at stream bit ``bit`` of ``region`` (a block start),
    keeping the stream's byte boundaries; and the output bytes its prefix makes (to skip).

    A stored block's LEN field (``bit`` on a byte boundary) gets a header byte of its own
    (BFINAL 0, BTYPE 00, padding); a dynamic block's header gets :func:`alignment_block`.
    """
    shift = bit & 7
    head, merged, _, produced = entry_prefix(shift, stored)
    if stored or not shift:
        return head + region[bit >> 3 :], produced
    merged |= region[bit >> 3] & (0xFF << shift) & 0xFF
    return head + bytes([merged]) + region[(bit >> 3) + 1 :], produced


def entry_prefix(shift: int, stored: bool) -> tuple[bytes, int, int, int]:
    """The prefix put before the stream's bits from a block start at bit ``shift`` of a byte
    (see :func:`entry_input`), as ``(whole bytes, bits, length, output bytes)``: its whole
    bytes, its last bits (which share a byte with the block's first bits, ``shift`` of them,
    from the bottom), its length in bits and the output bytes it makes (to skip).

    A stored block's LEN field gets a header byte of its own (BFINAL 0, BTYPE 00, padding); a
    dynamic block's header at ``shift`` 1..7 gets :func:`alignment_block`; none at 0.
    """
    if stored:
        value, length, produced = 0, 8, 0
    elif shift:
        value, length, produced = alignment_block(shift)
    else:
        value, length, produced = 0, 0, 0
    whole = length >> 3
    head = (value & ((1 << (whole * 8)) - 1)).to_bytes(whole, "little")
    return head, value >> (whole * 8), length, produced


def trial_decode(data: bytes) -> bool:
    """Whether zlib decodes ``data`` (from :func:`entry_input`) without an error, against a
    window of zeros (so that no back-reference can be "too far back")."""
    decoder = zlib.decompressobj(-zlib.MAX_WBITS, zdict=ZERO_WINDOW)
    try:
        decoder.decompress(data, TRIAL_OUTPUT)
    except zlib.error:
        return False
    return True


def block_starts(region: bytes, region_bit: int, trials: list[int]) -> Iterator[BlockStart]:
    """Candidate block starts in ``region`` (the compressed bytes from stream bit
    ``region_bit``, a multiple of 8), in stream order, each confirmed by a trial decode.

    ``trials`` is a one-element budget of trial decodes, spent as they happen; the search stops
    when it is used up. Only starts whose header and trial input lie within ``region`` are
    reported: a caller scanning a long stretch passes overlapping regions.
    """
    x = int.from_bytes(region, "little")
    usable = len(region) - TRIAL_INPUT - 1
    if usable <= 0:
        return
    dynamic = _lanes(dynamic_lanes(x, usable * 8))
    stored = _lanes(stored_lanes(x, min(len(region), usable + 4)))
    del x
    next_dynamic, next_stored = next(dynamic, None), next(stored, None)
    while (next_dynamic is not None or next_stored is not None) and trials[0] > 0:
        if next_stored is None or (next_dynamic is not None and next_dynamic < next_stored - 3):
            assert next_dynamic is not None
            bit, next_dynamic = next_dynamic, next(dynamic, None)
            candidate = BlockStart(region_bit + bit, stored=False)
            start = bit >> 3  # the trial's input: from the candidate's byte only
            data = entry_input(region[start : start + TRIAL_INPUT], bit & 7, stored=False)[0]
        else:
            bit, next_stored = next_stored, next(stored, None)
            candidate = BlockStart(region_bit + bit, stored=True)
            if not candidate.header_bits(region, region_bit):
                continue
            start = bit >> 3
            length = int.from_bytes(region[start : start + 2], "little")
            data = entry_input(region[start : start + 4 + length + TRIAL_INPUT], 0, True)[0]
        trials[0] -= 1
        if trial_decode(data):
            yield candidate
