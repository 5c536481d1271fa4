"""Run the audit: read every library once (in parallel), judge it, assemble the reports.

This is the public Python API: :func:`inspect_extension`, :func:`inspect_package`,
:func:`inspect_site_packages` (and :func:`inspect_targets` for several at once). Bad input never
raises here; it comes back as reports whose ``error`` (or ``problems``) say what went wrong.
"""

from __future__ import annotations

import sys
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from torch_abi_audit.engine import (
    LibraryAnalysis,
    LibraryLocation,
    analyse_libraries,
    inspect_extension,
)
from torch_abi_audit.progress import NO_PROGRESS, Progress
from torch_abi_audit.report import (
    Distribution,
    EnvironmentReport,
    ExtensionReport,
    LibraryKind,
    PackageReport,
    Problem,
    WheelReport,
)
from torch_abi_audit.rules.bundled_runtimes import bundled_runtime_findings
from torch_abi_audit.rules.cpython_abi import FIRST_ABI3, CPythonAnalysis, abi3_baseline
from torch_abi_audit.rules.findings import Finding
from torch_abi_audit.rules.manylinux import LinuxLibrary, manylinux_findings
from torch_abi_audit.rules.metadata_checks import (
    LibraryFacts,
    bundled_library_findings,
    tag_findings,
    torch_requirement_findings,
)
from torch_abi_audit.rules.python_findings import (
    Interpreter,
    abi3_version_findings,
    abi3t_findings,
    free_threading_findings,
    interpreter_findings,
)
from torch_abi_audit.rules.torch_abi import TorchAnalysis, TorchRules
from torch_abi_audit.rules.torch_findings import deprecated_shim_findings, target_version_findings
from torch_abi_audit.rules.torch_table import load_table
from torch_abi_audit.sources.discovery import ScanProblem
from torch_abi_audit.sources.distributions import find_distributions
from torch_abi_audit.sources.interpreter import running_interpreter, site_packages_interpreter
from torch_abi_audit.sources.packages import (
    PackageSource,
    download_sources,
    looks_like_path,
    site_packages_sources,
    target_sources,
)
from torch_abi_audit.sources.torch_install import LoadTargetError

if TYPE_CHECKING:  # the load-prediction machinery is imported only when it is used
    from torch_abi_audit.loading import LoadTarget
    from torch_abi_audit.rules.migration import MigrationPlan


def _distribution(source: PackageSource) -> Distribution | None:
    metadata = source.metadata
    if metadata is None:
        return None
    return Distribution(
        metadata.name, metadata.version, metadata.torch_requirements, metadata.wheel_tags
    )


def _problems(items: Iterable[ScanProblem]) -> tuple[Problem, ...]:
    return tuple(Problem(item.path.absolute(), item.reason) for item in items)


@dataclass(frozen=True)
class _PythonContext:
    """What the CPython checks need beyond the binaries: the abi3 version to assume when no
    wheel tag says, and the interpreter of the environment (when known)."""

    assume_minimum_abi3: str = FIRST_ABI3
    interpreter: Interpreter | None = None


def _tags(source: PackageSource) -> tuple[str, ...]:
    metadata = source.metadata
    return source.wheel.tags if source.wheel else (metadata.wheel_tags if metadata else ())


def _with_baselines(
    libraries: list[ExtensionReport], tags: Sequence[str], assume: str
) -> list[ExtensionReport]:
    """Each abi3 library judged against the abi3 version its package promises."""
    from_tags = abi3_baseline(tags)
    baseline, origin = (from_tags, "wheel tag") if from_tags else (assume, "assumed")

    def judged(cpython: CPythonAnalysis) -> CPythonAnalysis:
        return cpython.with_baseline(baseline, origin) if cpython.intent else cpython

    result = []
    for lib in libraries:
        if lib.error or lib.skipped or not lib.cpython.intent:
            result.append(lib)
            continue
        slices = tuple(replace(part, cpython=judged(part.cpython)) for part in lib.slices)
        result.append(replace(lib, cpython=judged(lib.cpython), slices=slices))
    return result


