"""A Griffe extension for the site's API reference: the package's docstrings use Sphinx's
cross-reference roles (``:class:`PackageReport```, ``:func:`~torch_abi_audit.audit.load_target```),
which Markdown would show as typed. Each becomes inline code naming the object as the role
would display it (the last component after ``~``), with ``()`` after functions and methods."""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(
    r":(?:py:)?(?P<role>class|func|meth|attr|data|mod|exc|obj|const):`(?P<target>[^`]+)`"
)


def _shown(match: re.Match[str]) -> str:
    target = match["target"].strip()
    if target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    if match["role"] in ("func", "meth") and not target.endswith(")"):
        target += "()"
    return f"`{target}`"


def rewrite(text: str) -> str:
    """``text`` with every Sphinx role replaced by inline code."""
    return _ROLE.sub(_shown, text)


class SphinxRoles(griffe.Extension):
    """Rewrites the roles of every docstring Griffe loads."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
