"""The local engine: a worker that dies is a row, and the pool carries on."""

from __future__ import annotations

import os
from typing import Any

from torch_abi_audit.survey.engines import LocalEngine
from torch_abi_audit.survey.plan import WheelJob
from torch_abi_audit.survey.task import failed_outcome


def _job(package: str) -> WheelJob:
    return WheelJob(package, "1.0", f"{package}-1.0-py3-none-any.whl", "u", None, 1, None, None,
                    "3.12")  # fmt: skip


class _Crashing(LocalEngine):
    """Runs a stand-in task: the job named ``crash`` kills its worker process."""

    def _submit(self, job: WheelJob) -> Any:
        if job.package == "crash":
            return self._pool.submit(os._exit, 3)
        return self._pool.submit(failed_outcome, job, "download", "stand-in task ran")


def test_a_dead_worker_is_a_row_and_the_pool_is_replaced() -> None:
    engine = _Crashing(1)
    try:
        outcomes = list(engine.run([_job("first"), _job("crash"), _job("after")], in_flight=1))
    finally:
        engine.close()
    by_package = {o.job.package: o for o in outcomes}
    assert set(by_package) == {"first", "crash", "after"}
    assert by_package["crash"].stage == "worker"
    assert "died" in (by_package["crash"].error or "")
    assert by_package["first"].error == by_package["after"].error == "stand-in task ran"