def _package_report(
    source: PackageSource,
    results: dict[LibraryLocation, ExtensionReport],
    python: _PythonContext = _PythonContext(),
) -> PackageReport:
    libraries = [results[location] for location in source.libraries]
    libraries = _with_baselines(libraries, _tags(source), python.assume_minimum_abi3)
    findings = _findings(source, libraries, python.interpreter)
    return PackageReport(
        name=source.name,
        root=source.root.absolute(),
        extensions=tuple(lib for lib in libraries if lib.kind is LibraryKind.EXTENSION),
        bundled_libs=tuple(lib for lib in libraries if lib.kind is LibraryKind.BUNDLED),
        executables=tuple(lib for lib in libraries if lib.kind is LibraryKind.EXECUTABLE),
        error=source.error,
        distribution=_distribution(source),
        problems=_problems(source.problems),
        wheel=_wheel(source, libraries),
        unavailable=source.unavailable,
        findings=tuple(findings),
    )


def _findings(
    source: PackageSource,
    libraries: Sequence[ExtensionReport],
    interpreter: Interpreter | None = None,
) -> list[Finding]:
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
            lib.entry_points,
            lib.runtime,
            lib.machine,
            lib.version_needs,
        )
        for lib in libraries
        if lib.error is None and lib.skipped is None
    ]
    findings: list[Finding] = []
    metadata = source.metadata
    if metadata is not None and metadata.problem is None:
        findings += torch_requirement_findings(metadata.name, facts, metadata.torch_requirements)
    tags = _tags(source)
    findings += tag_findings(tags, facts)
    findings += manylinux_findings(
        tags, [LinuxLibrary(f.name, f.machine, f.needed, f.version_needs) for f in facts]
    )
    findings += bundled_library_findings(facts)
    package = metadata.name if metadata is not None and metadata.version else source.name
    findings += bundled_runtime_findings(package, [(f.name, f.runtime) for f in facts])
    findings += deprecated_shim_findings([(f.name, f.torch) for f in facts], load_table())
    findings += abi3_version_findings([(f.name, f.cpython) for f in facts])
    findings += abi3t_findings([(f.name, f.cpython, f.entry_points) for f in facts], tags)
    modules = [(f.name, f.cpython, f.is_extension) for f in facts]
    if source.wheel is not None:
        findings += free_threading_findings(tags, modules)
    if interpreter is not None:
        findings += interpreter_findings(modules, interpreter)
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


def _wheel(source: PackageSource, libraries: Sequence[ExtensionReport]) -> WheelReport | None:
    if source.wheel is None:
        return None
    unverified = tuple(
        _relative_name(lib.path, source.root) for lib in libraries if lib.verified is False
    )
    return WheelReport(source.root, source.wheel.filename, source.wheel.tags, unverified)


def _audit_sources(
    sources: Sequence[PackageSource],
    jobs: int | None,
    python: _PythonContext = _PythonContext(),
    progress: Progress = NO_PROGRESS,
    *,
    verify_archive: bool = False,
) -> list[PackageReport]:
    libraries = (p for s in sources for p in s.libraries)
    results = analyse_libraries(
        libraries, jobs=jobs, progress=progress, verify_archive=verify_archive
    )
    return [_package_report(source, results, python) for source in sources]


def _sources(target: str | Path, search_path: Sequence[Path] | None = None) -> list[PackageSource]:
    # A Path is always a path; a string may also be an import name.
    if isinstance(target, Path):
        return target_sources(str(target.absolute()))
    return target_sources(target, search_path)


def load_target(
    torch: Path | None = None,
    torch_version: str | None = None,
    environment: Sequence[Path] = (),
) -> LoadTarget | None:
    """What to predict loading against: ``torch`` (an installation or wheel), else the release
    ``torch_version``, else the torch installed in the first of ``environment`` that has one.

    Raises :class:`LoadTargetError` when ``torch`` or ``torch_version`` names nothing usable,
    or both are given.
    """
    if torch is None and torch_version is None and not environment:
        return None  # nothing to predict against: the prediction machinery is not loaded
    from torch_abi_audit import loading

    if torch is not None and torch_version is not None:
        raise LoadTargetError("--torch and --torch-version exclude each other")
    if torch is not None:
        return loading.install_target(torch, "--torch")
    if torch_version is not None:
        return loading.release_target(torch_version)
    return loading.environment_target(environment)


