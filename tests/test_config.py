"""Configuration: [tool.torch-abi-audit] in the nearest pyproject.toml (or --config), every
key, the command line's precedence, and the errors a typo in it gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.build import Fixtures
from helpers.cli_run import run
from helpers.wheel_builder import write_wheel

TAG = "cp311-cp311-manylinux_2_28_x86_64"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, built: Fixtures) -> Path:
    """A project directory holding a wheel with an unstable library and a stable plugin, and no
    torch requirement (torch-unpinned-unstable); the tests run two directories below it."""
    root = tmp_path / "project"
    deeper = root / "src" / "deeper"
    deeper.mkdir(parents=True)
    files = {
        "mixedpkg/libcore.so": built.unstable_lib.read_bytes(),
        "mixedpkg/libops.so": built.stable_plugin.read_bytes(),
    }
    write_wheel(root, "mixedpkg", "1.0", [TAG], files)
    monkeypatch.chdir(deeper)
    return root


def wheel(project: Path) -> str:
    [path] = project.glob("*.whl")
    return str(path)


def configure(project: Path, text: str, name: str = "pyproject.toml") -> Path:
    path = project / name
    path.write_text(text)
    return path


def test_nearest_pyproject_with_the_table(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    config = configure(project, '[tool.torch-abi-audit]\ncheck = ["torch"]\n')
    # A nearer pyproject.toml without the table does not stop the search.
    configure(project / "src", '[project]\nname = "inner"\n')
    code, _, err = run(capsys, wheel(project), "-v")
    assert code == 1
    assert err.splitlines()[0] == f"note: config: {config}"
    assert "  mixedpkg: [torch] torch-unstable (mixedpkg/libcore.so): uses" in err
    # Nothing configured: the audit alone, and -v says so.
    config.unlink()
    code, _, err = run(capsys, wheel(project), "-v")
    assert code == 0
    assert err.startswith(
        "note: config: none (no pyproject.toml with [tool.torch-abi-audit] above "
    )


def test_command_line_overrides_the_configuration(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    configure(
        project,
        '[tool.torch-abi-audit]\ncheck = "torch,metadata"\nignore = ["torch-unpinned-unstable"]\n',
    )
    code, _, err = run(capsys, wheel(project))
    assert code == 1 and "[torch] torch-unstable" in err and "torch-unpinned-unstable" not in err
    # --check on the command line replaces the configured policies...
    code, _, err = run(capsys, wheel(project), "--check", "abi3")
    assert code == 0, err
    # ...and --ignore the configured codes.
    code, _, err = run(capsys, wheel(project), "--check", "metadata", "--ignore", "torch-unstable")
    assert code == 1 and "[metadata] torch-unpinned-unstable" in err
    assert run(capsys, wheel(project), "--no-config")[0] == 0


def test_allow_entries_and_a_baseline_file_from_the_configuration(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    (project / "ci").mkdir()
    (project / "ci" / "abi.toml").write_text(
        '[[allow]]\nlibrary = "mixedpkg/libcore.so"\ncheck = "torch"\nreason = "porting"\n'
    )
    configure(
        project,
        "[tool.torch-abi-audit]\n"
        'check = ["torch", "metadata"]\n'
        'baseline = "ci/abi.toml"\n'  # relative to the pyproject.toml
        "[[tool.torch-abi-audit.allow]]\n"
        'package = "mixedpkg"\ncheck = "torch-unpinned-unstable"\nreason = "pin in 2.0"\n',
    )
    code, out, err = run(capsys, wheel(project))
    assert code == 0, err
    assert "(abi.toml, entry 1: porting)" in out
    assert "(pyproject.toml, entry 1: pin in 2.0)" in out
    # --baseline on the command line replaces the configured file; the inline entries stay.
    other = project / "other.toml"
    other.write_text('[[allow]]\nlibrary = "gone.so"\ncheck = "torch"\nreason = "old"\n')
    code, _, err = run(capsys, wheel(project), "--baseline", str(other))
    assert code == 1
    assert "[torch] torch-unstable" in err
    assert 'stale baseline entry other.toml, entry 1 (library "gone.so"' in err
    assert "torch-unpinned-unstable" not in err


def test_format_jobs_and_torch_version(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    configure(
        project,
        '[tool.torch-abi-audit]\nformat = "json"\njobs = 1\ntorch-version = "2.10"\n'
        'check = ["load"]\n',
    )
    code, out, _ = run(capsys, wheel(project))
    assert code == 1  # the stable plugin needs 2.11: it will not load on the configured 2.10
    document = json.loads(out)
    assert document["torch_reference"]["origin"] == "--torch-version"
    results = {(r["code"], r["library"]) for r in document["gates"]["results"]}
    assert ("needs-newer-torch", "mixedpkg/libops.so") in results
    # The command line's torch wins over the configured release.
    _, out, _ = run(capsys, wheel(project), "--torch-version", "2.13")
    assert json.loads(out)["torch_reference"]["label"] == "torch 2.13"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('chek = ["torch"]', "unknown key 'chek' (did you mean 'check'?)"),
        ("torch_version = '2.12'", "unknown key 'torch_version' (did you mean 'torch-version'?)"),
        ('check = ["torch", "abi4"]', "check: invalid choice: 'abi4'"),
        ('ignore = ["torch-unstabel"]', "(did you mean 'torch-unstable'?)"),
        ("ignore = 3", "ignore must be a string or an array of strings"),
        ("jobs = 0", "jobs must be a whole number of at least 1"),
        ("jobs = true", "jobs must be a whole number of at least 1"),
        ("torch-version = 2.10", 'torch-version must be a string (torch-version = "2.12")'),
        ('format = "xml"', "format must be one of table, json, markdown, github, sarif, not 'xml'"),
        ('baseline = ""', "baseline must be a path"),
        ('allow = [{library = "x.so", check = "torch"}]', "allow entry 1: reason is required"),
        ("check = [", "not valid TOML"),
    ],
)
def test_configuration_errors_name_the_key(
    capsys: pytest.CaptureFixture[str], project: Path, table: str, message: str
) -> None:
    config = configure(project, f"[tool.torch-abi-audit]\n{table}\n")
    code, out, err = run(capsys, wheel(project))
    assert code == 2
    assert str(config) in err and message in err, err
    assert out == "" and "Traceback" not in err


def test_explicit_configuration_files(
    capsys: pytest.CaptureFixture[str], project: Path, tmp_path: Path
) -> None:
    standalone = configure(tmp_path, 'check = "torch"\n', "abi-audit.toml")
    code, _, err = run(capsys, wheel(project), "--config", str(standalone), "-v")
    assert code == 1 and err.startswith(f"note: config: {standalone}")
    bare = configure(tmp_path, '[project]\nname = "x"\n')
    code, _, err = run(capsys, wheel(project), "--config", str(bare))
    assert code == 2 and "no [tool.torch-abi-audit] table" in err
    code, _, err = run(capsys, wheel(project), "--config", str(tmp_path / "missing.toml"))
    assert code == 2 and "no such configuration file" in err
    code, _, err = run(capsys, wheel(project), "--config", str(standalone), "--no-config")
    assert code == 2 and "exclude each other" in err
    # --no-config ignores the pyproject.toml in the way.
    configure(project, '[tool.torch-abi-audit]\ncheck = ["torch"]\n')
    assert run(capsys, wheel(project), "--no-config")[0] == 0
