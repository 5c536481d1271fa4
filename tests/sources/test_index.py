"""Fetching wheels with pip: a local find-links directory stands in for the index."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from torch_abi_audit.sources.index import (
    CACHE_VARIABLE,
    DownloadError,
    default_cache,
    download,
    expand_platform,
    fetch_wheel,
    find_cached_wheel,
    pip_command,
)
from torch_abi_audit.sources.index_answers import platform_tag_problem


def _wheel(directory: Path, name: str, version: str, tag: str) -> Path:
    path = directory / f"{name}-{version}-{tag}.whl"
    dist_info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}/__init__.py", "")
        archive.writestr(
            f"{dist_info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
        archive.writestr(
            f"{dist_info}/WHEEL",
            f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: {tag}\n",
        )
        archive.writestr(f"{dist_info}/RECORD", "")
    return path


@pytest.fixture
def local_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A find-links directory with two wheels; pip is told to use it and nothing else."""
    links = tmp_path / "links"
    links.mkdir()
    _wheel(links, "localpkg", "1.0", "py3-none-any")
    _wheel(links, "linuxonly", "2.0", "py3-none-manylinux_2_28_x86_64")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    return links


def test_download_saves_into_the_cache_and_reuses_it(local_index: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (first,) = download("localpkg==1.0", cache=cache)
    assert first.wheel == cache / "localpkg-1.0-py3-none-any.whl"
    assert first.wheel.is_file() and first.unavailable is None and first.error is None
    (again,) = download("localpkg==1.0", cache=cache)  # "File was already downloaded"
    assert again.wheel == first.wheel


def test_one_download_per_platform_and_unavailable_platforms(
    local_index: Path, tmp_path: Path
) -> None:
    results = download(
        "linuxonly==2.0",
        platforms=["manylinux_2_28_x86_64", "win_amd64"],
        python_version="3.11",
        cache=tmp_path / "cache",
    )
    assert [r.platform for r in results] == ["manylinux_2_28_x86_64", "win_amd64"]
    linux, windows = results
    assert linux.wheel is not None and linux.wheel.name.startswith("linuxonly-2.0")
    assert windows.wheel is None and windows.error is None
    assert windows.unavailable == (
        "the index has no wheel for platform win_amd64, Python 3.11: linuxonly 2.0 "
        "(its wheels: manylinux_2_28_x86_64)"
    )
    assert windows.label == "linuxonly==2.0 [win_amd64]"


def test_unknown_version_is_an_error_not_unavailable(local_index: Path, tmp_path: Path) -> None:
    (result,) = download("localpkg==9.9", cache=tmp_path / "cache")
    assert result.wheel is None and result.unavailable is None
    assert result.error is not None
    assert result.error.startswith("localpkg has no release matching ==9.9 on the index")
    # pip's own reason is part of it.
    assert "Could not find a version that satisfies the requirement localpkg==9.9" in result.error


def test_unknown_project_is_an_error(local_index: Path, tmp_path: Path) -> None:
    (result,) = download("localpkgg==1.0", platforms=["win_amd64"], cache=tmp_path / "cache")
    assert result.unavailable is None and result.error is not None
    assert result.error.startswith("the index has no project named localpkgg: ")
    assert "(from versions: none)" in result.error


def test_malformed_platform_is_an_error_before_pip_runs(local_index: Path, tmp_path: Path) -> None:
    typo, good = download(
        "linuxonly==2.0",
        platforms=["manylinux_2_28_x86-64", "manylinux_2_28_x86_64"],
        python_version="3.11",
        cache=tmp_path / "cache",
    )
    assert typo.error == (
        "--platform manylinux_2_28_x86-64: 'x86-64' is not a Linux architecture of wheel tags "
        "(did you mean manylinux_2_28_x86_64?)"
    )
    assert good.wheel is not None


@pytest.mark.parametrize(
    ("tag", "problem"),
    [
        ("manylinux_2_28_x86_64", None),
        ("manylinux2014_aarch64", None),
        ("musllinux_1_2_x86_64", None),
        ("macosx_11_0_arm64", None),
        ("macosx_10_9_universal2", None),
        ("win_amd64", None),
        ("any", None),
        ("android_24_arm64_v8a", None),
        ("ios_13_0_arm64_iphoneos", None),
        ("macosx_11_0_amr64", "'amr64' is not a macOS architecture"),
        ("win_amd46", "did you mean win_amd64?"),
        ("linux", "not a wheel platform tag"),
        ("manylinux_x86_64", "not a wheel platform tag"),
    ],
)
def test_platform_tags(tag: str, problem: str | None) -> None:
    found = platform_tag_problem(tag)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_bad_spec_is_an_error(local_index: Path, tmp_path: Path) -> None:
    (result,) = download("not a valid spec ===", cache=tmp_path / "cache")
    assert result.wheel is None and result.error is not None
    assert result.error.startswith("pip download failed")


def test_command_line_and_cache_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    command = pip_command("x==1", tmp_path, "win_amd64", "3.12")
    assert command[1:4] == ["-m", "pip", "download"]
    assert command[4:7] == ["--no-deps", "--only-binary", ":all:"]
    assert command[-5:] == ["--platform", "win_amd64", "--python-version", "3.12", "x==1"]
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path))
    assert default_cache() == tmp_path / "wheels"
    monkeypatch.delenv(CACHE_VARIABLE)
    assert default_cache() == Path.home() / ".cache" / "torch-abi-audit" / "wheels"


