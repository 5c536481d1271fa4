"""CPython Stable ABI (PEP 384 "abi3", PEP 652 manifest) rules for extension modules.

Two signals, as in abi3audit:

* **intent** — the file name carries the ``abi3`` tag (``_foo.abi3.so``), or the module links
  the stable-ABI Python library (``python3.dll`` on Windows, where extension names carry no tag);
* **compliance** — every CPython API symbol it imports (``Py*`` / ``_Py*``) belongs to the stable
  ABI, per ``abi3info`` (generated from CPython's ``Misc/stable_abi.toml``), and it does not
  link a Python library of one version (``python311.dll``, ``libpython3.11.so.1.0``,
  ``Python.framework/Versions/3.11/Python``).

Module entry points (``PyInit_*``, PEP 793 ``PyModExport_*``) are the extension's own definitions,
not imports, and local (static) symbols never count: they are the extension's own copies of code
the headers inline, which the limited API sanctions.

Versions, as abi3audit: a symbol belongs to the stable ABI *from* the Python version that
stabilised it (``abi3info``'s ``added``); an extension's **computed** version is the newest among
the symbols it imports; its **baseline** is the version it promises — from its wheel's tags
(``cp39-abi3`` -> 3.9), else an assumed minimum (3.2 unless told otherwise) — and symbols newer
than the baseline are **future** symbols: the module fails to import on the older Pythons its tag
admits.

Free threading (PEP 703, PEP 803): a free-threaded interpreter does not load ``.abi3.so``
modules (from 3.15 they are not among its extension suffixes); it loads ``.abi3t.so`` ones
(the Stable ABI for free-threaded builds, ``Py_TARGET_ABI3T``, wheel tag ``abi3t``, from 3.15)
and version-specific ``cpython-3XYt`` ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cache
from itertools import compress
from pathlib import Path
from zlib import crc32

from torch_abi_audit.model import Library
from torch_abi_audit.package_data import read_text
from torch_abi_audit.rules.names import names_text

#: Names a CPython extension module exports for the import system to call.
ENTRY_POINT_PREFIXES = ("PyInit_", "PyInitU_", "PyModExport_", "PyModExportU_")
#: The PEP 793 export hook (Python 3.15+), the only way an abi3t module can define itself.
EXPORT_HOOK_PREFIXES = ("PyModExport_", "PyModExportU_")
_CAPI_NAME = re.compile("_?Py")
# The same names, found all at once in the text of a set of names (one name a line; see
# rules.names): C API names that are not entry points.
_CAPI_LINE = re.compile(
    r"\n(?!" + "|".join(map(re.escape, ENTRY_POINT_PREFIXES)) + r")(_?Py[^\n]*)"
)
_ABI3_TAG = re.compile(r"\.abi3t?(?=\.)")
_ABI3T_TAG = re.compile(r"\.abi3t(?=\.)")
# Version-specific free-threaded modules: .cpython-313t-x86_64-linux-gnu.so, .cp314t-win_amd64.pyd
_FREE_THREADED_TAG = re.compile(r"\.(?:cpython-3\d+t|cp3\d+t)[-.]", re.IGNORECASE)
#: The first Python with a stable ABI (PEP 384), abi3audit's default assumption.
FIRST_ABI3 = "3.2"
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

    ``computed`` is the newest stable-ABI version among its imports (``None`` without any);
    ``versioned_symbols`` the imported stable-ABI symbols stabilised after 3.2, with their
    version. ``abi3t`` marks a ``.abi3t`` file, ``free_threaded`` a version-specific
    free-threaded one (``cpython-313t``). ``baseline`` (set by :meth:`with_baseline` once the
    package's tags are known), ``baseline_source`` and ``future_symbols`` are the abi3
    version it promises, where that comes from, and the imports newer than it.
    """

    intent: bool = False
    compliant: bool = False
    violations: tuple[str, ...] = ()
    capi_symbol_count: int = 0
    python_library: str | None = None
    python_version: str | None = None
    computed: str | None = None
    versioned_symbols: tuple[tuple[str, str], ...] = ()
    abi3t: bool = False
    free_threaded: bool = False
    baseline: str | None = None
    baseline_source: str | None = None
    future_symbols: tuple[tuple[str, str], ...] = ()

    @property
    def needs_python(self) -> str | None:
        """The oldest Python that has every stable-ABI symbol it imports (``None`` without
        any): what importing it takes, whatever its tag promises."""
        # Few distinct versions among thousands of symbols: compare those (asked per library
        # by every renderer and by the findings).
        newest = max({v for _, v in self.versioned_symbols}, key=version_key, default=None)
        return newest or (FIRST_ABI3 if self.capi_symbol_count else None)

    def with_baseline(self, baseline: str, source: str) -> CPythonAnalysis:
        """This analysis judged against the abi3 version ``baseline`` promised by ``source``
        (``wheel tag cp39-abi3``, ``assumed``): the imported symbols newer than it are its
        future symbols."""
        floor = version_key(baseline)
        future = tuple((n, v) for n, v in self.versioned_symbols if version_key(v) > floor)
        # As abi3audit: a module using only older symbols is still built for its baseline
        # (CPython does not promise that a newer abi3 build runs on older Pythons).
        computed = max(baseline, self.computed or baseline, key=version_key)
        return replace(
            self,
            baseline=baseline,
            baseline_source=source,
            future_symbols=future,
            computed=computed,
        )


