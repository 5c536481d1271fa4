#!/usr/bin/env python3
"""Benchmark torch-abi-audit against its predecessor (torch-abi-audit 0.3.0) in the same run.

Both tools audit one realistic site-packages (torch plus a dozen compiled packages) in
environment mode with ``--all --json``. Runs alternate between the tools after one warm-up
of each; wall time comes from :func:`time.perf_counter` around the child, peak RSS and CPU
time from :func:`os.wait4` on the child (POSIX only). The script then compares the torch
verdicts of both tools, per package and per library.

This is not a test: timings are informational and the exit status is 0 unless ``--strict``
is given and the speed-up target is missed (1), or the benchmark itself could not run (2).

Usage::

    python benchmarks/bench_env.py                      # build/reuse venvs under ~/.cache
    python benchmarks/bench_env.py --env-dir DIR --predecessor-dir DIR --rounds 3
    python benchmarks/bench_env.py --quick --json-out bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TORCH_REQUIREMENT = "torch==2.13.0"
BENCH_REQUIREMENTS: tuple[str, ...] = (
    TORCH_REQUIREMENT,  # first, and pinned, so pip never resolves a CUDA build for a dependency
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "matplotlib",
    "pillow",
    "opencv-python-headless",
    "pyarrow",
    "grpcio",
    "lxml",
    "cryptography",
    "pydantic",
    "orjson",
    "psutil",
    "lief",
)
# Distributions whose dist-info must exist for a reused environment to count as complete.
BENCH_SENTINELS: tuple[str, ...] = ("torch", "lief")
PREDECESSOR_REQUIREMENT = "torch-abi-audit==0.3.0"
PREDECESSOR_VERSION = "0.3.0"
MARKER_NAME = ".torch-abi-audit-bench-complete"
DEFAULT_ROUNDS = 5
DEFAULT_TARGET = 30.0
#: Load prediction may cost at most this factor over the same scan without it.
LOAD_OVERHEAD_TARGET = 1.5
HINT_WIDTH = 110

# Package roll-up labels: worst case wins, in this order.
SEVERITY: Mapping[str, int] = {"NO-TORCH": 0, "SKIPPED": 0, "STABLE": 1, "UNSTABLE": 2, "ERROR": 3}
OUR_VERDICT_LABELS: Mapping[str, str] = {
    "no-torch": "NO-TORCH",
    "torch-stable": "STABLE",
    "torch-unstable": "UNSTABLE",
    "error": "ERROR",
}

JSONObject = dict[str, Any]


class BenchError(Exception):
    """The benchmark could not run (setup failed, a tool printed no JSON, ...)."""


# --------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Run:
    """One timed execution of one tool."""

    tool: str
    round: int  # 0 is the warm-up
    seconds: float
    max_rss_kib: int
    user_seconds: float
    system_seconds: float
    exit_code: int


@dataclass(frozen=True)
class ToolStats:
    """Summary of one tool's timed (non-warm-up) runs."""

    runs: int
    median_seconds: float
    min_seconds: float
    max_seconds: float
    median_cpu_seconds: float
    median_max_rss_kib: float
    max_max_rss_kib: int


@dataclass(frozen=True)
class ScanSize:
    """How much one tool's report covers."""

    packages: int
    libraries: int
    unique_files: int
    total_bytes: int


@dataclass(frozen=True)
class LibraryVerdict:
    """One library's torch label in one tool's report, keyed by its resolved path."""

    path: str
    package: str
    label: str
    hint: str


@dataclass(frozen=True)
class PackageVerdict:
    """One package's torch roll-up in one tool's report."""

    name: str
    label: str
    paths: frozenset[str]


@dataclass(frozen=True)
class PackageRow:
    """A row of the package comparison table (``None``: the tool has no such package)."""

    package: str
    predecessor_names: tuple[str, ...]
    ours: str | None
    predecessor: str | None

    @property
    def agree(self) -> bool:
        """Both tools report the package and give it the same label."""
        return self.ours is not None and self.ours == self.predecessor


