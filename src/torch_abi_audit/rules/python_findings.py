"""Findings about the Python versions and builds a package's extension modules can load on.

* ``abi3-newer-than-tag`` (error): an abi3 module imports stable-ABI symbols newer than the
  version its tag promises ("uses the Python 3.12 ABI, but is tagged for 3.10", as abi3audit
  says): it fails to import on the older Pythons the tag admits.
* ``abi3-not-free-threaded`` (info): an ``abi3`` wheel without ``abi3t`` that ships ``.abi3``
  extension modules: free-threaded Pythons (``cp313t``, ``cp314t``…) do not load them
  (PEP 803), so their users need another wheel.
* ``abi3t-without-export-hook`` (error): a module that claims ``abi3t`` (an ``.abi3t`` file, or
  a wheel tagged ``abi3t``) but exports ``PyInit_*`` only. abi3t (PEP 803, ``Py_TARGET_ABI3T``)
  makes ``PyObject`` opaque, and with it ``PyModuleDef`` (``abi3info`` marks the struct
  ``abi3t_opaque``), so an abi3t build cannot define the module the ``PyInit_`` way: it must
  export the PEP 793 hook ``PyModExport_*``. Without one the file was built for plain abi3.
* ``load-failure`` (error): in an environment whose interpreter is known, a module that needs a
  newer Python than it, or an ``.abi3`` module under a free-threaded interpreter.

Inputs are plain facts, so the checks serve wheels, directories and installed environments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch_abi_audit.rules.cpython_abi import (
    EXPORT_HOOK_PREFIXES,
    CPythonAnalysis,
    abi_tags,
    opaque_in_abi3t,
    version_key,
)
from torch_abi_audit.rules.findings import Finding, Severity

NAMED = 3


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:NAMED])
    return shown + (f" and {len(items) - NAMED} more" if len(items) > NAMED else "")


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


def abi3_version_findings(libraries: Sequence[tuple[str, CPythonAnalysis]]) -> list[Finding]:
    """One error listing the abi3 modules that use symbols newer than their baseline."""
    late = [(name, c) for name, c in libraries if c.future_symbols and c.baseline]
    if not late:
        return []
    first = late[0][1]
    symbols = sorted({f"{s} ({v})" for _, c in late for s, v in c.future_symbols})
    return [
        Finding(
            "abi3-newer-than-tag",
            Severity.ERROR,
            f"{_names([n for n, _ in late])} uses the Python {first.computed} ABI, but is tagged "
            f"for the Python {first.baseline} ABI ({_names(symbols)}): it fails to import on "
            "the older Pythons the tag admits",
            {
                "libraries": [n for n, _ in late],
                "symbols": symbols,
                "baselines": sorted({f"{n}: {c.baseline} ({c.baseline_source})" for n, c in late}),
            },
        )
    ]


def free_threading_findings(
    tags: Sequence[str], libraries: Sequence[tuple[str, CPythonAnalysis, bool]]
) -> list[Finding]:
    """Information for an ``abi3`` wheel without ``abi3t`` that ships ``.abi3`` extension
    modules. ``libraries`` are ``(name, analysis, is_extension)``: a wheel of libraries that
    torch loads (``torch.ops.load_library``), with no module to import, is not concerned."""
    abis = abi_tags(tags)
    if "abi3" not in abis or "abi3t" in abis:
        return []
    modules = [name for name, c, is_ext in libraries if is_ext and c.intent and not c.abi3t]
    if not modules:
        return []
    return [
        Finding(
            "abi3-not-free-threaded",
            Severity.INFO,
            f"tagged abi3 only: free-threaded Pythons (cp313t, cp314t, …) do not load .abi3 "
            f"modules such as {_names(modules)}; they need version-specific wheels, or abi3t "
            "builds (Python 3.15+, PEP 803)",
            {"tags": sorted(tags), "libraries": modules},
        )
    ]


def abi3t_findings(
    libraries: Sequence[tuple[str, CPythonAnalysis, tuple[str, ...]]], tags: Sequence[str] = ()
) -> list[Finding]:
    """An error for the modules that claim abi3t but lack the export hook an abi3t build needs.

    ``libraries`` are ``(name, analysis, entry points)``; ``tags`` the package's wheel tags (a
    wheel tagged ``abi3t`` claims it for every abi3 module it ships).
    """
    wheel_claims = "abi3t" in abi_tags(tags)
    missing: list[tuple[str, tuple[str, ...], str]] = []
    for name, cpython, entries in libraries:
        if not entries or any(entry.startswith(EXPORT_HOOK_PREFIXES) for entry in entries):
            continue
        if cpython.abi3t:
            missing.append((name, entries, f"{name}: file name .abi3t"))
        elif wheel_claims and cpython.intent:
            missing.append((name, entries, f"{name}: wheel tag abi3t"))
    if not missing:
        return []
    names = [name for name, _, _ in missing]
    opaque = " and ".join(opaque_in_abi3t()) or "PyModuleDef"
    return [
        Finding(
            "abi3t-without-export-hook",
            Severity.ERROR,
            f"{_names(names)} claims abi3t but exports {_names(missing[0][1])} and no "
            f"PyModExport_ hook: {opaque} are opaque in abi3t (PEP 803), so an abi3t build must "
            "define its module through the PEP 793 export hook; this one was built for plain "
            "abi3, and a free-threaded Python would run it against the wrong object layout",
            {
                "libraries": names,
                "entry_points": sorted({e for _, entries, _ in missing for e in entries}),
                "claimed_by": [claim for _, _, claim in missing],
            },
        )
    ]


def interpreter_findings(
    libraries: Sequence[tuple[str, CPythonAnalysis, bool]], interpreter: Interpreter
) -> list[Finding]:
    """Extension modules the environment's interpreter will not load.

    ``libraries`` are ``(name, analysis, is_extension)``; only extension modules are judged.
    """
    failures: list[tuple[str, str]] = []
    for name, cpython, is_extension in libraries:
        if not is_extension:
            continue
        if cpython.intent and interpreter.free_threaded and not cpython.abi3t:
            failures.append(
                (name, f"{interpreter.label} does not load .abi3 modules (free-threaded build)")
            )
            continue
        needed = cpython.needs_python if cpython.intent else None
        if needed and version_key(needed) > version_key(interpreter.version):
            failures.append(
                (name, f"needs Python {needed}, the environment runs {interpreter.label}")
            )
    if not failures:
        return []
    return [
        Finding(
            "load-failure",
            Severity.ERROR,
            f"{_names([n for n, _ in failures])} will not import with {interpreter.label}: "
            f"{failures[0][1]}",
            {
                "against": interpreter.label,
                "libraries": [n for n, _ in failures],
                "errors": [f"{n}: {reason}" for n, reason in failures],
            },
        )
    ]
