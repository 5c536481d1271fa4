"""The shipped stable-ABI table: loads, validates, keeps its invariants, answers per release."""

from __future__ import annotations

import copy
import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from helpers.small_table import SMALL, shim_entry
from torch_abi_audit.rules.torch_table import (
    Shim,
    TableError,
    TorchAbiTable,
    load_table,
    parse_table,
)

RAW: dict[str, Any] = json.loads(
    files("torch_abi_audit").joinpath("data", "torch_stable_abi.json").read_text("utf-8")
)
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
V = Version


# -- the shipped file --------------------------------------------------------------------------


def test_table_loads_and_records_provenance() -> None:
    table = load_table()
    assert RAW["format"] == 2
    assert RAW["generated_by"] == "scripts/generate_stable_abi_data.py"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", RAW["generated_on"])
    assert table.baseline == V("2.9.0")
    assert len(table.shims) > 850
    for release in RAW["releases"]:
        assert release["wheel"].startswith(f"torch-{release['version']}-")
        assert "macosx" in release["wheel"] and release["wheel"].endswith("_arm64.whl")
        assert re.fullmatch(r"[0-9a-f]{64}", release["sha256"])
        assert 0 < release["exported"] <= release["present"]
        assert release["declared"] <= release["present"]


def test_releases_are_ascending_from_the_baseline() -> None:
    table = load_table()
    versions = [V(r) for r in table.releases]
    assert versions == sorted(set(versions))
    assert versions[0] == table.baseline == V("2.9.0")
    assert table.newest == versions[-1] >= V("2.15.0")
    # Every final release from 2.9.0 on, patch releases included.
    assert {"2.9.0", "2.9.1", "2.10.0", "2.11.0", "2.12.0", "2.12.1", "2.13.0"} <= set(
        table.releases
    )


def test_since_and_removed_are_releases_read() -> None:
    table = load_table()
    releases = {V(r) for r in table.releases}
    for shim in table.shims.values():
        assert shim.since in releases, shim
        if shim.removed is not None:
            assert shim.removed in releases, shim
            assert shim.since < shim.removed, shim


def test_release_counts_match_the_shims() -> None:
    """Each release's recorded counts are what ``available`` says of it: a removed shim is
    never counted as present in a release, the newest included."""
    table = load_table()
    for release in RAW["releases"]:
        version = V(release["version"])
        present = [n for n in table.shims if table.available(n, version)]
        assert len(present) == release["present"], version
        assert sum(s.since == version for s in table.shims.values()) == release["new"]
        assert sum(s.removed == version for s in table.shims.values()) == release["removed"]
    newest = RAW["releases"][-1]
    still_there = [s for s in table.shims.values() if s.removed is None]
    assert len(still_there) == newest["present"]


def test_no_gaps_between_since_and_removed() -> None:
    """A shim that left and came back would make ``available`` wrong: the file says so."""
    assert RAW.get("gaps", {}) == {}


def test_guards_never_postdate_since_unless_recorded() -> None:
    """A guard newer than the first release with the shim is a real PyTorch mistake
    (``aoti_torch_mps__scaled_dot_product_attention_math_for_mps_v2`` is in 2.12.0 under a
    2.13.0 guard): every such case is listed in ``disagreements``."""
    table = load_table()
    recorded = {d["symbol"]: d for d in RAW["disagreements"]}
    late_guards = {n for n, s in table.shims.items() if s.guard is not None and s.guard > s.since}
    assert late_guards == {
        n for n, d in recorded.items() if d["kind"] == "guard newer than the first release with it"
    }
    assert "aoti_torch_mps__scaled_dot_product_attention_math_for_mps_v2" in late_guards


def test_disagreements_are_exactly_the_guards_that_differ() -> None:
    table = load_table()
    recorded = {d["symbol"]: d for d in RAW["disagreements"]}
    differing = {
        name
        for name, shim in table.shims.items()
        if shim.since > table.baseline and (shim.guard or table.baseline) != shim.since
    }
    assert set(recorded) == differing
    for name, entry in recorded.items():
        shim = table.shims[name]
        assert entry["first_seen"] == str(shim.since)
        assert entry["guard"] == (str(shim.guard) if shim.guard else None)
        assert entry["evidence"].startswith(f"torch-{shim.since}-")


