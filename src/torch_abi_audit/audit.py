"""Run the audit: read every library once (in parallel), judge it, assemble the reports.

This is the public Python API: :func:`inspect_extension`, :func:`inspect_package`,
:func:`inspect_site_packages` (and :func:`inspect_targets` for several at once). Bad input never
raises here; it comes back as reports whose ``error`` (or ``problems``) say what went wrong.
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from collections.abc import Callable, Iterable, Sequence
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
from torch_abi_audit.python_model import Interpreter, is_torch_distribution
from torch_abi_audit.report import (
    Distribution,
    EnvironmentReport,
    ExtensionReport,
    LibraryKind,
    PackageReport,
    Problem,
    WheelReport,
)
from torch_abi_audit.rules.cpython_abi import FIRST_ABI3, CPythonAnalysis, abi3_baseline
from torch_abi_audit.rules.facts import LibraryFacts, PackageFacts, RuleContext
from torch_abi_audit.rules.pipeline import package_findings
from torch_abi_audit.rules.torch_abi import TorchAnalysis, torch_rules
from torch_abi_audit.rules.torch_table import load_table
from torch_abi_audit.sources.discovery import ScanProblem
from torch_abi_audit.sources.distributions import InstalledDistribution, find_distributions
from torch_abi_audit.sources.interpreter import running_interpreter, site_packages_interpreter
from torch_abi_audit.sources.metadata import load_requirement_parser
from torch_abi_audit.sources.packages import (
    ListedLibraries,
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
class _AuditContext:
    """What the rules need beyond the binaries: the abi3 version to assume when no wheel tag
    says, the interpreter of the environment (when known), and the oldest torch a stable build
    promises to load on (``--target-version``)."""

    assume_minimum_abi3: str = FIRST_ABI3
    interpreter: Interpreter | None = None
    target_version: str | None = None


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
    python: _AuditContext = _AuditContext(),
) -> PackageReport:
    """The package's report, without findings yet (they need the load predictions)."""
    libraries = [results[location] for location in source.libraries]
    libraries = _with_baselines(libraries, _tags(source), python.assume_minimum_abi3)
    base = source.base or source.root
    libraries = [replace(lib, distribution_path=_inside(lib.path, base)) for lib in libraries]
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
    )


def _package_facts(source: PackageSource, report: PackageReport) -> PackageFacts:
    """What the finding rules are given about a package (its audited libraries only)."""
    libraries = tuple(
        LibraryFacts(
            lib.distribution_path or lib.path.name,
            lib.kind is LibraryKind.EXTENSION,
            lib.torch,
            lib.cpython,
            lib.needed,
            _os_floors(lib),
            lib.entry_points,
            lib.load,
            lib.runtime,
            lib.machine,
            lib.version_needs,
        )
        for lib in report.libraries
        if lib.error is None and lib.skipped is None
    )
    metadata = source.metadata
    readable = metadata is not None and metadata.problem is None
    return PackageFacts(
        name=metadata.name if metadata is not None and readable else source.name,
        libraries=libraries,
        requirements=metadata.torch_requirements if metadata is not None and readable else None,
        invalid_requirements=(
            metadata.invalid_torch_requirements if metadata is not None and readable else ()
        ),
        tags=_tags(source),
        from_wheel=source.wheel is not None,
        is_torch=is_torch_distribution(metadata.name if metadata is not None else source.name),
    )


def _with_findings(
    reports: Sequence[PackageReport],
    sources: Sequence[PackageSource],
    python: _AuditContext = _AuditContext(),
) -> list[PackageReport]:
    """Each report with the findings of every rule (after load prediction, whose failures are
    findings too)."""
    context = RuleContext(interpreter=python.interpreter, target_version=python.target_version)
    return [
        replace(report, findings=package_findings(_package_facts(source, report), context))
        for report, source in zip(reports, sources, strict=True)
    ]


def _os_floors(lib: ExtensionReport) -> tuple[tuple[str, str], ...]:
    """(architecture, minimum OS) of each slice, or of the library itself when it is thin."""
    parts = lib.slices or (lib,)
    return tuple((p.machine, p.min_os) for p in parts if p.machine and p.min_os)


# Wheel members under <name>.data/platlib/ or purelib/ are installed at the top of site-packages.
_WHEEL_LIB_DATA = re.compile(r"^[^/]+\.data/(?:platlib|purelib)/")


