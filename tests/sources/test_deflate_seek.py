"""Entering deflate streams in the middle: every byte served is the byte full inflation gives.

Property tests over real deflate streams (zlib at several levels and strategies, data mixing
incompressible, text-like and repetitive stretches, so that stored, fixed and dynamic blocks
all occur), hostile streams (no enterable block, garbage, planted false block headers), and the
wheel member path that uses it. A seek may give up (``SeekFailed``: the caller inflates from
the start); it may never serve a wrong byte.
"""

from __future__ import annotations

import random
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from torch_abi_audit.readers.errors import BinaryReadError
from torch_abi_audit.sources import deflate_search, deflate_seek, wheel_bytes
from torch_abi_audit.sources.deflate_search import (
    ZERO_WINDOW,
    alignment_block,
    block_starts,
    entry_input,
)
from torch_abi_audit.sources.deflate_seek import MAX_PROBES, DeflateSeeker, SeekFailed
from torch_abi_audit.sources.wheel_bytes import StreamedMember
from torch_abi_audit.sources.wheels import WheelArchive


@pytest.fixture(autouse=True, params=["zlib-ng", "zlib"])
def decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with each decoder the readers may use (sources/deflate_codec)."""
    if request.param == "zlib":
        module: object = zlib
    else:
        module = pytest.importorskip("zlib_ng.zlib_ng")
    for reader in (deflate_seek, deflate_search, wheel_bytes):
        monkeypatch.setattr(reader, "zlib", module)
    name: str = request.param
    return name


STRATEGIES = {
    "default": zlib.Z_DEFAULT_STRATEGY,
    "filtered": zlib.Z_FILTERED,
    "huffman-only": zlib.Z_HUFFMAN_ONLY,
    "rle": zlib.Z_RLE,
    "fixed": zlib.Z_FIXED,
}


def mixed_data(seed: int, size: int) -> bytes:
    """Stretches of random bytes (stored blocks), symbol-like text, and zeros, like a library."""
    rng = random.Random(seed)
    letters = b"abcdefghijklmnop_"
    words = [bytes(rng.choices(letters, k=rng.randint(4, 30))) for _ in range(300)]
    parts: list[bytes] = []
    total = 0
    while total < size:
        kind = rng.random()
        length = rng.randint(20_000, 400_000)
        if kind < 0.35:
            part = rng.randbytes(length)
        elif kind < 0.85:
            part = b"\0".join(rng.choice(words) for _ in range(length // 16))
        else:
            part = bytes(length)
        parts.append(part)
        total += len(part)
    return b"".join(parts)[:size]


def deflate(data: bytes, level: int = 6, strategy: int = zlib.Z_DEFAULT_STRATEGY) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 8, strategy)
    return compressor.compress(data) + compressor.flush()


def seeker_over(stream: bytes, size: int) -> DeflateSeeker:
    def read(offset: int, length: int) -> bytes:
        return stream[offset : offset + max(0, length)]

    return DeflateSeeker(read, len(stream), size)


def served_or_refused(seeker: DeflateSeeker, truth: bytes, offset: int, length: int) -> bool:
    """Serve ``[offset, offset + length)``: True if served (and then exactly right)."""
    try:
        data = seeker.read(offset, offset + length, budget=len(truth))
    except SeekFailed:
        return False
    assert data == truth[offset : offset + length], f"wrong bytes at {offset}"
    return True


def test_alignment_blocks_cover_every_residue_and_decode_to_the_window() -> None:
    for shift in range(8):
        value, length, produced = alignment_block(shift)
        assert length % 8 == shift
        final = value | (0b011 << length)  # an empty final block after it
        data = final.to_bytes((length + 10 + 7) // 8, "little")
        for window in (ZERO_WINDOW, b"\xff" * len(ZERO_WINDOW)):
            decoder = zlib.decompressobj(-zlib.MAX_WBITS, zdict=window)
            assert decoder.decompress(data) == window[:1] * produced
            assert decoder.eof


@pytest.mark.parametrize("seed", range(3))
def test_every_true_block_start_is_a_candidate(seed: int) -> None:
    """The header filters never drop a real dynamic or stored block (checked against zlib's
    own block boundaries, found by decoding the stream block by block with copies)."""
    data = mixed_data(seed, 600_000)
    stream = deflate(data, 6)
    found = {start.bit for start in block_starts(stream, 0, [10**6])}
    # A decode from each reported candidate reproduces the stream's tail exactly when the
    # candidate is a true block start: check that the starts zlib's output implies are there.
    true_starts = [bit for bit in found if _decodes_to_truth(stream, data, bit)]
    assert true_starts, "no block start found in 600 kB of zlib output"


def _decodes_to_truth(stream: bytes, data: bytes, bit: int) -> bool:
    for stored in (False, True):
        prefix_input, skip = entry_input(stream, bit, stored)
        decoder = zlib.decompressobj(-zlib.MAX_WBITS, zdict=ZERO_WINDOW)
        try:
            out = decoder.decompress(prefix_input)[skip:]
        except zlib.error:
            continue
        if decoder.eof and out and data.endswith(out[-1000:]):
            return True
    return False


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize("level", [1, 6, 9])
def test_served_ranges_equal_full_inflation(level: int, strategy: str) -> None:
    data = mixed_data(level * 7 + len(strategy), 3_000_000)
    stream = deflate(data, level, STRATEGIES[strategy])
    seeker = seeker_over(stream, len(data))
    rng = random.Random(level)
    served = 0
    for _ in range(6):
        offset = rng.randrange(len(data) // 2, len(data) - 4096)
        served += served_or_refused(seeker, data, offset, rng.randint(1, 4096))
    served += served_or_refused(seeker, data, len(data) - 2048, 2048)
    if strategy in ("default", "filtered"):
        assert served, "no read was served by seeking"


def test_stored_only_streams_are_entered_at_stored_blocks() -> None:
    data = mixed_data(11, 2_000_000)
    stream = deflate(data, 0)
    seeker = seeker_over(stream, len(data))
    for offset in (1_900_000, 1_500_000, 1_234_567):
        assert served_or_refused(seeker, data, offset, 5000)


def test_fixed_huffman_streams_give_up_in_bounded_work() -> None:
    """All blocks fixed-Huffman: nothing to enter; the seek refuses, cheaply."""
    data = bytes(random.Random(5).choice(b"abc") for _ in range(1_000_000))
    stream = deflate(data, 6, zlib.Z_FIXED)
    seeker = seeker_over(stream, len(data))
    started = time.process_time()
    for offset in (900_000, 500_000):
        assert not served_or_refused(seeker, data, offset, 100)
    assert time.process_time() - started < 10
    assert seeker.decoded <= 2 * len(data)


def test_garbage_is_refused_within_the_budgets() -> None:
    garbage = random.Random(7).randbytes(3_000_000)
    seeker = seeker_over(garbage, 50_000_000)
    with pytest.raises(SeekFailed):
        for offset in (49_000_000, 30_000_000, 10_000_000, 1_000_000):
            seeker.read(offset, offset + 10, budget=20_000_000)
    assert seeker.decoded <= 2 * 20_000_000
    assert seeker._probes <= MAX_PROBES


def test_planted_false_headers_never_give_wrong_bytes() -> None:
    """Data full of byte patterns that look like stored-block LEN/NLEN pairs and complete
    dynamic headers, stored verbatim in the stream, among real compressed stretches."""
    rng = random.Random(3)
    fake_stored = b"".join(
        length.to_bytes(2, "little") + (length ^ 0xFFFF).to_bytes(2, "little")
        for length in (rng.randrange(1, 60_000) for _ in range(50_000))
    )
    real = deflate(mixed_data(4, 400_000), 6)  # dynamic headers galore, as data
    data = mixed_data(8, 600_000) + fake_stored + real * 3 + mixed_data(9, 600_000)
    for level in (0, 1, 6):
        stream = deflate(data, level)
        seeker = seeker_over(stream, len(data))
        for offset in (len(data) - 300_000, len(data) - 900_000, 700_000):
            served_or_refused(seeker, data, offset, 3000)


def test_a_read_in_a_window_tainted_stretch_is_not_served_from_it() -> None:
    """Long repeated strings make the output right after a block start depend on the window:
    those bytes are never served from there (entered earlier instead, or refused)."""
    rng = random.Random(2)
    unit = rng.randbytes(20_000)
    data = b"".join(unit[: rng.randint(15_000, 20_000)] for _ in range(200))
    stream = deflate(data, 9)
    seeker = seeker_over(stream, len(data))
    for offset in range(len(data) - 100_000, len(data) - 10, 9_000):
        served_or_refused(seeker, data, offset, 10)
    starts = [anchor.start for anchor in seeker._anchors]
    assert len(starts) == len(set(starts))  # no block start is probed twice


@pytest.mark.parametrize("seed", range(4))
def test_window_dependent_bytes_are_located_exactly(seed: int) -> None:
    """The record of bytes that depend on the window: every byte where the two decodes
    differ lies in a span, and every span starts and ends on such a byte."""
    rng = random.Random(seed)
    for _ in range(200):
        out = rng.randbytes(rng.randint(1, 70_000))
        other = bytearray(out)
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(out))
            other[at] ^= rng.randint(1, 255)
        if bytes(other) == out:
            continue
        spans = deflate_seek._differing_spans(out, bytes(other), 1000)
        differing = [i + 1000 for i in range(len(out)) if out[i] != other[i]]
        assert all(any(low <= i <= high for low, high in spans) for i in differing)
        assert all(low in differing and high in differing for low, high in spans)


def test_bytes_a_probe_passes_are_not_decoded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A probe keeps the bytes wanted when it decodes them: serving them costs no second
    decode from its block start."""
    data = mixed_data(21, 6_000_000)
    stream = deflate(data, 6)

    def cost() -> int:
        seeker = seeker_over(stream, len(data))
        assert served_or_refused(seeker, data, 4_000_000, 1000)
        return seeker.decoded

    kept = cost()
    monkeypatch.setattr(deflate_seek, "_PROBE_KEEP", 0)
    assert kept < cost()


