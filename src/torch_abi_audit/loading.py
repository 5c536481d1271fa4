"""Load prediction for audited packages: which torch to predict against, and what it says.

After the libraries are read and judged, each package's reports get a :class:`LoadPrediction`
per library that concerns torch, and the ``load-failure`` / ``needs-newer-torch`` findings.

The torch comes from ``--torch PATH`` (an installation directory or a wheel), from
``--torch-version X.Y[+variant]`` (a release known from the tables,
:mod:`torch_abi_audit.release_loading`), or — by default for
environment scans and import names — from the site-packages being scanned. Against an
installation, each library's torch-family and CUDA-runtime needed libraries are looked up the
way the loader would (:mod:`torch_abi_audit.library_search`) and its torch-owned imports
are resolved against the installation's exports; against a release, against what the release
data says of the default build of the library's platform.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from packaging.version import InvalidVersion, Version

from torch_abi_audit.checks import is_torch_itself
from torch_abi_audit.library_search import (
    LoadContext,
    WheelNamespace,
    is_cuda_runtime,
    resolve_needed,
    site_packages_context,
)
from torch_abi_audit.model import BinaryFormat, Library
from torch_abi_audit.release_loading import (
    RequestedRelease,
    build_view,
    parse_requested,
    reference_cuda_major,
)
from torch_abi_audit.report import ExtensionReport, PackageReport, TorchReference
from torch_abi_audit.rules.load_prediction import (
    LoadPrediction,
    predict_against_install,
    predict_against_release,
)
from torch_abi_audit.rules.torch_abi import TorchAnalysis, is_torch_library
from torch_abi_audit.rules.torch_findings import load_findings
from torch_abi_audit.rules.torch_table import TorchAbiTable, load_table
from torch_abi_audit.sources.torch_install import (
    LoadTargetError,
    TorchInstall,
    TorchInstallError,
    find_torch,
    load_torch_install,
)
from torch_abi_audit.sources.wheels import WheelArchive, WheelError


@dataclass(frozen=True)
class LoadTarget:
    """The torch loading is predicted against: an installation, or a release of the tables
    (``requested``: the release and the build variant asked for)."""

    reference: TorchReference
    install: TorchInstall | None = None
    release: Version | None = None
    requested: RequestedRelease | None = None


def _release_of(version: str | None) -> Version | None:
    if not version:
        return None
    try:
        return Version(Version(version).base_version)
    except InvalidVersion:
        return None


def install_target(path: Path, origin: str) -> LoadTarget:
    """The installation at ``path`` (a torch directory, a site-packages or a wheel).

    Raises :class:`LoadTargetError` when it holds no readable torch.
    """
    try:
        install = load_torch_install(path.absolute())
    except (TorchInstallError, OSError) as exc:
        raise LoadTargetError(str(exc)) from exc
    reference = TorchReference(install.label, install.version, install.root, origin)
    return LoadTarget(reference, install, _release_of(install.version))


def release_target(text: str, table: TorchAbiTable | None = None) -> LoadTarget:
    """A release given as ``X.Y`` or ``X.Y.Z`` (``X.Y`` means its newest known patch release),
    optionally with a build variant (``2.14+cu126``, ``2.13+cpu``).

    Raises :class:`LoadTargetError` for anything that is not a version, an unknown variant, or
    a release the tables do not know (the message names the known ones).
    """
    requested = parse_requested(text, table or load_table())
    version = str(requested.release)
    if requested.variant:
        version += f"+{requested.variant}"
    reference = TorchReference(
        f"torch {text}",
        version,
        None,
        "--torch-version",
        variant=requested.variant,
        cuda_major=reference_cuda_major(requested),
    )
    return LoadTarget(reference, release=requested.release, requested=requested)


def environment_target(directories: Sequence[Path]) -> LoadTarget | None:
    """The torch installed in the first of ``directories`` that has one, if any is readable."""
    for directory in directories:
        found = find_torch(directory)
        if found is None:
            continue
        try:
            return install_target(found, "environment")
        except LoadTargetError:
            return None
    return None


def _library_of(lib: ExtensionReport, location: PurePosixPath) -> Library:
    """The parts of a library the loader's search needs, rebuilt from its report."""
    return Library(
        path=Path(str(location)),
        format=BinaryFormat(lib.format or BinaryFormat.ELF),
        machine=lib.machine or "",
        bits=64,
        byte_order="little",
        needed=lib.needed,
        soname=lib.soname,
        rpath=lib.rpath,
        runpath=lib.runpath,
    )


def _loader_dependency(name: str) -> bool:
    return is_torch_library(name) or is_cuda_runtime(name)


def _concerns_torch(lib: ExtensionReport) -> bool:
    return lib.torch.uses_torch or any(_loader_dependency(n) for n in lib.needed)


