"""Fixture wheels on a loopback index for the survey tests (see ``tests/survey/conftest.py``)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from helpers.build import Fixtures
from helpers.fake_torch import build_library
from helpers.local_index import LocalIndex
from helpers.pe_builder import Export, Import, build_pe
from helpers.wheel_builder import flip_byte, write_wheel

LINUX = "cp312-cp312-manylinux_2_28_x86_64"
WINDOWS = "cp312-cp312-win_amd64"
PLATFORMS = ["--platform", "manylinux_2_39_x86_64", "--platform", "win_amd64"]
PACKAGES = [
    "survey-stable",
    "survey-unstable",
    "survey-corrupt",
    "survey-damaged",
    "survey-missing",
]
#: Projects whose wheels load, fail or cannot be told on the newest release, per platform
#: (see :func:`add_load_projects`).
LOAD_PACKAGES = ["survey-cuda", "survey-probe", "survey-pinned"]
SHIM = "aoti_torch_get_dim"  # every release since 2.9.0
# A C function libtorch_cpu carries (from cpuinfo) that the release data does not record.
UNRECORDED = "cpuinfo_initialize"
# A CUDA runtime of a major no release of the data installs.
OLD_CUDART = "libcudart.so.11.0"
SHIM_USER = f"""
#include <stdint.h>
int32_t {SHIM}(void*, int64_t*);
__attribute__((visibility("default"))) int64_t entry(void) {{
  int64_t dim = 0;
  {SHIM}(0, &dim);
  return dim;
}}
"""


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
    # the member's CRC-32 no longer matches
    flip_byte(damaged, damaged.read_bytes().index(b"\x7fELF") + 5000)
    index.add("survey-damaged", damaged, "2026-02-02T11:00:00Z")
    missing = write_wheel(directory, "survey-missing", "0.1", [LINUX], {"m/__init__.py": b""})
    index.add("survey-missing", missing, "2026-02-03T10:00:00Z", missing=True)
    add_load_projects(index, directory / "loads", built)
    return index


def _windows_module(*imports: str) -> bytes:
    """A ``_C.pyd`` importing ``imports`` from ``torch_cpu.dll``."""
    pe = build_pe(
        imports=[Import("torch_cpu.dll", list(imports))],
        exports=[Export("PyInit__C")],
        export_name="_C.pyd",
    )
    return pe.data


def _cuda_library(directory: Path) -> bytes:
    """A stable Linux library (one shim) that needs :data:`OLD_CUDART`."""
    links = directory / "links"
    for soname in (OLD_CUDART, "libtorch_cpu.so"):
        build_library(links, soname, "int stand_in(void) { return 1; }\n", "-Wl,-soname," + soname)
    flags = ["-L", str(links), "-Wl,--no-as-needed", "-l:libtorch_cpu.so", f"-l:{OLD_CUDART}"]
    return build_library(directory / "cuda", "libcudaops.so", SHIM_USER, *flags).read_bytes()


def add_load_projects(index: LocalIndex, directory: Path, built: Fixtures) -> None:
    """Projects judged against the newest release's build of each wheel's own platform:

    * ``survey-cuda`` 1.0 (``torch>=2.9``): a stable Linux library that needs a CUDA 11
      runtime (fails: the Linux build installs another), and a stable Windows module (loads
      on the CPU build);
    * ``survey-probe`` 1.0 (``torch>=2.9``): a Windows module importing a libtorch C function
      the release data does not record (unstable; cannot be told);
    * ``survey-pinned`` 1.0 (``torch==2.9.1``): the unstable Linux library and a stable
      Windows module, both pinned to another release (pip never pairs them with the newest).
    """
    directory.mkdir(parents=True, exist_ok=True)
    at = "2026-04-01T10:00:00Z"
    wheels = [
        (
            "survey-cuda",
            LINUX,
            {"survey_cuda/libcudaops.so": _cuda_library(directory)},
            "torch>=2.9",
        ),
        ("survey-cuda", WINDOWS, {"survey_cuda/_C.pyd": _windows_module(SHIM)}, "torch>=2.9"),
        (
            "survey-probe",
            WINDOWS,
            {"survey_probe/_C.pyd": _windows_module(SHIM, UNRECORDED)},
            "torch>=2.9",
        ),
        (
            "survey-pinned",
            LINUX,
            {"survey_pinned/libunstable.so": built.unstable_lib.read_bytes()},
            "torch==2.9.1",
        ),
        ("survey-pinned", WINDOWS, {"survey_pinned/_C.pyd": _windows_module(SHIM)}, "torch==2.9.1"),
    ]
    for name, tag, files, requirement in wheels:
        wheel = write_wheel(directory, name, "1.0", [tag], files, requires=[requirement])
        index.add(name, wheel, at)
