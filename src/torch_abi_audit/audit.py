"""Run the audit: read every library once (in parallel), judge it, assemble the reports.

This is the public Python API: :func:`inspect_extension`, :func:`inspect_package`,
:func:`inspect_site_packages` (and :func:`inspect_targets` for several at once). Bad input never
raises here; it comes back as reports whose ``error`` (or ``problems``) say what went wrong.
"""

from __future__ import annotations

import sys
import sysconfig
from collections.abc import Iterable, Sequence
from pathlib import Path

from torch_abi_audit.engine import (
    LibraryAnalysis,
    LibraryLocation,
    analyse_libraries,
    inspect_extension,
)
from torch_abi_audit.report import (
    Distribution,
    EnvironmentReport,
    ExtensionReport,
    LibraryKind,
    PackageReport,
    Problem,
    WheelReport,
)
from torch_abi_audit.rules.findings import Finding
from torch_abi_audit.rules.metadata_checks import (
    LibraryFacts,
    bundled_library_findings,
    tag_findings,
    torch_requirement_findings,
)
from torch_abi_audit.sources.discovery import ScanProblem
from torch_abi_audit.sources.distributions import find_distributions
from torch_abi_audit.sources.packages import (
    PackageSource,
    download_sources,
    site_packages_sources,
    target_sources,
)


def _distribution(source: PackageSource) -> Distribution | None:
    metadata = source.metadata
    if metadata is None:
        return None
    return Distribution(
        metadata.name, metadata.version, metadata.torch_requirements, metadata.wheel_tags
    )


def _problems(items: Iterable[ScanProblem]) -> tuple[Problem, ...]:
    return tuple(Problem(item.path.absolute(), item.reason) for item in items)


def _package_report(
    source: PackageSource, results: dict[LibraryLocation, ExtensionReport]
) -> PackageReport:
    libraries = [results[location] for location in source.libraries]
    findings = _findings(source, libraries)
    return PackageReport(
        name=source.name,
        root=source.root.absolute(),
        extensions=tuple(lib for lib in libraries if lib.kind is LibraryKind.EXTENSION),
        bundled_libs=tuple(lib for lib in libraries if lib.kind is LibraryKind.BUNDLED),
        error=source.error,
        distribution=_distribution(source),
        problems=_problems(source.problems),
        wheel=_wheel(source),
        unavailable=source.unavailable,
        findings=tuple(findings),
    )


def _findings(source: PackageSource, libraries: Sequence[ExtensionReport]) -> list[Finding]:
    """The packaging-metadata checks, for packages whose metadata is known."""
    root = source.root
    facts = [
        LibraryFacts(
            _relative_name(lib.path, root),
            lib.kind is LibraryKind.EXTENSION,
            lib.torch,
            lib.cpython,
            lib.needed,
            _os_floors(lib),
        )
        for lib in libraries
        if lib.error is None and lib.skipped is None
    ]
    findings: list[Finding] = []
    metadata = source.metadata
    if metadata is not None and metadata.problem is None:
        findings += torch_requirement_findings(metadata.name, facts, metadata.torch_requirements)
    tags = source.wheel.tags if source.wheel else (metadata.wheel_tags if metadata else ())
    findings += tag_findings(tags, facts)
    findings += bundled_library_findings(facts)
    return findings


def _os_floors(lib: ExtensionReport) -> tuple[tuple[str, str], ...]:
    """(architecture, minimum OS) of each slice, or of the library itself when it is thin."""
    parts = lib.slices or (lib,)
    return tuple((p.machine, p.min_os) for p in parts if p.machine and p.min_os)


def _relative_name(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def _wheel(source: PackageSource) -> WheelReport | None:
    if source.wheel is None:
        return None
    return WheelReport(source.root, source.wheel.filename, source.wheel.tags)


def _audit_sources(sources: Sequence[PackageSource], jobs: int | None) -> list[PackageReport]:
    results = analyse_libraries((p for s in sources for p in s.libraries), jobs=jobs)
    return [_package_report(source, results) for source in sources]


def _sources(target: str | Path) -> list[PackageSource]:
    # A Path is always a path; a string may also be an import name.
    return target_sources(str(target.absolute()) if isinstance(target, Path) else target)


def inspect_package(name_or_path: str | Path, *, jobs: int | None = None) -> PackageReport:
    """Audit one package given as an import name or a path (package directory or file).

    An import name is resolved without importing anything. An unknown name or a missing path
    gives a report with ``error`` set. Raises :class:`ValueError` for a target that holds
    several packages (a directory of wheels): :func:`inspect_targets` audits those.
    """
    sources = _sources(name_or_path)
    if len(sources) != 1:
        raise ValueError(f"{name_or_path} holds {len(sources)} packages: use inspect_targets")
    return _audit_sources(sources, jobs)[0]


def inspect_targets(
    targets: Sequence[str | Path],
    *,
    jobs: int | None = None,
    downloads: Sequence[str] = (),
    platforms: Sequence[str] = (),
    python_version: str | None = None,
    cache: Path | None = None,
) -> list[PackageReport]:
    """Audit several targets in one pass (one worker pool for all their libraries).

    A target may give several packages (a directory holding wheels); they come in order.
    ``downloads`` are requirement specs fetched from the index with pip (once per platform in
    ``platforms``, for ``python_version``, into ``cache``) and audited after the targets.
    """
    sources = [s for target in targets for s in _sources(target)]
    for spec in downloads:
        sources += download_sources(spec, platforms, python_version, cache)
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
    with LibraryAnalysis(jobs, eager=True) as analysis:
        for directory in directories:
            if not directory.is_dir():
                reason = "not a directory" if directory.exists() else "directory does not exist"
                problems.append(ScanProblem(directory, reason))
                continue
            try:
                distributions = find_distributions(directory)
                # Start on the libraries the RECORDs list while the tree is still being walked.
                analysis.submit(
                    directory / relative
                    for dist in distributions
                    for relative in sorted(dist.library_files)
                )
                found, loose = site_packages_sources(directory, distributions)
            except OSError as exc:
                problems.append(ScanProblem(directory, exc.strerror or str(exc)))
                continue
            analysis.submit(path for source in found for path in source.libraries)
            sources.extend(found)
            problems.extend(loose)
        results = analysis.results()
    return EnvironmentReport(
        site_packages=directories[0] if directories else Path(),
        packages=tuple(_package_report(source, results) for source in sources),
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
