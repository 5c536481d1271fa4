"""The survey's one task: fetch a wheel, audit it in place, delete it, return plain records.

:func:`survey_wheel` is what every engine runs — a local process pool or a Dask cluster's
workers — so it takes and returns small, picklable values and never raises: a download that
fails, a file whose checksum differs from the index's, a corrupt archive, even a bug, comes back
as a ``failed`` :class:`WheelOutcome` with the stage and the reason. The wheel is fetched with
the downloader behind ``--download`` (:func:`torch_abi_audit.sources.index.download`, pip) into
a directory of its own and removed afterwards, so a worker holds at most one wheel on disk.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import socket
import tempfile
import time
import traceback
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

from torch_abi_audit._version import __version__
from torch_abi_audit.report import ExtensionReport, PackageReport
from torch_abi_audit.sources.index import file_sha256
from torch_abi_audit.survey.plan import WheelJob

# pip's words for a file that is not a readable wheel ("Wheel 'x' located at ... is invalid").
_INVALID_WHEEL = re.compile(r"Wheel '[^']*' located at .* is invalid")

AUDITED = "audited"
FAILED = "failed"

#: Failure stages: ``download`` (pip fetched nothing), ``archive`` (pip refused the file as an
#: invalid wheel), ``checksum`` (the file is not the one the index lists), ``audit`` (the audit
#: could not read the archive), ``worker`` (the worker died), ``internal`` (a bug). Those that
#: may pass on a later run are retried by a rerun; a broken archive stays failed.
RETRIED_STAGES = frozenset({"download", "checksum", "worker", "internal"})


@dataclass(frozen=True)
class LibraryRecord:
    """One library of an audited wheel, as the store keeps it."""

    path: str
    kind: str
    format: str | None
    machine: str | None
    torch_label: str
    cpython_label: str | None
    min_torch: str | None
    stable_shims: int
    unstable_symbols: int
    abi3_computed: str | None
    load_status: str | None
    load_message: str | None
    error: str | None


@dataclass(frozen=True)
class FindingRecord:
    """One packaging or torch finding of a wheel (evidence as JSON text)."""

    code: str
    severity: str
    message: str
    evidence: str


@dataclass(frozen=True)
class WheelOutcome:
    """What became of one :class:`WheelJob`.

    ``status`` is :data:`AUDITED` or :data:`FAILED` (then ``stage`` and ``error`` say where and
    why). ``sha256`` and ``size`` are those of the file actually read. ``report_json`` is the
    audit's JSON document (the ``--json`` output), zlib-compressed.
    """

    job: WheelJob
    status: str
    stage: str | None = None
    error: str | None = None
    sha256: str | None = None
    size: int | None = None
    torch_verdict: str | None = None
    cpython_verdict: str | None = None
    min_torch: str | None = None
    requires_torch: str | None = None
    tags: str | None = None
    load_against: str | None = None
    load_status: str | None = None
    has_library_errors: bool = False
    libraries: tuple[LibraryRecord, ...] = ()
    findings: tuple[FindingRecord, ...] = ()
    report_json: bytes | None = None
    seconds_download: float = 0.0
    seconds_audit: float = 0.0
    cpu_seconds: float = 0.0
    worker: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    tool_version: str = __version__


def failed_outcome(job: WheelJob, stage: str, error: str) -> WheelOutcome:
    """A failure row for ``job`` (also what engines record when a worker dies)."""
    return WheelOutcome(job, FAILED, stage, error)


def _cpu_now() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _relative(lib: ExtensionReport, root: Path) -> str:
    try:
        return lib.path.relative_to(root).as_posix()
    except ValueError:
        return lib.path.as_posix()


def library_records(report: PackageReport) -> tuple[LibraryRecord, ...]:
    """The store's rows for every library of an audited package."""
    records = []
    for lib in report.libraries:
        audited = lib.error is None and lib.skipped is None
        records.append(
            LibraryRecord(
                path=_relative(lib, report.root),
                kind=str(lib.kind),
                format=lib.format,
                machine=lib.machine,
                torch_label=str(lib.torch_label),
                cpython_label=str(lib.cpython_label) if audited else None,
                min_torch=lib.torch.min_torch_version,
                stable_shims=lib.torch.stable_shim_count,
                unstable_symbols=len(lib.torch.unstable_symbols),
                abi3_computed=lib.cpython.computed,
                load_status=str(lib.load.status) if lib.load else None,
                load_message=lib.load.message if lib.load else None,
                error=lib.error or lib.skipped,
            )
        )
    return tuple(records)


