"""Resolve an import name to files on disk without executing any of the target's code.

``importlib.util.find_spec("a.b")`` imports ``a`` first, which runs ``a/__init__.py``. Instead the
top-level name goes through the interpreter's meta-path finders (which only look at the file
system and never execute the module), and every further component through
:class:`importlib.machinery.PathFinder` with the parent's search locations, the same lookup the
import system performs, minus the import.
"""

from __future__ import annotations

import difflib
import importlib.machinery
import importlib.util
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path


class ImportNameError(LookupError):
    """The name does not resolve to a module or package on the file system."""


def _valid_name(name: str) -> bool:
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def close_names(name: str, locations: Sequence[str] | None = None) -> list[str]:
    """The names of installed modules and packages closest to ``name`` (a mistyped import
    name), best first: top-level ones on ``sys.path`` or, given ``locations``, the modules in
    those directories (a package's, for a submodule). Only directory listings are read."""
    found = {info.name for info in pkgutil.iter_modules(None if locations is None else locations)}
    return difflib.get_close_matches(name, sorted(found), n=3, cutoff=0.6)


def _suggestion(name: str, locations: Sequence[str] | None, parent: str) -> str:
    matches = [f"{parent}.{match}" if parent else match for match in close_names(name, locations)]
    if not matches:
        return ""
    listed = ", ".join(matches[:-1]) + (" or " if len(matches) > 1 else "") + matches[-1]
    return f"; did you mean {listed}?"


def resolve_import_name(name: str, search_path: Sequence[str] | None = None) -> list[Path]:
    """The file-system locations of the module or package ``name``.

    A regular package gives its directory, a namespace package every one of its directories, a
    module its file. ``search_path`` replaces ``sys.path`` for the top-level lookup (the meta-path
    finders of this interpreter are then not consulted).

    Raises :class:`ImportNameError` when nothing of that name exists or it has no files
    (built-in and frozen modules).
    """
    if not _valid_name(name):
        raise ImportNameError(f"{name!r} is not a valid import name")
    parts = name.split(".")
    top = parts[0]
    spec: importlib.machinery.ModuleSpec | None
    if search_path is not None:
        spec = importlib.machinery.PathFinder.find_spec(top, list(search_path))
    else:
        # An already imported module answers from sys.modules; otherwise the meta-path finders
        # search without executing anything (only dotted names import their parents).
        module = sys.modules.get(top)
        spec = getattr(module, "__spec__", None) if module is not None else None
        if spec is None:
            try:
                spec = importlib.util.find_spec(top)
            except (ImportError, ValueError) as exc:
                raise ImportNameError(f"cannot resolve {top!r}: {exc}") from exc
    locations: list[str] | None = None if search_path is None else list(search_path)
    for depth in range(1, len(parts) + 1):
        qualified = ".".join(parts[:depth])
        if spec is None:
            message = f"no module or package named {qualified!r} is installed"
            parent = ".".join(parts[: depth - 1])
            raise ImportNameError(message + _suggestion(parts[depth - 1], locations, parent))
        if depth == len(parts):
            break
        locations = list(spec.submodule_search_locations or [])
        if not locations:
            raise ImportNameError(f"{qualified!r} is a module, not a package")
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: depth + 1]), locations)
    assert spec is not None
    if spec.submodule_search_locations:
        return [Path(p) for p in spec.submodule_search_locations]
    if spec.origin and spec.has_location:
        return [Path(spec.origin)]
    raise ImportNameError(f"{name!r} is a built-in or frozen module with no files to audit")
