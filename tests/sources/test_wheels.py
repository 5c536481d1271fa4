"""Wheels audited in place: same results as the files on disk, nothing extracted, hostile
archives reported per wheel (never a traceback)."""

from __future__ import annotations

import hashlib
import random
import shutil
import tempfile
import tracemalloc
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from helpers.build import Fixtures
from helpers.hostile_wheels import Hostile, hostile_wheels
from helpers.wheel_builder import (
    BZIP2,
    DEFLATED,
    LZMA,
    STORED,
    RawEntry,
    build_zip,
    wheel_entries,
    wheel_filename,
    write_raw_zip,
    write_wheel,
)
from torch_abi_audit import (
    CPythonLabel,
    LibraryKind,
    TorchLabel,
    TorchVerdict,
    inspect_extension,
    inspect_package,
)
from torch_abi_audit.audit import inspect_targets
from torch_abi_audit.cli import main
from torch_abi_audit.report import Distribution, ExtensionReport, PackageReport, WheelReport
from torch_abi_audit.sources import wheel_bytes
from torch_abi_audit.sources.metadata import DistributionMetadata
from torch_abi_audit.sources.packages import target_sources, wheel_source
from torch_abi_audit.sources.wheel_bytes import StoredMember, StreamedMember
from torch_abi_audit.sources.wheels import WheelArchive, WheelMember

TAGS = ("cp311-abi3-manylinux_2_28_x86_64", "cp311-abi3-manylinux2014_x86_64")
TAG = "py3-none-manylinux_2_28_x86_64"
#: Member name in the wheel -> the compiled fixture it holds.
MEMBERS = {
    "pkg/_native.abi3.so": "abi3_ext",
    "pkg/lib/libplugin.so": "stable_plugin",
    "pkg_extra/libextra.so": "unstable_lib",
    "pkg.libs/libvendored-1a2b.so.1": "versioned",
}
COMPRESSIONS = {
    "deflated": zipfile.ZIP_DEFLATED,
    "stored": zipfile.ZIP_STORED,
    "bzip2": zipfile.ZIP_BZIP2,
    "lzma": zipfile.ZIP_LZMA,
}
GOOD = "pkg/libgood.so"  # an intact library next to each hostile member


def fixture_path(built: Fixtures, attribute: str) -> Path:
    path = getattr(built, attribute)
    assert isinstance(path, Path)
    return path


@pytest.fixture(scope="module")
def disk_reports(built: Fixtures) -> dict[str, ExtensionReport]:
    """``inspect_extension`` on the original files, by the member name they get in the wheel."""
    return {member: inspect_extension(fixture_path(built, a)) for member, a in MEMBERS.items()}