@dataclass(frozen=True)
class Disagreement:
    """A library both tools audited but labelled differently."""

    path: str
    package: str
    ours: str
    predecessor: str
    hint: str


@dataclass(frozen=True)
class Comparison:
    """Verdict comparison between the two reports."""

    packages: tuple[PackageRow, ...]
    common_libraries: int
    disagreements: tuple[Disagreement, ...]
    only_ours: tuple[LibraryVerdict, ...]
    only_predecessor: tuple[LibraryVerdict, ...]


@dataclass
class ToolRuns:
    """Everything collected for one tool across the rounds."""

    name: str
    command: list[str]
    extract: Callable[[JSONObject], list[LibraryVerdict]]
    runs: list[Run] = field(default_factory=list)
    fingerprints: set[tuple[tuple[str, str], ...]] = field(default_factory=set)
    last_document: JSONObject = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Environments


REPO = Path(__file__).resolve().parent.parent


def default_cache_dir() -> Path:
    """``bench`` in the project's cache (``~/.cache/torch-abi-audit/bench``), where the venvs
    live unless told otherwise."""
    from torch_abi_audit.sources.index import cache_root

    return cache_root() / "bench"


def canonical_name(name: str) -> str:
    """PEP 503 normalised project name (``scikit_learn`` -> ``scikit-learn``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def find_site_packages(env_dir: Path) -> Path | None:
    """The venv's site-packages directory (POSIX or Windows layout), if it exists."""
    candidates = sorted(env_dir.glob("lib/python3*/site-packages"))
    candidates += [env_dir / "Lib" / "site-packages"]
    return next((c for c in candidates if c.is_dir()), None)


def venv_bin(env_dir: Path, name: str) -> Path:
    """Path of an executable in a venv's scripts directory."""
    scripts = env_dir / ("Scripts" if sys.platform == "win32" else "bin")
    return scripts / (name + (".exe" if sys.platform == "win32" else ""))


def installed_distributions(site_packages: Path) -> dict[str, str]:
    """Canonical name -> version of every ``*.dist-info`` in ``site_packages`` (no imports)."""
    found: dict[str, str] = {}
    for entry in site_packages.glob("*.dist-info"):
        name, _, version = entry.name.removesuffix(".dist-info").partition("-")
        found[canonical_name(name)] = version
    return found


def env_is_complete(env_dir: Path, sentinels: Iterable[str]) -> bool:
    """True if the marker file exists, or every sentinel distribution has a dist-info dir."""
    if (env_dir / MARKER_NAME).is_file():
        return True
    site = find_site_packages(env_dir)
    if site is None:
        return False
    installed = installed_distributions(site)
    return all(canonical_name(name) in installed for name in sentinels)


def run_setup_command(command: Sequence[str]) -> None:
    """Run a setup step (venv, pip), its output going to our stderr; raise on failure."""
    print(f"$ {' '.join(command)}", file=sys.stderr, flush=True)
    result = subprocess.run(command, stdout=sys.stderr, stderr=sys.stderr, check=False)
    if result.returncode != 0:
        raise BenchError(f"setup step failed with exit code {result.returncode}: {command[0]} ...")


def ensure_venv(
    env_dir: Path,
    requirements: Sequence[str],
    sentinels: Sequence[str],
    python: str,
) -> Path:
    """Create ``env_dir`` with ``requirements`` installed, or reuse it; returns site-packages.

    The marker file is written only after a successful install, so an interrupted build is
    resumed (pip skips what is already there) rather than trusted.
    """
    if env_is_complete(env_dir, sentinels):
        print(f"reusing {env_dir}", file=sys.stderr)
    else:
        print(f"building {env_dir} (one-off; pip may take several minutes)", file=sys.stderr)
        if not venv_bin(env_dir, "python").exists():
            env_dir.parent.mkdir(parents=True, exist_ok=True)
            run_setup_command([python, "-m", "venv", str(env_dir)])
        pip = [str(venv_bin(env_dir, "python")), "-m", "pip", "install"]
        run_setup_command([*pip, "--disable-pip-version-check", *requirements])
        (env_dir / MARKER_NAME).write_text("\n".join(requirements) + "\n", encoding="utf-8")
    site = find_site_packages(env_dir)
    if site is None:
        raise BenchError(f"no site-packages directory under {env_dir}")
    return site