def _inside(path: Path, base: Path) -> str:
    """Where a library lies inside its distribution: relative to ``base``, with a wheel's
    ``.data/platlib/`` prefix dropped (as installing it would), or just its name."""
    text, prefix = str(path), str(base)
    prefix = prefix if prefix.endswith(os.sep) else prefix + os.sep
    if text.startswith(prefix):
        # What relative_to gives for a path under base as written (both are normalised), in
        # a tenth of the time; another spelling (Windows letter case) goes the long way.
        relative = text[len(prefix) :].replace(os.sep, "/")
    else:
        try:
            relative = path.relative_to(base).as_posix()
        except ValueError:
            return path.name
    return _WHEEL_LIB_DATA.sub("", relative)


def _wheel(source: PackageSource, libraries: Sequence[ExtensionReport]) -> WheelReport | None:
    if source.wheel is None:
        return None
    unverified = tuple(
        lib.path.relative_to(source.root).as_posix() for lib in libraries if lib.verified is False
    )
    return WheelReport(source.root, source.wheel.filename, source.wheel.tags, unverified)


def _audit_sources(
    sources: Sequence[PackageSource],
    jobs: int | None,
    python: _AuditContext = _AuditContext(),
    target: LoadTarget | None = None,
    progress: Progress = NO_PROGRESS,
    *,
    verify_archive: bool = False,
) -> list[PackageReport]:
    """Read and judge the sources' libraries, predict their loads on ``target``, find."""
    libraries = (p for s in sources for p in s.libraries)
    results = analyse_libraries(
        libraries, jobs=jobs, progress=progress, verify_archive=verify_archive
    )
    return _judged(sources, results, python, target)


def _ready_to_judge(sources: Iterable[PackageSource]) -> None:
    """Load what judging ``sources`` will need in this process: the stable-ABI table (every
    package's findings use it) and, when a distribution may require torch, the requirement
    parser. Called while worker processes read the libraries, where this process would
    otherwise wait, instead of after them, on the critical path (~25 ms)."""
    load_table()
    if any(s.metadata is not None and s.metadata.may_require_torch for s in sources):
        load_requirement_parser()


def _judged(
    sources: Sequence[PackageSource],
    results: dict[LibraryLocation, ExtensionReport],
    python: _AuditContext,
    target: LoadTarget | None,
) -> list[PackageReport]:
    """The sources' package reports from their libraries' ``results``: loads, findings."""
    reports = _with_loads([_package_report(source, results, python) for source in sources], target)
    return _with_findings(reports, sources, python)


#: A wheel this large is read by worker processes started before its central directory is read:
#: their rule tables load while this process reads it (for a smaller one, the pool may not pay).
_EARLY_POOL_WHEEL_SIZE = 64 << 20


def _large_wheel(target: str | Path) -> bool:
    if not str(target).endswith(".whl"):
        return False
    try:
        return Path(target).stat().st_size >= _EARLY_POOL_WHEEL_SIZE
    except OSError:
        return False


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


def _with_guidance(reports: list[PackageReport], explain: bool) -> list[PackageReport]:
    """Reports with their migration plans, when ``explain``."""
    if not explain:
        return reports
    return [
        replace(
            report,
            migration=migration_plan(
                [
                    (report.library_name(lib.path), lib.torch)
                    for lib in report.libraries
                    if lib.error is None and lib.skipped is None
                ]
            ),
        )
        for report in reports
    ]


def migration_plan(libraries: Sequence[tuple[str, TorchAnalysis]]) -> MigrationPlan:
    """The migration plan of a package's libraries (name, torch analysis), with the shipped
    stable-ABI and replacements tables."""
    from torch_abi_audit.rules.migration import plan_migration
    from torch_abi_audit.rules.replacements import load_replacements

    return plan_migration(libraries, torch_rules(), load_replacements(), load_table())


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
    python = _AuditContext(assume_minimum_abi3, running_interpreter() if installed else None)
    python = replace(python, target_version=target_version)
    audited = _audit_sources(sources, jobs, python, target, verify_archive=verify_archive)
    return _with_guidance(audited, explain)[0]


@dataclass(frozen=True)
class TargetReports:
    """The packages one requested target gave: ``target`` as given (a ``TARGET``, or
    ``SPEC [platform]`` for a download), ``packages`` in order (none, one, or one per wheel of
    a directory)."""

    target: str
    packages: tuple[PackageReport, ...]


