"""Command-line entry point: argv in, report out, exit code back. Only wiring lives here.

Exit codes: 0 when the audit ran (whatever the verdicts), 1 when ``--check`` found a violating
package, 2 on operational errors (unknown import name, missing path, unreadable or corrupt file,
bad usage). 2 wins over 1.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import importlib
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from torch_abi_audit import gating
from torch_abi_audit._version import __version__
from torch_abi_audit.audit import (
    LoadTargetError,
    default_site_packages,
    inspect_requests,
    inspect_site_packages,
)
from torch_abi_audit.checks import policy_argument
from torch_abi_audit.console import (
    EXIT_CHECK_FAILED,
    EXIT_ERROR,
    EXIT_OK,
    Console,
    exit_code,
    writes_to_terminal,
)
from torch_abi_audit.engine import tune_collector
from torch_abi_audit.output import OutputError, write_report
from torch_abi_audit.renderers.base import RenderOptions
from torch_abi_audit.renderers.escape import terminal_lines
from torch_abi_audit.renderers.registry import DEFAULT_FORMAT, RENDERERS, get_renderer
from torch_abi_audit.report import AuditResult
from torch_abi_audit.rules.cpython_abi import FIRST_ABI3
from torch_abi_audit.sources.environments import (
    ISOLATED,
    EnvironmentNotFound,
    find_environment,
    site_packages_directories,
    tool_environment,
)

__all__ = ["EXIT_CHECK_FAILED", "EXIT_ERROR", "EXIT_OK", "build_parser", "main", "run"]

#: Subcommands: name -> (module under ``torch_abi_audit.commands``, one-line summary). The
#: module is imported only when its subcommand runs (see :mod:`torch_abi_audit.commands`).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "diff": ("diff", "compare two builds of a package: port progress and regressions"),
    "explain": ("explain", "what a libtorch symbol, operator or macro is, and what replaces it"),
    "survey": ("survey", "audit every wheel of many packages' releases into a store; report"),
}


def _epilog() -> str:
    lines = []
    if SUBCOMMANDS:
        lines.append("subcommands (torch-abi-audit SUBCOMMAND --help for each):")
        lines += [f"  {name:<9} {summary}" for name, (_, summary) in SUBCOMMANDS.items()]
        lines.append("")
    lines.append("exit status: 0 audit ran, 1 --check found a violation, 2 operational error")
    lines.append("(unknown name, missing path, unreadable or corrupt file)")
    return "\n".join(lines)


def _add_mode_arguments(parser: argparse.ArgumentParser) -> None:
    """What to audit: --env, --site-packages, --python."""
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--env",
        action="store_true",
        help="audit every package in the running interpreter's site-packages",
    )
    mode.add_argument(
        "--site-packages",
        metavar="PATH",
        type=Path,
        action="append",
        help="audit every package in this site-packages directory, or in the environment "
        "whose root this is (repeatable)",
    )
    mode.add_argument(
        "--python",
        metavar="PATH",
        type=Path,
        help="audit the environment of this interpreter or virtual environment (found from its "
        "files: the interpreter is not run); the way to audit your project's environment when "
        "this tool runs from its own (uvx, pipx)",
    )


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the report goes, in which format: --format, --json, -o, -q."""
    output = parser.add_argument_group("output")
    formats = output.add_mutually_exclusive_group()
    formats.add_argument(
        "--format",
        choices=list(RENDERERS),
        help=f"report format (default: {DEFAULT_FORMAT}, or the configuration's): "
        + "; ".join(f"{name}: {r.description}" for name, r in RENDERERS.items()),
    )
    formats.add_argument(
        "--json",
        dest="format",
        action="store_const",
        const="json",
        help="same as --format json (indented on a terminal, one line when piped)",
    )
    output.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        type=Path,
        help="write the report to FILE (atomically: the old file or the whole new one, never "
        "half of it) instead of standard output",
    )
    output.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress and no notes on standard error: only errors and failed gates",
    )


