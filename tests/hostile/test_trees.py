"""Hostile trees (issue 15, items 5, 6, 7): symbolic links that steal other packages' libraries
or lead out of the site directory, RECORDs that list a million missing libraries, a directory
named like a wheel, a malformed torch requirement."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from helpers.build import Fixtures
from helpers.hostile import CliRun, OpenWatch, run_cli, snapshot
from helpers.wheel_builder import metadata_text, write_wheel

TAG = "cp311-abi3-manylinux_2_28_x86_64"


def _dist(site: Path, name: str, files: dict[str, Path], requires: tuple[str, ...] = ()) -> None:
    """Install ``files`` (site-relative path -> source) as distribution ``name`` 1.0."""
    for relative, source in files.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, site / relative)
    dist_info = site / f"{name}-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(metadata_text(name, "1.0", requires))
    (dist_info / "RECORD").write_text("".join(f"{r},,\n" for r in files))


def _scan_reading_nothing_in(outside: Path, site: Path, scratch: Path) -> CliRun:
    """Scan ``site`` and check (inotify) that nothing in ``outside`` was opened."""
    watch = OpenWatch(outside)
    try:
        run = run_cli(["--site-packages", str(site), "--all", "-v"], scratch)
        touched = watch.touched()
    finally:
        watch.close()
    assert touched == []
    return run


def _packages(out: str) -> dict[str, list[str]]:
    """Package name -> its libraries' paths, from the JSON document."""
    document: dict[str, Any] = json.loads(out)
    return {
        package["name"]: sorted(
            lib["path"] for lib in (*package["extensions"], *package["bundled_libs"])
        )
        for package in document["packages"]
    }


def test_a_link_to_the_site_directory_steals_no_library(built: Fixtures, tmp_path: Path) -> None:
    """``aaa/up -> ..`` made aaa "own" every package sorting after it (they vanished)."""
    site = tmp_path / "site-packages"
    _dist(site, "aaa", {"aaa/libaaa.so": built.stable_plugin})
    _dist(site, "bbb", {"bbb/libbbb.so": built.unstable_lib})
    shutil.copytree(site / "bbb", site / "ccc")  # owned by no distribution
    (site / "aaa" / "up").symlink_to("..")
    (site / "aaa" / "bbb").symlink_to("../bbb")
    run = run_cli(["--site-packages", str(site), "--all", "--json"], tmp_path / "scratch")
    assert run.code == 0, run.err
    assert _packages(run.out) == {
        "aaa": [str(site / "aaa" / "libaaa.so")],
        "bbb": [str(site / "bbb" / "libbbb.so")],
        "ccc": [str(site / "ccc" / "libbbb.so")],
    }


