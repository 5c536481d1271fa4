"""The real-world check: every expectation of ``tests/fixtures/real_world.toml`` against the real
wheel (marked ``network``), and the checking logic offline on hand-made reports."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from helpers import real_world as rw
from torch_abi_audit import (
    Distribution,
    ExtensionReport,
    PackageReport,
    Problem,
    TorchAnalysis,
    TorchLabel,
    TorchVerdict,
    inspect_package,
)
from torch_abi_audit.report import TorchReference, WheelReport
from torch_abi_audit.rules.findings import Finding, Severity
from torch_abi_audit.rules.load_prediction import LoadPrediction, LoadStatus
from torch_abi_audit.sources.index import DownloadError, fetch_wheel
from torch_abi_audit.sources.torch_install import locate_installed_torch, torch_version

STABLE = TorchLabel.STABLE
UNSTABLE = TorchLabel.UNSTABLE
FLOOR_MISSING_2_11 = rw.FindingCheck(
    "torch-floor-missing", Severity.WARNING, evidence=(("needs", "2.11.0"),)
)


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


def _expectation(**changes: Any) -> Any:
    expectation = rw.Expectation(
        "fake",
        "1.0",
        TorchVerdict.STABLE,
        libraries=(rw.LibraryCheck("fake/lib*.so", STABLE),),
        library_count=2,
        forbidden_labels=(UNSTABLE,),
        min_torch="2.11.0",
        findings=(FLOOR_MISSING_2_11,),
    )
    return dataclasses.replace(expectation, **changes)


def _stable_pair(wheel: Path) -> tuple[ExtensionReport, ExtensionReport]:
    return _stable(wheel / "fake/liba.so"), _stable(wheel / "fake/libb.so")


def test_matching_report_passes(tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    report = _report(wheel, *_stable_pair(wheel))
    assert rw.check_report(_expectation(), report) == []


def test_wrong_verdict_is_a_failure(tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    report = _report(wheel, _stable(wheel / "fake/liba.so"), _unstable(wheel / "fake/libb.so"))
    failures = rw.check_report(_expectation(), report)
    text = "\n".join(failures)
    assert "verdict: expected torch-stable, got torch-unstable" in text
    # The failing library (by its member path in the wheel) and what makes it unstable.
    assert "expected STABLE: fake/libb.so is UNSTABLE" in text
    assert "at::Tensor::sizes() const" in text
    assert "no library may be fake/libb.so is UNSTABLE" in text
    assert "fake/liba.so" not in text


def test_missing_library_and_count_are_failures(tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    expectation = rw.Expectation(
        "fake",
        "1.0",
        TorchVerdict.UNSTABLE,
        libraries=(rw.LibraryCheck("fake/libz.so", UNSTABLE, min_unstable=5),),
        library_count=1,
    )
    report = _report(wheel, _unstable(wheel / "fake/libz.so"), _stable(wheel / "x.so"), findings=())
    failures = rw.check_report(expectation, report)
    assert failures == [
        "expected 1 libraries, found 2: fake/libz.so, x.so",
        "fake/libz.so: 1 unstable symbols, expected at least 5",
    ]
    empty = rw.check_report(expectation, _report(wheel, findings=()))
    assert "no library matches fake/libz.so" in empty


def test_wrong_finding_code_is_a_failure(tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    unpinned = Finding(
        "torch-unpinned-unstable",
        Severity.ERROR,
        "uses libtorch internals but declares no torch requirement",
        {"requirements": [], "unstable_libraries": ["fake/liba.so"]},
    )
    report = _report(wheel, *_stable_pair(wheel), findings=(unpinned,))
    failures = rw.check_report(_expectation(), report)
    assert failures == [
        "findings: expected torch-floor-missing, got torch-unpinned-unstable (unexpected: "
        "torch-unpinned-unstable: uses libtorch internals but declares no torch requirement)"
    ]


def test_missing_finding_is_a_failure(tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    report = _report(wheel, *_stable_pair(wheel), findings=())
    failures = rw.check_report(_expectation(), report)
    assert failures == ["findings: expected torch-floor-missing, got none"]


def test_extra_finding_is_a_failure(tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    report = _report(wheel, *_stable_pair(wheel), findings=(BUNDLED_NAME, FLOOR))
    failures = rw.check_report(_expectation(), report)
    assert len(failures) == 1
    assert failures[0].startswith(
        "findings: expected torch-floor-missing, "
        "got torch-floor-missing, version-specific-bundled-name (unexpected: "
        "version-specific-bundled-name: "
    )
    # A finding expected twice is not met by one.
    doubled = _expectation(findings=(FLOOR_MISSING_2_11,) * 2)
    report = _report(wheel, *_stable_pair(wheel))
    assert rw.check_report(doubled, report) == [
        "findings: expected torch-floor-missing, torch-floor-missing, got torch-floor-missing"
    ]


def test_findings_are_order_insensitive(tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    expectation = _expectation(
        findings=(
            rw.FindingCheck(
                "version-specific-bundled-name",
                Severity.INFO,
                evidence=(("libraries", "fake/liba.cpython-310-x86_64-linux-gnu.so"),),
            ),
            FLOOR_MISSING_2_11,
        ),
    )
    for findings in ((FLOOR, BUNDLED_NAME), (BUNDLED_NAME, FLOOR)):
        report = _report(wheel, *_stable_pair(wheel), findings=findings)
        assert rw.check_report(expectation, report) == []


def test_finding_severity_and_evidence_are_checked(tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    wrong = Finding(
        "torch-floor-missing",
        Severity.INFO,
        "needs torch>=2.10.0",
        {"requirements": [], "needs": "2.10.0"},
    )
    report = _report(wheel, *_stable_pair(wheel), findings=(wrong,))
    assert rw.check_report(_expectation(), report) == [
        "finding torch-floor-missing: severity info, expected warning",
        "finding torch-floor-missing: evidence needs is '2.10.0', expected to be '2.11.0'",
    ]
    # List evidence must include the value.
    expectation = _expectation(
        findings=(
            FLOOR_MISSING_2_11,
            rw.FindingCheck("version-specific-bundled-name", evidence=(("libraries", "x"),)),
        ),
    )
    report = _report(wheel, *_stable_pair(wheel), findings=(FLOOR, BUNDLED_NAME))
    assert rw.check_report(expectation, report) == [
        "finding version-specific-bundled-name: evidence libraries is "
        "['fake/liba.cpython-310-x86_64-linux-gnu.so'], expected to include 'x'"
    ]


def test_requires_torch_is_checked(tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    expectation = _expectation(requires_torch=("torch==2.9.1",))
    report = _report(wheel, *_stable_pair(wheel), requires_torch=("torch==2.9.1",))
    assert rw.check_report(expectation, report) == []
    report = _report(wheel, *_stable_pair(wheel), requires_torch=("torch>=2.9",))
    assert rw.check_report(expectation, report) == [
        "requires torch: expected ('torch==2.9.1',), got ('torch>=2.9',)"
    ]


def test_wheel_tags_must_name_the_platform(tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    pure = _report(wheel, *_stable_pair(wheel), tags=("py3-none-any",))
    assert rw.check_report(_expectation(), pure) == [
        f"{WHEEL_NAME}: wheel tags py3-none-any name no manylinux_2_28_x86_64 platform"
    ]
    # An older manylinux tag is one the target platform accepts.
    older = _report(wheel, *_stable_pair(wheel), tags=("cp311-cp311-manylinux_2_17_x86_64",))
    assert rw.check_report(_expectation(), older) == []
    untagged = _report(wheel, *_stable_pair(wheel), tags=())
    assert rw.check_report(_expectation(), untagged) == [f"{WHEEL_NAME}: no wheel tags read"]
    unread = dataclasses.replace(
        _report(wheel, *_stable_pair(wheel)), wheel=None, distribution=None
    )
    assert rw.check_report(_expectation(), unread) == [
        "not read as a wheel: the report names no wheel",
        "no distribution metadata read",
    ]


def test_package_error_and_problems_are_failures(tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    report = dataclasses.replace(
        _report(wheel, *_stable_pair(wheel)),
        error="bad zip file",
        problems=(Problem(wheel, "member fake/x.so: truncated"),),
    )
    failures = rw.check_report(_expectation(), report)
    assert failures[:2] == [
        "package error: bad zip file",
        f"cannot scan {wheel}: member fake/x.so: truncated",
    ]


def test_load_expectations_are_checked(tmp_path: Path) -> None:
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
        load=rw.LoadCheck(loads=False, release="2.9.1", message="undefined", missing=("torch_x",)),
    )
    assert rw.check_report(expect_fail, failing) == []
    assert rw.check_report(expect_fail, loading) == [
        "expected not to load on torch 2.9.1, but every library loads",
        "expected missing symbols not reported: torch_x",
    ]
    expect_load = _expectation(load=rw.LoadCheck(loads=True, release="2.9.1"))
    [failure] = rw.check_report(expect_load, failing)
    assert failure.startswith("expected to load on torch 2.9.1: liba.so: will not load")
    unpredicted = rw.check_report(expect_load, _report(wheel, liba, libb))
    assert unpredicted == ["no load prediction was made"]


# -- the data file ---------------------------------------------------------------------------


def test_data_file_format_is_checked(tmp_path: Path) -> None:
    expectations = rw.load_expectations()
    assert len(expectations) >= 20
    ids = [e.test_id for e in expectations]
    assert len(set(ids)) == len(ids), "two expectations would share a test id"
    torchaudio = next(e for e in expectations if e.test_id == "torchaudio-2.11.0-win_amd64")
    assert torchaudio.verdict is TorchVerdict.STABLE
    assert torchaudio.libraries[0].torch_libraries == ("torch_cpu.dll",)
    assert torchaudio.findings[0].evidence == (("needs", "2.10.0"),)
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[expectation]]\nname = "x"\nversion = "1"\nverdict = "torch-stable"\nfoo = 1\n'
    )
    with pytest.raises(rw.ExpectationError, match=r"expectation 1 \(x 1\): unknown key\(s\) foo"):
        rw.load_expectations(bad)
    bad.write_text(
        '[[expectation]]\nname = "x"\nversion = "1"\nverdict = "torch-stable"\n'
        '[[expectation.library]]\npattern = "*.so"\nlabel = "STABEL"\n'
    )
    with pytest.raises(rw.ExpectationError, match="STABEL"):
        rw.load_expectations(bad)
    bad.write_text('expectation = "no"\nother = 1\n')
    with pytest.raises(rw.ExpectationError, match="unknown top-level key"):
        rw.load_expectations(bad)
    bad.write_text("[[expectation]\n")
    with pytest.raises(tomllib.TOMLDecodeError):
        rw.load_expectations(bad)


# -- the real wheels -------------------------------------------------------------------------


def _fetch(name: str, version: str, platforms: tuple[str, ...], python_version: str) -> Path:
    try:
        return fetch_wheel(name, version, platforms=platforms, python_version=python_version)
    except DownloadError as exc:
        pytest.fail(str(exc))


def _audit_wheel(expectation: rw.Expectation) -> PackageReport:
    wheel = _fetch(
        expectation.name, expectation.version, expectation.platforms, expectation.python_version
    )
    check = expectation.load
    if check is None:
        return inspect_package(wheel)
    if check.release is not None:
        return inspect_package(wheel, torch_version=check.release)
    if check.installed:
        return inspect_package(wheel, torch=_installed_torch_dir())
    assert check.torch_wheel is not None
    platforms = check.torch_platforms or expectation.platforms
    torch = _fetch("torch", check.torch_wheel, platforms, expectation.python_version)
    return inspect_package(wheel, torch=torch)


def _installed_torch_dir(release: str | None = None) -> Path:
    search = locate_installed_torch()
    if search.package is None:
        pytest.skip(f"torch is not installed (looked in {search.searched})")
    found = torch_version(search.package)
    if release is not None and (
        found is None or Version(found).release != Version(release).release
    ):
        pytest.skip(f"found torch {found} at {search.package}; the expectation is for {release}")
    return search.package


@pytest.mark.network
@pytest.mark.parametrize("expectation", rw.load_expectations(), ids=lambda e: e.test_id)
def test_real_world(expectation: rw.Expectation) -> None:
    """Audit the real wheel (or the installed torch) and check it against the expectation."""
    if expectation.source is rw.Source.INSTALLED_TORCH:
        report = inspect_package(_installed_torch_dir(expectation.version))
    else:
        report = _audit_wheel(expectation)
    assert rw.check_report(expectation, report) == []
