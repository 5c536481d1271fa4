"""Does a distribution's packaging metadata tell the truth about its binaries?

Checks the ``Requires-Dist: torch`` entries against what the libraries need, and the wheel tags
against the extension modules inside. Each check is a rule of the one shape
(:mod:`torch_abi_audit.rules.facts`), so the same checks serve wheels and installed
distributions.

Codes (severity):

* ``torch-unpinned-unstable`` (error): libraries use libtorch internals, but the torch requirement
  is missing or admits more than one release: the next torch release breaks it.
* ``torch-floor-missing`` / ``torch-floor-too-low`` (warning): every torch-using library keeps to
  the stable ABI, but the requirement does not rule out the releases that lack its shims.
* ``torch-over-pinned`` (info): stable libraries pinned to one torch release anyway.
* ``abi3-version-specific-extension`` (error): an ``abi3`` wheel ships an extension module built
  for one Python version (its file name says so, or it links ``python311.dll`` /
  ``libpython3.11``).
* ``version-specific-bundled-name`` (info): an ``abi3`` wheel ships a bundled library with a
  version-specific file name (harmless when it is loaded through torch, not imported).
* ``none-abi-uses-capi`` (warning): a ``py3-none`` platform wheel whose extension modules call
  the CPython API.
* ``macos-version-above-tag`` (warning): a Mach-O library (or one slice of it) declares a
  minimum macOS newer than the wheel's ``macosx_X_Y`` tag promises, so pip installs it on
  releases where it cannot load.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch_abi_audit.rules.facts import PackageFacts, RuleContext
from torch_abi_audit.rules.findings import Evidence, Finding, name_list
from torch_abi_audit.rules.registry import finding
from torch_abi_audit.rules.torch_abi import package_minimum_torch

# Version-specific extension suffixes: .cpython-311-x86_64-linux-gnu.so, .cp311-win_amd64.pyd,
# .cpython-313t-darwin.so (PEP 3149 / the interpreters' EXT_SUFFIX values).
_VERSION_SPECIFIC = re.compile(r"\.(?:cpython-3\d+t?|cp3\d+t?|pypy\d+)[-.]", re.IGNORECASE)

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version


# Which architectures a macOS platform tag's binary format covers (as pip and packaging read
# them: packaging.tags._mac_binary_formats), by the Mach-O machine names the readers give.
_MAC_FORMAT_ARCHES = {
    "universal2": ("arm64", "x86_64"),
    "universal": ("i386", "ppc", "ppc64", "x86_64"),
    "intel": ("i386", "x86_64"),
    "fat": ("i386", "ppc"),
    "fat3": ("i386", "ppc", "x86_64"),
    "fat32": ("i386", "ppc"),
    "fat64": ("ppc64", "x86_64"),
}
_MAC_TAG = re.compile(r"macosx_(\d+)_(\d+)_(\w+)")
# arm64 Macs run macOS 11 or later: a slice needing 11.0 is fine under a 10.x universal2 tag.
_ARM64_FIRST_MACOS = (11, 0)


def is_version_specific(filename: str) -> bool:
    """True when a file name carries a Python-version tag (``.cpython-310-…``, ``.cp311-…``)."""
    return _VERSION_SPECIFIC.search(filename) is not None


def _specifier_set(requirements: Sequence[str]) -> SpecifierSet | None:
    """All the requirements' specifiers as one set, or ``None`` if none can be parsed."""
    if not requirements:
        return None
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        joined = ",".join(str(Requirement(text).specifier) for text in requirements if text)
        return SpecifierSet(joined)
    except (InvalidRequirement, InvalidSpecifier):
        return None


def _version_or_none(text: str) -> Version | None:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(text.rstrip(".*"))
    except InvalidVersion:
        return None


