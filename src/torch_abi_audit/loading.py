"""Load prediction for audited packages: which torch to predict against, and what it says.

After the libraries are read and judged, each package's reports get a :class:`LoadPrediction`
per library that concerns torch, and the ``load-failure`` / ``needs-newer-torch`` findings.

The torch comes from ``--torch PATH`` (an installation directory or a wheel), from
``--torch-version X.Y`` (a release known from the stable-ABI table), or — by default for
environment scans and import names — from the site-packages being scanned. Against an
installation, each library's torch-family and CUDA-runtime needed libraries are looked up the
way the loader would (:mod:`torch_abi_audit.library_search`) and its torch-owned imports
are resolved against the installation's exports; against a release only the shim table speaks.
"""

from __future__ import annotations

import os
import posixpath
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
from torch_abi_audit.report import ExtensionReport, PackageReport, TorchReference
from torch_abi_audit.rules.load_prediction import (
    LoadPrediction,
    predict_against_install,
    predict_against_release,
    with_failed_dependencies,
)
from torch_abi_audit.rules.torch_abi import is_torch_library
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
    """The torch loading is predicted against: an installation, or a release of the table."""

    reference: TorchReference
    install: TorchInstall | None = None
    release: Version | None = None


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
    """A release given as ``X.Y`` or ``X.Y.Z`` (``X.Y`` means its newest known patch release).

    Raises :class:`LoadTargetError` for anything that is not a version.
    """
    table = table or load_table()
    try:
        Version(text)
        release = table.resolve_release(text)
    except (InvalidVersion, ValueError) as exc:
        raise LoadTargetError(f"--torch-version {text}: not a torch version") from exc
    reference = TorchReference(f"torch {text}", str(release), None, "--torch-version")
    return LoadTarget(reference, release=release)


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
        optional_needed=lib.optional_needed,
    )


def _loader_dependency(name: str) -> bool:
    return is_torch_library(name) or is_cuda_runtime(name)


def _concerns_torch(lib: ExtensionReport) -> bool:
    return lib.torch.uses_torch or any(_loader_dependency(n) for n in lib.needed)


def _format_of(lib: ExtensionReport) -> BinaryFormat | None:
    """The library's format, or ``None`` when it was not audited (an error, skipped)."""
    if lib.error or lib.skipped or lib.format is None:
        return None
    return BinaryFormat(lib.format)


class _Contexts:
    """The loader's search context for each package (a wheel's member list is read once).

    ``install`` is the torch predicted against; ``None`` for a release, whose libraries are
    not on disk: then nothing counts as loaded already.
    """

    def __init__(self, install: TorchInstall | None) -> None:
        self.install = install
        self._wheels: dict[Path, WheelNamespace] = {}
        self._sites: dict[tuple[Path, Path | None, BinaryFormat], LoadContext] = {}

    def _torch_dir(self) -> Path | None:
        if self.install is None:
            return None
        return self.install.root if self.install.root.is_dir() else None

    def _wheel_namespace(self, wheel: Path) -> WheelNamespace:
        namespace = self._wheels.get(wheel)
        if namespace is None:
            try:
                with WheelArchive(wheel) as archive:
                    namespace = WheelNamespace(archive.member_names())
            except WheelError:
                namespace = WheelNamespace(())
            self._wheels[wheel] = namespace
        return namespace

    def _site_context(self, site: Path, torch_dir: Path | None, fmt: BinaryFormat) -> LoadContext:
        key = (site, torch_dir, fmt)
        if key not in self._sites:
            self._sites[key] = site_packages_context(site, torch_dir, fmt)
        return self._sites[key]

    def for_library(
        self, package: PackageReport, lib: ExtensionReport, fmt: BinaryFormat
    ) -> tuple[LoadContext, PurePosixPath]:
        """The context, and where the library lies in that context's namespace."""
        preloaded = frozenset(self.install.lib_files if self.install is not None else ())
        if package.wheel is not None:
            namespace = self._wheel_namespace(package.wheel.path)
            # Installed from a wheel, the package meets the torch the prediction is against.
            context = LoadContext(fmt, preloaded, (), (), namespace)
            return context, namespace.path(lib.path.relative_to(package.root).as_posix())
        torch_dir = self._torch_dir()
        site = torch_dir.parent if torch_dir is not None else _site_of(package.root)
        base = self._site_context(site, torch_dir, fmt)
        context = replace(base, preloaded=base.preloaded | preloaded)
        return context, PurePosixPath(lib.path.as_posix())


