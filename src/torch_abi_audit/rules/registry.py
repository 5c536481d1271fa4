"""Every finding code, declared once: its default severity, the gates it fails, what it means.

The ``--check`` gates, the README's findings table and the JSON Schema's enum of codes all come
from :data:`FINDING_CODES` (``scripts/generate_findings_docs.py`` writes the README table and
the schema enum; a test fails when they drift). Adding a finding is one entry here, a rule that
emits it through :func:`finding`, and that script run once.

A gate fails on the findings whose code it lists, whatever their severity: severity says how
much a finding matters to a reader, the gates say what a CI job refuses. Codes marked
``restates_verdict`` say what a library's row label already shows (``UNSTABLE``,
``abi3-tagged-violations``); they exist so that every gate violation has a code (for
``--ignore``, baselines and the JSON gate results), and the table does not list them again
among a package's findings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from torch_abi_audit.rules.findings import Evidence, Finding, Severity

_CODE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


class Gate(StrEnum):
    """The elementary ``--check`` gates."""

    TORCH = "torch"
    ABI3 = "abi3"
    METADATA = "metadata"
    LOAD = "load"


@dataclass(frozen=True)
class FindingCode:
    """The declaration of one finding code.

    ``severity`` is the default a rule gives it; ``gates`` the gates that fail on it (none: it
    informs and never fails); ``description`` one line saying when it is reported.
    """

    code: str
    severity: Severity
    gates: tuple[Gate, ...]
    description: str
    restates_verdict: bool = False


class UnknownFindingCode(ValueError):
    """A code that :data:`FINDING_CODES` does not declare."""


def _declare(*codes: FindingCode) -> Mapping[str, FindingCode]:
    declared: dict[str, FindingCode] = {}
    for entry in codes:
        if not _CODE.fullmatch(entry.code):
            raise ValueError(f"finding code {entry.code!r} is not lower-case-with-hyphens")
        if entry.code in declared:
            raise ValueError(f"finding code {entry.code!r} is declared twice")
        declared[entry.code] = entry
    return declared


_T, _A, _M, _L = Gate.TORCH, Gate.ABI3, Gate.METADATA, Gate.LOAD
_ERROR, _WARNING, _INFO = Severity.ERROR, Severity.WARNING, Severity.INFO

#: Every finding code, in the order the README lists them.
FINDING_CODES: Mapping[str, FindingCode] = _declare(
    FindingCode(
        "torch-unpinned-unstable",
        _ERROR,
        (_M,),
        "some library uses libtorch internals, but `Requires-Dist: torch` is missing or admits "
        "more than one release (`==X.Y.Z`, `==X.Y.*`, `~=X.Y.Z` pin one)",
    ),
    FindingCode(
        "torch-floor-missing",
        _WARNING,
        (_M,),
        "every torch-using library is stable, but no torch requirement (or no lower bound) rules "
        "out the releases lacking its shims",
    ),
    FindingCode(
        "torch-floor-too-low",
        _WARNING,
        (_M,),
        "as above, but the declared lower bound is older than the newest shim imported",
    ),
    FindingCode(
        "torch-requirement-invalid",
        _ERROR,
        (_M,),
        "a `Requires-Dist` naming torch is not a valid requirement (PEP 508: `torch >=2.11,,`, "
        "`torch (>=2.11`): installers reject or drop it, so no torch requirement is in effect, "
        "and the torch requirement checks above see none",
    ),
    FindingCode(
        "torch-over-pinned",
        _INFO,
        (),
        "stable libraries, yet pinned to one torch release (the message gives the range the ABI "
        "allows)",
    ),
    FindingCode(
        "abi3-version-specific-extension",
        _ERROR,
        (_M,),
        "an `abi3` wheel ships an extension module built for one Python version (by its file "
        "name, or linked to `python311.dll` / `libpython3.11`)",
    ),
    FindingCode(
        "version-specific-bundled-name",
        _INFO,
        (),
        "an `abi3` wheel ships a library with a version-specific name that is not an extension "
        "module (loaded through torch, e.g. torchao's `_C_mxfp8.cpython-310-…so`)",
    ),
    FindingCode(
        "none-abi-uses-capi",
        _WARNING,
        (_M,),
        "a `py3-none` platform wheel whose extension modules call the CPython API",
    ),
    FindingCode(
        "manylinux-tag-too-low",
        _ERROR,
        (_M,),
        "a library needs symbol versions (`GLIBC_2.xx`, `GLIBCXX_3.4.xx`, `CXXABI_1.3.x`, "
        "`GCC_…`, as its `.gnu.version_r` lists them) that the wheel's weakest `manylinux` "
        "tag does not allow per pypa/auditwheel's published policy, so pip installs it where "
        "it cannot load; or a `musllinux` wheel's library needs glibc, or a `manylinux` "
        "wheel's links musl. Names the library, the version, the symbol and the lowest honest "
        "tag (torchaudio 2.2.2 is tagged `manylinux1` but needs `manylinux_2_17`). Needs from "
        "the dynamic linker itself and weak version needs are not judged",
    ),
    FindingCode(
        "macos-version-above-tag",
        _WARNING,
        (_M,),
        "a Mach-O library, or one slice of a universal one, declares a newer minimum macOS than "
        "the wheel's `macosx_X_Y` tags let pip install it on (arm64 slices are compared with "
        "11.0 at least, the first macOS on arm64)",
    ),
    FindingCode(
        "load-failure",
        _ERROR,
        (_L,),
        "a library is predicted not to load on the torch loading is predicted against (a needed "
        "libtorch/CUDA library not found, a libtorch symbol not exported, a shim removed, a "
        "library of its own package it needs that will not load), or an extension module on the "
        "environment's interpreter (too old, or free-threaded for an `.abi3` module)",
    ),
    FindingCode(
        "needs-newer-torch",
        _ERROR,
        (_L,),
        "a stable library imports shims that torch does not have yet (it names them)",
    ),
    FindingCode(
        "above-target-version",
        _ERROR,
        (_T,),
        "with `--target-version X.Y`: a library imports shims newer than X.Y (not those it only "
        "looks up with `dlsym`); it names them and their releases",
    ),
    FindingCode(
        "deprecated-shim",
        _WARNING,
        (_M,),
        "a library imports shims the headers mark `[[deprecated]]` (with the replacement where "
        "the headers name one)",
    ),
    FindingCode(
        "abi3-newer-than-tag",
        _ERROR,
        (_A, _M),
        "an abi3 module imports stable-ABI symbols newer than the abi3 version its tag promises",
    ),
    FindingCode(
        "abi3-not-free-threaded",
        _INFO,
        (),
        "an `abi3` wheel without `abi3t` that ships `.abi3` extension modules: free-threaded "
        "Pythons do not load them (a wheel of libraries torch loads, with no module to import, "
        "is not concerned)",
    ),
    FindingCode(
        "abi3t-without-export-hook",
        _ERROR,
        (_A, _M),
        "a module claims `abi3t` (an `.abi3t` file, or a wheel tagged `abi3t`) but exports only "
        "`PyInit_*`: abi3t (PEP 803) makes `PyModuleDef` opaque, so an abi3t build defines its "
        "module through the PEP 793 hook `PyModExport_*`; without one it is a plain abi3 build, "
        "wrong for free-threaded Pythons",
    ),
    FindingCode(
        "bundled-libpython",
        _ERROR,
        (_M,),
        "the package ships a Python interpreter library (`libpython3.11.dylib`, "
        "`libpython3.12.so.1.0`, `python311.dll`, a framework's `Python`), recognised by its name "
        "or by defining the interpreter's entry points (`Py_Initialize`, `Py_Finalize`, "
        "`PyEval_EvalCode`), whatever its file is called (never an extension module, despite "
        "the `PyInit_*` of its built-in modules); modules that load it run against a second "
        "interpreter and crash (a warning when nothing in the package links it)",
    ),
    FindingCode(
        "bundled-libtorch",
        _ERROR,
        (_M,),
        "the package ships its own copy of libtorch (`libc10`, `libtorch_cpu`… even when "
        "`auditwheel repair` renamed it, e.g. `libc10-1a2b3c4d.so`), recognised by its soname "
        "without the repair tool's hash, or by defining functions only libtorch defines "
        "(`c10::detail::torchCheckFail`, `at::globalContext()`, so a static copy too): a "
        "second libtorch beside the installed one. torch itself is not concerned",
    ),
    FindingCode(
        "bundled-cuda-runtime",
        _WARNING,
        (_M,),
        "the package ships a CUDA runtime library (`libcudart`, `libcublas`, `libnvrtc`, "
        "`libcudnn`, `libnvjpeg`…), recognised by soname or by exporting its entry points "
        "(`cudaMalloc` + `cudaLaunchKernel` + `cudaGetDeviceCount`, `cublasCreate_v2`…): a "
        "second copy beside the one torch loads from the `nvidia-*` wheels, possibly of "
        "another version (torchcodec 0.17.0's Linux wheel vendors nvJPEG). `nvidia-*` "
        "distributions and torch are not concerned",
    ),
    FindingCode(
        "torch-unstable",
        _WARNING,
        (_T,),
        "libraries use libtorch internals outside the stable ABI (the `UNSTABLE` rows; torch "
        "itself, which implements them, is exempt)",
        restates_verdict=True,
    ),
    FindingCode(
        "abi3-tagged-violations",
        _ERROR,
        (_A,),
        "an extension module tagged `abi3` imports CPython API outside the stable ABI, or links "
        "one Python version's library (the `abi3-tagged-violations` rows; what `abi3audit "
        "--strict` fails)",
        restates_verdict=True,
    ),
    FindingCode(
        "not-abi3-compliant",
        _INFO,
        (_A,),
        "a package that uses torch ships extension modules that are not abi3 (CPython ABI `no` "
        "or `mixed`): each Python version needs its own wheel (torch itself is exempt)",
        restates_verdict=True,
    ),
)


def declared(code: str) -> FindingCode:
    """The declaration of ``code``; raises :class:`UnknownFindingCode` for an undeclared one."""
    try:
        return FINDING_CODES[code]
    except KeyError:
        raise UnknownFindingCode(f"{code!r} is not a finding code") from None


def finding_gates(code: str) -> tuple[Gate, ...]:
    """The gates a finding code fails (none for a code this release does not declare)."""
    entry = FINDING_CODES.get(code)
    return entry.gates if entry is not None else ()


def restates_verdict(code: str) -> bool:
    """Whether findings of ``code`` restate a library's row label (false for an undeclared
    code)."""
    entry = FINDING_CODES.get(code)
    return entry is not None and entry.restates_verdict


def gate_codes(gate: Gate) -> frozenset[str]:
    """The codes whose findings fail ``gate``."""
    return frozenset(code for code, entry in FINDING_CODES.items() if gate in entry.gates)


def finding(
    code: str,
    message: str,
    evidence: Evidence | None = None,
    *,
    libraries: Iterable[str] = (),
    severity: Severity | None = None,
) -> Finding:
    """A finding of a declared ``code`` (its declared severity unless ``severity`` is given).

    ``libraries`` are the libraries it is about, by their path inside the distribution (what
    baseline entries match); none for a finding about the package's metadata as a whole.
    Raises :class:`UnknownFindingCode` for an undeclared code: codes are never ad hoc.
    """
    entry = declared(code)
    return Finding(
        code,
        severity or entry.severity,
        message,
        evidence if evidence is not None else {},
        tuple(libraries),
    )
