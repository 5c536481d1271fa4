"""Hand-made macOS and Windows wheels: Mach-O and PE libraries built byte by byte, packed with
real platform tags. ``tests/test_platforms.py`` audits them; the documentation's examples show
them (``scripts/generate_golden_outputs.py``).

* ``winpkg`` 1.0 (``cp311-abi3-win_amd64``): an extension linking ``python3.dll`` (abi3 by the
  DLL, not the name), one linking ``python311.dll``, a stable library importing shims from
  ``torch_cpu.dll``, and a legacy one importing a ``c10`` C++ entity and a C symbol from
  ``c10.dll``;
* ``macpkg`` 1.0 (``cp311-abi3-macosx_10_9_universal2``): a universal extension whose x86_64
  slice needs macOS 10.13 and whose arm64 slice calls a shim, a legacy library bound to
  ``libc10.dylib``, a vendored ``libpython3.11.dylib`` and a module that links it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers.macho_builder import (
    CPU_TYPE_ARM64,
    CPU_TYPE_X86_64,
    LC_LOAD_DYLIB,
    PLATFORM_MACOS,
    FatSlice,
    MachO,
    build_fat,
    defined,
    undefined,
    version,
)
from helpers.pe_builder import Export, Import, build_pe
from helpers.wheel_builder import write_wheel

SHIM = "aoti_torch_get_dim"  # in every table since the stable ABI's baseline
NEWER_SHIM = "torch_call_dispatcher"  # needs a newer torch than the baseline
FLAT_LOOKUP = 0xFE  # DYNAMIC_LOOKUP_ORDINAL: resolved from whatever is loaded (the interpreter)
CHECK_FAIL_MSVC = "?torchCheckFail@detail@c10@@YAXPEBD0IAEBV?$basic_string@DU?$char_traits@D@std@@V?$allocator@D@2@@std@@@Z"  # noqa: E501
CHECK_FAIL_ITANIUM = (
    "_ZN3c106detail14torchCheckFailEPKcS2_jRKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE"
)


def pyd(*imports: Import, init: str | None = None) -> bytes:
    exports = [Export(f"PyInit_{init}")] if init else []
    return build_pe(imports=imports, exports=exports, export_name=None).data


def write_windows_wheel(directory: Path) -> Path:
    """``winpkg`` 1.0 in ``directory``."""
    kernel = Import("KERNEL32.dll", ["GetLastError"])
    files = {
        "winpkg/_stable.pyd": pyd(
            Import("python3.dll", ["PyModule_Create2", "PyLong_FromLong"]), kernel, init="_stable"
        ),
        "winpkg/_versioned.pyd": pyd(
            Import("python311.dll", ["PyModule_Create2", "_PyLong_AsByteArray"]),
            init="_versioned",
        ),
        "winpkg/lib/ops.dll": pyd(Import("torch_cpu.dll", [SHIM, NEWER_SHIM]), kernel),
        "winpkg/lib/legacy.dll": pyd(
            Import("c10.dll", [CHECK_FAIL_MSVC, "c10_private_c_function"]),
            Import("torch_cpu.dll", [SHIM]),
        ),
    }
    return write_wheel(directory, "winpkg", "1.0", ["cp311-abi3-win_amd64"], files)


TORCH_CPU = "@rpath/libtorch_cpu.dylib"
C10 = "@rpath/libc10.dylib"
SYSTEM = "/usr/lib/libSystem.B.dylib"


def dylib(cputype: int, minos: tuple[int, int], **fields: Any) -> bytes:
    return (
        MachO(cputype=cputype, build_version=(PLATFORM_MACOS, version(*minos)), **fields)
        .build()
        .data
    )


def write_mac_wheel(directory: Path) -> Path:
    """``macpkg`` 1.0 in ``directory``."""
    extension = build_fat(
        [
            # x86_64: plain CPython extension, built for 10.13 (the tag says 10.9)
            FatSlice(
                CPU_TYPE_X86_64,
                dylib(
                    CPU_TYPE_X86_64,
                    (10, 13),
                    dylibs=[(LC_LOAD_DYLIB, SYSTEM)],
                    exports=[defined("_PyInit__ext")],
                    imports=[undefined("_PyLong_FromLong", FLAT_LOOKUP), undefined("_free", 1)],
                ),
            ),
            # arm64: also calls a shim (fine for arm64 at 11.0 under a 10.9 universal2 tag)
            FatSlice(
                CPU_TYPE_ARM64,
                dylib(
                    CPU_TYPE_ARM64,
                    (11, 0),
                    dylibs=[(LC_LOAD_DYLIB, SYSTEM), (LC_LOAD_DYLIB, TORCH_CPU)],
                    exports=[defined("_PyInit__ext")],
                    imports=[
                        undefined("_PyLong_FromLong", FLAT_LOOKUP),
                        undefined("_free", 1),
                        undefined("_" + SHIM, 2),
                    ],
                ),
            ),
        ]
    ).data
    legacy = dylib(
        CPU_TYPE_ARM64,
        (11, 0),
        dylibs=[(LC_LOAD_DYLIB, C10), (LC_LOAD_DYLIB, SYSTEM)],
        imports=[undefined("_" + CHECK_FAIL_ITANIUM, 1), undefined("_c10_private_c_function", 1)],
    )
    libpython = dylib(
        CPU_TYPE_ARM64,
        (11, 0),
        id_dylib="@rpath/libpython3.11.dylib",
        exports=[defined("_PyLong_FromLong")],
    )
    linked = dylib(
        CPU_TYPE_ARM64,
        (11, 0),
        dylibs=[(LC_LOAD_DYLIB, "@loader_path/.dylibs/libpython3.11.dylib")],
        exports=[defined("_PyInit__linked")],
        imports=[undefined("_PyLong_FromLong", 1)],
    )
    files = {
        "macpkg/_ext.abi3.so": extension,
        "macpkg/liblegacy.dylib": legacy,
        "macpkg/.dylibs/libpython3.11.dylib": libpython,
        "macpkg/_linked.abi3.so": linked,
    }
    return write_wheel(
        directory,
        "macpkg",
        "1.0",
        ["cp311-abi3-macosx_10_9_universal2"],
        files,
        requires=["torch==2.13.*"],
    )
