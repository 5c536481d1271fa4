"""Findings about a package's use of torch.

* ``torch-unstable`` (warning, the ``torch`` gate): a library imports libtorch internals (its
  ``UNSTABLE`` row, as a finding so that the gate's violations have a code). torch itself,
  which implements them, is exempt.
* ``deprecated-shim`` (warning): libraries import shims the headers mark ``[[deprecated]]``;
  the finding names them and, where the headers say, their replacements.
* ``needs-newer-torch`` (error): a stable library imports shims the target torch (a release
  given with ``--torch-version``, or the installed torch) does not have yet.
* ``above-target-version`` (error): with ``--target-version X.Y``, libraries import shims newer
  than the oldest torch the build promises (dlsym look-ups excepted); it fails ``--check torch``.
* ``load-failure`` (error): a library is predicted not to load on the target torch — a needed
  libtorch or CUDA library the loader would not find, a libtorch symbol the installation does
  not export, a shim it removed.

Each is a rule of the one shape (:mod:`torch_abi_audit.rules.facts`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch_abi_audit.rules.facts import PackageFacts, RuleContext
from torch_abi_audit.rules.findings import Evidence, Finding, name_list
from torch_abi_audit.rules.registry import finding

if TYPE_CHECKING:
    from torch_abi_audit.rules.load_prediction import LoadPrediction


def unstable_library_findings(package: PackageFacts, context: RuleContext) -> list[Finding]:
    """One ``torch-unstable`` finding per library that uses libtorch internals."""
    if package.is_torch:
        return []
    findings = []
    for lib in package.libraries:
        if not lib.torch.uses_torch or lib.torch.stable:
            continue
        symbols = [u.demangled for u in lib.torch.unstable_details] or list(
            lib.torch.unstable_symbols
        )
        names = list(dict.fromkeys(_entity(symbol) for symbol in symbols))
        findings.append(
            finding(
                "torch-unstable",
                f"uses libtorch internals outside the stable ABI ({name_list(names, 2)})",
                {"symbols": symbols[:10]},
                libraries=[lib.name],
            )
        )
    return findings


def _entity(demangled: str) -> str:
    """A demangled name without its parameter list (``c10::detail::torchCheckFail``): what a
    one-line message can show; ``-v`` lists the full names."""
    depth = 0
    for index, char in enumerate(demangled):
        if char == "<":
            depth += 1
        elif char == ">":
            depth = max(0, depth - 1)
        elif char == "(" and depth == 0 and index > 0:
            return demangled[:index]
    return demangled


def deprecated_shim_findings(package: PackageFacts, context: RuleContext) -> list[Finding]:
    """One warning listing the deprecated shims the libraries import, if any."""
    table = context.shim_table()
    users: dict[str, list[str]] = {}
    for lib in package.libraries:
        for shim in table.deprecated_in(lib.torch.stable_shims):
            users.setdefault(shim.name, []).append(lib.name)
    if not users:
        return []
    shims = sorted(users)
    replacements = {
        name: replacement
        for name in shims
        if (replacement := table.shims[name].replacement) is not None
    }
    described = [
        f"{name} (use {replacements[name]})" if name in replacements else name for name in shims
    ]
    libraries = sorted({lib for names in users.values() for lib in names})
    evidence: Evidence = {
        "shims": shims,
        "replacements": [f"{name} -> {replacements[name]}" for name in sorted(replacements)],
        "libraries": libraries,
    }
    return [
        finding(
            "deprecated-shim",
            f"imports deprecated stable-ABI shims: {name_list(described)}; a later torch may "
            "remove them",
            evidence,
            libraries=libraries,
        )
    ]


def load_findings(package: PackageFacts, context: RuleContext) -> list[Finding]:
    """``needs-newer-torch`` and ``load-failure`` findings from the libraries' predictions."""
    failed: list[tuple[str, LoadPrediction]] = [
        (lib.name, lib.load) for lib in package.libraries if lib.load is not None and lib.load.fails
    ]
    if not failed:
        return []
    against = failed[0][1].against
    # Only newer shims missing: the library needs a newer torch, nothing else is wrong with it.
    newer = [
        (name, p)
        for name, p in failed
        if p.newer_shims and not (p.missing_libraries or p.removed_shims or p.other_undefined)
    ]
    broken = [(name, p) for name, p in failed if (name, p) not in newer]
    findings = []
    if newer:
        names = [n for n, _ in newer]
        shims = sorted({s for _, p in newer for s in p.newer_shims})
        findings.append(
            finding(
                "needs-newer-torch",
                f"{name_list(names)} need a newer torch than {against}: they "
                f"import {name_list(shims)}",
                {"against": against, "libraries": names, "shims": shims},
                libraries=names,
            )
        )
    if broken:
        names = [n for n, _ in broken]
        findings.append(
            finding(
                "load-failure",
                f"{name_list(names)} will not load with {against}: "
                f"{broken[0][1].message.split(': ', 1)[-1]}",
                {
                    "against": against,
                    "libraries": names,
                    "errors": [f"{n}: {p.message}" for n, p in broken],
                },
                libraries=names,
            )
        )
    return findings


def target_version_findings(package: PackageFacts, context: RuleContext) -> list[Finding]:
    """``above-target-version`` (error), with ``--target-version``: libraries import shims newer
    than the target (``2.10``), the oldest torch the build promises to load on (what
    ``TORCH_TARGET_VERSION`` encodes: major.minor, patch 0). Shims a library only looks up at
    run time (``dlsym``) are optional and never count; shims the table does not know are named
    too (probably newer than it).
    """
    target = context.target_version
    if target is None:
        return []
    from packaging.version import Version

    table = context.shim_table()
    release = Version(target)
    above: dict[str, list[str]] = {}
    unknown: dict[str, list[str]] = {}
    for lib in package.libraries:
        newer = [
            s for s in lib.torch.stable_shims if s in table.shims and table.shims[s].since > release
        ]
        for shim in newer:
            above.setdefault(shim, []).append(lib.name)
        for shim in lib.torch.unknown_shims:
            unknown.setdefault(shim, []).append(lib.name)
    if not above:
        return []
    shims = sorted(above, key=lambda s: (table.shims[s].since, s), reverse=True)
    described = [f"{s} ({table.shims[s].since})" for s in shims]
    libs = sorted({lib for names in above.values() for lib in names})
    verb = "imports" if len(libs) == 1 else "import"
    message = (
        f"{name_list(libs)} {verb} stable-ABI shims newer than the target torch {target}: "
        f"{name_list(described)}"
    )
    if unknown:
        message += f"; also {len(unknown)} shim(s) the table does not know (probably newer)"
    evidence: Evidence = {
        "target": target,
        "libraries": libs,
        "shims": [f"{s}: {table.shims[s].since}" for s in shims],
        "unknown_shims": sorted(unknown),
    }
    return [finding("above-target-version", message, evidence, libraries=libs)]