def _site_of(root: Path) -> Path:
    """The directory a package root lies in: where its neighbours (``nvidia/``…) would be."""
    return root.parent if root.is_dir() else root.parent.parent


def _predict_install(
    package: PackageReport, target: LoadTarget, contexts: _Contexts
) -> list[ExtensionReport]:
    install = target.install
    assert install is not None
    table = load_table()
    updated = []
    for lib in package.libraries:
        fmt = _format_of(lib)
        if fmt is None or not _concerns_torch(lib):
            updated.append(lib)
            continue
        if install.formats and fmt not in install.formats:
            updated.append(lib)  # a macOS build next to a Linux torch: nothing to predict
            continue
        context, location = contexts.for_library(package, lib, fmt)
        resolutions = resolve_needed(
            _library_of(lib, location), location, context, only=_loader_dependency
        )
        missing = [r for r in resolutions if r.missing]
        optional = set(lib.optional_needed)
        prediction = predict_against_install(
            lib.torch,
            target.reference.label,
            install.exports,
            missing_libraries=[
                r.error_message(lib.path.name) for r in missing if r.needed not in optional
            ],
            missing_optional_libraries=[r.needed for r in missing if r.needed in optional],
            binary_format=fmt,
            table=table,
            release=target.release,
            torch_cxx11_abi=install.cxx11_abi,
        )
        updated.append(replace(lib, load=prediction))
    return updated


def _predict_release(package: PackageReport, target: LoadTarget) -> list[ExtensionReport]:
    assert target.release is not None
    table = load_table()
    return [
        replace(
            lib,
            load=predict_against_release(lib.torch, table, target.release, target.reference.label),
        )
        if not (lib.error or lib.skipped)
        else lib
        for lib in package.libraries
    ]


def _file_name(name: str, fmt: BinaryFormat) -> str:
    """The file name a needed entry or a path ends in (case-folded where the loader folds)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base.lower() if fmt is BinaryFormat.PE else base


def _same_file(path: PurePosixPath, real: bool) -> str:
    """A key under which two spellings of one file compare equal (symlinks followed on disk)."""
    return os.path.realpath(path) if real else posixpath.normpath(str(path))


def _package_dependencies(
    package: PackageReport, libraries: Sequence[ExtensionReport], contexts: _Contexts
) -> list[list[tuple[int, str]]]:
    """Each library's required needed entries that the loader would find among the package's
    own libraries (its directory, ``.libs``/``.dylibs``…), as ``(index, needed name)``.

    Only entries whose file name is the name or soname of one of the package's libraries are
    looked up, so an environment scan resolves a handful of names per package, not every libc.
    """
    on_disk = package.wheel is None
    by_name: set[str] = set()
    located: dict[str, int] = {}
    contexts_of: dict[int, tuple[LoadContext, PurePosixPath]] = {}
    for k, lib in enumerate(libraries):
        fmt = _format_of(lib)
        if fmt is None:
            continue
        by_name.add(_file_name(lib.path.name, fmt))
        if lib.soname:
            by_name.add(_file_name(lib.soname, fmt))
        context, location = contexts.for_library(package, lib, fmt)
        contexts_of[k] = (context, location)
        located[_same_file(location, on_disk)] = k
    dependencies: list[list[tuple[int, str]]] = [[] for _ in libraries]
    for k, (context, location) in contexts_of.items():
        lib = libraries[k]
        wanted = {
            n
            for n in lib.needed
            if n not in lib.optional_needed and _file_name(n, context.format) in by_name
        }
        if not wanted:
            continue
        for resolution in resolve_needed(
            _library_of(lib, location), location, context, only=wanted.__contains__
        ):
            if resolution.found is None:
                continue
            index = located.get(_same_file(resolution.found, on_disk))
            if index is not None and index != k:
                dependencies[k].append((index, resolution.needed))
    return dependencies


def _with_failed_dependencies(
    package: PackageReport, libraries: list[ExtensionReport], contexts: _Contexts
) -> list[ExtensionReport]:
    """``libraries`` once those needing a library of the package that will not load fail too."""
    if not any(lib.load is not None and lib.load.fails for lib in libraries):
        return libraries
    dependencies = _package_dependencies(package, libraries, contexts)
    paths = [_relative(lib.path, package.root) for lib in libraries]
    predictions = with_failed_dependencies([lib.load for lib in libraries], dependencies, paths)
    return [
        lib if prediction is lib.load else replace(lib, load=prediction)
        for lib, prediction in zip(libraries, predictions, strict=True)
    ]


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
            libraries = _predict_release(package, target)
        libraries = _with_failed_dependencies(package, libraries, contexts)
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
