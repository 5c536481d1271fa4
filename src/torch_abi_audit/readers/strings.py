"""A bounded scan of a library's read-only data for names: the C string literals a binary passes
to ``dlsym``/``GetProcAddress`` to look functions up at run time.

:func:`find_strings` reads the byte ranges a reader found (``Library.rodata``) in ascending file
order, in chunks, and returns what a regular expression matches there. A chunk is scanned
together with the end of the one before it, so a name that straddles a chunk boundary is found
as if the range had been scanned in one piece; memory stays bounded by a chunk whatever the
size of the ranges.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from torch_abi_audit.model import merge_ranges
from torch_abi_audit.readers.source import ByteSource, check_range

__all__ = ["CHUNK_SIZE", "MAX_BYTES", "MAX_NAME_LENGTH", "find_strings"]

#: Bytes read from the source per step.
CHUNK_SIZE = 4 << 20
#: Default cap on the bytes read by one scan.
MAX_BYTES = 64 << 20
#: Default length, in bytes, of the longest match a scan is sure to find across a chunk boundary.
MAX_NAME_LENGTH = 256
#: Bytes kept before the carried-over part of a chunk, so that a look-behind assertion at its
#: start (``(?<![A-Za-z0-9_])``) sees the real bytes before the match, not the start of a buffer.
_LOOKBEHIND = 16


def find_strings(
    source: ByteSource,
    ranges: Sequence[tuple[int, int]],
    pattern: re.Pattern[bytes],
    *,
    max_bytes: int = MAX_BYTES,
    max_name: int = MAX_NAME_LENGTH,
    chunk_size: int = CHUNK_SIZE,
    needle: bytes | None = None,
    needle_lead: int = 0,
) -> frozenset[str]:
    """The strings that ``pattern`` matches in the ``(offset, size)`` ``ranges`` of ``source``.

    Each match gives its group 1 (group 0 when the pattern has no group) decoded as ASCII;
    matches that are not ASCII, or whose group did not take part, are left out. The ranges are
    sorted and merged (a match may run from one range into an adjacent one), then read in
    ascending order, at most ``chunk_size`` bytes per read and never more than ``max_bytes`` in
    all: the range that reaches the cap is scanned only up to it and the later ones not at all,
    and what was found so far is returned.

    Each chunk is scanned together with the last ``max_name`` bytes before it, so a match of
    up to ``max_name`` bytes (terminator included) is found even when a chunk boundary cuts it;
    a longer one may be missed there. Give ``pattern`` a look-behind (as in
    ``rb"(?<![A-Za-z0-9_])(torch_[A-Za-z0-9_]+)\\x00"``) so that a match cannot start inside a
    longer name: where a scan resumes, the look-behind sees the bytes before it.

    ``needle``, when given, is a byte string every match contains, starting at most
    ``needle_lead`` bytes after the match does: the regular expression is then tried only at
    the few positions before each occurrence of the needle (a substring search), with the same
    result as a scan of every position — for read-only data of megabytes with few candidates,
    a fraction of the time.

    Raises :class:`~torch_abi_audit.readers.errors.BinaryReadError`, before reading anything,
    when a range lies outside the source (as ``source.read`` does), and whatever else
    ``source.read`` raises. Raises :class:`ValueError` for a ``chunk_size`` below 1 or a
    negative ``max_bytes`` or ``max_name``.
    """
    if chunk_size < 1 or max_bytes < 0 or max_name < 0:
        raise ValueError(
            f"chunk_size must be positive and max_bytes, max_name not negative "
            f"(got {chunk_size}, {max_bytes}, {max_name})"
        )
    for offset, size in ranges:
        check_range(offset, size, source.size, "read-only data range")
    group = 1 if pattern.groups else 0
    found: set[str] = set()
    budget = max_bytes
    keep = max_name + _LOOKBEHIND
    for offset, size in merge_ranges(ranges):
        if budget <= 0:
            break
        end = offset + min(size, budget)
        budget -= end - offset
        carried = b""
        position = offset
        while position < end:
            length = min(chunk_size, end - position)
            data = carried + source.read(position, length, "read-only data")
            position += length
            # Matches ending in the carried bytes were found with the previous chunk; one that
            # ends in this chunk and is at most max_name long starts at or after `start`.
            start = max(0, len(carried) - max_name)
            if needle is None:
                matches: Iterable[re.Match[bytes]] = pattern.finditer(data, start)
            else:
                matches = _around(pattern, data, start, needle, needle_lead)
            for match in matches:
                raw = match.group(group)
                if raw is None:
                    continue
                try:
                    found.add(raw.decode("ascii"))
                except UnicodeDecodeError:
                    continue
            carried = data[-keep:]
    return frozenset(found)


def _around(
    pattern: re.Pattern[bytes], data: bytes, start: int, needle: bytes, lead: int
) -> Iterator[re.Match[bytes]]:
    """``pattern.finditer(data, start)`` for a pattern whose every match contains ``needle``
    at most ``lead`` bytes after its start: leftmost, non-overlapping matches, tried only at
    the positions a match can start from."""
    position = start
    while (found := data.find(needle, position)) >= 0:
        for candidate in range(max(position, found - lead), found + 1):
            match = pattern.match(data, candidate)
            if match is not None:
                yield match
                position = max(match.end(), candidate + 1)
                break
        else:
            position = found + 1
