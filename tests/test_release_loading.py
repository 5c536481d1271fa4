"""Load prediction against releases (``--torch-version``), on libraries compiled at test time
and on real wheels, judged with the shipped release-exports data.

The compiled libraries are Linux x86_64 ELF files, so they are judged against the Linux
x86_64 default build of each release the data records (2.9-2.10: CUDA 12, 2.11 on: CUDA 13, as
the wheels' own requirements say). Nothing is loaded; where a real loader can say the same
thing (``ldd -r`` beside an installed torch), it is asked as an independent oracle.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

from helpers.fake_torch import build_library as build
from helpers.macho_builder import LC_LOAD_DYLIB, LC_LOAD_WEAK_DYLIB, MH_BUNDLE, MachO, undefined
from helpers.pe_builder import Export, Import, build_pe
from helpers.real_wheels import real_wheel
from helpers.wheel_builder import write_wheel
from torch_abi_audit import inspect_package
from torch_abi_audit.audit import LoadTargetError, load_target
from torch_abi_audit.cli import main
from torch_abi_audit.renderers.json_report import load_schema
from torch_abi_audit.report import PackageReport, TorchVerdict
from torch_abi_audit.rules.load_prediction import LoadPrediction, LoadStatus
from torch_abi_audit.rules.release_exports import load_release_exports

SHIM = "aoti_torch_get_dim"  # every release since 2.9.0
CHECK_FAIL = "_ZN3c106detail14torchCheckFailEPKcS2_jS2_"  # exported by every release
CUDART12 = "libcudart.so.12: cannot open shared object file: No such file or directory"

# Declared like the c10 headers declare them; the library calls them, so it imports them.
HEADER_ONLY_LOOKALIKES = """
#include <cstdint>
#include <ostream>
extern "C" int32_t aoti_torch_get_dim(void*, int64_t*);
namespace c10 {
enum class DeviceType : int8_t { CPU = 0 };
void report_overflow(const char* name);  // C10_API in c10/util/TypeCast.h
std::ostream& operator<<(std::ostream& stream, DeviceType type);  // C10_API, DeviceType.h
}  // namespace c10
__attribute__((visibility("default"))) int64_t overflowing(std::ostream& out) {
  int64_t dim = 0;
  aoti_torch_get_dim(nullptr, &dim);
  c10::report_overflow("x");
  out << c10::DeviceType::CPU;
  return dim;
}
"""


def stand_in(directory: Path, soname: str) -> None:
    """A library named and sonamed ``soname`` to link against (never loaded)."""
    build(directory, soname, "int stand_in(void) { return 1; }\n", "-Wl,-soname," + soname)


def shim_user(*calls: str) -> str:
    lines = ["#include <stdint.h>", "int32_t aoti_torch_get_dim(void*, int64_t*);"]
    lines += [f"void {name}(const char*, const char*, uint32_t, const char*);" for name in calls]
    body = [f'{name}("f", "file", 1u, "msg");' for name in calls]
    lines.append(
        '__attribute__((visibility("default"))) int64_t entry(void) { int64_t d = 0; '
        f"aoti_torch_get_dim(0, &d); {' '.join(body)} return d; }}"
    )
    return "\n".join(lines) + "\n"


TLS_VARIABLE = "_ZN3c104impl26raw_local_dispatch_key_setE"  # libc10 exports it (Linux)
WEAK_TLS_INIT = "_ZTHN3c104impl26raw_local_dispatch_key_setE"  # no release exports it
# What any code reading c10::impl::raw_local_dispatch_key_set compiles to: a strong import of
# the variable and a weak one of its TLS init function, called only if it exists.
TLS_USER = """
#include <cstdint>
namespace c10 { namespace impl {
struct PODLocalDispatchKeySet { uint64_t included_; uint64_t excluded_; };
extern thread_local PODLocalDispatchKeySet raw_local_dispatch_key_set;
} }
extern "C" int32_t aoti_torch_get_dim(void*, int64_t*);
extern "C" uint64_t included_keys() {
    int64_t d = 0;
    aoti_torch_get_dim(nullptr, &d);
    return c10::impl::raw_local_dispatch_key_set.included_ + d;
}
"""
# torchCheckFail(…, const std::string&): spelled after the string ABI it is compiled with.
STRING_USER = """
#include <cstdint>
#include <string>
namespace c10 { namespace detail {
void torchCheckFail(const char*, const char*, uint32_t, const std::string&);
} }
extern "C" void check(bool ok) { if (!ok) c10::detail::torchCheckFail("f", "x.cpp", 1, "no"); }
"""
CXX11_CHECK_FAIL = (
    "_ZN3c106detail14torchCheckFailEPKcS2_jRKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE"
)
OLD_CHECK_FAIL = "_ZN3c106detail14torchCheckFailEPKcS2_jRKSs"


def plain(name: str) -> str:
    return f'__attribute__((visibility("default"))) int {name}(void) {{ return 1; }}\n'


def _build_chain(chain: Path, link: list[str], links: Path) -> None:
    """``chain/``: ``_ext.so`` needs ``libhelper.so`` (CUDA 12 runtime), ``_stable.so`` needs
    ``libinternal.so`` (unstable), both found beside them ($ORIGIN)."""
    cudart = ["-L", str(links), "-l:libcudart.so.12"]
    build(chain, "libhelper.so", shim_user(), *link, *cudart, "-Wl,-soname,libhelper.so")
    build(chain, "libinternal.so", shim_user(CHECK_FAIL), *link, "-Wl,-soname,libinternal.so")
    local = ["-L", str(chain), "-Wl,-rpath,$ORIGIN", "-Wl,--no-as-needed"]
    build(chain, "_ext.so", plain("ext"), *local, "-l:libhelper.so")
    build(chain, "_stable.so", shim_user(), *link, *local, "-l:libinternal.so")


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``cuda12/`` (stable, needs libcudart.so.12), ``vendored/`` (the same with its own copy
    of libcudart.so.12), ``unstable/`` (torchCheckFail and an at:: symbol no release exports),
    ``lookalike/`` (a shim plus two header-only-looking imports libc10 defines), ``weak/`` (a
    weak TLS init reference), ``abi/`` (std::string imports of either libstdc++ ABI) and
    ``chain/`` (libraries needing libraries of their package)."""
    root = tmp_path_factory.mktemp("release")
    links = tmp_path_factory.mktemp("links")
    for soname in ("libcudart.so.12", "libtorch_cpu.so", "libc10.so"):
        stand_in(links, soname)
    link = ["-L", str(links), "-Wl,--no-as-needed", "-l:libtorch_cpu.so", "-l:libc10.so"]
    cuda = root / "cuda12"
    cuda.mkdir()
    build(cuda, "libcuda12ops.so", shim_user(), *link, "-l:libcudart.so.12")
    vendored = root / "vendored"
    vendored.mkdir()
    build(
        vendored, "libvendored.so", shim_user(), *link, "-l:libcudart.so.12", "-Wl,-rpath,$ORIGIN"
    )
    shutil.copy(links / "libcudart.so.12", vendored / "libcudart.so.12")
    unstable = root / "unstable"
    unstable.mkdir()
    build(unstable, "libchecks.so", shim_user(CHECK_FAIL), *link)
    build(unstable, "libgone.so", shim_user(CHECK_FAIL, "_ZN2at6Tensor3dimEv"), *link)
    lookalike = root / "lookalike"
    lookalike.mkdir()
    build(lookalike, "liblookalike.so", HEADER_ONLY_LOOKALIKES, *link, cxx=True)
    build(root / "weak", "libtls.so", TLS_USER, *link, cxx=True)
    for abi in ("0", "1"):
        flag = f"-D_GLIBCXX_USE_CXX11_ABI={abi}"
        build(root / "abi", f"libabi{abi}.so", STRING_USER, *link, flag, cxx=True)
    _build_chain(root / "chain", link, links)
    return root