def test_known_shims_and_versions() -> None:
    table = load_table()
    assert table.shims["aoti_torch_get_dim"].since == V("2.9.0")
    assert table.shims["torch_call_dispatcher"].since == V("2.10.0")
    assert table.shims["torch_library_impl"].since == V("2.10.0")
    assert table.shims["torch_dtype_float8_e8m0fnu"].since == V("2.11.0")
    assert table.shims["torch_dtype_float8_e8m0fnu"].guard == V("2.11.0")
    assert {s.device for s in table.shims.values()} == {"cpu", "cuda", "mps", "xpu"}
    assert table.shims["torch_library_impl"].header == "torch/csrc/stable/c/shim.h"


def test_unguarded_2_14_shims_are_dated_2_14() -> None:
    """pytorch-stable-abi-facts: 83 ``aoti_torch_xpu_*`` functions and ``aoti_torch_mps_geqrf``
    are new in the 2.14 headers but unguarded; the releases, not the guards, date them."""
    table = load_table()
    xpu = [
        s
        for s in table.shims.values()
        if s.name.startswith("aoti_torch_xpu_") and s.since == V("2.14.0") and s.guard is None
    ]
    assert len(xpu) == 83
    geqrf = table.shims["aoti_torch_mps_geqrf"]
    assert (geqrf.since, geqrf.guard) == (V("2.14.0"), None)
    unguarded = {d["symbol"] for d in RAW["disagreements"] if d["kind"] == "unguarded but new"}
    assert {s.name for s in xpu} | {"aoti_torch_mps_geqrf"} <= unguarded


def test_deprecated_shims() -> None:
    """The ``[[deprecated]]`` declarations of ``shim_deprecated.h`` (all of its shims but the
    flash-attention ``_v2`` one, which carries no attribute)."""
    table = load_table()
    in_header = {
        n for n, s in table.shims.items() if s.header and s.header.endswith("/shim_deprecated.h")
    }
    assert len(in_header) == 15
    deprecated = {n for n, s in table.shims.items() if s.deprecated}
    assert deprecated == in_header - {"aoti_torch__scaled_dot_product_flash_attention_v2"}
    embedding = table.shims["aoti_torch__embedding_bag"]
    assert embedding.deprecation_message is not None
    assert "aoti_torch__embedding_bag is deprecated" in embedding.deprecation_message
    assert table.deprecated_in(["aoti_torch__embedding_bag", "aoti_torch_get_dim", "x"]) == (
        embedding,
    )
    # "// WARNING: This will be deprecated. Use aoti_torch_copy_ instead." above the declaration.
    copy_ = table.shims["aoti_torch_tensor_copy_"]
    assert copy_.replacement == "aoti_torch_copy_"
    assert not copy_.deprecated


def test_cpu_and_mps_shims_are_exported_by_libtorch_cpu() -> None:
    """The macOS arm64 builds export every CPU and MPS shim, except the MKL/MKLDNN-only ones
    of ``c/shim_cpu.h`` (inside ``#if AT_MKLDNN_ENABLED()``), which arm64 builds lack."""
    unexported = {
        n
        for n, e in RAW["shims"].items()
        if e["device"] in {"cpu", "mps"} and "libtorch_cpu" not in e["exported_by"]
    }
    assert {RAW["shims"][n]["header"] for n in unexported} == {
        "torch/csrc/inductor/aoti_torch/c/shim_cpu.h"
    }
    exported = [n for n, e in RAW["shims"].items() if "libtorch_cpu" in e["exported_by"]]
    assert len([n for n in exported if n.startswith("aoti_")]) >= 331
    assert len([n for n in exported if n.startswith("torch_")]) >= 50
    # CUDA and XPU shims are dated by their declarations alone.
    assert not [
        n for n, e in RAW["shims"].items() if e["device"] in {"cuda", "xpu"} and e["exported_by"]
    ]


