"""Fixture wheels on a loopback index for the survey tests (see ``tests/survey/conftest.py``)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from helpers.build import Fixtures
from helpers.local_index import LocalIndex
from helpers.wheel_builder import write_wheel

LINUX = "cp312-cp312-manylinux_2_28_x86_64"
PLATFORMS = ["--platform", "manylinux_2_39_x86_64", "--platform", "win_amd64"]
PACKAGES = [
    "survey-stable",
    "survey-unstable",
    "survey-corrupt",
    "survey-damaged",
    "survey-missing",
]


def run_arguments(index: LocalIndex, store: Path, *packages: str) -> list[str]:
    """``survey run`` arguments for ``packages`` of ``index`` into ``store``, on the test
    platforms (manylinux x86_64 and Windows)."""
    return ["run", *packages, "--store", str(store), *PLATFORMS, "--index-url", index.url]


def stable_wheel(directory: Path, built: Fixtures, version: str) -> Path:
    library = built.stable_plugin.read_bytes()
    return write_wheel(
        directory,
        "survey-stable",
        version,
        [LINUX],
        {"survey_stable/libstable_plugin.so": library},
        requires=["torch>=2.0"],
    )


def build_index(directory: Path, built: Fixtures) -> LocalIndex:
    """The index described in the module docstring (not started)."""
    directory.mkdir(parents=True, exist_ok=True)
    index = LocalIndex()
    index.add("survey-stable", stable_wheel(directory, built, "1.0"), "2025-11-03T10:00:00Z")
    index.add("survey-stable", stable_wheel(directory, built, "1.1"), "2026-01-10T10:00:00Z")
    pure = write_wheel(
        directory, "survey-stable", "1.1", ["py3-none-any"], {"survey_stable/__init__.py": b""}
    )
    index.add("survey-stable", pure, "2026-01-10T10:05:00Z")
    unstable = write_wheel(
        directory,
        "survey-unstable",
        "2.0",
        [LINUX],
        {"survey_unstable/libunstable.so": built.unstable_lib.read_bytes()},
        requires=["torch"],
    )
    index.add("survey-unstable", unstable, "2026-02-01T10:00:00Z")
    corrupt = directory / f"survey_corrupt-0.1-{LINUX}.whl"
    corrupt.write_bytes(b"this is not a zip archive\n" * 100)
    index.add("survey-corrupt", corrupt, "2026-02-02T10:00:00Z")
    damaged = write_wheel(
        directory,
        "survey-damaged",
        "0.1",
        [LINUX],
        {"survey_damaged/libstable_plugin.so": built.stable_plugin.read_bytes()},
        compression=zipfile.ZIP_STORED,
    )
    data = bytearray(damaged.read_bytes())
    data[data.index(b"\x7fELF") + 5000] ^= 0xFF  # the member's CRC-32 no longer matches
    damaged.write_bytes(bytes(data))
    index.add("survey-damaged", damaged, "2026-02-02T11:00:00Z")
    missing = write_wheel(directory, "survey-missing", "0.1", [LINUX], {"m/__init__.py": b""})
    index.add("survey-missing", missing, "2026-02-03T10:00:00Z", missing=True)
    return index
