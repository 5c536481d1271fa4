"""What the benchmarks share: timed runs, alternating rounds, ratios against targets, venvs.

Benchmarks time; they do not judge verdicts (the parity and real-world tests do that). Each
contender is a command line. :func:`measure` runs every contender once as a warm-up, then
``rounds`` times in alternating order; :func:`timed_run` takes wall time with
:func:`time.perf_counter` around the child and CPU time and peak RSS from :func:`os.wait4`
(POSIX only: on Linux ``ru_maxrss`` is the largest process in the child's tree, worker processes
included). Output goes to ``/dev/null``. :class:`Target` compares two contenders' medians.

Every timed command runs with Python's bytecode caches available, as installed tools run (pip
compiles them at install): ``PYTHONDONTWRITEBYTECODE`` is removed from the commands'
environment, so the warm-up writes whatever cache is missing. Without caches each run would
compile every module it imports again (our start-up: ~0.45 s instead of ~0.09 s).

The tools compared run from virtual environments in the project's cache
(``~/.cache/torch-abi-audit/bench``, or ``$TORCH_ABI_AUDIT_CACHE/bench``), this checkout
installed into one of its own as users install it (not editable, byte-compiled).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from torch_abi_audit.sources.index import cache_root  # noqa: E402

MARKER_NAME = ".torch-abi-audit-bench-complete"


class BenchError(Exception):
    """The benchmark could not run (setup failed, a tool failed to start, ...)."""


@dataclass(frozen=True)
class Run:
    """One timed execution of one command."""

    round: int  # 0 is the warm-up
    seconds: float
    cpu_seconds: float
    max_rss_kib: int
    exit_code: int


@dataclass
class Contender:
    """A command line to time, and its runs."""

    name: str
    command: list[str]
    runs: list[Run] = field(default_factory=list)

    @property
    def timed(self) -> list[Run]:
        """The runs after the warm-up."""
        return [run for run in self.runs if run.round > 0] or self.runs

    @property
    def median(self) -> float:
        """Median wall time of the timed runs, in seconds."""
        return statistics.median(run.seconds for run in self.timed)

    @property
    def max_rss_mb(self) -> float:
        """Largest peak RSS over every run, in MB (decimal)."""
        return max(run.max_rss_kib for run in self.runs) * 1024 / 1e6

    def row(self) -> str:
        """One line of the timing table."""
        timed = self.timed
        cpu = statistics.median(run.cpu_seconds for run in timed)
        best = min(run.seconds for run in timed)
        codes = sorted({run.exit_code for run in self.runs})
        return (
            f"  {self.name:<28} median {self.median:7.3f} s  best {best:7.3f} s  "
            f"cpu {cpu:7.3f} s  peak RSS {self.max_rss_mb:7.1f} MB  exit {codes}"
        )


@dataclass(frozen=True)
class Target:
    """``slow`` median / ``fast`` median must be at least ``at_least`` (or, with ``at_most``,
    at most that); with neither, the ratio is informational."""

    label: str
    slow: Contender
    fast: Contender
    at_least: float | None = None
    at_most: float | None = None

    @property
    def ratio(self) -> float:
        """The ratio of the medians."""
        return self.slow.median / self.fast.median

    @property
    def met(self) -> bool:
        """Whether the ratio is on the right side of the target."""
        if self.at_least is not None and self.ratio < self.at_least:
            return False
        return self.at_most is None or self.ratio <= self.at_most

    def line(self) -> str:
        """``label: 23.4x (target >= 20x): PASS``."""
        if self.at_least is not None:
            wanted = f"target >= {self.at_least:g}x"
        elif self.at_most is not None:
            wanted = f"target <= {self.at_most:g}x"
        else:
            return f"  {self.label}: {self.ratio:.1f}x (informational)"
        return f"  {self.label}: {self.ratio:.1f}x ({wanted}): {'PASS' if self.met else 'FAIL'}"


@dataclass(frozen=True)
class Limit:
    """A contender's peak RSS must stay at most ``mb`` megabytes (decimal)."""

    contender: Contender
    mb: float

    @property
    def met(self) -> bool:
        """Whether it did, over every run."""
        return self.contender.max_rss_mb <= self.mb

    def line(self) -> str:
        """``ours peak RSS: 121 MB (target <= 150 MB): PASS``."""
        verdict = "PASS" if self.met else "FAIL"
        return (
            f"  {self.contender.name} peak RSS: {self.contender.max_rss_mb:.0f} MB "
            f"(target <= {self.mb:g} MB): {verdict}"
        )


