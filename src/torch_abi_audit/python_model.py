"""Python-side facts every stage shares: the interpreter an environment runs, and names.

Sources find these facts (``sources/interpreter.py`` reads an environment's interpreter), rules
judge with them, the report and the gates use them; so they live here, below all of them, with
one definition each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# PEP 503: a distribution name is compared lower-cased, with runs of "-", "_" and "." as one "-".
_SEPARATORS = re.compile(r"[-_.]+")

#: Distributions that implement libtorch rather than build on it (normalised names).
TORCH_DISTRIBUTIONS = frozenset({"torch"})


def normalize_name(name: str) -> str:
    """A distribution name in the form PEP 503 compares (``Torch_Audio`` -> ``torch-audio``)."""
    return _SEPARATORS.sub("-", name).lower()


def is_torch_distribution(name: str) -> bool:
    """True for the distribution that *is* torch (it implements the internals others must not
    use, so the torch rules and gates leave it alone)."""
    return normalize_name(name) in TORCH_DISTRIBUTIONS


@dataclass(frozen=True)
class Interpreter:
    """The Python an environment runs: ``version`` (``"3.11"``) and whether it is a
    free-threaded build (``Py_GIL_DISABLED``)."""

    version: str
    free_threaded: bool = False

    @property
    def label(self) -> str:
        """``Python 3.13t`` style."""
        return f"Python {self.version}{'t' if self.free_threaded else ''}"
