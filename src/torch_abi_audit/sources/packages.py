"""Decide what to audit as one package: which library files, under which name and root.

The sources stage ends here with :class:`PackageSource` values; the audit stage reads and judges
the files they list. The inputs:

* a site-packages directory, grouped by installed distribution (``RECORD``), with files that no
  distribution owns grouped by their top-level entry;
* a directory (given as a path or an import name), plus the vendored ``*.libs`` directories of
  the distribution that installed it;
* a wheel, read in place (a directory holding wheels gives one package per wheel);
* a single file.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torch_abi_audit.progress import NO_PROGRESS, Progress
from torch_abi_audit.sources.discovery import (
    ScanProblem,
    find_libraries,
    has_execute_bit,
    is_binary,
    is_library_name,
)
from torch_abi_audit.sources.distributions import InstalledDistribution, find_distributions
from torch_abi_audit.sources.imports import ImportNameError, resolve_import_name
from torch_abi_audit.sources.metadata import DistributionMetadata
from torch_abi_audit.sources.wheels import (
    WheelError,
    WheelInfo,
    WheelMember,
    open_wheel,
    parse_wheel_name,
)

#: Top-level directories in which wheel repair tools put vendored libraries
#: (auditwheel and delvewheel: ``<name>.libs``; delocate: ``.dylibs`` inside the package).
VENDORED_SUFFIXES = (".libs", ".dylibs")
_METADATA_SUFFIXES = (".dist-info", ".egg-info", ".data")


@dataclass(frozen=True)
class PackageSource:
    """One package to audit: a name, a root for display, its libraries and its origin.

    ``libraries`` are files, or members of the wheel named by ``wheel``. ``metadata`` is the
    distribution's (installed or in the wheel), when there is one. ``unavailable`` says why
    there is nothing to audit although nothing went wrong (no wheel on the index for a
    platform); ``error`` why the source could not be read at all. ``base`` is the directory
    the paths inside the distribution start from (site-packages for an installed package; the
    root itself when unset: a wheel, whose member names are those paths, or a single file).
    """

    name: str
    root: Path
    libraries: tuple[Path | WheelMember, ...] = ()
    metadata: DistributionMetadata | None = None
    wheel: WheelInfo | None = None
    problems: tuple[ScanProblem, ...] = ()
    error: str | None = None
    unavailable: str | None = None
    base: Path | None = None


def _common_root(site_dir: Path, tops: Iterable[str]) -> Path:
    distinct = set(tops)
    if len(distinct) == 1:
        only = site_dir / distinct.pop()
        return only if only.is_dir() else site_dir
    return site_dir


def _relative(path: Path, base: Path) -> str | None:
    try:
        relative = os.path.relpath(path, base)
    except ValueError:  # different drives on Windows
        return None
    relative = relative.replace(os.sep, "/")
    return None if relative.startswith("../") or relative == ".." else relative


class _Ownership:
    """Maps site-relative library paths and top-level entries to their distributions."""

    def __init__(self, distributions: list[InstalledDistribution]) -> None:
        self.by_file: dict[str, InstalledDistribution] = {}
        claims: dict[str, list[InstalledDistribution]] = {}
        for dist in distributions:
            for relative in dist.library_files:
                self.by_file.setdefault(relative, dist)
            for top in dist.top_level:
                claims.setdefault(top, []).append(dist)
        # A top-level entry claimed by exactly one distribution is that distribution's, even for
        # files its RECORD does not list (created after installation).
        self.by_top = {top: dists[0] for top, dists in claims.items() if len(dists) == 1}

    def owner(self, relative: str) -> InstalledDistribution | None:
        dist = self.by_file.get(relative)
        if dist is None:
            dist = self.by_top.get(relative.split("/", 1)[0])
        return dist


@dataclass
class _Group:
    """Libraries and problems collected for one package while walking a site directory."""

    name: str
    distribution: InstalledDistribution | None
    libraries: list[Path] = field(default_factory=list)
    problems: list[ScanProblem] = field(default_factory=list)
    tops: list[str] = field(default_factory=list)


def site_packages_sources(
    site_dir: Path, distributions: list[InstalledDistribution] | None = None
) -> tuple[list[PackageSource], list[ScanProblem]]:
    """Group every library under ``site_dir`` by the distribution that installed it.

    A library belongs to the distribution whose ``RECORD`` lists it, else to the one
    distribution that installed its top-level directory, else to a package named after that
    top-level entry. ``distributions`` are the directory's distributions when the caller has
    already read them. Returns the package sources (sorted by name, only those holding a library
    or a problem) and problems that belong to no package. Raises :class:`OSError` if
    ``site_dir`` cannot be listed.
    """
    if distributions is None:
        distributions = find_distributions(site_dir)
    ownership = _Ownership(distributions)
    roots = [
        entry
        for entry in sorted(site_dir.iterdir())
        if not entry.name.endswith(_METADATA_SUFFIXES)
        and entry.name != "__pycache__"
        and (is_library_name(entry.name) or entry.is_dir())
    ]
    scan = find_libraries(roots)
    groups: dict[str, _Group] = {}

    def group_for(relative: str) -> _Group:
        top = relative.split("/", 1)[0]
        dist = ownership.owner(relative)
        key = f"dist:{dist.metadata_dir.name}" if dist else f"top:{top}"
        if key not in groups:
            groups[key] = _Group(dist.name if dist else top, dist)
        group = groups[key]
        group.tops.append(top)
        return group

    for library in scan.libraries:
        relative = _relative(library, site_dir)
        if relative is not None:
            group_for(relative).libraries.append(library)
    for installed in distributions:
        programs = _installed_programs(site_dir, installed)
        if programs:
            key = f"dist:{installed.metadata_dir.name}"
            groups.setdefault(key, _Group(installed.name, installed)).libraries.extend(programs)
    loose: list[ScanProblem] = []
    for problem in scan.problems:
        relative = _relative(problem.path, site_dir)
        if relative is None:
            loose.append(problem)
        else:
            group_for(relative).problems.append(problem)
    # An unreadable RECORD is a problem of the environment (nothing can be attributed to that
    # distribution); unreadable METADATA matters for the distributions that own libraries.
    loose += [ScanProblem(d.metadata_dir, d.problem) for d in distributions if d.problem]
    for group in groups.values():
        dist = group.distribution
        if dist is not None and dist.metadata.problem:
            group.problems.append(ScanProblem(dist.metadata_dir, dist.metadata.problem))

    sources = [
        PackageSource(
            name=group.name,
            root=_common_root(site_dir, group.tops),
            libraries=tuple(group.libraries),
            metadata=group.distribution.metadata if group.distribution else None,
            problems=tuple(group.problems),
            base=site_dir,
        )
        for group in groups.values()
    ]
    sources.sort(key=lambda s: (s.name.lower(), str(s.root)))
    return sources, loose


def _installed_programs(site_dir: Path, dist: InstalledDistribution) -> list[Path]:
    """The programs ``dist`` installed outside ``site_dir`` (its wheel's ``.data/scripts``,
    now in the environment's ``bin``): files its RECORD lists there that are executable and
    start with ELF, Mach-O or PE magic (console-script wrappers are text, and dropped)."""
    found = []
    for relative in dist.scripts:
        path = Path(os.path.normpath(site_dir / relative))
        try:
            mode = path.stat().st_mode
        except OSError:
            continue
        runnable = path.suffix.lower() == ".exe" or has_execute_bit(mode)
        if stat.S_ISREG(mode) and runnable and is_binary(path):
            found.append(path)
    return found


def _owning_distribution(directory: Path) -> InstalledDistribution | None:
    """The distribution in ``directory``'s parent whose ``RECORD`` installed ``directory``."""
    parent = directory.parent
    try:
        has_metadata = any(e.name.endswith(".dist-info") for e in parent.iterdir())
    except OSError:
        return None
    if not has_metadata:
        return None
    try:
        distributions = find_distributions(parent)
    except OSError:
        return None
    for dist in distributions:
        if directory.name in dist.top_level:
            return dist
    return None


def directory_source(directories: list[Path], name: str) -> PackageSource:
    """Audit ``directories`` (one package, or the portions of a namespace package) as ``name``.

    When a distribution installed the directory, its vendored ``*.libs`` directories are
    included and the distribution is recorded.
    """
    roots = list(directories)
    dist = _owning_distribution(directories[0]) if len(directories) == 1 else None
    if dist is not None:
        site_dir = directories[0].parent
        for top in dist.top_level:
            if top.endswith(VENDORED_SUFFIXES) and top != directories[0].name:
                candidate = site_dir / top
                if candidate.is_dir():
                    roots.append(candidate)
    scan = find_libraries(roots)
    root = directories[0] if len(roots) == 1 else _display_root(roots)
    return PackageSource(
        name=name,
        root=root,
        libraries=tuple(scan.libraries),
        metadata=dist.metadata if dist else None,
        problems=tuple(scan.problems),
        # A package directory's files lie under its name, as they would in a distribution.
        base=directories[0].parent,
    )


def _display_root(roots: list[Path]) -> Path:
    common = os.path.commonpath([str(r) for r in roots])
    return Path(common)


def file_source(path: Path, name: str | None = None) -> PackageSource:
    """Audit the single file ``path``."""
    scan = find_libraries([path])
    return PackageSource(
        name=name or path.name,
        root=path.parent,
        libraries=tuple(scan.libraries),
        problems=tuple(scan.problems),
    )


def looks_like_path(target: str) -> bool:
    """True when a target string is a path (a separator, ``.``/``..``, a library or wheel file
    name) rather than an import name."""
    return (
        os.sep in target
        or "/" in target
        or (os.altsep is not None and os.altsep in target)
        or target in (".", "..")
        or is_library_name(target)
        or posixpath.splitext(target)[1] in (".whl",)
    )


def wheel_source(path: Path) -> PackageSource:
    """Audit the wheel at ``path`` in place: its libraries, metadata and tags."""
    path = path.absolute()
    problems: list[ScanProblem] = []
    try:
        info: WheelInfo | None = parse_wheel_name(path)
    except ValueError as exc:
        info = None
        problems.append(ScanProblem(path, f"not a valid wheel file name: {exc}"))
    fallback_name = info.name if info else path.name
    try:
        archive = open_wheel(path)  # kept open: the audit reads the members next
    except WheelError as exc:
        return PackageSource(fallback_name, path, wheel=info, error=str(exc))
    metadata = archive.metadata()
    libraries = archive.library_members() + archive.executable_members()
    problems += [ScanProblem(path, problem) for problem in archive.problems]
    return PackageSource(
        name=metadata.name if metadata.version else fallback_name,
        root=path,
        libraries=tuple(libraries),
        metadata=metadata,
        wheel=info,
        problems=tuple(problems),
    )


def _directory_sources(path: Path) -> list[PackageSource]:
    """A directory: one package per wheel at its top level, plus the libraries it holds."""
    wheels = sorted(p for p in path.glob("*.whl") if p.is_file())
    sources = [wheel_source(wheel) for wheel in wheels]
    directory = directory_source([path], path.name)
    if directory.libraries or directory.problems or not wheels:
        sources.append(directory)
    return sources


def download_sources(
    spec: str,
    platforms: Sequence[str] = (),
    python_version: str | None = None,
    cache: Path | None = None,
    progress: Progress = NO_PROGRESS,
) -> list[PackageSource]:
    """Fetch ``spec`` from the index (once per platform) and audit the wheels fetched.

    A platform without a wheel on the index gives a source marked ``unavailable``; a pip
    failure one with ``error``.
    """
    from torch_abi_audit.sources.index import default_cache, download  # pip: only when asked

    sources = []
    for fetched in download(spec, platforms, python_version, cache, progress):
        if fetched.wheel is not None:
            sources.append(wheel_source(fetched.wheel))
        else:
            sources.append(
                PackageSource(
                    name=fetched.label,
                    root=cache or default_cache(),
                    error=fetched.error,
                    unavailable=fetched.unavailable,
                )
            )
    return sources


def target_sources(target: str, search_path: Sequence[Path] | None = None) -> list[PackageSource]:
    """Turn one command-line ``TARGET`` into the packages it names.

    A ``.whl`` file is a wheel; a directory gives its own libraries and one package per wheel
    it holds; an import name is resolved without importing it, in ``search_path`` when given
    (the site-packages of the environment being audited) or else as this interpreter would.
    Something spelled like a path is a path; otherwise the name is tried as an import name and,
    failing that, as a path relative to the current directory. Never raises: an unknown name or
    missing path becomes the source's ``error``.
    """
    if not looks_like_path(target):
        try:
            paths = None if search_path is None else [str(p) for p in search_path]
            locations = resolve_import_name(target, paths)
        except ImportNameError as exc:
            if not Path(target).exists():
                return [PackageSource(name=target, root=Path(target), error=str(exc))]
        else:
            directories = [p for p in locations if p.is_dir()]
            if not directories:
                return [file_source(locations[0], name=target)]
            return [directory_source(directories, target)]
    path = Path(target).absolute()
    if not path.exists() and not path.is_symlink():
        return [PackageSource(name=target, root=path, error=f"path does not exist: {path}")]
    if path.is_dir():
        return _directory_sources(path)
    if path.suffix == ".whl":
        return [wheel_source(path)]
    return [file_source(path)]