def _with_loads(reports: list[PackageReport], target: LoadTarget | None) -> list[PackageReport]:
    if target is None:
        return reports
    from torch_abi_audit import loading

    return loading.apply_load_target(reports, target)


def _with_guidance(
    reports: list[PackageReport], target_version: str | None, explain: bool
) -> list[PackageReport]:
    """Reports with the ``above-target-version`` findings (for ``target_version``) and, with
    ``explain``, their migration plans."""
    if target_version is None and not explain:
        return reports
    table = load_table()
    result = []
    for original in reports:
        report = original
        libraries = [
            (_relative_name(lib.path, report.root), lib.torch)
            for lib in report.libraries
            if lib.error is None and lib.skipped is None
        ]
        if target_version is not None:
            found = target_version_findings(libraries, table, target_version)
            report = replace(report, findings=report.findings + tuple(found))
        if explain:
            report = replace(report, migration=migration_plan(libraries))
        result.append(report)
    return result


def migration_plan(libraries: Sequence[tuple[str, TorchAnalysis]]) -> MigrationPlan:
    """The migration plan of a package's libraries (name, torch analysis), with the shipped
    stable-ABI and replacements tables."""
    from torch_abi_audit.rules.migration import plan_migration
    from torch_abi_audit.rules.replacements import load_replacements

    table = load_table()
    return plan_migration(libraries, TorchRules(table), load_replacements(), table)


def _is_import_name(target: str | Path) -> bool:
    return isinstance(target, str) and not looks_like_path(target)


def inspect_package(
    name_or_path: str | Path,
    *,
    jobs: int | None = None,
    torch: Path | None = None,
    torch_version: str | None = None,
    assume_minimum_abi3: str = FIRST_ABI3,
    target_version: str | None = None,
    explain: bool = False,
    verify_archive: bool = False,
) -> PackageReport:
    """Audit one package given as an import name or a path (package directory or file).

    An import name is resolved without importing anything. An unknown name or a missing path
    gives a report with ``error`` set. Raises :class:`ValueError` for a target that holds
    several packages (a directory of wheels): :func:`inspect_targets` audits those.
    Loading is predicted against ``torch`` (an installation directory or wheel) or the release
    ``torch_version`` when given (:class:`LoadTargetError` if they name nothing usable), else,
    for an import name, against the torch of the running interpreter's site-packages.
    A wheel's members are decompressed only as far as the audit needs, unless
    ``verify_archive``: then each is read to its end and its size and CRC-32 are checked.
    ``target_version`` (``"2.10"``) is the oldest torch a stable build promises: libraries
    importing newer shims get ``above-target-version``. ``explain`` adds each package's
    :class:`~torch_abi_audit.rules.migration.MigrationPlan` (``report.migration``).
    """
    sources = _sources(name_or_path)
    if len(sources) != 1:
        raise ValueError(f"{name_or_path} holds {len(sources)} packages: use inspect_targets")
    installed = _is_import_name(name_or_path)
    target = load_target(torch, torch_version, default_site_packages() if installed else [])
    python = _PythonContext(assume_minimum_abi3, running_interpreter() if installed else None)
    audited = _audit_sources(sources, jobs, python, verify_archive=verify_archive)
    reports = _with_loads(audited, target)
    return _with_guidance(reports, target_version, explain)[0]


