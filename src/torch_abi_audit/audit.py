"""Run the audit: read every library once (in parallel), judge it, assemble the reports.

This is the public Python API: :func:`inspect_extension`, :func:`inspect_package`,
:func:`inspect_site_packages` (and :func:`inspect_targets` for several at once). Bad input never
raises here; it comes back as reports whose ``error`` (or ``problems``) say what went wrong.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path

from torch_abi_audit.readers import BinaryReadError, UnsupportedFormatError, read_library
from torch_abi_audit.report import (
    Distribution,
    EnvironmentReport,
    ExtensionReport,
    LibraryKind,
    PackageReport,
    Problem,
)
from torch_abi_audit.rules.cpython_abi import analyse_cpython, entry_points, stable_abi_symbols
from torch_abi_audit.rules.torch_abi import TorchRules
from torch_abi_audit.rules.torch_table import load_table
from torch_abi_audit.sources.discovery import ScanProblem
from torch_abi_audit.sources.packages import (
    PackageSource,
    directory_source,
    file_source,
    site_packages_sources,
    target_source,
)

# Below this many files a worker pool costs more than it saves.
_PARALLEL_THRESHOLD = 6
# Batches per worker: enough to even out uneven batches, few enough to keep IPC cheap.
_BATCHES_PER_WORKER = 3
_TORCH_LIBRARY_PREFIXES = ("libtorch", "libc10", "torch_", "c10")
_EXTENSION_NAME_MARKERS = (".cpython-", ".abi3.", ".pypy", ".pyd")


@cache
def _torch_rules() -> TorchRules:
    """The torch rules over the shipped table, built once per process."""
    return TorchRules(load_table())


def _looks_like_extension(path: Path) -> bool:
    name = path.name.lower()
    return any(marker in name for marker in _EXTENSION_NAME_MARKERS)


def inspect_extension(path: Path | str) -> ExtensionReport:
    """Read and judge one compiled library.

    Never raises for bad input: an unreadable or corrupt file gives a report with ``error`` set,
    a format this release cannot read one with ``skipped`` set.
    """
    path = Path(path).absolute()
    guessed_kind = LibraryKind.EXTENSION if _looks_like_extension(path) else LibraryKind.BUNDLED
    try:
        library = read_library(path)
    except UnsupportedFormatError as exc:
        return ExtensionReport(path, kind=guessed_kind, skipped=str(exc))
    except BinaryReadError as exc:
        return ExtensionReport(path, kind=guessed_kind, error=str(exc))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return ExtensionReport(path, kind=guessed_kind, error=f"cannot read file: {reason}")
    entries = entry_points(library)
    needs_torch = any(n.startswith(_TORCH_LIBRARY_PREFIXES) for n in library.needed)
    imported = library.imports.names()
    return ExtensionReport(
        path=path,
        cpython=analyse_cpython(imported, path.name),
        torch=_torch_rules().analyse(imported, needs_torch_library=needs_torch),
        kind=LibraryKind.EXTENSION if entries else LibraryKind.BUNDLED,
        format=str(library.format),
        machine=library.machine,
        needed=library.needed,
        soname=library.soname,
        runpath=library.runpath,
        rpath=library.rpath,
        entry_points=entries,
    )


def default_jobs() -> int:
    """How many worker processes to use: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _inspect_batch(paths: list[Path]) -> list[ExtensionReport]:
    return [inspect_extension(path) for path in paths]


def _balanced_batches(paths: list[Path], count: int) -> list[list[Path]]:
    """Deal ``paths``, largest file first, round-robin into ``count`` batches.

    Each batch then holds a similar mix of big and small libraries, and a few large tasks cost
    far less in inter-process traffic than one task per file.
    """
    ordered = sorted(paths, key=_file_size, reverse=True)
    batches: list[list[Path]] = [[] for _ in range(min(count, len(ordered)))]
    for index, path in enumerate(ordered):
        batches[index % len(batches)].append(path)
    return batches


def analyse_libraries(
    paths: Iterable[Path], *, jobs: int | None = None
) -> dict[Path, ExtensionReport]:
    """Run :func:`inspect_extension` over ``paths``, in parallel when it pays off.

    Returns the reports keyed by the paths given.
    """
    unique = list(dict.fromkeys(paths))
    jobs = default_jobs() if jobs is None else max(1, jobs)
    if jobs == 1 or len(unique) < _PARALLEL_THRESHOLD:
        return {path: inspect_extension(path) for path in unique}
    # Load the tables before the workers fork, so each worker inherits them ready to use.
    _torch_rules()
    stable_abi_symbols()
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    batches = _balanced_batches(unique, jobs * _BATCHES_PER_WORKER)
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    results: dict[Path, ExtensionReport] = {}
    with ProcessPoolExecutor(max_workers=min(jobs, len(batches)), mp_context=context) as pool:
        for batch, reports in zip(batches, pool.map(_inspect_batch, batches), strict=True):
            results.update(zip(batch, reports, strict=True))
    return {path: results[path] for path in unique}