def pinned_release(requirements: Sequence[str]) -> str | None:
    """The ``X.Y`` release the requirements pin torch to, or ``None`` if they admit more.

    ``==2.9.1``, ``==2.9.*``, ``~=2.9.1`` and ``>=2.9.1,<2.10`` all pin 2.9; ``>=2.9`` and
    ``~=2.9`` do not. Decided by probing versions just inside and outside each named release.
    """
    spec = _specifier_set(requirements)
    if spec is None:
        return None
    from packaging.version import Version

    named = [version for item in spec if (version := _version_or_none(item.version)) is not None]
    releases = {(version.major, version.minor) for version in named}
    for major, minor in sorted(releases):
        # The versions the requirements name are probed too: ==2.2.2 admits none of x.y.0/1/9/99.
        inside = [Version(f"{major}.{minor}.{patch}") for patch in (0, 1, 9, 99)]
        inside += [v for v in named if (v.major, v.minor) == (major, minor)]
        outside = [
            Version("0.0.1"),
            Version(f"{major}.{minor + 1}.0"),
            Version(f"{major + 1}.0.0"),
            Version("9999.0"),
        ]
        if minor > 0:
            outside.append(Version(f"{major}.{minor - 1}.99"))
        if any(spec.contains(v, prereleases=True) for v in inside) and not any(
            spec.contains(v, prereleases=True) for v in outside
        ):
            return f"{major}.{minor}"
    return None


def declared_floor(requirements: Sequence[str]) -> str | None:
    """The lowest torch version the requirements admit, as far as a lower bound says."""
    spec = _specifier_set(requirements)
    if spec is None:
        return None
    floors = [
        version
        for item in spec
        if item.operator in (">=", ">", "==", "~=", "===")
        and (version := _version_or_none(item.version)) is not None
    ]
    return str(max(floors)) if floors else None


def _declares(requirements: Sequence[str]) -> str:
    if not requirements:
        return "declares no torch requirement"
    return f"declares {'; '.join(requirements)}"


def invalid_requirement_findings(package: PackageFacts, context: RuleContext) -> list[Finding]:
    """``Requires-Dist`` entries naming torch that are not valid requirements (PEP 508): pip
    refuses to install such a distribution, other tools drop the entry; either way the torch
    requirement it meant to state is not there (and :func:`torch_requirement_findings` reads
    none)."""
    if not package.invalid_requirements:
        return []
    invalid = package.invalid_requirements
    quoted = "; ".join(f"Requires-Dist: {text}" for text in invalid)
    return [
        finding(
            "torch-requirement-invalid",
            f"declares {quoted}, which is not a valid requirement (PEP 508): installers reject "
            "or ignore it, so no torch requirement is in effect",
            {"requirements": list(invalid)},
        )
    ]


def torch_requirement_findings(package: PackageFacts, context: RuleContext) -> list[Finding]:
    """Check ``Requires-Dist: torch`` against what the libraries need from torch."""
    requirements = package.requirements
    if requirements is None or package.is_torch:
        return []
    using = [lib for lib in package.libraries if lib.torch.uses_torch]
    if not using:
        return []
    from packaging.version import Version

    unstable = [lib.name for lib in using if not lib.torch.stable]
    pinned = pinned_release(requirements)
    declared = list(requirements)
    if unstable:
        if pinned is None:
            admits = "" if not requirements else ", which admits more than one torch release"
            return [
                finding(
                    "torch-unpinned-unstable",
                    f"uses libtorch internals but {_declares(requirements)}{admits}: the next "
                    "torch release will break it (pin the release it was built for, "
                    "torch==X.Y.*)",
                    {"requirements": declared, "unstable_libraries": unstable},
                )
            ]
        return []
    floor = package_minimum_torch(lib.torch for lib in using)
    if floor is None:
        return []
    defining = sorted(
        {
            s
            for lib in using
            if lib.torch.min_torch_version == floor
            for s in lib.torch.min_torch_symbols
        }
    )
    evidence: Evidence = {
        "requirements": declared,
        "needs": floor,
        "set_by": defining[:10],
    }
    if pinned is not None:
        return [
            finding(
                "torch-over-pinned",
                f"keeps to the stable ABI yet pins torch {pinned}: the ABI allows torch>={floor}",
                evidence,
            )
        ]
    lower = declared_floor(requirements)
    if not requirements or lower is None:
        return [
            finding(
                "torch-floor-missing",
                f"needs torch>={floor} (it imports {', '.join(defining[:2])}) but "
                f"{_declares(requirements)}: declare Requires-Dist: torch>={floor}",
                evidence,
            )
        ]
    if Version(lower) < Version(floor):
        return [
            finding(
                "torch-floor-too-low",
                f"needs torch>={floor} (it imports {', '.join(defining[:2])}) but "
                f"{_declares(requirements)}, which admits torch {lower}: declare torch>={floor}",
                {**evidence, "declared_floor": lower},
            )
        ]
    return []


