"""``scripts/check_real_world.py``: the real-wheel check, and its expectation logic offline."""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from torch_abi_audit import (
    ExtensionReport,
    PackageReport,
    TorchAnalysis,
    TorchVerdict,
)

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_real_world.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    """The script loaded as a module (it is not importable from a package)."""
    spec = importlib.util.spec_from_file_location("check_real_world", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before running it, so its dataclasses can resolve their own module.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _stable(path: Path) -> ExtensionReport:
    analysis = TorchAnalysis(
        uses_torch=True,
        stable=True,
        stable_shim_count=3,
        stable_shims=("aoti_torch_a", "aoti_torch_b", "aoti_torch_c"),
        min_torch_version="2.11.0",
    )
    return ExtensionReport(path, torch=analysis)


def _unstable(path: Path) -> ExtensionReport:
    analysis = TorchAnalysis(
        uses_torch=True,
        stable=False,
        unstable_symbols=("at::Tensor::sizes() const",),
        stable_shim_count=1,
        stable_shims=("aoti_torch_a",),
        min_torch_version="2.9.0",
    )
    return ExtensionReport(path, torch=analysis)


def _report(root: Path, *libraries: ExtensionReport) -> PackageReport:
    return PackageReport(name="fake", root=root, bundled_libs=libraries)


def _expectation(script: ModuleType) -> object:
    return script.Expectation(
        "fake",
        "1.0",
        TorchVerdict.STABLE,
        libraries=(script.LibraryCheck("fake/lib*.so", script.STABLE),),
        library_count=2,
        forbidden_labels=(script.UNSTABLE,),
        min_torch="2.11.0",
    )


def test_matching_report_passes(script: ModuleType, tmp_path: Path) -> None:
    report = _report(
        tmp_path, _stable(tmp_path / "fake/liba.so"), _stable(tmp_path / "fake/libb.so")
    )
    assert script.check_report(_expectation(script), report, tmp_path) == []


def test_wrong_verdict_is_a_failure(script: ModuleType, tmp_path: Path) -> None:
    report = _report(
        tmp_path, _stable(tmp_path / "fake/liba.so"), _unstable(tmp_path / "fake/libb.so")
    )
    failures = script.check_report(_expectation(script), report, tmp_path)
    text = "\n".join(failures)
    assert "verdict: expected torch-stable, got torch-unstable" in text
    # The failing library and the symbol that makes it unstable are named.
    assert "expected STABLE: fake/libb.so is UNSTABLE" in text
    assert "at::Tensor::sizes() const" in text
    assert "no library may be fake/libb.so is UNSTABLE" in text
    assert "fake/liba.so" not in text


def test_missing_library_and_count_are_failures(script: ModuleType, tmp_path: Path) -> None:
    expectation = script.Expectation(
        "fake",
        "1.0",
        TorchVerdict.UNSTABLE,
        libraries=(script.LibraryCheck("fake/libz.so", script.UNSTABLE, min_unstable=5),),
        library_count=1,
    )
    report = _report(tmp_path, _unstable(tmp_path / "fake/libz.so"), _stable(tmp_path / "x.so"))
    failures = script.check_report(expectation, report, tmp_path)
    assert failures == [
        "expected 1 libraries, found 2: fake/libz.so, x.so",
        "fake/libz.so: 1 unstable symbols, expected at least 5",
    ]
    empty = script.check_report(expectation, _report(tmp_path), tmp_path)
    assert "no library matches fake/libz.so" in empty


def test_unpack_rejects_parent_paths(script: ModuleType, tmp_path: Path) -> None:
    wheel = tmp_path / "evil-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("evil/__init__.py", "")
        archive.writestr("evil/../../escape.so", "")
    with pytest.raises(script.WheelError, match="unsafe member"):
        script.unpack_wheel(wheel, tmp_path / "out")
    assert not (tmp_path / "escape.so").exists()


def test_cached_wheel_must_match_platform(script: ModuleType, tmp_path: Path) -> None:
    for name in (
        "fake-1.0-cp311-cp311-macosx_11_0_arm64.whl",
        "fake-1.0-cp312-cp312-manylinux_2_28_x86_64.whl",
        "fake-1.0-cp310-abi3-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
    ):
        (tmp_path / name).touch()
    expectation = script.Expectation("fake", "1.0", TorchVerdict.STABLE)
    found = script.find_cached_wheel(tmp_path, expectation)
    assert found == tmp_path / "fake-1.0-cp310-abi3-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl"


@pytest.mark.network
def test_real_world_wheels(script: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    """Download (or reuse) the real wheels and check every expectation."""
    code = script.main([])
    assert code == 0, capsys.readouterr().out
