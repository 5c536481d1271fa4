"""The worker pool and the ways a run ends early: Ctrl-C as the workers start, and the parent
killed (a CI job's timeout). Each case runs in a process of its own, in a session of its own
(the signals go to it alone), and must end in bounded time with no worker left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers.site import FakeSite

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="fork, process groups and prctl: Linux"
)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not reaped yet, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(_alive(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def test_ctrl_c_as_the_workers_start_ends_the_run(fake_site: FakeSite) -> None:
    # A Ctrl-C (SIGINT to the whole process group) that arrives while the pool forks its
    # workers: held until they ignore it, then the parent's alone: exit 130, one line, no
    # worker traceback, and no hang (the pool is stopped although __enter__ never finished).
    program = textwrap.dedent(
        f"""
        import os, signal, sys
        from concurrent.futures import ProcessPoolExecutor
        from torch_abi_audit import engine

        submit = ProcessPoolExecutor.submit

        def interrupted_submit(self, fn, /, *args, **kwargs):
            future = submit(self, fn, *args, **kwargs)  # the workers are forked here
            if fn is engine._ready:
                os.killpg(0, signal.SIGINT)
            return future

        ProcessPoolExecutor.submit = interrupted_submit
        sys.argv = ["torch-abi-audit", "--site-packages", {str(fake_site.site)!r}, "-j", "2"]
        from torch_abi_audit.cli import run

        run()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,
        check=False,
    )
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip() == "torch-abi-audit: interrupted"


def test_workers_end_with_a_killed_parent(tmp_path: Path) -> None:
    # The parent is killed (SIGKILL: no handler, no cleanup): its workers must not wait for
    # tasks forever, holding its pipes open.
    pids = tmp_path / "pids"
    program = textwrap.dedent(
        f"""
        import os, time
        from pathlib import Path
        from torch_abi_audit.engine import LibraryAnalysis

        with LibraryAnalysis(2, eager=True) as analysis:
            workers = [str(pid) for pid in analysis._pool._processes]
            Path({str(pids)!r}).write_text(" ".join([str(os.getpid()), *workers]))
            time.sleep(600)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", program],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not pids.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        parent, *workers = (int(pid) for pid in pids.read_text().split())
        assert parent == process.pid and len(workers) == 2
        assert all(_alive(pid) for pid in workers)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        assert _gone_within(workers, 10), "workers outlived their parent"
    finally:  # whatever happened, leave nothing running
        if _alive(process.pid):
            os.kill(process.pid, signal.SIGKILL)
        for pid in [int(p) for p in pids.read_text().split()[1:]] if pids.exists() else []:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()
