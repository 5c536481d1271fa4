"""``torch-abi-audit diff OLD NEW``: how far along a port is, and whether NEW regressed.

OLD and NEW are two builds of one package, each given as anything the audit accepts — a wheel,
a directory, a library, an import name — or as a JSON report saved by an earlier run
(``--json > last.json``), or as a requirement with a version that pip fetches
(``torchcodec==0.8.1``; also ``--download SPEC``, which fills OLD, then NEW). Both are audited
(or read back) and compared: see :mod:`torch_abi_audit.diff`.

Exit status: 0 compared (whatever changed); 1 ``--check`` found a regression of a gate it
names; 2 a side could not be read or audited (2 wins over 1).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from torch_abi_audit._version import __version__
from torch_abi_audit.audit import inspect_targets
from torch_abi_audit.checks import CheckPolicy
from torch_abi_audit.console import writes_to_terminal
from torch_abi_audit.diff import diff_packages
from torch_abi_audit.output import OutputError, write_report
from torch_abi_audit.renderers.base import RenderOptions
from torch_abi_audit.renderers.escape import terminal_text
from torch_abi_audit.renderers.registry import DEFAULT_FORMAT, RENDERERS, get_renderer
from torch_abi_audit.report import PackageReport
from torch_abi_audit.sources.saved_report import (
    SavedReportError,
    looks_like_saved_report,
    read_saved_report,
)

# "name==1.0", "name>=2", "name[extra]~=1.2": a requirement to fetch, not a path or import name.
_REQUIREMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?\s*(===|==|~=|!=|>=|<=|<|>)")


class SideError(Exception):
    """A side of the comparison could not be turned into exactly one package report."""


def build_parser() -> argparse.ArgumentParser:
    """The ``diff`` subcommand's parser."""
    parser = argparse.ArgumentParser(
        prog="torch-abi-audit diff",
        description=(
            "Compare two builds of a package: libraries added and removed, verdict changes, "
            "unstable imports removed and added per library (grouped by libtorch entity, with "
            "their stable replacements), min-torch and CPython changes, findings fixed and "
            "introduced."
        ),
        epilog=(
            "OLD/NEW: a wheel, directory, library, import name, saved JSON report, or a "
            "requirement with a version (pkg==1.0) to fetch with pip. exit status: 0 compared, "
            "1 --check found a regression, 2 a side could not be read"
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("sides", nargs="*", metavar="OLD NEW", help="the two builds")
    parser.add_argument(
        "--download",
        metavar="SPEC",
        action="append",
        default=[],
        help="fetch a side with pip (fills OLD, then NEW, after the positional sides)",
    )
    parser.add_argument("--platform", metavar="TAG", help="with a fetched side: the platform")
    parser.add_argument("--python-version", metavar="X.Y", help="with a fetched side")
    parser.add_argument("--cache-dir", metavar="DIR", type=Path, help="with a fetched side")
    parser.add_argument(
        "--package",
        metavar="NAME",
        help="the package to compare when a side holds several (a directory of wheels, an "
        "environment report)",
    )
    parser.add_argument(
        "--format",
        choices=list(RENDERERS),
        default=DEFAULT_FORMAT,
        help="report format (as the audit's): "
        + "; ".join(f"{name}: {r.description}" for name, r in RENDERERS.items()),
    )
    parser.add_argument("--json", action="store_true", help="same as --format json")
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        type=Path,
        help="write the report to FILE (atomically) instead of standard output",
    )
    parser.add_argument(
        "--check",
        nargs="?",
        const=CheckPolicy.ALL,
        type=CheckPolicy,
        choices=list(CheckPolicy),
        action="append",
        metavar="GATE",
        help="exit 1 when NEW regresses: torch (a library became unstable or gained unstable "
        "imports, min torch rose), abi3, metadata (a new error or warning finding), load; "
        "without GATE: all (repeatable)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="list symbols and unchanged libraries"
    )
    parser.add_argument("-j", "--jobs", type=int, metavar="N", help="worker processes")
    return parser


def is_requirement(text: str) -> bool:
    """True for a requirement with a version (``torchcodec==0.8.1``) that is not a path."""
    return bool(_REQUIREMENT.match(text)) and not Path(text).exists()


def _pick(reports: Sequence[PackageReport], what: str, package: str | None) -> PackageReport:
    if package is not None:
        wanted = package.lower().replace("_", "-")
        reports = [
            r
            for r in reports
            if (r.distribution.name if r.distribution else r.name).lower().replace("_", "-")
            == wanted
            or r.name.lower() == package.lower()
        ]
    if len(reports) == 1:
        return reports[0]
    if not reports:
        raise SideError(f"{what}: no package{f' named {package}' if package else ''}")
    names = ", ".join(r.name for r in reports)
    raise SideError(f"{what} holds {len(reports)} packages ({names}): choose one with --package")


def resolve_side(what: str, args: argparse.Namespace) -> PackageReport:
    """One side (a positional or a ``--download`` spec) as one audited package report."""
    if not is_requirement(what) and looks_like_saved_report(Path(what)):
        try:
            return _pick(read_saved_report(Path(what)), what, args.package)
        except SavedReportError as exc:
            raise SideError(str(exc)) from exc
    if is_requirement(what):
        reports = inspect_targets(
            [],
            jobs=args.jobs,
            downloads=[what],
            platforms=[args.platform] if args.platform else [],
            python_version=args.python_version,
            cache=args.cache_dir,
            predict_loads=False,
        )
        reports = [r for r in reports if not r.unavailable]
        if not reports:
            raise SideError(f"{what}: no wheel on the index for this platform")
    else:
        reports = inspect_targets([what], jobs=args.jobs, predict_loads=False)
    return _pick(reports, what, args.package)


def _labels(old: PackageReport, new: PackageReport) -> tuple[str, str] | None:
    """Distribution name and version, unless both sides would read the same: then files."""

    def named(report: PackageReport) -> str:
        dist = report.distribution
        return f"{dist.name} {dist.version}" if dist else report.name

    if named(old) != named(new):
        return None
    return (
        old.wheel.filename if old.wheel else str(old.root),
        new.wheel.filename if new.wheel else str(new.root),
    )


def main(argv: Sequence[str]) -> int:
    """Run ``diff``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    sides = [*args.sides, *args.download]
    if len(sides) != 2:
        parser.print_usage(sys.stderr)
        print(
            f"torch-abi-audit diff: error: give two sides, OLD and NEW (got {len(sides)})",
            file=sys.stderr,
        )
        return 2
    if args.jobs is not None and args.jobs < 1:
        parser.print_usage(sys.stderr)
        print("torch-abi-audit diff: error: --jobs must be at least 1", file=sys.stderr)
        return 2
    try:
        old, new = (resolve_side(side, args) for side in sides)
    except SideError as exc:
        print(f"torch-abi-audit diff: error: {terminal_text(str(exc))}", file=sys.stderr)
        return 2
    broken = [r for r in (old, new) if r.has_error]
    for report in broken:
        reason = report.error or "some libraries could not be read"
        print(f"error: {terminal_text(report.name)}: {terminal_text(reason)}", file=sys.stderr)
    olds, news = (r.distribution.name if r.distribution else r.name for r in (old, new))
    if olds.lower() != news.lower():
        print(f"note: comparing {olds} with {news}", file=sys.stderr)
    errors = tuple(f"{r.name}: {r.error or 'some libraries could not be read'}" for r in broken)
    diff = replace(
        diff_packages(old, new, labels=_labels(old, new)),
        checks=tuple(args.check or ()),
        errors=errors,
    )
    renderer = get_renderer("json" if args.json else args.format)
    options = RenderOptions(
        verbose=args.verbose,
        pretty=args.output is None and writes_to_terminal(sys.stdout),
        working_directory=Path.cwd(),
    )
    try:
        write_report(renderer.render(diff, options), args.output)
    except OutputError as exc:
        print(f"torch-abi-audit diff: error: {terminal_text(str(exc))}", file=sys.stderr)
        return 2
    failing = diff.failed
    if failing:
        print(f"FAIL: {len(failing)} regression(s) in {terminal_text(new.name)}:", file=sys.stderr)
        for regression in failing:
            print(f"  [{regression.gate}] {terminal_text(regression.reason)}", file=sys.stderr)
    return 2 if broken else 1 if failing else 0