def test_header_only_and_internal_names() -> None:
    table = load_table()
    assert ("c10", "Half") in table.header_only
    assert ("c10", "BFloat16") in table.header_only
    assert ("c10", "IValue") not in table.header_only
    assert all(name[0] == "c10" for name in table.header_only)
    assert "THPVariableClass" in table.internal_c_symbols
    assert not set(table.internal_c_symbols) & set(table.shims)
    # The table keeps the internal C names of every release, not only the newest's.
    assert set(RAW["internal_c_symbols"]) <= set(table.internal_c_symbols)
    assert table.internal_c_symbols == RAW["internal_c_symbols_all_releases"]


def test_minimum_torch_picks_the_newest_shim() -> None:
    table = load_table()
    floor = table.minimum_torch(["aoti_torch_get_dim", "torch_library_impl", "not_a_shim"])
    assert floor is not None
    assert str(floor) == "2.10.0"
    assert floor.defined_by == ("torch_library_impl",)
    assert table.minimum_torch(["memcpy"]) is None


def test_shipped_table_answers_per_release() -> None:
    table = load_table()
    assert table.available("torch_call_dispatcher", table.resolve_release("2.10"))
    assert not table.available("torch_call_dispatcher", table.resolve_release("2.9"))
    assert table.resolve_release("2.9") == V("2.9.1")
    assert table.resolve_release("2.12") == V("2.12.1")
    too_new, removed = table.missing_in(
        ["torch_dtype_float8_e8m0fnu", "aoti_torch_get_dim", "memcpy"], V("2.10.0")
    )
    assert (too_new, removed) == (("torch_dtype_float8_e8m0fnu",), ())


# -- a small hand-built table ------------------------------------------------------------------


@pytest.fixture
def small() -> TorchAbiTable:
    return parse_table(copy.deepcopy(SMALL))


def test_small_table_fields(small: TorchAbiTable) -> None:
    assert small.releases == ("2.9.0", "2.10.0", "2.12.0", "2.12.1", "2.13.0")
    assert small.newest == V("2.13.0")
    assert small.shims["gone"].removed == V("2.12.0")
    assert small.shims["old"].removed is None
    assert small.shims["new"].guard == V("2.12.0")
    assert small.shims["old"].guard is None
    assert small.shims["dep"].replacement == "old"
    assert small.internal_c_symbols == {
        "THPVariableClass": "libtorch_python",
        "THPGone": "libtorch_python",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.12", "2.12.1"),  # the newest known 2.12.x
        ("2.12.0", "2.12.0"),
        ("2.12.1", "2.12.1"),
        ("2.10", "2.10.0"),
        ("2.99", "2.99"),  # unknown future release: itself
        ("2.11", "2.11"),  # no known 2.11.x: itself
        ("3.0.0", "3.0.0"),
    ],
)
def test_resolve_release(small: TorchAbiTable, text: str, expected: str) -> None:
    assert small.resolve_release(text) == V(expected)


def test_resolve_release_rejects_garbage(small: TorchAbiTable) -> None:
    with pytest.raises(ValueError, match="Invalid version"):
        small.resolve_release("two point twelve")


@pytest.mark.parametrize(
    ("name", "release", "expected"),
    [
        ("old", "2.9.0", True),
        ("old", "2.99", True),
        ("gone", "2.10.0", True),
        ("gone", "2.12.0", False),  # removed in 2.12.0
        ("gone", "2.13.0", False),
        ("patch_gone", "2.12.0", True),
        ("patch_gone", "2.12.1", False),
        ("patch_gone", "2.9.0", False),  # not yet there
        ("new", "2.10.0", False),
        ("new", "2.12.0", True),
        ("patch_new", "2.12.0", False),
        ("patch_new", "2.12.1", True),
        ("newest", "2.12.1", False),
        ("not_a_shim", "2.13.0", False),
    ],
)
def test_available(small: TorchAbiTable, name: str, release: str, expected: bool) -> None:
    assert small.available(name, V(release)) is expected


def test_available_with_a_resolved_minor_release(small: TorchAbiTable) -> None:
    """ "2.12" means the newest 2.12.x: patch_new (2.12.1) is there, patch_gone is not."""
    release = small.resolve_release("2.12")
    assert small.available("patch_new", release)
    assert not small.available("patch_gone", release)