@pytest.fixture(scope="module")
def wheels(built: Fixtures, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo wheel once per compression, each alone in its own directory."""
    files = {member: fixture_path(built, a).read_bytes() for member, a in MEMBERS.items()}
    files["pkg/__init__.py"] = b"raise SystemExit('a wheel must never be imported')\n"
    made = {}
    for label, compression in COMPRESSIONS.items():
        directory = tmp_path_factory.mktemp(f"wheel-{label}")
        made[label] = write_wheel(
            directory,
            "demo-pkg",
            "1.2.3",
            TAGS,
            files,
            requires=("torch>=2.11", "numpy"),
            compression=compression,
        )
    return made


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` with the SHA-256 of its bytes."""
    return {
        path.relative_to(directory).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def by_member(report: PackageReport, wheel: Path) -> dict[str, ExtensionReport]:
    return {lib.path.relative_to(wheel).as_posix(): lib for lib in report.libraries}


def as_in_wheel(disk: ExtensionReport) -> ExtensionReport:
    """A library's report from disk as the wheel's report gives it: abi3 modules judged
    against the wheel's cp311-abi3 tag, and verified (the fixtures are small: each member is
    read to its end and its CRC-32 checked)."""
    disk = replace(disk, verified=True)
    if not disk.cpython.intent:
        return disk
    return replace(disk, cpython=disk.cpython.with_baseline("3.11", "wheel tag"))


def assert_same_as_disk(
    report: PackageReport, wheel: Path, disk_reports: dict[str, ExtensionReport]
) -> None:
    libraries = by_member(report, wheel)
    assert sorted(libraries) == sorted(MEMBERS)
    for member, lib in libraries.items():
        disk = disk_reports[member]
        assert lib.path == wheel / member
        assert lib.distribution_path == member  # the member name: the path in the distribution
        assert lib.error is None, lib.error
        assert (
            lib.torch_label,
            lib.cpython_label,
            lib.torch.unstable_symbols,
            lib.torch.stable_shim_count,
            lib.needed,
        ) == (
            disk.torch_label,
            disk.cpython_label,
            disk.torch.unstable_symbols,
            disk.torch.stable_shim_count,
            disk.needed,
        ), member
        # And every other field, the path aside; in the wheel, abi3 modules are judged against
        # the wheel's tag (cp311-abi3).
        assert replace(lib, path=disk.path, distribution_path=None) == as_in_wheel(disk), member


# -- the wheel builder itself ---------------------------------------------------------------


def test_wheel_file_names_follow_pep_427() -> None:
    assert wheel_filename("demo-pkg", "1.2.3", TAGS) == (
        "demo_pkg-1.2.3-cp311-abi3-manylinux_2_28_x86_64.manylinux2014_x86_64.whl"
    )
    assert wheel_filename("A.B", "1.0", ["py2-none-any", "py3-none-any"]) == (
        "a_b-1.0-py2.py3-none-any.whl"
    )
    with pytest.raises(ValueError, match="compressed tag set"):
        wheel_filename("x", "1", ["cp311-cp311-linux_x86_64", "cp312-abi3-linux_x86_64"])


def test_raw_zip_is_read_by_zipfile_as_declared(tmp_path: Path) -> None:
    data = b"hello wheel " * 100
    raw, layout = build_zip(
        [
            RawEntry("a.txt", data, method=DEFLATED),
            RawEntry("b.txt", data, method=STORED, size=20 << 30),  # Zip64 extra field
            RawEntry("c.txt", reuse=0),
            RawEntry("d.txt", data, method=BZIP2),
            RawEntry("e.txt", data, method=LZMA),
        ]
    )
    assert raw[layout.data_offsets[1] : layout.data_offsets[1] + len(data)] == data
    assert layout.header_offsets[2] == layout.header_offsets[0]
    path = tmp_path / "raw.zip"
    path.write_bytes(raw)
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        assert [i.filename for i in infos] == ["a.txt", "b.txt", "c.txt", "d.txt", "e.txt"]
        assert [i.file_size for i in infos] == [len(data), 20 << 30, *[len(data)] * 3]
        assert infos[1].compress_size == len(data)
        assert [archive.read(name) for name in ("a.txt", "d.txt", "e.txt")] == [data] * 3
        assert zlib.crc32(data) == infos[0].CRC
        assert infos[2].header_offset == infos[0].header_offset


# -- valid wheels -----------------------------------------------------------------------------


@pytest.mark.parametrize("compression", list(COMPRESSIONS))
def test_wheel_audit_matches_the_files_on_disk(
    compression: str, wheels: dict[str, Path], disk_reports: dict[str, ExtensionReport]
) -> None:
    wheel = wheels[compression]
    report = inspect_package(wheel, jobs=1)
    assert report.name == "demo-pkg"
    assert report.root == wheel
    assert report.error is None and report.problems == () and not report.has_error
    assert report.distribution == Distribution("demo-pkg", "1.2.3", ("torch>=2.11",), TAGS)
    assert report.wheel == WheelReport(wheel, wheel.name, tuple(sorted(TAGS)))
    assert [lib.path.relative_to(wheel).as_posix() for lib in report.extensions] == [
        "pkg/_native.abi3.so"
    ]
    assert sorted(lib.path.relative_to(wheel).as_posix() for lib in report.bundled_libs) == [
        "pkg.libs/libvendored-1a2b.so.1",
        "pkg/lib/libplugin.so",
        "pkg_extra/libextra.so",
    ]
    libraries = by_member(report, wheel)
    native = libraries["pkg/_native.abi3.so"]
    assert native.kind is LibraryKind.EXTENSION
    assert (native.torch_label, native.cpython_label) == (
        TorchLabel.NO_TORCH,
        CPythonLabel.ABI3_OK,
    )
    assert native.entry_points == ("PyInit_goodabi3",)
    plugin = libraries["pkg/lib/libplugin.so"]
    assert plugin.torch_label is TorchLabel.STABLE and plugin.torch.stable_shim_count > 0
    extra = libraries["pkg_extra/libextra.so"]
    assert extra.torch_label is TorchLabel.UNSTABLE and extra.torch.unstable_symbols
    vendored = libraries["pkg.libs/libvendored-1a2b.so.1"]
    assert vendored.soname == "libfoo.so.1" and "libm.so.6" in vendored.needed
    assert vendored.runpath == ("$ORIGIN/../lib",)
    assert report.torch_verdict is TorchVerdict.UNSTABLE
    assert_same_as_disk(report, wheel, disk_reports)


def test_nothing_is_extracted_even_when_members_spill(
    wheels: dict[str, Path],
    disk_reports: dict[str, ExtensionReport],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    # Windows far smaller than the libraries: reads outside them must spill to a temporary file.
    monkeypatch.setattr(wheel_bytes, "WINDOW", 256)
    monkeypatch.setattr(wheel_bytes, "CHUNK", 64)
    monkeypatch.setattr(wheel_bytes, "FIRST_STEP", 64)
    spills: list[tuple[str, str | None]] = []
    original = StreamedMember._start_spill

    def spy(self: StreamedMember) -> None:
        original(self)
        assert self._spill is not None
        fd_link = Path(f"/proc/self/fd/{self._spill.fileno()}")
        spills.append((self.name, str(fd_link.readlink()) if fd_link.parent.is_dir() else None))

    monkeypatch.setattr(StreamedMember, "_start_spill", spy)
    for label, wheel in wheels.items():
        spills.clear()
        before = (snapshot(wheel.parent), snapshot(scratch))
        report = inspect_package(wheel, jobs=1)
        assert (snapshot(wheel.parent), snapshot(scratch)) == before, label
        assert snapshot(wheel.parent) == {wheel.name: before[0][wheel.name]}
        assert snapshot(scratch) == {}
        assert not report.has_error, label
        assert_same_as_disk(report, wheel, disk_reports)
        if label == "stored":
            assert spills == []  # positional reads straight from the archive
            continue
        assert spills, label  # windows of 256 bytes: some read went back
        assert {name for name, _ in spills} <= set(MEMBERS), label
        for _name, location in spills:
            if not Path("/proc/self/fd").is_dir():  # no /proc: where it lived cannot be seen
                assert location is None
                continue
            # The spill file lived in the dedicated temporary directory, already unlinked.
            assert location is not None, label
            assert location.startswith(f"{scratch}/") and location.endswith("(deleted)"), location


@pytest.mark.parametrize(
    "method", [STORED, DEFLATED, BZIP2, LZMA], ids=["stored", "deflated", "bzip2", "lzma"]
)
def test_members_larger_than_a_decompression_step(
    method: int, built: Fixtures, disk_reports: dict[str, ExtensionReport], tmp_path: Path
) -> None:
    """A 9 MiB member (the plugin padded with zeros) takes several 4 MiB steps to read."""
    padded = built.stable_plugin.read_bytes()
    padded += bytes((9 << 20) - len(padded))
    assert len(padded) > 2 * wheel_bytes.CHUNK
    path = tmp_path / wheel_filename("big", "1.0", [TAG])
    member = "pkg/lib/libplugin.so"
    write_raw_zip(path, wheel_entries("big", "1.0", [TAG], {member: padded}, method=method))
    report = inspect_package(path, jobs=1)
    assert not report.has_error
    [lib] = report.libraries
    assert lib.path == path / member
    # Read as far as needed: the rest of the zeros (more than the budget) is left unchecked.
    expected = replace(as_in_wheel(disk_reports[member]), verified=False)
    assert replace(lib, path=disk_reports[member].path, distribution_path=None) == expected
    verified = inspect_package(path, jobs=1, verify_archive=True)
    assert [lib.verified for lib in verified.libraries] == [True]


def streamed(data: bytes, chunk: int) -> StreamedMember:
    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), chunk):
            yield data[start : start + chunk]

    return StreamedMember(chunks, len(data), "member")


def test_streamed_reads_return_the_right_bytes_in_any_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wheel_bytes, "WINDOW", 256)
    rng = random.Random(20261123)
    data = rng.randbytes(5000)
    for _ in range(500):
        member = streamed(data, rng.choice([1, 7, 64, 999]))
        for _ in range(12):
            offset = rng.randrange(len(data))
            length = rng.randrange(1, min(300, len(data) - offset) + 1)
            assert member.read(offset, length, "range") == data[offset : offset + length]
        member.close()


