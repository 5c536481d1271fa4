"""Running the auditor on hostile input without letting a hang take the test run with it.

:func:`run_cli` runs the command line in a child process with a deadline and a scratch home,
temporary and working directory, and checks what must hold for *every* input: it ends within the
deadline, prints no traceback, exits 0, 1 or 2 (never the interpreter's 1 for a crash: a crash
message says "internal error"), and writes nothing outside the cache. :func:`call_bounded` runs
one API call in a forked child with a deadline (an ``open`` blocked on a FIFO cannot be
interrupted from inside the process). :func:`snapshot` records a tree's contents, modes and
times, to check that an audit changed nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: Seconds any one audit of a small hostile input may take, start-up included; a hang is
#: anything longer.
DEADLINE = float(os.environ.get("TORCH_ABI_AUDIT_TEST_DEADLINE", "60"))


@dataclass(frozen=True)
class CliRun:
    """One finished run of the command line."""

    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def _scratch(base: Path) -> dict[str, Path]:
    places = {name: base / name for name in ("home", "tmp", "cwd")}
    for place in places.values():
        place.mkdir(parents=True, exist_ok=True)
    return places


def _written(places: dict[str, Path]) -> list[str]:
    """Files created in the scratch places, apart from the tool's cache."""
    cache = places["home"] / ".cache" / "torch-abi-audit"
    found = []
    for place in places.values():
        for path in place.rglob("*"):
            if not path.is_dir() and cache not in path.parents:
                found.append(str(path))
    return found


def run_cli(
    argv: Sequence[str],
    scratch: Path,
    *,
    timeout: float = DEADLINE,
    env: dict[str, str] | None = None,
    honour_permissions: bool = False,
) -> CliRun:
    """Run ``torch-abi-audit argv`` in a child process and check the universal guarantees.

    ``scratch`` holds the child's home, temporary and working directories (made here).
    ``honour_permissions`` makes file permissions bind the child even when the tests run as
    root (it loses ``CAP_DAC_OVERRIDE`` and ``CAP_DAC_READ_SEARCH``), for unreadable files.
    """
    places = _scratch(scratch)
    environment = {
        **os.environ,
        "HOME": str(places["home"]),
        "TMPDIR": str(places["tmp"]),
        "XDG_CACHE_HOME": str(places["home"] / ".cache"),
        "PYTHONIOENCODING": "utf-8:strict",
        **(env or {}),
    }
    environment.pop("TORCH_ABI_AUDIT_CACHE", None)

    # A session of its own: on a hang, the worker processes are killed with it.
    child = subprocess.Popen(
        [sys.executable, "-m", "torch_abi_audit", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=places["cwd"],
        env=environment,
        start_new_session=True,
        preexec_fn=_drop_permission_override if honour_permissions else None,  # noqa: PLW1509
    )
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        pytest.fail(f"torch-abi-audit {' '.join(argv)} did not finish in {timeout} s (hang)")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)  # no worker outlives its run
    result = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
    out = result.stdout.decode("utf-8")  # strict: the output is valid UTF-8
    err = result.stderr.decode("utf-8")
    assert "Traceback" not in out + err, err
    assert result.returncode in (0, 1, 2), (result.returncode, err)
    assert _written(places) == []
    return CliRun(result.returncode, out, err)


# linux/capability.h and linux/prctl.h
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2
_PR_CAPBSET_DROP = 24


def _drop_permission_override() -> None:  # pragma: no cover - runs in the child, before exec
    """Remove from the bounding set the capabilities that let root ignore file permissions;
    after ``exec`` the child cannot have them."""
    if os.geteuid() != 0:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _child(connection: Any, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
    os.setsid()  # a process group of its own, killed as a whole on a hang
    try:
        connection.send(("ok", function(*args)))
    except BaseException as exc:
        connection.send(("raised", f"{type(exc).__name__}: {exc}"))
    connection.close()


def call_bounded(function: Callable[..., Any], *args: Any, timeout: float = 30.0) -> Any:
    """``function(*args)`` run in a forked child; fails the test if it does not return within
    ``timeout`` seconds or raises. The result must pickle."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(sender, function, args))
    child.start()
    sender.close()
    try:
        if not receiver.poll(timeout):
            pytest.fail(f"{function.__name__}{args!r} did not return in {timeout} s (hang)")
        status, value = receiver.recv()
    finally:
        assert child.pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.join()
        receiver.close()
    if status != "ok":
        pytest.fail(f"{function.__name__}{args!r} raised {value}")
    return value


@dataclass(frozen=True)
class Entry:
    """What an audit must leave as it was: kind, mode, size, times and content digest."""

    kind: int
    mode: int
    size: int
    mtime_ns: int
    ctime_ns: int
    digest: str | None


def _walk(root: Path) -> Iterator[Path]:
    yield root
    if root.is_dir() and not root.is_symlink():
        for child in sorted(root.iterdir()):
            yield from _walk(child)


def snapshot(root: Path) -> dict[str, Entry]:
    """Every path under ``root`` (symbolic links not followed) with its metadata and, for
    regular files, the SHA-256 of its content. Special files are never opened."""
    entries = {}
    for path in _walk(root):
        info = path.lstat()
        digest = None
        if stat.S_ISREG(info.st_mode):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        entries[str(path.relative_to(root))] = Entry(
            stat.S_IFMT(info.st_mode),
            stat.S_IMODE(info.st_mode),
            info.st_size,
            info.st_mtime_ns,
            info.st_ctime_ns,
            digest,
        )
    return entries
