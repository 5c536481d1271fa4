"""Finding library candidates in a tree: names, symlinks, loops, problems."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from torch_abi_audit.sources.discovery import find_libraries, is_library_name


@pytest.mark.parametrize(
    "name",
    [
        "foo.so",
        "libfoo.so.1",
        "libfoo.so.1.2.3",
        "libnvjpeg-1a359ba7.so.13.0.1.86",
        "_C.cpython-311-x86_64-linux-gnu.so",
        "_foo.abi3.so",
        "libc10.dylib",
        "libfoo.1.2.dylib",
        "_foo.cp311-win_amd64.pyd",
        "torch_cpu.dll",
        "TORCH_CPU.DLL",
    ],
)
def test_library_names(name: str) -> None:
    assert is_library_name(name)


@pytest.mark.parametrize(
    "name", ["foo.py", "so", "foo.so.py", "foo.sorted", "README.so.txt", "foo.solib", "x.dll.bak"]
)
def test_not_library_names(name: str) -> None:
    assert not is_library_name(name)


def _touch(path: Path, content: bytes = b"\x7fELF") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_walk_finds_versioned_names_and_skips_other_files(tmp_path: Path) -> None:
    expected = {
        _touch(tmp_path / "pkg" / "a.so"),
        _touch(tmp_path / "pkg" / "lib" / "libb.so.1.2.3"),
        _touch(tmp_path / "pkg.libs" / "libc-123.so.4"),
    }
    _touch(tmp_path / "pkg" / "__init__.py", b"")
    _touch(tmp_path / "pkg" / "__pycache__" / "x.so")  # skipped directory
    result = find_libraries([tmp_path])
    assert set(result.libraries) == expected
    assert result.problems == []
    assert result.libraries == sorted(result.libraries, key=str)


def test_symlink_to_a_scanned_file_is_not_scanned_twice(tmp_path: Path) -> None:
    real = _touch(tmp_path / "libfoo.so.1")
    (tmp_path / "libfoo.so").symlink_to("libfoo.so.1")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "libalias.so").symlink_to(real)
    os.link(real, tmp_path / "libhard.so")
    result = find_libraries([tmp_path])
    assert result.libraries == [real]  # the real file is preferred over links to it


def test_broken_and_looping_links_are_problems(tmp_path: Path) -> None:
    _touch(tmp_path / "libok.so")
    (tmp_path / "libdangling.so").symlink_to("missing.so")
    (tmp_path / "libloop.so").symlink_to("libloop.so")
    result = find_libraries([tmp_path])
    assert result.libraries == [tmp_path / "libok.so"]
    reasons = {p.path.name: p.reason for p in result.problems}
    assert reasons == {
        "libdangling.so": "broken symbolic link (its target does not exist)",
        "libloop.so": "symbolic link loop",
    }


def test_directory_symlink_cycles_terminate(tmp_path: Path) -> None:
    lib = _touch(tmp_path / "a" / "liba.so")
    (tmp_path / "a" / "back").symlink_to(tmp_path)  # a/back -> the root: a cycle
    (tmp_path / "a" / "self").symlink_to(".")
    result = find_libraries([tmp_path])
    assert result.libraries == [lib]


def test_a_file_root_is_a_candidate_whatever_its_name(tmp_path: Path) -> None:
    odd = _touch(tmp_path / "weird_name.bin")
    assert find_libraries([odd]).libraries == [odd]


def test_missing_root_is_a_problem(tmp_path: Path) -> None:
    result = find_libraries([tmp_path / "nope"])
    assert result.libraries == []
    assert [p.reason for p in result.problems] == [
        "broken symbolic link (its target does not exist)"
    ]


def test_fifo_named_like_a_library_is_a_problem(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "libfifo.so")
    result = find_libraries([tmp_path])
    assert [(p.path.name, p.reason) for p in result.problems] == [
        ("libfifo.so", "not a regular file (a FIFO)")
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any directory")
def test_unreadable_directory_is_a_problem(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    _touch(locked / "liblocked.so")
    locked.chmod(0)
    try:
        result = find_libraries([tmp_path])
    finally:
        locked.chmod(0o755)
    assert [(p.path, p.reason) for p in result.problems] == [(locked, "permission denied")]


def test_symbolic_links_out_of_the_tree_are_reported_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    shared = _touch(outside / "libshared.so")
    tree = tmp_path / "tree"
    (tree / "a").mkdir(parents=True)
    (tree / "a" / "vendored").symlink_to(outside)  # absolute
    (tree / "b").mkdir()
    (tree / "b" / "again").symlink_to("../../outside")  # relative
    (tree / "b" / "libalias.so").symlink_to(shared)  # a file
    inside = _touch(tree / "c" / "libinside.so")
    result = find_libraries([tree])
    assert result.libraries == [inside]
    leaves = "outside the scanned directory: not followed"
    target = os.path.realpath(outside)
    assert [(p.path, p.reason) for p in result.problems] == [
        (tree / "a" / "vendored", f"symbolic link to {target}, {leaves}"),
        (tree / "b" / "again", f"symbolic link to {target}, {leaves}"),
        (tree / "b" / "libalias.so", f"symbolic link to {os.path.realpath(shared)}, {leaves}"),
    ]


def test_a_link_inside_the_tree_attributes_files_to_where_they_are(tmp_path: Path) -> None:
    """``loopy/up -> ..`` and ``loopy/other -> ../other``: every file is named by its real
    place, whichever root the walk reached it from first (roots in any order)."""
    site = tmp_path / "site"
    _touch(site / "loopy" / "libloopy.so")
    other = _touch(site / "zother" / "libother.so")
    hidden = _touch(site / "hidden.data" / "libhidden.so")
    (site / "loopy" / "up").symlink_to("..")
    (site / "loopy" / "other").symlink_to("../zother")
    (site / "loopy" / "data").symlink_to(site / "hidden.data")  # absolute, but inside
    for roots in ([site / "loopy", site / "zother"], [site / "zother", site / "loopy"]):
        result = find_libraries(roots, boundary=[site])
        assert result.libraries == [hidden, site / "loopy" / "libloopy.so", other]
        assert result.problems == []


def test_roots_outside_an_explicit_boundary_are_not_read(tmp_path: Path) -> None:
    outside = _touch(tmp_path / "outside" / "libout.so")
    site = tmp_path / "site"
    site.mkdir()
    (site / "linked").symlink_to(outside.parent)
    (site / "libtop.so").symlink_to(outside)
    result = find_libraries([site / "linked", site / "libtop.so"], boundary=[site])
    assert result.libraries == []
    assert sorted(p.path.name for p in result.problems) == ["libtop.so", "linked"]


def test_a_boundary_reached_through_a_link_keeps_the_given_path(tmp_path: Path) -> None:
    real = tmp_path / "real"
    lib = _touch(real / "pkg" / "libx.so")
    (tmp_path / "alias").symlink_to(real)
    result = find_libraries([tmp_path / "alias" / "pkg"], boundary=[tmp_path / "alias"])
    assert result.libraries == [tmp_path / "alias" / "pkg" / "libx.so"]
    assert lib.exists()