def test_missing_in(small: TorchAbiTable) -> None:
    everything = ["newest", "old", "gone", "patch_gone", "new", "patch_new", "dep", "memcpy"]
    assert small.missing_in(everything, V("2.9.0")) == (
        ("new", "newest", "patch_gone", "patch_new"),
        (),
    )
    assert small.missing_in(everything, V("2.12.0")) == (("newest", "patch_new"), ("gone",))
    assert small.missing_in(everything, V("2.13.0")) == ((), ("gone", "patch_gone"))
    assert small.missing_in(["old", "memcpy"], V("2.13.0")) == ((), ())
    assert small.missing_in([], V("2.13.0")) == ((), ())


def test_deprecated_in(small: TorchAbiTable) -> None:
    found = small.deprecated_in(["dep", "old", "memcpy", "dep"])
    assert found == (small.shims["dep"],)
    assert isinstance(found[0], Shim)
    assert found[0].deprecation_message == "dep is deprecated, use old"
    assert small.deprecated_in(["old"]) == ()


def test_minimum_torch_on_the_small_table(small: TorchAbiTable) -> None:
    floor = small.minimum_torch(["old", "patch_new", "gone"])
    assert floor is not None and floor.version == V("2.12.1")
    assert floor.defined_by == ("patch_new",)


