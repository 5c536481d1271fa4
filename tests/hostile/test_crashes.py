"""Inputs that crashed the auditor with a traceback and exit 1, or bloated it (issue 15, items 2,
3 and 7): corrupt and bomb metadata members, import names whose last part is a namespace
portion, a NUL in a member name, and any exception at all reaching the command line."""

from __future__ import annotations

import bz2
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from helpers.build import Fixtures
from helpers.hostile import run_cli
from helpers.wheel_builder import (
    BZIP2,
    DEFLATED,
    LZMA,
    STORED,
    RawEntry,
    flip_byte,
    metadata_text,
    wheel_entries,
    wheel_filename,
    write_raw_zip,
)
from torch_abi_audit import inspect_extension, inspect_package
from torch_abi_audit.cli import main
from torch_abi_audit.engine import INTERNAL_ERROR
from torch_abi_audit.sources.packages import wheel_source
from torch_abi_audit.sources.wheels import MAX_MEMBERS, WheelArchive, WheelError

TAG = "cp311-abi3-manylinux_2_28_x86_64"
GOOD = "pkg/libgood.so"


def _wheel(directory: Path, case: str, built: Fixtures, metadata: RawEntry | None) -> Path:
    """A wheel of one stable library whose METADATA entry is replaced by ``metadata``."""
    name = case.replace("-", "_")
    entries = wheel_entries(name, "1.0", [TAG], {GOOD: built.stable_plugin.read_bytes()})
    if metadata is not None:
        entries = [
            replace(metadata, name=e.name) if e.name.endswith("/METADATA") else e for e in entries
        ]
    path = directory / wheel_filename(name, "1.0", [TAG])
    write_raw_zip(path, entries)
    return path