def describe_torch(site_packages: Path) -> tuple[str, list[str]]:
    """The installed torch version and warnings about the environment (CUDA build, missing)."""
    installed = installed_distributions(site_packages)
    version = installed.get("torch", "missing")
    warnings: list[str] = []
    if version == "missing":
        warnings.append("torch is not installed in the benchmark environment")
    cuda = sorted(name for name in installed if name.startswith("nvidia-"))
    if cuda:
        warnings.append(
            f"CUDA runtime wheels present ({', '.join(cuda[:3])}, ...): not a CPU build"
        )
    return version, warnings


# --------------------------------------------------------------------------------------------
# Running and timing


def timed_run(command: Sequence[str], tool: str, round_no: int) -> tuple[Run, bytes, bytes]:
    """Run ``command`` once; returns its measurements, stdout and stderr.

    Output goes to temporary files rather than pipes, so the parent does nothing while the
    child runs. ``os.wait4`` reports the child's own resource usage: on Linux ``ru_maxrss``
    is the peak RSS (KiB) of the largest process in the child's tree (the child and the
    descendants it reaped, e.g. worker processes) and the CPU times include those descendants.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err) as proc:
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException:
                proc.kill()
                raise
            seconds = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    max_rss = usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss
    run = Run(
        tool=tool,
        round=round_no,
        seconds=seconds,
        max_rss_kib=max_rss,
        user_seconds=usage.ru_utime,
        system_seconds=usage.ru_stime,
        exit_code=proc.returncode,
    )
    return run, stdout, stderr


def parse_report(
    stdout: bytes, stderr: bytes, run: Run, *, require_packages: bool = True
) -> JSONObject:
    """The tool's JSON document; a tool that printed none makes the benchmark fail.

    With ``require_packages`` (the default) the document must hold a top-level ``packages``
    list, as environment-mode reports do; otherwise any JSON object will do.
    """
    try:
        document = json.loads(stdout)
    except ValueError as exc:
        tail = stderr.decode(errors="replace").strip().splitlines()[-15:]
        raise BenchError(
            f"{run.tool} (round {run.round}) exited {run.exit_code} without a JSON report "
            f"({exc}); stderr tail:\n  " + "\n  ".join(tail)
        ) from exc
    if not isinstance(document, dict) or (
        require_packages and not isinstance(document.get("packages"), list)
    ):
        what = "a top-level 'packages' list" if require_packages else "a top-level object"
        raise BenchError(f"{run.tool} printed JSON without {what}")
    return document


def measure(tools: Sequence[ToolRuns], rounds: int) -> None:
    """One warm-up of each tool, then ``rounds`` rounds alternating the order of the tools."""
    for round_no in range(rounds + 1):
        order = list(tools) if round_no % 2 == 0 else list(reversed(tools))
        for tool in order:
            phase = "warm-up" if round_no == 0 else f"round {round_no}/{rounds}"
            print(f"[{phase}] {tool.name} ...", end=" ", file=sys.stderr, flush=True)
            run, stdout, stderr = timed_run(tool.command, tool.name, round_no)
            print(
                f"{run.seconds:.2f} s, {run.max_rss_kib / 1024:.0f} MiB, exit {run.exit_code}",
                file=sys.stderr,
                flush=True,
            )
            document = parse_report(stdout, stderr, run)
            libraries = tool.extract(document)
            tool.fingerprints.add(tuple(sorted((lib.path, lib.label) for lib in libraries)))
            tool.last_document = document
            if round_no > 0:
                tool.runs.append(run)


def summarise(runs: Sequence[Run]) -> ToolStats:
    """Median/min/max of the timed runs."""
    seconds = [r.seconds for r in runs]
    return ToolStats(
        runs=len(runs),
        median_seconds=statistics.median(seconds),
        min_seconds=min(seconds),
        max_seconds=max(seconds),
        median_cpu_seconds=statistics.median(r.user_seconds + r.system_seconds for r in runs),
        median_max_rss_kib=statistics.median(r.max_rss_kib for r in runs),
        max_max_rss_kib=max(r.max_rss_kib for r in runs),
    )


def tool_version(command: Sequence[str]) -> str:
    """``--version`` output of a tool (last word), or ``unknown``."""
    result = subprocess.run(
        [*command, "--version"], capture_output=True, text=True, check=False, timeout=120
    )
    words = result.stdout.split()
    return words[-1] if result.returncode == 0 and words else "unknown"


# --------------------------------------------------------------------------------------------
# Reading the two reports


def _libraries_of(package: JSONObject) -> list[JSONObject]:
    """A package's extension modules and bundled libraries (both tools use these keys)."""
    return [*(package.get("extensions") or []), *(package.get("bundled_libs") or [])]


