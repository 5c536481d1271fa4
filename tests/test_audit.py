"""The Python API: inspect_extension, inspect_package, inspect_site_packages."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers.build import Fixtures
from helpers.site import FakeSite
from torch_abi_audit import (
    CPythonLabel,
    CPythonVerdict,
    LibraryKind,
    TorchLabel,
    TorchVerdict,
    inspect_extension,
    inspect_package,
    inspect_site_packages,
)
from torch_abi_audit.engine import analyse_libraries


def test_extension_reports_of_every_fixture(built: Fixtures) -> None:
    expected = {
        built.abi3_ext: (LibraryKind.EXTENSION, TorchLabel.NO_TORCH, CPythonLabel.ABI3_OK),
        built.private_ext: (
            LibraryKind.EXTENSION,
            TorchLabel.NO_TORCH,
            CPythonLabel.USES_PRIVATE_API,
        ),
        built.abi3_bad_ext: (
            LibraryKind.EXTENSION,
            TorchLabel.NO_TORCH,
            CPythonLabel.ABI3_TAGGED_VIOLATIONS,
        ),
        built.stable_plugin: (LibraryKind.BUNDLED, TorchLabel.STABLE, CPythonLabel.NOT_ABI3),
        built.unstable_lib: (LibraryKind.BUNDLED, TorchLabel.UNSTABLE, CPythonLabel.NOT_ABI3),
        built.signature_lib: (LibraryKind.BUNDLED, TorchLabel.UNSTABLE, CPythonLabel.NOT_ABI3),
        built.versioned: (LibraryKind.BUNDLED, TorchLabel.NO_TORCH, CPythonLabel.NOT_ABI3),
    }
    for path, (kind, torch_label, cpython_label) in expected.items():
        report = inspect_extension(path)
        assert (report.kind, report.torch_label, report.cpython_label) == (
            kind,
            torch_label,
            cpython_label,
        ), path.name
        assert report.error is None
        assert report.format == "elf" and report.machine == "x86_64"


def test_extension_details(built: Fixtures) -> None:
    good = inspect_extension(built.abi3_ext)
    assert good.entry_points == ("PyInit_goodabi3",)
    assert good.cpython.intent and good.cpython.compliant and good.cpython.violations == ()
    bad = inspect_extension(built.abi3_bad_ext)
    assert bad.cpython.violations == ("PyCode_Addr2Line", "PyCode_Type", "_PyObject_GetDictPtr")
    foo = inspect_extension(built.versioned)
    assert foo.soname == "libfoo.so.1"
    assert "libm.so.6" in foo.needed
    assert foo.runpath == ("$ORIGIN/../lib",)


def test_bad_files_become_reports_with_errors(built: Fixtures, tmp_path: Path) -> None:
    truncated = tmp_path / "libtrunc.so"
    truncated.write_bytes(built.stable_plugin.read_bytes()[:300])
    text = tmp_path / "notes.so"
    text.write_text("hello")
    empty = tmp_path / "empty.so"
    empty.write_bytes(b"")
    macho = tmp_path / "libx.dylib"
    macho.write_bytes(bytes.fromhex("cffaedfe") + bytes(60))
    assert "truncated" in (inspect_extension(truncated).error or "")
    assert inspect_extension(text).error == "not a shared library (no ELF, Mach-O or PE magic)"
    assert inspect_extension(empty).error == "empty file, not a shared library"
    hollow = inspect_extension(macho)
    assert hollow.error == "Mach-O file type 0, not a shared library or executable"
    assert hollow.torch_label is TorchLabel.ERROR
    missing = inspect_extension(tmp_path / "missing.so")
    assert missing.error is not None and missing.error.startswith("cannot read file")


def test_package_from_directory(built: Fixtures, tmp_path: Path) -> None:
    package = tmp_path / "mixed"
    package.mkdir()
    for source in (built.abi3_ext, built.stable_plugin, built.unstable_lib):
        shutil.copyfile(source, package / source.name)
    report = inspect_package(package)
    assert report.name == "mixed"
    assert report.root == package
    assert [lib.path.name for lib in report.extensions] == ["goodabi3.abi3.so"]
    assert sorted(lib.path.name for lib in report.bundled_libs) == [
        "libstable_plugin.so",
        "libunstable.so",
    ]
    assert report.torch_verdict is TorchVerdict.UNSTABLE
    assert report.cpython_verdict is CPythonVerdict.ABI3_COMPLIANT
    assert not report.has_error


def test_package_verdict_roll_ups(built: Fixtures, tmp_path: Path) -> None:
    stable = tmp_path / "stable"
    stable.mkdir()
    shutil.copyfile(built.stable_plugin, stable / "libp.so")
    shutil.copyfile(built.private_ext, stable / built.private_ext.name)
    shutil.copyfile(built.abi3_ext, stable / built.abi3_ext.name)
    report = inspect_package(stable)
    assert report.torch_verdict is TorchVerdict.STABLE
    assert report.min_torch_version == "2.11.0"
    assert report.cpython_verdict is CPythonVerdict.MIXED
    (tmp_path / "stable" / "libbad.so").write_text("junk")
    errored = inspect_package(stable)
    assert errored.torch_verdict is TorchVerdict.ERROR and errored.has_error
    # One bad file does not hide the others.
    assert {lib.path.name: lib.torch_label for lib in errored.libraries}["libp.so"] == (
        TorchLabel.STABLE
    )


def test_package_by_import_name_is_not_imported(
    fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(fake_site.site))
    for name in ("marker_pkg", "marker_pkg.sub"):
        report = inspect_package(name)
        assert report.name == name
        assert [lib.path.name for lib in report.extensions] == ["_speedups.abi3.so"]
    assert not fake_site.marker.exists()


def test_package_by_import_name_includes_vendored_libs(
    fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(fake_site.site))
    report = inspect_package("fakepkg")
    assert report.distribution is not None
    assert (report.distribution.name, report.distribution.version) == ("fake_dist", "1.2.3")
    names = sorted(lib.path.name for lib in report.libraries)
    assert names == ["_native.abi3.so", "libplugin.so", "libvendored-1a2b3c4d.so.1"]


def test_unknown_name_and_missing_path(tmp_path: Path) -> None:
    unknown = inspect_package("definitely_not_installed_pkg")
    assert unknown.error is not None and "definitely_not_installed_pkg" in unknown.error
    assert unknown.torch_verdict is TorchVerdict.ERROR
    missing = inspect_package(tmp_path / "gone")
    assert missing.error is not None and missing.error.startswith("path does not exist")


def test_site_packages(fake_site: FakeSite) -> None:
    env = inspect_site_packages(fake_site.site)
    assert env.site_packages == fake_site.site
    packages = {p.name: p for p in env.packages}
    assert set(packages) == {"brokenpkg", "fake_dist", "marker_pkg", "orphan", "torchish"}
    assert packages["fake_dist"].torch_verdict is TorchVerdict.UNSTABLE  # fakepkg_extra
    assert packages["torchish"].torch_verdict is TorchVerdict.UNSTABLE
    assert packages["torchish"].distribution is not None
    assert packages["torchish"].distribution.requires_torch == ("torch==2.13.0",)
    assert packages["orphan"].distribution is None
    assert packages["marker_pkg"].torch_verdict is TorchVerdict.NO_TORCH
    broken = packages["brokenpkg"]
    assert broken.torch_verdict is TorchVerdict.ERROR
    errors = {lib.path.name: lib.error for lib in broken.libraries if lib.error}
    assert set(errors) == {"libbroken.so", "notes.so"}
    assert {lib.path.name: lib.torch_label for lib in broken.libraries}["libfine.so"] == (
        TorchLabel.STABLE
    )
    assert env.has_error
    assert not fake_site.marker.exists()


def test_missing_site_directory_is_a_problem(tmp_path: Path) -> None:
    env = inspect_site_packages(tmp_path / "nowhere")
    assert env.packages == ()
    assert [(p.path.name, p.reason) for p in env.problems] == [
        ("nowhere", "directory does not exist")
    ]
    assert env.has_error


def test_parallel_and_serial_agree(fake_site: FakeSite) -> None:
    paths = sorted(fake_site.site.rglob("*.so*"))
    assert len(paths) >= 8
    serial = analyse_libraries(paths, jobs=1)
    parallel = analyse_libraries(paths, jobs=2)
    assert serial == parallel


def test_untagged_extension_with_stable_symbols_is_not_abi3(
    built: Fixtures, tmp_path: Path
) -> None:
    # The limited-API fixture under a version-specific name: its symbols are all stable, but
    # nothing promises abi3, so the row says not-abi3 and the package is not abi3-compliant.
    untagged = tmp_path / "pkg" / "goodabi3.cpython-311-x86_64-linux-gnu.so"
    untagged.parent.mkdir()
    shutil.copyfile(built.abi3_ext, untagged)
    report = inspect_extension(untagged)
    assert report.cpython.compliant and not report.cpython.intent
    assert report.cpython_label is CPythonLabel.NOT_ABI3
    assert inspect_package(untagged.parent).cpython_verdict is CPythonVerdict.NOT_ABI3
