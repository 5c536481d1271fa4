"""scripts/generate_stable_abi_data.py: header parsing, dating by release, and real releases."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from helpers.real_wheels import installed_torch
from helpers.scripts import load_script
from torch_abi_audit.rules.torch_table import load_table, parse_table

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "src" / "torch_abi_audit" / "data" / "torch_stable_abi.json"


GEN = load_script("generate_stable_abi_data")

HEADER = """
#pragma once
// AOTI_TORCH_EXPORT AOTITorchError commented_out(int);
#ifdef __cplusplus
extern "C" {
#endif
AOTI_TORCH_EXPORT AOTITorchError old_shim(AtenTensorHandle self, int64_t* ret);
AOTI_TORCH_EXPORT AOTITorchError
split_over_lines(
    AtenTensorHandle self);
/* AOTI_TORCH_EXPORT int block_commented(void); */
#if TORCH_FEATURE_VERSION >= TORCH_VERSION_2_10_0
AOTI_TORCH_EXPORT int32_t new_in_2_10();
#ifdef USE_CUDA
AOTI_TORCH_EXPORT AOTITorchError cuda_in_2_10(void* stream);
#endif // USE_CUDA
#if TORCH_FEATURE_VERSION >= TORCH_VERSION_2_12_0
AOTI_TORCH_EXPORT int32_t nested_2_12();
#endif
#else
AOTI_TORCH_EXPORT int32_t older_variant();
#endif
[[deprecated(
    "old_way is deprecated "
    "use new_way")]]
AOTI_TORCH_EXPORT AOTITorchError old_way(int x);

// WARNING: This will be deprecated.
// Use new_in_2_10 instead.
AOTI_TORCH_EXPORT AOTITorchError soon_old(int x);

// Use StableLibrary, which frees its handle.

AOTI_TORCH_EXPORT AOTITorchError after_a_blank_line(int x);
#ifdef __cplusplus
}
#endif
"""


def test_parse_shim_header_guards_devices_and_deprecation() -> None:
    found = {d.name: d for d in GEN.parse_shim_header(HEADER, "x/shim.h", "cpu")}
    assert set(found) == {
        "old_shim",
        "split_over_lines",
        "new_in_2_10",
        "cuda_in_2_10",
        "nested_2_12",
        "older_variant",
        "old_way",
        "soon_old",
        "after_a_blank_line",
    }
    assert found["old_shim"].guard is None
    assert found["split_over_lines"].guard is None
    assert found["new_in_2_10"].guard == "2.10.0"
    assert found["cuda_in_2_10"].guard == "2.10.0"
    assert found["cuda_in_2_10"].device == "cuda"
    assert found["new_in_2_10"].device == "cpu"
    assert found["nested_2_12"].guard == "2.12.0"
    assert found["older_variant"].guard is None  # the #else branch of a version guard
    assert found["old_way"].deprecated
    assert found["old_way"].deprecation_message == "old_way is deprecated use new_way"
    assert not found["old_shim"].deprecated


def test_parse_shim_header_replacements() -> None:
    """The replacement comes from the deprecation message or the comment right above."""
    found = {d.name: d for d in GEN.parse_shim_header(HEADER, "x/shim.h", "cpu")}
    assert found["old_way"].replacement == "new_way"
    assert found["soon_old"].replacement == "new_in_2_10"
    assert not found["soon_old"].deprecated  # a comment is not [[deprecated]]
    assert found["after_a_blank_line"].replacement is None  # the comment is not right above
    assert found["old_shim"].replacement is None


def test_header_only_names() -> None:
    text = """
    namespace torch::headeronly {
    using c10::Half;
    using ::c10::BFloat16;
    using c10::detail::fp16_ieee_from_fp32_value;
    using c10::operator+;
    // using c10::IValue;
    }
    """
    assert GEN.parse_header_only_names([text]) == {
        "c10::Half",
        "c10::BFloat16",
        "c10::detail::fp16_ieee_from_fp32_value",
    }


# -- dating by release -------------------------------------------------------------------------


def _declared(name: str, guard: str | None = None, **extra: Any) -> Any:
    fields: dict[str, Any] = {
        "header": "torch/csrc/stable/c/shim.h",
        "device": "cpu",
        "guard": guard,
        "deprecated": False,
        "deprecation_message": None,
    }
    fields.update(extra)
    return GEN.ShimDeclaration(name=name, **fields)


def _release(version: str, declared: list[Any], exports: dict[str, list[str]] | None = None) -> Any:
    return GEN.ReleaseData(
        version=version,
        source=f"torch-{version}-cp311-cp311-macosx_11_0_arm64.whl",
        sha256="0" * 64,
        declarations={d.name: d for d in declared},
        c_exports=exports or {},
        header_only={"c10::Half"} if version != "2.11.0" else {"c10::Half", "c10::BFloat16"},
    )


def _three_releases() -> list[Any]:
    cpu = ["libtorch_cpu"]
    return [
        _release(
            "2.9.0",
            [_declared("base"), _declared("dropped"), _declared("comes_back")],
            {"base": cpu, "dropped": cpu, "THPOld": ["libtorch_python"]},
        ),
        _release(
            "2.10.0",
            [
                _declared("base"),
                _declared("dropped"),
                _declared("guarded", "2.10.0"),
                _declared("late_guard", "2.11.0"),
                _declared("early_guard", "2.9.0"),
            ],
            {"base": cpu, "aoti_torch_undeclared": cpu, "THPVariableClass": ["libtorch_python"]},
        ),
        _release(
            "2.11.0",
            [
                _declared("base"),
                _declared("guarded", "2.10.0"),
                _declared("late_guard", "2.11.0"),
                _declared("early_guard", "2.9.0"),
                _declared("unguarded_new"),
                _declared("comes_back"),
                _declared(
                    "aoti_torch_xpu_thing", header="c_shim_xpu.h", device="xpu", deprecated=True
                ),
            ],
            {"base": cpu, "THPVariableClass": ["libtorch_python"]},
        ),
    ]


def test_build_table_dates_shims_by_the_releases() -> None:
    releases = _three_releases()
    table = GEN.build_table(list(reversed(releases)), generated_on="2026-01-01")
    shims = table["shims"]
    assert [r["version"] for r in table["releases"]] == ["2.9.0", "2.10.0", "2.11.0"]
    assert shims["base"]["since"] == "2.9.0" and shims["base"]["removed"] is None
    assert shims["dropped"]["since"] == "2.9.0"
    assert shims["dropped"]["removed"] == "2.11.0"
    assert shims["guarded"]["since"] == "2.10.0"
    assert shims["late_guard"]["since"] == "2.10.0"
    assert shims["early_guard"]["since"] == "2.10.0"
    assert shims["unguarded_new"]["since"] == "2.11.0"
    assert shims["unguarded_new"]["guard"] is None
    # An undeclared aoti_torch_* export of libtorch_cpu is a shim, dated by the export.
    undeclared = shims["aoti_torch_undeclared"]
    assert (undeclared["since"], undeclared["removed"]) == ("2.10.0", "2.11.0")
    assert undeclared["header"] is None and undeclared["exported_by"] == ["libtorch_cpu"]
    assert shims["aoti_torch_xpu_thing"]["device"] == "xpu"
    assert shims["aoti_torch_xpu_thing"]["deprecated_since"] == "2.11.0"
    assert table["gaps"] == {"comes_back": ["2.10.0"]}
    kinds = {d["symbol"]: d["kind"] for d in table["disagreements"]}
    assert kinds == {
        "unguarded_new": "unguarded but new",
        "aoti_torch_xpu_thing": "unguarded but new",
        "aoti_torch_undeclared": "unguarded but new",
        "late_guard": "guard newer than the first release with it",
        "early_guard": "guard older than the first release with it",
    }
    early = next(d for d in table["disagreements"] if d["symbol"] == "early_guard")
    assert (
        "torch-2.9.0-" in early["evidence"] and "neither declares nor exports" in early["evidence"]
    )
    counts = {r["version"]: (r["new"], r["removed"], r["present"]) for r in table["releases"]}
    assert counts == {"2.9.0": (3, 0, 3), "2.10.0": (4, 0, 6), "2.11.0": (2, 2, 7)}
    # Internal C names: the newest release's, and every release's.
    assert table["internal_c_symbols"] == {"THPVariableClass": "libtorch_python"}
    assert table["internal_c_symbols_all_releases"] == {
        "THPOld": "libtorch_python",
        "THPVariableClass": "libtorch_python",
    }
    assert table["header_only"] == ["c10::BFloat16", "c10::Half"]


def test_built_table_renders_and_loads() -> None:
    table = GEN.build_table(_three_releases(), generated_on="2026-01-01")
    table.pop("gaps")
    text = GEN.render(table)
    assert json.loads(text) == table
    assert text.count("\n") > len(table["shims"])  # one line per shim
    loaded = parse_table(json.loads(text))
    assert loaded.available("dropped", Version("2.10.0"))
    assert loaded.missing_in(["dropped", "unguarded_new"], Version("2.11.0")) == (
        (),
        ("dropped",),
    )
    assert loaded.missing_in(["dropped", "unguarded_new"], Version("2.10.0")) == (
        ("unguarded_new",),
        (),
    )


def test_single_release_dates_by_the_guards() -> None:
    """With one release there is nothing to compare: the guard (or the baseline) dates."""
    table = GEN.build_table([_three_releases()[1]], generated_on="2026-01-01")
    since = {name: entry["since"] for name, entry in table["shims"].items()}
    assert since == {
        "base": "2.9.0",
        "dropped": "2.9.0",
        "guarded": "2.10.0",
        "late_guard": "2.10.0",  # a guard newer than the release itself is capped at it
        "early_guard": "2.9.0",
        "aoti_torch_undeclared": "2.9.0",
    }
    assert table["disagreements"] == []
    assert all(entry["removed"] is None for entry in table["shims"].values())


def test_select_releases() -> None:
    listed = ["2.15.0", "2.13.0+cpu", "2.13.0", "2.12.1", "2.10.0rc1", "2.9.0", "2.8.0", "x"]
    assert GEN.select_releases(listed) == ["2.9.0", "2.12.1", "2.13.0", "2.15.0"]
    assert GEN.select_releases(listed, "2.13.0") == ["2.13.0", "2.15.0"]


# -- real releases -----------------------------------------------------------------------------


@pytest.mark.torch
def test_installed_torch_is_covered_by_the_shipped_table() -> None:
    """Every shim the installed torch declares or its libtorch_cpu exports (a Linux build; the
    table comes from macOS wheels) is in the table and available in that release."""
    with GEN.open_release(installed_torch(headers=True)) as files:
        release = GEN.read_release(files)
    table = load_table()
    version = Version(release.version)
    if version > table.newest:
        pytest.skip(f"installed torch {version} is newer than the table")
    exported = {
        name
        for name in GEN.shim_names([release])
        if "libtorch_cpu" in release.c_exports.get(name, [])
    }
    declared = set(release.declarations)
    assert len(exported) >= 381  # pytorch-stable-abi-facts: 2.13.0 CPU exports 381 shims
    assert exported - declared == set()
    missing = sorted(n for n in declared | exported if n not in table.shims)
    unavailable = sorted(n for n in declared | exported if not table.available(n, version))
    assert missing == []
    assert unavailable == []
    internal = {n for n in release.c_exports if n not in declared | exported}
    assert sorted(internal - set(table.internal_c_symbols)) == []


@pytest.mark.torch
def test_single_release_mode_on_the_installed_torch(tmp_path: Path) -> None:
    torch_dir = installed_torch(headers=True)
    out = tmp_path / "table.json"
    assert GEN.main(["--torch", str(torch_dir), "--output", str(out)]) == 0
    raw = json.loads(out.read_text("utf-8"))
    table = parse_table(raw)
    assert raw["format"] == 2
    assert raw["releases"][0]["directory"] == str(torch_dir.resolve())
    assert raw["disagreements"] == []
    version = table.newest
    assert table.releases == (str(version),)
    shipped = load_table()
    if version <= shipped.newest:
        # The same shims as the shipped table has for that release (read from macOS wheels)...
        assert set(table.shims) == {n for n in shipped.shims if shipped.available(n, version)}
    # ...dated by their guards alone.
    for shim in table.shims.values():
        assert shim.since == min(shim.guard or table.baseline, version), shim
        assert shim.removed is None
    assert GEN.main(["--torch", str(torch_dir), "--output", str(out), "--check"]) == 0


@pytest.mark.network
def test_torch_2_9_1_macos_wheel() -> None:
    """The headers and exports of a real release, read in place from its wheel."""
    wheel = GEN.fetch_release_wheel("2.9.1")
    with GEN.open_release(wheel) as files:
        release = GEN.read_release(files)
    assert release.version == "2.9.1"
    assert release.source == wheel.name
    shipped = {r["version"]: r for r in json.loads(DATA.read_text("utf-8"))["releases"]}
    assert release.sha256 == shipped["2.9.1"]["sha256"]
    assert "torch_call_dispatcher" not in release.declarations
    assert "torch_call_dispatcher" not in release.c_exports
    assert "torch_library_impl" not in release.declarations
    get_dim = release.declarations["aoti_torch_get_dim"]
    assert get_dim.guard is None and get_dim.header.endswith("aoti_torch/c/shim.h")
    assert release.c_exports["aoti_torch_get_dim"] == ["libtorch_cpu"]
    assert release.declarations["aoti_torch__embedding_bag"].deprecated
    # CUDA shims are declared but not exported by a macOS build; MPS ones are exported.
    cuda = [n for n, d in release.declarations.items() if d.device == "cuda"]
    assert cuda and not any(n in release.c_exports for n in cuda)
    mps = [n for n, d in release.declarations.items() if d.device == "mps"]
    assert mps and all(release.c_exports.get(n) == ["libtorch_cpu"] for n in mps)
    assert "THPVariableClass" in release.c_exports
    assert "c10::Half" in release.header_only


@pytest.mark.network
@pytest.mark.skipif(
    not os.environ.get("TORCH_ABI_AUDIT_FULL_REGENERATION"),
    reason=(
        "downloads ~8.2 GB of torch wheels (macOS arm64, Linux x86_64 CUDA, win_amd64 of every "
        "release): set TORCH_ABI_AUDIT_FULL_REGENERATION=1"
    ),
)
def test_shipped_table_matches_a_regeneration(tmp_path: Path) -> None:
    """Re-running the generator over the releases the table lists changes nothing: neither the
    stable-ABI table nor the release-exports index and symbol files."""
    releases = ",".join(load_table().releases)
    assert GEN.main(["--releases", releases, "--check"]) == 0


# -- the shipped release-exports data ----------------------------------------------------------


def test_shipped_release_exports_match_their_index_and_the_table() -> None:
    """Invariants of the generated release exports: one build per release and platform, the
    same releases as the stable-ABI table, provenance (wheel, SHA-256, counts) for each build,
    symbol files that hold what the index counts, and the 5 MB budget."""
    import lzma

    from torch_abi_audit.rules.release_exports import (
        INDEX_FILE,
        PLATFORMS,
        load_release_exports,
        parse_symbols,
        recorded_export,
    )

    data_dir = DATA.parent
    index = json.loads((data_dir / INDEX_FILE).read_text("utf-8"))
    assert index["generated_by"] == "scripts/generate_stable_abi_data.py"
    exports = load_release_exports()
    table_releases = [str(r) for r in load_table().releases]
    total = (data_dir / INDEX_FILE).stat().st_size
    for platform in PLATFORMS:
        builds = [b for b in exports.builds if b.platform == platform]
        assert [str(b.release) for b in builds] == table_releases
        path = data_dir / exports.symbol_files[platform]
        total += path.stat().st_size
        columns = parse_symbols(json.loads(lzma.decompress(path.read_bytes())), platform)
        for build in builds:
            assert len(build.sha256) == 64 and build.wheel.startswith(f"torch-{build.release}")
            names = columns[build.column]
            assert len(names) == build.symbols > 30_000
            assert all(recorded_export(n, python_library=True) for n in names)
            assert "aoti_torch_get_dim" in names  # every build exports the oldest shims
            if platform == "linux_x86_64":
                assert build.variant is not None and build.variant.startswith(
                    f"cu{build.cuda_major}"
                )
                assert f"libcudart.so.{build.cuda_major}" in build.cuda_runtime
                assert "libtorch_cuda.so" in build.libraries
            else:
                assert build.cuda_major is None and build.cuda_runtime == ()
    assert total <= 5 * 1024 * 1024


def test_exports_data_round_trips(tmp_path: Path) -> None:
    """The generator's index and symbol files, written and read back by the product."""
    import release_exports  # scripts/ is on sys.path: load_script put it there
    from torch_abi_audit.rules.release_exports import parse_index, parse_symbols

    def build(release: str, names: list[str]) -> Any:
        return release_exports.BuildExports(
            platform="linux_x86_64",
            release=release,
            version=f"{release}+cu130",
            variant="cu130",
            cuda_major=13,
            cuda_version="13.0",
            libraries=["libc10.so", "libtorch_cpu.so"],
            cuda_runtime=["libcudart.so.13"],
            wheel=f"torch-{release}-cp311-cp311-manylinux_2_28_x86_64.whl",
            sha256="0" * 64,
            exports={n: ["libc10.so"] for n in names},
        )

    builds = [build("2.12.0", ["_ZN3c103fooEv", "THPa"]), build("2.13.0", ["_ZN3c103fooEv"])]
    index, documents = release_exports.build_exports_data(builds, "2026-01-01", "notes")
    release_exports.write_exports_data(index, documents, tmp_path)
    assert release_exports.exports_data_differs(index, documents, tmp_path) == []
    parsed = parse_index(json.loads((tmp_path / "torch_release_exports.json").read_text()))
    assert [b.column for b in parsed.builds] == [0, 1]
    import lzma

    raw = (tmp_path / "torch_release_exports_linux_x86_64.json.xz").read_bytes()
    columns = parse_symbols(json.loads(lzma.decompress(raw)), "linux_x86_64")
    assert columns == {0: {"_ZN3c103fooEv", "THPa"}, 1: {"_ZN3c103fooEv"}}
    documents["linux_x86_64"]["groups"] = {}
    assert release_exports.exports_data_differs(index, documents, tmp_path) == [
        "torch_release_exports_linux_x86_64.json.xz"
    ]


def test_cuda_major_from_requirements() -> None:
    import release_exports

    linux = [
        'nvidia-cuda-runtime-cu12==12.8.90; platform_system == "Linux" and '
        'platform_machine == "x86_64"',
        "filelock",
    ]
    assert release_exports.cuda_major_from_requirements(linux, "linux_x86_64") == 12
    assert release_exports.cuda_major_from_requirements(linux, "win_amd64") is None
    toolkit = ['cuda-toolkit[cudart]==13.0.2; platform_system == "Linux"']
    assert release_exports.cuda_major_from_requirements(toolkit, "linux_x86_64") == 13
    with pytest.raises(SystemExit, match="several CUDA majors"):
        release_exports.cuda_major_from_requirements(linux + toolkit, "linux_x86_64")