def _add_porting_arguments(parser: argparse.ArgumentParser) -> None:
    """Porting to the stable ABI: --explain, --target-version."""
    porting = parser.add_argument_group("porting to the stable ABI")
    porting.add_argument(
        "--explain",
        action="store_true",
        help="add each package's migration plan: every unstable libtorch entity once, with "
        "occurrence and library counts, what replaces it on the stable ABI (and since which "
        "torch), and what that means for the package's min torch",
    )
    porting.add_argument(
        "--target-version",
        metavar="X.Y",
        help="the oldest torch a stable build promises (what TORCH_TARGET_VERSION encodes): "
        "libraries importing shims newer than X.Y get above-target-version (error, fails "
        "--check torch); shims looked up at run time with dlsym do not count",
    )


def _add_loading_arguments(parser: argparse.ArgumentParser) -> None:
    """The torch loading is predicted against."""
    loading = parser.add_argument_group("predicting loads on a torch")
    loading.add_argument(
        "--torch",
        metavar="PATH",
        type=Path,
        help="predict whether each library loads on this torch installation: a torch package "
        "directory, a site-packages holding one, or a torch wheel (default with --env, "
        "--site-packages and import names: the torch installed there)",
    )
    loading.add_argument(
        "--torch-version",
        metavar="X.Y[.Z][+VARIANT]",
        help="predict loading on this torch release: each library against the release's "
        "default build of its platform (the libraries it installs, what they export; +cpu or "
        "+cuXY for another variant); what the release data cannot tell is 'unknown'",
    )
    loading.add_argument(
        "--no-load-prediction",
        action="store_true",
        help="do not predict loading on the torch found in the scanned environment",
    )


def _add_index_arguments(parser: argparse.ArgumentParser) -> None:
    """Fetching wheels from the index: --download and its companions."""
    index = parser.add_argument_group("fetching wheels from the index (with pip)")
    index.add_argument(
        "--download",
        metavar="SPEC",
        action="append",
        default=[],
        help="fetch the wheel(s) for a requirement (e.g. torchcodec==0.17.0) and audit them",
    )
    index.add_argument(
        "--platform",
        metavar="TAG",
        action="append",
        default=[],
        help="with --download: a platform tag (repeatable: one wheel per platform)",
    )
    index.add_argument(
        "--python-version",
        metavar="X.Y",
        help="with --download: the Python version to fetch wheels for",
    )
    index.add_argument(
        "--cache-dir",
        metavar="DIR",
        type=Path,
        help="with --download: where wheels are kept (default: ~/.cache/torch-abi-audit/wheels, "
        "or $TORCH_ABI_AUDIT_CACHE/wheels)",
    )


