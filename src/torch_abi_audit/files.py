"""Opening files of an audited tree: regular files only, without blocking, within a budget.

An audited tree is input like any other: a ``RECORD``, a ``METADATA``, a library, a wheel may be
a FIFO (``open`` for reading blocks until a writer comes, forever), a character device
(``/dev/zero`` never ends; opening a terminal could make it this process's controlling
terminal), a socket, a directory. Every file the auditor reads is opened here:

1. ``stat`` first: nothing that is not a regular file is opened at all;
2. then ``open`` with ``O_NONBLOCK`` (a FIFO swapped in after the ``stat`` cannot block the
   ``open``) and ``O_NOCTTY``;
3. then ``fstat`` of what was opened: it must still be a regular file, the same one.

:func:`read_regular` adds a size budget for the small files read whole (metadata,
configuration): a file larger than it is refused, not read into memory.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)  # Windows
)
#: The largest configuration file read (``pyvenv.cfg``: a few lines).
MAX_CONFIG_SIZE = 64 << 10
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class _Refusal(OSError):
    """An :class:`OSError` of this module's own: no ``errno``, its message is its text."""

    def __str__(self) -> str:
        return str(self.strerror)


class NotRegularFileError(_Refusal):
    """The path names something other than a regular file (a FIFO, a device, a socket, a
    directory); its ``strerror`` says which. It was not opened, or was closed unread."""


class FileTooLargeError(_Refusal):
    """A file is larger than the budget it is read with; nothing of it was kept."""


class OutsideError(_Refusal):
    """The path leads, through a symbolic link, out of the directory it may be read in; it
    was not opened."""


def outside_reason(target: str | Path) -> str:
    """What a scan says of a symbolic link that leads to ``target``, out of what it scans."""
    return f"symbolic link to {target}, outside the scanned directory: not followed"


class RealPaths:
    """``os.path.realpath`` with a memory, for the paths of one scan (make one per scan: a
    tree that changes while it is scanned defeats a check made before a read anyway, but an
    answer must not outlive the scan).

    ``os.path.realpath`` of ``/a/b/c/lib.so`` takes an ``lstat`` per component. Here, a path
    whose ``lstat`` succeeds and shows no symbolic link is its directory's real path
    (remembered) plus its name: one ``lstat`` per new path. That is ``realpath``'s answer: the
    ``lstat`` succeeding means the system resolved every component before the name without a
    loop or an error; ``realpath`` resolves them the same way (it applies ``..`` to a real path,
    where it means the parent the system takes) to the directory's real path, then appends the
    name, which is no link. Anything else (a link, an ``lstat`` that fails, a last component
    that is empty, ``.`` or ``..``, a relative path, a platform whose separator is not ``/``)
    gets ``os.path.realpath``'s own answer.
    """

    def __init__(self) -> None:
        self._known: dict[str, str] = {}

    def __call__(self, path: str | os.PathLike[str]) -> str:
        """The real path of ``path`` (as ``os.path.realpath`` gives it)."""
        path = os.fspath(path)
        real = self._known.get(path)
        if real is None:
            real = self._known[path] = self._resolve(path)
        return real

    def _resolve(self, path: str) -> str:
        directory, _, name = path.rpartition("/")
        if os.sep != "/" or not directory.startswith("/") or name in ("", ".", ".."):
            return os.path.realpath(path)
        try:
            link = stat.S_ISLNK(os.lstat(path).st_mode)
        except OSError:
            link = True  # a loop, a missing directory...: realpath knows what to say
        if link:
            return os.path.realpath(path)
        base = self(directory)
        return base + name if base == "/" else base + "/" + name


def is_inside(
    path: str | Path, directory: str | Path, *, real_path: RealPaths | None = None
) -> bool:
    """True when the real path of ``path`` lies inside the real path of ``directory``
    (resolved by ``real_path`` when given, else afresh)."""
    resolve = real_path or os.path.realpath
    real, base = resolve(path), resolve(directory)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def _kind(mode: int) -> str:
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def not_regular_reason(mode: int) -> str:
    """``not a regular file (a FIFO)`` and the like, for the ``st_mode`` of a non-regular file."""
    return f"not a regular file ({_kind(mode)})"


def _refuse(path: Path | str, mode: int) -> NotRegularFileError:
    return NotRegularFileError(0, not_regular_reason(mode), str(path))


def open_regular(
    path: Path | str, *, within: Path | None = None, real_path: RealPaths | None = None
) -> io.FileIO:
    """Open the regular file ``path`` for reading (unbuffered, binary).

    Raises :class:`NotRegularFileError` when ``path`` is anything else, before opening it or
    (if it was swapped between the check and the ``open``) right after, and :class:`OSError`
    when it cannot be opened at all. Symbolic links are followed, as ``open`` does, but with
    ``within`` only as far as that directory: :class:`OutsideError` if they lead out of it
    (real paths resolved by ``real_path`` when given).
    """
    if within is not None and not is_inside(path, within, real_path=real_path):
        raise OutsideError(0, outside_reason(os.path.realpath(path)), str(path))
    info = os.stat(path)  # noqa: PTH116 - a str or a Path
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(path, info.st_mode)
    descriptor = os.open(path, _FLAGS)
    try:
        opened = os.fstat(descriptor)
        if not stat.S_ISREG(opened.st_mode):
            raise _refuse(path, opened.st_mode)
        return os.fdopen(descriptor, "rb", buffering=0)
    except BaseException:
        os.close(descriptor)
        raise


def read_regular(
    path: Path | str,
    limit: int,
    *,
    within: Path | None = None,
    real_path: RealPaths | None = None,
) -> bytes:
    """The whole content of the regular file ``path``, at most ``limit`` bytes.

    Raises :class:`FileTooLargeError` when it holds more, :class:`NotRegularFileError` when it
    is not a regular file, :class:`OutsideError` when it lies out of ``within`` (if given; real
    paths resolved by ``real_path`` when given), :class:`OSError` when it cannot be read.
    """
    with open_regular(path, within=within, real_path=real_path) as handle:
        data = read_at_most(handle, limit + 1)
    if len(data) > limit:
        raise FileTooLargeError(0, f"larger than {_size(limit)}: not read", str(path))
    return data


def read_at_most(handle: io.FileIO, limit: int) -> bytes:
    """Up to ``limit`` bytes from ``handle``, from where it stands (fewer only at its end),
    read a MiB at a time (no buffer of ``limit`` bytes for a small file)."""
    chunks: list[bytes] = []
    total = 0
    while total < limit:
        chunk = handle.read(min(1 << 20, limit - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _size(limit: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if limit >= 1 << shift and limit % (1 << shift) == 0:
            return f"{limit >> shift} {unit}"
    return f"{limit} bytes"