def inspect_requests(
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
) -> list[TargetReports]:
    """:func:`inspect_targets`, with the packages grouped by the target that gave them."""
    installed = any(_is_import_name(t) for t in targets)
    interpreter: Interpreter | None = running_interpreter() if installed else None
    environment = default_site_packages() if installed else []
    if site_packages is not None:
        environment = [p.absolute() for p in site_packages]
        interpreter = site_packages_interpreter(environment[0]) if environment else None
    target = load_target(torch, torch_version, environment if predict_loads else [])
    python = _AuditContext(assume_minimum_abi3, interpreter, target_version)
    early = any(_large_wheel(t) for t in targets)
    with LibraryAnalysis(
        jobs, eager=early, progress=progress, verify_archive=verify_archive
    ) as analysis:
        groups = [(str(t), _sources(t, site_packages)) for t in targets]
        for spec in downloads:
            fetched = download_sources(spec, platforms, python_version, cache, progress)
            labels = [f"{spec} [{p}]" for p in platforms] if platforms else [spec]
            groups += [(label, [source]) for label, source in zip(labels, fetched, strict=True)]
        sources = [s for _, group in groups for s in group]
        analysis.submit(p for s in sources for p in s.libraries)
        _ready_to_judge(sources)
        results = analysis.results()
    audited = _judged(sources, results, python, target)
    reports = iter(_with_guidance(audited, explain))
    return [TargetReports(label, tuple(next(reports) for _ in group)) for label, group in groups]


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
    requests = inspect_requests(
        targets,
        jobs=jobs,
        downloads=downloads,
        platforms=platforms,
        python_version=python_version,
        cache=cache,
        torch=torch,
        torch_version=torch_version,
        predict_loads=predict_loads,
        assume_minimum_abi3=assume_minimum_abi3,
        target_version=target_version,
        explain=explain,
        site_packages=site_packages,
        progress=progress,
        verify_archive=verify_archive,
    )
    return [package for request in requests for package in request.packages]


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


def _head_start(
    directory: Path, analysis: LibraryAnalysis
) -> Callable[[InstalledDistribution], None]:
    """What to do with each distribution of ``directory`` as soon as its ``RECORD`` is read:
    submit the libraries it lists that the walk will find where they are listed."""
    listed = ListedLibraries(directory)
    return lambda dist: analysis.submit(listed(dist))


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
    python = _AuditContext(assume_minimum_abi3, interpreter)
    sources: list[PackageSource] = []
    problems: list[ScanProblem] = []
    with LibraryAnalysis(jobs, eager=True, progress=progress) as analysis:
        for directory in directories:
            if not directory.is_dir():
                reason = "not a directory" if directory.exists() else "directory does not exist"
                problems.append(ScanProblem(directory, reason))
                continue
            try:
                # Start on the libraries each RECORD lists as soon as it is read, while the
                # other RECORDs are read and the tree is walked (those that are where the walk
                # will find them, inside the directory).
                distributions = find_distributions(
                    directory, on_read=_head_start(directory, analysis)
                )
                found, loose = site_packages_sources(directory, distributions)
            except OSError as exc:
                problems.append(ScanProblem(directory, exc.strerror or str(exc)))
                continue
            analysis.submit(path for source in found for path in source.libraries)
            sources.extend(found)
            problems.extend(loose)
        # While the workers read the libraries: torch's exports, and what judging needs.
        target = load_target(torch, torch_version, directories if predict_loads else [])
        _ready_to_judge(sources)
        results = analysis.results()
    packages = _with_loads([_package_report(source, results, python) for source in sources], target)
    packages = _with_findings(packages, sources, replace(python, target_version=target_version))
    packages = _with_guidance(packages, explain)
    return EnvironmentReport(
        site_packages=directories[0] if directories else Path(),
        packages=tuple(packages),
        search_paths=tuple(directories),
        problems=_problems(problems),
        torch_reference=target.reference if target is not None else None,
    )


__all__ = [
    "LoadTargetError",
    "TargetReports",
    "analyse_libraries",
    "default_site_packages",
    "inspect_extension",
    "inspect_package",
    "inspect_requests",
    "inspect_site_packages",
    "inspect_targets",
    "load_target",
    "migration_plan",
]
