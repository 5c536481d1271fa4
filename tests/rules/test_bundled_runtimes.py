"""Copies of torch's or CUDA's runtime inside a package: ``bundled-libtorch`` and
``bundled-cuda-runtime``, recognised by soname (without a repair tool's hash) and by exports.

The libraries are compiled at test time and packed into wheels the way ``auditwheel repair``
lays them out (``<dist>.libs/`` with hashed names and sonames). The real case, torchcodec
0.17.0's Linux wheel vendoring nvJPEG, is checked by the real-world expectations and the CLI's
download test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.fake_torch import build_library
from helpers.wheel_builder import write_wheel
from torch_abi_audit import inspect_package
from torch_abi_audit.rules.bundled_runtimes import (
    RuntimeKind,
    is_cuda_runtime,
    is_libtorch_library,
    without_repair_hash,
)

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
