"""Where the survey's tasks run: a local process pool, or a Dask cluster.

Both run the same function (:func:`torch_abi_audit.survey.task.survey_wheel`) on the same
picklable jobs and hand back outcomes as they finish, with at most ``in_flight`` tasks submitted
at a time (so a plan of thousands of wheels never sits in a queue, and only the running tasks
hold a wheel on disk). A task that dies with its worker becomes a ``failed`` outcome at stage
``worker`` (retried by the next run), never a lost run.

Why Dask (``--engine dask``) rather than Ray: the task is coarse (a download and an audit, seconds
each) and independent, which Dask's futures API (``submit`` / ``wait``) serves directly; Dask
is pure Python (``distributed`` installs in seconds in CI and on any worker image) and a
``LocalCluster`` of two single-threaded workers starts in about two seconds on a 2-core machine,
where Ray brings a ~60 MB binary distribution, a GCS server, a raylet and a shared-memory object
store per node, which this workload (kilobytes of results per task) has no use for. A user with a
cluster points ``--address`` at its scheduler (``tcp://host:8786``); its workers need
torch-abi-audit installed and pip able to reach the index.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from typing import Any

from torch_abi_audit.survey.plan import WheelJob
from torch_abi_audit.survey.task import WheelOutcome, failed_outcome, survey_wheel

ENGINES = ("local", "dask")


class EngineError(Exception):
    """The engine cannot start: Dask not installed, no scheduler at the address."""


class Engine(ABC):
    """Runs :func:`survey_wheel` over jobs; subclasses say how to submit and wait."""

    name = "engine"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pending: dict[Any, WheelJob] = {}

    @abstractmethod
    def _submit(self, job: WheelJob) -> Any:
        """Start one task; returns its future."""

    @abstractmethod
    def _wait(self, futures: Iterable[Any]) -> set[Any]:
        """Block until at least one future is done; returns the done ones."""

    @abstractmethod
    def _result(self, future: Any) -> WheelOutcome:
        """The outcome of a done future (raises what the task or its worker raised)."""

    @abstractmethod
    def close(self, *, cancel: bool = False) -> None:
        """Stop the engine; with ``cancel``, drop the tasks not yet finished."""

    def _restart(self) -> None:  # noqa: B027 - only the local pool has something to restart
        """Replace a pool whose worker died (the local pool; a cluster heals itself)."""

    def run(self, jobs: Iterable[WheelJob], in_flight: int | None = None) -> Iterator[WheelOutcome]:
        """Outcomes of ``jobs`` in the order they finish."""
        limit = max(1, in_flight or 2 * self.workers)
        queue = iter(jobs)
        pending = self._pending

        def fill() -> None:
            while len(pending) < limit:
                job = next(queue, None)
                if job is None:
                    return
                pending[self._submit(job)] = job

        fill()
        while pending:
            broken = False
            for future in self._wait(list(pending)):
                job = pending.pop(future)
                try:
                    yield self._result(future)
                except Exception as exc:  # a dead worker or a lost task: a row, not a crash
                    broken = broken or _is_broken_pool(exc)
                    reason = str(exc) or type(exc).__name__
                    yield failed_outcome(job, "worker", f"the worker running it died: {reason}")
            if broken:
                self._restart()
                for future, job in list(pending.items()):
                    pending.pop(future)
                    pending[self._submit(job)] = job
            fill()


def _is_broken_pool(exc: BaseException) -> bool:
    from concurrent.futures.process import BrokenProcessPool

    return isinstance(exc, BrokenProcessPool)


def _ignore_interrupts() -> None:
    # Ctrl-C is the coordinator's to handle: it stops submitting, records what is done and
    # shuts the pool down; a worker killed mid-task by the same signal would only add noise.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LocalEngine(Engine):
    """A pool of local worker processes (the default)."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        super().__init__(workers or os.cpu_count() or 1)
        self._pool = self._new_pool()

    def _new_pool(self) -> Any:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(
            max_workers=self.workers, mp_context=context, initializer=_ignore_interrupts
        )

    def _submit(self, job: WheelJob) -> Any:
        return self._pool.submit(survey_wheel, job)

    def _wait(self, futures: Iterable[Any]) -> set[Any]:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
        return set(done)

    def _result(self, future: Any) -> WheelOutcome:
        outcome: WheelOutcome = future.result()
        return outcome

    def _restart(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def close(self, *, cancel: bool = False) -> None:
        if cancel:
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.terminate()  # tasks in flight: their wheels are retried by a rerun
        self._pool.shutdown(wait=True, cancel_futures=cancel)


class DaskEngine(Engine):
    """Tasks on a Dask cluster: the one at ``address``, else a local one of ``workers``
    single-threaded worker processes started for the run."""

    name = "dask"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        try:
            # distributed's API is not annotated: it is held as Any, not called untyped.
            self._dask: Any = importlib.import_module("distributed")
        except ImportError as exc:
            raise EngineError(
                "--engine dask needs Dask: pip install 'torch-abi-audit[survey]'"
            ) from exc
        self._cluster: Any = None
        try:
            if address:
                self._client = self._dask.Client(address, timeout="30s")
            else:
                self._cluster = self._dask.LocalCluster(
                    n_workers=workers or os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
                self._client = self._dask.Client(self._cluster)
        except (OSError, TimeoutError) as exc:
            raise EngineError(f"cannot reach a Dask scheduler at {address}: {exc}") from exc
        threads = self._client.nthreads()
        super().__init__(max(1, sum(threads.values())))

    def _submit(self, job: WheelJob) -> Any:
        return self._client.submit(survey_wheel, job, pure=False)

    def _wait(self, futures: Iterable[Any]) -> set[Any]:
        done, _ = self._dask.wait(list(futures), return_when="FIRST_COMPLETED")
        return set(done)

    def _result(self, future: Any) -> WheelOutcome:
        outcome: WheelOutcome = future.result()
        return outcome

    def close(self, *, cancel: bool = False) -> None:
        if cancel:
            self._client.cancel(list(self._pending), force=True)
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def start_engine(name: str, *, workers: int | None, address: str | None) -> Engine:
    """The engine called ``name`` (:data:`ENGINES`). Raises :class:`EngineError`."""
    if name == "dask":
        return DaskEngine(address, workers)
    if address:
        raise EngineError("--address goes with --engine dask")
    return LocalEngine(workers)
