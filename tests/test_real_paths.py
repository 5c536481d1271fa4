"""``files.RealPaths`` answers what ``os.path.realpath`` answers, for every path of a tree
full of links (to files and directories, relative and absolute, chained, looping, dangling,
leading out and back), whatever order the paths are asked in."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest

from torch_abi_audit.files import RealPaths

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX links")


def _tree(root: Path) -> list[str]:
    """Build a tree of links under ``root``; return paths to ask about (existing or not)."""
    site = root / "site"
    (site / "pkg" / "sub" / "deep").mkdir(parents=True)
    (site / "pkg" / "sub" / "deep" / "lib.so").write_bytes(b"x")
    (site / "pkg" / "mod.py").write_text("")
    (root / "outside" / "dir").mkdir(parents=True)
    (root / "outside" / "dir" / "far.so").write_bytes(b"x")
    links = {
        "site/pkg/up": "..",  # a cycle through the parent
        "site/pkg/self": "self",  # a loop of one
        "site/pkg/ping": "pong",  # a loop of two
        "site/pkg/pong": "ping",
        "site/pkg/gone": "nothing-here",  # dangling
        "site/pkg/abs": str(site / "pkg" / "sub"),  # absolute, inside
        "site/pkg/rel": "sub/deep",
        "site/pkg/chain1": "chain2",
        "site/pkg/chain2": "rel",
        "site/pkg/file-link.so": "sub/deep/lib.so",
        "site/pkg/out": "../../outside/dir",  # out of the site
        "site/pkg/back": "../../outside/../site/pkg",  # out and back in
        "site/pkg/dotdot": "sub/../sub/./deep",
        "site/pkg/not-a-dir": "mod.py",  # a file used as a directory below
        "site/link-to-pkg": "pkg",
        "site/slash": "/",
    }
    for link, target in links.items():
        (root / link).symlink_to(target)
    # 45 links in a row: the system gives up (ELOOP) where realpath does not.
    for index in range(45):
        (site / f"hop{index}").symlink_to(f"hop{index + 1}" if index < 44 else "pkg")
    names = [
        "", "pkg", "pkg/sub", "pkg/sub/deep", "pkg/sub/deep/lib.so", "pkg/mod.py",
        "pkg/mod.py/x", "pkg/missing", "pkg/missing/x.so", "hop0", "hop0/sub", "hop0/sub/deep",
        "hop30/mod.py", "hop0/up", "hop0/file-link.so", "link-to-pkg/sub/deep/lib.so", "slash",
        "slash/tmp",
        *[f"pkg/{link.rsplit('/', 1)[1]}{rest}" for link in links if link.startswith("site/pkg/")
          for rest in ("", "/deep", "/deep/lib.so", "/sub", "/x.so", "/..", "/../mod.py")],
    ]  # fmt: skip
    paths = [str(site / name) if name else str(site) for name in names]
    odd = [
        str(site) + "//pkg//sub",
        str(site) + "/./pkg/./sub/",
        str(site) + "/pkg/../pkg/sub/deep/lib.so",
        str(site) + "/pkg/up/up/pkg/sub/",
        "/",
        "//",
        "relative/path",
        ".",
    ]
    return paths + odd


def test_real_paths_agree_with_realpath_in_any_order(tmp_path: Path) -> None:
    paths = _tree(tmp_path)
    expected = {path: os.path.realpath(path) for path in paths}
    rng = random.Random(7)
    for _ in range(20):
        order = paths[:]
        rng.shuffle(order)
        real_path = RealPaths()  # one per scan: answers build on each other
        for path in order:
            assert real_path(path) == expected[path], path
            assert real_path(Path(path)) == os.path.realpath(Path(path)), path


def test_real_paths_answer_once_per_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files of one directory cost one ``lstat`` each once the directory is known."""
    directory = tmp_path / "a" / "b" / "c"
    directory.mkdir(parents=True)
    for index in range(10):
        (directory / f"f{index}.so").write_bytes(b"")
    real_path = RealPaths()
    real_path(directory)
    calls: list[str] = []
    lstat = os.lstat

    def counting(path: str) -> os.stat_result:
        calls.append(path)
        return lstat(path)

    monkeypatch.setattr(os, "lstat", counting)
    for index in range(10):
        assert real_path(directory / f"f{index}.so") == str(directory / f"f{index}.so")
    assert len(calls) == 10
    assert real_path(directory / "f0.so") == str(directory / "f0.so")
    assert len(calls) == 10
