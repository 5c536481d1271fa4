#!/usr/bin/env python3
"""How much of a port the replacements table can guide: the share of unstable imports whose
libtorch entity gets a stable replacement, over real unstable wheels.

    python scripts/migration_coverage.py                  # the default set below
    python scripts/migration_coverage.py --markdown       # the same, as a Markdown table
    python scripts/migration_coverage.py dist/pkg.whl torchvision==0.24.1 --uncovered 20

Each wheel is audited in place with the migration plan (``--explain``); an occurrence is one
unstable import of one library. Wheels named by requirement (``name==version``) are fetched for
``--platform`` / ``--python-version`` with the project's one downloader into the shared cache.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from torch_abi_audit.audit import inspect_targets  # noqa: E402
from torch_abi_audit.report import PackageReport  # noqa: E402
from torch_abi_audit.sources.index import DownloadError, fetch_wheel  # noqa: E402

#: Unstable wheels of real torch extensions (manylinux x86_64, CPython 3.11).
DEFAULT_WHEELS = (
    "torchaudio==2.9.1",
    "torchcodec==0.8.1",
    "torchvision==0.24.1",
    "torchtext==0.18.0",
)
DEFAULT_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux1_x86_64")


def _wheel(target: str, platforms: list[str], python_version: str) -> Path:
    if "==" not in target:
        return Path(target)
    name, _, version = target.partition("==")
    try:
        return fetch_wheel(name, version, platforms=platforms, python_version=python_version)
    except DownloadError as exc:
        raise SystemExit(f"{target}: {exc}") from exc


def _rows(reports: list[PackageReport]) -> list[tuple[str, int, int, int]]:
    rows = []
    for report in reports:
        plan = report.migration
        assert plan is not None
        dist = report.distribution
        label = f"{dist.name} {dist.version}" if dist else report.name
        rows.append((label, len(plan.entities), plan.occurrences, plan.covered))
    return rows


def _table(rows: list[tuple[str, int, int, int]], markdown: bool) -> list[str]:
    total = ("all", sum(r[1] for r in rows), sum(r[2] for r in rows), sum(r[3] for r in rows))
    lines = []
    if markdown:
        lines += ["| wheel | entities | unstable imports | with a replacement | share |"]
        lines += ["|---|---:|---:|---:|---:|"]
    else:
        lines.append(f"{'wheel':<24} {'entities':>8} {'imports':>8} {'covered':>8} {'share':>6}")
    for label, entities, occurrences, covered in [*rows, total]:
        share = f"{covered / occurrences:.1%}" if occurrences else "-"
        if markdown:
            lines.append(f"| {label} | {entities} | {occurrences} | {covered} | {share} |")
        else:
            lines.append(f"{label:<24} {entities:>8} {occurrences:>8} {covered:>8} {share:>6}")
    return lines


def _uncovered(reports: list[PackageReport], count: int) -> list[str]:
    missing: Counter[str] = Counter()
    for report in reports:
        assert report.migration is not None
        for use in report.migration.entities:
            if not use.advice.has_replacement:
                missing[use.entity] += use.occurrences
    return [f"{n:>5}  {entity}" for entity, n in missing.most_common(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("wheels", nargs="*", default=list(DEFAULT_WHEELS), metavar="WHEEL")
    parser.add_argument("--platform", action="append", default=[], metavar="TAG")
    parser.add_argument("--python-version", default="3.11", metavar="X.Y")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument(
        "--uncovered",
        type=int,
        default=10,
        metavar="N",
        help="list the N most used entities without a replacement (default 10)",
    )
    args = parser.parse_args(argv)
    platforms = args.platform or list(DEFAULT_PLATFORMS)
    paths = [_wheel(target, platforms, args.python_version) for target in args.wheels]
    reports = inspect_targets(paths, explain=True, predict_loads=False)
    broken = [r.name for r in reports if r.has_error]
    if broken:
        print(f"could not audit: {', '.join(broken)}", file=sys.stderr)
        return 2
    print("\n".join(_table(_rows(reports), args.markdown)))
    if args.uncovered:
        print("\nmost used entities without a stable replacement (imports):")
        print("\n".join(_uncovered(reports, args.uncovered)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
