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
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

#: Seconds any one audit of a small hostile input may take, start-up included; a hang is
#: anything longer.
DEADLINE = float(os.environ.get("TORCH_ABI_AUDIT_TEST_DEADLINE", "60"))


@dataclass(frozen=True)
class CliRun:
    """One finished run of the command line: exit code, output, wall time and the peak
    resident memory of the largest of its processes (bytes)."""

    code: int
    out: str
    err: str
    seconds: float
    peak_memory: int

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
    started = time.perf_counter()
    outputs = [_drain(child.stdout), _drain(child.stderr)]
    timer = threading.Timer(timeout, _kill_group, (child.pid,))
    timer.start()
    try:
        # wait4, not communicate: its resource usage covers the workers the child waited for.
        _pid, status, usage = os.wait4(child.pid, 0)
    finally:
        timer.cancel()
        _kill_group(child.pid)  # no worker outlives its run
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    stdout, stderr = (output.result() for output in outputs)
    if seconds >= timeout:
        pytest.fail(f"torch-abi-audit {' '.join(argv)} did not finish in {timeout} s (hang)")
    result = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
    out = result.stdout.decode("utf-8")  # strict: the output is valid UTF-8
    err = result.stderr.decode("utf-8")
    assert "Traceback" not in out + err, err
    assert result.returncode in (0, 1, 2), (result.returncode, err)
    assert _written(places) == []
    return CliRun(result.returncode, out, err, seconds, usage.ru_maxrss * 1024)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


class _Output:
    """All of a pipe, read on a thread of its own (so that neither pipe fills up)."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self._chunks: list[bytes] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[bytes]) -> None:
        with pipe:
            while chunk := pipe.read(1 << 16):
                self._chunks.append(chunk)

    def result(self) -> bytes:
        self._thread.join()
        return b"".join(self._chunks)


def _drain(pipe: IO[bytes] | None) -> _Output:
    assert pipe is not None
    return _Output(pipe)


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


# linux/inotify.h
_IN_ACCESS = 0x001
_IN_OPEN = 0x020
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")


class OpenWatch:
    """Records every ``open`` (and read) of a file or directory inside the watched trees
    (inotify ``IN_OPEN | IN_ACCESS``): proof that an audit read nothing there. ``stat`` and
    ``realpath`` raise no such event; ``open``, ``scandir`` and ``read`` do."""

    def __init__(self, *roots: Path) -> None:
        import ctypes

        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self._paths: dict[int, Path] = {}
        for root in roots:
            for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
                watch = self._libc.inotify_add_watch(
                    self._fd, bytes(directory), _IN_OPEN | _IN_ACCESS
                )
                if watch < 0:
                    raise OSError(ctypes.get_errno(), f"inotify_add_watch {directory}")
                self._paths[watch] = directory

    def touched(self) -> list[Path]:
        """The paths opened or read since the watch began (a directory: listed)."""
        data = b""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._fd, 1 << 16):
                data += chunk
        found = []
        offset = 0
        while offset < len(data):
            watch, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size
            name = data[offset : offset + length].rstrip(b"\0")
            offset += length
            base = self._paths[watch]
            found.append(base / os.fsdecode(name) if name else base)
        return found

    def close(self) -> None:
        os.close(self._fd)
