"""``scripts/check_real_world.py``: the real-wheel check, and its expectation logic offline."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from torch_abi_audit import (
    Distribution,
    ExtensionReport,
    PackageReport,
    Problem,
    TorchAnalysis,
    TorchVerdict,
)
from torch_abi_audit.report import TorchReference, WheelReport
from torch_abi_audit.rules.findings import Finding, Severity
from torch_abi_audit.rules.load_prediction import LoadPrediction, LoadStatus

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


WHEEL_NAME = "fake-1.0-cp311-cp311-manylinux_2_28_x86_64.whl"
FLOOR = Finding(
    "torch-floor-missing",
    Severity.WARNING,
    "needs torch>=2.11.0 but declares no torch requirement",
    {"requirements": [], "needs": "2.11.0", "set_by": ["torch_dtype_float8_e8m0fnu"]},
)
BUNDLED_NAME = Finding(
    "version-specific-bundled-name",
    Severity.INFO,
    "tagged abi3; fake/liba.cpython-310-x86_64-linux-gnu.so: Python-version file name",
    {
        "tags": ["cp310-abi3-manylinux_2_28_x86_64"],
        "libraries": ["fake/liba.cpython-310-x86_64-linux-gnu.so"],
    },
)


def _report(
    wheel: Path,
    *libraries: ExtensionReport,
    findings: tuple[Finding, ...] = (FLOOR,),
    tags: tuple[str, ...] = ("cp311-cp311-manylinux_2_28_x86_64",),
    requires_torch: tuple[str, ...] = (),
) -> PackageReport:
    """A report of ``wheel`` as ``inspect_package`` gives it: libraries under the wheel path."""
    return PackageReport(
        name="fake",
        root=wheel,
        bundled_libs=libraries,
        distribution=Distribution("fake", "1.0", requires_torch, tags),
        wheel=WheelReport(wheel, wheel.name, tags),
        findings=findings,
    )


def _expectation(script: ModuleType, **changes: Any) -> Any:
    expectation = script.Expectation(
        "fake",
        "1.0",
        TorchVerdict.STABLE,
        libraries=(script.LibraryCheck("fake/lib*.so", script.STABLE),),
        library_count=2,
        forbidden_labels=(script.UNSTABLE,),
        min_torch="2.11.0",
        findings=(script.FLOOR_MISSING_2_11,),
    )
    return dataclasses.replace(expectation, **changes)


def _stable_pair(wheel: Path) -> tuple[ExtensionReport, ExtensionReport]:
    return _stable(wheel / "fake/liba.so"), _stable(wheel / "fake/libb.so")


def test_matching_report_passes(script: ModuleType, tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    report = _report(wheel, *_stable_pair(wheel))
    assert script.check_report(_expectation(script), report) == []


def test_wrong_verdict_is_a_failure(script: ModuleType, tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    report = _report(wheel, _stable(wheel / "fake/liba.so"), _unstable(wheel / "fake/libb.so"))
    failures = script.check_report(_expectation(script), report)
    text = "\n".join(failures)
    assert "verdict: expected torch-stable, got torch-unstable" in text
    # The failing library (by its member path in the wheel) and what makes it unstable.
    assert "expected STABLE: fake/libb.so is UNSTABLE" in text
    assert "at::Tensor::sizes() const" in text
    assert "no library may be fake/libb.so is UNSTABLE" in text
    assert "fake/liba.so" not in text


def test_missing_library_and_count_are_failures(script: ModuleType, tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    expectation = script.Expectation(
        "fake",
        "1.0",
        TorchVerdict.UNSTABLE,
        libraries=(script.LibraryCheck("fake/libz.so", script.UNSTABLE, min_unstable=5),),
        library_count=1,
    )
    report = _report(wheel, _unstable(wheel / "fake/libz.so"), _stable(wheel / "x.so"), findings=())
    failures = script.check_report(expectation, report)
    assert failures == [
        "expected 1 libraries, found 2: fake/libz.so, x.so",
        "fake/libz.so: 1 unstable symbols, expected at least 5",
    ]
    empty = script.check_report(expectation, _report(wheel, findings=()))
    assert "no library matches fake/libz.so" in empty


def test_wrong_finding_code_is_a_failure(script: ModuleType, tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    unpinned = Finding(
        "torch-unpinned-unstable",
        Severity.ERROR,
        "uses libtorch internals but declares no torch requirement",
        {"requirements": [], "unstable_libraries": ["fake/liba.so"]},
    )
    report = _report(wheel, *_stable_pair(wheel), findings=(unpinned,))
    failures = script.check_report(_expectation(script), report)
    assert failures == [
        "findings: expected torch-floor-missing, got torch-unpinned-unstable (unexpected: "
        "torch-unpinned-unstable: uses libtorch internals but declares no torch requirement)"
    ]


def test_missing_finding_is_a_failure(script: ModuleType, tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    report = _report(wheel, *_stable_pair(wheel), findings=())
    failures = script.check_report(_expectation(script), report)
    assert failures == ["findings: expected torch-floor-missing, got none"]


def test_extra_finding_is_a_failure(script: ModuleType, tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    report = _report(wheel, *_stable_pair(wheel), findings=(BUNDLED_NAME, FLOOR))
    failures = script.check_report(_expectation(script), report)
    assert len(failures) == 1
    assert failures[0].startswith(
        "findings: expected torch-floor-missing, "
        "got torch-floor-missing, version-specific-bundled-name (unexpected: "
        "version-specific-bundled-name: "
    )
    # A finding expected twice is not met by one.
    doubled = _expectation(script, findings=(script.FLOOR_MISSING_2_11,) * 2)
    report = _report(wheel, *_stable_pair(wheel))
    assert script.check_report(doubled, report) == [
        "findings: expected torch-floor-missing, torch-floor-missing, got torch-floor-missing"
    ]


def test_findings_are_order_insensitive(script: ModuleType, tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    expectation = _expectation(
        script,
        findings=(
            script.FindingCheck(
                "version-specific-bundled-name",
                Severity.INFO,
                evidence=(("libraries", "fake/liba.cpython-310-x86_64-linux-gnu.so"),),
            ),
            script.FLOOR_MISSING_2_11,
        ),
    )
    for findings in ((FLOOR, BUNDLED_NAME), (BUNDLED_NAME, FLOOR)):
        report = _report(wheel, *_stable_pair(wheel), findings=findings)
        assert script.check_report(expectation, report) == []


def test_finding_severity_and_evidence_are_checked(script: ModuleType, tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    wrong = Finding(
        "torch-floor-missing",
        Severity.INFO,
        "needs torch>=2.10.0",
        {"requirements": [], "needs": "2.10.0"},
    )
    report = _report(wheel, *_stable_pair(wheel), findings=(wrong,))
    assert script.check_report(_expectation(script), report) == [
        "finding torch-floor-missing: severity info, expected warning",
        "finding torch-floor-missing: evidence needs is '2.10.0', expected to be '2.11.0'",
    ]
    # List evidence must include the value.
    expectation = _expectation(
        script,
        findings=(
            script.FLOOR_MISSING_2_11,
            script.FindingCheck("version-specific-bundled-name", evidence=(("libraries", "x"),)),
        ),
    )
    report = _report(wheel, *_stable_pair(wheel), findings=(FLOOR, BUNDLED_NAME))
    assert script.check_report(expectation, report) == [
        "finding version-specific-bundled-name: evidence libraries is "
        "['fake/liba.cpython-310-x86_64-linux-gnu.so'], expected to include 'x'"
    ]


def test_requires_torch_is_checked(script: ModuleType, tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    expectation = _expectation(script, requires_torch=("torch==2.9.1",))
    report = _report(wheel, *_stable_pair(wheel), requires_torch=("torch==2.9.1",))
    assert script.check_report(expectation, report) == []
    report = _report(wheel, *_stable_pair(wheel), requires_torch=("torch>=2.9",))
    assert script.check_report(expectation, report) == [
        "requires torch: expected ('torch==2.9.1',), got ('torch>=2.9',)"
    ]


def test_wheel_tags_must_name_the_platform(script: ModuleType, tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    pure = _report(wheel, *_stable_pair(wheel), tags=("py3-none-any",))
    assert script.check_report(_expectation(script), pure) == [
        f"{WHEEL_NAME}: wheel tags py3-none-any name no manylinux_2_28_x86_64 platform"
    ]
    # An older manylinux tag is one the target platform accepts.
    older = _report(wheel, *_stable_pair(wheel), tags=("cp311-cp311-manylinux_2_17_x86_64",))
    assert script.check_report(_expectation(script), older) == []
    untagged = _report(wheel, *_stable_pair(wheel), tags=())
    assert script.check_report(_expectation(script), untagged) == [
        f"{WHEEL_NAME}: no wheel tags read"
    ]
    unread = dataclasses.replace(
        _report(wheel, *_stable_pair(wheel)), wheel=None, distribution=None
    )
    assert script.check_report(_expectation(script), unread) == [
        "not read as a wheel: the report names no wheel",
        "no distribution metadata read",
    ]


def test_package_error_and_problems_are_failures(script: ModuleType, tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    report = dataclasses.replace(
        _report(wheel, *_stable_pair(wheel)),
        error="bad zip file",
        problems=(Problem(wheel, "member fake/x.so: truncated"),),
    )
    failures = script.check_report(_expectation(script), report)
    assert failures[:2] == [
        "package error: bad zip file",
        f"cannot scan {wheel}: member fake/x.so: truncated",
    ]


def test_load_expectations_are_checked(script: ModuleType, tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    liba, libb = _stable_pair(wheel)
    fails = LoadPrediction(
        "torch 2.9.1",
        LoadStatus.FAILS,
        "will not load with torch 2.9.1: undefined symbol: torch_x",
        undefined_symbols=("torch_x",),
    )
    loads = LoadPrediction("torch 2.9.1", LoadStatus.LOADS, "loads with torch 2.9.1")
    reference = TorchReference("torch 2.9.1", "2.9.1", None, "--torch")
    failing = dataclasses.replace(
        _report(
            wheel, dataclasses.replace(liba, load=fails), dataclasses.replace(libb, load=loads)
        ),
        torch_reference=reference,
    )
    loading = dataclasses.replace(
        _report(
            wheel, dataclasses.replace(liba, load=loads), dataclasses.replace(libb, load=loads)
        ),
        torch_reference=reference,
    )
    expect_fail = _expectation(
        script,
        load=script.LoadCheck(
            loads=False, release="2.9.1", message="undefined", missing=("torch_x",)
        ),
    )
    assert script.check_report(expect_fail, failing) == []
    assert script.check_report(expect_fail, loading) == [
        "expected not to load on torch 2.9.1, but every library loads",
        "expected missing symbols not reported: torch_x",
    ]
    expect_load = _expectation(script, load=script.LoadCheck(loads=True, release="2.9.1"))
    [failure] = script.check_report(expect_load, failing)
    assert failure.startswith("expected to load on torch 2.9.1: liba.so: will not load")
    unpredicted = script.check_report(expect_load, _report(wheel, liba, libb))
    assert unpredicted == ["no load prediction was made"]


def test_verbose_rows_show_tags_and_findings(script: ModuleType, tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    rows = script.metadata_rows(_report(wheel, *_stable_pair(wheel), findings=(FLOOR,)))
    assert rows == [
        "tags: cp311-cp311-manylinux_2_28_x86_64",
        "metadata: fake 1.0, requires torch: none",
        "finding warning torch-floor-missing: "
        "needs torch>=2.11.0 but declares no torch requirement",
    ]
    assert script.metadata_rows(_report(wheel, findings=()))[-1] == "findings: none"


@pytest.mark.network
def test_real_world_wheels(script: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    """Download (or reuse) the real wheels and check every expectation."""
    code = script.main([])
    assert code == 0, capsys.readouterr().out