def loads_of(report: PackageReport) -> dict[str, LoadPrediction]:
    return {lib.path.name: lib.load for lib in report.libraries if lib.load is not None}


def test_header_only_lookalikes_that_libc10_defines_are_unstable(packages: Path) -> None:
    """c10::report_overflow(char const*) and c10::operator<<(std::ostream&, c10::DeviceType)
    look header-only by name (torch/headeronly re-exports checked_convert and DeviceType), but
    libc10 defines and exports them: a library importing them is UNSTABLE, not 'STABLE,
    min-torch 2.9.0'."""
    report = inspect_package(packages / "lookalike", jobs=1)
    assert report.torch_verdict is TorchVerdict.UNSTABLE
    [lib] = report.libraries
    details = {d.demangled: d.detail for d in lib.torch.unstable_details}
    assert details == {
        "c10::report_overflow(char const*)": (
            "c10::report_overflow is defined in libc10.so (linux_x86_64 2.9.0), not header-only"
        ),
        "c10::operator<<(std::ostream&, c10::DeviceType)": (
            "c10::operator is defined in libc10.so (linux_x86_64 2.9.0), not header-only"
        ),
    }
    assert lib.torch.stable_shims == (SHIM,)
    # Both are exported by every release's libc10: against any release it loads.
    for release in ("2.9.0", "2.15"):
        [prediction] = loads_of(inspect_package(packages / "lookalike", torch_version=release))
        assert prediction == "liblookalike.so"


