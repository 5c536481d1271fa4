"""Where a rendered report goes: standard output, or a file written atomically.

A file given with ``-o`` is written to a temporary file in the same directory, flushed to disk
and renamed over the destination (``os.replace`` is atomic on POSIX and Windows), so a reader —
a CI step uploading ``report.sarif`` — sees the old file or the complete new one, never a half
written one, and an interrupted run leaves no partial report behind.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


class OutputError(OSError):
    """The report could not be written where ``-o`` said (the message names the file)."""


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename.

    The file gets the permissions a newly created file gets (``0o666`` less the umask), not
    the temporary file's private ones. Raises :class:`OutputError` when the directory does not
    exist or cannot be written; nothing is left behind then.
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
        Path(temporary).chmod(0o666 & ~_umask())
        Path(temporary).replace(path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_report(text: str, destination: Path | None) -> None:
    """Print the report on standard output, or write it to ``destination`` (``-`` is standard
    output too). Text always ends with exactly one newline."""
    text = text if text.endswith("\n") else text + "\n"
    if destination is None or str(destination) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_atomically(destination, text)
