"""Load prediction against a release (``--torch-version 2.13``, ``2.14+cu126``, ``2.13+cpu``).

A release is known from the stable-ABI table (its shims) and the release-exports data (per
platform, the index's default build: what its libtorch libraries export, which libraries it
installs, its CUDA major). A library is judged against the build of its own platform
(:func:`~torch_abi_audit.rules.release_exports.library_platform`): Linux x86_64, macOS arm64 or
Windows x64.

A variant other than the index's default is a build the data did not read. What it provides is
still known where the data says it: a ``+cpu`` build has none of torch's CUDA libraries and no
CUDA runtime; a ``+cuXY`` build installs the CUDA runtime sonames the data's builds of that CUDA
major need (``libcudart.so.12``, ``libcufft.so.11``…). Its exports are not known: unstable
libraries judged against it are ``unknown`` unless a needed library already decides.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from packaging.version import InvalidVersion, Version

from torch_abi_audit.library_search import Resolution
from torch_abi_audit.report import ExtensionReport
from torch_abi_audit.rules.load_prediction import ReleaseBuildView
from torch_abi_audit.rules.release_exports import (
    ReleaseBuild,
    ReleaseExports,
    ReleaseExportsError,
    library_platform,
    load_release_exports,
    soname_family,
)
from torch_abi_audit.rules.torch_abi import TorchAnalysis, is_torch_library
from torch_abi_audit.rules.torch_table import TorchAbiTable
from torch_abi_audit.sources.torch_install import LoadTargetError

_CUDA_VARIANT = re.compile(r"cu(\d{2,3})")
# torch's own libraries that only CUDA builds ship (libtorch_cuda.so, c10_cuda.dll,
# libtorch_cuda_linalg.so, libtorch_nvshmem.so).
_TORCH_CUDA_LIBRARY = re.compile(r"(?i)(?:lib)?(?:torch|c10)_(?:cuda|nvshmem)\w*\..*")
# Shim device tiers and the builds that have them.
_MACOS_ONLY = "mps"


@dataclass(frozen=True)
class RequestedRelease:
    """A release as ``--torch-version`` names it: ``release`` from the table, ``variant`` the
    local label asked for (``cpu``, ``cu126``; ``None``: the index's default build) and
    ``cuda_major`` that variant's CUDA major."""

    release: Version
    variant: str | None = None
    cuda_major: int | None = None


def parse_requested(text: str, table: TorchAbiTable) -> RequestedRelease:
    """``2.14`` (its newest patch release), ``2.14.1``, ``2.14+cu126``, ``2.13.0+cpu``.

    Raises :class:`LoadTargetError` for text that is not a version, a variant other than
    ``cpu``/``cuXY``, or a release the table does not know (naming the ones it knows).
    """
    try:
        version = Version(text)
    except InvalidVersion as exc:
        raise LoadTargetError(f"--torch-version {text}: not a torch version") from exc
    variant = version.local
    cuda_major: int | None = None
    if variant is not None and variant != "cpu":
        match = _CUDA_VARIANT.fullmatch(variant)
        if match is None:
            raise LoadTargetError(
                f"--torch-version {text}: unknown build variant +{variant} (use +cpu or +cuXY, "
                "e.g. +cu126)"
            )
        cuda_major = int(match.group(1)[:-1])
    release = table.resolve_release(version.public)
    if str(release) not in table.releases:
        known = ", ".join(table.releases)
        newer = " (newer than the table: regenerate it to judge that release)"
        hint = newer if release > Version(table.releases[-1]) else ""
        raise LoadTargetError(
            f"--torch-version {text}: torch {release} is not a release the tables know{hint}; "
            f"known releases: {known}"
        )
    return RequestedRelease(release, variant, cuda_major)


@cache
def _release_data() -> ReleaseExports | None:
    try:
        return load_release_exports()
    except ReleaseExportsError:
        return None


def reference_cuda_major(requested: RequestedRelease) -> int | None:
    """The CUDA major of the requested build on Linux x86_64: the variant's, else the default
    build's (``None`` for ``+cpu`` or when the data has no Linux build of the release)."""
    if requested.variant is not None:
        return requested.cuda_major
    data = _release_data()
    build = data.build("linux_x86_64", requested.release) if data else None
    return build.cuda_major if build else None


@dataclass(frozen=True)
class BuildProvision:
    """What the build a library is judged against installs, as far as the data knows it.

    ``platform`` is the data's platform of the library (``None``: the data holds none for it,
    then nothing is known); ``label`` names the build; ``torch_libraries`` are torch's library
    files it installs (``None``: not known, a CUDA variant of a CPU default); ``cuda_runtime``
    the CUDA runtime sonames its requirements install, ``cuda_families`` their families;
    ``build`` the build whose exports hold, if the data read it (else ``reason`` says why not).
    """

    platform: str | None
    label: str | None
    torch_libraries: frozenset[str] | None
    cuda_runtime: frozenset[str] = frozenset()
    cuda_families: frozenset[str] = frozenset()
    has_cuda: bool = False
    build: ReleaseBuild | None = None
    reason: str | None = None

    @property
    def preloaded(self) -> frozenset[str]:
        """The file names the loader finds already loaded with this build: torch's libraries
        (``import torch`` loaded them) and the CUDA runtime it depends on."""
        return (self.torch_libraries or frozenset()) | self.cuda_runtime


def _lower(names: frozenset[str]) -> frozenset[str]:
    return frozenset(n.lower() for n in names)


def _provision(data: ReleaseExports, platform: str, requested: RequestedRelease) -> BuildProvision:
    build = data.build(platform, requested.release)
    if build is None:
        return BuildProvision(
            platform,
            f"torch {requested.release} ({platform})",
            None,
            reason=f"the data holds no {platform} build of torch {requested.release}",
        )
    variant = requested.variant
    if variant is None or variant == build.variant or (variant == "cpu" and not build.cuda_major):
        return BuildProvision(
            platform,
            build.label,
            frozenset(build.libraries),
            frozenset(build.cuda_runtime),
            build.cuda_families,
            build.cuda_major is not None,
            build,
        )
    label = f"torch {requested.release}+{variant} ({platform})"
    reason = (
        f"the data holds the index's default build {build.label}, not a +{variant} one, and "
        "the exports of two builds of a release may differ"
    )
    if variant == "cpu":
        cpu_libraries = {n for n in build.libraries if not _TORCH_CUDA_LIBRARY.fullmatch(n)}
        return BuildProvision(platform, label, frozenset(cpu_libraries), reason=reason)
    if platform == "macos_arm64":
        return BuildProvision(platform, label, None, reason="no CUDA on macOS")
    same_major = [b for b in data.builds if b.platform == platform and b.cuda_major]
    same_major = [b for b in same_major if b.cuda_major == requested.cuda_major]
    runtime = frozenset(n for b in same_major for n in b.cuda_runtime)
    return BuildProvision(
        platform,
        label,
        frozenset(build.libraries) if build.cuda_major else None,
        runtime,
        frozenset(soname_family(n) for n in runtime),
        True,
        reason=reason,
    )


def release_provision(lib: ExtensionReport, requested: RequestedRelease) -> BuildProvision:
    """What the build of ``requested`` for ``lib``'s platform installs (see
    :class:`BuildProvision`)."""
    data = _release_data()
    platform = library_platform(lib.format, lib.machine)
    if data is None or platform is None:
        where = f"{lib.format or 'unknown'} {lib.machine or ''}".strip()
        return BuildProvision(
            None, None, None, reason=f"the data holds no build for {where} libraries"
        )
    return _provision(data, platform, requested)


def _placement(name: str, provision: BuildProvision) -> bool | None:
    """Does the build provide the needed ``name``? ``None`` when the data cannot tell."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if is_torch_library(base):
        if provision.torch_libraries is None:
            return None
        return base.lower() in _lower(provision.torch_libraries)
    if base.lower() in _lower(provision.cuda_runtime):
        return True
    if not provision.has_cuda or soname_family(base) in provision.cuda_families:
        return False  # no CUDA at all, or that library in another version (CUDA major)
    return None


def build_view(
    provision: BuildProvision,
    torch: TorchAnalysis,
    missing: Sequence[Resolution],
    missing_optional: Sequence[Resolution],
    library_name: str,
) -> ReleaseBuildView:
    """What the data says of the build a library is judged against (see
    :class:`ReleaseBuildView`).

    ``missing`` / ``missing_optional`` are the torch and CUDA libraries the library needs (and
    needs only weakly: weak-linked dylibs, delay-loaded DLLs) that the loader would not find
    among its package's files nor in ``provision.preloaded``; each is placed: the build lacks
    it, or the data cannot tell. ``library_name`` names the library in the loader's messages;
    ``torch`` is the analysis judged (a universal library's arm64 slice's). The build's exports
    are read only when the library needs more of libtorch than shims.
    """
    if provision.platform is None:
        return ReleaseBuildView(unknown_reason=provision.reason)
    failed: list[str] = []
    undecided: list[str] = []
    for resolution in missing:
        placed = _placement(resolution.needed, provision)
        if placed is False:
            failed.append(resolution.error_message(library_name))
        elif placed is None:
            undecided.append(resolution.needed)
    optional = [r.needed for r in missing_optional if _placement(r.needed, provision) is False]
    exports = None
    cxx11_abi = None
    data = _release_data()
    if data is not None and provision.build is not None and torch.uses_torch and not torch.stable:
        exports = data.exports(provision.build)  # read only for unstable libraries
        cxx11_abi = data.cxx11_abi(provision.build)
    no_devices = {"xpu"}
    if not provision.has_cuda:
        no_devices.add("cuda")
    if provision.platform != "macos_arm64":
        no_devices.add(_MACOS_ONLY)
    return ReleaseBuildView(
        label=provision.label,
        exports=exports,
        unknown_reason=provision.reason,
        missing_libraries=tuple(failed),
        missing_optional_libraries=tuple(optional),
        undecided_libraries=tuple(undecided),
        no_devices=frozenset(no_devices) if provision.torch_libraries is not None else frozenset(),
        cxx11_abi=cxx11_abi,
    )
