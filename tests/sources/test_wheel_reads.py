"""Wheel members read only as far as the readers need: the same reports as full reads, bounded
work for hostile compression ratios, and integrity on request (``--verify-archive``)."""

from __future__ import annotations

import json
import random
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from helpers.build import Fixtures
from helpers.real_wheels import LIBRARY_SUFFIXES
from helpers.real_world import Source, load_expectations
from helpers.wheel_builder import DEFLATED, RawEntry, wheel_entries, wheel_filename, write_raw_zip
from torch_abi_audit import inspect_extension, inspect_package
from torch_abi_audit.cli import main
from torch_abi_audit.readers.errors import BinaryReadError
from torch_abi_audit.readers.source import FileBytes
from torch_abi_audit.report import ExtensionReport, PackageReport
from torch_abi_audit.rules.cpython_abi import CPythonAnalysis
from torch_abi_audit.sources import wheel_bytes
from torch_abi_audit.sources.index import DownloadError, fetch_wheel

TAG = "py3-none-manylinux_2_28_x86_64"
MEMBER = "pkg/lib/libplugin.so"


@pytest.fixture
def inflated(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every chunk of library member data decompressed (or read, when stored) during the test
    (the metadata members, read whole through the same streams, are not counted)."""
    produced: list[int] = []
    original = wheel_bytes._Output.take

    def counting(self: wheel_bytes._Output, data: bytes) -> bytes:
        if ".dist-info/" not in self.member.name:
            produced.append(len(data))
        return original(self, data)

    monkeypatch.setattr(wheel_bytes._Output, "take", counting)
    return produced


def _padded_wheel(tmp_path: Path, library: bytes, padding: bytes, **entry: object) -> Path:
    """A wheel whose one library member is ``library`` followed by ``padding``."""
    path = tmp_path / wheel_filename("padded", "1.0", [TAG])
    entries = wheel_entries("padded", "1.0", [TAG], {})
    entries.append(RawEntry(MEMBER, library + padding, method=DEFLATED, **entry))  # type: ignore[arg-type]
    write_raw_zip(path, entries)
    return path


# -- bounded work -------------------------------------------------------------------------------


def test_hostile_ratios_cost_the_needed_prefix_plus_a_budget(
    built: Fixtures, tmp_path: Path, inflated: list[int]
) -> None:
    """A 6 MB wheel whose 100 members inflate 1000:1 (a real library followed by 60 MB of
    zeros each: 6 GB in all) is audited from a few hundred KB of output per member."""
    library = built.stable_plugin.read_bytes()
    padded = library + bytes(60_000_000)
    # Compressed once, written 100 times (each member declares its true size and CRC-32).
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    payload = deflate.compress(padded) + deflate.flush()
    member = {"payload": payload, "size": len(padded), "crc": zlib.crc32(padded)}
    names = [f"pkg/lib{i:03}/libplugin.so" for i in range(100)]
    path = tmp_path / wheel_filename("bomb", "1.0", [TAG])
    entries = wheel_entries("bomb", "1.0", [TAG], {})
    entries += [RawEntry(name, method=DEFLATED, **member) for name in names]  # type: ignore[arg-type]
    write_raw_zip(path, entries)
    assert path.stat().st_size < 8_000_000
    report = inspect_package(path, jobs=1)
    assert not report.has_error and not report.problems
    assert len(report.libraries) == 100
    expected = inspect_extension(built.stable_plugin)
    for lib in report.libraries:
        assert (lib.torch_label, lib.torch.stable_shims) == (
            expected.torch_label,
            expected.torch.stable_shims,
        )
        assert lib.verified is False
    # The work: what the readers need plus the first steps of the stream, per member.
    assert sum(inflated) < 100 * (len(library) + 2 * wheel_bytes.FIRST_STEP)
    assert report.wheel is not None and not report.wheel.verified
    assert sorted(report.wheel.unverified_members) == names


def test_a_member_is_verified_when_what_is_left_is_small(
    built: Fixtures, tmp_path: Path, inflated: list[int]
) -> None:
    library = built.stable_plugin.read_bytes()
    small = _padded_wheel(tmp_path, library, bytes(wheel_bytes.VERIFY_BUDGET // 2))
    [lib] = inspect_package(small, jobs=1).libraries
    assert lib.verified is True
    assert sum(inflated) == len(library) + wheel_bytes.VERIFY_BUDGET // 2


# -- integrity ----------------------------------------------------------------------------------


def _noise(size: int) -> bytes:
    return random.Random(16).randbytes(size)


@pytest.mark.parametrize("lie", ["crc", "size"])
def test_damage_past_the_needed_prefix_is_found_on_request(
    built: Fixtures, tmp_path: Path, lie: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A member whose CRC-32 is wrong, or whose data ends before its declared size, beyond the
    bytes the readers need: audited as usual, reported as not verified; --verify-archive reads
    it to its end and reports the damage (exit 2)."""
    library = built.stable_plugin.read_bytes()
    padding = _noise(3 * wheel_bytes.VERIFY_BUDGET)
    whole = library + padding
    if lie == "crc":
        wheel = _padded_wheel(tmp_path, library, padding, crc=zlib.crc32(whole) ^ 1)
        damage = "CRC-32 mismatch"
    else:
        wheel = _padded_wheel(tmp_path, library, padding, size=len(whole) + 4096)
        damage = "the archive declares"
    [lib] = inspect_package(wheel, jobs=1).libraries
    assert lib.error is None and lib.verified is False
    assert lib.torch_label == inspect_extension(built.stable_plugin).torch_label
    [checked] = inspect_package(wheel, jobs=1, verify_archive=True).libraries
    assert checked.error is not None and damage in checked.error
    assert main([str(wheel)]) == 0
    assert "Archive:     not fully verified: 1 of 1 libraries" in capsys.readouterr().out
    assert main([str(wheel), "--verify-archive"]) == 2
    capsys.readouterr()
    assert main([str(wheel), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["wheel"]["verified"] is False
    assert document["wheel"]["unverified_members"] == [MEMBER]
    assert document["bundled_libs"][0]["verified"] is False
    assert main([str(wheel), "--format", "markdown"]) == 0
    assert "not fully verified (1 library read only as far as needed" in capsys.readouterr().out


def test_damage_within_the_needed_prefix_is_always_an_error(
    built: Fixtures, tmp_path: Path
) -> None:
    """A member cut short before the bytes its reader needs fails, verified or not."""
    library = built.stable_plugin.read_bytes()
    compressed = zlib.compress(library, 6)[2:-4]  # raw deflate
    payload = compressed[: len(compressed) // 2]
    wheel = _padded_wheel(
        tmp_path, library, b"", payload=payload, compressed_size=len(payload), size=len(library)
    )
    for verify in (False, True):
        [lib] = inspect_package(wheel, jobs=1, verify_archive=verify).libraries
        assert lib.error is not None, verify


# -- the same reports as full reads, on every real wheel of the corpus --------------------------


def _corpus() -> list[tuple[str, str, tuple[str, ...], str]]:
    seen = []
    for expectation in load_expectations():
        if expectation.source is not Source.WHEEL:
            continue
        key = (
            expectation.name,
            expectation.version,
            expectation.platforms,
            expectation.python_version,
        )
        if key not in seen:
            seen.append(key)
    return seen


def _normalised(lib: ExtensionReport, path: Path) -> ExtensionReport:
    return replace(lib, path=path, verified=None)


def _member_reports(report: PackageReport, wheel: Path) -> Iterator[tuple[str, ExtensionReport]]:
    for lib in report.libraries:
        yield lib.path.relative_to(wheel).as_posix(), lib


@pytest.mark.network
@pytest.mark.parametrize(
    "wheel_key", _corpus(), ids=lambda key: "-".join([key[0], key[1], key[2][0]])
)
def test_partial_reads_give_the_reports_of_full_reads(
    wheel_key: tuple[str, str, tuple[str, ...], str], tmp_path: Path
) -> None:
    """Each real wheel of the real-world corpus: the default audit (members read as far as
    needed), the verified one (every member to its end) and the extracted files on disk give
    the same report, library by library."""
    name, version, platforms, python_version = wheel_key
    try:
        wheel = fetch_wheel(name, version, platforms=platforms, python_version=python_version)
    except DownloadError as exc:
        pytest.fail(str(exc))
    partial = inspect_package(wheel, jobs=1)
    full = inspect_package(wheel, jobs=1, verify_archive=True)
    assert full.wheel is not None and full.wheel.verified
    assert not full.problems and not partial.problems
    assert _same_libraries(partial, full, wheel)
    assert (partial.torch_verdict, partial.cpython_verdict, partial.findings) == (
        full.torch_verdict,
        full.cpython_verdict,
        full.findings,
    )
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.lower().endswith(LIBRARY_SUFFIXES)]
        archive.extractall(tmp_path, members)
    for member, lib in _member_reports(partial, wheel):
        if member not in members:
            continue
        disk = inspect_extension(tmp_path / member)
        expected = replace(
            disk,
            kind=lib.kind,
            distribution_path=member,  # a file alone is in no distribution; the member is
            cpython=_as_in_wheel(disk.cpython, lib.cpython),
            slices=tuple(
                replace(part, cpython=_as_in_wheel(part.cpython, wheel_part.cpython))
                for part, wheel_part in zip(disk.slices, lib.slices, strict=True)
            ),
        )
        assert _normalised(lib, Path(member)) == _normalised(expected, Path(member)), member


def _as_in_wheel(disk: CPythonAnalysis, in_wheel: CPythonAnalysis) -> CPythonAnalysis:
    """A library's CPython analysis from disk, judged against the abi3 version the wheel's tags
    promise (a file on disk has no tags)."""
    if not disk.intent or in_wheel.baseline is None or in_wheel.baseline_source is None:
        return disk
    return disk.with_baseline(in_wheel.baseline, in_wheel.baseline_source)


def _same_libraries(partial: PackageReport, full: PackageReport, wheel: Path) -> bool:
    ours = dict(_member_reports(partial, wheel))
    theirs = dict(_member_reports(full, wheel))
    assert sorted(ours) == sorted(theirs)
    for member, lib in ours.items():
        assert _normalised(lib, wheel) == _normalised(theirs[member], wheel), member
    return True


def test_a_forked_worker_keeps_the_directory_and_reads_through_its_own_descriptor(
    built: Fixtures, tmp_path: Path
) -> None:
    from torch_abi_audit.sources import wheels

    library = built.stable_plugin.read_bytes()
    path = _padded_wheel(tmp_path, library, b"")
    try:
        archive = wheels.open_wheel(path)
        parent_fd = archive._handle.fileno()
        wheels._after_fork()  # what a forked worker runs
        again = wheels.open_wheel(path)
        assert again is archive  # the parsed directory is kept...
        assert archive._handle.fileno() != parent_fd  # ...read through a descriptor of its own
        member = archive.open_member(MEMBER)
        try:
            assert member.read(0, 4, "magic") == b"\x7fELF"
            assert member.finish(verify=True)
        finally:
            member.close()
        assert archive.metadata().name == "padded"  # zipfile reads through the new descriptor
    finally:
        wheels.close_wheels()


@pytest.mark.parametrize("size", [3000, 9000])  # within the (shrunk) head window, and past it
def test_a_checksum_left_for_later_still_finds_a_lie(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, size: int
) -> None:
    """The CRC-32 of a streamed member's first bytes is computed only if it is read on: read
    to its end, a wrong CRC-32 is still found, whether the head was checksummed late or not."""
    monkeypatch.setattr(wheel_bytes, "WINDOW", 4096)
    data = _noise(size)
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    path = tmp_path / "member.deflate"
    path.write_bytes(compressor.compress(data) + compressor.flush())
    with path.open("rb", buffering=0) as handle:
        source = FileBytes(handle)
        for crc, fails in ((zlib.crc32(data), False), (zlib.crc32(data) ^ 1, True)):
            member = wheel_bytes.MemberData("m", 0, source.size, size, crc)
            chunks = wheel_bytes.inflate(source, member, defer_checksum=True)
            if fails:
                with pytest.raises(BinaryReadError, match="CRC-32 mismatch"):
                    b"".join(chunks)
            else:
                assert b"".join(chunks) == data