def _resolved(path: str) -> str:
    """Paths compared across tools: the predecessor resolves them, we do not."""
    return str(Path(path).resolve())


def _shorten(text: str, width: int = HINT_WIDTH) -> str:
    """``text`` cut to ``width`` characters with an ellipsis."""
    return text if len(text) <= width else text[: width - 1] + "…"


def our_hint(library: JSONObject) -> str:
    """Why we labelled a library as we did: error, skip reason, or first two unstable symbols."""
    if library.get("error"):
        return f"error: {library['error']}"
    if library.get("skipped"):
        return f"skipped: {library['skipped']}"
    details = library.get("torch", {}).get("unstable_details") or []
    parts = [
        f"{_shorten(d.get('demangled') or d.get('symbol', '?'), 60)} "
        f"[{d.get('reason', '?')}: {d.get('detail', '')}]"
        for d in details[:2]
    ]
    return "; ".join(parts)


def our_libraries(document: JSONObject) -> list[LibraryVerdict]:
    """Every library in our report with its ``torch_label``."""
    return [
        LibraryVerdict(
            path=_resolved(lib["path"]),
            package=package["name"],
            label=lib["torch_label"],
            hint=our_hint(lib),
        )
        for package in document["packages"]
        for lib in _libraries_of(package)
    ]


def predecessor_label(library: JSONObject) -> str:
    """The predecessor's per-library label, derived as its table does."""
    torch = library.get("torch") or {}
    if library.get("error"):
        return "ERROR"
    if not torch.get("uses_torch"):
        return "NO-TORCH"
    return "STABLE" if torch.get("stable") else "UNSTABLE"


def predecessor_libraries(document: JSONObject) -> list[LibraryVerdict]:
    """Every library in the predecessor's report with the derived label."""
    verdicts = []
    for package in document["packages"]:
        for lib in _libraries_of(package):
            symbols = (lib.get("torch") or {}).get("unstable_symbols") or []
            hint = f"error: {lib['error']}" if lib.get("error") else "; ".join(symbols[:2])
            verdicts.append(
                LibraryVerdict(
                    path=_resolved(lib["path"]),
                    package=package["name"],
                    label=predecessor_label(lib),
                    hint=_shorten(hint),
                )
            )
    return verdicts


def worst(labels: Iterable[str]) -> str:
    """Worst-case roll-up of labels (``NO-TORCH`` for none)."""
    return max(labels, key=lambda label: SEVERITY.get(label, 0), default="NO-TORCH")


def our_packages(document: JSONObject) -> list[PackageVerdict]:
    """Our packages with their ``torch_verdict`` as a label."""
    return [
        PackageVerdict(
            name=package["name"],
            label=OUR_VERDICT_LABELS.get(package["torch_verdict"], package["torch_verdict"]),
            paths=frozenset(_resolved(lib["path"]) for lib in _libraries_of(package)),
        )
        for package in document["packages"]
    ]


