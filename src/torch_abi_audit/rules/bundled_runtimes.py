"""Copies of torch's, CUDA's or Python's runtime that a package ships itself.

``auditwheel repair`` grafts every library an extension links into the wheel unless told
otherwise; projects pass ``--exclude 'libtorch*'``, but versioned or renamed sonames defeat the
pattern, and the wheel then carries its own ``libc10``/``libtorch_cpu`` or ``libcudart``
(ROCm/aiter#5318: ~890 MB; uccl#1038: a renamed ``libcudart`` crashed the loader). Loaded beside
the torch that is installed, such a copy is a second instance of libtorch's global state (its
operator registry, allocators, CUDA context bookkeeping) — or of the CUDA runtime, in a version
that may not match the one torch's ``nvidia-*`` wheels bring.

A copy is recognised by what the file *is*, not by what the wheel calls it:

* its ``DT_SONAME`` / install name / export-directory name (else its file name) once the hash a
  repair tool inserts is taken out (``libc10-1a2b3c4d.so`` → ``libc10.so``, auditwheel;
  ``libcudart.41118559.so.12``, older auditwheel; ``cudart64_12-<hash>.dll``, delvewheel):
  one of libtorch's own libraries, or a CUDA toolkit runtime library;
* else its exports: a strong definition of a function that only libtorch's ``c10`` /
  ``torch_cpu`` define (``c10::detail::torchCheckFail``, ``at::globalContext()``), or the entry
  points of a CUDA runtime library (``cudaMalloc`` with ``cudaLaunchKernel``, ``cublasCreate_v2``,
  ``nvrtcCompileProgram``…) — which also finds a runtime linked in statically.

A copy of the Python interpreter's library (``libpython3.12.so.1.0``, ``libpython3.11.dylib``,
the ``Python`` binary of a framework build, ``python311.dll``), which ``delocate`` copies into a
macOS wheel when a library links the framework Python it was built with, is recognised the same
way: by a Python library's name (soname, install name, file name), else by *defining* the
interpreter's own entry points — ``Py_Initialize``, ``Py_Finalize`` and ``PyEval_EvalCode``
(the functions that create an interpreter, tear it down, and run code in it). An extension
module never defines them: it is loaded by a running interpreter and imports the API it calls
from it. An interpreter library also exports the ``PyInit_*`` functions of the modules built
into it (``PyInit__io``, ``PyInit_posix``…), so it is never an extension module, whatever it
exports.

Findings: ``bundled-libtorch`` (error), ``bundled-cuda-runtime`` (warning) and
``bundled-libpython`` (error when a library of the package links the copy, else warning).
torch itself is not concerned by the first, nor are NVIDIA's own ``nvidia-*`` distributions,
which *are* the CUDA runtime, by the second.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum
from typing import NamedTuple, TypeGuard

from torch_abi_audit.model import Library, SymbolBinding
from torch_abi_audit.python_model import normalize_name
from torch_abi_audit.rules.facts import PackageFacts, RuleContext
from torch_abi_audit.rules.findings import Evidence, Finding, Severity, name_list
from torch_abi_audit.rules.registry import finding

# The CUDA toolkit's runtime libraries (what nvidia-*-cu12/cu13 wheels and the toolkit ship),
# never the driver (libcuda.so.1, nvcuda.dll, libnvidia-ml.so.1), which the NVIDIA driver
# installs. ELF: libcudart.so.12; PE: cudart64_12.dll, cublasLt64_12.dll, nvrtc64_120_0.dll,
# nvJitLink_120_0.dll, cudnn_graph64_9.dll; Mach-O builds have no CUDA but the spelling is covered.
_CUDA_RUNTIME = re.compile(
    r"""(?ix)
    (?:lib)?
    (?:cudart|cublas(?:lt)?|cudnn\w*?|cufftw?|curand|cusparse(?:lt)?|cusolver(?:mg)?|nccl
       |nvrtc(?:-builtins)?|nvjitlink|cupti|nvtoolsext|nvtx3interop|cufile|nvshmem\w*?|nvjpeg
       |npp\w+?|nvblas|cudss)
    (?: (?:64)?_[\w]+ \.dll            # cudart64_12.dll, nvJitLink_120_0.dll
      | \.dll
      | \.so (?:\.[\d.]+)?             # libcudart.so, libcudart.so.13.0.96
      | (?:\.[\d.]+)? \.dylib )
    """
)
# libtorch's own libraries (torch/lib of a build), by the name without lib prefix and suffix.
_LIBTORCH = re.compile(
    r"""(?ix)
    (?:lib)?
    (?:c10(?:_cuda|_hip|_xpu)? | torch | torch_(?:cpu|cuda|cuda_linalg|cuda_cu|cuda_cpp|hip|xpu
       |python|global_deps|nvshmem) | caffe2_nvrtc)
    (?: \.so (?:\.[\d.]+)? | (?:\.[\d.]+)? \.dylib | \.dll )
    """
)
# The Python interpreter's library, by its file name or soname: libpython3.12.so.1.0,
# libpython3.11.dylib, libpython3.13t.so, libpython3.12d.so, python311.dll, python3.dll (the
# stable-ABI forwarder to python3X.dll), python313_d.dll, libpython2.7.so.1.0.
_PYTHON_LIBRARY = re.compile(
    r"(?:lib)?python[23](?:\.?\d+)?[td]{0,2}(?:_d)?(?:\.so(?:\.[0-9.]+)?|(?:\.[\d.]+)?\.dylib|\.dll)",
    re.IGNORECASE,
)
# A framework build's library, by its install name: .../Python.framework/Versions/3.11/Python.
_PYTHON_FRAMEWORK = re.compile(r"(?:^|/)Python\.framework/Versions/[^/]+/Python$")
#: What only an interpreter library defines: the functions that create an interpreter, tear it
#: down and run code in it (in every CPython release, 2.x included). Every one must be defined,
#: strongly.
INTERPRETER_MARKERS = ("Py_Initialize", "Py_Finalize", "PyEval_EvalCode")
# What repair tools insert before the extension: "-" or "." and a hash (auditwheel: 8 hex
# digits of a SHA-256; delvewheel: up to 32).
_REPAIR_HASH = re.compile(r"[-.][0-9a-f]{8,32}(?=\.(?:so|dylib|dll)\b)", re.IGNORECASE)

#: Functions only libtorch defines (strongly): c10's TORCH_CHECK failure path and ATen's
#: global context, Itanium (ELF, Mach-O) and MSVC (64- and 32-bit) spellings.
LIBTORCH_MARKERS = {
    "_ZN3c106detail14torchCheckFailEPKcS2_jS2_": "c10::detail::torchCheckFail",
    "?torchCheckFail@detail@c10@@YAXPEBD0I0@Z": "c10::detail::torchCheckFail",
    "?torchCheckFail@detail@c10@@YAXPBD0I0@Z": "c10::detail::torchCheckFail",
    "_ZN2at13globalContextEv": "at::globalContext()",
    "?globalContext@at@@YAAEAVContext@1@XZ": "at::globalContext()",
    "?globalContext@at@@YAAAVContext@1@XZ": "at::globalContext()",
}
#: Entry points that identify a CUDA runtime library: every name of a group must be exported.
CUDA_MARKERS: dict[str, tuple[str, ...]] = {
    "libcudart": ("cudaMalloc", "cudaLaunchKernel", "cudaGetDeviceCount"),
    "libcublas": ("cublasCreate_v2",),
    "libcublasLt": ("cublasLtCreate",),
    "libnvrtc": ("nvrtcCompileProgram",),
    "libcudnn": ("cudnnCreate",),
    "libcufft": ("cufftPlan1d",),
    "libcurand": ("curandCreateGenerator",),
    "libcusparse": ("cusparseCreate",),
    "libcusolver": ("cusolverDnCreate",),
    "libnccl": ("ncclCommInitRank",),
    "libnvJitLink": ("nvJitLinkCreate",),
}
# Looked for first (each a search of the export names): every libtorch marker, and the first
# name of each group that must be exported whole; the rest of a group only if its first is.
_GROUPS = (*CUDA_MARKERS.values(), INTERPRETER_MARKERS)
_FIRST_MARKERS = frozenset(LIBTORCH_MARKERS).union(group[0] for group in _GROUPS)


class RuntimeKind(StrEnum):
    """Which runtime a library is a copy of."""

    LIBTORCH = "libtorch"
    CUDA = "cuda"
    PYTHON = "python"


class RuntimeCopy(NamedTuple):
    """A library recognised as a copy of torch's, CUDA's or Python's runtime.

    ``name`` is the runtime library it is (``libc10.so``, ``libcudart.so.12``, ``libcudart``
    or ``libpython`` when only its exports tell), ``evidence`` how that was recognised, in
    words.
    """

    kind: RuntimeKind
    name: str
    evidence: str


def _basename(name: str) -> str:
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def without_repair_hash(name: str) -> str:
    """``name`` (a file name or soname) without the hash a wheel repair tool inserted:
    ``libc10-1a2b3c4d.so`` -> ``libc10.so``, ``libcudart.41118559.so.12`` -> ``libcudart.so.12``."""
    return _REPAIR_HASH.sub("", _basename(name), count=1)


def is_cuda_runtime(name: str) -> bool:
    """True when ``name`` (a needed entry, any directory or ``@rpath/`` prefix) is a CUDA runtime
    library: ``libcudart.so.13``, ``libcublasLt.so.12``, ``libcudnn_ops.so.9``,
    ``cudart64_12.dll``… The driver (``libcuda.so.1``, ``nvcuda.dll``) is not."""
    return _CUDA_RUNTIME.fullmatch(_basename(name)) is not None


def is_libtorch_library(name: str) -> bool:
    """True when ``name`` is one of the libraries a torch build itself installs in ``torch/lib``
    (``libc10.so``, ``libtorch_cpu.dylib``, ``torch_cuda.dll``…), not merely named after torch
    (``libtorch_npu.so``, ``libtorchaudio.so``)."""
    return _LIBTORCH.fullmatch(_basename(name)) is not None


def is_python_library(name: str) -> bool:
    """True when ``name`` (a file name, soname or install name, any directory or ``@rpath/``
    prefix) names the Python interpreter's library: ``libpython3.12.so.1.0``,
    ``libpython3.11.dylib``, ``python311.dll``, ``python3.dll``, or a framework build's
    ``Python.framework/Versions/3.11/Python``. ``libpythonize.so`` is not."""
    plain = name.replace("\\", "/")
    if _PYTHON_FRAMEWORK.search(plain):
        return True
    return _PYTHON_LIBRARY.fullmatch(without_repair_hash(plain)) is not None


def _by_name(library: Library) -> RuntimeCopy | None:
    own = library.soname or library.path.name
    what = "soname" if library.soname else "file name"
    name = without_repair_hash(own)
    evidence = f"{what} {_basename(own)}"
    if name != _basename(own):
        evidence += f", {name} renamed by a wheel repair tool"
    if is_libtorch_library(name):
        return RuntimeCopy(RuntimeKind.LIBTORCH, name, evidence)
    if is_cuda_runtime(name):
        return RuntimeCopy(RuntimeKind.CUDA, name, evidence)
    if is_python_library(own) or is_python_library(library.path.name):
        return RuntimeCopy(RuntimeKind.PYTHON, name, evidence)
    return None


def identify_runtime(library: Library) -> RuntimeCopy | None:
    """The torch, CUDA or Python runtime library ``library`` is a copy of, or ``None`` (always
    for a program: a runtime is a shared library)."""
    if library.executable:
        return None
    found = _by_name(library)
    if found is not None:
        return found
    exported = library.exports.present(_FIRST_MARKERS)
    if not exported:
        return None  # nor can the rest of a group make it whole
    rest = frozenset(name for group in _GROUPS if group[0] in exported for name in group[1:])
    if rest:
        exported |= library.exports.present(rest)
    strong = {
        s.name
        for s in library.exports.with_prefix(*exported)
        if s.name in exported and s.binding is not SymbolBinding.WEAK
    }
    torch = sorted({LIBTORCH_MARKERS[n] for n in strong if n in LIBTORCH_MARKERS})
    if torch:
        return RuntimeCopy(RuntimeKind.LIBTORCH, "libtorch", f"defines {', '.join(torch)}")
    for runtime, markers in CUDA_MARKERS.items():
        if strong.issuperset(markers):
            return RuntimeCopy(RuntimeKind.CUDA, runtime, f"exports {', '.join(markers)}")
    if strong.issuperset(INTERPRETER_MARKERS):
        how = f"defines {', '.join(INTERPRETER_MARKERS)}: the interpreter itself"
        return RuntimeCopy(RuntimeKind.PYTHON, "libpython", how)
    return None


def is_interpreter(copy: RuntimeCopy | None) -> bool:
    """True when ``copy`` says a library is the Python interpreter's (never an extension module,
    whatever ``PyInit_*`` it exports: those are its built-in modules')."""
    return copy is not None and copy.kind is RuntimeKind.PYTHON


