"""Copies of torch's, CUDA's or Python's runtime inside a package: ``bundled-libtorch``,
``bundled-cuda-runtime`` and ``bundled-libpython``, recognised by soname (without a repair
tool's hash) and by exports.

The libraries are compiled at test time and packed into wheels the way ``auditwheel repair``
lays them out (``<dist>.libs/`` with hashed names and sonames). The real case, torchcodec
0.17.0's Linux wheel vendoring nvJPEG, is checked by the real-world expectations and the CLI's
download test.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.fake_torch import build_library
from helpers.wheel_builder import write_wheel
from torch_abi_audit import CPythonVerdict, LibraryKind, inspect_package
from torch_abi_audit.rules.bundled_runtimes import (
    RuntimeCopy,
    RuntimeKind,
    bundled_libpython_findings,
    is_cuda_runtime,
    is_libtorch_library,
    is_python_library,
    without_repair_hash,
)
from torch_abi_audit.rules.cpython_abi import CPythonAnalysis
from torch_abi_audit.rules.facts import LibraryFacts, PackageFacts, RuleContext
from torch_abi_audit.rules.findings import Finding, Severity
from torch_abi_audit.rules.torch_abi import TorchAnalysis

LINUX = ["cp311-cp311-manylinux_2_28_x86_64"]
C10_FAIL = """
#include <cstdint>
namespace c10 { namespace detail {
%s void torchCheckFail(const char*, const char*, uint32_t, const char*) {}
} }
"""
CUDART = """
int cudaMalloc(void** p, unsigned long n) { return 0; }
int cudaLaunchKernel(const void* f) { return 0; }
int cudaGetDeviceCount(int* n) { *n = 0; return 0; }
"""


@pytest.mark.parametrize(
    ("name", "plain"),
    [
        ("libc10-1a2b3c4d.so", "libc10.so"),
        ("libcudart-5e6f7a8b.so.12.4.127", "libcudart.so.12.4.127"),
        ("libcudart.41118559.so.12", "libcudart.so.12"),
        ("cudart64_12-0123456789abcdef0123456789abcdef.dll", "cudart64_12.dll"),
        ("libtorch_cpu.dylib", "libtorch_cpu.dylib"),
        ("libfoo-bar.so.1", "libfoo-bar.so.1"),  # not a hash: kept
    ],
)
def test_repair_hashes_are_taken_out(name: str, plain: str) -> None:
    assert without_repair_hash(name) == plain


def test_libtorch_library_names() -> None:
    for name in ("libc10.so", "libc10_cuda.so", "libtorch_cpu.dylib", "torch_cuda.dll", "c10.dll"):
        assert is_libtorch_library(name), name
    for name in ("libtorch_npu.so", "libtorchaudio.so", "libtorchcodec_core4.so", "libshm.so"):
        assert not is_libtorch_library(name), name
    assert is_cuda_runtime("@rpath/libcudart.12.dylib") and not is_cuda_runtime("libcuda.so.1")


@pytest.fixture(scope="module")
def vendored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("vendored")
    libs: dict[str, Path] = {
        "vendor.libs/libc10-1a2b3c4d.so": build_library(
            work,
            "libc10-1a2b3c4d.so",
            "int c10_marker(void) { return 1; }\n",
            "-Wl,-soname,libc10-1a2b3c4d.so",
        ),
        "vendor.libs/libcudart-5e6f7a8b.so.12": build_library(
            work,
            "libcudart-5e6f7a8b.so.12",
            "int cudaFree(void* p) { return 0; }\n",
            "-Wl,-soname,libcudart-5e6f7a8b.so.12",
        ),
        # Renamed beyond recognition: only what it defines says what it is.
        "vendor.libs/libmystery.so": build_library(
            work, "libmystery.so", C10_FAIL % "", "-Wl,-soname,libmystery.so", cxx=True
        ),
        "vendor/libgpu_kernels.so": build_library(work, "libgpu_kernels.so", CUDART),
        # Not copies: a weak definition (header-only style), libraries merely named after torch.
        "vendor/libweak.so": build_library(
            work, "libweak.so", C10_FAIL % "__attribute__((weak))", cxx=True
        ),
        "vendor/libtorch_npu.so": build_library(
            work, "libtorch_npu.so", "int npu(void){return 1;}\n"
        ),
        "vendor/libtorchvendor_ops.so": build_library(
            work, "libtorchvendor_ops.so", "int ops(void) { return 1; }\n"
        ),
    }
    files = {member: path.read_bytes() for member, path in libs.items()}
    return write_wheel(work, "vendor", "1.0", LINUX, files)


def test_copies_are_found_by_soname_and_exports(vendored: Path) -> None:
    report = inspect_package(vendored, jobs=1)
    runtimes = {
        lib.path.relative_to(report.root).as_posix(): lib.runtime for lib in report.libraries
    }
    c10, cudart = (
        runtimes["vendor.libs/libc10-1a2b3c4d.so"],
        runtimes["vendor.libs/libcudart-5e6f7a8b.so.12"],
    )
    assert c10 is not None and (c10.kind, c10.name) == (RuntimeKind.LIBTORCH, "libc10.so")
    assert c10.evidence == ("soname libc10-1a2b3c4d.so, libc10.so renamed by a wheel repair tool")
    assert cudart is not None and (cudart.kind, cudart.name) == (
        RuntimeKind.CUDA,
        "libcudart.so.12",
    )
    mystery = runtimes["vendor.libs/libmystery.so"]
    assert mystery is not None and mystery.kind is RuntimeKind.LIBTORCH
    assert mystery.evidence == "defines c10::detail::torchCheckFail"
    gpu = runtimes["vendor/libgpu_kernels.so"]
    assert gpu is not None and (gpu.kind, gpu.name) == (RuntimeKind.CUDA, "libcudart")
    for name in ("vendor/libweak.so", "vendor/libtorch_npu.so", "vendor/libtorchvendor_ops.so"):
        assert runtimes[name] is None, name
    findings = {f.code: f for f in report.findings}
    torch = findings["bundled-libtorch"]
    assert torch.severity == "error"
    assert torch.evidence["libraries"] == [
        "vendor.libs/libc10-1a2b3c4d.so",
        "vendor.libs/libmystery.so",
    ]
    assert torch.evidence["runtimes"] == ["libc10.so", "libtorch"]
    assert torch.message.startswith(
        "ships its own copy of libtorch: vendor.libs/libc10-1a2b3c4d.so"
    )
    cuda = findings["bundled-cuda-runtime"]
    assert cuda.severity == "warning"
    assert sorted(cuda.evidence["libraries"] or ()) == [
        "vendor.libs/libcudart-5e6f7a8b.so.12",
        "vendor/libgpu_kernels.so",
    ]


@pytest.mark.parametrize(
    ("distribution", "member"),
    [
        ("torch", "torch/lib/libc10.so"),
        ("torch", "torch/lib/libcudart-1a2b3c4d.so.12"),  # torch's own vendored copy
        ("nvidia-cuda-runtime-cu12", "nvidia/cuda_runtime/lib/libcudart.so.12"),
    ],
)
def test_torch_and_nvidia_wheels_are_not_concerned(
    tmp_path: Path, distribution: str, member: str
) -> None:
    name = member.rsplit("/", 1)[-1]
    library = build_library(tmp_path, name, "int f(void) { return 1; }\n", f"-Wl,-soname,{name}")
    wheel = write_wheel(tmp_path, distribution, "2.13.0", LINUX, {member: library.read_bytes()})
    report = inspect_package(wheel, jobs=1)
    [lib] = report.libraries
    assert lib.runtime is not None  # it is what it is...
    assert not [f for f in report.findings if f.code.startswith("bundled-")]  # ...and its own


def test_verbose_table_says_what_a_copy_is(
    vendored: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from torch_abi_audit.cli import main

    assert main([str(vendored), "-v"]) == 0
    out = capsys.readouterr().out
    assert "  [error] bundled-libtorch: ships its own copy of libtorch" in out
    assert "        a copy of libcudart.so.12 (soname libcudart-5e6f7a8b.so.12, " in out


# -- the interpreter's library (bundled-libpython) ----------------------------------------------

#: What a libpython defines: the interpreter's entry points, and its built-in modules' PyInit_*.
INTERPRETER = """
void Py_Initialize(void) {}
void Py_Finalize(void) {}
int PyEval_EvalCode(void *code, void *globals, void *locals) { return 0; }
void *PyInit_posix(void) { return 0; }
void *PyInit__io(void) { return 0; }
"""
#: An extension module that embeds an interpreter: it *imports* the same entry points.
EMBEDDING_MODULE = """
extern void Py_Initialize(void);
extern void Py_Finalize(void);
extern int PyEval_EvalCode(void *code, void *globals, void *locals);
void *PyInit__embed(void) { Py_Initialize(); PyEval_EvalCode(0, 0, 0); Py_Finalize(); return 0; }
"""
MARKERS = ("Py_Initialize", "Py_Finalize", "PyEval_EvalCode")
DEFINES_MARKERS = "defines Py_Initialize, Py_Finalize, PyEval_EvalCode: the interpreter itself"


def _elf_interpreter(work: Path) -> Path:
    """A Linux wheel: a libpython copied in as ``.libs/Python`` (no soname, no telling name),
    and an extension module that links it and calls what it defines."""
    python = build_library(work / "libs", "Python", INTERPRETER)
    module = build_library(
        work,
        "_embed.cpython-311-x86_64-linux-gnu.so",
        EMBEDDING_MODULE,
        f"-L{python.parent}",
        "-l:Python",
    )
    files = {
        "interp/.libs/Python": python.read_bytes(),
        "interp/" + module.name: module.read_bytes(),
    }
    return write_wheel(work, "interp", "1.0", LINUX, files, modes={"interp/.libs/Python": 0o755})


def _macho_interpreter(work: Path) -> Path:
    """A macOS wheel as delocate lays out a framework Python it copied in: ``.dylibs/Python``
    with a rewritten install name, and a module that links it ``@loader_path``."""
    from helpers.macho_builder import LC_LOAD_DYLIB, MachO, defined, undefined

    python = MachO(
        id_dylib="/DLC/interp/.dylibs/Python",
        exports=[defined("_" + name) for name in (*MARKERS, "PyInit_posix", "PyInit__io")],
    ).build()
    module = MachO(
        dylibs=[(LC_LOAD_DYLIB, "@loader_path/.dylibs/Python")],
        exports=[defined("_PyInit__embed")],
        imports=[undefined("_" + name, 1) for name in MARKERS],
    ).build()
    files = {
        "interp/.dylibs/Python": python.data,
        "interp/_embed.cpython-311-darwin.so": module.data,
    }
    tags = ["cp311-cp311-macosx_11_0_arm64"]
    return write_wheel(work, "interp", "1.0", tags, files, modes={"interp/.dylibs/Python": 0o755})


def _pe_interpreter(work: Path) -> Path:
    """A Windows wheel shipping a python311.dll renamed ``runtime.dll``, and a module that
    imports from it."""
    from helpers.pe_builder import Export, Import, build_pe

    python = build_pe(
        exports=[Export(name) for name in (*MARKERS, "PyInit_posix", "PyInit__io")],
        export_name="runtime.dll",
    )
    module = build_pe(
        imports=[Import("runtime.dll", list(MARKERS))],
        exports=[Export("PyInit__embed")],
        export_name=None,
    )
    files = {"interp/runtime.dll": python.data, "interp/_embed.cp311-win_amd64.pyd": module.data}
    return write_wheel(work, "interp", "1.0", ["cp311-cp311-win_amd64"], files)


@pytest.mark.parametrize(
    ("build", "interpreter", "module"),
    [
        (_elf_interpreter, "interp/.libs/Python", "interp/_embed.cpython-311-x86_64-linux-gnu.so"),
        (_macho_interpreter, "interp/.dylibs/Python", "interp/_embed.cpython-311-darwin.so"),
        (_pe_interpreter, "interp/runtime.dll", "interp/_embed.cp311-win_amd64.pyd"),
    ],
    ids=["elf", "macho", "pe"],
)
def test_an_interpreter_library_is_known_by_what_it_defines(
    tmp_path: Path, build: Callable[[Path], Path], interpreter: str, module: str
) -> None:
    """Whatever its name, a library defining the interpreter's entry points is a bundled
    libpython, never an extension module (its PyInit_* are its built-in modules'); a module
    that merely imports them is an extension module."""
    report = inspect_package(build(tmp_path), jobs=1)
    libs = {report.library_name(lib.path): lib for lib in report.libraries}
    python = libs[interpreter]
    assert python.kind is LibraryKind.BUNDLED and python in report.bundled_libs
    assert python.entry_points == ("PyInit__io", "PyInit_posix")  # still reported as exported
    assert python.runtime is not None
    assert (python.runtime.kind, python.runtime.name) == (RuntimeKind.PYTHON, "libpython")
    assert python.runtime.evidence == DEFINES_MARKERS
    assert [report.library_name(lib.path) for lib in report.extensions] == [module]
    assert libs[module].runtime is None
    findings = {f.code: f for f in report.findings}
    vendored = findings["bundled-libpython"]
    assert (vendored.severity, vendored.libraries) == ("error", (interpreter,))
    assert vendored.evidence == {"libraries": [interpreter], "linked_by": [module]}
    assert vendored.message.startswith(f"ships {interpreter} ({DEFINES_MARKERS}), and {module} ")


def test_an_interpreter_alone_is_a_warning_and_no_module(tmp_path: Path) -> None:
    """A libpython nothing links: a warning; the package has no extension module at all
    (before, its PyInit_* made it one, and the CPython verdict not-abi3)."""
    python = build_library(tmp_path, "libinterp.so", INTERPRETER, "-Wl,-soname,libinterp.so")
    wheel = write_wheel(
        tmp_path, "interp", "1.0", LINUX, {"interp/libinterp.so": python.read_bytes()}
    )
    report = inspect_package(wheel, jobs=1)
    assert report.extensions == () and report.cpython_verdict is CPythonVerdict.NO_EXTENSIONS
    [finding] = report.findings
    assert (finding.code, finding.severity) == ("bundled-libpython", "warning")


def test_weak_or_partial_definitions_are_no_interpreter(tmp_path: Path) -> None:
    """Only all three entry points, defined strongly, make an interpreter: a module with a weak
    fallback ``Py_Initialize`` or one defining just one of them stays an extension module."""
    weak = "__attribute__((weak)) void Py_Initialize(void) {}\n" + INTERPRETER.split("\n", 2)[2]
    partial = "void Py_Initialize(void) {}\nvoid *PyInit_part(void) { return 0; }\n"
    files = {
        "pkg/_weak.cpython-311-x86_64-linux-gnu.so": build_library(tmp_path, "w.so", weak),
        "pkg/_part.cpython-311-x86_64-linux-gnu.so": build_library(tmp_path, "p.so", partial),
    }
    wheel = write_wheel(
        tmp_path, "pkg", "1.0", LINUX, {name: path.read_bytes() for name, path in files.items()}
    )
    report = inspect_package(wheel, jobs=1)
    assert len(report.extensions) == 2 and not report.bundled_libs
    assert all(lib.runtime is None for lib in report.libraries)
    assert not report.findings or "bundled-libpython" not in {f.code for f in report.findings}


@pytest.mark.parametrize(
    "name",
    [
        "libpython3.12.so.1.0",
        "libpython3.11.dylib",
        "@rpath/libpython3.13t.so",
        "python311.dll",
        "python3.dll",
        "PYTHON312_D.DLL",
        "libpython3.11-1a2b3c4d.so.1.0",  # auditwheel's hash
        "libpython2.7.so.1.0",
        "/Library/Frameworks/Python.framework/Versions/3.11/Python",
        "@rpath/Python.framework/Versions/3.12/Python",
    ],
)
def test_python_library_names(name: str) -> None:
    assert is_python_library(name)


@pytest.mark.parametrize(
    "name", ["libpythonize.so", "python.py", "libpython_ext.so", "Python", "pythonnet.dll"]
)
def test_not_python_library_names(name: str) -> None:
    assert not is_python_library(name)


def _facts(name: str, needed: tuple[str, ...] = (), python: bool = False) -> LibraryFacts:
    runtime = (
        RuntimeCopy(RuntimeKind.PYTHON, name.rsplit("/", 1)[-1], "file name") if python else None
    )
    return LibraryFacts(name, False, TorchAnalysis(), CPythonAnalysis(), needed, runtime=runtime)


def _libpython_findings(*libraries: LibraryFacts) -> list[Finding]:
    return bundled_libpython_findings(PackageFacts("pkg", libraries), RuleContext())


def test_bundled_libpython_severity_follows_who_links_it() -> None:
    shipped = _facts("pkg/.dylibs/libpython3.11.dylib", python=True)
    user = _facts("pkg/_ops.so", ("@loader_path/.dylibs/libpython3.11.dylib",))
    [finding] = _libpython_findings(shipped, user, _facts("pkg/other.so"))
    assert (finding.code, finding.severity) == ("bundled-libpython", Severity.ERROR)
    assert finding.evidence == {
        "libraries": ["pkg/.dylibs/libpython3.11.dylib"],
        "linked_by": ["pkg/_ops.so"],
    }
    [alone] = _libpython_findings(_facts("pkg.libs/libpython3.12.so.1.0", python=True))
    assert alone.severity is Severity.WARNING and alone.evidence["linked_by"] == []
    # The system's framework Python, by its absolute install name, is not the copy.
    system = _facts("pkg/_sys.so", ("/Library/Frameworks/Python.framework/Versions/3.11/Python",))
    [other] = _libpython_findings(_facts("pkg/.dylibs/Python", python=True), system)
    assert other.severity is Severity.WARNING
    assert _libpython_findings(_facts("pkg/libpythonize.so"), _facts("pkg/a.so")) == []
