"""Load prediction for audited packages: which torch to predict against, and what it says.

After the libraries are read and judged, each package's reports get a :class:`LoadPrediction`
per library that concerns torch (the finding rules turn failed predictions into the
``load-failure`` / ``needs-newer-torch`` findings).

The torch comes from ``--torch PATH`` (an installation directory or a wheel), from
``--torch-version X.Y[+variant]`` (a release known from the tables,
:mod:`torch_abi_audit.release_loading`), or — by default for
environment scans and import names — from the site-packages being scanned. Each library's
torch-family and CUDA-runtime needed libraries are looked up the way the loader would
(:mod:`torch_abi_audit.library_search`) — against a release, among what the default build of
the library's platform installs — and its torch-owned imports are resolved against that
installation's or build's exports, by the same rules either way
(:mod:`torch_abi_audit.rules.load_prediction`: weak imports and weak-linked libraries are
optional, the libstdc++ dual ABI is explained). Then a library that needs a library of its
package that will not load fails too.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from packaging.version import InvalidVersion, Version

from torch_abi_audit.library_search import (
    LoadContext,
    Resolution,
    WheelNamespace,
    is_cuda_runtime,
    resolve_needed,
    site_packages_context,
)
from torch_abi_audit.model import BinaryFormat, Library
from torch_abi_audit.paths import relative_or_name
from torch_abi_audit.release_loading import (
    RequestedRelease,
    build_view,
    parse_requested,
    reference_cuda_major,
    release_provision,
)
from torch_abi_audit.report import ExtensionReport, LibraryKind, PackageReport, TorchReference
from torch_abi_audit.rules.load_prediction import (
    LoadPrediction,
    LoadStatus,
    predict_against_install,
    predict_against_release,
    with_failed_dependencies,
)
from torch_abi_audit.rules.torch_abi import TorchAnalysis, is_torch_library
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
        optional_needed=lib.optional_needed,
        executable=lib.kind is LibraryKind.EXECUTABLE,
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
    not on disk: then nothing is preloaded (the release's build says what it installs) and
    neither the system nor the environment is searched (the question is the release's, not
    this machine's). An executable is not imported after ``import torch``: it starts alone,
    with nothing loaded and no added DLL directories, and finds libtorch through its own search
    path (in a wheel's namespace, torch's libraries lie where installing torch puts them,
    ``torch/lib/``).
    """

    def __init__(self, install: TorchInstall | None) -> None:
        self.install = install
        self._wheels: dict[tuple[Path, bool], WheelNamespace] = {}
        self._sites: dict[tuple[Path, Path | None, BinaryFormat], LoadContext] = {}

    def _torch_dir(self) -> Path | None:
        if self.install is None:
            return None
        return self.install.root if self.install.root.is_dir() else None

    def _wheel_namespace(self, wheel: Path, *, with_torch: bool = False) -> WheelNamespace:
        """The wheel's members as installed; ``with_torch`` adds torch's ``torch/lib`` files."""
        namespace = self._wheels.get((wheel, with_torch))
        if namespace is None:
            try:
                with WheelArchive(wheel) as archive:
                    members = archive.member_names()
            except WheelError:
                members = []
            if with_torch and self.install is not None:
                members += [f"torch/lib/{name}" for name in self.install.lib_files]
            namespace = WheelNamespace(members)
            self._wheels[(wheel, with_torch)] = namespace
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
        program = lib.kind is LibraryKind.EXECUTABLE
        preloaded = frozenset(self.install.lib_files if self.install is not None else ())
        if program:
            preloaded = frozenset()
        if package.wheel is not None:
            namespace = self._wheel_namespace(package.wheel.path, with_torch=program)
            # Installed from a wheel, the package meets the torch the prediction is against.
            context = LoadContext(fmt, preloaded, (), (), namespace)
            return context, namespace.path(lib.path.relative_to(package.root).as_posix())
        torch_dir = self._torch_dir()
        site = torch_dir.parent if torch_dir is not None else _site_of(package.root)
        base = self._site_context(site, torch_dir, fmt)
        if self.install is None:
            base = replace(base, extra_dirs=(), system_dirs=())
        if program:
            context = replace(base, preloaded=frozenset(), extra_dirs=())
        else:
            context = replace(base, preloaded=base.preloaded | preloaded)
        return context, PurePosixPath(lib.path.as_posix())


def _site_of(root: Path) -> Path:
    """The directory a package root lies in: where its neighbours (``nvidia/``…) would be."""
    return root.parent if root.is_dir() else root.parent.parent


def _missing_needed(
    lib: ExtensionReport, context: LoadContext, location: PurePosixPath
) -> tuple[list[Resolution], list[Resolution]]:
    """The torch and CUDA libraries ``lib`` needs that the loader would not find in
    ``context``: ``(required, optional)``, optional being its weak-linked dylibs and
    delay-loaded DLLs, which do not stop the load."""
    optional = set(lib.optional_needed)
    required: list[Resolution] = []
    weak: list[Resolution] = []
    for resolution in resolve_needed(
        _library_of(lib, location), location, context, only=_loader_dependency
    ):
        if resolution.missing:
            (weak if resolution.needed in optional else required).append(resolution)
    return required, weak


def _release_torch(lib: ExtensionReport) -> TorchAnalysis:
    """The analysis a release build judges: a universal library's arm64 slice's (the only
    macOS architecture torch builds since 2.9), else the library's own."""
    arm64 = [s.torch for s in lib.slices if s.machine == "arm64"]
    return arm64[0] if arm64 else lib.torch


