"""Real wheels from the package index, cached between runs, and their libraries read in place;
the installed torch.

Tests that use wheels are marked ``network``. A wheel is fetched by the project's one
downloader (:func:`torch_abi_audit.sources.index.fetch_wheel`: ``pip download --no-deps
--only-binary :all:``) into ``$TORCH_ABI_AUDIT_CACHE/wheels`` (default
``~/.cache/torch-abi-audit/wheels``), the cache the scripts and the benchmarks share, and
reused from there afterwards. Tests marked ``torch`` take the installed torch from the one
torch finder (:func:`torch_abi_audit.sources.torch_install.locate_installed_torch`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from torch_abi_audit.model import Library
from torch_abi_audit.readers import parse_library
from torch_abi_audit.sources.index import DownloadError, default_cache, fetch_wheel
from torch_abi_audit.sources.torch_install import TORCH_DIR_VARIABLE, locate_installed_torch
from torch_abi_audit.sources.wheels import WheelArchive

WHEEL_CACHE = default_cache()
LIBRARY_SUFFIXES = (".so", ".dylib", ".pyd", ".dll")


def real_wheel(filename: str) -> Path:
    """The wheel named ``filename`` from the cache, downloaded with pip when it is not there.

    The requirement and the platform come from the file name itself.
    """
    path = WHEEL_CACHE / filename
    if path.is_file():
        return path
    name, version, _build, tags = parse_wheel_filename(filename)
    platforms = sorted({tag.platform for tag in tags})
    try:
        fetched = fetch_wheel(str(name), str(version), platforms=platforms, python_version="3.11")
    except DownloadError as exc:
        pytest.fail(f"{filename}: {exc}")
    if fetched != path:
        pytest.fail(f"asked pip for {filename}, it saved {fetched.name}")
    return path


def installed_torch(*, headers: bool = False) -> Path:
    """The installed ``torch`` package directory; skips the test when there is none (or, with
    ``headers``, when it ships no ``include`` folder)."""
    search = locate_installed_torch()
    if search.package is None:
        pytest.skip(
            f"no torch installation (looked in {search.searched}; set {TORCH_DIR_VARIABLE})"
        )
    if headers and not (search.package / "include").is_dir():
        pytest.skip(f"{search.package} has no include folder")
    return search.package


def read_all(library: Library) -> None:
    """Force every lazy part of ``library`` (and of its slices)."""
    for part in (library, *library.slices):
        part.imports.names()
        part.exports.names()
        part.exports.with_prefix("_Z", "Py")
        part.imports.symbols()
        part.exports.symbols()
        tuple(part.rodata)  # a streamed ELF member's read-only data ranges resolve when used


def read_member(wheel: Path, member: str) -> Library:
    """Parse one member in place through the byte sources the audit uses, with every lazy part
    decoded while the member is open, and read it to its end (checking its CRC)."""
    with WheelArchive(wheel) as archive:
        source = archive.open_member(member)
        try:
            library = parse_library(source, wheel / member)
            read_all(library)
            source.finish(verify=True)
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
                tuple(library.rodata)  # resolved while the member is open
                source.finish(verify=True)
            finally:
                source.close()
            yield member.name, library
