"""``survey run``: list, plan, skip what is stored, run the tasks, store each outcome.

The coordinator lists every package on the index first (one request each), stores which wheel
each release x platform gets, leaves out the wheels the store already holds (keyed by sha256:
a rerun resumes, a later run adds only new releases), then feeds the rest to the engine and
commits each outcome as it arrives. Ctrl-C stops submitting, cancels what is in flight (those
wheels are simply not stored, so the next run does them) and closes the run's row.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

from torch_abi_audit.renderers.escape import terminal_text
from torch_abi_audit.survey.engines import Engine
from torch_abi_audit.survey.plan import Plan, ReleaseFilter, WheelJob, plan_project
from torch_abi_audit.survey.simple_api import IndexReadError, fetch_project
from torch_abi_audit.survey.store import RunTotals, SurveyStore
from torch_abi_audit.survey.task import AUDITED, WheelOutcome


@dataclass(frozen=True)
class SurveyOptions:
    """What to survey and how (the ``survey run`` arguments, parsed)."""

    packages: Sequence[str]
    releases: ReleaseFilter
    platforms: Sequence[str]
    python: str
    torch_version: str | None = None
    keep_dir: Path | None = None
    work_dir: Path | None = None
    index: str | None = None
    in_flight: int | None = None


@dataclass
class PlanSummary:
    """The whole plan and what of it is left to do."""

    plan: Plan = field(default_factory=Plan)
    todo: list[WheelJob] = field(default_factory=list)
    listing_errors: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        """Wheels of the plan the store already holds."""
        return len(self.plan.jobs) - len(self.todo)


def _human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """One line per event on ``stream`` (stderr): what was listed, each wheel as it is stored
    (with the run's rate and an estimate of the time left), and the closing totals."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.total = 0
        self.done = 0
        self.bytes = 0
        self.started = time.perf_counter()

    def say(self, text: str) -> None:
        """Print one line (unless quiet)."""
        if not self.quiet:  # file names and pip's words come from outside: escaped
            print(terminal_text(text), file=self.stream, flush=True)

    def start(self, total: int) -> None:
        """The tasks begin: ``total`` wheels to do."""
        self.total = total
        self.started = time.perf_counter()

    def wheel(self, outcome: WheelOutcome) -> None:
        """A wheel was stored."""
        self.done += 1
        self.bytes += outcome.size or 0
        elapsed = max(time.perf_counter() - self.started, 1e-6)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate else 0.0
        job = outcome.job
        if outcome.status == AUDITED:
            verdict = outcome.torch_verdict or "?"
            if outcome.min_torch:
                verdict += f" (min torch {outcome.min_torch})"
        else:
            verdict = f"FAILED at {outcome.stage}: {outcome.error}"
        width = len(str(self.total))
        seconds = outcome.seconds_download + outcome.seconds_audit
        self.say(
            f"[{self.done:>{width}}/{self.total}] {job.filename}: {verdict} "
            f"[{_human_bytes(outcome.size or 0)}, {seconds:.1f}s]"
            f" | {rate * 60:.1f} wheels/min, {_human_bytes(self.bytes / elapsed)}/s, "
            f"{_duration(left)} left"
        )


def plan_survey(options: SurveyOptions, store: SurveyStore, progress: Progress) -> PlanSummary:
    """List every package, store the selections, and keep the jobs the store lacks."""
    summary = PlanSummary()
    for name in options.packages:
        try:
            project = fetch_project(name, options.index)
        except IndexReadError as exc:
            summary.listing_errors.append(f"{name}: {exc}")
            progress.say(f"error: {name}: {exc}")
            continue
        planned = plan_project(
            project,
            options.releases,
            options.platforms,
            options.python,
            torch_version=options.torch_version,
        )
        store.record_selections(planned.selections)
        summary.plan.jobs.extend(planned.jobs)
        summary.plan.selections.extend(planned.selections)
        releases = len({s.version for s in planned.selections})
        progress.say(f"listed {project.name}: {releases} releases, {len(planned.jobs)} wheels")
    done = store.done_keys()
    summary.todo = [job for job in summary.plan.jobs if job.key not in done]
    return summary


def _placed(job: WheelJob, options: SurveyOptions, work_dir: Path | None) -> WheelJob:
    return replace(
        job,
        keep_dir=str(options.keep_dir) if options.keep_dir else None,
        work_dir=str(work_dir) if work_dir else None,
        index=options.index,
    )


class WorkDirError(Exception):
    """The directory wheels are fetched to cannot be made."""


def _work_dir(options: SurveyOptions) -> Path:
    """A fresh directory for this run's downloads (removed when the run ends)."""
    try:
        if options.work_dir is not None:
            options.work_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="torch-abi-audit-survey-", dir=options.work_dir))
    except OSError as exc:
        raise WorkDirError(f"cannot make a download directory: {exc}") from exc


@dataclass
class _Tally:
    audited: int = 0
    failed: int = 0
    bytes: int = 0
    cpu_seconds: float = 0.0


def run_survey(
    options: SurveyOptions,
    store: SurveyStore,
    engine: Engine,
    progress: Progress,
    *,
    command: str = "",
    local_work_dir: bool = True,
) -> tuple[RunTotals, PlanSummary]:
    """Run the survey; returns the run's totals and the plan.

    Raises :class:`KeyboardInterrupt` after recording the interrupted run (what was stored
    stays stored). ``local_work_dir``: download into a temporary directory of this machine
    (false for a remote cluster, whose workers use their own).
    """
    started = time.perf_counter()
    work_dir = _work_dir(options) if local_work_dir and options.keep_dir is None else None
    run_id = store.start_run(command, engine.name, engine.workers)
    tally = _Tally()
    summary = PlanSummary()
    outcome_name = "crashed"
    try:
        summary = plan_survey(options, store, progress)
        progress.say(
            f"{len(summary.plan.jobs)} wheels planned, {summary.skipped} already stored, "
            f"{len(summary.todo)} to do on {engine.name} ({engine.workers} workers)"
        )
        progress.start(len(summary.todo))
        jobs = (_placed(job, options, work_dir) for job in summary.todo)
        for outcome in engine.run(jobs, options.in_flight):
            store.record(outcome)
            tally.bytes += outcome.size or 0
            tally.cpu_seconds += outcome.cpu_seconds
            if outcome.status == AUDITED:
                tally.audited += 1
            else:
                tally.failed += 1
            progress.wheel(outcome)
        outcome_name = "finished"
    except KeyboardInterrupt:
        outcome_name = "interrupted"
        engine.close(cancel=True)
        raise
    finally:
        totals = RunTotals(
            planned=len(summary.plan.jobs),
            skipped=summary.skipped,
            audited=tally.audited,
            failed=tally.failed,
            bytes=tally.bytes,
            wall_seconds=time.perf_counter() - started,
            cpu_seconds=tally.cpu_seconds,
            outcome=outcome_name,
        )
        store.finish_run(run_id, totals)
        if work_dir is not None:
            shutil.rmtree(work_dir, ignore_errors=True)
    return totals, summary
