"""Resolve an import name to files on disk without executing any of the target's code.

``importlib.util.find_spec("a.b")`` imports ``a`` first, which runs ``a/__init__.py``. Instead the
top-level name goes through the interpreter's meta-path finders (which only look at the file
system and never execute the module), and every further component through
:class:`importlib.machinery.PathFinder` with the parent's search locations, the same lookup the
import system performs, minus the import.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast


class ImportNameError(LookupError):
    """The name does not resolve to a module or package on the file system."""


def _valid_name(name: str) -> bool:
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def _finder(entry: str) -> Any:
    """The path-entry finder for one search location, as the import system makes it (the
    interpreter's ``sys.path_hooks``; cached in ``sys.path_importer_cache``)."""
    cached = sys.path_importer_cache.get(entry)
    if cached is not None:
        return cached
    for hook in sys.path_hooks:
        try:
            return hook(entry)
        except ImportError:
            continue
    return None


def _find_in(name: str, locations: Sequence[str]) -> importlib.machinery.ModuleSpec | None:
    """The spec of the submodule ``name`` in the parent's search ``locations``: the first
    regular module or package, else a namespace package of every portion found.

    This is :class:`importlib.machinery.PathFinder`'s search without its namespace-package
    object, which reads the parent from ``sys.modules`` (and raises :class:`KeyError` for a
    parent that was never imported: ``torchaudio.lib``, ``nvidia.cudnn.lib``).
    """
    portions: list[str] = []
    for entry in locations:
        finder = _finder(entry or str(Path.cwd()))  # "" on sys.path is the current directory
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        spec = find_spec(name)
        if spec is None:
            continue
        if spec.loader is not None:
            return cast("importlib.machinery.ModuleSpec", spec)
        portions.extend(spec.submodule_search_locations or ())
    if not portions:
        return None
    namespace = importlib.machinery.ModuleSpec(name, None, is_package=True)
    namespace.submodule_search_locations = portions
    return namespace


def close_names(name: str, locations: Sequence[str] | None = None) -> list[str]:
    """The names of installed modules and packages closest to ``name`` (a mistyped import
    name), best first: top-level ones on ``sys.path`` or, given ``locations``, the modules in
    those directories (a package's, for a submodule). Only directory listings are read."""
    import difflib  # only on a mistake: not worth its import at every start

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

    A regular package gives its directory, a namespace package every one of its directories
    (each once), a module its file. ``search_path`` replaces ``sys.path`` for the top-level
    lookup (the meta-path finders of this interpreter are then not consulted).

    Raises :class:`ImportNameError` when nothing of that name exists or it has no files
    (built-in and frozen modules), or when a finder fails on it.
    """
    if not _valid_name(name):
        raise ImportNameError(f"{name!r} is not a valid import name")
    parts = name.split(".")
    top = parts[0]
    locations: list[str] | None = None if search_path is None else list(search_path)
    try:
        spec = _top_level_spec(top, search_path)
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
            spec = _find_in(".".join(parts[: depth + 1]), locations)
    except ImportNameError:
        raise
    # Finders are the interpreter's and third parties' (editable installs add their own): a
    # failure of theirs is a name that cannot be resolved, not a crash.
    except Exception as exc:
        raise ImportNameError(f"cannot resolve {name!r}: {type(exc).__name__}: {exc}") from exc
    assert spec is not None
    if spec.submodule_search_locations:
        return [Path(p) for p in dict.fromkeys(spec.submodule_search_locations)]
    if spec.origin and spec.has_location:
        return [Path(spec.origin)]
    raise ImportNameError(f"{name!r} is a built-in or frozen module with no files to audit")


def _top_level_spec(
    top: str, search_path: Sequence[str] | None
) -> importlib.machinery.ModuleSpec | None:
    if search_path is not None:
        return _find_in(top, list(search_path))
    # An already imported module answers from sys.modules; otherwise the meta-path finders
    # search without executing anything (only dotted names import their parents).
    module = sys.modules.get(top)
    spec = getattr(module, "__spec__", None) if module is not None else None
    if spec is not None:
        return cast("importlib.machinery.ModuleSpec", spec)
    try:
        return importlib.util.find_spec(top)
    except (ImportError, ValueError) as exc:
        raise ImportNameError(f"cannot resolve {top!r}: {exc}") from exc