def _add_gate_arguments(parser: argparse.ArgumentParser) -> None:
    """The CI gates: --check, the exceptions, the configuration."""
    group = parser.add_argument_group("gates (CI)")
    group.add_argument(
        "--check",
        type=policy_argument,
        action="extend",
        metavar="{torch,abi3,metadata,load,both,all}[,...]",
        help=(
            "CI gate (comma list, repeatable): exit 1 if a package violates the policy. torch: "
            "uses libtorch internals; abi3: abi3-tagged extension with non-stable CPython API, "
            "or torch-using package that is not abi3-compliant; metadata: a packaging finding "
            "of severity error or warning; load: a library predicted not to load on the torch "
            "below; both: torch and abi3; all: every gate"
        ),
    )
    group.add_argument(
        "--ignore",
        metavar="CODE",
        action="append",
        help="a finding code no gate counts (repeatable); still reported, marked ignored",
    )
    group.add_argument(
        "--baseline",
        metavar="FILE",
        type=Path,
        help="TOML file of [[allow]] entries: known violations the gates accept; entries "
        "that match nothing any more, or are past their expires date, fail the gate",
    )
    group.add_argument(
        "--write-baseline",
        metavar="FILE",
        type=Path,
        help='write the current violations to FILE as [[allow]] entries (reason = "TODO"), '
        "keeping the --baseline entries still in use",
    )
    group.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help="read settings from FILE (default: [tool.torch-abi-audit] in the nearest "
        "pyproject.toml upward from the working directory)",
    )
    group.add_argument("--no-config", action="store_true", help="read no configuration file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="torch-abi-audit",
        description=(
            "Audit compiled Python packages for PyTorch Stable ABI and CPython Stable ABI\n"
            "(abi3) use, from their symbol tables, without importing them."
        ),
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help="import name (resolved without importing), package directory, or library file",
    )
    _add_mode_arguments(parser)
    _add_output_arguments(parser)
    parser.add_argument(
        "--all",
        action="store_true",
        help="in environment mode, also list packages that do not use torch",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="list offending symbols (first 15 per library) and what sets the torch floor",
    )
    _add_gate_arguments(parser)
    parser.add_argument(
        "--assume-minimum-abi3",
        metavar="X.Y",
        default=FIRST_ABI3,
        help="abi3 version to judge abi3 modules against when no wheel tag says "
        "(default: %(default)s, as abi3audit)",
    )
    _add_porting_arguments(parser)
    parser.add_argument(
        "--verify-archive",
        action="store_true",
        help="read every library member of a wheel to its end and check its size and CRC-32 "
        "(by default members are decompressed only as far as the audit needs; the report says "
        "when a wheel was not fully verified)",
    )
    _add_loading_arguments(parser)
    _add_index_arguments(parser)
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        metavar="N",
        help="worker processes for reading libraries (default: one per CPU)",
    )
    return parser


def _warn(*lines: str) -> None:
    """A message on stderr, one line per argument, escaped as the table escapes its own (the
    names in it come from the audited input). When standard error cannot take it (``2>
    /dev/full``), the message is lost: the exit code still tells."""
    try:
        print(terminal_lines(list(lines)), file=sys.stderr)
    except (OSError, ValueError):
        return


