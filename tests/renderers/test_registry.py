"""The renderer registry and the output plumbing: --format, --json, -o."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from helpers.build import Fixtures
from torch_abi_audit.cli import main
from torch_abi_audit.output import OutputError, write_atomically
from torch_abi_audit.renderers.base import RenderOptions
from torch_abi_audit.renderers.registry import DEFAULT_FORMAT, RENDERERS, get_renderer
from torch_abi_audit.report import AuditResult, PackageReport


def test_every_format_is_registered_once_under_its_name() -> None:
    assert DEFAULT_FORMAT == "table"
    assert next(iter(RENDERERS)) == DEFAULT_FORMAT
    for name, renderer in RENDERERS.items():
        assert renderer.name == name and renderer.description
    with pytest.raises(KeyError, match="unknown format 'yaml'"):
        get_renderer("yaml")


@pytest.mark.parametrize("name", list(RENDERERS))
def test_every_format_renders_an_empty_result(name: str) -> None:
    # Nothing audited is still a document in every format (never an exception).
    text = get_renderer(name).render(AuditResult(), RenderOptions())
    assert isinstance(text, str)


@pytest.mark.parametrize("name", list(RENDERERS))
def test_renderers_are_pure(name: str, tmp_path: Path) -> None:
    # Same result, same options: same text (renderers read no clock, file or terminal).
    report = PackageReport(name="pkg", root=tmp_path, error="no module or package named 'pkg'")
    result = AuditResult((report,))
    options = RenderOptions(working_directory=tmp_path)
    renderer = get_renderer(name)
    assert renderer.render(result, options) == renderer.render(result, options)


def test_json_flag_is_format_json(capsys: pytest.CaptureFixture[str], built: Fixtures) -> None:
    assert main([str(built.stable_plugin), "--json"]) == 0
    alias = capsys.readouterr().out
    assert main([str(built.stable_plugin), "--format", "json"]) == 0
    assert capsys.readouterr().out == alias
    assert json.loads(alias)["name"] == "libstable_plugin.so"
    with pytest.raises(SystemExit) as exc:
        main([str(built.stable_plugin), "--json", "--format", "json"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main([str(built.stable_plugin), "--format", "yaml"])


def test_output_file_gets_the_report_and_stdout_nothing(
    capsys: pytest.CaptureFixture[str], built: Fixtures, tmp_path: Path
) -> None:
    assert main([str(built.stable_plugin)]) == 0
    printed = capsys.readouterr().out
    target = tmp_path / "report.txt"
    target.write_text("an older report\n")
    assert main([str(built.stable_plugin), "-o", str(target)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert target.read_text() == printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.txt"]  # no temporary left
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    # "-" is standard output.
    assert main([str(built.stable_plugin), "-o", "-"]) == 0
    assert capsys.readouterr().out == printed


def test_output_into_a_fifo_a_link_or_a_directory(
    capsys: pytest.CaptureFixture[str], built: Fixtures, tmp_path: Path
) -> None:
    """Only a regular file is replaced by a rename: a FIFO (what a shell's process substitution
    gives, and like /dev/null not a file to replace) is written through and stays a FIFO; a
    link stays a link to the file it names, which keeps its permissions; a directory is exit 2.
    """
    audited = str(built.stable_plugin)
    assert main([audited]) == 0
    printed = capsys.readouterr().out
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    assert main([audited, "-o", str(fifo)]) == 0
    reader.join(timeout=60)
    assert received == [printed]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    real = tmp_path / "reports" / "report.txt"
    real.parent.mkdir()
    real.write_text("an older report\n")
    real.chmod(0o640)
    link = tmp_path / "latest.txt"
    link.symlink_to(real)
    assert main([audited, "-o", str(link)]) == 0
    assert link.is_symlink() and link.readlink() == real
    assert real.read_text() == printed
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert sorted(p.name for p in real.parent.iterdir()) == ["report.txt"]
    capsys.readouterr()
    assert main([audited, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "it is a directory" in err and "Traceback" not in err


def test_output_file_that_cannot_be_written_is_exit_2(
    capsys: pytest.CaptureFixture[str], built: Fixtures, tmp_path: Path
) -> None:
    code = main([str(built.stable_plugin), "-o", str(tmp_path / "missing" / "report.json")])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert "error: cannot write" in captured.err and "Traceback" not in captured.err


def test_atomic_write_leaves_the_old_file_when_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "report.sarif"
    target.write_text("old")

    def broken_replace(self: Path, destination: Path) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "replace", broken_replace)
    with pytest.raises(OutputError, match="No space left on device"):
        write_atomically(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.sarif"]