def test_a_read_may_start_inside_the_chunk_the_last_one_ended_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Forward reads that overlap by less than a chunk, or that straddle the head window's end,
    are served from memory: only a read reaching further back spills."""
    monkeypatch.setattr(wheel_bytes, "WINDOW", 100)
    data = bytes(range(256)) * 8
    member = streamed(data, 64)
    assert member.read(90, 30, "straddles the head window") == data[90:120]
    assert member.read(500, 20, "ends mid-chunk") == data[500:520]
    assert member.read(510, 100, "starts in the same chunk") == data[510:610]
    assert member.read(600, 4, "again") == data[600:604]
    before = member.spilled
    assert member.read(300, 4, "long passed") == data[300:304]
    assert not before and member.spilled
    # The second stream fills the spill file only as far as the reads go.
    assert member._spilled < len(data)
    assert member.read(1000, 24, "further") == data[1000:1024]
    assert member.read(0, 8, "from the file") == data[:8]
    member.close()


def test_directory_of_wheels_and_a_library(built: Fixtures, tmp_path: Path) -> None:
    alpha = write_wheel(tmp_path, "alpha", "1.0", [TAG], {"alpha/liba.so": b""})
    beta = write_wheel(
        tmp_path, "beta", "2.0", [TAG], {"beta/libb.so": built.stable_plugin.read_bytes()}
    )
    loose = tmp_path / "libloose.so"
    shutil.copyfile(built.unstable_lib, loose)
    sources = target_sources(str(tmp_path))
    assert [(s.name, s.root) for s in sources] == [
        ("alpha", alpha),
        ("beta", beta),
        (tmp_path.name, tmp_path),
    ]
    assert sources[0].libraries == (WheelMember(alpha, "alpha/liba.so", 0),)
    assert sources[1].libraries == (
        WheelMember(beta, "beta/libb.so", built.stable_plugin.stat().st_size),
    )
    assert sources[2].libraries == (loose,) and sources[2].wheel is None
    assert [s.wheel.filename if s.wheel else None for s in sources] == [
        alpha.name,
        beta.name,
        None,
    ]
    reports = inspect_targets([tmp_path], jobs=1)
    assert [r.name for r in reports] == ["alpha", "beta", tmp_path.name]
    assert reports[0].libraries[0].error == "empty file, not a shared library"
    assert reports[1].torch_verdict is TorchVerdict.STABLE
    assert reports[2].torch_verdict is TorchVerdict.UNSTABLE
    with pytest.raises(ValueError, match="holds 3 packages"):
        inspect_package(tmp_path)


def test_wheel_without_dist_info(built: Fixtures, tmp_path: Path) -> None:
    path = tmp_path / "nodist-2.0-py3-none-any.whl"
    write_raw_zip(path, [RawEntry("pkg/libx.so", built.versioned.read_bytes())])
    with WheelArchive(path) as archive:
        assert archive.metadata() == DistributionMetadata("nodist", "")
        assert archive.problems == ["no .dist-info directory: not a valid wheel"]
        assert [m.name for m in archive.library_members()] == ["pkg/libx.so"]
    source = wheel_source(path)
    assert source.name == "nodist"
    assert [p.reason for p in source.problems] == ["no .dist-info directory: not a valid wheel"]
    report = inspect_package(path, jobs=1)
    assert report.has_error and report.libraries[0].error is None


# -- hostile and broken archives ------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile(built: Fixtures, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Hostile]:
    return hostile_wheels(built, tmp_path_factory.mktemp("hostile"))


HOSTILE_CASES = [
    "symlink-member",
    "nul-name",
    "not-a-zip",
    "truncated",
    "version-too-new",
    "crc-stored",
    "crc-deflated",
    "broken-deflate",
    "broken-lzma",
    "inflate-past",
    "bzip2-bomb",
    "encrypted-deflated",
    "encrypted-bzip2",
    "huge",
    "ratio",
    "dotdot",
    "absolute",
    "backslash",
    "duplicate",
    "overlap",
    "stored-size-lie",
    "encrypted-metadata",
]


def test_every_hostile_case_is_built(hostile: dict[str, Hostile]) -> None:
    assert sorted(hostile) == sorted(HOSTILE_CASES)


def _spy_open_member(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    opened: list[str] = []
    original = WheelArchive.open_member

    def spy(self: WheelArchive, name: str, *, seek: bool = True) -> StoredMember | StreamedMember:
        opened.append(name)
        return original(self, name, seek=seek)

    monkeypatch.setattr(WheelArchive, "open_member", spy)
    return opened


@pytest.mark.parametrize("case", HOSTILE_CASES)
def test_hostile_archive_is_reported_not_raised(
    case: str, hostile: dict[str, Hostile], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = hostile[case]
    opened = _spy_open_member(monkeypatch)
    report = inspect_package(broken.path, jobs=1)
    assert report.has_error
    assert report.torch_verdict is TorchVerdict.ERROR
    if broken.where == "error":
        assert broken.message in (report.error or "")
        assert report.libraries == () and opened == []
        return
    assert report.error is None
    libraries = by_member(report, broken.path)
    # The intact library next to the hostile member is still audited.
    assert libraries[GOOD].error is None
    assert libraries[GOOD].torch_label is TorchLabel.STABLE
    assert report.distribution is not None
    assert report.distribution.version == ("1.0" if broken.metadata else "")
    if broken.where == "library":
        assert report.problems == ()
        assert broken.member is not None
        assert broken.message in (libraries[broken.member].error or "")
        assert libraries[broken.member].torch_label is TorchLabel.ERROR
        assert sorted(opened) == sorted(libraries) == sorted([GOOD, broken.member])
        return
    assert [(p.path, p.reason) for p in report.problems] == [(broken.path, broken.message)]
    assert broken.member not in libraries
    # Only the hostile member is left out (the stored-size case also holds pkg/libnext.so).
    assert sorted(opened) == sorted(libraries) and GOOD in libraries
    assert len(libraries) == (2 if case == "stored-size-lie" else 1)


def test_bzip2_bomb_is_stopped_in_bounded_memory(hostile: dict[str, Hostile]) -> None:
    """zipfile's own reader inflates a whole compressed read at once: 79 bytes -> 64 MiB."""
    broken = hostile["bzip2-bomb"]
    assert broken.member is not None
    tracemalloc.start()
    try:
        report = inspect_extension(WheelMember(broken.path, broken.member, 1000))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.error is not None and broken.message in report.error
    assert peak < 16 << 20


@pytest.mark.parametrize("case", HOSTILE_CASES)
def test_cli_reports_hostile_archives_and_goes_on(
    case: str,
    hostile: dict[str, Hostile],
    built: Fixtures,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = hostile[case]
    code = main([str(broken.path), str(built.stable_plugin)])
    out, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in err and "Traceback" not in out
    failed = [line for line in err.splitlines() if line.startswith("error: inspection failed")]
    assert len(failed) == 1 and "libstable_plugin.so" not in failed[0]
    # The other package of the run is still reported in full.
    assert "Package: libstable_plugin.so" in out
    assert "    [STABLE  ] [not-abi3              ] libstable_plugin.so" in out
    if broken.where == "error":
        assert broken.message in err and f"  Error: {broken.message}" in out
    elif broken.where == "problem":
        assert f"  Problem: {broken.message}" in out
    else:
        assert f"{broken.member}  (error: " in out and broken.message in out
