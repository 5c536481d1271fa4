#!/usr/bin/env python3
"""Audit real PyTorch extension wheels and assert the verdicts and findings we expect (run in CI).

Each wheel named in :data:`EXPECTATIONS` is downloaded with the ordinary pip client (or taken
from the cache) and audited in place with the Python API (:func:`torch_abi_audit.inspect_package`
on the ``.whl`` file, which covers vendored ``<name>.libs`` directories too). Besides the torch
verdicts, the packaging-metadata findings (``Requires-Dist: torch`` against what the libraries
need, wheel tags against the files inside) and the wheel tags read are checked. When an installed
torch is found (without importing it), its package directory is audited as well. Nothing audited
is ever imported or unpacked.

    python scripts/check_real_world.py                     # every expectation
    python scripts/check_real_world.py --only torchcodec   # a subset (repeatable; NAME[==VERSION])
    python scripts/check_real_world.py -v                  # also print libraries and findings

The wheel cache is ``--cache DIR``, else ``$TORCH_ABI_AUDIT_CACHE/wheels``, else
``~/.cache/torch-abi-audit/wheels``; a wheel already there is not downloaded again. The installed
torch is looked for in ``$TORCH_ABI_AUDIT_TORCH_DIR`` (a ``torch`` package directory, or a
directory holding one) if set, else in this interpreter's site-packages. Without a torch the
torch check is skipped, which is not a failure.

Every failed expectation is collected and listed; the exit status is 1 if there was any.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

REPO = Path(__file__).resolve().parent.parent
# Like the other scripts, runnable from a checkout without installing the package first.
sys.path.insert(0, str(REPO / "src"))

from torch_abi_audit import (  # noqa: E402
    CPythonLabel,
    ExtensionReport,
    PackageReport,
    TorchLabel,
    TorchVerdict,
    inspect_package,
)
from torch_abi_audit.rules.findings import Finding, Severity  # noqa: E402
from torch_abi_audit.sources.index import (  # noqa: E402
    DownloadError,
    default_cache,
    expand_platform,
    fetch_wheel,
)
from torch_abi_audit.sources.torch_install import (  # noqa: E402
    TORCH_DIR_VARIABLE,
    locate_installed_torch,
    torch_version,
)

#: How many unstable symbols a failure message quotes.
QUOTED_SYMBOLS = 5


class Source(StrEnum):
    """Where the audited files come from."""

    WHEEL = "wheel"  # downloaded (or cached) wheel, audited in place
    INSTALLED_TORCH = "installed-torch"  # the torch package directory found on this machine


@dataclass(frozen=True)
class LibraryCheck:
    """What must hold for the libraries whose relative path matches ``pattern``.

    ``pattern`` is an :func:`fnmatch.fnmatchcase` glob over the POSIX path relative to the
    report's root (the member path inside the wheel, or the path under the torch package
    directory). At least one
    library must match. Every match must carry ``label`` (``None``: only require presence),
    import at least ``min_unstable`` unstable symbols and at least ``min_shims`` stable shims.
    ``torch_libraries`` must all be among the libtorch libraries it links (by file name, such
    as ``torch_cpu.dll``), and every unstable import the format binds to a library must be
    bound to one of them. ``cpython`` (if set) is its CPython label, ``python_library`` (if
    set) the Python library it links, and ``slices`` (if set) the architectures of its universal
    binary, in file order.
    """

    pattern: str
    label: TorchLabel | None = None
    min_unstable: int = 0
    min_shims: int = 0
    torch_libraries: tuple[str, ...] = ()
    cpython: CPythonLabel | None = None
    python_library: str | None = None
    slices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class FindingCheck:
    """A packaging-metadata finding the report must carry.

    ``code`` is the finding's code; ``severity`` (if set) its severity. Every ``(key, value)``
    in ``evidence`` must hold of the finding's evidence: ``evidence[key]`` equals ``value`` when
    it is a string, and includes it when it is a list.
    """

    code: str
    severity: Severity | None = None
    evidence: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class LoadCheck:
    """Predict loading on a torch and check the outcome.

    The torch is the wheel of release ``torch_wheel`` for ``torch_platforms`` (fetched like
    the audited wheels, read in place), the installed torch (``installed``), or a release of
    the stable-ABI table (``release``). ``loads`` is whether the package is predicted to load;
    ``message`` (if set) a text the first failing library's message must contain; ``missing``
    shims that must be among the symbols some failing library misses.
    """

    loads: bool
    torch_wheel: str | None = None
    torch_platforms: tuple[str, ...] = ()
    installed: bool = False
    release: str | None = None
    message: str | None = None
    missing: tuple[str, ...] = ()

    @property
    def against(self) -> str:
        """``torch 2.9.1`` / ``installed torch`` for titles."""
        if self.installed:
            return "installed torch"
        return f"torch {self.torch_wheel or self.release}"


@dataclass(frozen=True)
class Expectation:
    """The verdicts and findings expected for one release of one distribution on one platform.

    ``library_count`` (if set) is the exact number of libraries in the report;
    ``forbidden_labels`` are labels that no library may carry; ``min_torch`` (if set) is the
    package's expected torch floor. ``findings`` are exactly the findings the report carries
    (compared by code, order-insensitive; empty means none). ``requires_torch`` (if set) is the
    exact ``Requires-Dist: torch`` entries the distribution metadata declares. ``platforms`` and
    ``python_version`` are passed to ``pip download`` for wheels (whose tags must name one of
    those platforms); the first platform names the expectation in the output.
    """

    name: str
    version: str
    verdict: TorchVerdict
    libraries: tuple[LibraryCheck, ...] = ()
    library_count: int | None = None
    forbidden_labels: tuple[TorchLabel, ...] = ()
    min_torch: str | None = None
    findings: tuple[FindingCheck, ...] = ()
    requires_torch: tuple[str, ...] | None = None
    source: Source = Source.WHEEL
    platforms: tuple[str, ...] = ("manylinux_2_28_x86_64",)
    python_version: str = "3.11"
    load: LoadCheck | None = None

    @property
    def title(self) -> str:
        """Short display name: ``name version`` plus the platform for wheels, and the torch
        loading is predicted against."""
        where = "installed" if self.source is Source.INSTALLED_TORCH else self.platforms[0]
        against = f" on {self.load.against}" if self.load else ""
        return f"{self.name} {self.version} ({where}){against}"

    @property
    def expected(self) -> str:
        """The expected verdict (and torch floor, and load outcome) as in the summary table."""
        text = self.verdict + (f" >={self.min_torch}" if self.min_torch else "")
        if self.load is not None:
            text += ", loads" if self.load.loads else ", fails"
        return text


STABLE = TorchLabel.STABLE
UNSTABLE = TorchLabel.UNSTABLE

#: Stable libraries whose metadata declares no torch floor: ``Requires-Dist`` admits any torch.
FLOOR_MISSING_2_11 = FindingCheck(
    "torch-floor-missing", Severity.WARNING, evidence=(("needs", "2.11.0"),)
)

FLOOR_MISSING_2_10 = FindingCheck(
    "torch-floor-missing", Severity.WARNING, evidence=(("needs", "2.10.0"),)
)
#: The libc++ these macOS wheels vendor declares macOS 12.1; their tags say 11.0.
MACOS_LIBCXX_12_1 = FindingCheck("macos-version-above-tag", Severity.WARNING)
MACOS_ARM64 = "macosx_11_0_arm64"
MACOS_14_ARM64 = "macosx_14_0_arm64"
NEEDS_NEWER_TORCH = FindingCheck("needs-newer-torch", Severity.ERROR)
#: Every abi3 wheel without abi3t: free-threaded Pythons do not load .abi3 modules.
NOT_FREE_THREADED = FindingCheck("abi3-not-free-threaded", Severity.INFO)
WINDOWS = "win_amd64"


def torchaudio_2_9_1_against(load: LoadCheck, *findings: FindingCheck) -> Expectation:
    """torchaudio 2.9.1 (manylinux, unstable: it pins torch==2.9.1) predicted against one torch,
    with exactly ``findings``."""
    return Expectation("torchaudio", "2.9.1", TorchVerdict.UNSTABLE, findings=findings, load=load)


EXPECTATIONS: list[Expectation] = [
    # torchaudio 2.9 links against libtorch internals (at::Tensor, c10::...) and a few shims;
    # it pins the torch release it was built for, so there is nothing to find.
    Expectation(
        "torchaudio",
        "2.9.1",
        TorchVerdict.UNSTABLE,
        libraries=(
            LibraryCheck(
                "torchaudio/lib/libtorchaudio.so", UNSTABLE, min_unstable=100, min_shims=1
            ),
        ),
        findings=(),
        requires_torch=("torch==2.9.1",),
    ),
    # torchaudio 2.11 was ported to the stable ABI: abi3 libraries on shims only.
    Expectation(
        "torchaudio",
        "2.11.0",
        TorchVerdict.STABLE,
        libraries=(
            LibraryCheck("torchaudio/lib/_torchaudio.abi3.so", STABLE),
            LibraryCheck("torchaudio/lib/libtorchaudio.abi3.so", STABLE),
            LibraryCheck("torchaudio/lib/torchaudio_prefixctc.abi3.so", STABLE),
        ),
        library_count=3,
        forbidden_labels=(UNSTABLE,),
        min_torch="2.11.0",
        findings=(FLOOR_MISSING_2_11,),
    ),
    # Uses libtorch internals without pinning torch: the next torch release breaks it.
    Expectation(
        "torchcodec",
        "0.8.1",
        TorchVerdict.UNSTABLE,
        libraries=(LibraryCheck("torchcodec/libtorchcodec_core*.so", UNSTABLE),),
        findings=(FindingCheck("torch-unpinned-unstable", Severity.ERROR),),
    ),
    Expectation(
        "torchcodec",
        "0.17.0",
        TorchVerdict.STABLE,
        libraries=(
            LibraryCheck("torchcodec/libtorchcodec_core*.so", STABLE),
            LibraryCheck("torchcodec/libtorchcodec_custom_ops*.so", STABLE),
        ),
        forbidden_labels=(UNSTABLE,),
        min_torch="2.11.0",
        findings=(FLOOR_MISSING_2_11,),
    ),
    # The wheel is cp310-abi3, which `--python-version 3.11` matches. _C_mxfp8 keeps a
    # cpython-310 file name but is a library loaded through torch, not an extension module.
    Expectation(
        "torchao",
        "0.18.0",
        TorchVerdict.STABLE,
        libraries=(
            LibraryCheck("torchao/_C_cutlass_90a.abi3.so", STABLE),
            LibraryCheck("torchao/_C_mxfp8.cpython-310-x86_64-linux-gnu.so", STABLE),
        ),
        min_torch="2.11.0",
        # No abi3-not-free-threaded: torch loads these libraries, no Python imports them.
        findings=(
            FLOOR_MISSING_2_11,
            FindingCheck(
                "version-specific-bundled-name",
                Severity.INFO,
                evidence=(("libraries", "torchao/_C_mxfp8.cpython-310-x86_64-linux-gnu.so"),),
            ),
        ),
    ),
    # -- macOS and Windows builds of the same releases. Each build is judged on its own
    # imports: the floors differ from Linux's (torchaudio 2.11's macOS and Windows libraries
    # import no 2.11-only shim; its Linux build ships one more library that does).
    Expectation(
        "torchaudio",
        "2.9.1",
        TorchVerdict.UNSTABLE,
        libraries=(
            LibraryCheck(
                "torchaudio/lib/libtorchaudio.so", UNSTABLE, min_unstable=100, min_shims=1
            ),
        ),
        # Its vendored libc++ needs macOS 12.1; the wheel is tagged 11.0.
        findings=(MACOS_LIBCXX_12_1,),
        requires_torch=("torch==2.9.1",),
        platforms=(MACOS_ARM64,),
    ),
    Expectation(
        "torchaudio",
        "2.9.1",
        TorchVerdict.UNSTABLE,
        libraries=(
            LibraryCheck(
                "torchaudio/lib/libtorchaudio.pyd",
                UNSTABLE,
                min_unstable=100,
                min_shims=1,
                torch_libraries=("torch_cpu.dll", "c10.dll"),
            ),
            LibraryCheck(
                "torchaudio/lib/_torchaudio.pyd",
                UNSTABLE,
                torch_libraries=("torch_cpu.dll", "c10.dll"),
                python_library="python311.dll",
            ),
        ),
        findings=(),
        requires_torch=("torch==2.9.1",),
        platforms=(WINDOWS,),
    ),
    Expectation(
        "torchaudio",
        "2.11.0",
        TorchVerdict.STABLE,
        libraries=(
            LibraryCheck("torchaudio/lib/_torchaudio.abi3.so", STABLE),
            LibraryCheck("torchaudio/lib/libtorchaudio.abi3.so", STABLE, min_shims=60),
        ),
        forbidden_labels=(UNSTABLE,),
        min_torch="2.10.0",
        findings=(FLOOR_MISSING_2_10, MACOS_LIBCXX_12_1),
        platforms=(MACOS_ARM64,),
    ),
    Expectation(
        "torchaudio",
        "2.11.0",
        TorchVerdict.STABLE,
        libraries=(
            LibraryCheck(
                "torchaudio/lib/_torchaudio.pyd", STABLE, torch_libraries=("torch_cpu.dll",)
            ),
            LibraryCheck(
                "torchaudio/lib/libtorchaudio.pyd",
                STABLE,
                min_shims=60,
                torch_libraries=("torch_cpu.dll",),
            ),
        ),
        library_count=2,
        forbidden_labels=(UNSTABLE,),
        min_torch="2.10.0",
        findings=(FLOOR_MISSING_2_10,),
        platforms=(WINDOWS,),
    ),
    # torchcodec 0.8.1 for macOS vendors libpython3.11.dylib, and its custom-ops libraries
    # link it: a second interpreter in the process.
    Expectation(
        "torchcodec",
        "0.8.1",
        TorchVerdict.UNSTABLE,
        libraries=(
            LibraryCheck("torchcodec/libtorchcodec_core*.dylib", UNSTABLE),
            LibraryCheck(
                "torchcodec/libtorchcodec_custom_ops*.dylib",
                UNSTABLE,
                python_library="@loader_path/.dylibs/libpython3.11.dylib",
            ),
            LibraryCheck("torchcodec/.dylibs/libpython3.11.dylib"),
        ),
        findings=(
            FindingCheck("torch-unpinned-unstable", Severity.ERROR),
            MACOS_LIBCXX_12_1,
            FindingCheck(
                "bundled-libpython",
                Severity.ERROR,
                evidence=(
                    ("libraries", "torchcodec/.dylibs/libpython3.11.dylib"),
                    ("linked_by", "torchcodec/libtorchcodec_custom_ops4.dylib"),
                ),
            ),
        ),
        platforms=(MACOS_ARM64,),
    ),
    Expectation(
        "torchcodec",
        "0.8.1",
        TorchVerdict.UNSTABLE,
        libraries=(
            LibraryCheck(
                "torchcodec/libtorchcodec_core*.dll",
                UNSTABLE,
                torch_libraries=("c10.dll", "torch_cpu.dll"),
            ),
        ),
        findings=(FindingCheck("torch-unpinned-unstable", Severity.ERROR),),
        platforms=(WINDOWS,),
    ),
    # The index has torchcodec 0.17.0 for macOS 14 (arm64) only.
    Expectation(
        "torchcodec",
        "0.17.0",
        TorchVerdict.STABLE,
        libraries=(
            LibraryCheck("torchcodec/libtorchcodec_core*.dylib", STABLE),
            LibraryCheck("torchcodec/libtorchcodec_custom_ops*.dylib", STABLE),
        ),
        forbidden_labels=(UNSTABLE,),
        min_torch="2.11.0",
        findings=(FLOOR_MISSING_2_11,),
        platforms=("macosx_14_0_arm64",),
    ),
    Expectation(
        "torchcodec",
        "0.17.0",
        TorchVerdict.STABLE,
        libraries=(
            LibraryCheck(
                "torchcodec/libtorchcodec_core*.dll", STABLE, torch_libraries=("torch_cpu.dll",)
            ),
            LibraryCheck(
                "torchcodec/libtorchcodec_custom_ops*.dll",
                STABLE,
                torch_libraries=("torch_cpu.dll",),
                python_library="python311.dll",
            ),
        ),
        forbidden_labels=(UNSTABLE,),
        min_torch="2.11.0",
        findings=(FLOOR_MISSING_2_11,),
        platforms=(WINDOWS,),
    ),
    # CPython's stable ABI outside Linux: a universal2 abi3 extension whose x86_64 slice needs a
    # newer macOS than the tag says, and a Windows abi3 extension linked to python3.dll (its
    # file name carries no abi3 tag: the DLL it links says it). 48.0.1 is the newest release
    # with a universal2 wheel (49.0.0 and later ship thin macOS wheels only); 50.0.2 is the
    # newest for Windows.
    Expectation(
        "cryptography",
        "48.0.1",
        TorchVerdict.NO_TORCH,
        libraries=(
            LibraryCheck(
                "cryptography/hazmat/bindings/_rust.abi3.so",
                TorchLabel.NO_TORCH,
                cpython=CPythonLabel.ABI3_OK,
                slices=("x86_64", "arm64"),
            ),
        ),
        library_count=1,
        findings=(
            NOT_FREE_THREADED,
            FindingCheck(
                "macos-version-above-tag",
                Severity.WARNING,
                evidence=(
                    ("libraries", "cryptography/hazmat/bindings/_rust.abi3.so (x86_64): 10.13"),
                ),
            ),
        ),
        platforms=("macosx_10_9_universal2",),
    ),
    Expectation(
        "cryptography",
        "50.0.2",
        TorchVerdict.NO_TORCH,
        libraries=(
            LibraryCheck(
                "cryptography/hazmat/bindings/_rust.pyd",
                TorchLabel.NO_TORCH,
                cpython=CPythonLabel.ABI3_OK,
                python_library="python3.dll",
            ),
        ),
        library_count=1,
        findings=(NOT_FREE_THREADED,),
        platforms=(WINDOWS,),
    ),
    # -- Which torch will it load on. Against real torch builds (macOS arm64 wheels, read in
    # place) and against releases of the stable-ABI table.
    Expectation(
        "torchaudio",
        "2.11.0",
        TorchVerdict.STABLE,
        min_torch="2.10.0",
        findings=(FLOOR_MISSING_2_10, MACOS_LIBCXX_12_1, NEEDS_NEWER_TORCH),
        platforms=(MACOS_ARM64,),
        load=LoadCheck(
            loads=False,
            torch_wheel="2.9.1",
            torch_platforms=(MACOS_ARM64,),
            message="Symbol not found: _",
            missing=("torch_call_dispatcher", "torch_library_impl"),
        ),
    ),
    Expectation(
        "torchaudio",
        "2.11.0",
        TorchVerdict.STABLE,
        min_torch="2.10.0",
        findings=(FLOOR_MISSING_2_10, MACOS_LIBCXX_12_1),
        platforms=(MACOS_ARM64,),
        load=LoadCheck(loads=True, torch_wheel="2.13.0", torch_platforms=(MACOS_14_ARM64,)),
    ),
    Expectation(
        "torchcodec",
        "0.17.0",
        TorchVerdict.STABLE,
        min_torch="2.11.0",
        findings=(FLOOR_MISSING_2_11, NEEDS_NEWER_TORCH),
        platforms=(MACOS_14_ARM64,),
        load=LoadCheck(
            loads=False,
            torch_wheel="2.9.1",
            torch_platforms=(MACOS_ARM64,),
            missing=("torch_call_dispatcher",),
        ),
    ),
    Expectation(
        "torchcodec",
        "0.17.0",
        TorchVerdict.STABLE,
        min_torch="2.11.0",
        findings=(FLOOR_MISSING_2_11,),
        platforms=(MACOS_14_ARM64,),
        load=LoadCheck(loads=True, torch_wheel="2.13.0", torch_platforms=(MACOS_14_ARM64,)),
    ),
    # Unstable, built for 2.9.1: loads on the torch 2.9.1 build of its platform...
    Expectation(
        "torchaudio",
        "2.9.1",
        TorchVerdict.UNSTABLE,
        findings=(MACOS_LIBCXX_12_1,),
        platforms=(MACOS_ARM64,),
        load=LoadCheck(loads=True, torch_wheel="2.9.1", torch_platforms=(MACOS_ARM64,)),
    ),
    # ...and not next to torch 2.13.0 (its CUDA build meets a CPU torch; 'import torchaudio'
    # there raises "OSError: libtorch_cuda.so: cannot open shared object file").
    Expectation(
        "torchaudio",
        "2.9.1",
        TorchVerdict.UNSTABLE,
        findings=(FindingCheck("load-failure", Severity.ERROR),),
        load=LoadCheck(
            loads=False,
            installed=True,
            message="libtorch_cuda.so: cannot open shared object file: No such file or directory",
        ),
    ),
    # Against a release, an unstable library is resolved against that release's Linux build:
    # 2.13 is a CUDA 13 build (libcudart.so.12 missing) that no longer exports five libtorch
    # symbols torchaudio 2.9.1 imports — the five `ldd -r` reports beside the real 2.13 libraries.
    torchaudio_2_9_1_against(
        LoadCheck(
            loads=False,
            release="2.13",
            message="libcudart.so.12: cannot open shared object file",
            missing=(
                "_ZN3c1013MessageLoggerC1EPKcii",
                "_ZN3c104impl3cow23materialize_cow_storageERNS_11StorageImplE",
            ),
        ),
        FindingCheck("load-failure", Severity.ERROR),
    ),
    # Against the release it was built for it loads: its only symbol 2.9.1 does not export is
    # the weak TLS init function _ZTHN3c104impl26raw_local_dispatch_key_setE (optional).
    torchaudio_2_9_1_against(LoadCheck(loads=True, release="2.9.1")),
    # Against releases of the table: the Linux builds need 2.11, and a CUDA 13 runtime that the
    # 2.10 build (CUDA 12) does not install: the loader stops there first.
    Expectation(
        "torchaudio",
        "2.11.0",
        TorchVerdict.STABLE,
        min_torch="2.11.0",
        findings=(FLOOR_MISSING_2_11, FindingCheck("load-failure", Severity.ERROR)),
        load=LoadCheck(
            loads=False,
            release="2.10",
            message="libcudart.so.13: cannot open shared object file",
            missing=(),
        ),
    ),
    Expectation(
        "torchcodec",
        "0.17.0",
        TorchVerdict.STABLE,
        min_torch="2.11.0",
        findings=(FLOOR_MISSING_2_11,),
        load=LoadCheck(loads=True, release="2.11.0"),
    ),
    # torch itself: libtorch_cpu uses its own internals; vendored libgomp must be seen. torch
    # needs no torch requirement, so there is nothing to find.
    Expectation(
        "torch",
        "2.13.0",
        TorchVerdict.UNSTABLE,
        libraries=(
            LibraryCheck("lib/libtorch_cpu.so", UNSTABLE),
            LibraryCheck("lib/libgomp.so.1"),
        ),
        source=Source.INSTALLED_TORCH,
    ),
]


# -- checking ----------------------------------------------------------------------------------


def relative_name(library: ExtensionReport, root: Path) -> str:
    """``library``'s path relative to ``root`` in POSIX form (the absolute path if outside).

    For a wheel, ``root`` is the wheel file and the result the member path inside it.
    """
    try:
        return library.path.relative_to(root).as_posix()
    except ValueError:
        return library.path.as_posix()


def _codes(codes: Iterable[str]) -> str:
    return ", ".join(sorted(codes)) or "none"


def _quote(symbols: Sequence[str]) -> str:
    shown = "; ".join(symbols[:QUOTED_SYMBOLS])
    more = len(symbols) - QUOTED_SYMBOLS
    return shown + (f"; ... {more} more" if more > 0 else "")


def _describe(name: str, library: ExtensionReport) -> str:
    """One library's label with why it is not what was expected."""
    label = library.torch_label
    text = f"{name} is {label}"
    if library.error:
        text += f" ({library.error})"
    elif library.skipped:
        text += f" ({library.skipped})"
    elif label is TorchLabel.UNSTABLE:
        symbols = library.torch.unstable_symbols
        text += f" ({len(symbols)} unstable symbols: {_quote(symbols)})"
    return text