def predecessor_packages(document: JSONObject) -> list[PackageVerdict]:
    """The predecessor's packages, rolled up as its ``torch_verdict`` property does."""
    verdicts = []
    for package in document["packages"]:
        libraries = _libraries_of(package)
        label = (
            "ERROR" if package.get("error") else worst(predecessor_label(lib) for lib in libraries)
        )
        paths = frozenset(_resolved(lib["path"]) for lib in libraries)
        verdicts.append(PackageVerdict(name=package["name"], label=label, paths=paths))
    return verdicts


def scan_size(document: JSONObject) -> ScanSize:
    """Packages, library entries, unique files and their total size (``os.stat``)."""
    paths = [_resolved(lib["path"]) for p in document["packages"] for lib in _libraries_of(p)]
    unique = set(paths)
    total = 0
    for path in unique:
        try:
            total += Path(path).stat().st_size
        except OSError:
            continue
    return ScanSize(
        packages=len(document["packages"]),
        libraries=len(paths),
        unique_files=len(unique),
        total_bytes=total,
    )


# --------------------------------------------------------------------------------------------
# Comparing


def compare_packages(
    ours: Sequence[PackageVerdict], theirs: Sequence[PackageVerdict]
) -> list[PackageRow]:
    """Pair packages: same normalised name, or at least one library path in common.

    We name packages by distribution (``pillow``, ``scikit-learn``), the predecessor by
    top-level directory (``PIL``, ``sklearn``, ``numpy.libs``), so paths do most of the work.
    """
    rows: list[PackageRow] = []
    matched: set[str] = set()
    for package in sorted(ours, key=lambda p: p.name.casefold()):
        partners = [
            other
            for other in theirs
            if canonical_name(other.name) == canonical_name(package.name)
            or other.paths & package.paths
        ]
        matched.update(other.name for other in partners)
        rows.append(
            PackageRow(
                package=package.name,
                predecessor_names=tuple(sorted(o.name for o in partners)),
                ours=package.label,
                predecessor=worst(o.label for o in partners) if partners else None,
            )
        )
    rows.extend(
        PackageRow(
            package=other.name,
            predecessor_names=(other.name,),
            ours=None,
            predecessor=other.label,
        )
        for other in sorted(theirs, key=lambda p: p.name.casefold())
        if other.name not in matched
    )
    return rows


def compare(ours_doc: JSONObject, theirs_doc: JSONObject) -> Comparison:
    """Compare both reports per package and per (resolved) library path."""
    ours = {lib.path: lib for lib in our_libraries(ours_doc)}
    theirs = {lib.path: lib for lib in predecessor_libraries(theirs_doc)}
    common = sorted(ours.keys() & theirs.keys())
    disagreements = []
    for path in common:
        mine, other = ours[path], theirs[path]
        if mine.label == other.label:
            continue
        hint = mine.hint or (f"predecessor: {other.hint}" if other.hint else "")
        disagreements.append(
            Disagreement(
                path=path,
                package=mine.package,
                ours=mine.label,
                predecessor=other.label,
                hint=hint,
            )
        )
    return Comparison(
        packages=tuple(compare_packages(our_packages(ours_doc), predecessor_packages(theirs_doc))),
        common_libraries=len(common),
        disagreements=tuple(disagreements),
        only_ours=tuple(ours[p] for p in sorted(ours.keys() - theirs.keys())),
        only_predecessor=tuple(theirs[p] for p in sorted(theirs.keys() - ours.keys())),
    )


# --------------------------------------------------------------------------------------------
# Output


def mib(kib_or_bytes: float, *, from_bytes: bool = False) -> str:
    """Format a size in MiB."""
    value = kib_or_bytes / (1024 * 1024) if from_bytes else kib_or_bytes / 1024
    return f"{value:,.1f} MiB"


def relative(path: str, site_packages: Path) -> str:
    """``path`` relative to the (resolved) site-packages, when it is inside it."""
    try:
        return str(Path(path).relative_to(site_packages.resolve()))
    except ValueError:
        return path