def test_cuda_major_of_each_release_comes_from_its_wheels() -> None:
    data = load_release_exports()
    majors = {str(b.release): b.cuda_major for b in data.builds if b.platform == "linux_x86_64"}
    # PyPI's default Linux wheels: CUDA 12 up to 2.10, CUDA 13 from 2.11 (their Requires-Dist).
    assert majors == {
        "2.9.0": 12,
        "2.9.1": 12,
        "2.10.0": 12,
        "2.11.0": 13,
        "2.12.0": 13,
        "2.12.1": 13,
        "2.13.0": 13,
        "2.14.0": 13,
        "2.14.1": 13,
        "2.15.0": 13,
    }
    assert all(b.cuda_major is None for b in data.builds if b.platform != "linux_x86_64")
    target = load_target(torch_version="2.13")
    assert target is not None and target.reference.cuda_major == 13
    variant = load_target(torch_version="2.13+cu126")
    assert variant is not None and variant.reference.cuda_major == 12
    assert variant.reference.version == "2.13.0+cu126" and variant.reference.variant == "cu126"
    cpu = load_target(torch_version="2.13+cpu")
    assert cpu is not None and cpu.reference.cuda_major is None


def test_a_cuda_12_build_against_cuda_13_releases(packages: Path) -> None:
    """libcudart.so.12 is what a CUDA 12 build needs; the default 2.11+ builds install
    libcudart.so.13 (#187320, xFormers)."""

    def prediction(release: str, package: str = "cuda12") -> LoadPrediction:
        [load] = loads_of(inspect_package(packages / package, torch_version=release)).values()
        return load

    failed = prediction("2.13")
    assert failed.fails and failed.missing_libraries == (CUDART12,)
    assert failed.message == f"will not load with torch 2.13: {CUDART12}"
    assert failed.build == "torch 2.13.0+cu130 (linux_x86_64)"
    assert prediction("2.10").status is LoadStatus.LOADS  # 2.10.0+cu128
    assert prediction("2.13+cu126").status is LoadStatus.LOADS  # a CUDA 12 variant
    cpu = prediction("2.13+cpu")
    assert cpu.fails and cpu.missing_libraries == (CUDART12,)  # no CUDA at all
    # With its own copy beside it ($ORIGIN), the release's CUDA major does not matter.
    assert prediction("2.13", "vendored").status is LoadStatus.LOADS