#: Said under every benchmark's table.
BYTECODE_NOTE = (
    "Every command ran with bytecode caches (PYTHONDONTWRITEBYTECODE unset; the warm-up writes "
    "missing ones), as installed tools run."
)


def child_environment() -> dict[str, str]:
    """The environment timed commands run in: this one, bytecode caches allowed."""
    environment = dict(os.environ)
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    return environment


@dataclass(frozen=True)
class Budget:
    """``cost``'s median minus ``base``'s must stay at most ``seconds`` (what a command adds
    to another: an import to the bare interpreter)."""

    label: str
    cost: Contender
    base: Contender
    seconds: float

    @property
    def spent(self) -> float:
        """The difference of the medians, in seconds."""
        return self.cost.median - self.base.median

    @property
    def met(self) -> bool:
        """Whether it stayed within the budget."""
        return self.spent <= self.seconds

    def line(self) -> str:
        """``import: 62 ms (target <= 100 ms): PASS``."""
        verdict = "PASS" if self.met else "FAIL"
        spent, budget = self.spent * 1000, self.seconds * 1000
        return f"  {self.label}: {spent:.0f} ms (target <= {budget:.0f} ms): {verdict}"


#: What a benchmark checks.
Check = Target | Limit | Budget


def timed_run(command: Sequence[str], round_no: int) -> Run:
    """Run ``command`` once, its output discarded; returns its measurements."""
    start = time.perf_counter()
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=child_environment(),
        )
    except OSError as exc:
        raise BenchError(f"cannot run {command[0]}: {exc}") from exc
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    max_rss = usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss
    cpu = usage.ru_utime + usage.ru_stime
    return Run(round_no, seconds, cpu, max_rss, process.returncode)


def measure(contenders: Sequence[Contender], rounds: int) -> None:
    """One warm-up of each contender, then ``rounds`` rounds, every other one reversed."""
    for contender in contenders:
        contender.runs.append(timed_run(contender.command, 0))
    for round_no in range(1, rounds + 1):
        order = contenders if round_no % 2 else list(reversed(contenders))
        for contender in order:
            contender.runs.append(timed_run(contender.command, round_no))
            print(f"  round {round_no}: {contender.name}", file=sys.stderr, flush=True)


def report(title: str, contenders: Sequence[Contender], checks: Sequence[Check]) -> str:
    """The timing table and the targets, as printed, with the machine's load average."""
    lines = [title, *(c.row() for c in contenders), *(check.line() for check in checks)]
    lines.append(f"  {BYTECODE_NOTE}")
    if hasattr(os, "getloadavg"):
        loads = " ".join(f"{load:.2f}" for load in os.getloadavg())
        lines.append(f"  load average (1, 5, 15 min) at the end: {loads}")
    return "\n".join(lines)


# -- environments ---------------------------------------------------------------------------


def bench_dir() -> Path:
    """Where the benchmark venvs live: ``bench`` in the project's cache."""
    return cache_root() / "bench"


def venv_bin(env_dir: Path, name: str) -> Path:
    """Path of an executable in a venv."""
    scripts = env_dir / ("Scripts" if sys.platform == "win32" else "bin")
    return scripts / (name + (".exe" if sys.platform == "win32" else ""))


