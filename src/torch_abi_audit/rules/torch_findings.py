"""Findings about a package's use of torch that the verdict labels do not carry.

* ``deprecated-shim`` (warning): libraries import shims the headers mark ``[[deprecated]]``;
  the finding names them and, where the headers say, their replacements.
* ``needs-newer-torch`` (error): a stable library imports shims the target torch (a release
  given with ``--torch-version``, or the installed torch) does not have yet.
* ``above-target-version`` (error): with ``--target-version X.Y``, libraries import shims newer
  than the oldest torch the build promises (dlsym look-ups excepted); it fails ``--check torch``.
* ``load-failure`` (error): a library is predicted not to load on the target torch — a needed
  libtorch or CUDA library the loader would not find, a libtorch symbol the installation does
  not export, a shim it removed.

Inputs are plain facts (per-library names, analyses, predictions), so the same checks serve
wheels, directories and installed environments.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch_abi_audit.rules.findings import Evidence, Finding, Severity
from torch_abi_audit.rules.load_prediction import LoadPrediction
from torch_abi_audit.rules.torch_abi import TorchAnalysis
from torch_abi_audit.rules.torch_table import TorchAbiTable

#: How many libraries a message names before "and N more".
NAMED = 3


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:NAMED])
    return shown + (f" and {len(items) - NAMED} more" if len(items) > NAMED else "")


def deprecated_shim_findings(
    libraries: Sequence[tuple[str, TorchAnalysis]], table: TorchAbiTable
) -> list[Finding]:
    """One warning listing the deprecated shims the libraries import, if any."""
    users: dict[str, list[str]] = {}
    for name, torch in libraries:
        for shim in table.deprecated_in(torch.stable_shims):
            users.setdefault(shim.name, []).append(name)
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
    evidence: Evidence = {
        "shims": shims,
        "replacements": [f"{name} -> {replacements[name]}" for name in sorted(replacements)],
        "libraries": sorted({lib for names in users.values() for lib in names}),
    }
    return [
        Finding(
            "deprecated-shim",
            Severity.WARNING,
            f"imports deprecated stable-ABI shims: {_names(described)}; a later torch may "
            "remove them",
            evidence,
        )
    ]


def load_findings(predictions: Sequence[tuple[str, LoadPrediction]]) -> list[Finding]:
    """``needs-newer-torch`` and ``load-failure`` findings from per-library predictions."""
    failed = [(name, p) for name, p in predictions if p.fails]
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
        shims = sorted({s for _, p in newer for s in p.newer_shims})
        findings.append(
            Finding(
                "needs-newer-torch",
                Severity.ERROR,
                f"{_names([n for n, _ in newer])} need a newer torch than {against}: they "
                f"import {_names(shims)}",
                {"against": against, "libraries": [n for n, _ in newer], "shims": shims},
            )
        )
    if broken:
        findings.append(
            Finding(
                "load-failure",
                Severity.ERROR,
                f"{_names([n for n, _ in broken])} will not load with {against}: "
                f"{broken[0][1].message.split(': ', 1)[-1]}",
                {
                    "against": against,
                    "libraries": [n for n, _ in broken],
                    "errors": [f"{n}: {p.message}" for n, p in broken],
                },
            )
        )
    return findings


def target_version_findings(
    libraries: Sequence[tuple[str, TorchAnalysis]], table: TorchAbiTable, target: str
) -> list[Finding]:
    """``above-target-version`` (error): libraries import shims newer than ``target`` (``2.10``),
    the oldest torch the build promises to load on (what ``TORCH_TARGET_VERSION`` encodes:
    major.minor, patch 0). Shims a library only looks up at run time (``dlsym``) are optional
    and never count; shims the table does not know are named too (probably newer than it).
    """
    from packaging.version import Version

    release = Version(target)
    above: dict[str, list[str]] = {}
    unknown: dict[str, list[str]] = {}
    for name, torch in libraries:
        newer = [
            s for s in torch.stable_shims if s in table.shims and table.shims[s].since > release
        ]
        for shim in newer:
            above.setdefault(shim, []).append(name)
        for shim in torch.unknown_shims:
            unknown.setdefault(shim, []).append(name)
    if not above:
        return []
    shims = sorted(above, key=lambda s: (table.shims[s].since, s), reverse=True)
    described = [f"{s} ({table.shims[s].since})" for s in shims]
    libs = sorted({lib for names in above.values() for lib in names})
    verb = "imports" if len(libs) == 1 else "import"
    message = (
        f"{_names(libs)} {verb} stable-ABI shims newer than the target torch {target}: "
        f"{_names(described)}"
    )
    if unknown:
        message += f"; also {len(unknown)} shim(s) the table does not know (probably newer)"
    evidence: Evidence = {
        "target": target,
        "libraries": libs,
        "shims": [f"{s}: {table.shims[s].since}" for s in shims],
        "unknown_shims": sorted(unknown),
    }
    return [Finding("above-target-version", Severity.ERROR, message, evidence)]