def inspect_targets(
    targets: Sequence[str | Path],
    *,
    jobs: int | None = None,
    downloads: Sequence[str] = (),
    platforms: Sequence[str] = (),
    python_version: str | None = None,
    cache: Path | None = None,
    torch: Path | None = None,
    torch_version: str | None = None,
    predict_loads: bool = True,
    assume_minimum_abi3: str = FIRST_ABI3,
    target_version: str | None = None,
    explain: bool = False,
    site_packages: Sequence[Path] | None = None,
    progress: Progress = NO_PROGRESS,
    verify_archive: bool = False,
) -> list[PackageReport]:
    """Audit several targets in one pass (one worker pool for all their libraries).

    A target may give several packages (a directory holding wheels); they come in order.
    ``downloads`` are requirement specs fetched from the index with pip (once per platform in
    ``platforms``, for ``python_version``, into ``cache``) and audited after the targets.
    Import names are resolved in ``site_packages`` when given (another environment's), else as
    this interpreter would. Loading is predicted as :func:`inspect_package` does (for import
    names, or in ``site_packages``, unless ``predict_loads`` is false), against the torch of
    that environment; abi3 modules without a wheel tag to say otherwise are judged against
    ``assume_minimum_abi3``; :class:`LoadTargetError` if ``torch`` / ``torch_version`` name
    nothing usable. ``progress`` hears about downloads and the libraries read. Wheels are
    verified as :func:`inspect_package` says (``verify_archive``). ``target_version`` and
    ``explain`` as for :func:`inspect_package`.
    """
    installed = any(_is_import_name(t) for t in targets)
    interpreter: Interpreter | None = running_interpreter() if installed else None
    environment = default_site_packages() if installed else []
    if site_packages is not None:
        environment = [p.absolute() for p in site_packages]
        interpreter = site_packages_interpreter(environment[0]) if environment else None
    target = load_target(torch, torch_version, environment if predict_loads else [])
    python = _PythonContext(assume_minimum_abi3, interpreter)
    sources = [s for target in targets for s in _sources(target, site_packages)]
    for spec in downloads:
        sources += download_sources(spec, platforms, python_version, cache, progress)
    audited = _audit_sources(sources, jobs, python, progress, verify_archive=verify_archive)
    reports = _with_loads(audited, target)
    return _with_guidance(reports, target_version, explain)


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
    path: Path | str | Sequence[Path] | None = None,
    *,
    jobs: int | None = None,
    torch: Path | None = None,
    torch_version: str | None = None,
    predict_loads: bool = True,
    assume_minimum_abi3: str = FIRST_ABI3,
    target_version: str | None = None,
    explain: bool = False,
    progress: Progress = NO_PROGRESS,
) -> EnvironmentReport:
    """Audit every package in a site-packages directory (default: the running interpreter's).

    Libraries are grouped by the installed distribution that owns them. A directory that does
    not exist or cannot be listed is reported in ``problems``. Loading is predicted against
    ``torch`` or ``torch_version`` when given, else (unless ``predict_loads`` is false) against
    the torch installed in the scanned directories; :class:`LoadTargetError` if ``torch`` /
    ``torch_version`` name nothing usable.
    """
    interpreter: Interpreter | None
    if path is None:
        directories = default_site_packages()
        interpreter = running_interpreter()
    elif isinstance(path, (str, Path)):
        directories = [Path(path)]
    else:
        directories = [Path(p) for p in path]
    directories = [d.absolute() for d in directories]
    if path is not None:
        interpreter = site_packages_interpreter(directories[0]) if directories else None
    python = _PythonContext(assume_minimum_abi3, interpreter)
    sources: list[PackageSource] = []
    problems: list[ScanProblem] = []
    with LibraryAnalysis(jobs, eager=True, progress=progress) as analysis:
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
        # While the workers read the libraries: torch's exports, and the table the findings
        # need (the parent would otherwise load it after them, on the critical path).
        target = load_target(torch, torch_version, directories if predict_loads else [])
        load_table()
        results = analysis.results()
    packages = _with_loads([_package_report(source, results, python) for source in sources], target)
    packages = _with_guidance(packages, target_version, explain)
    return EnvironmentReport(
        site_packages=directories[0] if directories else Path(),
        packages=tuple(packages),
        search_paths=tuple(directories),
        problems=_problems(problems),
        torch_reference=target.reference if target is not None else None,
    )


__all__ = [
    "LoadTargetError",
    "analyse_libraries",
    "default_site_packages",
    "inspect_extension",
    "inspect_package",
    "inspect_site_packages",
    "inspect_targets",
    "load_target",
    "migration_plan",
]
