"""Container-format detection from magic bytes, and the dispatcher built on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.build import Fixtures
from torch_abi_audit.model import BinaryFormat
from torch_abi_audit.readers import detect_format, read_head, read_library
from torch_abi_audit.readers.detect import MAGIC_SIZE


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x7fELF\x02\x01\x01\x00", BinaryFormat.ELF),
        (b"\x7fELF", BinaryFormat.ELF),  # shorter than MAGIC_SIZE: judged on what is there
        (b"\xfe\xed\xfa\xce\x00\x00\x00\x12", BinaryFormat.MACHO),  # MH_MAGIC (big-endian)
        (b"\xce\xfa\xed\xfe\x07\x00\x00\x00", BinaryFormat.MACHO),  # MH_CIGAM (little-endian)
        (b"\xfe\xed\xfa\xcf\x01\x00\x00\x0c", BinaryFormat.MACHO),  # MH_MAGIC_64
        (b"\xcf\xfa\xed\xfe\x0c\x00\x00\x01", BinaryFormat.MACHO),  # MH_CIGAM_64 (arm64)
        (b"\xca\xfe\xba\xbe\x00\x00\x00\x02", BinaryFormat.MACHO),  # FAT_MAGIC, 2 slices
        (b"\xca\xfe\xba\xbf\x00\x00\x00\x01", BinaryFormat.MACHO),  # FAT_MAGIC_64, 1 slice
        (b"MZ\x90\x00\x03\x00\x00\x00", BinaryFormat.PE),
        (b"\xca\xfe\xba\xbe\x00\x00\x00\x34", None),  # Java class file, major version 52
        (b"\xca\xfe\xba\xbe\x00\x03\x00\x2d", None),  # Java 1.1 class file (45.3)
        (b"\xca\xfe\xba\xbe\x00\x00\x00\x00", None),  # fat header with no slices
        (b"\xca\xfe\xba\xbe", None),  # too short to tell a fat header from a class file
        (b"\x7fEL", None),
        (b"ELF\x7f\x02\x01\x01\x00", None),
        (b"#!/bin/sh", None),
        (b"", None),
    ],
)
def test_detect_format(head: bytes, expected: BinaryFormat | None) -> None:
    assert detect_format(head) is expected


def test_read_head(built: Fixtures, tmp_path: Path) -> None:
    head = read_head(built.versioned)
    assert len(head) == MAGIC_SIZE
    assert head[:4] == b"\x7fELF"
    short = tmp_path / "short"
    short.write_bytes(b"MZ")
    assert read_head(short) == b"MZ"
    with pytest.raises(OSError):
        read_head(tmp_path / "missing.so")


def test_read_library_dispatches_elf(built: Fixtures) -> None:
    lib = read_library(built.tiny32)
    assert lib.format is BinaryFormat.ELF
    assert lib.bits == 32


def test_read_library_missing_file(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        read_library(tmp_path / "missing.so")
