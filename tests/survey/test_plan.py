"""Choosing releases and, per platform, the wheel an installer there would get."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.version import Version

from torch_abi_audit.survey.curated import (
    CURATED_FILE,
    CuratedListError,
    load_curated,
    read_package_file,
)
from torch_abi_audit.survey.plan import ReleaseSpecError, parse_releases, plan_project
from torch_abi_audit.survey.platforms import (
    PlatformError,
    best_wheel,
    pip_platform,
    platform_tags,
    ranking,
)
from torch_abi_audit.survey.simple_api import IndexFile, IndexReadError, Project, parse_project

ROOT = Path(__file__).resolve().parents[2]


def _file(name: str, *, yanked: bool = False, when: str = "2026-01-02T03:04:05Z") -> IndexFile:
    return IndexFile(name, f"https://files.example/{name}", name[:8], 100, when, yanked, False)


def _project(files: dict[str, list[str]]) -> Project:
    return Project(
        "pkg", {Version(v): tuple(_file(name) for name in names) for v, names in files.items()}
    )


def test_platform_tags_accept_older_baselines_as_an_installer_does() -> None:
    linux = platform_tags("manylinux_2_39_x86_64")
    assert linux[0] == "manylinux_2_39_x86_64"
    assert linux.index("manylinux_2_28_x86_64") < linux.index("manylinux2014_x86_64")
    assert {"manylinux1_x86_64", "manylinux2010_x86_64", "manylinux_2_5_x86_64"} <= set(linux)
    assert not any("aarch64" in tag for tag in linux)
    mac = platform_tags("macosx_26_0_arm64")
    assert mac[:2] == ["macosx_26_0_arm64", "macosx_26_0_universal2"]
    assert "macosx_11_0_arm64" in mac and "macosx_10_9_x86_64" not in mac
    assert platform_tags("win_amd64") == ["win_amd64"]
    with pytest.raises(PlatformError):
        platform_tags("Windows 11")


@pytest.mark.parametrize(
    ("files", "platform", "expected"),
    [
        # Version-specific ABI before abi3 before a pure wheel, as pip ranks them.
        (
            [
                "p-1-cp39-abi3-manylinux_2_28_x86_64.whl",
                "p-1-cp312-cp312-manylinux_2_28_x86_64.whl",
                "p-1-py3-none-any.whl",
            ],
            "manylinux_2_39_x86_64",
            "p-1-cp312-cp312-manylinux_2_28_x86_64.whl",
        ),
        # A newer glibc baseline than the platform has does not install there.
        (
            [
                "p-1-cp312-cp312-manylinux_2_40_x86_64.whl",
                "p-1-cp312-cp312-manylinux2014_x86_64.whl",
            ],
            "manylinux_2_39_x86_64",
            "p-1-cp312-cp312-manylinux2014_x86_64.whl",
        ),
        # The higher build number wins among equal tags.
        (
            ["p-1-1-cp312-cp312-win_amd64.whl", "p-1-2-cp312-cp312-win_amd64.whl"],
            "win_amd64",
            "p-1-2-cp312-cp312-win_amd64.whl",
        ),
        # Another Python's wheel does not fit; a pure wheel does.
        (
            ["p-1-cp311-cp311-win_amd64.whl", "p-1-py3-none-any.whl"],
            "win_amd64",
            "p-1-py3-none-any.whl",
        ),
        (["p-1-cp312-cp312-macosx_14_0_x86_64.whl"], "macosx_26_0_arm64", None),
    ],
)
def test_best_wheel_is_pips_choice(files: list[str], platform: str, expected: str | None) -> None:
    chosen = best_wheel([_file(name) for name in files], ranking(platform, "3.12"))
    assert (chosen.filename if chosen else None) == expected


def test_yanked_wheel_only_when_nothing_else_fits() -> None:
    ranked = ranking("win_amd64", "3.12")
    yanked = _file("p-1-cp312-cp312-win_amd64.whl", yanked=True)
    pure = _file("p-1-py3-none-any.whl")
    assert best_wheel([yanked, pure], ranked) == pure
    assert best_wheel([yanked], ranked) == yanked


def test_pip_is_asked_for_the_chosen_wheels_own_platform() -> None:
    wheel = _file("p-1-cp39-abi3-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl")
    assert pip_platform(wheel) == "manylinux_2_24_x86_64"
    assert pip_platform(_file("p-1-py3-none-any.whl")) is None


def test_releases_newest_n_all_or_a_specifier() -> None:
    project = _project(
        {
            "1.0": ["p-1.0.tar.gz"],
            "1.1": ["p-1.1.tar.gz"],
            "2.0rc1": ["p-2.0rc1.tar.gz"],
            "1.2": ["p-1.2.tar.gz"],
        }
    )
    assert parse_releases("2").choose(project) == [Version("1.2"), Version("1.1")]
    assert len(parse_releases("all").choose(project)) == 3
    assert parse_releases("all", include_pre=True).choose(project)[0] == Version("2.0rc1")
    assert parse_releases(">=1.1,<1.2").choose(project) == [Version("1.1")]
    only_pre = _project({"0.1.dev1": ["p-0.1.dev1.tar.gz"]})
    assert parse_releases("3").choose(only_pre) == [Version("0.1.dev1")]
    for bad in ("0", "newest", "=>1"):
        with pytest.raises(ReleaseSpecError):
            parse_releases(bad)


def test_plan_one_job_per_distinct_wheel_and_reasons_for_the_rest() -> None:
    project = _project(
        {
            "1.0": ["p-1.0.tar.gz"],
            "1.1": ["p-1.1-cp312-cp312-manylinux_2_28_x86_64.whl", "p-1.1-py3-none-any.whl"],
        }
    )
    plan = plan_project(
        project,
        parse_releases("all"),
        ["manylinux_2_39_x86_64", "win_amd64", "macosx_26_0_arm64"],
        "3.12",
    )
    assert [job.filename for job in plan.jobs] == [
        "p-1.1-cp312-cp312-manylinux_2_28_x86_64.whl",
        "p-1.1-py3-none-any.whl",
    ]
    pure = plan.jobs[1]
    assert pure.pip_platform == "win_amd64"  # pip is asked where only the pure wheel fits
    reasons = {(s.version, s.platform): s.reason for s in plan.selections}
    assert reasons[("1.1", "win_amd64")] is None
    assert "no wheels" in str(reasons[("1.0", "win_amd64")])
    keys = {s.key for s in plan.selections if s.version == "1.1"}
    assert keys == {job.key for job in plan.jobs}


def test_parse_project_reads_pep_691_and_700_fields() -> None:
    document = {
        "name": "Some_Pkg",
        "files": [
            {
                "filename": "some_pkg-1.0-py3-none-any.whl",
                "url": "../../f/a.whl",
                "hashes": {"sha256": "ab" * 32},
                "size": 5,
                "upload-time": "2025-03-04T00:00:00Z",
                "yanked": "broken",
                "core-metadata": {"sha256": "cd" * 32},
            },
            {"filename": "some_pkg-1.0.tar.gz", "url": "b.tar.gz", "hashes": {}},
            {"filename": "some_pkg-1.0.win32.exe", "url": "c.exe", "hashes": {}},
        ],
    }
    project = parse_project("some-pkg", document, "https://index.example/simple/some-pkg/")
    assert project.name == "some-pkg"
    wheel, sdist = project.releases[Version("1.0")]
    assert wheel.url == "https://index.example/f/a.whl"  # relative to the page
    assert (wheel.sha256, wheel.size, wheel.yanked, wheel.has_metadata) == (
        "ab" * 32,
        5,
        True,
        True,
    )
    assert wheel.upload_time == "2025-03-04T00:00:00Z" and sdist.sha256 is None
    with pytest.raises(IndexReadError):
        parse_project("x", {"files": "no"}, "u")


def test_shipped_curated_list_invariants() -> None:
    raw = json.loads(CURATED_FILE.read_text(encoding="utf-8"))
    assert (ROOT / raw["generated_by"]).is_file()
    curated = load_curated()
    names = [p.name for p in curated.packages]
    assert len(names) >= 30
    assert names == sorted(set(names)) and "torch" not in names
    for package in curated.packages:
        assert package.release and package.platforms and "any" not in package.platforms
        assert package.requires_torch or "libtorch" in package.evidence
    assert {r["name"] for r in raw["rejected"]}.isdisjoint(names)
    assert raw["candidates"] == len(names) + len(raw["rejected"])


def test_package_files(tmp_path: Path) -> None:
    listing = tmp_path / "packages.txt"
    listing.write_text("# torch extensions\ntorchao\n\ntorchcodec  # stable\n", encoding="utf-8")
    assert read_package_file(listing) == ["torchao", "torchcodec"]
    assert read_package_file(CURATED_FILE) == [p.name for p in load_curated().packages]
    listing.write_text("not a name!\n", encoding="utf-8")
    with pytest.raises(CuratedListError, match=r"packages.txt:1"):
        read_package_file(listing)
    with pytest.raises(CuratedListError):
        read_package_file(tmp_path / "absent.txt")