def test_links_out_of_the_site_directory_are_reported_and_never_read(
    built: Fixtures, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    shutil.copyfile(built.unstable_lib, outside / "deep" / "libout.so")
    shutil.copyfile(built.unstable_lib, outside / "libtop.so")
    site = tmp_path / "site-packages"
    _dist(site, "pkg", {"pkg/libpkg.so": built.stable_plugin})
    (site / "pkg" / "vendor").symlink_to(outside)  # absolute
    (site / "pkg" / "libfile.so").symlink_to(outside / "libtop.so")
    (site / "escape").symlink_to(outside / "deep")  # a top-level entry
    # The RECORD lists a library through the link: the head start must not read it either.
    record = site / "pkg-1.0.dist-info" / "RECORD"
    record.write_text(record.read_text() + "pkg/vendor/deep/libout.so,,\n")
    # Metadata through links: a whole .dist-info, and one file of an inside one.
    _dist(outside, "ext", {"ext/libext.so": built.unstable_lib})
    (site / "ext-1.0.dist-info").symlink_to(outside / "ext-1.0.dist-info")
    (outside / "WHEEL").write_text("Wheel-Version: 1.0\n")
    (site / "pkg-1.0.dist-info" / "WHEEL").symlink_to(outside / "WHEEL")
    # The torch that loading is predicted against: one of its libraries, and its version.py.
    (site / "torch" / "lib").mkdir(parents=True)
    shutil.copyfile(built.stable_plugin, site / "torch" / "lib" / "libtorch_cpu.so")
    shutil.copyfile(built.unstable_lib, outside / "libc10.so")
    (site / "torch" / "lib" / "libc10.so").symlink_to(outside / "libc10.so")
    (outside / "version.py").write_text("__version__ = '2.13.0'\n")
    (site / "torch" / "version.py").symlink_to(outside / "version.py")
    run = _scan_reading_nothing_in(outside, site, tmp_path / "scratch")
    assert run.code == 2
    leaves = "outside the scanned directory: not followed"
    for link, target in [
        ("vendor", outside),
        ("libfile.so", outside / "libtop.so"),
        ("escape", outside / "deep"),
    ]:
        shown = f"symbolic link to {target}, {leaves}"
        # A problem at a package's own root is printed without its path.
        assert any(
            f"{link}: {shown}" in line or line == f"  Problem: {shown}" for line in run.lines
        )
    assert "    [STABLE  ] [not-abi3              ] libpkg.so" in "\n".join(run.lines)
    outside_record = (
        f"unreadable RECORD: symbolic link to {outside / 'ext-1.0.dist-info' / 'RECORD'}"
    )
    assert any(outside_record in line for line in run.lines), run.out
    assert any(
        f"unreadable WHEEL: symbolic link to {outside / 'WHEEL'}" in line for line in run.lines
    )


def test_a_million_missing_libraries_in_a_record(built: Fixtures, tmp_path: Path) -> None:
    """It took 32-66 s and 2 GB, exited 0 and reported nothing."""
    site = tmp_path / "site-packages"
    _dist(site, "real", {"real/libreal.so": built.stable_plugin})
    dist_info = site / "huge-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(metadata_text("huge", "1.0"))
    with (dist_info / "RECORD").open("w") as record:
        for index in range(1_000_000):
            record.write(f"huge/sub{index % 97}/lib{index}.so,sha256=AAAA,1\n")
    run = run_cli(["--site-packages", str(site), "--all", "-v", "-j", "2"], tmp_path / "scratch")
    assert run.code == 2
    assert run.seconds < 20 and run.peak_memory < 400 << 20
    problems = [line for line in run.lines if "huge-1.0.dist-info/RECORD" in line]
    assert any(
        "RECORD lists more than 10,000 libraries and top-level entries: the rest is not read"
        in line
        for line in problems
    )
    assert any(
        "RECORD lists 10,000 libraries that are not installed: huge/" in line for line in problems
    )
    assert "    [STABLE  ] [not-abi3              ] libreal.so" in "\n".join(run.lines)


def test_a_listed_library_that_is_not_there(built: Fixtures, tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    _dist(site, "pkg", {"pkg/libpkg.so": built.stable_plugin})
    _dist(site, "gone", {"gone/libgone.so": built.stable_plugin, "gone/_c.abi3.so": built.abi3_ext})
    for relative in ("gone/libgone.so", "gone/_c.abi3.so"):
        (site / relative).unlink()
    (site / "pkg" / "libpkg.so").unlink()
    shutil.copyfile(built.stable_plugin, site / "pkg" / "libother.so")  # not what RECORD says
    run = run_cli(["--site-packages", str(site), "--all", "-v"], tmp_path / "scratch")
    assert run.code == 2
    problems = [line for line in run.lines if line.startswith("  Problem:")]
    assert any(
        line.endswith(
            "gone-1.0.dist-info/RECORD: RECORD lists 2 libraries that are not installed: "
            "gone/_c.abi3.so, gone/libgone.so"
        )
        for line in problems
    )
    assert any(
        line.endswith(
            "pkg-1.0.dist-info/RECORD: RECORD lists 1 library that is not installed: pkg/libpkg.so"
        )
        for line in problems
    )


def test_a_listed_library_with_a_nul_byte_in_its_name(built: Fixtures, tmp_path: Path) -> None:
    """The head start asked ``realpath`` about it: "internal error: ValueError: embedded null
    byte". No file can be named so: it is a library the RECORD lists that is not there."""
    site = tmp_path / "site-packages"
    _dist(site, "pkg", {"pkg/libpkg.so": built.stable_plugin})
    with (site / "pkg-1.0.dist-info" / "RECORD").open("a") as record:
        record.write("pkg/lib\0nul.so,,\n")
    run = run_cli(["--site-packages", str(site), "--all", "--json"], tmp_path / "scratch")
    assert run.code == 2, run.err
    document: dict[str, Any] = json.loads(run.out)
    (package,) = document["packages"]
    assert [lib["path"] for lib in package["bundled_libs"]] == [str(site / "pkg" / "libpkg.so")]
    assert [problem["reason"] for problem in package["problems"]] == [
        "RECORD lists 1 library that is not installed: pkg/lib\0nul.so"
    ]


def test_a_directory_named_like_a_wheel(built: Fixtures, tmp_path: Path) -> None:
    unpacked = tmp_path / "tree" / f"pkg-1.0-{TAG}.whl"
    (unpacked / "pkg").mkdir(parents=True)
    shutil.copyfile(built.stable_plugin, unpacked / "pkg" / "libpkg.so")
    for target in (unpacked, unpacked.parent):
        run = run_cli([str(target)], tmp_path / "scratch")
        assert run.code == 2
        reason = "a directory named like a wheel: its libraries are audited as files, not a wheel"
        assert any(reason in line for line in run.lines), run.out
        assert any(
            line.endswith("/libpkg.so  (stable_shim=3, unstable=0)  min-torch=2.11.0")
            for line in run.lines
        ), run.out


@pytest.mark.parametrize(
    "requirement", ["torch >=2.11,,", "torch (>=2.11", "torch>=2.11; python_version >= '3.11"]
)
def test_a_malformed_torch_requirement_is_a_finding(
    requirement: str, built: Fixtures, tmp_path: Path
) -> None:
    """It became "no torch requirement" without a word."""
    wheel = write_wheel(
        tmp_path,
        "pkg",
        "1.0",
        [TAG],
        {"pkg/libpkg.so": built.stable_plugin.read_bytes()},
        requires=[requirement],
    )
    run = run_cli([str(wheel), "--check", "metadata"], tmp_path / "scratch")
    assert run.code == 1
    finding = (
        f"    [error] torch-requirement-invalid: declares Requires-Dist: {requirement}, which is "
        "not a valid requirement (PEP 508): installers reject or ignore it, so no torch "
        "requirement is in effect"
    )
    assert finding in run.lines
    assert "pkg: [metadata] torch-requirement-invalid" in run.err


def test_the_audited_tree_is_left_as_it_was(built: Fixtures, tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    _dist(site, "pkg", {"pkg/libpkg.so": built.stable_plugin, "pkg/_c.abi3.so": built.abi3_ext})
    write_wheel(site, "whl", "1.0", [TAG], {"whl/libw.so": built.unstable_lib.read_bytes()})
    before = snapshot(site)
    scan = ["--site-packages", str(site), "--all", "-v"]
    runs = [
        (scan, "1"),
        (scan, "2"),
        (scan, "1"),
        ([str(site), "-v"], "1"),
        ([str(site), "-v"], "2"),
    ]
    outputs = set()
    for argv, jobs in runs:  # one scratch directory: messages name the working directory
        run = run_cli([*argv, "-j", jobs], tmp_path / "scratch")
        outputs.add((tuple(argv), run.code, run.out, run.err))
    assert snapshot(site) == before
    assert len(outputs) == 2  # byte-identical across runs and -j


def test_programs_a_record_lists_outside_the_environment_are_not_read(
    built: Fixtures, tmp_path: Path
) -> None:
    """A RECORD may list programs it installed into the environment's ``bin``
    (``../../../bin/tool``); one that climbs further, or a link there that leads out, is a
    problem, never opened."""
    outside = tmp_path / "outside" / "bin"
    outside.mkdir(parents=True)
    shutil.copyfile(built.unstable_lib, outside / "escaped")
    (outside / "escaped").chmod(0o755)
    environment = tmp_path / "venv"
    site = environment / "lib" / "python3.11" / "site-packages"
    _dist(site, "pkg", {"pkg/libpkg.so": built.stable_plugin})
    (environment / "bin").mkdir()
    (environment / "bin" / "linked").symlink_to(outside / "escaped")
    record = site / "pkg-1.0.dist-info" / "RECORD"
    climbing = "../../../../outside/bin/escaped"
    record.write_text(record.read_text() + f"{climbing},,\n../../../bin/linked,,\n")
    run = _scan_reading_nothing_in(outside, site, tmp_path / "scratch")
    assert run.code == 2
    target = f"symbolic link to {outside / 'escaped'}, outside the scanned directory"
    assert sum(target in line for line in run.lines) == 1, run.out
    climbs = f"RECORD: RECORD lists {climbing}, outside the environment: not read"
    assert any(line.endswith(climbs) for line in run.lines), run.out
