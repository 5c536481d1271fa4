"""Will it load, for reasons beyond the library's own imports: weak imports that may stay
unresolved, and libraries of the same package that fail to load first.

ELF cases are compiled at test time against a fake torch whose ``libc10.so`` defines a
``thread_local`` the way libtorch does (constant-initialised: no TLS init function ``_ZTH…``
exported); Mach-O and PE cases are built byte by byte, with fake torch wheels of their own.
Each "loads" below was predicted "will not load" before weak imports were told apart, and each
chained failure was predicted "loads".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

from helpers.fake_torch import build_library, write_torch
from helpers.macho_builder import (
    LC_LOAD_DYLIB,
    LC_LOAD_WEAK_DYLIB,
    MH_BUNDLE,
    MachO,
    defined,
    undefined,
)
from helpers.pe_builder import Export, Import, build_pe
from helpers.real_wheels import installed_torch, real_wheel
from helpers.wheel_builder import write_wheel
from torch_abi_audit import inspect_package, inspect_site_packages
from torch_abi_audit.cli import main
from torch_abi_audit.renderers.json_report import load_schema
from torch_abi_audit.report import PackageReport
from torch_abi_audit.rules.load_prediction import LoadPrediction, LoadStatus

OLD_SHIM = "aoti_torch_get_dim"  # 2.9.0
NEW_SHIM = "aoti_torch_cpu_rand_like"  # 2.12.0, not in the fake torch
TLS_VARIABLE = "_ZN3c104impl26raw_local_dispatch_key_setE"
TLS_INIT = "_ZTHN3c104impl26raw_local_dispatch_key_setE"
VERSION = "2.13.0+cpu"
AGAINST = f"torch {VERSION}"
CANNOT_OPEN = "{}: cannot open shared object file: No such file or directory"

TORCH_CPU = f"""
#include <stdint.h>
int32_t {OLD_SHIM}(void* t, int64_t* d) {{ *d = 1; return 0; }}
"""
C10 = """
#include <cstdint>
namespace c10 { namespace impl {
struct PODLocalDispatchKeySet { uint64_t included_; uint64_t excluded_; };
thread_local PODLocalDispatchKeySet raw_local_dispatch_key_set{};
} }
"""
# What any code reading c10::impl::raw_local_dispatch_key_set compiles to: a strong import of
# the variable and a weak one of its TLS init function, called only if it exists.
TLS_USER = f"""
#include <cstdint>
namespace c10 {{ namespace impl {{
struct PODLocalDispatchKeySet {{ uint64_t included_; uint64_t excluded_; }};
extern thread_local PODLocalDispatchKeySet raw_local_dispatch_key_set;
}} }}
extern "C" int32_t {OLD_SHIM}(void*, int64_t*);
extern "C" uint64_t included_keys() {{
    int64_t d = 0;
    {OLD_SHIM}(nullptr, &d);
    return c10::impl::raw_local_dispatch_key_set.included_ + d;
}}
"""
WEAK_SHIM_USER = f"""
#include <stdint.h>
int32_t {OLD_SHIM}(void*, int64_t*);
__attribute__((weak)) int32_t {NEW_SHIM}(void*, void**);
int64_t entry(void) {{
    int64_t d = 0;
    {OLD_SHIM}(0, &d);
    if ({NEW_SHIM}) {NEW_SHIM}(0, 0);  /* only where the running torch has it */
    return d;
}}
"""


def uses_shim(name: str = "entry", *, module: str | None = None) -> str:
    """C source that calls the old shim (and, with ``module``, is an extension module)."""
    init = f"void* PyInit_{module}(void) {{ return 0; }}\n" if module else ""
    return (
        f"#include <stdint.h>\nint32_t {OLD_SHIM}(void*, int64_t*);\n"
        f"int64_t {name}(void) {{ int64_t d = 0; {OLD_SHIM}(0, &d); return d; }}\n{init}"
    )


def plain(name: str, *, module: str | None = None) -> str:
    init = f"void* PyInit_{module}(void) {{ return 0; }}\n" if module else ""
    return f"int {name}(void) {{ return 1; }}\n{init}"


@dataclass(frozen=True)
class Site:
    site: Path
    torch: Path
    chain_wheel: Path


def _write_dist(site: Path, name: str, files: list[str]) -> None:
    dist_info = site / f"{name}-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    record = [*files, f"{dist_info.name}/METADATA", f"{dist_info.name}/RECORD"]
    (dist_info / "RECORD").write_text("".join(f"{f},,\n" for f in record))


def _build_chain(site: Path, stand_ins: Path, torch_lib: Path) -> list[str]:
    """The ``chain`` distribution: ``chain/`` and its vendored ``chain.libs/``.

    ``libhelper.so.0`` needs ``libcudart.so.12`` (nowhere to be found); ``_ext`` needs the
    helper; ``liba``/``libb`` need each other and ``liba`` the helper; ``libc``/``libd`` need
    each other only; ``_fine`` needs ``libfine.so.1``, which loads.
    """
    pkg, libs = site / "chain", site / "chain.libs"
    build_library(stand_ins, "libcudart.so.12", plain("cudaMalloc"), "-Wl,-soname,libcudart.so.12")
    shim = ["-L", str(torch_lib), "-l:libtorch_cpu.so"]
    keep = "-Wl,--no-as-needed"
    build_library(
        libs,
        "libhelper.so.0",
        uses_shim("helper"),
        "-Wl,-soname,libhelper.so.0",
        *shim,
        keep,
        "-L",
        str(stand_ins),
        "-l:libcudart.so.12",
    )
    build_library(libs, "libfine.so.1", plain("fine"), "-Wl,-soname,libfine.so.1")
    vendored = ["-L", str(libs), "-Wl,-rpath,$ORIGIN/../chain.libs", keep]
    build_library(pkg, "_ext.abi3.so", plain("ext", module="_ext"), *vendored, "-l:libhelper.so.0")
    build_library(pkg, "_fine.abi3.so", plain("f", module="_fine"), *vendored, "-l:libfine.so.1")
    # No search path leads to the helper: the package would load it first itself (ctypes), and
    # the loader would match the needed entry by soname. It cannot, if the helper fails.
    unfound = ["-L", str(libs), keep, "-l:libhelper.so.0"]
    build_library(pkg, "_preloads.abi3.so", plain("p", module="_preloads"), *unfound)
    # Two cycles: each library is built once alone, then again linked to its partner.
    local = ["-L", str(pkg), "-Wl,-rpath,$ORIGIN", keep]
    for first, second, extra in (("liba", "libb", ["-l:libhelper.so.0"]), ("libc", "libd", [])):
        build_library(pkg, f"{second}.so", plain(second), f"-Wl,-soname,{second}.so")
        build_library(
            pkg,
            f"{first}.so",
            plain(first),
            f"-Wl,-soname,{first}.so",
            *local,
            f"-l:{second}.so",
            *vendored,
            *extra,
        )
        build_library(
            pkg, f"{second}.so", plain(second), f"-Wl,-soname,{second}.so", *local, f"-l:{first}.so"
        )
    return [
        *(f"chain/{p.name}" for p in sorted(pkg.iterdir())),
        *(f"chain.libs/{p.name}" for p in sorted(libs.iterdir())),
    ]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    root = tmp_path_factory.mktemp("site")
    torch = write_torch(root, VERSION, TORCH_CPU, C10)
    lib = torch / "lib"
    shim = ["-L", str(lib), "-l:libtorch_cpu.so"]
    build_library(root / "tlsuser", "libtls.so", TLS_USER, *shim, "-l:libc10.so", cxx=True)
    build_library(root / "weakshim", "libweakshim.so", WEAK_SHIM_USER, *shim)
    files = _build_chain(root, tmp_path_factory.mktemp("stand-ins"), lib)
    _write_dist(root, "chain", files)
    members = {name: (root / name).read_bytes() for name in files}
    wheels = tmp_path_factory.mktemp("wheels")
    chain_wheel = write_wheel(wheels, "chain", "1.0", ["cp311-abi3-manylinux_2_28_x86_64"], members)
    return Site(root, torch, chain_wheel)


def loads_of(report: PackageReport) -> dict[str, LoadPrediction | None]:
    root = report.root
    return {
        (
            lib.path.relative_to(root).as_posix()
            if lib.path.is_relative_to(root)
            else lib.path.name
        ): lib.load
        for lib in report.libraries
    }


# -- weak imports ---------------------------------------------------------------------------------


def test_a_weak_tls_init_reference_does_not_stop_the_load(site: Site) -> None:
    report = inspect_package(site.site / "tlsuser", torch=site.torch, jobs=1)
    [lib] = report.libraries
    # Still libtorch internals: the verdict does not change...
    assert lib.torch_label == "UNSTABLE"
    assert {u.symbol for u in lib.torch.unstable_details} == {TLS_VARIABLE, TLS_INIT}
    assert lib.torch.weak_imports == (TLS_INIT,)
    # ...but the loader leaves the missing weak reference at 0: it loads.
    load = lib.load
    assert load is not None and load.status is LoadStatus.LOADS
    assert load.undefined_symbols == ()
    assert load.weak_undefined_symbols == (TLS_INIT,)
    assert (
        load.message == f"loads with {AGAINST} (missing but optional: 1 weak import ({TLS_INIT}))"
    )
    assert not [f for f in report.findings if f.code == "load-failure"]


def test_a_weakly_imported_newer_shim_sets_no_floor(site: Site) -> None:
    report = inspect_package(site.site / "weakshim", torch=site.torch, jobs=1)
    [lib] = report.libraries
    assert lib.torch.stable and lib.torch.stable_shims == (NEW_SHIM, OLD_SHIM)
    assert lib.torch.weak_imports == (NEW_SHIM,)
    assert lib.torch.min_torch_version == "2.9.0"  # the weak 2.12 shim is looked up, not needed
    assert lib.load is not None and lib.load.status is LoadStatus.LOADS
    assert lib.load.weak_undefined_symbols == (NEW_SHIM,)
    release = inspect_package(site.site / "weakshim", torch_version="2.11", jobs=1)
    [old] = release.libraries
    assert old.load is not None and old.load.status is LoadStatus.LOADS
    assert old.load.weak_undefined_symbols == (NEW_SHIM,)
    assert not release.findings or all(f.code != "needs-newer-torch" for f in release.findings)


def _macho_torch_wheel(directory: Path) -> Path:
    torch_cpu = MachO(
        id_dylib="@rpath/libtorch_cpu.dylib", exports=[defined(f"_{OLD_SHIM}")]
    ).build()
    c10 = MachO(id_dylib="@rpath/libc10.dylib", exports=[defined(f"_{TLS_VARIABLE}", 3)]).build()
    files = {
        "torch/lib/libtorch_cpu.dylib": torch_cpu.data,
        "torch/lib/libc10.dylib": c10.data,
        "torch/version.py": b"__version__ = '2.13.0'\n",
    }
    return write_wheel(directory, "torch", "2.13.0", ["cp311-cp311-macosx_11_0_arm64"], files)


@pytest.mark.parametrize("weak", [True, False])
def test_mach_o_weak_imports_and_weak_dylibs(tmp_path: Path, weak: bool) -> None:
    torch = _macho_torch_wheel(tmp_path)
    weak_dylib = LC_LOAD_WEAK_DYLIB if weak else LC_LOAD_DYLIB
    module = MachO(
        filetype=MH_BUNDLE,
        dylibs=[
            (LC_LOAD_DYLIB, "@rpath/libtorch_cpu.dylib"),
            (LC_LOAD_DYLIB, "@rpath/libc10.dylib"),
            (weak_dylib, "@rpath/libtorch_cuda.dylib"),
        ],
        exports=[defined("_PyInit__C")],
        imports=[
            undefined(f"_{OLD_SHIM}", 1),
            undefined(f"_{TLS_VARIABLE}", 2),
            undefined(f"_{TLS_INIT}", 2, weak=weak),
            undefined("_aoti_torch_cuda_thing", 3, weak=weak),
        ],
    ).build()
    wheel = write_wheel(
        tmp_path, "ext", "1.0", ["cp311-abi3-macosx_11_0_arm64"], {"ext/_C.abi3.so": module.data}
    )
    [lib] = inspect_package(wheel, torch=torch, jobs=1).libraries
    load = lib.load
    assert load is not None
    if weak:
        assert load.status is LoadStatus.LOADS
        assert load.missing_optional_libraries == ("@rpath/libtorch_cuda.dylib",)
        assert load.weak_undefined_symbols == (
            "_ZTHN3c104impl26raw_local_dispatch_key_setE",
            "aoti_torch_cuda_thing",
        )
    else:
        assert load.fails
        assert load.message.startswith(
            "will not load with torch 2.13.0: Library not loaded: @rpath/libtorch_cuda.dylib"
        )


@pytest.mark.parametrize("delayed", [True, False])
def test_pe_delay_loaded_dlls_are_optional(tmp_path: Path, delayed: bool) -> None:
    torch_cpu = build_pe(exports=[Export(OLD_SHIM)], export_name="torch_cpu.dll").data
    files = {"torch/lib/torch_cpu.dll": torch_cpu, "torch/version.py": b"__version__ = '2.13.0'\n"}
    torch = write_wheel(tmp_path, "torch", "2.13.0", ["cp311-cp311-win_amd64"], files)
    cuda = [
        Import("cudart64_12.dll", ["cudaMalloc"]),
        Import("torch_cuda.dll", ["aoti_torch_cuda_x"]),
    ]
    module = build_pe(
        imports=[Import("torch_cpu.dll", [OLD_SHIM]), *([] if delayed else cuda)],
        delay_imports=cuda if delayed else [],
        exports=[Export("PyInit__C")],
        export_name="_C.pyd",
    ).data
    wheel = write_wheel(tmp_path, "ext", "1.0", ["cp311-abi3-win_amd64"], {"ext/_C.pyd": module})
    [lib] = inspect_package(wheel, torch=torch, jobs=1).libraries
    load = lib.load
    assert load is not None
    if delayed:
        assert lib.optional_needed == ("cudart64_12.dll", "torch_cuda.dll")
        assert load.status is LoadStatus.LOADS, load.message
        assert load.missing_optional_libraries == ("cudart64_12.dll", "torch_cuda.dll")
        assert load.weak_undefined_symbols == ("aoti_torch_cuda_x",)
    else:
        assert load.fails
        assert load.message == (
            "will not load with torch 2.13.0: DLL load failed while importing _C: "
            "The specified module could not be found."
        )


# -- a library fails when what it needs fails -----------------------------------------------------


HELPER_FAILS = CANNOT_OPEN.format("libcudart.so.12")


def check_chain(loads: dict[str, LoadPrediction | None], against: str) -> None:
    helper = loads["chain.libs/libhelper.so.0"]
    assert helper is not None and helper.message == f"will not load with {against}: {HELPER_FAILS}"
    ext = loads["chain/_ext.abi3.so"]
    assert ext is not None and ext.fails
    assert ext.message == (
        f"will not load with {against}: needs libhelper.so.0 (bundled), which will not load: "
        f"{HELPER_FAILS}"
    )
    assert ext.failed_dependencies == ("chain.libs/libhelper.so.0",)
    preloads = loads["chain/_preloads.abi3.so"]
    assert preloads is not None and preloads.message == ext.message
    # A cycle with a failure in it: liba fails through the helper, libb through liba.
    liba, libb = loads["chain/liba.so"], loads["chain/libb.so"]
    assert liba is not None and libb is not None
    assert liba.failed_dependencies == ("chain.libs/libhelper.so.0",)
    assert libb.message == (
        f"will not load with {against}: needs liba.so (bundled), which will not load: "
        f"needs libhelper.so.0 (bundled), which will not load: {HELPER_FAILS}"
    )
    # A cycle with no failure in it, and a library whose dependency loads: nothing to say.
    for name in (
        "chain/libc.so",
        "chain/libd.so",
        "chain/_fine.abi3.so",
        "chain.libs/libfine.so.1",
    ):
        assert loads[name] is None, name


def test_failures_spread_through_needed_libraries(site: Site) -> None:
    env = inspect_site_packages(site.site, jobs=1)
    [chain] = [p for p in env.packages if p.name == "chain"]
    check_chain(loads_of(chain), AGAINST)
    [finding] = [f for f in chain.findings if f.code == "load-failure"]
    assert sorted(finding.evidence["libraries"] or ()) == [
        "chain.libs/libhelper.so.0",
        "chain/_ext.abi3.so",
        "chain/_preloads.abi3.so",
        "chain/liba.so",
        "chain/libb.so",
    ]


def test_failures_spread_inside_a_wheel(site: Site) -> None:
    report = inspect_package(site.chain_wheel, torch=site.torch, jobs=1)
    check_chain(loads_of(report), AGAINST)
    assert report.load_status is LoadStatus.FAILS


def test_chain_in_json_and_verbose_table(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(site.chain_wheel), "--torch", str(site.torch), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    jsonschema.validate(document, load_schema())
    loads = {Path(lib["path"]).name: lib["load"] for lib in document["extensions"]}
    assert loads["_ext.abi3.so"]["failed_dependencies"] == ["chain.libs/libhelper.so.0"]
    assert main([str(site.chain_wheel), "--torch", str(site.torch), "-v"]) == 0
    text = capsys.readouterr().out
    assert "        needs, and will not load: chain.libs/libhelper.so.0" in text
    assert f"        will not load with {AGAINST}: needs libhelper.so.0 (bundled)" in text


# -- a real wheel ----------------------------------------------------------------------------------

TORCHAUDIO_291 = "torchaudio-2.9.1-cp311-cp311-manylinux_2_28_x86_64.whl"


@pytest.mark.network
@pytest.mark.torch
def test_the_weak_tls_reference_of_a_real_wheel(tmp_path: Path) -> None:
    """torchaudio 2.9.1's libtorchaudio.so references the TLS init function of
    c10::impl::raw_local_dispatch_key_set weakly. Beside the installed torch 2.13 the real
    loader (``ldd -r``: ld.so's relocation pass, no code run) reports the strong imports that
    torch lacks and not that one; so does the prediction, which lists it as weak instead."""
    import shutil
    import subprocess
    import zipfile

    torch = installed_torch()
    ldd = shutil.which("ldd")
    if ldd is None:
        pytest.skip("no ldd to compare with")
    wheel = real_wheel(TORCHAUDIO_291)
    report = inspect_package(wheel, torch=torch, jobs=1)
    [lib] = [lib for lib in report.libraries if lib.path.name == "libtorchaudio.so"]
    assert TLS_INIT in lib.torch.weak_imports and lib.torch_label == "UNSTABLE"
    load = lib.load
    assert load is not None and load.fails  # CUDA libraries a CPU torch does not have
    assert TLS_INIT in load.weak_undefined_symbols and TLS_INIT not in load.undefined_symbols
    extracted = tmp_path / "libtorchaudio.so"
    with zipfile.ZipFile(wheel) as archive:
        extracted.write_bytes(archive.read("torchaudio/lib/libtorchaudio.so"))
    result = subprocess.run(
        [ldd, "-r", str(extracted)],
        capture_output=True,
        text=True,
        check=False,
        env={"LD_LIBRARY_PATH": str(torch / "lib"), "PATH": "/usr/bin:/bin"},
    )
    reported = {
        line.split("undefined symbol: ", 1)[1].split()[0]
        for line in (result.stdout + result.stderr).splitlines()
        if "undefined symbol: " in line
    }
    assert reported and TLS_INIT not in reported
    assert set(load.undefined_symbols) <= reported


TORCHCODEC_017 = "torchcodec-0.17.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"


@pytest.mark.network
@pytest.mark.torch
def test_a_real_chain_through_a_library_the_package_loads_itself() -> None:
    """torchcodec 0.17.0 (a CUDA 13 build): each libtorchcodec_custom_opsN.so needs
    libtorchcodec_coreN.so with no search path to it (torchcodec loads the core first);
    beside a CPU torch the core cannot load (libnvrtc.so.13), so neither can the custom ops."""
    report = inspect_package(real_wheel(TORCHCODEC_017), torch=installed_torch(), jobs=1)
    loads = loads_of(report)
    core = loads["torchcodec/libtorchcodec_core8.so"]
    assert core is not None and "libnvrtc.so.13: cannot open shared object file" in core.message
    ops = loads["torchcodec/libtorchcodec_custom_ops8.so"]
    assert ops is not None and ops.fails
    assert ops.failed_dependencies == ("torchcodec/libtorchcodec_core8.so",)


def test_a_chain_through_delocated_dylibs(tmp_path: Path) -> None:
    """delocate puts a wheel's dylibs in ``pkg/.dylibs`` and names them from the module's
    directory (``@loader_path/.dylibs/…``): a helper there that needs a CUDA torch fails, so
    does the module that needs it."""
    torch = _macho_torch_wheel(tmp_path)
    helper_name = "@loader_path/.dylibs/libhelper.dylib"
    helper = MachO(
        id_dylib="/DLC/pkg/.dylibs/libhelper.dylib",
        dylibs=[(LC_LOAD_DYLIB, "@rpath/libtorch_cuda.dylib")],
        imports=[undefined("_aoti_torch_cuda_thing", 1)],
    ).build()
    module = MachO(
        filetype=MH_BUNDLE,
        dylibs=[(LC_LOAD_DYLIB, helper_name)],
        exports=[defined("_PyInit__C")],
        imports=[undefined("_helper_entry", 1)],
    ).build()
    files = {"pkg/_C.abi3.so": module.data, "pkg/.dylibs/libhelper.dylib": helper.data}
    wheel = write_wheel(tmp_path, "pkg", "1.0", ["cp311-abi3-macosx_11_0_arm64"], files)
    loads = loads_of(inspect_package(wheel, torch=torch, jobs=1))
    reason = "Library not loaded: @rpath/libtorch_cuda.dylib"
    helper_load, module_load = loads["pkg/.dylibs/libhelper.dylib"], loads["pkg/_C.abi3.so"]
    assert helper_load is not None and reason in helper_load.message
    assert module_load is not None and module_load.message.startswith(
        f"will not load with torch 2.13.0: needs {helper_name} (bundled), which will not load: "
        f"{reason}"
    )
    assert module_load.failed_dependencies == ("pkg/.dylibs/libhelper.dylib",)