class _Contexts:
    """The loader's search context for each package (a wheel's member list is read once).

    Against a release there is no installation: nothing is preloaded and the system is not
    searched (the question is the release's, not this machine's).
    """

    def __init__(self, install: TorchInstall | None) -> None:
        self.install = install
        self._wheels: dict[Path, WheelNamespace] = {}

    def _torch_dir(self) -> Path | None:
        if self.install is None:
            return None
        return self.install.root if self.install.root.is_dir() else None

    def for_library(
        self, package: PackageReport, lib: ExtensionReport, fmt: BinaryFormat
    ) -> tuple[LoadContext, PurePosixPath]:
        """The context, and where the library lies in that context's namespace."""
        preloaded = frozenset(self.install.lib_files) if self.install else frozenset()
        if package.wheel is not None:
            namespace = self._wheels.get(package.wheel.path)
            if namespace is None:
                try:
                    with WheelArchive(package.wheel.path) as archive:
                        namespace = WheelNamespace(archive.member_names())
                except WheelError:
                    namespace = WheelNamespace(())
                self._wheels[package.wheel.path] = namespace
            # Installed from a wheel, the package meets the torch the prediction is against.
            context = LoadContext(fmt, preloaded, (), (), namespace)
            return context, namespace.path(lib.path.relative_to(package.root).as_posix())
        torch_dir = self._torch_dir()
        site = torch_dir.parent if torch_dir is not None else _site_of(package.root)
        base = site_packages_context(site, torch_dir, fmt)
        if self.install is None:
            base = replace(base, extra_dirs=(), system_dirs=())
        context = replace(base, preloaded=base.preloaded | preloaded)
        return context, PurePosixPath(lib.path.as_posix())


def _site_of(root: Path) -> Path:
    """The directory a package root lies in: where its neighbours (``nvidia/``…) would be."""
    return root.parent if root.is_dir() else root.parent.parent


def _predict_install(
    package: PackageReport, target: LoadTarget, contexts: _Contexts
) -> list[ExtensionReport]:
    install = target.install
    assert install is not None and contexts.install is install
    table = load_table()
    updated = []
    for lib in package.libraries:
        if lib.error or lib.skipped or lib.format is None or not _concerns_torch(lib):
            updated.append(lib)
            continue
        if install.formats and lib.format not in install.formats:
            updated.append(lib)  # a macOS build next to a Linux torch: nothing to predict
            continue
        fmt = BinaryFormat(lib.format)
        context, location = contexts.for_library(package, lib, fmt)
        resolutions = resolve_needed(
            _library_of(lib, location), location, context, only=_loader_dependency
        )
        missing = [r.error_message(lib.path.name) for r in resolutions if r.missing]
        prediction = predict_against_install(
            lib.torch,
            target.reference.label,
            install.exports,
            missing_libraries=missing,
            binary_format=lib.format,
            table=table,
            release=target.release,
        )
        updated.append(replace(lib, load=prediction))
    return updated


def _release_torch(lib: ExtensionReport) -> TorchAnalysis:
    """The analysis a release build judges: a universal library's arm64 slice's (the only
    macOS architecture torch builds since 2.9), else the library's own."""
    arm64 = [s.torch for s in lib.slices if s.machine == "arm64"]
    return arm64[0] if arm64 else lib.torch


def _predict_release(
    package: PackageReport, target: LoadTarget, contexts: _Contexts
) -> list[ExtensionReport]:
    assert target.release is not None and target.requested is not None
    table = load_table()
    updated = []
    for lib in package.libraries:
        if lib.error or lib.skipped or lib.format is None or not _concerns_torch(lib):
            updated.append(lib)
            continue
        fmt = BinaryFormat(lib.format)
        context, location = contexts.for_library(package, lib, fmt)
        torch = _release_torch(lib)
        view = build_view(lib, _library_of(lib, location), torch, target.requested, context)
        prediction = predict_against_release(
            torch,
            table,
            target.release,
            target.reference.label,
            view,
            binary_format=lib.format,
        )
        updated.append(replace(lib, load=prediction) if prediction is not None else lib)
    return updated


def apply_load_target(packages: Sequence[PackageReport], target: LoadTarget) -> list[PackageReport]:
    """The packages with a load prediction per library and the load findings added.

    torch itself is left alone: it is what the others load against.
    """
    contexts = _Contexts(target.install)
    result = []
    for package in packages:
        if package.unavailable or is_torch_itself(package):
            result.append(replace(package, torch_reference=target.reference))
            continue
        if target.install is not None:
            libraries = _predict_install(package, target, contexts)
        else:
            libraries = _predict_release(package, target, contexts)
        extensions = tuple(libraries[: len(package.extensions)])
        bundled = tuple(libraries[len(package.extensions) :])
        predictions = [
            (_relative(lib.path, package.root), lib.load)
            for lib in libraries
            if lib.load is not None
        ]
        findings = package.findings + tuple(load_findings(predictions))
        result.append(
            replace(
                package,
                extensions=extensions,
                bundled_libs=bundled,
                findings=findings,
                torch_reference=target.reference,
            )
        )
    return result


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


__all__ = [
    "LoadPrediction",
    "LoadTarget",
    "LoadTargetError",
    "apply_load_target",
    "environment_target",
    "install_target",
    "release_target",
]
