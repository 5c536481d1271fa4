"""Real wheels from the package index, cached between runs, and their libraries read in place.

Tests that use them are marked ``network``. A wheel is fetched the ordinary way —
``pip download --no-deps --only-binary :all: --platform TAG --python-version 3.11`` — into
``$TORCH_ABI_AUDIT_CACHE/wheels`` (default ``~/.cache/torch-abi-audit/wheels``), the cache the
real-world check and the benchmarks share, and reused from there afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from torch_abi_audit.model import Library
from torch_abi_audit.readers import parse_library
from torch_abi_audit.sources.wheels import WheelArchive

CACHE = Path(os.environ.get("TORCH_ABI_AUDIT_CACHE", Path.home() / ".cache/torch-abi-audit"))
WHEEL_CACHE = CACHE / "wheels"
LIBRARY_SUFFIXES = (".so", ".dylib", ".pyd", ".dll")


def real_wheel(filename: str) -> Path:
    """The wheel named ``filename`` from the cache, downloaded with pip when it is not there.

    The requirement and the platform come from the file name itself.
    """
    path = WHEEL_CACHE / filename
    if path.is_file():
        return path
    name, version, _build, tags = parse_wheel_filename(filename)
    platform = sorted(tag.platform for tag in tags)[0]
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
    command += ["--platform", platform, "--python-version", "3.11", "-d", str(WHEEL_CACHE)]
    command.append(f"{name}=={version}")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not path.is_file():
        failure = result.stderr[-500:]
        pytest.fail(f"pip download of {name}=={version} ({platform}) failed: {failure}")
    return path


def read_all(library: Library) -> None:
    """Force every lazy part of ``library`` (and of its slices)."""
    for part in (library, *library.slices):
        part.imports.names()
        part.exports.names()
        part.exports.with_prefix("_Z", "Py")
        part.imports.symbols()
        part.exports.symbols()


def read_member(wheel: Path, member: str) -> Library:
    """Parse one member in place through the byte sources the audit uses, with every lazy part
    decoded while the member is open, and read it to its end (checking its CRC)."""
    with WheelArchive(wheel) as archive:
        source = archive.open_member(member)
        try:
            library = parse_library(source, wheel / member)
            read_all(library)
            source.finish()
        finally:
            source.close()
    return library


def member_bytes(wheel: Path, member: str) -> bytes:
    """The whole decompressed content of one member (for making corrupted copies)."""
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        return archive.read(member)


def library_members(
    filename: str, suffixes: tuple[str, ...] = LIBRARY_SUFFIXES
) -> Iterator[tuple[str, Library]]:
    """``(member name, library)`` for every member of a real wheel named with ``suffixes``."""
    with WheelArchive(real_wheel(filename)) as archive:
        for member in archive.library_members():
            if not member.name.lower().endswith(suffixes):
                continue
            source = archive.open_member(member.name)
            try:
                library = parse_library(source, Path(member.name))
                source.finish()
            finally:
                source.close()
            yield member.name, library
