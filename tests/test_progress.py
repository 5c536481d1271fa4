"""Progress on a terminal's stderr after a second, never when piped, never for JSON or SARIF,
never with --quiet; and what --quiet keeps."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from helpers.build import Fixtures
from helpers.site import FakeSite
from torch_abi_audit.cli import main
from torch_abi_audit.console import Console
from torch_abi_audit.engine import analyse_libraries
from torch_abi_audit.progress import NO_PROGRESS, TerminalProgress
from torch_abi_audit.sources.index import run_pip


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_nothing_is_drawn_in_the_first_second_then_one_line_then_it_is_erased() -> None:
    clock, stream = Clock(), io.StringIO()
    progress = TerminalProgress(stream, clock=clock)
    progress.start("reading libraries", 10)
    progress.advance(3)
    clock.now += 0.9
    progress.tick()
    assert stream.getvalue() == ""  # a quick run prints nothing at all
    clock.now += 0.2
    progress.advance(2)
    assert stream.getvalue() == "\rtorch-abi-audit: reading libraries 5/10 (1 s)\x1b[K"
    clock.now += 0.05
    progress.advance()  # redrawn at most ten times a second
    assert stream.getvalue().count("\r") == 1
    progress.finish()
    assert stream.getvalue().endswith("\r\x1b[K")


def test_progress_only_on_a_terminal_for_formats_people_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TERM", raising=False)
    assert isinstance(Console(Terminal()).progress, TerminalProgress)
    assert Console(io.StringIO()).progress is NO_PROGRESS  # piped
    assert Console(Terminal(), quiet=True).progress is NO_PROGRESS
    assert Console(Terminal(), show_progress=False).progress is NO_PROGRESS  # JSON, SARIF
    monkeypatch.setenv("TERM", "dumb")
    assert Console(Terminal()).progress is NO_PROGRESS


class Spy:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def start(self, what: str, total: int | None = None) -> None:
        self.events.append(("start", (what, total)))

    def advance(self, count: int = 1) -> None:
        self.events.append(("advance", count))

    def tick(self) -> None:
        self.events.append(("tick", None))

    def finish(self) -> None:
        self.events.append(("finish", None))


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_engine_reports_every_library(fake_site: FakeSite, jobs: int) -> None:
    libraries = sorted(fake_site.site.rglob("*.so"))
    spy = Spy()
    analyse_libraries(libraries, jobs=jobs, progress=spy)
    assert spy.events[0] == ("start", ("reading libraries", len(libraries)))
    advanced = sum(count for kind, count in spy.events if isinstance(count, int))
    assert advanced == len(libraries)


def test_pip_ticks_while_it_runs() -> None:
    spy = Spy()
    completed = run_pip(
        [sys.executable, "-c", "import time; time.sleep(0.5); print('done')"], progress=spy
    )
    assert completed.returncode == 0 and completed.stdout == "done\n"
    assert ("tick", None) in spy.events


def test_quiet_keeps_errors_and_failures_only(
    capsys: pytest.CaptureFixture[str], built: Fixtures, tmp_path: Path
) -> None:
    bad = tmp_path / "libbad.so"
    bad.write_text("not a library")
    code = main([str(built.unstable_lib), str(bad), "--check", "torch", "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert "error: inspection failed for libbad.so" in err
    assert "FAIL: --check torch" in err
    # Notes (here: the environment --python found) are not errors: --quiet drops them.
    venv = tmp_path / "venv"
    (venv / "lib" / "python3.12" / "site-packages").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("version = 3.12.1\n")
    assert main(["--python", str(venv), "-q"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["--python", str(venv)]) == 0
    assert "note: auditing the virtual environment" in capsys.readouterr().err