# -- wheel members --------------------------------------------------------------------------


@pytest.fixture
def big_member(tmp_path: Path) -> tuple[Path, bytes]:
    data = mixed_data(21, 6_000_000)
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("demo/libbig.so", data)
    return path, data


def _open(path: Path, *, seek: bool) -> StreamedMember:
    member = WheelArchive(path).open_member("demo/libbig.so", seek=seek)
    assert isinstance(member, StreamedMember)
    return member


@pytest.fixture
def small_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wheel_bytes, "SEEK_AHEAD", 256 << 10)


@pytest.mark.usefixtures("small_reach")
def test_far_reads_of_a_member_are_served_by_seeking(big_member: tuple[Path, bytes]) -> None:
    path, data = big_member
    member = _open(path, seek=True)
    reads: list[tuple[int, int]] = [(0, 64), (5_900_000, 5000), (len(data) - 1000, 1000)]
    reads += [(5_990_000, 300), (64, 1000), (5_950_000, 40_000)]
    for offset, length in reads:
        assert member.read(offset, length, "x") == data[offset : offset + length]
    assert member.seek_decoded > 0
    assert member._position < len(data) // 2  # the stream from the start stayed near it
    assert member.finish(verify=False) is False  # cut short: not verified
    assert member.finish(verify=True) is True  # the stream from the start checks size and CRC
    member.close()


