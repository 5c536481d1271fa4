"""Exceptions raised by the binary readers.

Readers raise only these (never ``struct.error``, ``IndexError`` or ``UnicodeDecodeError``), so a
caller can turn any unreadable input into a per-file error with one ``except`` clause.
"""

from __future__ import annotations


class BinaryReadError(Exception):
    """The file cannot be read as a shared library: not one, truncated, corrupt or unreadable.

    The message names the reason in words a user can act on; the caller adds the path.
    """


class UnsupportedFormatError(BinaryReadError):
    """The file is a real binary of a format (or flavour) this version cannot read yet."""
