"""What the audit command says on standard error, beside the report: notes, errors, the gate
summary, and progress. The report itself goes to standard output or ``-o FILE``.

``--quiet`` keeps only what explains a non-zero exit status (errors and failed gates).
Progress is drawn only on a terminal, only for formats people read (not JSON or SARIF), and
never with ``--quiet``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TextIO

from torch_abi_audit.checks import CheckPolicy, failure_lines
from torch_abi_audit.progress import NO_PROGRESS, Progress, TerminalProgress
from torch_abi_audit.renderers.escape import terminal_lines
from torch_abi_audit.report import AuditResult

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_ERROR = 2


def exit_code(result: AuditResult) -> int:
    """2 when something could not be audited (or, under ``--check``, a requested target gave
    nothing to judge), else 1 when a gate failed (a violation, a stale or expired baseline
    entry), else 0."""
    if result.has_error or result.nothing_audited:
        return EXIT_ERROR
    return EXIT_CHECK_FAILED if result.gates_failed else EXIT_OK


def writes_to_terminal(stream: TextIO | None) -> bool:
    """True when ``stream`` (standard output, say) is a terminal: ``False`` for a file, a pipe,
    or a stream that is closed or missing (a process started with ``>&-`` has none)."""
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def is_terminal(stream: TextIO) -> bool:
    """True when ``stream`` is an interactive terminal that can redraw a line."""
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


class Console:
    """Standard error of one run.

    ``progress`` draws only when ``stream`` is a terminal, ``quiet`` is off and the output
    format allows it (``show_progress``).
    """

    def __init__(
        self, stream: TextIO | None = None, *, quiet: bool = False, show_progress: bool = True
    ) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.progress: Progress = (
            TerminalProgress(self.stream)
            if show_progress and not quiet and is_terminal(self.stream)
            else NO_PROGRESS
        )

    def _say(self, *lines: str) -> None:
        """Print ``lines`` (escaped for the terminal: names in them come from the audited
        input), after erasing any progress line."""
        self.progress.finish()
        print(terminal_lines(list(lines)), file=self.stream)

    def note(self, text: str) -> None:
        """Something worth knowing that is not a problem (not with ``--quiet``)."""
        if not self.quiet:
            self._say(f"note: {text}")

    def warning(self, text: str) -> None:
        """Something that may make the report mean less than it seems (not with ``--quiet``)."""
        if not self.quiet:
            self._say(f"warning: {text}")

    def error(self, text: str) -> None:
        """An operational problem (always shown)."""
        self._say(f"error: {text}")

    def outcome(self, result: AuditResult, policies: Sequence[CheckPolicy]) -> None:
        """Targets not available or not audited, targets that gave nothing to judge, and the
        gates that failed (each violation with its gate, stale and expired baseline entries)."""
        if result.environment is None:
            for report in result.packages:
                if report.unavailable:
                    self.note(f"{report.name}: {report.unavailable}")
            for report in result.packages:
                if report.error:
                    self.error(f"{report.name}: {report.error}")
        if result.has_error:
            failed = [p.name for p in result.packages if p.has_error]
            subject = ", ".join(failed) if failed else "the environment"
            self.error(f"inspection failed for {subject}")
        for item in result.nothing_audited:
            self.error(f"{item.target}: nothing audited under --check: {item.reason}")
        failures = failure_lines(result, policies)
        if failures:
            self._say(*failures)