def _corrupt_stream(path: Path, member: str, method: int) -> None:
    """Flip bytes of ``member``'s compressed data until its stream no longer decodes."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    start = info.header_offset + 30 + len(member)
    for offset in range(start + 9 if method == LZMA else start, start + info.compress_size):
        flip_byte(path, offset)
        try:
            WheelArchive(path).read_text(member)
        except WheelError as exc:
            if "corrupt" in str(exc):
                return
        flip_byte(path, offset)
    raise AssertionError("no flipped byte breaks the stream")


METADATA = metadata_text("bomb", "1.0").encode()
BZIP2_BOMB = bz2.compress(bytes(64 << 20), 9)  # 64 MiB of zeros in a hundred bytes


@pytest.mark.parametrize(
    ("case", "entry", "message"),
    [
        ("corrupt-deflate", RawEntry("", METADATA * 40, method=DEFLATED, level=9), "deflate"),
        ("corrupt-lzma", RawEntry("", METADATA * 40, method=LZMA), "LZMA"),
        ("corrupt-bzip2", RawEntry("", METADATA * 40, method=BZIP2), "bzip2"),
        (
            "bzip2-bomb",
            RawEntry("", method=BZIP2, payload=BZIP2_BOMB, size=200, crc=zlib.crc32(bytes(200))),
            "decompresses past its declared size of 200 bytes",
        ),
        (
            "lzma-lie",
            RawEntry("", METADATA * 1000, method=LZMA, size=200),
            "decompresses past its declared size of 200 bytes",
        ),
        (
            "too-large",
            RawEntry("", METADATA, method=DEFLATED, size=17 << 20),
            "declares 17825792 bytes, more than the 16 MiB read of a metadata file",
        ),
        (
            "method-99",
            RawEntry("", METADATA, payload=METADATA, method=99),
            "compression method 99 is not supported",
        ),
        ("crc", RawEntry("", METADATA, method=STORED, crc=1), "CRC-32 mismatch"),
    ],
)
def test_unreadable_metadata_member_is_a_problem(
    case: str, entry: RawEntry, message: str, built: Fixtures, tmp_path: Path
) -> None:
    path = _wheel(tmp_path, case, built, entry)
    if case.startswith("corrupt-"):
        _corrupt_stream(path, f"{case.replace('-', '_')}-1.0.dist-info/METADATA", entry.method)
    tracemalloc.start()
    try:
        source = wheel_source(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 24 << 20  # a metadata read is bounded by its budget, whatever the ratio
    assert len(source.problems) == 1
    assert source.problems[0].reason.startswith("unreadable METADATA: ")
    assert message in source.problems[0].reason
    run = run_cli([str(path)], tmp_path / "scratch")
    assert run.code == 2
    assert f"  Problem: unreadable METADATA: {source.problems[0].reason[21:]}" in run.lines
    assert f"    [STABLE  ] [not-abi3              ] {GOOD}" in run.out
    distribution = next(line for line in run.lines if line.startswith("  Distribution: "))
    assert distribution.endswith(" (version unknown)")  # not a name and a blank


def test_nul_in_a_member_name_is_seen_before_zipfile_cuts_it(
    built: Fixtures, tmp_path: Path
) -> None:
    """zipfile ends a name at its first NUL: ``evil.so\\0.txt`` would be audited as evil.so."""
    name = "nul"
    entries = wheel_entries(name, "1.0", [TAG], {GOOD: built.stable_plugin.read_bytes()})
    entries.append(RawEntry("pkg/evil.so\0/../../x.txt", built.unstable_lib.read_bytes()))
    path = tmp_path / wheel_filename(name, "1.0", [TAG])
    write_raw_zip(path, entries)
    report = inspect_package(path, jobs=1)
    assert [p.reason for p in report.problems] == [
        "unsafe member name 'pkg/evil.so\\x00/../../x.txt': contains a NUL byte"
    ]
    assert [lib.path.name for lib in report.libraries] == ["libgood.so"]


def test_central_directory_with_too_many_members_is_refused_before_it_is_parsed(
    tmp_path: Path,
) -> None:
    """More entries than any wheel, behind an end record that declares none (zipfile reads
    every entry the directory holds, whatever the count says): refused in well under 2 s."""
    header = struct.Struct("<4s6H3L5H2L")  # APPNOTE 4.3.12, then the name
    directory = b"".join(
        header.pack(b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0) + b"x"
        for _ in range(MAX_MEMBERS + 1)
    )
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0, 0, len(directory), 0, 0)
    path = tmp_path / wheel_filename("many", "1.0", [TAG])
    path.write_bytes(directory + end)
    started = time.perf_counter()
    report = inspect_package(path, jobs=1)
    assert time.perf_counter() - started < 2
    assert report.error is not None
    assert f"more than {MAX_MEMBERS:,} members" in report.error


def _namespace_tree(root: Path, built: Fixtures) -> None:
    """``pkg/lib`` and ``nsx/c``: directories without ``__init__.py`` holding a library, under
    a regular package whose ``__init__.py`` must never run, and a namespace package."""
    (root / "pkg" / "lib").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text(f"open({str(root / 'RAN')!r}, 'w')\n")
    (root / "pkg" / "lib" / "libpkg.so").write_bytes(built.stable_plugin.read_bytes())
    (root / "nsx" / "c").mkdir(parents=True)
    (root / "nsx" / "c" / "libnsx.so").write_bytes(built.unstable_lib.read_bytes())


@pytest.mark.parametrize(("name", "library"), [("pkg.lib", "libpkg.so"), ("nsx.c", "libnsx.so")])
def test_import_name_ending_in_a_namespace_portion(
    name: str, library: str, built: Fixtures, tmp_path: Path
) -> None:
    """As ``torchaudio.lib`` and ``nvidia.cudnn.lib``: KeyError from find_spec, exit 1."""
    tree = tmp_path / "tree"
    _namespace_tree(tree, built)
    run = run_cli(
        [name, "--no-load-prediction"], tmp_path / "scratch", env={"PYTHONPATH": str(tree)}
    )
    assert run.code == 0, run.err
    assert f"Package: {name}" in run.lines
    assert any(line.endswith(library) or f"] {library}  (" in line for line in run.lines)
    assert not (tree / "RAN").exists()


def test_any_exception_in_the_cli_is_exit_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], built: Fixtures
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("pkg\nsecond line")

    monkeypatch.setattr("torch_abi_audit.cli.inspect_requests", broken)
    code = main([str(built.stable_plugin)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith(
        "torch-abi-audit: internal error: RuntimeError: pkg (a bug: please report"
    )
    assert "TORCH_ABI_AUDIT_TRACEBACK=1" in err
    monkeypatch.setenv("TORCH_ABI_AUDIT_TRACEBACK", "1")
    assert main([str(built.stable_plugin)]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_an_internal_error_in_the_console_script_is_not_exit_1(built: Fixtures) -> None:
    code = (
        "import torch_abi_audit.cli as cli\n"
        "def boom(*a, **k): raise RuntimeError('boom')\n"
        "cli.inspect_requests = boom\n"
        f"raise SystemExit(cli.main([{str(built.stable_plugin)!r}]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "internal error: RuntimeError" in result.stderr


def test_a_reader_bug_is_one_file_error_not_the_end_of_the_audit(
    monkeypatch: pytest.MonkeyPatch, built: Fixtures
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise IndexError("a reader bug")

    monkeypatch.setattr("torch_abi_audit.engine.parse_library", broken)
    report = inspect_extension(str(built.stable_plugin))
    assert report.error is not None and report.error.startswith(INTERNAL_ERROR)
    assert "IndexError: a reader bug" in report.error and "please report" in report.error
