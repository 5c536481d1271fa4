"""Load prediction end to end: a fake torch installation compiled at test time, extensions
linked against it, and the predictions the API, the table, the JSON and ``--check load`` give.

The fake torch's ``libtorch_cpu.so`` exports a few real shim names and one libtorch C++
function; what it leaves out is what the extensions then miss. Nothing is ever loaded: the
"will not load" predictions are checked against the words the real loader would print.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

from helpers.fake_torch import build_library as build
from helpers.fake_torch import write_torch as write_fake_torch
from helpers.wheel_builder import write_wheel
from torch_abi_audit import inspect_extension, inspect_package, inspect_site_packages
from torch_abi_audit.audit import LoadTargetError, load_target
from torch_abi_audit.cli import main
from torch_abi_audit.renderers.json_report import load_schema
from torch_abi_audit.report import PackageReport
from torch_abi_audit.rules.load_prediction import LoadPrediction, LoadStatus
from torch_abi_audit.sources.torch_install import load_torch_install

OLD_SHIM = "aoti_torch_get_dim"  # baseline (2.9.0)
NEW_SHIM = "aoti_torch_cpu_rand_like"  # 2.12.0
OPTIONAL_SHIM = "torch_call_dispatcher"  # 2.10.0, only looked up with dlsym
DEPRECATED_SHIM = "aoti_torch_nonzero"
CHECK_FAIL = "_ZN3c106detail14torchCheckFailEPKcS2_jS2_"

FAKE_TORCH = f"""
#include <stdint.h>
int32_t {OLD_SHIM}(void* t, int64_t* d) {{ *d = 1; return 0; }}
int32_t {DEPRECATED_SHIM}(void* t, void** out) {{ return 0; }}
int32_t aoti_torch_delete_tensor_object(void* t) {{ return 0; }}
"""
FAKE_C10 = """
#include <cstdint>
namespace c10::detail {
void torchCheckFail(const char*, const char*, uint32_t, const char*) {}
}
"""


def ext_source(*shims: str, check_fail: bool = False, lookup: str | None = None) -> str:
    lines = ["#include <stdint.h>", "#include <dlfcn.h>"]
    lines += [f"int32_t {name}(void*, int64_t*);" for name in shims]
    if check_fail:
        lines.append(f"void {CHECK_FAIL}(const char*, const char*, uint32_t, const char*);")
    body = [f"{name}(0, &d);" for name in shims]
    if check_fail:
        body.append(f'{CHECK_FAIL}("f", "file", 1u, "msg");')
    if lookup:
        body.append(f'if (dlsym(RTLD_DEFAULT, "{lookup}")) d += 1;')
    lines.append(
        '__attribute__((visibility("default"))) int64_t entry(void) { int64_t d = 0; '
        + " ".join(body)
        + " return d; }"
    )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Site:
    site: Path
    torch: Path


def write_torch(root: Path, version: str) -> Path:
    """``root/torch`` with ``lib/libtorch_cpu.so``, ``lib/libc10.so`` and ``version.py``."""
    return write_fake_torch(root, version, FAKE_TORCH, FAKE_C10)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    root = tmp_path_factory.mktemp("site")
    torch = write_torch(root, "2.13.0+cpu")
    lib = torch / "lib"
    # A stand-in libtorch_cuda.so to link against, kept outside the installation.
    cuda_dir = tmp_path_factory.mktemp("cuda")
    build(cuda_dir, "libtorch_cuda.so", "int cuda_marker(void) { return 1; }\n")
    link = ["-L", str(lib), "-ltorch_cpu"]
    pkg = root / "ops"
    pkg.mkdir()
    build(pkg, "libgood.so", ext_source(OLD_SHIM), *link)
    build(pkg, "libfuture.so", ext_source(OLD_SHIM, NEW_SHIM), *link)
    cuda = ["-L", str(cuda_dir), "-Wl,--no-as-needed", "-ltorch_cuda"]
    build(pkg, "libcuda_build.so", ext_source(OLD_SHIM), *link, *cuda)
    build(pkg, "liblookup.so", ext_source(OLD_SHIM, lookup=OPTIONAL_SHIM), *link, "-ldl")
    build(pkg, "libdeprecated.so", ext_source(DEPRECATED_SHIM), *link)
    unstable = root / "legacy"
    unstable.mkdir()
    build(unstable, "liblegacy.so", ext_source(check_fail=True), "-L", str(lib), "-lc10")
    build(
        unstable,
        "libtoonew.so",
        ext_source(check_fail=True) + "void _ZN2at6Tensor3dimEv(void);\n"
        "void extra(void) { _ZN2at6Tensor3dimEv(); }\n",
        "-L",
        str(lib),
        "-lc10",
    )
    return Site(root, torch)


def by_name(report: PackageReport) -> dict[str, LoadPrediction]:
    """The load prediction of each library that has one, by file name."""
    return {lib.path.name: lib.load for lib in report.libraries if lib.load is not None}


def test_against_the_installation_in_the_environment(site: Site) -> None:
    env = inspect_site_packages(site.site, jobs=1)
    assert env.torch_reference is not None
    assert (env.torch_reference.label, env.torch_reference.origin) == (
        "torch 2.13.0+cpu",
        "environment",
    )
    packages = {p.name: p for p in env.packages}
    ops = {lib.path.name: lib.load for lib in packages["ops"].libraries}
    assert ops["libgood.so"] is not None and ops["libgood.so"].status is LoadStatus.LOADS
    future = ops["libfuture.so"]
    assert future is not None and future.fails
    assert future.undefined_symbols == (NEW_SHIM,)
    assert future.newer_shims == ()  # a 2.12 shim that this 2.13 build just lacks
    assert future.message == f"will not load with torch 2.13.0+cpu: undefined symbol: {NEW_SHIM}"
    cuda = ops["libcuda_build.so"]
    assert cuda is not None and cuda.message == (
        "will not load with torch 2.13.0+cpu: libtorch_cuda.so: cannot open shared object "
        "file: No such file or directory"
    )
    legacy = {lib.path.name: lib.load for lib in packages["legacy"].libraries}
    assert legacy["liblegacy.so"] is not None and not legacy["liblegacy.so"].fails
    toonew = legacy["libtoonew.so"]
    assert toonew is not None and toonew.undefined_symbols == ("_ZN2at6Tensor3dimEv",)
    torch_package = packages["torch"]
    assert all(lib.load is None for lib in torch_package.libraries)  # the reference itself
    codes = sorted(f.code for f in packages["ops"].findings)
    assert codes == ["deprecated-shim", "load-failure"]
    [failure] = [f for f in packages["ops"].findings if f.code == "load-failure"]
    assert failure.evidence["libraries"] == ["ops/libcuda_build.so", "ops/libfuture.so"]
    assert failure.libraries == ("ops/libcuda_build.so", "ops/libfuture.so")


def test_newer_shims_on_an_older_installation(tmp_path: Path, site: Site) -> None:
    old = write_torch(tmp_path / "old", "2.11.0")
    report = inspect_package(site.site / "ops", torch=old, jobs=1)
    future = by_name(report)["libfuture.so"]
    assert future is not None
    assert future.newer_shims == (NEW_SHIM,)
    [finding] = [f for f in report.findings if f.code == "needs-newer-torch"]
    assert finding.evidence["libraries"] == ["ops/libfuture.so"]
    assert finding.evidence["shims"] == [NEW_SHIM]
    assert "need a newer torch than torch 2.11.0" in finding.message


def test_against_a_release_of_the_table(site: Site) -> None:
    report = inspect_package(site.site / "ops", torch_version="2.11", jobs=1)
    assert report.torch_reference is not None and report.torch_reference.version == "2.11.0"
    loads = by_name(report)
    assert loads["libgood.so"].status is LoadStatus.LOADS
    future = loads["libfuture.so"]
    assert future is not None and future.fails and future.newer_shims == (NEW_SHIM,)
    assert future.message == (f"will not load with torch 2.11: needs torch>=2.12.0 ({NEW_SHIM})")
    # Unstable libraries are resolved against the exports of the release's Linux x86_64 build:
    # torchCheckFail is there, at::Tensor::dim() (inline in the headers) is not.
    legacy = inspect_package(site.site / "legacy", torch_version="2.13.0", jobs=1)
    loads = by_name(legacy)
    assert loads["liblegacy.so"].status is LoadStatus.LOADS
    assert loads["liblegacy.so"].build == "torch 2.13.0+cu130 (linux_x86_64)"
    toonew = loads["libtoonew.so"]
    assert toonew.fails and toonew.undefined_symbols == ("_ZN2at6Tensor3dimEv",)
    assert (
        toonew.message == "will not load with torch 2.13.0: undefined symbol: _ZN2at6Tensor3dimEv"
    )
    # The load failure, and the unstable libraries' rows as findings (what the torch gate fails).
    assert [f.code for f in legacy.findings] == ["load-failure", "torch-unstable", "torch-unstable"]


def test_optional_run_time_lookups_set_no_floor(site: Site) -> None:
    report = inspect_extension(site.site / "ops" / "liblookup.so")
    assert report.torch.optional_shims == (OPTIONAL_SHIM,)
    assert report.torch.stable_shims == (OLD_SHIM,)
    assert report.torch.min_torch_version == "2.9.0"
    # Without dlsym the same string would be just a string.
    plain = inspect_extension(site.site / "ops" / "libgood.so")
    assert plain.torch.optional_shims == ()


def test_deprecated_shims_are_a_warning(site: Site) -> None:
    report = inspect_package(site.site / "ops", jobs=1)
    [finding] = [f for f in report.findings if f.code == "deprecated-shim"]
    assert finding.severity == "warning"
    assert finding.evidence["shims"] == [DEPRECATED_SHIM]
    assert finding.evidence["libraries"] == ["ops/libdeprecated.so"]


def test_bad_targets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(LoadTargetError, match="no torch package"):
        load_target(torch=tmp_path)
    with pytest.raises(LoadTargetError, match="not a torch version"):
        load_target(torch_version="two")
    assert main([str(tmp_path), "--torch", str(tmp_path)]) == 2
    assert "no torch package" in capsys.readouterr().err
    assert main([str(tmp_path), "--torch", str(tmp_path), "--torch-version", "2.12"]) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_cli_table_json_and_check(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--site-packages", str(site.site)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == f"Loads predicted against: torch 2.13.0+cpu ({site.torch})"
    header = next(line for line in out if line.lstrip().startswith("PACKAGE"))
    assert header.rstrip().endswith("LOADS")
    ops_row = next(line for line in out if line.lstrip().startswith("ops "))
    assert ops_row.rstrip().endswith("NO")
    legacy_row = next(line for line in out if line.lstrip().startswith("legacy "))
    assert legacy_row.rstrip().endswith("NO")
    assert "2 packages will not load with torch 2.13.0+cpu: legacy, ops" in out

    assert main(["--site-packages", str(site.site), "--check", "load"]) == 1
    err = capsys.readouterr().err
    assert "  ops: [load] load-failure (ops/" in err and "  legacy: [load] load-failure (" in err
    assert main(["--site-packages", str(site.site), "--check", "load", "--no-load-prediction"]) == 0
    capsys.readouterr()

    assert main([str(site.site / "ops"), "--torch", str(site.torch), "-v"]) == 0
    text = capsys.readouterr().out
    assert "  Loads:       NO, not with torch 2.13.0+cpu (2 of 5 libraries)" in text
    assert f"        will not load with torch 2.13.0+cpu: undefined symbol: {NEW_SHIM}" in text
    assert f"        optional at run time (dlsym): {OPTIONAL_SHIM}" in text

    assert main([str(site.site / "ops"), "--torch", str(site.torch), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    jsonschema.validate(document, load_schema())
    assert document["torch_reference"]["origin"] == "--torch"
    assert document["load_status"] == "fails"
    loads = {Path(b["path"]).name: b["load"] for b in document["bundled_libs"]}
    assert loads["libfuture.so"]["undefined_symbols"] == [NEW_SHIM]
    assert loads["libgood.so"]["status"] == "loads"


def test_a_torch_wheel_as_the_installation(site: Site, tmp_path: Path) -> None:
    """``--torch`` may name a wheel: its libraries are read in place."""
    files = {f"torch/lib/{p.name}": p.read_bytes() for p in sorted((site.torch / "lib").iterdir())}
    files["torch/version.py"] = b"__version__ = '2.13.0'\n"
    files["torch/__init__.py"] = b"raise SystemExit('never imported')\n"
    wheel = write_wheel(tmp_path, "torch", "2.13.0", ["cp311-cp311-manylinux_2_28_x86_64"], files)
    install = load_torch_install(wheel)
    assert (install.version, install.libraries) == ("2.13.0", ("libc10.so", "libtorch_cpu.so"))
    assert OLD_SHIM in install.exports and NEW_SHIM not in install.exports
    report = inspect_package(site.site / "ops", torch=wheel, jobs=1)
    loads = by_name(report)
    assert loads["libgood.so"].status is LoadStatus.LOADS
    assert loads["libfuture.so"].undefined_symbols == (NEW_SHIM,)
    broken = tmp_path / "broken.whl"
    broken.write_bytes(b"not a zip")
    with pytest.raises(LoadTargetError, match="not a readable zip"):
        load_target(torch=broken)