def _broken(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(SMALL)
    for key, value in changes.items():
        if value is None:
            raw.pop(key)
        else:
            raw[key] = value
    return raw


def _with_shim(entry: dict[str, Any]) -> dict[str, Any]:
    return _broken(shims={"x": entry})


@pytest.mark.parametrize(
    "broken",
    [
        {},
        [],
        _broken(format=1),
        _broken(format=99),
        _broken(header_only=None),
        _broken(internal_c_symbols_all_releases=None),
        _broken(releases=None),
        _broken(releases=[]),
        _broken(releases=[{"version": "2.10.0"}, {"version": "2.9.0"}]),  # not ascending
        _broken(releases=[{"version": "2.9.0"}, {"version": "2.9.0"}]),  # duplicate
        _broken(releases=[{"version": "two"}]),
        _with_shim({**shim_entry("2.9.0"), "since": "not a version"}),
        _with_shim({**shim_entry("2.9.0"), "since": 2.9}),
        _with_shim({**shim_entry("2.9.0"), "device": "tpu"}),
        _with_shim({**shim_entry("2.9.0"), "deprecated": "yes"}),
        _with_shim({**shim_entry("2.9.0"), "guard": "soon"}),
        _with_shim(shim_entry("2.12.0", "2.12.0")),  # removed the release it appeared
        _with_shim(shim_entry("2.12.0", "2.10.0")),  # removed before it appeared
        _with_shim({k: v for k, v in shim_entry("2.9.0").items() if k != "removed"}),
        _with_shim({**shim_entry("2.9.0"), "replacement": 3}),
        _broken(shims={"x": "2.9.0"}),
        _broken(shims=["x"]),
    ],
)
def test_malformed_tables_are_rejected(broken: object) -> None:
    with pytest.raises(TableError):
        parse_table(broken)


# -- PyTorch's own record of when shims appeared -----------------------------------------------

# tests/fixtures/pytorch/shim_function_versions.txt is pytorch/pytorch's
# torch/csrc/stable/c/shim_function_versions.txt at this commit, verbatim. Its snapshot ends
# with the 2.13 entries.
SHIM_FUNCTION_VERSIONS_COMMIT = "018aa9b8e2f714970e7b04506104918ac42be211"
BEFORE_2_10 = "<2.10"
# Reviewed: (symbol) -> (theirs, ours). "<2.10" = not listed, which their file says means
# "available before 2.10.0"; ours None = not a function (typedefs the linter also tracks).
#  * the typedefs are not symbols;
#  * unguarded shims that are new in 2.10-2.13 (their linter reads the guards, which these lack):
#    the 2.9.x wheels do not declare or export them, the first-seen wheel does;
#  * the MPS shader-library shims of c/shim_mps.h: guarded 2.10.0, new in the 2.10.0 wheel, not
#    tracked by their linter; the torch_*generator* shims: guarded 2.13.0, new in 2.13.0, absent
#    from this snapshot;
#  * aoti_torch_mps__scaled_dot_product_attention_math_for_mps_v2: the 2.12.0 wheel already
#    declares it (c_shim_mps.h) and libtorch_cpu exports it; the 2.13 guard came later;
#  * aoti_torch_mps_nonzero_static: guarded 2.11.0, but the 2.11.0 wheel neither declares nor
#    exports it; 2.12.0 is the first that does.
EXPECTED_DISAGREEMENTS: dict[str, tuple[str, str | None]] = {
    "ParallelFunc": ("2.10.0", None),
    "StableListHandle": ("2.10.0", None),
    "StableListOpaque": ("2.10.0", None),
    "StringHandle": ("2.10.0", None),
    "StringOpaque": ("2.10.0", None),
    "aoti_torch_cuda_caching_allocator_raw_alloc": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_cuda_caching_allocator_raw_delete": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_delete_c10_value_object": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_int64_to_ivalue": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_mps__cdist_backward": (BEFORE_2_10, "2.13.0"),
    "aoti_torch_mps__embedding_bag": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_mps__embedding_bag_dense_backward": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_mps__embedding_bag_forward_only": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_mps__embedding_bag_per_sample_weights_backward": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_mps__scaled_dot_product_attention_math_for_mps_v2": ("2.13.0", "2.12.0"),
    "aoti_torch_mps_cholesky_inverse": (BEFORE_2_10, "2.11.0"),
    "aoti_torch_mps_create_shader_library": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_mps_delete_shader_library": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_mps_dispatch_array": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_mps_dispatch_array_with_group_size": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_mps_dispatch_single": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_mps_dispatch_single_with_group_size": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_mps_gcd": (BEFORE_2_10, "2.11.0"),
    "aoti_torch_mps_get_kernel_function": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_mps_grid_sampler_2d_backward": (BEFORE_2_10, "2.13.0"),
    "aoti_torch_mps_index_reduce": (BEFORE_2_10, "2.12.0"),
    "aoti_torch_mps_nonzero_static": ("2.11.0", "2.12.0"),
    "aoti_torch_mps_run_command_block": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_mps_shared_callback": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_mps_start_encoding": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_str_to_ivalue": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_strlist_to_ivalue": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_tensor_to_ivalue": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_xpu__scaled_dot_product_flash_attention": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_xpu__scaled_dot_product_flash_attention_backward": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_xpu__scaled_mm": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_xpu__scaled_mm_out": (BEFORE_2_10, "2.10.0"),
    "aoti_torch_xpu__weight_int8pack_mm": (BEFORE_2_10, "2.10.0"),
    "torch_delete_generator": (BEFORE_2_10, "2.13.0"),
    "torch_generator_get_device": (BEFORE_2_10, "2.13.0"),
    "torch_new_generator_handle": (BEFORE_2_10, "2.13.0"),
}


def _shim_function_versions() -> dict[str, str]:
    text = (FIXTURES / "pytorch" / "shim_function_versions.txt").read_text("utf-8")
    versions: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, constant = line.partition(":")
        match = re.fullmatch(r"TORCH_VERSION_(\d+)_(\d+)_(\d+)", constant.strip())
        assert match, line
        versions[name.strip()] = ".".join(match.groups())
    return versions


def test_since_versions_against_pytorch_shim_function_versions() -> None:
    """Compare the releases' verdict with PyTorch's linter-maintained list; every disagreement
    has been reviewed against the wheels (see ``EXPECTED_DISAGREEMENTS``)."""
    table = load_table()
    theirs = _shim_function_versions()
    assert len(theirs) == 108
    last_listed = max(V(v) for v in theirs.values())
    found: dict[str, tuple[str, str | None]] = {}
    for name, version in theirs.items():
        shim = table.shims.get(name)
        if shim is None or str(shim.since) != version:
            found[name] = (version, str(shim.since) if shim else None)
    for name, shim in table.shims.items():
        if name not in theirs and V("2.10.0") <= shim.since <= last_listed:
            found[name] = (BEFORE_2_10, str(shim.since))
    assert found == EXPECTED_DISAGREEMENTS