def _check_library(
    check: LibraryCheck, matches: Sequence[tuple[str, ExtensionReport]]
) -> Iterator[str]:
    if not matches:
        yield f"no library matches {check.pattern}"
        return
    for name, library in matches:
        if check.label is not None and library.torch_label is not check.label:
            yield f"expected {check.label}: " + _describe(name, library)
        unstable = len(library.torch.unstable_symbols)
        if unstable < check.min_unstable:
            yield f"{name}: {unstable} unstable symbols, expected at least {check.min_unstable}"
        shims = library.torch.stable_shim_count
        if shims < check.min_shims:
            yield f"{name}: {shims} stable shim imports, expected at least {check.min_shims}"
        yield from _check_linking(check, name, library)


def _file_name(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def _check_linking(check: LibraryCheck, name: str, library: ExtensionReport) -> Iterator[str]:
    """Torch libraries, Python library and slices of one library."""
    linked = [_file_name(n) for n in library.torch.torch_libraries]
    missing = [n for n in check.torch_libraries if n not in linked]
    if missing:
        yield f"{name}: links {', '.join(linked) or 'no torch library'}, expected {missing}"
    if check.torch_libraries:
        stray = {
            _file_name(u.library)
            for u in library.torch.unstable_details
            if u.library and _file_name(u.library) not in check.torch_libraries
        }
        if stray:
            yield f"{name}: unstable imports bound to {', '.join(sorted(stray))}"
    if check.cpython is not None and library.cpython_label is not check.cpython:
        yield f"{name}: CPython label {library.cpython_label}, expected {check.cpython}"
    if check.python_library is not None and library.cpython.python_library != check.python_library:
        yield (
            f"{name}: links Python library {library.cpython.python_library}, "
            f"expected {check.python_library}"
        )
    if check.slices is not None:
        machines = tuple(part.machine for part in library.slices)
        if machines != check.slices:
            yield f"{name}: slices {machines or 'none (thin)'}, expected {check.slices}"


def _evidence_holds(actual: str | list[str] | None, wanted: str) -> bool:
    return wanted in actual if isinstance(actual, list) else actual == wanted


def _check_findings(expectation: Expectation, findings: Sequence[Finding]) -> Iterator[str]:
    """The findings must have exactly the expected codes, and each its severity and evidence."""
    expected = Counter(check.code for check in expectation.findings)
    got = Counter(finding.code for finding in findings)
    if got != expected:
        unexpected = [f"{f.code}: {f.message}" for f in findings if f.code not in expected]
        detail = f" (unexpected: {'; '.join(unexpected)})" if unexpected else ""
        yield (
            f"findings: expected {_codes(expected.elements())}, "
            f"got {_codes(got.elements())}{detail}"
        )
    for check in expectation.findings:
        for finding in (f for f in findings if f.code == check.code):
            if check.severity is not None and finding.severity is not check.severity:
                yield (
                    f"finding {check.code}: severity {finding.severity}, expected {check.severity}"
                )
            for key, wanted in check.evidence:
                actual = finding.evidence.get(key)
                if not _evidence_holds(actual, wanted):
                    how = "to include" if isinstance(actual, list) else "to be"
                    yield (
                        f"finding {check.code}: evidence {key} is {actual!r}, "
                        f"expected {how} {wanted!r}"
                    )


def _check_wheel(expectation: Expectation, report: PackageReport) -> Iterator[str]:
    """A wheel report must name its wheel, tags for the target platform and its metadata."""
    if report.wheel is None:
        yield "not read as a wheel: the report names no wheel"
    elif not report.wheel.tags:
        yield f"{report.wheel.filename}: no wheel tags read"
    else:
        platforms = {tag for p in expectation.platforms for tag in expand_platform(p)}
        found = {tag.rpartition("-")[2] for tag in report.wheel.tags}
        if not found & platforms:
            yield (
                f"{report.wheel.filename}: wheel tags {', '.join(report.wheel.tags)} name no "
                f"{' or '.join(expectation.platforms)} platform"
            )
    dist = report.distribution
    if dist is None:
        yield "no distribution metadata read"
    elif canonicalize_name(dist.name) != canonicalize_name(expectation.name) or Version(
        dist.version
    ) != Version(expectation.version):
        yield (
            f"metadata names {dist.name} {dist.version}, "
            f"expected {expectation.name} {expectation.version}"
        )


def check_report(expectation: Expectation, report: PackageReport) -> list[str]:
    """Every way ``report`` falls short of ``expectation``.

    Library paths are matched relative to ``report.root`` (for a wheel, the member paths inside
    it). An empty list means the expectation holds.
    """
    failures: list[str] = []
    if report.error:
        failures.append(f"package error: {report.error}")
    failures += [f"cannot scan {p.path}: {p.reason}" for p in report.problems]
    if expectation.source is Source.WHEEL:
        failures += _check_wheel(expectation, report)
    named = [(relative_name(lib, report.root), lib) for lib in report.libraries]
    if report.torch_verdict is not expectation.verdict:
        culprits = [
            _describe(name, lib)
            for name, lib in named
            if lib.torch_label in (TorchLabel.UNSTABLE, TorchLabel.ERROR)
        ]
        detail = f" ({'; '.join(culprits)})" if culprits else ""
        failures.append(
            f"verdict: expected {expectation.verdict}, got {report.torch_verdict}{detail}"
        )
    if expectation.min_torch is not None:
        got = report.min_torch_version
        if got is None or Version(got) != Version(expectation.min_torch):
            failures.append(f"min torch: expected {expectation.min_torch}, got {got}")
    if expectation.library_count is not None and len(named) != expectation.library_count:
        listing = ", ".join(name for name, _ in named) or "none"
        failures.append(
            f"expected {expectation.library_count} libraries, found {len(named)}: {listing}"
        )
    for check in expectation.libraries:
        matches = [(name, lib) for name, lib in named if fnmatchcase(name, check.pattern)]
        failures += _check_library(check, matches)
    for name, lib in named:
        if lib.torch_label in expectation.forbidden_labels:
            failures.append("no library may be " + _describe(name, lib))
    if expectation.requires_torch is not None:
        declared = report.distribution.requires_torch if report.distribution else None
        if declared != expectation.requires_torch:
            failures.append(
                f"requires torch: expected {expectation.requires_torch}, got {declared}"
            )
    failures += _check_findings(expectation, report.findings)
    if expectation.load is not None:
        failures += _check_load(expectation.load, report)
    return failures


def _check_load(check: LoadCheck, report: PackageReport) -> Iterator[str]:
    """The load prediction must say what ``check`` expects."""
    if report.torch_reference is None or report.load_status is None:
        yield "no load prediction was made"
        return
    failing = report.load_failures
    if check.loads and failing:
        yield f"expected to load on {report.torch_reference.label}: {_load_messages(failing)}"
    if not check.loads and not failing:
        yield f"expected not to load on {report.torch_reference.label}, but every library loads"
    if check.message and failing:
        first = failing[0].load
        assert first is not None
        if check.message not in first.message:
            yield f"load message {first.message!r} does not contain {check.message!r}"
    missed = {s for lib in failing if lib.load for s in lib.load.undefined_symbols}
    absent = [name for name in check.missing if name not in missed]
    if absent:
        yield f"expected missing symbols not reported: {', '.join(absent)}"


def _load_messages(libraries: Sequence[ExtensionReport]) -> str:
    return "; ".join(
        f"{lib.path.name}: {lib.load.message}" for lib in libraries[:QUOTED_SYMBOLS] if lib.load
    )


# -- wheels ------------------------------------------------------------------------------------


class WheelError(Exception):
    """A wheel could not be obtained."""


def download_wheel(cache: Path, expectation: Expectation) -> Path:
    """The expectation's wheel from ``cache``, downloading it with pip when it is not there."""
    try:
        return fetch_wheel(
            expectation.name,
            expectation.version,
            platforms=expectation.platforms,
            python_version=expectation.python_version,
            cache=cache,
        )
    except DownloadError as exc:
        raise WheelError(str(exc)) from exc


def _load_target(
    expectation: Expectation, cache: Path, outcome: Outcome
) -> tuple[Path | None, str | None]:
    """The ``torch`` path or ``torch_version`` to predict loading against, if any (setting
    ``outcome.skipped`` when the installed torch it needs is not there)."""
    check = expectation.load
    if check is None:
        return None, None
    if check.release is not None:
        return None, check.release
    if check.installed:
        torch_dir, searched = find_torch_dir()
        if torch_dir is None:
            outcome.skipped = f"torch is not installed (looked in {searched})"
        return torch_dir, None
    assert check.torch_wheel is not None
    torch_wheel = Expectation(
        "torch",
        check.torch_wheel,
        TorchVerdict.UNSTABLE,
        platforms=check.torch_platforms or expectation.platforms,
        python_version=expectation.python_version,
    )
    path = download_wheel(cache, torch_wheel)
    outcome.rows.append(f"torch wheel: {path}")
    return path, None


# -- installed torch ---------------------------------------------------------------------------


def find_torch_dir() -> tuple[Path | None, str]:
    """The installed torch package directory, found without importing torch."""
    search = locate_installed_torch()
    return search.package, search.searched


# -- running -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What happened to one expectation."""

    expectation: Expectation
    got: str = ""
    failures: list[str] = field(default_factory=list)
    skipped: str | None = None
    seconds: float = 0.0
    rows: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``OK``, ``FAIL`` or ``SKIP``."""
        if self.failures:
            return "FAIL"
        return "SKIP" if self.skipped else "OK"


def library_rows(report: PackageReport) -> list[str]:
    """One line per library for ``-v``: label, shims, unstable symbols, torch floor, path."""
    rows = []
    for lib in sorted(report.libraries, key=lambda lib: relative_name(lib, report.root)):
        floor = lib.torch.min_torch_version or "-"
        rows.append(
            f"{lib.torch_label:<9} shims={lib.torch.stable_shim_count:<4} "
            f"unstable={len(lib.torch.unstable_symbols):<5} min={floor:<7} "
            f"{relative_name(lib, report.root)}"
        )
    return rows


def metadata_rows(report: PackageReport) -> list[str]:
    """For ``-v``: the wheel tags, the distribution's torch requirements, one line per finding."""
    rows = []
    if report.wheel is not None:
        rows.append(f"tags: {', '.join(report.wheel.tags) or 'none'}")
    if report.distribution is not None:
        dist = report.distribution
        requires = "; ".join(dist.requires_torch) or "none"
        rows.append(f"metadata: {dist.name} {dist.version}, requires torch: {requires}")
    rows += [f"finding {f.severity:<7} {f.code}: {f.message}" for f in report.findings]
    if not report.findings:
        rows.append("findings: none")
    return rows


def _judge(outcome: Outcome, report: PackageReport) -> None:
    outcome.got = report.torch_verdict + (
        f" >={report.min_torch_version}" if report.min_torch_version else ""
    )
    if report.torch_reference is not None and report.load_status is not None:
        outcome.got += ", fails" if report.load_failures else ", loads"
    outcome.failures += check_report(outcome.expectation, report)
    outcome.rows += metadata_rows(report) + library_rows(report)


def run_wheel(expectation: Expectation, cache: Path) -> Outcome:
    """Obtain one wheel, audit it in place and check it against ``expectation``."""
    outcome = Outcome(expectation)
    start = time.perf_counter()
    try:
        wheel = download_wheel(cache, expectation)
        outcome.rows.append(f"wheel: {wheel}")
        torch, torch_version = _load_target(expectation, cache, outcome)
        if outcome.skipped:
            return outcome
        _judge(outcome, inspect_package(wheel, torch=torch, torch_version=torch_version))
    except WheelError as exc:
        outcome.got = "-"
        outcome.failures.append(str(exc))
    outcome.seconds = time.perf_counter() - start
    return outcome


def run_installed_torch(expectation: Expectation) -> Outcome:
    """Audit the installed torch package directory, if it is the expected release."""
    outcome = Outcome(expectation, got="-")
    start = time.perf_counter()
    torch_dir, searched = find_torch_dir()
    if torch_dir is None:
        if os.environ.get(TORCH_DIR_VARIABLE):
            outcome.failures.append(f"no torch package (torch/version.py) at {searched}")
        else:
            outcome.skipped = f"torch is not installed (looked in {searched})"
        return outcome
    found = torch_version(torch_dir)
    try:
        matches = found is not None and (
            Version(found).release == Version(expectation.version).release
        )
    except InvalidVersion:
        matches = False
    if not matches:
        outcome.skipped = (
            f"found torch {found} at {torch_dir}, expectations are for another release"
        )
        return outcome
    outcome.rows.append(f"torch {found}: {torch_dir}")
    _judge(outcome, inspect_package(torch_dir))
    outcome.seconds = time.perf_counter() - start
    return outcome


def select(expectations: Iterable[Expectation], only: Sequence[str]) -> list[Expectation]:
    """The expectations named by ``only`` (``NAME`` or ``NAME==VERSION``); all if it is empty."""
    chosen = []
    for expectation in expectations:
        for wanted in only or ["*"]:
            name, _, version = wanted.partition("==")
            if (name == "*" or canonicalize_name(name) == canonicalize_name(expectation.name)) and (
                not version or Version(version) == Version(expectation.version)
            ):
                chosen.append(expectation)
                break
    return chosen


def render(outcomes: Sequence[Outcome], *, verbose: bool) -> str:
    """The summary table, then per-library rows (verbose), failures and skips."""
    headers = ("wheel", "expected", "got", "result", "time")
    table = [
        (o.expectation.title, o.expectation.expected, o.got, o.status, f"{o.seconds:.1f}s")
        for o in outcomes
    ]
    widths = [max(len(row[i]) for row in [headers, *table]) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *table]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    for outcome in outcomes:
        details = []
        if verbose:
            details += [f"    {row}" for row in outcome.rows]
        details += [f"  FAIL {failure}" for failure in outcome.failures]
        if outcome.skipped:
            details.append(f"  SKIP {outcome.skipped}")
        if details:
            lines += ["", f"{outcome.expectation.title}:", *details]
    failed = sum(1 for o in outcomes if o.failures)
    skipped = sum(1 for o in outcomes if o.skipped and not o.failures)
    passed = len(outcomes) - failed - skipped
    lines += ["", f"{passed} passed, {failed} failed, {skipped} skipped"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected expectations; 0 when all hold (skips allowed), else 1."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cache", type=Path, default=None, help=f"wheel cache (default: {default_cache()})"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this distribution (NAME or NAME==VERSION; repeatable)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print tags, findings and per-library rows"
    )
    args = parser.parse_args(argv)
    known = {canonicalize_name(e.name) for e in EXPECTATIONS}
    for wanted in args.only:
        name, _, version = wanted.partition("==")
        if canonicalize_name(name) not in known:
            parser.error(f"--only {wanted}: unknown name (known: {', '.join(sorted(known))})")
        try:
            Version(version or "0")
        except InvalidVersion:
            parser.error(f"--only {wanted}: invalid version")
    selected = select(EXPECTATIONS, args.only)
    if not selected:
        parser.error("--only matched no expectation")
    cache: Path = args.cache or default_cache()
    outcomes = [
        run_installed_torch(e) if e.source is Source.INSTALLED_TORCH else run_wheel(e, cache)
        for e in selected
    ]
    print(render(outcomes, verbose=args.verbose))
    return 1 if any(o.failures for o in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