_NVIDIA_DISTRIBUTION = re.compile(r"(?i)nvidia[-_.]")


def bundled_runtime_findings(package: PackageFacts, context: RuleContext) -> list[Finding]:
    """``bundled-libtorch`` and ``bundled-cuda-runtime``, from each library's identity (its
    ``runtime``: see :func:`runtime_copy`)."""
    if package.is_torch:
        return []
    findings = []
    torch = [(lib.name, lib.runtime) for lib in package.libraries if _is(lib.runtime, LIBTORCH)]
    if torch:
        findings.append(
            finding(
                "bundled-libtorch",
                f"ships its own copy of libtorch: {_described(torch)}: loaded beside the "
                "installed torch, it is a second libtorch with its own state (exclude it when "
                "repairing the wheel, e.g. auditwheel repair --exclude 'libc10*' --exclude "
                "'libtorch*', and link the installed torch's)",
                _evidence(torch),
                libraries=[name for name, _ in torch],
            )
        )
    cuda = [(lib.name, lib.runtime) for lib in package.libraries if _is(lib.runtime, CUDA)]
    normalized = normalize_name(package.name)
    if cuda and not _NVIDIA_DISTRIBUTION.match(normalized) and normalized != "nvidia":
        findings.append(
            finding(
                "bundled-cuda-runtime",
                f"ships its own CUDA runtime: {_described(cuda)}: a second copy beside the "
                "one torch loads (from the nvidia-* wheels), possibly of another version "
                "(exclude it when repairing the wheel and depend on the nvidia-* wheels)",
                _evidence(cuda),
                libraries=[name for name, _ in cuda],
            )
        )
    return findings


