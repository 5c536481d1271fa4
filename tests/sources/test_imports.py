"""Resolving import names without executing the target (or any parent package)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from helpers.site import FakeSite
from torch_abi_audit.sources.imports import ImportNameError, resolve_import_name


def test_top_level_package(fake_site: FakeSite) -> None:
    paths = resolve_import_name("fakepkg", [str(fake_site.site)])
    assert paths == [fake_site.site / "fakepkg"]


def test_dotted_name_does_not_execute_parents(fake_site: FakeSite) -> None:
    paths = resolve_import_name("marker_pkg.sub", [str(fake_site.site)])
    assert paths == [fake_site.site / "marker_pkg" / "sub"]
    assert not fake_site.marker.exists()
    assert "marker_pkg" not in sys.modules


def test_extension_module_resolves_to_its_file(fake_site: FakeSite) -> None:
    (path,) = resolve_import_name("marker_pkg.sub._speedups", [str(fake_site.site)])
    assert path == fake_site.site / "marker_pkg" / "sub" / "_speedups.abi3.so"
    assert not fake_site.marker.exists()


def test_namespace_package_gives_every_portion(tmp_path: Path) -> None:
    for portion in ("one", "two"):
        (tmp_path / portion / "nspkg" / portion).mkdir(parents=True)
    paths = resolve_import_name("nspkg", [str(tmp_path / "one"), str(tmp_path / "two")])
    assert sorted(paths) == [tmp_path / "one" / "nspkg", tmp_path / "two" / "nspkg"]


def test_interpreter_lookup_uses_sys_path() -> None:
    # Without an explicit search path, the running interpreter's finders are used.
    (path,) = resolve_import_name("packaging")
    assert path.name == "packaging" and (path / "version.py").is_file()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no_such_package_xyz", "no module or package named 'no_such_package_xyz'"),
        ("fakepkg.missing", "no module or package named 'fakepkg.missing'"),
        ("fakepkg..x", "not a valid import name"),
        ("1abc", "not a valid import name"),
        ("marker_pkg.sub._speedups.deeper", "is a module, not a package"),
    ],
)
def test_unknown_names(fake_site: FakeSite, name: str, message: str) -> None:
    with pytest.raises(ImportNameError, match=message.replace(".", r"\.")):
        resolve_import_name(name, [str(fake_site.site)])


def test_builtin_module_has_no_files() -> None:
    with pytest.raises(ImportNameError, match="built-in or frozen"):
        resolve_import_name("sys")


def _tree_with_namespace_portions(root: Path) -> None:
    """``pkg`` (regular) with ``pkg/lib`` (no ``__init__.py``, as ``torchaudio/lib``), and the
    namespace package ``nsx`` with ``nsx/c`` (as ``nvidia/cudnn/lib``); each holds a marker
    ``__init__.py`` above that must never run."""
    (root / "pkg" / "lib" / "deeper").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("raise SystemExit('executed')\n")
    (root / "nsx" / "c").mkdir(parents=True)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("pkg.lib", "pkg/lib"), ("pkg.lib.deeper", "pkg/lib/deeper"), ("nsx.c", "nsx/c")],
)
def test_directory_without_init_under_a_package(tmp_path: Path, name: str, expected: str) -> None:
    """The last part a namespace portion: PathFinder raised KeyError (the parent is not in
    sys.modules); the lookup now gives the directory, each portion once."""
    _tree_with_namespace_portions(tmp_path)
    search = [str(tmp_path), str(tmp_path)]  # the same entry twice: one portion
    assert resolve_import_name(name, search) == [tmp_path / expected]
    assert "pkg" not in sys.modules and "nsx" not in sys.modules


def test_directory_without_init_through_the_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tree_with_namespace_portions(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert resolve_import_name("pkg.lib") == [tmp_path / "pkg" / "lib"]
    assert resolve_import_name("nsx.c") == [tmp_path / "nsx" / "c"]


def test_a_failing_finder_is_an_unresolved_name(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        @staticmethod
        def find_spec(*_args: object) -> None:
            raise KeyError("a third-party finder's own bug")

    monkeypatch.setattr(sys, "meta_path", [Broken(), *sys.meta_path])
    with pytest.raises(ImportNameError, match="KeyError"):
        resolve_import_name("no_such_top_level_xyz")
