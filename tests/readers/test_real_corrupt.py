"""Corrupted copies of real macOS and Windows libraries: every one gives a per-file error or a
report, never an exception or a hang, and a wheel holding one still has the rest audited.

The originals are small members of real wheels (a thin arm64 Mach-O with chained fixups, a
thin one with classic bind info, and a PE32+ DLL); the copies are truncated at every offset of
their headers and at sampled offsets after them, and have bytes overwritten in the headers and
at random.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from helpers.elf_inspect import deadline
from helpers.real_wheels import member_bytes, real_wheel
from helpers.wheel_builder import write_wheel
from torch_abi_audit import TorchLabel, inspect_extension, inspect_package
from torch_abi_audit.cli import main
from torch_abi_audit.report import ExtensionReport

#: name -> (wheel, member)
ORIGINALS = {
    "mach-o-dyld-info": (
        "torchaudio-2.11.0-cp311-cp311-macosx_11_0_arm64.whl",
        "torchaudio/lib/_torchaudio.abi3.so",
    ),
    "mach-o-chained-fixups": (
        "torchcodec-0.17.0-cp311-cp311-macosx_14_0_arm64.whl",
        "torchcodec/libtorchcodec_core4.dylib",
    ),
    "pe": ("torchaudio-2.11.0-cp311-cp311-win_amd64.whl", "torchaudio/lib/_torchaudio.pyd"),
}
#: The leading bytes that hold the headers and load commands (Mach-O) or section table (PE).
HEADER_BYTES = 4096
pytestmark = pytest.mark.network


@pytest.fixture(scope="module", params=sorted(ORIGINALS))
def original(request: pytest.FixtureRequest) -> tuple[str, bytes]:
    wheel, member = ORIGINALS[request.param]
    return Path(member).name, member_bytes(real_wheel(wheel), member)


def audit_bytes(tmp_path: Path, name: str, data: bytes) -> ExtensionReport:
    path = tmp_path / name
    path.write_bytes(data)
    with deadline(10):
        return inspect_extension(path)  # an exception here fails the test


def test_the_original_is_audited(original: tuple[str, bytes], tmp_path: Path) -> None:
    name, data = original
    report = audit_bytes(tmp_path, name, data)
    assert report.error is None and report.torch_label is TorchLabel.STABLE


def test_every_truncation_is_an_error(original: tuple[str, bytes], tmp_path: Path) -> None:
    name, data = original
    rng = random.Random(len(data))
    cuts = list(range(HEADER_BYTES)) + sorted(rng.sample(range(HEADER_BYTES, len(data)), 200))
    # Only zeros after this: a PE's last section may lose its alignment padding and still load.
    meaningful = len(data.rstrip(b"\0"))
    for cut in cuts:
        report = audit_bytes(tmp_path, name, data[:cut])
        if cut >= meaningful:
            continue
        # Every segment and section the loader maps must be whole, even those the audit does
        # not read: a file cut short anywhere is corrupt.
        assert report.error is not None, f"truncated at {cut}: no error"
        assert report.torch_label is TorchLabel.ERROR


def test_overwritten_header_bytes(original: tuple[str, bytes], tmp_path: Path) -> None:
    name, data = original
    errors = 0
    for offset in range(0, HEADER_BYTES, 5):
        for value in (0x00, 0xFF):
            corrupt = bytearray(data)
            corrupt[offset] = value
            report = audit_bytes(tmp_path, name, bytes(corrupt))
            errors += report.error is not None
    assert errors > 0  # some header fields are checked (the rest may not matter)


def test_random_corruption(original: tuple[str, bytes], tmp_path: Path) -> None:
    name, data = original
    rng = random.Random(20261123)
    for _ in range(300):
        corrupt = bytearray(data)
        for _ in range(rng.randint(1, 16)):
            at = rng.randrange(len(corrupt))
            corrupt[at : at + 4] = rng.randbytes(4)
        report = audit_bytes(tmp_path, name, bytes(corrupt))
        assert report.error is not None or report.torch_label in (
            TorchLabel.STABLE,
            TorchLabel.UNSTABLE,
            TorchLabel.NO_TORCH,
        )


def test_a_corrupt_member_is_one_error_among_audited_libraries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel, member = ORIGINALS["pe"]
    data = member_bytes(real_wheel(wheel), member)
    files = {"pkg/intact.pyd": data, "pkg/broken.pyd": data[: len(data) // 2]}
    path = write_wheel(tmp_path, "pkg", "1.0", ["cp311-cp311-win_amd64"], files)
    report = inspect_package(path, jobs=1)
    by_name = {lib.path.name: lib for lib in report.libraries}
    assert by_name["intact.pyd"].torch_label is TorchLabel.STABLE
    broken = by_name["broken.pyd"]
    assert broken.torch_label is TorchLabel.ERROR and broken.error
    assert main([str(path)]) == 2
    out = capsys.readouterr().out
    assert f"pkg/broken.pyd  (error: {broken.error})" in out
    assert "[STABLE  ] [not-abi3              ] pkg/intact.pyd" in out