def test_unstable_libraries_resolve_against_the_release_build(packages: Path) -> None:
    loads = loads_of(inspect_package(packages / "unstable", torch_version="2.11"))
    assert loads["libchecks.so"].status is LoadStatus.LOADS
    gone = loads["libgone.so"]
    assert gone.fails and gone.undefined_symbols == ("_ZN2at6Tensor3dimEv",)
    # A variant the data did not read: its exports are not known, so neither is the answer.
    variant = loads_of(inspect_package(packages / "unstable", torch_version="2.11+cu126"))
    assert {p.status for p in variant.values()} == {LoadStatus.UNKNOWN}
    assert variant["libgone.so"].message == (
        "cannot tell whether it loads with torch 2.11+cu126: the data holds the index's default "
        "build torch 2.11.0+cu130 (linux_x86_64), not a +cu126 one, and the exports of two "
        "builds of a release may differ"
    )


def test_check_load_and_unknown_releases(
    packages: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unstable = str(packages / "unstable")
    assert main([unstable, "--torch-version", "2.13", "--check", "load"]) == 1
    assert "  unstable: [load] load-failure (unstable/libgone.so): " in capsys.readouterr().err
    assert main([str(packages / "cuda12"), "--torch-version", "2.10", "--check", "load"]) == 0
    # Unknown is not a failure of the gate (nothing is known to break), and says so.
    assert main([unstable, "--torch-version", "2.11+cu126", "--check", "load", "-v"]) == 0
    out = capsys.readouterr().out
    assert "Loads:       unknown with torch 2.11+cu126 (the data cannot tell for 2 of 2" in out
    for release in ("9.9", "2.14.7", "2.16", "2.8", "2.13+rocm6"):
        assert main([unstable, "--torch-version", release]) == 2
        err = capsys.readouterr().err
        assert f"--torch-version {release}:" in err
        if release != "2.13+rocm6":
            assert "known releases: 2.9.0, 2.9.1, 2.10.0" in err and "2.15.0" in err
    assert "newer than the table" not in err
    with pytest.raises(LoadTargetError, match="newer than the table"):
        load_target(torch_version="9.9")
    assert main([unstable, "--torch-version", "2.13", "--json"]) == 1 - 1  # no gate: exit 0
    document = json.loads(capsys.readouterr().out)
    jsonschema.validate(document, load_schema())
    assert document["torch_reference"]["cuda_major"] == 13
    assert document["load_status"] == "fails"
    loads = {Path(b["path"]).name: b["load"] for b in document["bundled_libs"]}
    assert loads["libgone.so"]["build"] == "torch 2.13.0+cu130 (linux_x86_64)"
    assert loads["libgone.so"]["undefined_symbols"] == ["_ZN2at6Tensor3dimEv"]


# -- the installation's rules hold against a release ----------------------------------------------


def test_a_weak_tls_init_reference_does_not_fail_against_a_release(packages: Path) -> None:
    """No release exports the TLS init function (raw_local_dispatch_key_set is constant-
    initialised); the loader leaves the weak reference at 0, so the library loads."""
    [lib] = inspect_package(packages / "weak", torch_version="2.13").libraries
    assert lib.torch_label == "UNSTABLE" and lib.torch.weak_imports == (WEAK_TLS_INIT,)
    load = lib.load
    assert load is not None and load.status is LoadStatus.LOADS
    assert load.undefined_symbols == () and load.weak_undefined_symbols == (WEAK_TLS_INIT,)
    assert load.message == (
        f"loads with torch 2.13 (missing but optional: 1 weak import ({WEAK_TLS_INIT}))"
    )


def test_release_builds_name_their_string_abi() -> None:
    """Read from the recorded exports: every Linux default build uses the C++11 ABI; libc++
    (macOS) and MSVC (Windows) have no dual ABI."""
    data = load_release_exports()
    abis = {(b.platform, str(b.release)): data.cxx11_abi(b) for b in data.builds}
    assert {abi for (platform, _), abi in abis.items() if platform == "linux_x86_64"} == {True}
    assert {abi for (platform, _), abi in abis.items() if platform != "linux_x86_64"} == {None}


def test_the_other_string_abi_is_explained_against_a_release(packages: Path) -> None:
    loads = loads_of(inspect_package(packages / "abi", torch_version="2.13"))
    assert loads["libabi1.so"].status is LoadStatus.LOADS  # the build exports CXX11_CHECK_FAIL
    old = loads["libabi0.so"]
    assert old.fails and old.undefined_symbols == (OLD_CHECK_FAIL,)
    assert old.cxx11_abi_mismatch == (OLD_CHECK_FAIL,)
    assert old.message == (
        f"will not load with torch 2.13: undefined symbol: {OLD_CHECK_FAIL}; it was built with "
        "the pre-C++11 ABI (_GLIBCXX_USE_CXX11_ABI=0) but torch 2.13 with the C++11 ABI "
        "(_GLIBCXX_USE_CXX11_ABI=1), so its imports taking or returning std::string cannot "
        "resolve (c10::detail::torchCheckFail(char const*, char const*, unsigned int, "
        "std::string const&))"
    )


def test_failures_spread_through_a_package_against_a_release(
    packages: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chain = packages / "chain"
    loads = loads_of(inspect_package(chain, torch_version="2.13"))
    assert loads["libhelper.so"].message == f"will not load with torch 2.13: {CUDART12}"
    ext = loads["_ext.so"]  # uses nothing of torch: it fails through the helper
    assert ext.fails and ext.failed_dependencies == ("libhelper.so",)
    assert ext.build == "torch 2.13.0+cu130 (linux_x86_64)"
    assert ext.message == (
        f"will not load with torch 2.13: needs libhelper.so (bundled), which will not load: "
        f"{CUDART12}"
    )
    assert loads["_stable.so"].status is LoadStatus.LOADS
    assert "_ext.so" not in loads_of(inspect_package(chain, torch_version="2.10"))
    # A CUDA 12 variant: the helper loads; the unstable library cannot be told, nor can the
    # stable one that needs it.
    variant = loads_of(inspect_package(chain, torch_version="2.13+cu126"))
    assert variant["libhelper.so"].status is LoadStatus.LOADS and "_ext.so" not in variant
    assert variant["libinternal.so"].status is LoadStatus.UNKNOWN
    stable = variant["_stable.so"]
    assert stable.status is LoadStatus.UNKNOWN
    assert stable.message.startswith(
        "cannot tell whether it loads with torch 2.13+cu126: needs libinternal.so (bundled), "
        "which may not load: the data holds the index's default build"
    )
    assert main([str(chain), "--torch-version", "2.13", "-v"]) == 0
    out = capsys.readouterr().out
    assert "        judged against: torch 2.13.0+cu130 (linux_x86_64)" in out
    assert "        needs, and will not load: libhelper.so" in out
    # Pull-request comments say what cannot be told, as they say what will not load.
    assert main([str(chain), "--torch-version", "2.13+cu126", "--format", "markdown"]) == 0
    markdown = capsys.readouterr().out
    assert "**Cannot tell whether it loads**" in markdown
    assert "- `chain/_stable.so`: cannot tell whether it loads with torch 2.13+cu126: needs" in (
        markdown
    )


CUDA_SHIM = "aoti_torch_create_cuda_guard"  # a CUDA-device shim: CUDA builds only


def _optional_cuda_module(directory: Path, fmt: str, optional: bool) -> Path:
    """A wheel whose module needs the CPU shim and, weakly (``optional``) or not, a CUDA shim
    from torch's CUDA library: a weak-linked ``libtorch_cuda.dylib`` on macOS arm64 (with a weak
    TLS init import too), a delay-loaded ``torch_cuda.dll`` and ``cudart64_12.dll`` on Windows —
    neither of which the release's default build installs there."""
    if fmt == "mach-o":
        kinds = (LC_LOAD_DYLIB, LC_LOAD_DYLIB, LC_LOAD_WEAK_DYLIB if optional else LC_LOAD_DYLIB)
        names = ("libtorch_cpu", "libc10", "libtorch_cuda")  # ordinals 1, 2, 3
        module = MachO(
            filetype=MH_BUNDLE,
            dylibs=[
                (kind, f"@rpath/{name}.dylib") for kind, name in zip(kinds, names, strict=True)
            ],
            imports=[
                undefined(f"_{SHIM}", 1),
                undefined("__ZTWN3c104impl26raw_local_dispatch_key_setE", 2),  # macOS has it
                undefined(f"_{WEAK_TLS_INIT}", 2, weak=True),
                undefined(f"_{CUDA_SHIM}", 3, weak=optional),
            ],
        ).build()
        files = {"ext/_C.abi3.so": module.data}
        return write_wheel(directory, "ext", "1.0", ["cp311-abi3-macosx_11_0_arm64"], files)
    cuda = [Import("cudart64_12.dll", ["cudaMalloc"]), Import("torch_cuda.dll", [CUDA_SHIM])]
    pe = build_pe(
        imports=[Import("torch_cpu.dll", [SHIM]), *([] if optional else cuda)],
        delay_imports=cuda if optional else [],
        exports=[Export("PyInit__C")],
        export_name="_C.pyd",
    )
    return write_wheel(directory, "ext", "1.0", ["cp311-abi3-win_amd64"], {"ext/_C.pyd": pe.data})


@dataclass(frozen=True)
class OptionalCuda:
    """What a release's default build of one platform makes of :func:`_optional_cuda_module`:
    the build, the optional libraries and weak imports it lacks, and the loader's error when
    they are required."""

    fmt: str
    build: str
    libraries: tuple[str, ...]
    weak: tuple[str, ...]
    failure: str


OPTIONAL_CUDA = [
    OptionalCuda(
        "mach-o",
        "torch 2.13.0 (macos_arm64)",
        ("@rpath/libtorch_cuda.dylib",),
        (WEAK_TLS_INIT, CUDA_SHIM),
        "Library not loaded: @rpath/libtorch_cuda.dylib\n",
    ),
    OptionalCuda(
        "pe",
        "torch 2.13.0+cpu (win_amd64)",
        ("cudart64_12.dll", "torch_cuda.dll"),
        (CUDA_SHIM,),
        "DLL load failed while importing _C: The specified module could not be found.",
    ),
]


@pytest.mark.parametrize("optional", [True, False])
@pytest.mark.parametrize("expected", OPTIONAL_CUDA, ids=lambda e: e.fmt)
def test_weak_dylibs_and_delay_loaded_dlls_against_a_release(
    tmp_path: Path, expected: OptionalCuda, optional: bool
) -> None:
    wheel = _optional_cuda_module(tmp_path, expected.fmt, optional)
    [lib] = inspect_package(wheel, torch_version="2.13", jobs=1).libraries
    load = lib.load
    assert load is not None and load.build == expected.build
    if optional:
        assert load.status is LoadStatus.LOADS, load.message
        assert load.missing_optional_libraries == expected.libraries
        assert load.weak_undefined_symbols == expected.weak
    else:
        assert load.fails
        assert load.message.startswith(f"will not load with torch 2.13: {expected.failure}")


# -- real wheels -------------------------------------------------------------------------------

TORCHAUDIO_291 = "torchaudio-2.9.1-cp311-cp311-manylinux_2_28_x86_64.whl"
# What the real loader reports (``ldd -r`` on libtorchaudio.so beside the libraries of the
# torch 2.13.0+cu130 wheel, measured 2026-12): the libtorch symbols 2.13 no longer exports.
MISSING_IN_2_13 = (
    "_ZN3c1013MessageLoggerC1EPKcii",
    "_ZN3c104cuda29c10_cuda_check_implementationEiPKcS2_ib",
    "_ZN3c104impl3cow23materialize_cow_storageERNS_11StorageImplE",
    "_ZNR5torch7Library4_defEON3c1014FunctionSchemaEPNS1_12OperatorNameERKSt6vectorIN2at3TagE"
    "SaIS8_EENS_17_RegisterOrVerifyE",
    "_ZNR5torch7Library4_defEOSt7variantIJN3c1012OperatorNameENS2_14FunctionSchemaEEEONS_11CppF"
    "unctionERKSt6vectorIN2at3TagESaISB_EE",
)


@pytest.mark.network
def test_torchaudio_2_9_1_against_releases() -> None:
    wheel = real_wheel(TORCHAUDIO_291)
    at_2_13 = loads_of(inspect_package(wheel, torch_version="2.13"))["libtorchaudio.so"]
    assert at_2_13.fails
    assert at_2_13.missing_libraries == (CUDART12,)  # built for CUDA 12, 2.13 is CUDA 13
    # Exactly what the loader reports; the weak reference it lets pass is optional.
    assert at_2_13.undefined_symbols == MISSING_IN_2_13
    assert at_2_13.weak_undefined_symbols == (WEAK_TLS_INIT,)
    assert at_2_13.cxx11_abi_mismatch == ()
    at_2_9_1 = loads_of(inspect_package(wheel, torch_version="2.9.1"))["libtorchaudio.so"]
    # Built for 2.9.1: nothing is missing but the weak reference the loader lets pass.
    assert at_2_9_1.status is LoadStatus.LOADS
    assert at_2_9_1.message == (
        f"loads with torch 2.9.1 (missing but optional: 1 weak import ({WEAK_TLS_INIT}))"
    )
    assert at_2_9_1.undefined_symbols == () and at_2_9_1.missing_libraries == ()
    assert at_2_9_1.weak_undefined_symbols == (WEAK_TLS_INIT,)
    assert at_2_9_1.build == "torch 2.9.1+cu128 (linux_x86_64)"


@pytest.mark.network
@pytest.mark.torch
def test_torchaudio_2_9_1_against_a_real_torch_2_13(tmp_path: Path) -> None:
    """The real loader (``ldd -r``, ld.so's own relocation pass) beside the installed torch
    2.13.0 CPU build reports every symbol the release prediction names as missing; what else it
    reports lives in the CUDA libraries a CPU build lacks, which the release's CUDA build
    exports."""
    import os

    torch_dir = os.environ.get("TORCH_ABI_AUDIT_TORCH_DIR")
    ldd = shutil.which("ldd")
    if not torch_dir or ldd is None:
        pytest.skip("needs TORCH_ABI_AUDIT_TORCH_DIR (torch 2.13.0) and ldd")
    wheel = real_wheel(TORCHAUDIO_291)
    with zipfile.ZipFile(wheel) as archive:
        archive.extract("torchaudio/lib/libtorchaudio.so", tmp_path)
    library = tmp_path / "torchaudio" / "lib" / "libtorchaudio.so"
    result = subprocess.run(
        [ldd, "-r", str(library)],
        capture_output=True,
        text=True,
        env={"LD_LIBRARY_PATH": str(Path(torch_dir) / "lib"), "PATH": os.environ["PATH"]},
        check=False,
    )
    real = {
        line.split("undefined symbol: ", 1)[1].split("\t")[0].split(",")[0]
        for line in result.stdout.splitlines() + result.stderr.splitlines()
        if "undefined symbol: " in line and "libtorchaudio.so)" in line
    }
    predicted = loads_of(inspect_package(wheel, torch_version="2.13"))["libtorchaudio.so"]
    assert set(predicted.undefined_symbols) <= real
    # The weak reference the prediction calls optional is one the real loader lets pass.
    assert predicted.weak_undefined_symbols == (WEAK_TLS_INIT,) and WEAK_TLS_INIT not in real
    build = next(
        b
        for b in load_release_exports().builds
        if b.platform == "linux_x86_64" and str(b.release) == "2.13.0"
    )
    exports = load_release_exports().exports(build)
    torch_owned = {name for name in real if name.startswith("_Z")}
    assert torch_owned - set(predicted.undefined_symbols) <= exports
