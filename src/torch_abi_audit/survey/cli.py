"""``torch-abi-audit survey``: audit every wheel of many packages into a store, and report on it.

Subcommands: ``run`` (fetch and audit into the store), ``report`` (markdown and HTML with plots),
``export`` (CSV or Parquet), ``packages`` (the shipped list of torch extension packages).

Exit codes: 0 done; 2 an operational problem (a package the index does not list, a wheel that
failed — stored as a row with its reason —, bad usage, an unusable store or engine); 130
interrupted (what was stored stays: run the same command again to resume).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from torch_abi_audit.renderers.escape import terminal_text
from torch_abi_audit.survey.curated import CuratedListError, load_curated, read_package_file

#: One line for ``torch-abi-audit --help``.
SUMMARY = "audit every wheel of many packages' releases into a store; report"

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from torch_abi_audit.survey.platforms import DEFAULT_PLATFORMS, DEFAULT_PYTHON

    run = commands.add_parser(
        "run",
        help="fetch and audit the wheels of packages' releases into a store",
        description="For each package: its releases on the index (newest N, all, or a "
        "version range), the wheel each platform gets for one Python, fetched with pip, "
        "audited in place and deleted. A rerun skips the wheels the store holds.",
    )
    run.add_argument("packages", nargs="*", metavar="PACKAGE", help="project names on the index")
    run.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        type=Path,
        action="append",
        default=[],
        help="read package names from FILE (one per line, # comments; or a curated-list JSON)",
    )
    run.add_argument(
        "--curated",
        action="store_true",
        help="survey the shipped list of torch extension packages (see 'survey packages')",
    )
    run.add_argument("--store", required=True, type=Path, metavar="PATH", help="SQLite store")
    run.add_argument(
        "--releases",
        default="3",
        metavar="N|all|SPEC",
        help="the newest N releases (default 3), all, or a version specifier like '>=0.10,<1'",
    )
    run.add_argument("--pre", action="store_true", help="include pre-releases")
    run.add_argument(
        "--platform",
        action="append",
        default=[],
        metavar="TAG",
        help=f"a platform, by its newest tag (repeatable; default: {' '.join(DEFAULT_PLATFORMS)})",
    )
    run.add_argument(
        "--python-version",
        default=DEFAULT_PYTHON,
        metavar="X.Y",
        help="the Python to fetch wheels for (default %(default)s)",
    )
    _add_execution(run)


def _add_execution(run: argparse.ArgumentParser) -> None:
    """``survey run``'s options for where and how the tasks run."""
    run.add_argument(
        "--engine",
        choices=("local", "dask"),
        default="local",
        help="local: a process pool (default); dask: a Dask cluster (--address, or a local "
        "one started for the run)",
    )
    run.add_argument("--address", metavar="ADDR", help="the Dask scheduler (tcp://host:8786)")
    run.add_argument("-j", "--jobs", type=int, metavar="N", help="workers (default: CPUs)")
    run.add_argument(
        "--torch-version",
        metavar="X.Y[.Z][+VARIANT]",
        help="predict loading on this torch release, each library against the release's "
        "default build of its own platform (+cpu or +cuXY for another variant; default: the "
        "newest release the release data holds a build of for every platform)",
    )
    run.add_argument(
        "--no-load-prediction", action="store_true", help="do not predict loading on a torch"
    )
    run.add_argument(
        "--keep", metavar="DIR", type=Path, help="keep the fetched wheels in DIR (default: delete)"
    )
    run.add_argument(
        "--work-dir",
        metavar="DIR",
        type=Path,
        help="where wheels are fetched to while they are audited (default: the temp directory)",
    )
    run.add_argument(
        "--index-url",
        metavar="URL",
        help="the simple index (PEP 691) to list and fetch from (default: $PIP_INDEX_URL, "
        "else PyPI)",
    )
    run.add_argument("--dry-run", action="store_true", help="list and plan, fetch nothing")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def build_parser() -> argparse.ArgumentParser:
    """The ``survey`` parser and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="torch-abi-audit survey",
        description="Survey the index: audit every wheel of many packages into a store, "
        "then report on the ecosystem.",
        epilog="exit status: 0 done, 2 operational problem (failed wheels are stored with "
        "their reason), 130 interrupted (rerun to resume)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(commands)
    report = commands.add_parser(
        "report",
        help="write a markdown and an HTML report with plots",
        description="Write DIR/report.md, DIR/index.html and DIR/plots/*.svg from a store.",
    )
    report.add_argument("--store", required=True, type=Path, metavar="PATH")
    report.add_argument("-o", "--output", required=True, type=Path, metavar="DIR")
    report.add_argument("--title", default="Torch extension packages on the index")
    export = commands.add_parser(
        "export",
        help="export the store's tables as CSV or Parquet",
        description="Write DIR/TABLE.csv (or .parquet) for every table of the store.",
    )
    export.add_argument("--store", required=True, type=Path, metavar="PATH")
    export.add_argument("-o", "--output", required=True, type=Path, metavar="DIR")
    export.add_argument("--format", choices=("csv", "parquet"), default="csv")
    packages = commands.add_parser(
        "packages", help="print the shipped list of torch extension packages"
    )
    packages.add_argument("-v", "--verbose", action="store_true", help="with the evidence")
    return parser


def _packages(args: argparse.Namespace) -> list[str]:
    names = list(args.packages)
    for path in args.from_file:
        names += read_package_file(path)
    if args.curated:
        names += [entry.name for entry in load_curated().packages]
    unique: dict[str, None] = {}
    for name in names:
        unique.setdefault(name, None)
    return list(unique)


def _load_version(args: argparse.Namespace) -> str | None:
    """The torch release to predict loading on: ``--torch-version``, else the newest release
    the release data holds a build of for every platform
    (:func:`~torch_abi_audit.survey.loads.default_release`)."""
    if args.no_load_prediction:
        return None
    from torch_abi_audit.loading import release_target
    from torch_abi_audit.survey.loads import default_release

    text = args.torch_version or default_release()
    release_target(text)  # raises LoadTargetError for anything that is not a known release
    return text


def _run(args: argparse.Namespace) -> int:
    from torch_abi_audit.survey.engines import start_engine
    from torch_abi_audit.survey.plan import parse_releases
    from torch_abi_audit.survey.platforms import DEFAULT_PLATFORMS, validate
    from torch_abi_audit.survey.runner import Progress, SurveyOptions, plan_survey, run_survey
    from torch_abi_audit.survey.store import SurveyStore

    packages = _packages(args)
    if not packages:
        raise _UsageError("give at least one PACKAGE, --from FILE or --curated")
    if args.jobs is not None and args.jobs < 1:
        raise _UsageError("--jobs must be at least 1")
    platforms = args.platform or list(DEFAULT_PLATFORMS)
    validate(platforms, args.python_version)
    options = SurveyOptions(
        packages=packages,
        releases=parse_releases(args.releases, include_pre=args.pre),
        platforms=platforms,
        python=args.python_version,
        torch_version=_load_version(args),
        keep_dir=args.keep.absolute() if args.keep else None,
        work_dir=args.work_dir.absolute() if args.work_dir else None,
        index=args.index_url.rstrip("/") + "/" if args.index_url else None,
    )
    progress = Progress(quiet=args.quiet)
    with SurveyStore(args.store) as store:
        if args.dry_run:
            summary = plan_survey(options, store, progress)
            size = sum(job.size or 0 for job in summary.todo)
            _say(
                f"{len(summary.plan.jobs)} wheels planned, {summary.skipped} stored, "
                f"{len(summary.todo)} to fetch ({size / 1e9:.2f} GB)",
                *(
                    terminal_text(f"{job.package} {job.version} {job.filename}")
                    for job in summary.todo
                ),
            )
            return EXIT_ERROR if summary.listing_errors else EXIT_OK
        engine = start_engine(args.engine, workers=args.jobs, address=args.address)
        command = shlex.join(["torch-abi-audit", "survey", *args.argv])
        try:
            totals, summary = run_survey(
                options, store, engine, progress, command=command, local_work_dir=not args.address
            )
        except KeyboardInterrupt:
            print(
                terminal_text(
                    f"survey: interrupted; what was stored stays in {args.store}: run the "
                    "same command again to resume"
                ),
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
        engine.close()
    progress.say(
        f"done: {totals.audited} audited, {totals.failed} failed, {totals.skipped} already "
        f"stored; {totals.bytes / 1e9:.2f} GB read in {totals.wall_seconds:.0f}s "
        f"({totals.cpu_seconds:.0f} CPU-s)"
    )
    return EXIT_ERROR if totals.failed or summary.listing_errors else EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from torch_abi_audit.survey.report import write_report
    from torch_abi_audit.survey.store import SurveyStore

    with SurveyStore(args.store, create=False) as store:
        written = write_report(store, args.output, title=args.title)
    _say(*(terminal_text(str(path)) for path in written))
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from torch_abi_audit.survey.store import SurveyStore

    with SurveyStore(args.store, create=False) as store:
        written = store.export(args.output, args.format)
    _say(*(terminal_text(str(path)) for path in written))
    return EXIT_OK


def _list_packages(args: argparse.Namespace) -> int:
    curated = load_curated()
    _say(
        *(
            f"{entry.name}\t{entry.release}\t{entry.requires_torch}\t{entry.platforms}"
            if args.verbose
            else entry.name
            for entry in curated.packages
        )
    )
    return EXIT_OK


def _say(*lines: str) -> None:
    """Lines on standard output (:class:`~torch_abi_audit.output.OutputError` when it is closed
    or cannot take them: main says so and exits 2)."""
    from torch_abi_audit.output import write_report as write_text

    if lines:
        write_text("\n".join(lines), None)


class _UsageError(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``torch-abi-audit survey ARGV``; returns the exit code."""
    from torch_abi_audit.loading import LoadTargetError
    from torch_abi_audit.output import OutputError
    from torch_abi_audit.survey.engines import EngineError
    from torch_abi_audit.survey.plan import ReleaseSpecError
    from torch_abi_audit.survey.platforms import PlatformError
    from torch_abi_audit.survey.runner import WorkDirError
    from torch_abi_audit.survey.store import StoreError

    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[2:] if argv is None else argv)  # recorded in the runs table
    handlers = {"run": _run, "report": _report, "export": _export, "packages": _list_packages}
    try:
        return handlers[args.command](args)
    except (_UsageError, ReleaseSpecError, PlatformError, LoadTargetError) as exc:
        parser.print_usage(sys.stderr)
        print(terminal_text(f"torch-abi-audit survey: error: {exc}"), file=sys.stderr)
        return EXIT_ERROR
    except (StoreError, EngineError, CuratedListError, WorkDirError, OutputError) as exc:
        print(terminal_text(f"torch-abi-audit survey: error: {exc}"), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("torch-abi-audit survey: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
