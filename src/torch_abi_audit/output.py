"""Where a rendered report goes: standard output, or a file written atomically.

A file given with ``-o`` is written to a temporary file in the same directory, flushed to disk
and renamed over the destination (``os.replace`` is atomic on POSIX and Windows), so a reader —
a CI step uploading ``report.sarif`` — sees the old file or the complete new one, never a half
written one, and an interrupted run leaves no partial report behind.

Only a regular file is replaced that way. A destination that exists and is something else —
``/dev/null``, ``/dev/stdout``, a FIFO, the ``/dev/fd/N`` of a shell's process substitution — is
written to directly, as the shell's ``>`` would: renaming a file over it would replace the
device or pipe with a regular file (``-o /dev/null`` run as root used to replace the system's
``/dev/null``). A symbolic link stays a link: the file it points to is replaced.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path


class OutputError(OSError):
    """The report could not be written where ``-o`` said (the message names the file)."""


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_atomically(path: Path, text: str, mode: int | None = None) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename.

    The file gets the permissions ``mode``, by default those a newly created file gets
    (``0o666`` less the umask), not the temporary file's private ones. Raises
    :class:`OutputError` when the directory does not exist or cannot be written; nothing is
    left behind then.
    """
    import tempfile  # ~6 ms of imports: only with -o

    directory = path.parent
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        Path(temporary).chmod(0o666 & ~_umask() if mode is None else mode)
        Path(temporary).replace(path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_report(text: str, destination: Path | None) -> None:
    """Print the report on standard output, or write it to ``destination`` (``-`` is standard
    output too). Text always ends with exactly one newline."""
    text = text if text.endswith("\n") else text + "\n"
    if destination is None or str(destination) == "-":
        if sys.stdout is None:  # the process started with its standard output closed (>&-)
            raise OutputError("cannot write the report: standard output is closed")
        try:
            try:
                sys.stdout.write(text)
            except UnicodeEncodeError:
                # The stream's encoding (PYTHONIOENCODING=ascii, a legacy locale) cannot spell a
                # name in the report (the whole text is encoded before any of it is written):
                # it goes out in UTF-8, as -o writes it, rather than not at all.
                buffer = getattr(sys.stdout, "buffer", None)
                if buffer is None:
                    raise OutputError(
                        f"cannot write the report: standard output's encoding "
                        f"({sys.stdout.encoding}) cannot represent it"
                    ) from None
                sys.stdout.flush()
                buffer.write(text.encode("utf-8", "backslashreplace"))
            sys.stdout.flush()
        except BrokenPipeError:
            raise  # the reader went away (| head): the caller ends quietly
        except OSError as exc:  # a full disk (> /dev/full), an I/O error
            raise OutputError(f"cannot write the report: {exc.strerror or exc}") from exc
    else:
        write_file(destination, text)


def write_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` for ``-o``: a regular file (existing or new) atomically, keeping
    an existing file's permissions, through a symbolic link to the file it names; anything
    else that exists (a device, a FIFO, a pipe) directly. Raises :class:`OutputError`."""
    try:
        info: os.stat_result | None = path.stat()
    except FileNotFoundError:
        info = None  # a new file (or a link to one not made yet)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise OutputError(f"cannot write {path}: it is a directory")
    if info is not None and not stat.S_ISREG(info.st_mode):
        try:
            with path.open("w", encoding="utf-8", newline="") as stream:
                stream.write(text)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
        return
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    write_atomically(target, text, stat.S_IMODE(info.st_mode) if info is not None else None)
