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
* ``abi3-tagged-violations`` (error, the ``abi3`` gate): an ``abi3``-tagged module importing
  CPython API outside the stable ABI, or linking one Python version's library (its row label,
  as a finding so that the gate's violations have a code).
* ``not-abi3-compliant`` (info, the ``abi3`` gate): a package that uses torch whose extension
  modules are not all abi3 (torch itself is exempt).

Each is a rule of the one shape (:mod:`torch_abi_audit.rules.facts`), so the checks serve
wheels, directories and installed environments.
"""

from __future__ import annotations

from torch_abi_audit.rules.cpython_abi import (
    EXPORT_HOOK_PREFIXES,
    CPythonLabel,
    abi_tags,
    cpython_label_of,
    opaque_in_abi3t,
    version_key,
)
from torch_abi_audit.rules.facts import PackageFacts, RuleContext
from torch_abi_audit.rules.findings import Finding, name_list
from torch_abi_audit.rules.registry import finding


def abi3_version_findings(package: PackageFacts, context: RuleContext) -> list[Finding]:
    """One error listing the abi3 modules that use symbols newer than their baseline."""
    late = [
        (lib.name, lib.cpython)
        for lib in package.libraries
        if lib.cpython.future_symbols and lib.cpython.baseline
    ]
    if not late:
        return []
    first = late[0][1]
    symbols = sorted({f"{s} ({v})" for _, c in late for s, v in c.future_symbols})
    names = [n for n, _ in late]
    return [
        finding(
            "abi3-newer-than-tag",
            f"{name_list(names)} uses the Python {first.computed} ABI, but is tagged "
            f"for the Python {first.baseline} ABI ({name_list(symbols)}): it fails to import on "
            "the older Pythons the tag admits",
            {
                "libraries": names,
                "symbols": symbols,
                "baselines": sorted({f"{n}: {c.baseline} ({c.baseline_source})" for n, c in late}),
            },
            libraries=names,
        )
    ]


def free_threading_findings(package: PackageFacts, context: RuleContext) -> list[Finding]:
    """Information for an ``abi3`` wheel without ``abi3t`` that ships ``.abi3`` extension
    modules. A wheel of libraries that torch loads (``torch.ops.load_library``), with no module
    to import, is not concerned; nor is an installed package (it was installed for one
    interpreter)."""
    tags = package.tags
    abis = abi_tags(tags)
    if not package.from_wheel or "abi3" not in abis or "abi3t" in abis:
        return []
    modules = [
        lib.name
        for lib in package.libraries
        if lib.is_extension and lib.cpython.intent and not lib.cpython.abi3t
    ]
    if not modules:
        return []
    return [
        finding(
            "abi3-not-free-threaded",
            f"tagged abi3 only: free-threaded Pythons (cp313t, cp314t, …) do not load .abi3 "
            f"modules such as {name_list(modules)}; they need version-specific wheels, or abi3t "
            "builds (Python 3.15+, PEP 803)",
            {"tags": sorted(tags), "libraries": modules},
            libraries=modules,
        )
    ]


def abi3t_findings(package: PackageFacts, context: RuleContext) -> list[Finding]:
    """An error for the modules that claim abi3t but lack the export hook an abi3t build needs
    (a wheel tagged ``abi3t`` claims it for every abi3 module it ships)."""
    wheel_claims = "abi3t" in abi_tags(package.tags)
    missing: list[tuple[str, tuple[str, ...], str]] = []
    for lib in package.libraries:
        name, cpython, entries = lib.name, lib.cpython, lib.entry_points
        # The interpreter's library exports its built-in modules' PyInit_* yet is no module.
        if not lib.is_extension or any(entry.startswith(EXPORT_HOOK_PREFIXES) for entry in entries):
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
        finding(
            "abi3t-without-export-hook",
            f"{name_list(names)} claims abi3t but exports {name_list(missing[0][1])} and no "
            f"PyModExport_ hook: {opaque} are opaque in abi3t (PEP 803), so an abi3t build must "
            "define its module through the PEP 793 export hook; this one was built for plain "
            "abi3, and a free-threaded Python would run it against the wrong object layout",
            {
                "libraries": names,
                "entry_points": sorted({e for _, entries, _ in missing for e in entries}),
                "claimed_by": [claim for _, _, claim in missing],
            },
            libraries=names,
        )
    ]


def interpreter_findings(package: PackageFacts, context: RuleContext) -> list[Finding]:
    """Extension modules the environment's interpreter (when known) will not load."""
    interpreter = context.interpreter
    if interpreter is None:
        return []
    failures: list[tuple[str, str]] = []
    for lib in package.libraries:
        name, cpython = lib.name, lib.cpython
        if not lib.is_extension:
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
    names = [n for n, _ in failures]
    return [
        finding(
            "load-failure",
            f"{name_list(names)} will not import with {interpreter.label}: {failures[0][1]}",
            {
                "against": interpreter.label,
                "libraries": names,
                "errors": [f"{n}: {reason}" for n, reason in failures],
            },
            libraries=names,
        )
    ]


def abi3_label_findings(package: PackageFacts, context: RuleContext) -> list[Finding]:
    """What the ``abi3`` gate fails on beyond the other findings: each abi3-tagged module that
    breaks the stable ABI (``abi3-tagged-violations``), and, for a package that uses torch, the
    extension modules that are not abi3 at all (``not-abi3-compliant``)."""
    modules = [lib for lib in package.libraries if lib.is_extension]
    labels = {lib.name: cpython_label_of(lib.cpython) for lib in modules}
    tagged = [lib for lib in modules if labels[lib.name] is CPythonLabel.ABI3_TAGGED_VIOLATIONS]
    findings = []
    for lib in tagged:
        cpython = lib.cpython
        if cpython.violations:
            broken = f"imports {name_list(cpython.violations)}"
        else:
            broken = (
                f"links {cpython.python_library}, the library of Python {cpython.python_version}"
            )
        findings.append(
            finding(
                "abi3-tagged-violations",
                f"tagged abi3 but {broken}",
                {"symbols": list(cpython.violations), "python_library": cpython.python_library},
                libraries=[lib.name],
            )
        )
    uses_torch = any(lib.torch.uses_torch for lib in package.libraries)
    if tagged or not uses_torch or package.is_torch:
        return findings
    other = [lib.name for lib in modules if labels[lib.name] is not CPythonLabel.ABI3_OK]
    if other:
        verdict = "not-abi3" if len(other) == len(modules) else "mixed"
        findings.append(
            finding(
                "not-abi3-compliant",
                f"CPython ABI is {verdict} (not abi3-compliant): {name_list(other)} "
                f"{'is not an abi3 module' if len(other) == 1 else 'are not abi3 modules'}",
                {"libraries": other},
                libraries=other,
            )
        )
    return findings
