"""Progress of long steps (reading hundreds of libraries, fetching wheels), for a terminal.

The audit reports what it is doing through the small :class:`Progress` interface; the engine
and the downloader call it, and know nothing of terminals. :data:`NO_PROGRESS` ignores
everything (the library default). :class:`TerminalProgress` draws one line on a terminal's
standard error, and only once a step has taken longer than a second: quick runs print nothing,
and the line is erased before the report is written. Everything runs on the calling thread
(waiting loops call :meth:`Progress.tick`), so the worker pool never forks a process that has
a drawing thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TextIO


class Progress(Protocol):
    """Receives progress events. Implementations must be cheap: they are called per library."""

    def start(self, what: str, total: int | None = None) -> None:
        """A step begins: ``what`` it does, and how many items it has, if known."""

    def advance(self, count: int = 1) -> None:
        """``count`` more items of the current step are done."""

    def tick(self) -> None:
        """Nothing finished, but time passed (called while waiting): redraw if due."""

    def finish(self) -> None:
        """Every step is over: erase whatever was drawn."""


class _NoProgress:
    def start(self, what: str, total: int | None = None) -> None:
        pass

    def advance(self, count: int = 1) -> None:
        pass

    def tick(self) -> None:
        pass

    def finish(self) -> None:
        pass


#: Progress that shows nothing.
NO_PROGRESS: Progress = _NoProgress()

#: A step must run this long before anything is drawn (seconds).
DELAY = 1.0
#: Redraw at most this often (seconds).
_INTERVAL = 0.1
# Carriage return, the text, then "erase to the end of the line" (ECMA-48 EL, CSI K).
_ERASE = "\x1b[K"


class TerminalProgress:
    """One self-overwriting line on ``stream`` (a terminal), drawn after :data:`DELAY`.

    ``clock`` is injectable for tests.
    """

    def __init__(
        self, stream: TextIO, *, delay: float = DELAY, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._stream = stream
        self._delay = delay
        self._clock = clock
        self._began = clock()
        self._drawn_at: float | None = None
        self._what = ""
        self._total: int | None = None
        self._done = 0

    def start(self, what: str, total: int | None = None) -> None:
        """Begin a step (the delay counts from the first step, so a run of several short steps
        that add up to more than a second still shows)."""
        self._what, self._total, self._done = what, total, 0
        self.tick()

    def advance(self, count: int = 1) -> None:
        """Count finished items and redraw if due."""
        self._done += count
        self.tick()

    def tick(self) -> None:
        """Redraw if the delay has passed and the last drawing is old enough."""
        now = self._clock()
        if now - self._began < self._delay:
            return
        if self._drawn_at is not None and now - self._drawn_at < _INTERVAL:
            return
        self._drawn_at = now
        count = f" {self._done}/{self._total}" if self._total else ""
        line = f"torch-abi-audit: {self._what}{count} ({now - self._began:.0f} s)"
        self._stream.write(f"\r{line}{_ERASE}")
        self._stream.flush()

    def finish(self) -> None:
        """Erase the line, if one was drawn."""
        if self._drawn_at is not None:
            self._stream.write(f"\r{_ERASE}")
            self._stream.flush()
            self._drawn_at = None