class CPythonLabel(StrEnum):
    """Per-library CPython label, as printed in the table."""

    ABI3_OK = "abi3-ok"
    ABI3_TAGGED_VIOLATIONS = "abi3-tagged-violations"
    ABI3_TAGGED_NO_CAPI = "abi3-tagged-no-capi"
    USES_PRIVATE_API = "uses-private-api"
    NOT_ABI3 = "not-abi3"


def cpython_label_of(cpython: CPythonAnalysis) -> CPythonLabel:
    """The documented CPython row label for an audited library (or slice).

    Tagged ``abi3``: ``abi3-ok`` when every imported CPython symbol is in the stable ABI,
    ``abi3-tagged-violations`` when some are not (or it links a Python library of one
    version), ``abi3-tagged-no-capi`` when it imports none. Untagged: ``uses-private-api`` when
    it imports symbols outside the stable ABI, else ``not-abi3`` (a build without
    ``Py_LIMITED_API`` may use version-specific struct layouts through macros even when every
    symbol it imports is stable, so the symbols alone do not make it abi3).
    """
    if cpython.violations:
        return (
            CPythonLabel.ABI3_TAGGED_VIOLATIONS if cpython.intent else CPythonLabel.USES_PRIVATE_API
        )
    if cpython.intent:
        if cpython.python_version is not None:
            return CPythonLabel.ABI3_TAGGED_VIOLATIONS
        return CPythonLabel.ABI3_OK if cpython.compliant else CPythonLabel.ABI3_TAGGED_NO_CAPI
    return CPythonLabel.NOT_ABI3


def abi3_baseline(tags: Sequence[str]) -> str | None:
    """The abi3 version a wheel's tags promise: the newest ``cpXY`` among its ``abi3`` (or
    ``abi3t``) tags (``cp39-abi3-manylinux_2_28_x86_64`` -> ``3.9``); ``None`` without one."""
    found = []
    for tag in tags:
        parts = tag.split("-")
        if len(parts) != 3 or parts[1] not in ("abi3", "abi3t"):
            continue
        match = re.fullmatch(r"cp3(\d+)", parts[0])
        if match:
            found.append(f"3.{match.group(1)}")
    return max(found, key=version_key) if found else None


def abi_tags(tags: Sequence[str]) -> frozenset[str]:
    """The ABI parts of wheel tags (``cp315-abi3t-manylinux_2_28_x86_64`` -> ``abi3t``)."""
    return frozenset(parts[1] for tag in tags if len(parts := tag.split("-")) == 3)


def version_key(version: str) -> tuple[int, ...]:
    """``"3.10"`` -> ``(3, 10)``: Python versions compared as numbers."""
    return tuple(int(part) for part in version.split(".") if part.isdigit())


#: The shipped copy of abi3info's tables (``scripts/generate_cpython_abi_data.py`` makes it).
DATA_FILE = "cpython_stable_abi.json"
#: The file of the abi3info package that holds its tables: the shipped copy is used only while
#: the installed one has the same size and CRC-32 as the one it was made from.
ABI3INFO_TABLES = "_internal.py"


def abi3info_fingerprint() -> dict[str, object] | None:
    """Size and CRC-32 of the installed abi3info's tables (:data:`ABI3INFO_TABLES`), found
    without importing it (~0.2 ms); ``None`` where they cannot be read as a file."""
    from importlib.util import find_spec

    spec = find_spec("abi3info")  # a top-level name: nothing is imported to find it
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        try:
            data = (Path(location) / ABI3INFO_TABLES).read_bytes()
        except OSError:
            continue
        return {"file": f"abi3info/{ABI3INFO_TABLES}", "size": len(data), "crc32": crc32(data)}
    return None