def format_timing(stats: Mapping[str, ToolStats]) -> list[str]:
    """The timing table (the name column widens for names longer than 12 characters)."""
    width = max([12, *(len(name) for name in stats)])
    lines = [
        f"  {'tool':<{width}} {'runs':>4} {'median s':>9} {'min s':>8} {'max s':>8} "
        f"{'CPU s':>7} {'peak RSS (median / max)':>26}"
    ]
    for name, s in stats.items():
        rss = f"{mib(s.median_max_rss_kib)} / {mib(s.max_max_rss_kib)}"
        lines.append(
            f"  {name:<{width}} {s.runs:>4} {s.median_seconds:>9.3f} {s.min_seconds:>8.3f} "
            f"{s.max_seconds:>8.3f} {s.median_cpu_seconds:>7.2f} {rss:>26}"
        )
    return lines


def format_comparison(comparison: Comparison, site_packages: Path) -> list[str]:
    """The package table, the disagreements and the libraries only one tool audited."""
    width = max([len("package"), *(len(r.package) for r in comparison.packages)])
    lines = [
        "Torch verdicts per package (ours by distribution; predecessor's packages matched by "
        "name or shared library path)",
        f"  {'package':<{width}}  {'ours':<9} {'predecessor':<11}  predecessor's package(s)",
    ]
    for row in comparison.packages:
        flag = "" if row.agree else "  <-- differs"
        names = ", ".join(row.predecessor_names) or "-"
        lines.append(
            f"  {row.package:<{width}}  {row.ours or '-':<9} {row.predecessor or '-':<11}  "
            f"{names}{flag}"
        )
    differing = sum(not r.agree for r in comparison.packages)
    lines += [
        f"  {len(comparison.packages)} rows, {differing} differ",
        "",
        f"Per-library disagreements ({len(comparison.disagreements)} of "
        f"{comparison.common_libraries} libraries audited by both):",
    ]
    if not comparison.disagreements:
        lines.append("  none")
    for d in comparison.disagreements:
        lines.append(
            f"  {relative(d.path, site_packages)}  [{d.package}]  "
            f"ours={d.ours}  predecessor={d.predecessor}"
        )
        if d.hint:
            lines.append(f"      hint: {d.hint}")
    for title, libraries in (
        ("Audited only by ours", comparison.only_ours),
        ("Audited only by the predecessor", comparison.only_predecessor),
    ):
        labels = Counter(lib.label for lib in libraries)
        packages = Counter(lib.package for lib in libraries)
        lines += [
            "",
            f"{title}: {len(libraries)} libraries ({_counts(labels) or '-'})",
            *([f"  by package: {_counts(packages)}"] if packages else []),
        ]
        # NO-TORCH ones are only counted (all of them are in --json-out); the rest are listed.
        lines += [
            f"  {relative(lib.path, site_packages)}  [{lib.package}]  {lib.label}"
            + (f"  ({lib.hint})" if lib.hint else "")
            for lib in libraries
            if lib.label != "NO-TORCH"
        ]
    return lines


def _counts(counter: Counter[str]) -> str:
    """``a 2, b 1`` in key order (case-insensitive)."""
    return ", ".join(
        f"{key} {n}" for key, n in sorted(counter.items(), key=lambda kv: kv[0].casefold())
    )


# --------------------------------------------------------------------------------------------
# Entry point


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    cache = default_cache_dir()
    parser = argparse.ArgumentParser(
        description="Time torch-abi-audit against torch-abi-audit 0.3.0 on one site-packages "
        "and compare their torch verdicts.",
    )
    parser.add_argument(
        "--env-dir",
        type=Path,
        default=cache / "env",
        help="venv holding the audited packages; built if incomplete (default: %(default)s)",
    )
    parser.add_argument(
        "--predecessor-dir",
        type=Path,
        default=cache / "predecessor",
        help=f"venv with {PREDECESSOR_REQUIREMENT}; built if missing (default: %(default)s)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help="timed rounds per tool after one warm-up each (default: %(default)s)",
    )
    parser.add_argument("--quick", action="store_true", help="one timed round (overrides --rounds)")
    parser.add_argument(
        "--target",
        type=float,
        default=DEFAULT_TARGET,
        help="speed-up target, predecessor median / ours median (default: %(default)s)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when the speed-up target is missed"
    )
    parser.add_argument("--json-out", type=Path, metavar="FILE", help="write measurements here")
    parser.add_argument(
        "--venv-python",
        default=sys.executable,
        help="interpreter that creates missing venvs (default: the running one)",
    )
    parser.add_argument(
        "--ours-dir",
        type=Path,
        default=default_cache_dir() / "ours",
        help="venv into which this checkout is installed for timing (default: %(default)s)",
    )
    return parser


