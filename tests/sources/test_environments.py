"""--python and --site-packages ROOT: environments found from their files, never run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from helpers.build import Fixtures
from torch_abi_audit.cli import main
from torch_abi_audit.sources.environments import (
    ISOLATED,
    EnvironmentNotFound,
    find_environment,
    site_packages_directories,
    tool_environment,
)
from torch_abi_audit.sources.imports import ImportNameError, resolve_import_name


def make_venv(root: Path, version: str = "3.12", *, free_threaded: bool = False) -> Path:
    """A virtual environment's layout (PEP 405), with an interpreter that must never run."""
    lib = root / "lib" / f"python{version}{'t' if free_threaded else ''}" / "site-packages"
    lib.mkdir(parents=True)
    (root / "bin").mkdir()
    trap = root / "bin" / f"python{version}"
    marker = root / "ran"
    trap.write_text(f"#!/bin/sh\ntouch {marker}\n")
    trap.chmod(0o755)
    (root / "bin" / "python").symlink_to(trap.name)
    (root / "pyvenv.cfg").write_text(
        f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {version}.1\n"
    )
    return lib


def install(site: Path, built: Fixtures, package: str = "ops") -> Path:
    """A distribution ``package`` 1.0 with one unstable library, as an installer leaves it."""
    (site / package).mkdir()
    library = site / package / "libops.so"
    shutil.copyfile(built.unstable_lib, library)
    (site / package / "__init__.py").write_text("raise SystemExit('imported!')\n")
    dist = site / f"{package}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n")
    (dist / "RECORD").write_text(f"{package}/libops.so,,\n{package}/__init__.py,,\n")
    return library


