"""Escaping text taken from audited files for each output format.

Names inside a wheel or a binary (package names, member paths, symbols, macOS segment names)
are chosen by whoever built it, so every renderer treats them as hostile: they must not break
the structure of the output (a new table row, a closed ``<details>``, a forged workflow
command) nor reach a terminal or a browser as control characters.

Each function first shows control, format and undecodable characters as escapes, exactly as
the terminal does (:func:`torch_abi_audit.renderers.escape.terminal_text`, the one rule for
that), then applies its own format's rules: Markdown code spans and text (CommonMark / GitHub
Flavored Markdown), HTML text (``<summary>`` lines), GitHub Actions workflow-command data and
properties.
"""

from __future__ import annotations

import re

from torch_abi_audit.renderers.escape import terminal_text


def markdown_code(text: str) -> str:
    """``text`` as a Markdown code span, safe in a table cell.

    The fence is one backtick longer than the longest run of backticks inside (CommonMark
    6.1), padded with spaces when the text starts or ends with a backtick; ``|`` is escaped so
    a table cell does not split (GFM tables: escaped pipes are allowed inside code spans).
    """
    shown = terminal_text(text).replace("|", "\\|")
    runs = [len(run) for run in re.findall("`+", shown)]
    fence = "`" * (max(runs, default=0) + 1)
    if shown.startswith("`") or shown.endswith("`") or not shown.strip():
        shown = f" {shown} "
    return f"{fence}{shown}{fence}"


# ASCII punctuation that can start Markdown structure mid-line: emphasis, code, links, images,
# raw HTML, entities, strikethrough, table cells, escapes themselves.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&!#])")
# "@name" is turned into a mention by GitHub (a notification to that user or team); a word
# joiner after the "@" keeps the text as it reads but stops the link.
_MENTION = re.compile(r"@(?=[A-Za-z0-9])")


def markdown_text(text: str) -> str:
    """``text`` as literal Markdown text: one line, no structure, no mentions."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", terminal_text(text))
    return _MENTION.sub("@\u2060", escaped)


def html_text(text: str) -> str:
    """``text`` for HTML content (``<summary>`` lines): one line, ``&<>"`` as entities."""
    shown = terminal_text(text)
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;")):
        shown = shown.replace(char, entity)
    return _MENTION.sub("@\u2060", shown)


def workflow_data(text: str) -> str:
    """The message of a GitHub Actions workflow command (``::error ...::MESSAGE``).

    GitHub's rule (actions/toolkit, ``escapeData``): ``%`` -> ``%25``, CR -> ``%0D``,
    LF -> ``%0A``; the runner decodes them, so a multi-line message stays one command and
    cannot start a second one. Other control characters are made visible.
    """
    escaped = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return terminal_text(escaped)


def workflow_property(text: str) -> str:
    """A property value of a workflow command (``file=``, ``title=``).

    GitHub's rule (actions/toolkit, ``escapeProperty``): as :func:`workflow_data`, plus
    ``:`` -> ``%3A`` and ``,`` -> ``%2C``, which would otherwise end the value.
    """
    return workflow_data(text).replace(":", "%3A").replace(",", "%2C")