def test_cached_wheel_must_fit_the_platform_and_python(tmp_path: Path) -> None:
    for name in (
        "torch-2.10.0-cp311-cp311-manylinux_2_28_x86_64.whl",
        "torch-2.10.0-cp312-none-macosx_11_0_arm64.whl",
        "torch-2.10.0-cp311-none-macosx_11_0_arm64.whl",
        "torch-2.10.0-2-cp311-none-macosx_11_0_arm64.whl",  # a rebuild: build tag 2 wins
        "torch-2.10.0+cpu-cp311-none-macosx_11_0_arm64.whl",
        "torch-2.10.0.post1-cp311-none-macosx_11_0_arm64.whl",
        "not-a-wheel.whl",
    ):
        (tmp_path / name).touch()

    def macos(version: str) -> Path | None:
        return find_cached_wheel(
            "torch", version, platforms=["macosx_26_0_arm64"], python_version="3.11", cache=tmp_path
        )

    assert macos("2.10.0") == tmp_path / "torch-2.10.0-2-cp311-none-macosx_11_0_arm64.whl"
    assert macos("2.11.0") is None
    linux = find_cached_wheel(
        "Torch", "2.10", platforms=["manylinux_2_34_x86_64"], python_version="3.11", cache=tmp_path
    )
    assert linux == tmp_path / "torch-2.10.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    too_old = find_cached_wheel(
        "torch",
        "2.10.0",
        platforms=["manylinux_2_17_x86_64"],
        python_version="3.11",
        cache=tmp_path,
    )
    assert too_old is None
    abi3 = tmp_path / "fake-1.0-cp310-abi3-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl"
    abi3.touch()
    (tmp_path / "fake-1.0-cp312-cp312-manylinux_2_28_x86_64.whl").touch()
    found = find_cached_wheel(
        "fake", "1.0", platforms=["manylinux_2_28_x86_64"], python_version="3.11", cache=tmp_path
    )
    assert found == abi3


def test_platforms_expand_as_pip_expands_them() -> None:
    linux = expand_platform("manylinux_2_17_x86_64")
    assert linux[:2] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert "manylinux1_x86_64" in linux and "manylinux_2_0_x86_64" in linux
    macos = expand_platform("macosx_14_0_arm64")
    assert "macosx_11_0_arm64" in macos and "macosx_14_0_arm64" in macos
    assert "macosx_15_0_arm64" not in macos
    assert expand_platform("win_amd64") == ["win_amd64"]


def test_fetch_wheel_uses_the_cache_then_pip(local_index: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    wheel = fetch_wheel(
        "linuxonly", "2.0", platforms=["manylinux_2_28_x86_64"], python_version="3.11", cache=cache
    )
    assert wheel == cache / "linuxonly-2.0-py3-none-manylinux_2_28_x86_64.whl"
    # From the cache now: pip is not asked again (an empty find-links would fail it).
    for link in local_index.iterdir():
        link.unlink()
    again = fetch_wheel(
        "linuxonly", "2.0", platforms=["manylinux_2_28_x86_64"], python_version="3.11", cache=cache
    )
    assert again == wheel
    with pytest.raises(DownloadError, match=r"pip download linuxonly==2\.0 failed"):
        fetch_wheel("linuxonly", "2.0", platforms=["win_amd64"], python_version="3.11", cache=cache)
