"""CPython Stable ABI (PEP 384 "abi3", PEP 652 manifest) rules for extension modules.

Two signals, as in abi3audit:

* **intent** — the file name carries the ``abi3`` tag (``_foo.abi3.so``), or the module links
  the stable-ABI Python library (``python3.dll`` on Windows, where extension names carry no tag);
* **compliance** — every CPython API symbol it imports (``Py*`` / ``_Py*``) belongs to the stable
  ABI, per ``abi3info`` (generated from CPython's ``Misc/stable_abi.toml``), and it does not
  link a Python library of one version (``python311.dll``, ``libpython3.11.so.1.0``,
  ``Python.framework/Versions/3.11/Python``).

Module entry points (``PyInit_*``, PEP 793 ``PyModExport_*``) are the extension's own definitions,
not imports, and local (static) symbols never count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

from torch_abi_audit.model import Library

#: Names a CPython extension module exports for the import system to call.
ENTRY_POINT_PREFIXES = ("PyInit_", "PyInitU_", "PyModExport_", "PyModExportU_")
_CAPI_NAME = re.compile("_?Py")
_ABI3_TAG = re.compile(r"\.abi3(?=\.)")
# The Python library a module links, by its needed-library entry. Group "version" is set for a
# library of one Python version, absent for the stable-ABI library (python3.dll, libpython3.so).
_PYTHON_LIBRARY = re.compile(
    r"""(?:.*[/\\])?(?:
        python3(?P<win>\d+)?t?(?:_d)?\.dll                    # Windows
      | libpython3(?:\.(?P<unix>\d+))?[a-z]*\.(?:so(?:\.[0-9.]+)?|dylib|a)   # ELF, Mach-O
      | Python\.framework/Versions/3\.(?P<framework>\d+)/Python   # macOS framework build
    )""",
    re.IGNORECASE | re.VERBOSE,
)


@dataclass(frozen=True)
class CPythonAnalysis:
    """CPython Stable ABI verdict for one library.

    ``intent``: tagged ``abi3`` (or linked to ``python3.dll``); ``compliant``: imports CPython
    API symbols, all of them in the stable ABI, and links no version-specific Python library;
    ``violations``: the imported CPython symbols outside the stable ABI, sorted.
    ``capi_symbol_count`` counts the CPython symbols it imports. ``python_library`` is the
    Python library it links, if any, and ``python_version`` the one Python release
    (``"3.11"``) that library ties it to (``None`` for the stable-ABI library).
    """

    intent: bool = False
    compliant: bool = False
    violations: tuple[str, ...] = ()
    capi_symbol_count: int = 0
    python_library: str | None = None
    python_version: str | None = None


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


def linked_python(needed: Sequence[str]) -> tuple[str | None, str | None]:
    """The Python library among ``needed`` and the Python release it is tied to.

    ``("python311.dll", "3.11")``, ``("python3.dll", None)`` (the stable ABI),
    ``(None, None)`` when it links none (the usual case on Linux and macOS, where the
    interpreter provides the symbols).
    """
    for entry in needed:
        match = _PYTHON_LIBRARY.fullmatch(entry)
        if match is None:
            continue
        minor = match.group("win") or match.group("unix") or match.group("framework")
        return entry, f"3.{minor}" if minor else None
    return None, None


def analyse_cpython(
    imports: Iterable[str], filename: str, needed: Sequence[str] = ()
) -> CPythonAnalysis:
    """Judge the CPython API among a library's imported names against the stable ABI.

    ``needed`` (the libraries it links) tells a Windows module linked to ``python3.dll`` (abi3)
    from one linked to ``python311.dll`` (one Python version).
    """
    capi = {
        name
        for name in filter(_CAPI_NAME.match, imports)
        if not name.startswith(ENTRY_POINT_PREFIXES)
    }
    # The stable-ABI table is loaded only when there is something to look up in it.
    violations = tuple(sorted(capi - stable_abi_symbols())) if capi else ()
    python_library, python_version = linked_python(needed)
    return CPythonAnalysis(
        intent=has_abi3_tag(filename) or (python_library is not None and python_version is None),
        compliant=bool(capi) and not violations and python_version is None,
        violations=violations,
        capi_symbol_count=len(capi),
        python_library=python_library,
        python_version=python_version,
    )
