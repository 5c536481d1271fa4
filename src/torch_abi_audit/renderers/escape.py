"""Names from audited input, made safe to print on a terminal.

Everything a report names comes from the input being audited: distribution names and versions
from ``METADATA``, wheel file names, directory and member names, symbol names, Mach-O segment
names. A hostile wheel can put an escape sequence there (``ESC ] 0 ;`` retitles the window,
``ESC [ 2 J`` clears the screen, OSC 8 makes a hidden link), a carriage return that overwrites
the line already printed, or a line feed that forges a row of the table (``\\n    [STABLE  ]``).
File names may also hold bytes that are not UTF-8, which Python carries as lone surrogates
(PEP 383) and a strict UTF-8 stream refuses to write.

:func:`terminal_text` is the one way text output shows such a name: every character a terminal
acts on, or that changes how a line reads, is replaced by a visible escape in Python's notation
(``\\x1b``, ``\\n``, ``\\u202e``; an undecodable file-name byte as ``\\xff``). The table renderer
passes every line it prints through it, and so does the CLI for its messages on stderr. Its
output holds no such character, so applying it twice changes nothing. A backslash is left as it
is: text that merely *looks* like an escape is harmless.

Escaped: the C0 controls and DEL, the C1 controls (``U+0080``-``U+009F``; ``U+009B`` is a CSI on
many terminals), Unicode format characters (category ``Cf``: the bidirectional overrides and
isolates of "Trojan Source", zero-width characters, the byte-order mark, tag characters), the
line and paragraph separators ``U+2028``/``U+2029``, and lone surrogates.
"""

from __future__ import annotations

import re
import unicodedata

# C0 controls, DEL, C1 controls, line/paragraph separators, surrogates: always escaped.
_ALWAYS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escaped(char: str) -> str:
    short = _SHORT.get(char)
    if short is not None:
        return short
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 in a file name (PEP 383)
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _unsafe(char: str) -> bool:
    return _ALWAYS.match(char) is not None or unicodedata.category(char) == "Cf"


def terminal_text(text: str) -> str:
    """``text`` with every control, format and undecodable character shown as an escape.

    Returns ``text`` itself when it holds none (the common case: one regular expression scan,
    or one ``isascii`` check and one scan for ASCII text).
    """
    if text.isascii():
        return _ALWAYS.sub(lambda match: _escaped(match.group()), text)
    return "".join(_escaped(char) if _unsafe(char) else char for char in text)


def terminal_lines(lines: list[str]) -> str:
    """``lines`` joined by line feeds, each one passed through :func:`terminal_text` (a line
    feed inside a line cannot start a new one)."""
    return "\n".join(terminal_text(line) for line in lines)