def bundled_libpython_findings(package: PackageFacts, context: RuleContext) -> list[Finding]:
    """``bundled-libpython``: the package ships the interpreter's library (its ``runtime`` says
    so: by name, or by what it defines); an error when another of its libraries links it."""
    shipped = [lib for lib in package.libraries if _is(lib.runtime, PYTHON)]
    if not shipped:
        return []
    shipped_names = [lib.name for lib in shipped]
    # What the others name it by: its file name, or its soname / install name (the copy's
    # runtime name); an absolute path names a library installed outside any package.
    names = {_basename(lib.name) for lib in shipped} | {
        lib.runtime.name for lib in shipped if lib.runtime is not None
    }
    users = sorted(
        lib.name
        for lib in package.libraries
        if lib.name not in shipped_names
        and any(_basename(n) in names for n in lib.needed if not n.startswith("/"))
    )
    shown = _described([(lib.name, lib.runtime) for lib in shipped if lib.runtime is not None])
    if users:
        verb = "links" if len(users) == 1 else "link"
        message = (
            f"ships {shown}, and {name_list(users, 2)} {verb} it: those modules run against a "
            "second copy of the interpreter, which crashes (link against the running "
            "interpreter's symbols instead)"
        )
    else:
        message = (
            f"ships {shown}: a second copy of the interpreter in the package is a known source "
            "of crashes if anything loads it"
        )
    return [
        finding(
            "bundled-libpython",
            message,
            {"libraries": shipped_names, "linked_by": users},
            libraries=shipped_names,
            severity=None if users else Severity.WARNING,
        )
    ]


LIBTORCH, CUDA, PYTHON = RuntimeKind.LIBTORCH, RuntimeKind.CUDA, RuntimeKind.PYTHON


def _is(copy: RuntimeCopy | None, kind: RuntimeKind) -> TypeGuard[RuntimeCopy]:
    return copy is not None and copy.kind is kind


def _described(copies: Sequence[tuple[str, RuntimeCopy]]) -> str:
    return name_list([f"{name} ({copy.evidence})" for name, copy in copies])


def _evidence(copies: Sequence[tuple[str, RuntimeCopy]]) -> Evidence:
    return {
        "libraries": [name for name, _copy in copies],
        "runtimes": [copy.name for _name, copy in copies],
        "how": [copy.evidence for _name, copy in copies],
    }