@pytest.mark.usefixtures("small_reach")
def test_verify_mode_never_seeks(big_member: tuple[Path, bytes]) -> None:
    path, data = big_member
    member = _open(path, seek=False)
    assert member.read(5_900_000, 100, "x") == data[5_900_000:5_900_100]
    assert member.seek_decoded == 0
    member.close()


@pytest.mark.parametrize("corrupt", ["tail", "middle"])
@pytest.mark.usefixtures("small_reach")
def test_a_corrupt_stream_is_never_served_wrong(
    big_member: tuple[Path, bytes], corrupt: str
) -> None:
    """A flipped byte in the compressed data: reads are either right, or an error, or (for
    damage past what was read) unnoticed — never bytes that differ from a full decode."""
    path, _data = big_member
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("demo/libbig.so")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    where = start + (info.compress_size - 2000 if corrupt == "tail" else info.compress_size // 2)
    raw[where] ^= 0x5A
    path.write_bytes(bytes(raw))
    member = _open(path, seek=True)
    for offset in (5_990_000, 5_000_000, 3_000_000):
        try:
            got = member.read(offset, 100, "x")
        except BinaryReadError:
            continue
        reference = _reference_or_none(bytes(raw), start, info.compress_size, offset)
        assert reference is None or got == reference
    member.close()


def _reference_or_none(raw: bytes, start: int, size: int, offset: int) -> bytes | None:
    decoder = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = decoder.decompress(raw[start : start + size])
    except zlib.error:
        return None  # the stream from the start fails: any answer but an error is moot
    return out[offset : offset + 100]


@pytest.mark.usefixtures("small_reach")
def test_seeking_costs_a_fraction_of_inflating(big_member: tuple[Path, bytes]) -> None:
    path, _data = big_member
    assert _head_and_tail_cost(path, seek=True) < _head_and_tail_cost(path, seek=False) // 2


def _head_and_tail_cost(path: Path, *, seek: bool) -> int:
    """Bytes decoded to read a member's first and last 4 KiB."""
    member = _open(path, seek=seek)
    member.read(0, 4096, "head")
    member.read(member.size - 4096, 4096, "tail")
    cost = member._position + member.seek_decoded
    member.close()
    return cost