def site_packages(env_dir: Path) -> Path:
    """The venv's site-packages. Raises :class:`BenchError` if there is none."""
    found = [*sorted(env_dir.glob("lib/python3*/site-packages")), env_dir / "Lib/site-packages"]
    for candidate in found:
        if candidate.is_dir():
            return candidate
    raise BenchError(f"no site-packages directory under {env_dir}")


def setup_step(command: Sequence[str]) -> None:
    """Run an untimed step before the rounds (its output to standard error); fail the benchmark
    when it fails."""
    print(f"$ {' '.join(command)}", file=sys.stderr, flush=True)
    if subprocess.run(command, stdout=sys.stderr, stderr=sys.stderr, check=False).returncode:
        raise BenchError(f"setup step failed: {' '.join(command[:6])} ...")


def ensure_venv(env_dir: Path, requirements: Sequence[str], python: str) -> Path:
    """``env_dir`` with ``requirements`` installed (built once: a marker file records a
    complete install); returns it."""
    if (env_dir / MARKER_NAME).is_file():
        return env_dir
    print(f"building {env_dir} (one-off)", file=sys.stderr)
    if not venv_bin(env_dir, "python").exists():
        env_dir.parent.mkdir(parents=True, exist_ok=True)
        setup_step([python, "-m", "venv", str(env_dir)])
    pip = [str(venv_bin(env_dir, "python")), "-m", "pip", "install", "--disable-pip-version-check"]
    setup_step([*pip, *requirements])
    (env_dir / MARKER_NAME).write_text("\n".join(requirements) + "\n", encoding="utf-8")
    return env_dir


def install_checkout(env_dir: Path, python: str) -> Path:
    """This checkout installed (not editable) into the venv ``env_dir``, afresh on every run so
    that the numbers are the checkout's; returns its ``torch-abi-audit``."""
    if not venv_bin(env_dir, "python").exists():
        env_dir.parent.mkdir(parents=True, exist_ok=True)
        setup_step([python, "-m", "venv", str(env_dir)])
    pip = [str(venv_bin(env_dir, "python")), "-m", "pip", "install", "--quiet"]
    pip.append("--disable-pip-version-check")
    setup_step([*pip, str(REPO)])
    setup_step([*pip, "--force-reinstall", "--no-deps", str(REPO)])
    return venv_bin(env_dir, "torch-abi-audit")


# -- command line ---------------------------------------------------------------------------


def parser(description: str, rounds: int) -> argparse.ArgumentParser:
    """The options every benchmark takes."""
    result = argparse.ArgumentParser(description=description)
    result.add_argument("--rounds", type=int, default=rounds, help="timed rounds per contender")
    result.add_argument("--quick", action="store_true", help="one timed round")
    result.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    result.add_argument("--json-out", type=Path, help="also write the runs as JSON here")
    result.add_argument("--bench-dir", type=Path, default=bench_dir(), help="where venvs live")
    result.add_argument(
        "--venv-python", default=sys.executable, help="interpreter that creates the venvs"
    )
    return result


def finish(
    args: argparse.Namespace,
    contenders: Sequence[Contender],
    checks: Sequence[Check],
) -> int:
    """Write ``--json-out``; the exit code: 1 under ``--strict`` when a target is missed."""
    if args.json_out:
        payload = {
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            },
            "contenders": [
                {"name": c.name, "command": c.command, "runs": [asdict(r) for r in c.runs]}
                for c in contenders
            ],
            "targets": [
                {"label": t.label, "ratio": t.ratio, "met": t.met}
                for t in checks
                if isinstance(t, Target)
            ],
            "budgets": [
                {"label": b.label, "seconds": b.spent, "budget": b.seconds, "met": b.met}
                for b in checks
                if isinstance(b, Budget)
            ],
        }
        args.json_out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 1 if args.strict and not all(check.met for check in checks) else 0


def run(main: object) -> None:
    """Run a benchmark's ``main``: exit 2 when it cannot run."""
    assert callable(main)
    try:
        raise SystemExit(main())
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
