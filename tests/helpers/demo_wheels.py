"""The wheels the report-format tests and the golden outputs audit.

Two packages as a pull request would show them, built from the compiled fixtures:

* ``portpkg`` 1.0 (``cp311-abi3-manylinux_2_28_x86_64``), a port in progress: an extension
  module tagged abi3 that imports private CPython API, two libraries that import the same
  libtorch internals (so each symbol is "in 2 libraries"), one library already on the stable
  ABI, and no torch requirement (``torch-unpinned-unstable``);
* ``stablepkg`` 2.0, done: a stable library and an abi3 extension, ``torch>=2.11``.

:func:`build_port_next` adds ``portpkg`` 1.1, the port one step on (what the documentation's
``diff`` examples compare): the extension module keeps to the stable ABI, ``libcore.so`` is
ported, ``libcore_cuda.so`` is not yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from helpers.build import Fixtures
from helpers.wheel_builder import write_wheel

TAG = "cp311-abi3-manylinux_2_28_x86_64"


@dataclass(frozen=True)
class DemoWheels:
    """Paths of the demo wheels."""

    port: Path
    stable: Path


def build_demo(directory: Path, built: Fixtures) -> DemoWheels:
    """Write the demo wheels into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    port = write_wheel(
        directory,
        "portpkg",
        "1.0",
        [TAG],
        {
            "portpkg/_C.abi3.so": built.abi3_bad_ext.read_bytes(),
            "portpkg/lib/libcore.so": built.unstable_lib.read_bytes(),
            "portpkg/lib/libcore_cuda.so": built.unstable_lib.read_bytes(),
            "portpkg/lib/libops.so": built.stable_plugin.read_bytes(),
        },
    )
    stable = write_wheel(
        directory,
        "stablepkg",
        "2.0",
        [TAG],
        {
            "stablepkg/_ext.abi3.so": built.abi3_ext.read_bytes(),
            "stablepkg/libops.so": built.stable_plugin.read_bytes(),
        },
        requires=["torch>=2.11"],
    )
    return DemoWheels(port, stable)


def build_port_next(directory: Path, built: Fixtures) -> Path:
    """Write ``portpkg`` 1.1 into ``directory`` (see the module docstring); returns its path."""
    return write_wheel(
        directory,
        "portpkg",
        "1.1",
        [TAG],
        {
            "portpkg/_C.abi3.so": built.abi3_ext.read_bytes(),
            "portpkg/lib/libcore.so": built.stable_plugin.read_bytes(),
            "portpkg/lib/libcore_cuda.so": built.unstable_lib.read_bytes(),
            "portpkg/lib/libops.so": built.stable_plugin.read_bytes(),
        },
    )