def tables_from_abi3info() -> tuple[dict[str, str], tuple[str, ...]]:
    """:func:`stable_abi_versions` and :func:`opaque_in_abi3t`, read from the installed
    abi3info itself (importing it costs ~30 ms)."""
    import abi3info

    versions: dict[str, str] = {}
    for table in (abi3info.FUNCTIONS, abi3info.DATAS):
        for symbol, entry in table.items():
            versions[symbol.name] = f"{entry.added.major}.{entry.added.minor}"
    opaque = sorted(
        name for name, struct in abi3info.STRUCTS.items() if getattr(struct, "abi3t_opaque", False)
    )
    return versions, tuple(opaque)


@cache
def _tables() -> tuple[dict[str, str], tuple[str, ...]]:
    """abi3info's tables: the shipped copy while the installed abi3info holds the same data,
    else abi3info's own. Every process that judges CPython imports needs them (each worker
    of a scan, the small audit that reads in-process): importing abi3info was ~30 ms of each,
    loading the copy is ~1 ms."""
    try:
        document = json.loads(read_text("data", DATA_FILE))
        if document["source"]["fingerprint"] == abi3info_fingerprint():
            return dict(document["symbols"]), tuple(document["opaque_in_abi3t"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no usable copy (a broken install): abi3info says
    return tables_from_abi3info()


def stable_abi_versions() -> dict[str, str]:
    """Every function and data symbol of the CPython stable ABI, with the Python version that
    stabilised it (``"3.2"``, ``"3.10"``…), from ``abi3info``."""
    return _tables()[0]


def opaque_in_abi3t() -> tuple[str, ...]:
    """The structs with a stable layout in abi3 that abi3t makes opaque (``PyModuleDef``,
    ``PyModuleDef_Base``), from ``abi3info``."""
    return _tables()[1]


@cache
def stable_abi_symbols() -> frozenset[str]:
    """Names of every function and data symbol of the CPython stable ABI (from ``abi3info``)."""
    return frozenset(stable_abi_versions())


def has_abi3_tag(filename: str) -> bool:
    """True when ``filename`` carries the ``abi3`` or ``abi3t`` tag (``name.abi3.so``)."""
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


def _capi_names(imports: Iterable[str]) -> set[str]:
    """The CPython API names among ``imports`` (``Py*``, ``_Py*``), entry points left out."""
    if isinstance(imports, frozenset):
        text = names_text(imports)
        if text.lines:  # one scan of all the names, in C
            return set(_CAPI_LINE.findall(text.text)) if "Py" in text.text else set()
    return {
        name
        for name in filter(_CAPI_NAME.match, imports)
        if not name.startswith(ENTRY_POINT_PREFIXES)
    }


def analyse_cpython(
    imports: Iterable[str], filename: str, needed: Sequence[str] = ()
) -> CPythonAnalysis:
    """Judge the CPython API among a library's imported names against the stable ABI.

    ``needed`` (the libraries it links) tells a Windows module linked to ``python3.dll`` (abi3)
    from one linked to ``python311.dll`` (one Python version).
    """
    capi = _capi_names(imports)
    # The stable-ABI table is loaded only when there is something to look up in it.
    violations = tuple(sorted(capi - stable_abi_symbols())) if capi else ()
    versions = stable_abi_versions() if capi else {}
    known = sorted(capi & stable_abi_symbols()) if capi else []  # a set: the smaller is walked
    known_versions = list(map(versions.__getitem__, known))
    stable = list(zip(known, known_versions, strict=True))
    # Few distinct versions among thousands of symbols: compare those, not every symbol's.
    computed = max(set(known_versions), key=version_key, default=None)
    python_library, python_version = linked_python(needed)
    return CPythonAnalysis(
        intent=has_abi3_tag(filename) or (python_library is not None and python_version is None),
        compliant=bool(capi) and not violations and python_version is None,
        violations=violations,
        capi_symbol_count=len(capi),
        python_library=python_library,
        python_version=python_version,
        computed=computed,
        versioned_symbols=tuple(compress(stable, map(FIRST_ABI3.__ne__, known_versions))),
        abi3t=_ABI3T_TAG.search(filename) is not None,
        free_threaded=_FREE_THREADED_TAG.search(filename) is not None,
    )