def install_checkout(ours_dir: Path, python: str) -> Path:
    """Install this checkout (not editable) into the venv ``ours_dir``; returns its executable.

    The tool is timed as users install it: from a wheel, with byte-compiled modules, in a venv
    of its own — the same footing as the predecessor. Reinstalled on every run so that the
    numbers are those of the checkout.
    """
    if not venv_bin(ours_dir, "python").exists():
        ours_dir.parent.mkdir(parents=True, exist_ok=True)
        run_setup_command([python, "-m", "venv", str(ours_dir)])
    pip = [str(venv_bin(ours_dir, "python")), "-m", "pip", "install", "--quiet"]
    run_setup_command([*pip, "--disable-pip-version-check", str(REPO)])
    run_setup_command(
        [*pip, "--disable-pip-version-check", "--force-reinstall", "--no-deps", str(REPO)]
    )
    return venv_bin(ours_dir, "torch-abi-audit")


def run_benchmark(args: argparse.Namespace) -> int:
    """Set up, measure, compare, print; returns the exit code."""
    rounds = 1 if args.quick else args.rounds
    if rounds < 1:
        raise BenchError("--rounds must be at least 1")

    env_dir, pred_dir = args.env_dir.expanduser(), args.predecessor_dir.expanduser()
    site = ensure_venv(env_dir, BENCH_REQUIREMENTS, BENCH_SENTINELS, args.venv_python)
    ensure_venv(pred_dir, [PREDECESSOR_REQUIREMENT], ["torch-abi-audit"], args.venv_python)
    pred_exe = venv_bin(pred_dir, "torch-abi-audit")
    if not pred_exe.exists():
        raise BenchError(f"{pred_exe} does not exist")
    torch_version, warnings = describe_torch(site)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)

    our_exe = install_checkout(args.ours_dir.expanduser(), args.venv_python)
    tail = ["--site-packages", str(site), "--all", "--json"]
    ours = ToolRuns("ours", [str(our_exe), *tail], our_libraries)
    # The same scan without predicting loads on the environment's torch: what prediction costs.
    bare = ToolRuns("ours-no-load", [str(our_exe), *tail, "--no-load-prediction"], our_libraries)
    pred = ToolRuns("predecessor", [str(pred_exe), *tail], predecessor_libraries)
    versions = {
        "ours": tool_version([str(our_exe)]),
        "predecessor": tool_version([str(pred_exe)]),
    }
    if versions["predecessor"] != PREDECESSOR_VERSION:
        print(
            f"warning: predecessor reports version {versions['predecessor']}, "
            f"expected {PREDECESSOR_VERSION}",
            file=sys.stderr,
        )

    measure([ours, bare, pred], rounds)

    stats = {tool.name: summarise(tool.runs) for tool in (ours, bare, pred)}
    load_overhead = stats["ours"].median_seconds / stats["ours-no-load"].median_seconds
    sizes = {"ours": scan_size(ours.last_document), "predecessor": scan_size(pred.last_document)}
    # The predecessor does what ours does without load prediction: that is the same job.
    ratio_median = stats["predecessor"].median_seconds / stats["ours-no-load"].median_seconds
    ratio_min = stats["predecessor"].min_seconds / stats["ours-no-load"].min_seconds
    ratio_with_loads = stats["predecessor"].median_seconds / stats["ours"].median_seconds
    passed = ratio_median >= args.target
    comparison = compare(ours.last_document, pred.last_document)
    exit_codes = {t.name: sorted({r.exit_code for r in t.runs}) for t in (ours, bare, pred)}
    deterministic = {t.name: len(t.fingerprints) == 1 for t in (ours, bare, pred)}

    lines = [
        "torch-abi-audit environment benchmark",
        f"  site-packages : {site} (torch {torch_version})",
        f"  ours          : torch-abi-audit {versions['ours']}  ({our_exe}, installed from {REPO})",
        f"  predecessor   : torch-abi-audit {versions['predecessor']}  ({pred_exe})",
        f"  machine       : {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}",
        f"  rounds        : {rounds} per tool after 1 warm-up each, order alternating",
        *(f"  warning       : {w}" for w in warnings),
        "",
        "Scanned (library entries across extensions + bundled_libs; bytes of unique files)",
    ]
    for name, size in sizes.items():
        lines.append(
            f"  {name:<12} {size.libraries:>4} libraries ({size.unique_files} files) in "
            f"{size.packages} packages, {mib(size.total_bytes, from_bytes=True)}"
        )
    lines += [
        "",
        "Wall time and resources (peak RSS: largest process in the child's tree, via wait4)",
        *format_timing(stats),
        "",
        f"Speed-up, predecessor / ours-no-load (the same job): {ratio_median:.1f}x on medians, "
        f"{ratio_min:.1f}x on best runs; predecessor / ours with load prediction: "
        f"{ratio_with_loads:.1f}x",
        f"Throughput (ours, median): "
        f"{sizes['ours'].total_bytes / 2**20 / stats['ours'].median_seconds:,.0f} MiB/s",
        f"Target >= {args.target:g}x: {'PASS' if passed else 'FAIL'} "
        f"({ratio_median:.1f}x {'>=' if passed else '<'} {args.target:g}x)"
        f"{'' if args.strict else '  [informational]'}",
        f"Load prediction, ours / ours-no-load: {load_overhead:.2f}x on medians "
        f"(target <= {LOAD_OVERHEAD_TARGET:g}x: "
        f"{'PASS' if load_overhead <= LOAD_OVERHEAD_TARGET else 'FAIL'})",
    ]
    for name, codes in exit_codes.items():
        if codes != [0]:
            lines.append(f"note: {name} exit codes {codes} (2 = some library failed to inspect)")
    for name, same in deterministic.items():
        if not same:
            lines.append(f"note: {name}'s per-library labels changed between runs")
    lines += ["", *format_comparison(comparison, site)]
    print("\n".join(lines))

    if args.json_out:
        payload = {
            "site_packages": str(site),
            "torch_version": torch_version,
            "versions": versions,
            "commands": {"ours": ours.command, "predecessor": pred.command},
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "rounds": rounds,
            "runs": [asdict(r) for t in (ours, bare, pred) for r in t.runs],
            "stats": {name: asdict(s) for name, s in stats.items()},
            "scanned": {name: asdict(s) for name, s in sizes.items()},
            "speedup_median": ratio_median,
            "speedup_with_load_prediction": ratio_with_loads,
            "load_prediction_overhead": load_overhead,
            "speedup_min": ratio_min,
            "target": args.target,
            "target_met": passed,
            "exit_codes": exit_codes,
            "deterministic": deterministic,
            "comparison": {
                "packages": [asdict(r) | {"agree": r.agree} for r in comparison.packages],
                "common_libraries": comparison.common_libraries,
                "disagreements": [asdict(d) for d in comparison.disagreements],
                "only_ours": [asdict(lib) for lib in comparison.only_ours],
                "only_predecessor": [asdict(lib) for lib in comparison.only_predecessor],
            },
        }
        args.json_out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"\nmeasurements written to {args.json_out}")
    load_passed = load_overhead <= LOAD_OVERHEAD_TARGET
    return 1 if args.strict and not (passed and load_passed) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return run_benchmark(args)
    except BenchError as exc:
        print(f"bench_env: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench_env: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
