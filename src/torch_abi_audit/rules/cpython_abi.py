"""CPython Stable ABI (PEP 384 "abi3", PEP 652 manifest) rules for extension modules.

Two signals, as in abi3audit:

* **intent** — the file name carries the ``abi3`` tag (``_foo.abi3.so``);
* **compliance** — every CPython API symbol it imports (``Py*`` / ``_Py*``) belongs to the stable
  ABI, per ``abi3info`` (generated from CPython's ``Misc/stable_abi.toml``).

Module entry points (``PyInit_*``, PEP 793 ``PyModExport_*``) are the extension's own definitions,
not imports, and local (static) symbols never count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from torch_abi_audit.model import Library

#: Names a CPython extension module exports for the import system to call.
ENTRY_POINT_PREFIXES = ("PyInit_", "PyInitU_", "PyModExport_", "PyModExportU_")
_CAPI_NAME = re.compile("_?Py")
_ABI3_TAG = re.compile(r"\.abi3(?=\.)")


@dataclass(frozen=True)
class CPythonAnalysis:
    """CPython Stable ABI verdict for one library.

    ``intent``: tagged ``abi3``; ``compliant``: imports CPython API symbols and all of them are in
    the stable ABI; ``violations``: the imported CPython symbols outside it, sorted.
    ``capi_symbol_count`` counts the CPython symbols it imports.
    """

    intent: bool = False
    compliant: bool = False
    violations: tuple[str, ...] = ()
    capi_symbol_count: int = 0


@cache
def stable_abi_symbols() -> frozenset[str]:
    """Names of every function and data symbol of the CPython stable ABI (from ``abi3info``)."""
    import abi3info  # ~40 ms to import: only when an audit needs it

    names: set[str] = set()
    for table in (abi3info.FUNCTIONS, abi3info.DATAS):
        names.update(symbol.name for symbol in table)
    return frozenset(names)


def has_abi3_tag(filename: str) -> bool:
    """True when ``filename`` carries the ``abi3`` tag (``name.abi3.so``)."""
    return _ABI3_TAG.search(filename) is not None


def entry_points(library: Library) -> tuple[str, ...]:
    """The module entry points (``PyInit_*`` …) that ``library`` exports; empty if none."""
    return tuple(sorted({s.name for s in library.exports.with_prefix(*ENTRY_POINT_PREFIXES)}))


def analyse_cpython(imports: Iterable[str], filename: str) -> CPythonAnalysis:
    """Judge the CPython API among a library's imported names against the stable ABI."""
    capi = {
        name
        for name in filter(_CAPI_NAME.match, imports)
        if not name.startswith(ENTRY_POINT_PREFIXES)
    }
    # The stable-ABI table is loaded only when there is something to look up in it.
    violations = tuple(sorted(capi - stable_abi_symbols())) if capi else ()
    return CPythonAnalysis(
        intent=has_abi3_tag(filename),
        compliant=bool(capi) and not violations,
        violations=violations,
        capi_symbol_count=len(capi),
    )