def tag_findings(package: PackageFacts, context: RuleContext) -> list[Finding]:
    """Check a wheel's ABI tags against the extension modules and libraries inside it."""
    tags, libraries = package.tags, package.libraries
    parsed = [parts for tag in tags if len(parts := tag.split("-")) == 3]
    if not parsed:
        return []
    abis = {abi for _python, abi, _platform in parsed}
    platforms = {platform for _python, _abi, platform in parsed}
    findings = []
    if "abi3" in abis:
        bad = [
            lib
            for lib in libraries
            if lib.is_extension
            and (is_version_specific(lib.name) or lib.cpython.python_version is not None)
        ]
        if bad:
            linked = sorted(
                {lib.cpython.python_library for lib in bad if lib.cpython.python_library}
            )
            how = f", linked to {', '.join(linked)}" if linked else ""
            names = [lib.name for lib in bad]
            findings.append(
                finding(
                    "abi3-version-specific-extension",
                    "tagged abi3 but ships extension modules built for one Python version "
                    f"({', '.join(names[:3])}{how}): they fail to import on other Pythons",
                    {"tags": sorted(tags), "libraries": names, "python_libraries": linked},
                    libraries=names,
                )
            )
        named = [
            lib.name for lib in libraries if not lib.is_extension and is_version_specific(lib.name)
        ]
        if named:
            findings.append(
                finding(
                    "version-specific-bundled-name",
                    f"tagged abi3; {', '.join(named[:3])}: Python-version file name, but not "
                    "an extension module (no PyInit_ export: a library loaded through torch, "
                    "not an imported module)",
                    {"tags": sorted(tags), "libraries": named},
                    libraries=named,
                )
            )
    if abis == {"none"} and platforms != {"any"}:
        capi = [lib.name for lib in libraries if lib.is_extension and lib.cpython.capi_symbol_count]
        if capi:
            findings.append(
                finding(
                    "none-abi-uses-capi",
                    "tagged ABI 'none' but its extension modules call the CPython API "
                    f"({', '.join(capi[:3])}): the tag promises no Python ABI dependency",
                    {"tags": sorted(tags), "libraries": capi},
                    libraries=capi,
                )
            )
    return findings


def _mac_version(text: str) -> tuple[int, int]:
    parts = [int(p) for p in re.findall(r"\d+", text)[:2]]
    return (parts[0], parts[1] if len(parts) > 1 else 0) if parts else (0, 0)


def macos_tag_findings(package: PackageFacts, context: RuleContext) -> list[Finding]:
    """Libraries (or slices) that need a newer macOS than the wheel's tags let pip install on."""
    tags, libraries = package.tags, package.libraries
    promised: dict[str, tuple[int, int]] = {}  # architecture -> oldest macOS a tag admits
    for tag in tags:
        match = _MAC_TAG.search(tag)
        if match is None:
            continue
        version = (int(match.group(1)), int(match.group(2)))
        for arch in _MAC_FORMAT_ARCHES.get(match.group(3), (match.group(3),)):
            floor = max(version, _ARM64_FIRST_MACOS) if arch == "arm64" else version
            promised[arch] = min(promised.get(arch, floor), floor)
    if not promised:
        return []
    late = [
        (lib.name, arch, min_os, promised[arch])
        for lib in libraries
        for arch, min_os in lib.os_floors
        if arch in promised and _mac_version(min_os) > promised[arch]
    ]
    if not late:
        return []
    newest = max(late, key=lambda item: _mac_version(item[2]))
    shown = name_list([f"{name} ({arch}) needs {min_os}" for name, arch, min_os, _ in late])
    tag_version = "{}.{}".format(*newest[3])
    return [
        finding(
            "macos-version-above-tag",
            f"its tags let pip install it on macOS {tag_version}, but {shown}: it cannot "
            f"load there (raise the tag to macosx_{newest[2].replace('.', '_')})",
            {
                "tags": sorted(tags),
                "libraries": [f"{name} ({arch}): {min_os}" for name, arch, min_os, _ in late],
            },
            libraries=dict.fromkeys(name for name, _, _, _ in late),
        )
    ]