def test_an_interpreter_or_a_root_names_the_environment(tmp_path: Path) -> None:
    site = make_venv(tmp_path / ".venv")
    for given in (tmp_path / ".venv", tmp_path / ".venv" / "bin" / "python"):
        found = find_environment(given)
        assert found.site_packages == (site,)
        assert found.prefix == tmp_path / ".venv" and found.kind == "virtual environment"
    assert not (tmp_path / ".venv" / "ran").exists()  # the interpreter never ran
    # A prefix holding several Pythons needs the interpreter's name to choose.
    other = tmp_path / ".venv" / "lib" / "python3.13" / "site-packages"
    other.mkdir(parents=True)
    (tmp_path / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    with pytest.raises(EnvironmentNotFound, match=r"several Pythons \(3\.12, 3\.13\)"):
        find_environment(tmp_path / ".venv")
    assert find_environment(tmp_path / ".venv" / "bin" / "python3.12").site_packages == (site,)


def test_layouts_of_other_installations(tmp_path: Path) -> None:
    windows = tmp_path / "win" / "Lib" / "site-packages"
    windows.mkdir(parents=True)
    (tmp_path / "win" / "Scripts").mkdir()
    (tmp_path / "win" / "Scripts" / "python.exe").write_bytes(b"MZ")
    (tmp_path / "win" / "pyvenv.cfg").write_text("home = C:\\Python312\nversion = 3.12.4\n")
    assert find_environment(tmp_path / "win" / "Scripts" / "python.exe").site_packages == (windows,)
    debian = tmp_path / "usr" / "lib" / "python3" / "dist-packages"
    debian.mkdir(parents=True)
    local = tmp_path / "usr" / "local" / "lib" / "python3.11" / "dist-packages"
    local.mkdir(parents=True)
    found = find_environment(tmp_path / "usr")
    assert set(found.site_packages) == {debian, local} and found.kind == "installation"
    with pytest.raises(EnvironmentNotFound, match="no site-packages found"):
        find_environment(tmp_path)
    with pytest.raises(EnvironmentNotFound, match="does not exist"):
        find_environment(tmp_path / "nothing" / "python")


def test_system_site_packages_come_along_when_the_venv_says_so(tmp_path: Path) -> None:
    base_site = tmp_path / "base" / "lib" / "python3.12" / "site-packages"
    base_site.mkdir(parents=True)
    (tmp_path / "base" / "bin").mkdir()
    site = make_venv(tmp_path / "v")
    (tmp_path / "v" / "pyvenv.cfg").write_text(
        f"home = {tmp_path / 'base' / 'bin'}\ninclude-system-site-packages = true\n"
        "version = 3.12.1\n"
    )
    assert find_environment(tmp_path / "v").site_packages == (site, base_site)


def test_site_packages_accepts_an_environment_root(tmp_path: Path) -> None:
    site = make_venv(tmp_path / "env")
    assert site_packages_directories([tmp_path / "env"]) == [site]
    assert site_packages_directories([site]) == [site]
    missing = tmp_path / "missing"
    assert site_packages_directories([missing]) == [missing]  # reported later as a problem


def test_python_audits_that_environment_and_resolves_names_there(
    capsys: pytest.CaptureFixture[str], built: Fixtures, tmp_path: Path
) -> None:
    site = make_venv(tmp_path / ".venv")
    install(site, built)
    python = tmp_path / ".venv" / "bin" / "python"
    assert main(["--python", str(python)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == f"Site-packages: {site}"
    assert "  ops  " in captured.out and "UNSTABLE" in captured.out
    assert f"note: auditing the virtual environment {tmp_path / '.venv'} ({site})" in captured.err
    # An import name with the environment: found there (never imported: __init__ would exit).
    assert main(["--python", str(python), "ops", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"name":"ops"' in out and str(site / "ops" / "libops.so") in out
    assert main(["--site-packages", str(tmp_path / ".venv"), "ops"]) == 0
    assert "Package: ops" in capsys.readouterr().out
    # Not installed there.
    assert main(["--site-packages", str(site), "opz"]) == 2
    assert "did you mean ops?" in capsys.readouterr().err
    assert not (tmp_path / ".venv" / "ran").exists()
    assert main(["--python", str(tmp_path / "nowhere")]) == 2
    assert "error: " in capsys.readouterr().err


def test_mistyped_names_get_suggestions_not_roots(
    capsys: pytest.CaptureFixture[str], built: Fixtures, tmp_path: Path
) -> None:
    install(tmp_path, built, "torchaudio")
    with pytest.raises(ImportNameError, match=r"did you mean torchaudio\?$"):
        resolve_import_name("torchaudioo", [str(tmp_path)])
    with pytest.raises(ImportNameError, match=r"did you mean packaging\.version"):
        resolve_import_name("packaging.versio")
    with pytest.raises(ImportNameError) as nothing:
        resolve_import_name("qqqqqqqqqq", [str(tmp_path)])
    assert "did you mean" not in str(nothing.value)
    assert main(["--site-packages", str(tmp_path), "torchaudioo"]) == 2
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "Package: torchaudioo",
        "  Error: no module or package named 'torchaudioo' is installed; did you mean torchaudio?",
    ]


def test_the_tools_own_environment_is_recognised(tmp_path: Path) -> None:
    site = make_venv(tmp_path / "tool")
    dist = site / "torch_abi_audit-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: torch-abi-audit\nVersion: 1.0\n"
        "Requires-Dist: packaging>=24\nRequires-Dist: pytest; extra == 'test'\n"
    )
    dep = site / "packaging-24.0.dist-info"
    dep.mkdir()
    (dep / "METADATA").write_text("Metadata-Version: 2.1\nName: packaging\nVersion: 24.0\n")
    prefix = tmp_path / "tool"
    assert tool_environment(prefix, [site]) == "an isolated environment"
    (prefix / "CACHEDIR.TAG").write_text("Signature: 8a477f597d28d172789f06886806bc55")
    assert tool_environment(prefix, [site]) == "uvx"
    (prefix / "uv-receipt.toml").write_text("[tool]\n")
    assert tool_environment(prefix, [site]) == "uv tool"
    # A project's environment that merely has the tool installed is not the tool's own.
    (prefix / "CACHEDIR.TAG").unlink()
    (prefix / "uv-receipt.toml").unlink()
    other = site / "numpy-2.0.dist-info"
    other.mkdir()
    (other / "METADATA").write_text("Metadata-Version: 2.1\nName: numpy\nVersion: 2.0\n")
    assert tool_environment(prefix, [site]) is None


@pytest.mark.network
def test_uvx_download_and_env(tmp_path: Path, built: Fixtures) -> None:
    """The issue's scenario, for real: ``uvx torch-abi-audit --download ...`` fetches and audits
    (the tool's environment carries pip), and ``uvx torch-abi-audit --env`` says it is auditing
    the tool's own environment."""
    uvx = shutil.which("uvx", path=str(Path(sys.executable).parent)) or shutil.which("uvx")
    if uvx is None:
        pytest.skip("uv is not installed")
    project = Path(__file__).resolve().parents[2]
    links = tmp_path / "links"
    links.mkdir()
    from helpers.demo_wheels import build_demo

    build_demo(links, built)
    env = {
        **os.environ,
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(links),
        "PIP_CONFIG_FILE": os.devnull,
    }
    env.pop("VIRTUAL_ENV", None)
    command = [uvx, "--from", str(project), "torch-abi-audit"]
    download = [
        *command,
        "--download",
        "stablepkg==2.0",
        "--platform",
        "manylinux_2_28_x86_64",
        "--python-version",
        "3.11",
        "--cache-dir",
        str(tmp_path / "wheels"),
    ]
    result = subprocess.run(download, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert "Package: stablepkg" in result.stdout and "pip is not installed" not in result.stderr
    result = subprocess.run(
        [*command, "--env"], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "which is its own (uvx), not your project's: pass --python PATH" in result.stderr


def test_a_real_venv_is_found(tmp_path: Path) -> None:
    """A virtual environment made by the venv module, as users make them."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(tmp_path / "real")
    found = find_environment(tmp_path / "real" / "bin" / "python")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert found.site_packages == (tmp_path / "real" / "lib" / version / "site-packages",)


@pytest.mark.parametrize(
    "case",
    [
        # The newcomer's path: a venv holding only this tool, activated, audited with --env.
        (ISOLATED, "prefix", False, False),
        (ISOLATED, None, True, False),
        (ISOLATED, "elsewhere", True, True),
        # A uvx / pipx environment is the tool's own even when it is the active one.
        ("uvx", "prefix", True, False),
        ("uvx", "elsewhere", True, True),
    ],
)
def test_env_warns_only_about_an_environment_the_user_did_not_choose(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    case: tuple[str, str | None, bool, bool],
) -> None:
    """(what made the environment, VIRTUAL_ENV, warned, the hint names the active one)"""
    from torch_abi_audit import audit, cli

    tool, active, warned, hint = case

    monkeypatch.setattr(cli, "tool_environment", lambda prefix, sites: tool)
    # An empty site-packages keeps the scan itself trivial.
    monkeypatch.setattr(cli, "default_site_packages", lambda: [tmp_path])
    monkeypatch.setattr(audit, "default_site_packages", lambda: [tmp_path])
    if active is None:
        monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    else:
        path = sys.prefix if active == "prefix" else str(tmp_path / "project-venv")
        monkeypatch.setenv("VIRTUAL_ENV", path)
    cli.main(["--env", "--no-load-prediction", "--no-config"])
    err = capsys.readouterr().err
    assert ("audits the environment torch-abi-audit runs in" in err) is warned
    assert ("your active one" in err) is hint