def _distribution(source: PackageSource) -> Distribution | None:
    dist = source.distribution
    if dist is None:
        return None
    return Distribution(dist.name, dist.version, dist.torch_requirements)


def _problems(items: Iterable[ScanProblem]) -> tuple[Problem, ...]:
    return tuple(Problem(item.path.absolute(), item.reason) for item in items)


def _package_report(source: PackageSource, results: dict[Path, ExtensionReport]) -> PackageReport:
    libraries = [results[path] for path in source.libraries]
    return PackageReport(
        name=source.name,
        root=source.root.absolute(),
        extensions=tuple(lib for lib in libraries if lib.kind is LibraryKind.EXTENSION),
        bundled_libs=tuple(lib for lib in libraries if lib.kind is LibraryKind.BUNDLED),
        error=source.error,
        distribution=_distribution(source),
        problems=_problems(source.problems),
    )


def _audit_sources(sources: Sequence[PackageSource], jobs: int | None) -> list[PackageReport]:
    results = analyse_libraries((p for s in sources for p in s.libraries), jobs=jobs)
    return [_package_report(source, results) for source in sources]


def inspect_package(name_or_path: str | Path, *, jobs: int | None = None) -> PackageReport:
    """Audit one package given as an import name or a path (package directory or file).

    An import name is resolved without importing anything. An unknown name or a missing path
    gives a report with ``error`` set.
    """
    if isinstance(name_or_path, Path):
        path = name_or_path.absolute()
        if path.is_dir():
            source = directory_source([path], path.name)
        elif path.exists() or path.is_symlink():
            source = file_source(path)
        else:
            source = PackageSource(path.name, path, error=f"path does not exist: {path}")
    else:
        source = target_source(name_or_path)
    return _audit_sources([source], jobs)[0]


def inspect_targets(
    targets: Sequence[str | Path], *, jobs: int | None = None
) -> list[PackageReport]:
    """Audit several targets in one pass (one worker pool for all their libraries)."""
    sources = [
        target_source(t) if isinstance(t, str) else target_source(str(t.absolute()))
        for t in targets
    ]
    return _audit_sources(sources, jobs)


def default_site_packages() -> list[Path]:
    """The running interpreter's site-packages directories: purelib and platlib (deduplicated),
    plus the user site directory when it is enabled and on ``sys.path``."""
    paths = sysconfig.get_paths()
    found: list[Path] = []
    for key in ("purelib", "platlib"):
        candidate = Path(paths[key])
        if candidate not in found:
            found.append(candidate)
    import site

    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    if user_site and user_site in sys.path and Path(user_site).is_dir():
        candidate = Path(user_site)
        if candidate not in found:
            found.append(candidate)
    return found


def inspect_site_packages(
    path: Path | str | Sequence[Path] | None = None, *, jobs: int | None = None
) -> EnvironmentReport:
    """Audit every package in a site-packages directory (default: the running interpreter's).

    Libraries are grouped by the installed distribution that owns them. A directory that does
    not exist or cannot be listed is reported in ``problems``.
    """
    if path is None:
        directories = default_site_packages()
    elif isinstance(path, (str, Path)):
        directories = [Path(path)]
    else:
        directories = [Path(p) for p in path]
    directories = [d.absolute() for d in directories]
    sources: list[PackageSource] = []
    problems: list[ScanProblem] = []
    for directory in directories:
        if not directory.is_dir():
            reason = "not a directory" if directory.exists() else "directory does not exist"
            problems.append(ScanProblem(directory, reason))
            continue
        try:
            found, loose = site_packages_sources(directory)
        except OSError as exc:
            problems.append(ScanProblem(directory, exc.strerror or str(exc)))
            continue
        sources.extend(found)
        problems.extend(loose)
    return EnvironmentReport(
        site_packages=directories[0] if directories else Path(),
        packages=tuple(_audit_sources(sources, jobs)),
        search_paths=tuple(directories),
        problems=_problems(problems),
    )


__all__ = [
    "analyse_libraries",
    "default_site_packages",
    "inspect_extension",
    "inspect_package",
    "inspect_site_packages",
    "inspect_targets",
]
