"""macOS and Windows wheels end to end: hand-made Mach-O and PE libraries packed into wheels with
real platform tags, audited through the public API and the command line.

What is checked here is what the data of those formats adds to the Linux story: imports bound to
a libtorch library, ``python3.dll`` versus ``python311.dll``, the slices of a universal binary
and their minimum macOS, a vendored ``libpython``.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from helpers.macho_builder import (
    CPU_TYPE_ARM64,
    LC_LOAD_DYLIB,
    undefined,
)
from helpers.platform_wheels import (
    C10,
    CHECK_FAIL_ITANIUM,
    CHECK_FAIL_MSVC,
    NEWER_SHIM,
    SHIM,
    TORCH_CPU,
    dylib,
    write_mac_wheel,
    write_windows_wheel,
)
from torch_abi_audit import (
    CPythonLabel,
    LibraryKind,
    TorchLabel,
    TorchVerdict,
    inspect_extension,
    inspect_package,
)
from torch_abi_audit.cli import main
from torch_abi_audit.renderers.json_report import load_schema
from torch_abi_audit.report import ExtensionReport, PackageReport
from torch_abi_audit.rules.torch_abi import UnstableReason


def by_name(report: PackageReport) -> dict[str, ExtensionReport]:
    return {lib.path.name: lib for lib in report.libraries}


# --- Windows -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def windows_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_windows_wheel(tmp_path_factory.mktemp("win"))


def test_windows_imports_are_judged_by_the_dll_they_come_from(windows_wheel: Path) -> None:
    report = inspect_package(windows_wheel, jobs=1)
    libs = by_name(report)
    ops = libs["ops.dll"]
    assert (ops.format, ops.machine) == ("pe", "x86_64")
    assert ops.torch_label is TorchLabel.STABLE
    assert ops.torch.stable_shims == (SHIM, NEWER_SHIM)
    assert ops.torch.torch_libraries == ("torch_cpu.dll",)
    assert ops.torch.min_torch_version is not None and ops.torch.min_torch_version != "2.9.0"
    legacy = libs["legacy.dll"]
    assert legacy.torch_label is TorchLabel.UNSTABLE
    assert legacy.torch.torch_libraries == ("c10.dll", "torch_cpu.dll")
    reasons = {u.symbol: (u.reason, u.library) for u in legacy.torch.unstable_details}
    assert reasons == {
        CHECK_FAIL_MSVC: (UnstableReason.NAMESPACE, "c10.dll"),
        "c10_private_c_function": (UnstableReason.LIBRARY, "c10.dll"),
    }
    [check_fail] = [u for u in legacy.torch.unstable_details if u.symbol == CHECK_FAIL_MSVC]
    assert check_fail.demangled.startswith("void __cdecl c10::detail::torchCheckFail(")
    assert report.torch_verdict is TorchVerdict.UNSTABLE


def test_windows_python_library_decides_abi3(windows_wheel: Path) -> None:
    report = inspect_package(windows_wheel, jobs=1)
    libs = by_name(report)
    stable = libs["_stable.pyd"]
    assert stable.kind is LibraryKind.EXTENSION
    assert stable.cpython.python_library == "python3.dll" and stable.cpython.python_version is None
    assert stable.cpython_label is CPythonLabel.ABI3_OK  # no abi3 in the name: python3.dll says it
    versioned = libs["_versioned.pyd"]
    assert versioned.cpython.python_version == "3.11"
    assert versioned.cpython_label is CPythonLabel.USES_PRIVATE_API
    assert versioned.cpython.violations == ("_PyLong_AsByteArray",)
    [finding] = [f for f in report.findings if f.code == "abi3-version-specific-extension"]
    assert finding.evidence["libraries"] == ["winpkg/_versioned.pyd"]
    assert finding.evidence["python_libraries"] == ["python311.dll"]
    assert "linked to python311.dll" in finding.message


def test_windows_rows_name_the_torch_dlls(
    windows_wheel: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(windows_wheel), "-v"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    [ops] = [line for line in lines if line.endswith("torch-libs=torch_cpu.dll")]
    assert ops.startswith(
        "    [STABLE  ] [not-abi3              ] winpkg/lib/ops.dll  (stable_shim=2"
    )
    legacy = next(i for i, line in enumerate(lines) if "winpkg/lib/legacy.dll" in line)
    assert lines[legacy].endswith("torch-libs=c10.dll,torch_cpu.dll")
    # C++ entities first, then names judged by the library they bind to.
    assert lines[legacy + 1 : legacy + 3] == [
        "        torch unstable: void __cdecl c10::detail::torchCheckFail(char const *, char const "
        "*, unsigned int, class std::basic_string<char, struct std::char_traits<char>, class "
        "std::allocator<char>> const &)  [c10.dll]",
        "        torch unstable: c10_private_c_function  <- imported from c10.dll, outside the "
        "stable shim",
    ]
    assert any(line.startswith("    [error] abi3-version-specific-extension:") for line in lines)


# --- macOS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mac_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mac_wheel(tmp_path_factory.mktemp("mac"))


def test_universal_binary_is_judged_per_slice(mac_wheel: Path) -> None:
    report = inspect_package(mac_wheel, jobs=1)
    ext = by_name(report)["_ext.abi3.so"]
    assert (ext.format, ext.machine, ext.min_os) == ("mach-o", "arm64+x86_64", "11.0")
    assert ext.kind is LibraryKind.EXTENSION
    # The library's verdict is the worst across its slices.
    assert ext.torch_label is TorchLabel.STABLE and ext.torch.stable_shims == (SHIM,)
    assert ext.cpython_label is CPythonLabel.ABI3_OK
    slices = {s.machine: s for s in ext.slices}
    assert list(slices) == ["x86_64", "arm64"]
    assert slices["x86_64"].torch_label is TorchLabel.NO_TORCH
    assert slices["x86_64"].min_os == "10.13"
    assert slices["arm64"].torch_label is TorchLabel.STABLE
    assert slices["arm64"].torch.torch_libraries == (TORCH_CPU,)
    assert slices["arm64"].torch.min_torch_version == ext.torch.min_torch_version


def test_mach_o_bindings_and_findings(mac_wheel: Path) -> None:
    report = inspect_package(mac_wheel, jobs=1)
    libs = by_name(report)
    legacy = libs["liblegacy.dylib"]
    assert legacy.torch_label is TorchLabel.UNSTABLE
    assert {(u.symbol, u.reason, u.library) for u in legacy.torch.unstable_details} == {
        (CHECK_FAIL_ITANIUM, UnstableReason.NAMESPACE, C10),
        ("c10_private_c_function", UnstableReason.LIBRARY, C10),
    }
    linked = libs["_linked.abi3.so"]
    assert linked.cpython.python_version == "3.11"
    assert linked.cpython_label is CPythonLabel.ABI3_TAGGED_VIOLATIONS
    findings = {f.code: f for f in report.findings}
    assert sorted(findings) == [
        "abi3-not-free-threaded",
        "abi3-tagged-violations",  # _linked.abi3.so's row label, for the abi3 gate
        "abi3-version-specific-extension",
        "bundled-libpython",
        "macos-version-above-tag",
        "torch-unstable",  # liblegacy.dylib's row label, for the torch gate
    ]
    assert findings["abi3-tagged-violations"].message == (
        "tagged abi3 but links @loader_path/.dylibs/libpython3.11.dylib, the library of Python 3.11"
    )
    assert findings["torch-unstable"].libraries == ("macpkg/liblegacy.dylib",)
    late = findings["macos-version-above-tag"]
    assert late.evidence["libraries"] == ["macpkg/_ext.abi3.so (x86_64): 10.13"]
    assert "install it on macOS 10.9" in late.message and "macosx_10_13" in late.message
    vendored = findings["bundled-libpython"]
    assert vendored.severity == "error"
    assert vendored.evidence == {
        "libraries": ["macpkg/.dylibs/libpython3.11.dylib"],
        "linked_by": ["macpkg/_linked.abi3.so"],
    }
    assert findings["abi3-version-specific-extension"].evidence["libraries"] == [
        "macpkg/_linked.abi3.so"
    ]


def test_mac_table_and_json_show_the_slices(
    mac_wheel: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(mac_wheel)]) == 0
    assert main([str(mac_wheel), "--check", "metadata"]) == 1
    lines = capsys.readouterr().out.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("    [STABLE  ] [abi3-ok"))
    assert lines[row].startswith("    [STABLE  ] [abi3-ok               ] macpkg/_ext.abi3.so")
    assert lines[row].endswith(f"torch-libs={Path(TORCH_CPU).name}")
    min_torch = lines[row].split("min-torch=")[1].split()[0]
    assert lines[row + 1 : row + 3] == [
        "        slice x86_64: NO-TORCH, abi3-ok, macOS 10.13",
        f"        slice arm64: STABLE, abi3-ok, min-torch={min_torch}, macOS 11.0",
    ]
    capsys.readouterr()
    assert main([str(mac_wheel), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    jsonschema.validate(document, load_schema())
    [ext] = [e for e in document["extensions"] if e["path"].endswith("_ext.abi3.so")]
    assert [(s["machine"], s["min_os"], s["torch_label"]) for s in ext["slices"]] == [
        ("x86_64", "10.13", "NO-TORCH"),
        ("arm64", "11.0", "STABLE"),
    ]
    assert ext["slices"][1]["torch"]["torch_libraries"] == [TORCH_CPU]
    [legacy] = [b for b in document["bundled_libs"] if b["path"].endswith("liblegacy.dylib")]
    assert {d["library"] for d in legacy["torch"]["unstable_details"]} == {C10}


def test_a_thin_library_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "libthin.dylib"
    path.write_bytes(
        dylib(
            CPU_TYPE_ARM64,
            (14, 0),
            dylibs=[(LC_LOAD_DYLIB, TORCH_CPU)],
            imports=[undefined("_" + SHIM, 1)],
        )
    )
    report = inspect_extension(path)
    assert (report.machine, report.min_os, report.slices) == ("arm64", "14.0", ())
    assert report.torch_label is TorchLabel.STABLE