def _same_path(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name the same directory (links followed)."""
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _environment(args: argparse.Namespace, console: Console) -> list[Path] | None:
    """The site-packages directories ``--python`` or ``--site-packages`` name (``None`` for the
    running interpreter's); says on stderr which environment ``--python`` found, and warns when
    ``--env`` would audit this tool's own isolated environment. Raises
    :class:`EnvironmentNotFound`."""
    if args.python is not None:
        found = find_environment(args.python)
        console.note(f"auditing {found.describe()}")
        return list(found.site_packages)
    if args.site_packages:
        return site_packages_directories(args.site_packages)
    if args.env:
        tool = tool_environment(Path(sys.prefix), default_site_packages())
        active = os.environ.get("VIRTUAL_ENV")
        activated = active is not None and _same_path(Path(active), Path(sys.prefix))
        if tool == ISOLATED and activated:
            # An environment holding only this tool, but the one the user activated: the
            # newcomer's "pip install . && torch-abi-audit --env" audits what they asked for.
            tool = None
        if tool is not None:
            hint = f" (your active one: --python {active})" if active and not activated else ""
            console.warning(
                f"--env audits the environment torch-abi-audit runs in, {sys.prefix}, which is "
                f"its own ({tool}), not your project's: pass --python PATH, an interpreter or a "
                f"virtual environment{hint}"
            )
    return None


def _audit(
    args: argparse.Namespace, console: Console, settings: gating.GateSettings
) -> tuple[AuditResult, gating.Written | None]:
    """Run the audit the arguments ask for, and the gates."""
    loads = {
        "torch": args.torch,
        "torch_version": args.torch_version,
        "predict_loads": not args.no_load_prediction,
        "assume_minimum_abi3": args.assume_minimum_abi3,
        "target_version": args.target_version,
        "explain": args.explain,
        "jobs": args.jobs,
        "progress": console.progress,
    }
    directories = _environment(args, console)
    environment_mode = args.env or args.site_packages or args.python
    if environment_mode and not args.targets:
        environment = inspect_site_packages(directories, **loads)
        empty = gating.empty_environment(environment)
        return gating.judge(settings, AuditResult.of_environment(environment), empty)
    requests = inspect_requests(
        args.targets,
        downloads=args.download,
        platforms=args.platform,
        python_version=args.python_version,
        cache=args.cache_dir,
        site_packages=directories,
        verify_archive=args.verify_archive,
        **loads,
    )
    reports = tuple(package for request in requests for package in request.packages)
    return gating.judge(settings, AuditResult(reports), gating.nothing_audited(requests))


def _run(args: argparse.Namespace) -> int:
    try:
        settings = gating.configure(args, Path.cwd())
    except gating.SettingsError as exc:
        _warn(f"torch-abi-audit: error: {exc}")
        return EXIT_ERROR
    args.format = args.format or DEFAULT_FORMAT
    renderer = get_renderer(args.format)
    console = Console(quiet=args.quiet, show_progress=renderer.shows_progress)
    for note in settings.notes:
        console.note(note)
    try:
        result, written = _audit(args, console, settings)
    except EnvironmentNotFound as exc:
        console.error(str(exc))
        return EXIT_ERROR
    finally:
        console.progress.finish()
    options = RenderOptions(
        verbose=args.verbose,
        show_all=args.all,
        pretty=args.output is None and writes_to_terminal(sys.stdout),
        working_directory=Path.cwd(),
    )
    try:
        write_report(renderer.render(result, options), args.output)
    except OutputError as exc:
        console.error(str(exc))
        return EXIT_ERROR
    console.outcome(result, settings.policies)
    if written is not None:
        if written.failed:
            console.error(written.message)
            return EXIT_ERROR
        console.note(written.message)
    return exit_code(result)


def _usage_problem(args: argparse.Namespace) -> str | None:
    environment = args.env or args.site_packages or args.python
    if not environment and not args.targets and not args.download:
        return (
            "give at least one TARGET, or --download SPEC, --env, --site-packages PATH or "
            "--python PATH"
        )
    if environment and args.download:
        return "--download cannot be combined with --env, --site-packages or --python"
    if (args.platform or args.python_version or args.cache_dir) and not args.download:
        return "--platform, --python-version and --cache-dir go with --download"
    if args.torch is not None and args.torch_version is not None:
        return "--torch and --torch-version exclude each other"
    if args.target_version is not None and not re.fullmatch(r"\d+\.\d+", args.target_version):
        return "--target-version takes a torch release X.Y (e.g. 2.10)"
    if args.config is not None and args.no_config:
        return "--config and --no-config exclude each other"
    for platform in args.platform:
        from torch_abi_audit.sources.index_answers import platform_tag_problem

        tag_problem = platform_tag_problem(platform)
        if tag_problem is not None:
            return f"--platform {platform}: {tag_problem}"
    if not re.fullmatch(r"3\.([2-9]|[1-9]\d)", args.assume_minimum_abi3):
        return "--assume-minimum-abi3 takes a version 3.x with x >= 2 (e.g. 3.9)"
    return None


#: Where bugs are reported.
ISSUES_URL = "https://github.com/torch-abi-audit/torch-abi-audit/issues"
#: Set (to anything but 0) to see the traceback of an internal error.
TRACEBACK_VARIABLE = "TORCH_ABI_AUDIT_TRACEBACK"


def _internal_error(exc: BaseException) -> int:
    """An exception nothing else handled: a bug of this tool, whatever the input. It must not
    look like a failed ``--check`` (exit 1, as a traceback would give): one line and exit 2."""
    if os.environ.get(TRACEBACK_VARIABLE, "0") not in ("", "0"):
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    detail = str(exc).splitlines()[0] if str(exc) else ""
    _warn(
        f"torch-abi-audit: internal error: {type(exc).__name__}"
        + (f": {detail}" if detail else "")
        + f" (a bug: please report it at {ISSUES_URL} with the command line; "
        f"{TRACEBACK_VARIABLE}=1 shows the traceback)"
    )
    return EXIT_ERROR


def run_subcommand(name: str, argv: Sequence[str]) -> int:
    """Run the subcommand ``name`` (a key of :data:`SUBCOMMANDS`) with ``argv``; its exit code."""
    module = importlib.import_module(f"torch_abi_audit.commands.{SUBCOMMANDS[name][0]}")
    code: int = module.main(list(argv))
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code.

    When the first argument names a subcommand (:data:`SUBCOMMANDS`), that subcommand runs with
    the rest; otherwise the arguments are the audit command's (a target that happens to be
    spelled like a subcommand is given as a path: ``./diff``).
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    previous = tune_collector()  # a run allocates much and frees little: collect less often
    try:
        if arguments and arguments[0] in SUBCOMMANDS:
            return guarded(lambda: run_subcommand(arguments[0], arguments[1:]))
        return guarded(lambda: _audit_command(arguments))
    finally:
        gc.set_threshold(*previous)


def run() -> NoReturn:
    """The console script ``torch-abi-audit`` (and ``python -m torch_abi_audit``): :func:`main`
    on the command line's arguments, then the process ends with its exit code.

    After an audit, the interpreter's teardown (freeing every report, symbol and table one
    object at a time) is skipped: the output is flushed and the ``atexit`` handlers run, then
    :func:`os._exit` ends the process, 50-70 ms sooner on an environment scan. A subcommand
    exits the usual way (its engines and stores may close what they hold at teardown).
    """
    if sys.stderr is None:  # started with standard error closed (2>&-): its messages are dropped
        sys.stderr = Path(os.devnull).open("w")  # noqa: SIM115 - for the life of the process
    arguments = sys.argv[1:]
    try:
        code = main(arguments)
    except Exception:  # even telling the problem failed (standard error unwritable): never 1
        code = EXIT_ERROR
    if arguments and arguments[0] in SUBCOMMANDS:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # started with standard output closed (>&-): nothing to flush
            continue
        try:
            stream.flush()
        except BrokenPipeError:  # the reader went away after the last write: nothing to tell
            _to_devnull(stream)
        except (OSError, ValueError):  # a closed or failing stream: as the interpreter would
            code = code or EXIT_ERROR
    _finish_as_the_interpreter_would()
    os._exit(code)


def _to_devnull(stream: TextIO) -> None:
    """Point ``stream``'s file descriptor at the null device: what is still buffered for a
    reader that went away is dropped quietly when it is flushed."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, stream.fileno())
    os.close(devnull)


def _finish_as_the_interpreter_would() -> None:
    """What the interpreter's exit does before its teardown, in its order: wait for the threads
    that are not daemons and run the threading module's exit hooks (``concurrent.futures``
    stops its worker pools there: skipped, a pool left running by an interruption would keep
    ``multiprocessing``'s own exit hook waiting for its workers forever), then the ``atexit``
    handlers."""
    if "threading" in sys.modules:
        shutdown = getattr(sys.modules["threading"], "_shutdown", None)
        if shutdown is not None:
            shutdown()
    atexit._run_exitfuncs()


def _audit_command(arguments: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(arguments)
    problem = _usage_problem(args)
    if problem:
        parser.print_usage(sys.stderr)
        print(f"torch-abi-audit: error: {problem}", file=sys.stderr)
        return EXIT_ERROR
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    return _run(args)


def guarded(command: Callable[[], int]) -> int:
    """Run ``command`` (the audit or a subcommand) and turn the interruptions every command
    shares into exit codes: a torch to load against that is unusable (2), Ctrl-C (130), a
    reader that went away (``| head``: 0), and any other exception, a bug (2, one line)."""
    try:
        return command()
    except LoadTargetError as exc:
        _warn(f"torch-abi-audit: error: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("torch-abi-audit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): point stdout at devnull so the exit flush is quiet.
        _to_devnull(sys.stdout)
        return EXIT_OK
    except Exception as exc:  # a bug: exit 2 with one line, never exit 1 with a traceback
        return _internal_error(exc)
