"""No silent pass: a typo in a requirement or a platform, or a target with nothing to judge,
never lets a gate pass (exit 2, with the reason), while a release that merely has no wheel for
one platform stays "not available".

A find-links directory stands in for the index in most tests (no network); the ``network``
tests ask the real index the same questions.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers.build import Fixtures
from helpers.cli_run import run
from helpers.wheel_builder import write_wheel

LINUX = "manylinux_2_28_x86_64"


@pytest.fixture
def local_index(built: Fixtures, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """pip sees only a find-links directory with linuxonly 2.0 (a Linux wheel with a stable
    plugin, which declares its torch floor); the returned arguments fetch into a fresh cache."""
    links = tmp_path / "links"
    links.mkdir()
    files = {"linuxonly/libops.so": built.stable_plugin.read_bytes()}
    write_wheel(links, "linuxonly", "2.0", [f"py3-none-{LINUX}"], files, requires=["torch>=2.11"])
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.chdir(tmp_path)
    return ["--cache-dir", str(tmp_path / "cache"), "--python-version", "3.11"]


def test_unknown_project_or_release_is_an_error(
    capsys: pytest.CaptureFixture[str], local_index: list[str]
) -> None:
    code, out, err = run(capsys, "--download", "linuxonyl==2.0", *local_index, "--check", "all")
    assert code == 2
    assert "error: linuxonyl==2.0: the index has no project named linuxonyl: " in err
    assert "Could not find a version that satisfies the requirement linuxonyl==2.0" in err
    assert "  Error: the index has no project named linuxonyl" in out  # the report says so too
    assert "Gates: torch, abi3, metadata, load: INCOMPLETE" in out
    assert "  [error  ] linuxonyl==2.0: not audited: the index has no project named" in out
    # Without --check too: a request for nothing is an operational error, not "not available".
    code, _, err = run(capsys, "--download", "linuxonly==2.1", *local_index, "--platform", LINUX)
    assert code == 2
    assert "linuxonly has no release matching ==2.1 on the index (newest: 2.0)" in err


def test_a_release_without_a_wheel_for_a_platform(
    capsys: pytest.CaptureFixture[str], local_index: list[str]
) -> None:
    argv = ["--download", "linuxonly==2.0", *local_index, "--platform", "win_amd64"]
    code, out, err = run(capsys, *argv)
    assert code == 0
    reason = (
        "the index has no wheel for platform win_amd64, Python 3.11: linuxonly 2.0 (its wheels: "
        f"{LINUX})"
    )
    assert f"note: linuxonly==2.0 [win_amd64]: {reason}" in err
    assert f"  Not available: {reason}" in out
    # Under --check a requested target that audited nothing is an operational error, even
    # when the other platform's wheel passes every gate.
    code, _, err = run(capsys, *argv, "--platform", LINUX, "--check", "all")
    assert code == 2
    assert f"error: linuxonly==2.0 [win_amd64]: nothing audited under --check: {reason}" in err
    assert "FAIL" not in err  # the Linux wheel passed its gates


def test_malformed_platform_tags_are_refused_before_pip_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "--download", "x==1", "--platform", "manylinux_2_28_x86-64")
    assert code == 2 and out == ""
    assert (
        "--platform manylinux_2_28_x86-64: 'x86-64' is not a Linux architecture of wheel tags "
        "(did you mean manylinux_2_28_x86_64?)"
    ) in err
    code, _, err = run(capsys, "--download", "x==1", "--platform", "windows_amd64")
    assert code == 2 and "not a wheel platform tag" in err


def test_targets_that_audit_nothing(
    capsys: pytest.CaptureFixture[str], built: Fixtures, tmp_path: Path
) -> None:
    empty = tmp_path / "wheelhouse"
    empty.mkdir()
    pure = write_wheel(tmp_path, "purepkg", "1.0", ["py3-none-any"], {"purepkg/__init__.py": b""})
    for target in (empty, pure):
        assert run(capsys, str(target))[0] == 0  # an audit says what it found: nothing
        code, _, err = run(capsys, str(target), "--check", "torch")
        assert code == 2
        assert f"error: {target}: nothing audited under --check: no compiled library found" in err
    # A directory of wheels is one target: a pure wheel beside a compiled one is fine.
    files = {"ops/libops.so": built.stable_plugin.read_bytes()}
    write_wheel(empty, "ops", "1.0", [f"py3-none-{LINUX}"], files, requires=["torch>=2.11"])
    shutil.copyfile(pure, empty / pure.name)
    assert run(capsys, str(empty), "--check", "all")[0] == 0
    # An environment without a compiled package.
    site = tmp_path / "site-packages"
    site.mkdir()
    code, _, err = run(capsys, "--site-packages", str(site), "--check", "all")
    assert code == 2 and "nothing audited under --check: no package with a compiled library" in err


@pytest.mark.network
def test_the_real_index(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cache = ["--cache-dir", str(tmp_path), "--python-version", "3.11"]
    code, _, err = run(capsys, "--download", "torchaudioo==2.11.0", *cache, "--check", "all")
    assert code == 2
    assert "the index has no project named torchaudioo" in err
    assert "(from versions: none)" in err  # pip's reason
    code, _, err = run(capsys, "--download", "torchaudio==2.99.0", *cache, "--check", "all")
    assert code == 2 and "torchaudio has no release matching ==2.99.0 on the index" in err
    # torchaudio 2.9.1 has no Intel-Mac wheel: not available (a note without --check), and
    # under --check a target that audited nothing.
    argv = ["--download", "torchaudio==2.9.1", *cache, "--platform", "macosx_10_9_x86_64"]
    code, _, err = run(capsys, *argv, "--check", "all")
    assert code == 2
    assert (
        "error: torchaudio==2.9.1 [macosx_10_9_x86_64]: nothing audited under --check: the index "
        "has no wheel for platform macosx_10_9_x86_64, Python 3.11: torchaudio 2.9.1 (its wheels: "
    ) in err
