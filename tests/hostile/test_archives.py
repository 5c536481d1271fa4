"""Hostile archives through the command line, all at once: bombs, traversal and NUL names,
symbolic link members, overlapping and lying members, truncation, encryption (issue 15,
guarantees). The per-archive messages are checked in ``tests/sources/test_wheels.py``; here,
what holds for all of them together: no hang, no traceback, exit 2, the other wheels audited,
nothing written, the files unchanged, the same output with one worker or two."""

from __future__ import annotations

import time
from pathlib import Path

from helpers.build import Fixtures
from helpers.hostile import run_cli, snapshot
from helpers.hostile_wheels import GOOD, TAG, hostile_wheels
from helpers.wheel_builder import write_wheel
from torch_abi_audit import inspect_package


def test_a_wheelhouse_of_hostile_archives(built: Fixtures, tmp_path: Path) -> None:
    house = tmp_path / "wheelhouse"
    house.mkdir()
    cases = hostile_wheels(built, house)
    good = write_wheel(house, "zgood", "1.0", [TAG], {GOOD: built.stable_plugin.read_bytes()})
    before = snapshot(house)
    # One scratch directory: messages may name the working directory.
    runs = [run_cli([str(house), "-j", jobs], tmp_path / "scratch") for jobs in "121"]
    assert snapshot(house) == before
    # Byte-identical across runs and worker counts.
    assert len({(run.code, run.out, run.err) for run in runs}) == 1
    run = runs[0]
    assert run.code == 2
    assert run.peak_memory < 400 << 20
    blocks = run.out.split("\n\n")
    for case in cases.values():
        root = f"  Root: {case.path}"
        assert any(root in block.splitlines() for block in blocks), case.path.name
    ok = next(block for block in blocks if f"  Root: {good}" in block.splitlines())
    assert "  Torch ABI:   STABLE" in ok.splitlines()


def test_every_truncation_of_a_wheel(built: Fixtures, tmp_path: Path) -> None:
    """Cut anywhere — in a member, in the central directory, in the end record — a wheel is
    one error or problem, in bounded time."""
    original = write_wheel(
        tmp_path,
        "cut",
        "1.0",
        [TAG],
        {GOOD: built.stable_plugin.read_bytes(), "pkg/_c.abi3.so": built.abi3_ext.read_bytes()},
    )
    data = original.read_bytes()
    central = data.rfind(b"PK\x01\x02", 0, data.rfind(b"PK\x05\x06"))
    offsets = sorted({*range(0, len(data), max(1, len(data) // 48)), *range(central, len(data))})
    truncated = tmp_path / "truncated" / original.name
    truncated.parent.mkdir()
    for size in offsets:
        truncated.write_bytes(data[:size])
        started = time.perf_counter()
        report = inspect_package(truncated, jobs=1)
        assert time.perf_counter() - started < 2, size
        assert report.has_error, size