def _prediction(
    lib: ExtensionReport,
    fmt: BinaryFormat,
    placed: tuple[LoadContext, PurePosixPath],
    target: LoadTarget,
    table: TorchAbiTable,
) -> LoadPrediction | None:
    """``lib`` (placed in its package: the loader's context and its path there) against the
    installation — its needed libraries looked up beside it, its imports resolved against its
    exports — or against the release's build of its platform: looked up among what that build
    installs, resolved against what the release data says it exports."""
    context, location = placed
    install = target.install
    if install is not None:
        if install.formats and fmt not in install.formats:
            return None  # a macOS build next to a Linux torch: nothing to predict
        required, optional = _missing_needed(lib, context, location)
        return predict_against_install(
            lib.torch,
            target.reference.label,
            install.exports,
            missing_libraries=[r.error_message(lib.path.name) for r in required],
            missing_optional_libraries=[r.needed for r in optional],
            binary_format=fmt,
            table=table,
            release=target.release,
            torch_cxx11_abi=install.cxx11_abi,
        )
    assert target.release is not None and target.requested is not None
    provision = release_provision(lib, target.requested)
    if provision.platform is None and not lib.torch.uses_torch:
        return None  # its needed libraries are all there is, and no data speaks of them
    context = replace(context, preloaded=provision.preloaded)
    required, optional = _missing_needed(lib, context, location)
    torch = _release_torch(lib)
    return predict_against_release(
        torch,
        table,
        target.release,
        target.reference.label,
        build_view(provision, torch, required, optional, lib.path.name),
        binary_format=fmt,
    )


def _predict(
    package: PackageReport, target: LoadTarget, contexts: _Contexts
) -> list[ExtensionReport]:
    """The package's libraries, each with its prediction against ``target`` (an installation
    or a release: the same search, split of required and optional needs, and rules)."""
    table = load_table()
    updated = []
    for lib in package.libraries:
        fmt = _format_of(lib)
        if fmt is None or not _concerns_torch(lib):
            updated.append(lib)
            continue
        prediction = _prediction(lib, fmt, contexts.for_library(package, lib, fmt), target, table)
        updated.append(lib if prediction is None else replace(lib, load=prediction))
    return updated


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
    """Each library's required needed entries that only the package's own libraries can
    satisfy, as ``(index, needed name)``.

    An entry counts when the loader's search finds it among the package's libraries (its
    directory, ``.libs``/``.dylibs``…), or finds it nowhere while one of them carries that
    name (soname or file name): packages load such a library first themselves (``ctypes``,
    ``torch.ops.load_library``), and the loader then matches the entry by soname — so if it
    fails to load, so does every library that needs it. One already loaded under that name
    (torch's own) satisfies the entry instead. Only entries named like one of the package's
    libraries are looked up, so an environment scan resolves a handful of names per package.
    """
    on_disk = package.wheel is None
    by_name: dict[str, int | None] = {}  # name -> its one library (None: several carry it)
    located: dict[str, int] = {}
    contexts_of: dict[int, tuple[LoadContext, PurePosixPath]] = {}
    for k, lib in enumerate(libraries):
        fmt = _format_of(lib)
        if fmt is None:
            continue
        for name in {_file_name(lib.path.name, fmt), _file_name(lib.soname or "", fmt)} - {""}:
            by_name[name] = k if name not in by_name else None
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
            if resolution.found is not None:
                index = located.get(_same_file(resolution.found, on_disk))
            elif resolution.missing:
                index = by_name.get(_file_name(resolution.needed, context.format))
            else:
                continue  # already loaded (torch's), or provided by the system
            if index is not None and index != k:
                dependencies[k].append((index, resolution.needed))
    return dependencies


def _with_failed_dependencies(
    package: PackageReport, libraries: list[ExtensionReport], contexts: _Contexts
) -> list[ExtensionReport]:
    """``libraries`` once those needing a library of the package that will not load fail too
    (and those needing one whose load is unknown are unknown too)."""
    spreading = (LoadStatus.FAILS, LoadStatus.UNKNOWN)
    if not any(lib.load is not None and lib.load.status in spreading for lib in libraries):
        return libraries
    dependencies = _package_dependencies(package, libraries, contexts)
    paths = [relative_or_name(lib.path, package.root) for lib in libraries]
    predictions = with_failed_dependencies([lib.load for lib in libraries], dependencies, paths)
    return [
        lib if prediction is lib.load else replace(lib, load=prediction)
        for lib, prediction in zip(libraries, predictions, strict=True)
    ]


def apply_load_target(packages: Sequence[PackageReport], target: LoadTarget) -> list[PackageReport]:
    """The packages with a load prediction per library that concerns torch.

    torch itself is left alone: it is what the others load against.
    """
    contexts = _Contexts(target.install)
    result = []
    for package in packages:
        if package.unavailable or package.is_torch:
            result.append(replace(package, torch_reference=target.reference))
            continue
        libraries = _with_failed_dependencies(
            package, _predict(package, target, contexts), contexts
        )
        updated = package.with_libraries(tuple(libraries))
        result.append(replace(updated, torch_reference=target.reference))
    return result


__all__ = [
    "LoadPrediction",
    "LoadTarget",
    "LoadTargetError",
    "apply_load_target",
    "environment_target",
    "install_target",
    "release_target",
]
