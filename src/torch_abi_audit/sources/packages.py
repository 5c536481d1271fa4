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
from dataclasses import dataclass, field, replace
from pathlib import Path

from torch_abi_audit.files import RealPaths, is_inside, not_regular_reason, outside_reason
from torch_abi_audit.progress import NO_PROGRESS, Progress
from torch_abi_audit.sources.discovery import (
    ScanProblem,
    ScanResult,
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
    """``path`` relative to ``base`` as a POSIX path, or ``None`` when it lies outside."""
    text, prefix = str(path), str(base) + "/"
    if os.sep == "/" and text.startswith(prefix):  # the walk's paths: no os.path.relpath
        rest = text[len(prefix) :]
        # ``relpath`` would normalise both; a rest without ., .. or empty components (nor
        # hidden names: they start with a dot too) is what it gives.
        if rest and "//" not in rest and "/." not in "/" + rest and not rest.endswith("/"):
            return rest
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


#: How many names a problem about missing files lists before "and N more".
_LISTED = 5


class _Grouping:
    """The packages of one site directory as they are assembled from the walk."""

    def __init__(self, site_dir: Path, distributions: list[InstalledDistribution]) -> None:
        self.site_dir = site_dir
        self.ownership = _Ownership(distributions)
        self.real_path = RealPaths()  # the environment's, for each program a RECORD lists
        self.groups: dict[str, _Group] = {}
        self.loose: list[ScanProblem] = []

    def group(self, dist: InstalledDistribution | None, top: str | None) -> _Group:
        key = f"dist:{dist.metadata_dir.name}" if dist else f"top:{top}"
        if key not in self.groups:
            self.groups[key] = _Group(dist.name if dist else str(top), dist)
        group = self.groups[key]
        if top is not None:
            group.tops.append(top)
        return group

    def group_for(self, relative: str) -> _Group:
        return self.group(self.ownership.owner(relative), relative.split("/", 1)[0])

    def add_scan(self, scan: ScanResult) -> set[str]:
        """File the walk's libraries and problems; returns the site-relative library paths."""
        found: set[str] = set()
        for library in scan.libraries:
            relative = _relative(library, self.site_dir)
            if relative is not None:
                self.group_for(relative).libraries.append(library)
                found.add(relative)
        for problem in scan.problems:
            relative = _relative(problem.path, self.site_dir)
            if relative is None:
                self.loose.append(problem)
            else:
                self.group_for(relative).problems.append(problem)
        return found

    def add_record_problems(self, dist: InstalledDistribution, found: set[str]) -> None:
        """What a distribution's ``RECORD`` says that the tree does not hold: listed libraries
        that are not there (an installation that lost files, or a RECORD that lies), and what
        of the ``RECORD`` itself was left unread."""
        record = dist.metadata_dir / "RECORD"
        problems = [ScanProblem(record, reason) for reason in dist.record_problems]
        missing = [
            relative
            for relative in sorted(dist.library_files - found)
            if not os.path.lexists(self.site_dir / relative)
        ]
        if missing:
            named = ", ".join(missing[:_LISTED])
            if len(missing) > _LISTED:
                named += f" and {len(missing) - _LISTED:,} more"
            noun = "library" if len(missing) == 1 else "libraries"
            reason = f"lists {len(missing):,} {noun} that {'is' if len(missing) == 1 else 'are'}"
            problems.append(ScanProblem(record, f"RECORD {reason} not installed: {named}"))
        if problems:
            self.group(dist, None).problems.extend(problems)

    def add_programs(self, dist: InstalledDistribution) -> None:
        """The programs ``dist`` installed into the environment's ``bin`` (or ``Scripts``)."""
        programs, problems = _installed_programs(self.site_dir, dist, self.real_path)
        if programs or problems:
            group = self.group(dist, None)
            group.libraries.extend(programs)
            group.problems.extend(problems)

    def sources(self) -> list[PackageSource]:
        for group in self.groups.values():
            dist = group.distribution
            if dist is not None and dist.metadata.problem:
                group.problems.append(ScanProblem(dist.metadata_dir, dist.metadata.problem))
        sources = [
            PackageSource(
                name=group.name,
                root=_common_root(self.site_dir, group.tops),
                libraries=tuple(group.libraries),
                metadata=group.distribution.metadata if group.distribution else None,
                problems=tuple(group.problems),
                base=self.site_dir,
            )
            for group in self.groups.values()
        ]
        sources.sort(key=lambda s: (s.name.lower(), str(s.root)))
        return sources


def site_packages_sources(
    site_dir: Path, distributions: list[InstalledDistribution] | None = None
) -> tuple[list[PackageSource], list[ScanProblem]]:
    """Group every library under ``site_dir`` by the distribution that installed it.

    A library belongs to the distribution whose ``RECORD`` lists it, else to the one
    distribution that installed its top-level directory, else to a package named after that
    top-level entry; it is attributed by its real path, and nothing outside ``site_dir`` is
    read. A library a ``RECORD`` lists that is not there is a problem of its distribution.
    ``distributions`` are the directory's distributions when the caller has already read
    them. Returns the package sources (sorted by name, only those holding a library or a
    problem) and problems that belong to no package. Raises :class:`OSError` if ``site_dir``
    cannot be listed.
    """
    if distributions is None:
        distributions = find_distributions(site_dir)
    roots = [
        entry
        for entry in sorted(site_dir.iterdir())
        if not entry.name.endswith(_METADATA_SUFFIXES)
        and entry.name != "__pycache__"
        and (is_library_name(entry.name) or entry.is_dir())
    ]
    grouping = _Grouping(site_dir, distributions)
    found = grouping.add_scan(find_libraries(roots, boundary=[site_dir]))
    for dist in distributions:
        if dist.problem is None:
            grouping.add_record_problems(dist, found)
            grouping.add_programs(dist)
    # An unreadable RECORD is a problem of the environment (nothing can be attributed to that
    # distribution); unreadable METADATA matters for the distributions that own libraries.
    loose = grouping.loose + [
        ScanProblem(d.metadata_dir, d.problem) for d in distributions if d.problem
    ]
    return grouping.sources(), loose


class ListedLibraries:
    """The libraries the ``RECORD`` files of ``site_dir``'s distributions list that exist where
    they are listed, without a symbolic link on the way: what a scan may start reading before
    its walk has found them, one distribution at a time (at most ``limit`` in all). A path the
    walk would not give as it is gets no head start."""

    def __init__(self, site_dir: Path, limit: int = 2_000) -> None:
        self.site_dir = site_dir
        self.real_path = RealPaths()  # torch/lib/* share their directory's real path
        self.real_site = self.real_path(site_dir)
        self.remaining = limit

    def __call__(self, dist: InstalledDistribution) -> list[Path]:
        """Those of ``dist``'s libraries that get a head start."""
        paths: list[Path] = []
        for relative in sorted(dist.library_files):
            if len(paths) >= self.remaining:
                break
            if "\0" in relative:  # no file is named so (and no system call takes the name)
                continue
            path = self.site_dir / relative
            where = os.path.join(self.real_site, *relative.split("/"))  # noqa: PTH118 - a str, fast
            if self.real_path(path) == where:
                paths.append(path)
        self.remaining -= len(paths)
        return paths


def _lexically_inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def _installed_programs(
    site_dir: Path, dist: InstalledDistribution, real_path: RealPaths | None = None
) -> tuple[list[Path], list[ScanProblem]]:
    """The programs ``dist`` installed outside ``site_dir`` (its wheel's ``.data/scripts``,
    now in the environment's ``bin``): files its RECORD lists there that are executable and
    start with ELF, Mach-O or PE magic (console-script wrappers are text, and dropped).

    Only files inside the environment (the directory three levels above ``site_dir``, as in
    ``lib/python3.X/site-packages``) are read: a RECORD path or a link leading elsewhere is a
    problem, as a link out of the site directory is.
    """
    environment = site_dir.parents[min(2, len(site_dir.parents) - 1)]
    found: list[Path] = []
    problems: list[ScanProblem] = []
    for relative in dist.scripts:
        path = Path(os.path.normpath(site_dir / relative))
        if not _lexically_inside(path, environment):
            reason = f"RECORD lists {relative}, outside the environment: not read"
            problems.append(ScanProblem(dist.metadata_dir / "RECORD", reason))
            continue
        if not is_inside(path, environment, real_path=real_path):  # a link that leads out
            problems.append(ScanProblem(path, outside_reason(os.path.realpath(path))))
            continue
        try:
            mode = path.stat().st_mode
        except OSError:
            continue
        runnable = path.suffix.lower() == ".exe" or has_execute_bit(mode)
        if stat.S_ISREG(mode) and runnable and is_binary(path):
            found.append(path)
    return found, problems


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
    """A directory: one package per wheel at its top level, plus the libraries it holds.

    An entry named ``*.whl`` that is not a regular file (a directory, a FIFO) is not a wheel:
    it is reported as a problem of the directory's package, never opened as an archive; and so
    is the directory itself when it is named like a wheel.
    """
    wheels: list[Path] = []
    not_wheels: list[ScanProblem] = []
    if path.suffix == ".whl":
        not_wheels.append(ScanProblem(path, _not_a_wheel_file(path) or ""))
    for candidate in sorted(path.glob("*.whl")):
        reason = _not_a_wheel_file(candidate)
        if reason is None:
            wheels.append(candidate)
        else:
            not_wheels.append(ScanProblem(candidate, reason))
    sources = [wheel_source(wheel) for wheel in wheels]
    directory = directory_source([path], path.name)
    if not_wheels:
        problems = sorted((*directory.problems, *not_wheels), key=lambda p: str(p.path))
        directory = replace(directory, problems=tuple(problems))
    if directory.libraries or directory.problems or not wheels:
        sources.append(directory)
    return sources


def _not_a_wheel_file(path: Path) -> str | None:
    """Why ``path``, named like a wheel, cannot be read as one (``None`` if it can be tried)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return exc.strerror or str(exc)
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory named like a wheel: its libraries are audited as files, not a wheel"
    return f"{not_regular_reason(mode)}: not read"


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
