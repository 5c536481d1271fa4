"""A library's import names as one text, so that the rules ask about all of them at once.

A question such as "does any import mention ``3c10``?" or "which imports start with ``Py``?" is
one substring search or one regular-expression scan over the names joined by newlines, in C,
instead of one Python-level call per name (a library imports hundreds to thousands of names;
an environment scan judges about 100k). The torch and CPython rules judge the same set of names
one after the other: the text of the last set asked for is kept.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet

# The last names joined, and their text (one entry at most). The names object itself is kept, so
# that its identity cannot be reused by another object while it is cached.
_LAST: list[tuple[frozenset[str], NamesText]] = []


class NamesText:
    """``names`` joined: ``text`` holds every name after a newline (``"\\nfoo\\nbar"``).

    ``lines`` says whether each line of the text is exactly one name (no name contains a
    newline); only then may a pattern anchored on ``\\n`` stand for "a name that...". A
    substring without a newline is in ``text`` if and only if some name contains it, whatever
    the names hold.
    """

    __slots__ = ("_count", "_lines", "text")

    def __init__(self, names: AbstractSet[str]) -> None:
        self.text = "\n" + "\n".join(names) if names else ""
        self._count = len(names)
        self._lines: bool | None = None

    @property
    def lines(self) -> bool:
        if self._lines is None:  # a scan of the text: only when a question needs it
            self._lines = self.text.count("\n") == self._count
        return self._lines

    def mentions(self, needles: tuple[str, ...]) -> bool:
        """Whether some name contains one of ``needles`` (which hold no newline)."""
        text = self.text
        return any(needle in text for needle in needles)


def names_text(names: AbstractSet[str]) -> NamesText:
    """The :class:`NamesText` of ``names`` (the last frozen set's is kept for the next
    caller: a mutable set may change between calls)."""
    if _LAST and _LAST[0][0] is names:
        return _LAST[0][1]
    joined = NamesText(names)
    if isinstance(names, frozenset):
        _LAST[:] = [(names, joined)]
    return joined
