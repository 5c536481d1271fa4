"""Packaging-metadata checks: torch requirements against the libraries, tags against contents."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from torch_abi_audit.rules import metadata_checks
from torch_abi_audit.rules.cpython_abi import CPythonAnalysis
from torch_abi_audit.rules.facts import LibraryFacts, PackageFacts, RuleContext
from torch_abi_audit.rules.findings import Finding, Severity
from torch_abi_audit.rules.metadata_checks import (
    declared_floor,
    is_version_specific,
    pinned_release,
)
from torch_abi_audit.rules.torch_abi import TorchAnalysis

CONTEXT = RuleContext()


def torch_requirement_findings(
    package: str, libraries: Sequence[LibraryFacts], requirements: Sequence[str]
) -> list[Finding]:
    facts = PackageFacts(
        package, tuple(libraries), tuple(requirements), is_torch=package == "torch"
    )
    return metadata_checks.torch_requirement_findings(facts, CONTEXT)


def tag_findings(tags: Sequence[str], libraries: Sequence[LibraryFacts]) -> list[Finding]:
    """The wheel-tag rules (ABI tags and macOS tags) on one package."""
    facts = PackageFacts("pkg", tuple(libraries), tags=tuple(tags))
    return metadata_checks.tag_findings(facts, CONTEXT) + metadata_checks.macos_tag_findings(
        facts, CONTEXT
    )


STABLE_2_11 = TorchAnalysis(
    uses_torch=True,
    stable=True,
    stable_shim_count=3,
    min_torch_version="2.11.0",
    min_torch_symbols=("torch_dtype_float8_e8m0fnu",),
)
STABLE_2_10 = TorchAnalysis(
    uses_torch=True,
    stable=True,
    stable_shim_count=1,
    min_torch_version="2.10.0",
    min_torch_symbols=("torch_library_impl",),
)
UNSTABLE = TorchAnalysis(uses_torch=True, stable=False, unstable_symbols=("c10::x()",))
NO_TORCH = TorchAnalysis()
CAPI = CPythonAnalysis(intent=False, compliant=True, capi_symbol_count=4)
NO_CAPI = CPythonAnalysis()


def lib(
    name: str, torch: TorchAnalysis, *, extension: bool = False, capi: bool = False
) -> LibraryFacts:
    return LibraryFacts(name, extension, torch, CAPI if capi else NO_CAPI)


@pytest.mark.parametrize(
    ("requirements", "pinned"),
    [
        (["torch==2.9.1"], "2.9"),
        (["torch (==2.2.2)"], "2.2"),  # torchaudio 2.2.2's, old-style parentheses
        (["torch==2.13.0+cpu"], "2.13"),
        (["torch==2.9.*"], "2.9"),
        (["torch~=2.9.1"], "2.9"),
        (["torch>=2.9.1,<2.10"], "2.9"),
        (["torch===2.9.1"], "2.9"),
        (["torch>=2.9"], None),
        (["torch~=2.9"], None),
        (["torch"], None),
        (["torch<3"], None),
        ([], None),
        (["torch>=2.9,<2.11"], None),
    ],
)
def test_pinned_release(requirements: list[str], pinned: str | None) -> None:
    assert pinned_release(requirements) == pinned


@pytest.mark.parametrize(
    ("requirements", "floor"),
    [
        (["torch>=2.9"], "2.9"),
        (["torch>=2.9", "torch>2.10.1; python_version >= '3.12'"], "2.10.1"),
        (["torch==2.11.0"], "2.11.0"),
        (["torch<3"], None),
        (["torch"], None),
    ],
)
def test_declared_floor(requirements: list[str], floor: str | None) -> None:
    assert declared_floor(requirements) == floor


def test_unstable_without_a_pin_is_an_error() -> None:
    libraries = [lib("pkg/libcore.so", UNSTABLE), lib("pkg/libops.so", STABLE_2_11)]
    (finding,) = torch_requirement_findings("pkg", libraries, [])
    assert finding.code == "torch-unpinned-unstable"
    assert finding.severity is Severity.ERROR and finding.fails_check
    assert finding.evidence["unstable_libraries"] == ["pkg/libcore.so"]
    assert finding.libraries == ()  # about the package's metadata, not a library
    assert "declares no torch requirement" in finding.message
    (loose,) = torch_requirement_findings("pkg", libraries, ["torch>=2.9"])
    assert "which admits more than one torch release" in loose.message
    assert torch_requirement_findings("pkg", libraries, ["torch==2.9.1"]) == []


def test_stable_floor_missing_and_too_low() -> None:
    libraries = [lib("a.so", STABLE_2_10), lib("b.so", STABLE_2_11), lib("c.so", NO_TORCH)]
    (missing,) = torch_requirement_findings("pkg", libraries, [])
    assert missing.code == "torch-floor-missing" and missing.severity is Severity.WARNING
    assert missing.evidence["needs"] == "2.11.0"
    # Only the shims of the libraries at the floor explain it.
    assert missing.evidence["set_by"] == ["torch_dtype_float8_e8m0fnu"]
    assert "declare Requires-Dist: torch>=2.11.0" in missing.message
    (unbounded,) = torch_requirement_findings("pkg", libraries, ["torch<3"])
    assert unbounded.code == "torch-floor-missing"
    (low,) = torch_requirement_findings("pkg", libraries, ["torch>=2.9"])
    assert low.code == "torch-floor-too-low" and low.evidence["declared_floor"] == "2.9"
    assert torch_requirement_findings("pkg", libraries, ["torch>=2.11"]) == []


def test_stable_but_pinned_is_information() -> None:
    (finding,) = torch_requirement_findings("pkg", [lib("a.so", STABLE_2_10)], ["torch==2.12.0"])
    assert finding.code == "torch-over-pinned" and finding.severity is Severity.INFO
    assert not finding.fails_check
    assert "the ABI allows torch>=2.10.0" in finding.message


def test_no_torch_use_and_torch_itself_are_not_checked() -> None:
    assert torch_requirement_findings("pkg", [lib("a.so", NO_TORCH)], []) == []
    assert torch_requirement_findings("torch", [lib("libtorch_cpu.so", UNSTABLE)], []) == []


@pytest.mark.parametrize(
    ("name", "specific"),
    [
        ("pkg/_C.cpython-311-x86_64-linux-gnu.so", True),
        ("pkg/_C.cpython-313t-darwin.so", True),
        ("pkg/_C.cp311-win_amd64.pyd", True),
        ("pkg/_C.abi3.so", False),
        ("pkg/libtorch_cpu.so", False),
        ("pkg/_C.pyd", False),
    ],
)
def test_version_specific_names(name: str, specific: bool) -> None:
    assert is_version_specific(name) is specific


def test_abi3_wheel_with_a_version_specific_extension() -> None:
    tags = ["cp310-abi3-manylinux_2_28_x86_64"]
    libraries = [
        lib("pkg/_ext.cpython-310-x86_64-linux-gnu.so", NO_TORCH, extension=True, capi=True),
        lib("pkg/_ops.cpython-310-x86_64-linux-gnu.so", STABLE_2_11),
        lib("pkg/_good.abi3.so", NO_TORCH, extension=True, capi=True),
    ]
    codes = {f.code: f for f in tag_findings(tags, libraries)}
    assert set(codes) == {"abi3-version-specific-extension", "version-specific-bundled-name"}
    assert codes["abi3-version-specific-extension"].severity is Severity.ERROR
    assert codes["abi3-version-specific-extension"].evidence["libraries"] == [
        "pkg/_ext.cpython-310-x86_64-linux-gnu.so"
    ]
    assert codes["abi3-version-specific-extension"].libraries == (
        "pkg/_ext.cpython-310-x86_64-linux-gnu.so",
    )
    assert codes["version-specific-bundled-name"].severity is Severity.INFO
    # A version-specific wheel may carry version-specific names.
    assert tag_findings(["cp310-cp310-manylinux_2_28_x86_64"], libraries) == []


def test_none_abi_platform_wheel_using_the_capi() -> None:
    libraries = [lib("pkg/_ext.so", NO_TORCH, extension=True, capi=True)]
    (finding,) = tag_findings(["py3-none-manylinux_2_28_x86_64"], libraries)
    assert finding.code == "none-abi-uses-capi" and finding.severity is Severity.WARNING
    # A plugin without CPython use is fine in a py3-none wheel, and "any" wheels are not judged.
    assert tag_findings(["py3-none-manylinux_2_28_x86_64"], [lib("x.so", STABLE_2_10)]) == []
    assert tag_findings(["py3-none-any"], libraries) == []
    assert tag_findings([], libraries) == []


def mach_o(name: str, *floors: tuple[str, str], needed: tuple[str, ...] = ()) -> LibraryFacts:
    return LibraryFacts(name, False, NO_TORCH, NO_CAPI, needed, floors)


@pytest.mark.parametrize(
    ("tags", "floors", "late"),
    [
        # universal2 at 10.9: x86_64 must run on 10.9; arm64 Macs start at 11.0 anyway
        (["cp311-abi3-macosx_10_9_universal2"], [("x86_64", "10.13")], ["x86_64"]),
        (["cp311-abi3-macosx_10_9_universal2"], [("arm64", "11.0")], []),
        (["cp311-abi3-macosx_10_9_universal2"], [("arm64", "11.1")], ["arm64"]),
        (["cp311-cp311-macosx_11_0_arm64"], [("arm64", "12.1")], ["arm64"]),
        (["cp311-cp311-macosx_14_0_arm64"], [("arm64", "12.1")], []),
        # several tags: the oldest one that covers an architecture is the promise
        (
            ["cp311-cp311-macosx_10_9_x86_64", "cp311-cp311-macosx_11_0_arm64"],
            [("x86_64", "10.9"), ("arm64", "11.0")],
            [],
        ),
        (["cp311-cp311-macosx_10_9_intel"], [("i386", "10.9"), ("x86_64", "10.10")], ["x86_64"]),
        # an architecture no tag covers, or a Linux wheel: nothing to compare with
        (["cp311-cp311-macosx_11_0_arm64"], [("x86_64", "13.0")], []),
        (["cp311-cp311-manylinux_2_28_x86_64"], [("x86_64", "13.0")], []),
    ],
)
def test_minimum_macos_against_the_tags(
    tags: list[str], floors: list[tuple[str, str]], late: list[str]
) -> None:
    findings = tag_findings(tags, [mach_o("pkg/_ext.so", *floors)])
    found = [f for f in findings if f.code == "macos-version-above-tag"]
    if not late:
        assert found == []
        return
    [finding] = found
    assert finding.severity is Severity.WARNING
    libraries = finding.evidence["libraries"]
    assert isinstance(libraries, list)
    assert [entry.split("(")[1].split(")")[0] for entry in libraries] == late


def test_abi3_wheel_with_an_extension_linked_to_one_python() -> None:
    linked = CPythonAnalysis(
        intent=False, capi_symbol_count=2, python_library="python311.dll", python_version="3.11"
    )
    stable = CPythonAnalysis(intent=True, compliant=True, python_library="python3.dll")
    libraries = [
        LibraryFacts("pkg/_a.pyd", True, NO_TORCH, linked),
        LibraryFacts("pkg/_b.pyd", True, NO_TORCH, stable),
    ]
    [finding] = tag_findings(["cp311-abi3-win_amd64"], libraries)
    assert finding.code == "abi3-version-specific-extension"
    assert finding.evidence["libraries"] == ["pkg/_a.pyd"]
    assert finding.evidence["python_libraries"] == ["python311.dll"]
    assert tag_findings(["cp311-cp311-win_amd64"], libraries) == []
