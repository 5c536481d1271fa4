"""Recognise a binary's container format from its first bytes."""

from __future__ import annotations

from torch_abi_audit.model import BinaryFormat

#: How many leading bytes :func:`detect_format` needs.
MAGIC_SIZE = 8

_ELF_MAGIC = b"\x7fELF"
# Mach-O thin headers in both byte orders (loader.h: MH_MAGIC, MH_CIGAM, MH_MAGIC_64, MH_CIGAM_64).
_MACHO_THIN = {b"\xfe\xed\xfa\xce", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe"}
# Universal ("fat") headers are big-endian (fat.h: FAT_MAGIC, FAT_MAGIC_64).
_MACHO_FAT = {b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf"}
# Java class files share 0xCAFEBABE; in a fat header the next word is the slice count, which is
# small, whereas a class file has its version there (major >= 45).
_MAX_FAT_ARCHS = 32


def detect_format(head: bytes) -> BinaryFormat | None:
    """Return the container format that ``head`` (the file's first bytes) starts, or ``None``.

    ``head`` should hold at least :data:`MAGIC_SIZE` bytes; shorter input is judged on what is
    there. A PE file is recognised by its DOS ``MZ`` stub; the reader checks the ``PE`` signature.
    """
    magic = head[:4]
    if magic == _ELF_MAGIC:
        return BinaryFormat.ELF
    if magic in _MACHO_THIN:
        return BinaryFormat.MACHO
    if magic in _MACHO_FAT and len(head) >= 8:
        nfat = int.from_bytes(head[4:8], "big")
        return BinaryFormat.MACHO if 0 < nfat <= _MAX_FAT_ARCHS else None
    if head[:2] == b"MZ":
        return BinaryFormat.PE
    return None