def audited_outcome(job: WheelJob, report: PackageReport, sha256: str, size: int) -> WheelOutcome:
    """The outcome of a wheel the audit read (``failed`` at stage ``audit`` when the archive
    itself could not be read)."""
    from torch_abi_audit.renderers import json_report

    document = json_report.single_package_object(report)
    compressed = zlib.compress(json.dumps(document, sort_keys=True).encode(), 6)
    dist = report.distribution
    base = WheelOutcome(
        job,
        FAILED if report.error else AUDITED,
        "audit" if report.error else None,
        report.error,
        sha256=sha256,
        size=size,
        report_json=compressed,
        requires_torch="; ".join(dist.requires_torch) if dist else None,
        tags=".".join(report.wheel.tags) if report.wheel else None,
    )
    if report.error:
        return base
    reference = report.torch_reference
    return replace(
        base,
        torch_verdict=str(report.torch_verdict),
        cpython_verdict=str(report.cpython_verdict),
        min_torch=report.min_torch_version,
        load_against=reference.label if reference else None,
        load_status=str(report.load_status) if report.load_status else None,
        has_library_errors=report.has_error,
        libraries=library_records(report),
        findings=tuple(
            FindingRecord(f.code, str(f.severity), f.message, json.dumps(f.evidence))
            for f in report.findings
        ),
    )


def _pip_environment(index: str | None) -> dict[str, str]:
    """pip's settings for one download: no HTTP cache (pip would keep a second copy of every
    wheel behind the survey's back, unbounding its disk use), no constraints file (a site may
    cap what it installs, e.g. ``torchvision<=0.29.1``; the survey fetches the one file the
    index lists, with ``--no-deps``, installing nothing), and the index the job was planned on,
    if it was not pip's own. Set for the pip child alone: this process's environment is not
    touched."""
    return {
        "PIP_NO_CACHE_DIR": "1",
        "PIP_CONSTRAINT": os.devnull,
        **({"PIP_INDEX_URL": index} if index else {}),
    }


def _fetch(job: WheelJob, directory: Path) -> tuple[Path | None, str | None]:
    """The downloaded wheel, or why there is none (pip's words)."""
    from torch_abi_audit.sources.index import download

    platforms = [job.pip_platform] if job.pip_platform else []
    spec = f"{job.package}=={job.version}"
    fetched = download(spec, platforms, job.python, directory, env=_pip_environment(job.index))[0]
    if fetched.wheel is None:
        return None, fetched.error or fetched.unavailable or "pip fetched nothing"
    return fetched.wheel, None


def _audit(job: WheelJob, wheel: Path) -> PackageReport:
    from torch_abi_audit.audit import inspect_targets

    reports = inspect_targets([wheel], jobs=1, torch_version=job.torch_version, predict_loads=False)
    return reports[0]


def _run(job: WheelJob, directory: Path) -> WheelOutcome:
    started = time.perf_counter()
    wheel, problem = _fetch(job, directory)
    fetched = time.perf_counter()
    if wheel is None:
        problem = problem or "no wheel"
        stage = "archive" if _INVALID_WHEEL.search(problem) else "download"
        return replace(failed_outcome(job, stage, problem), seconds_download=fetched - started)
    sha256 = file_sha256(wheel)
    size = wheel.stat().st_size
    if job.sha256 and sha256 != job.sha256:
        return WheelOutcome(
            job,
            FAILED,
            "checksum",
            f"pip fetched {wheel.name} with sha256 {sha256}, the index lists {job.filename} "
            f"with sha256 {job.sha256}",
            sha256=sha256,
            size=size,
            seconds_download=fetched - started,
        )
    outcome = audited_outcome(job, _audit(job, wheel), sha256, size)
    return replace(
        outcome, seconds_download=fetched - started, seconds_audit=time.perf_counter() - fetched
    )


def survey_wheel(job: WheelJob) -> WheelOutcome:
    """Fetch, audit and (unless kept) delete one wheel. Never raises."""
    cpu_before = _cpu_now()
    keep = job.keep_dir is not None
    try:
        if keep:
            directory = Path(job.keep_dir or ".")
            directory.mkdir(parents=True, exist_ok=True)
        else:
            base = job.work_dir or None
            if base:
                Path(base).mkdir(parents=True, exist_ok=True)
            directory = Path(tempfile.mkdtemp(prefix="wheel-", dir=base))
    except OSError as exc:
        return failed_outcome(job, "download", f"cannot create a download directory: {exc}")
    try:
        outcome = _run(job, directory)
    except Exception as exc:  # the task's promise: a bug in one wheel's audit is a row
        where = traceback.extract_tb(exc.__traceback__)[-1]
        outcome = failed_outcome(
            job,
            "internal",
            f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})",
        )
    finally:
        from torch_abi_audit.sources.wheels import close_wheels

        close_wheels()
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)
    return replace(outcome, cpu_seconds=_cpu_now() - cpu_before)
