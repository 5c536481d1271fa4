"""The shipped stable-ABI table: loads, validates, and keeps its invariants."""

from __future__ import annotations

import json
from importlib.resources import files

import pytest
from packaging.version import Version

from torch_abi_audit.rules.torch_table import TableError, load_table, parse_table

RAW = json.loads(
    files("torch_abi_audit").joinpath("data", "torch_stable_abi.json").read_text("utf-8")
)


def test_table_loads_and_records_provenance() -> None:
    table = load_table()
    assert RAW["generated_by"] == "scripts/generate_stable_abi_data.py"
    assert table.releases, "the table must say which releases it was generated from"
    assert table.baseline == Version("2.9.0")
    assert len(table.shims) > 700


def test_versions_are_within_the_releases_read() -> None:
    table = load_table()
    newest = max(Version(r) for r in table.releases)
    for shim in table.shims.values():
        assert table.baseline <= shim.since <= newest, shim


def test_guards_agree_with_since() -> None:
    for name, entry in RAW["shims"].items():
        if entry["guard"] is not None:
            assert entry["since"] == entry["guard"], name
        else:
            assert entry["since"] == RAW["baseline_version"], name


def test_cpu_shims_are_exported_by_libtorch_cpu() -> None:
    """Every CPU-tier shim of the release read is really exported (the 2.13.0 CPU build)."""
    cpu = {n: e for n, e in RAW["shims"].items() if e["device"] == "cpu"}
    missing = [n for n, e in cpu.items() if "libtorch_cpu" not in e["exported_by"]]
    assert missing == []
    exported = [n for n, e in RAW["shims"].items() if "libtorch_cpu" in e["exported_by"]]
    # pytorch-stable-abi-facts: 381 shim functions exported by 2.13.0 (331 aoti_*, 50 torch_*).
    assert len([n for n in exported if n.startswith("aoti_")]) >= 331
    assert len([n for n in exported if n.startswith("torch_")]) >= 50


def test_known_shims_and_versions() -> None:
    table = load_table()
    assert table.shims["aoti_torch_get_dim"].since == Version("2.9.0")
    assert table.shims["torch_library_impl"].since == Version("2.10.0")
    assert table.shims["torch_dtype_float8_e8m0fnu"].since == Version("2.11.0")
    assert table.shims["aoti_torch__embedding_bag"].deprecated
    assert {s.device for s in table.shims.values()} == {"cpu", "cuda", "mps", "xpu"}


def test_header_only_and_internal_names() -> None:
    table = load_table()
    assert ("c10", "Half") in table.header_only
    assert ("c10", "BFloat16") in table.header_only
    assert ("c10", "IValue") not in table.header_only
    assert all(name[0] == "c10" for name in table.header_only)
    assert "THPVariableClass" in table.internal_c_symbols
    assert not set(table.internal_c_symbols) & set(table.shims)


def test_minimum_torch_picks_the_newest_shim() -> None:
    table = load_table()
    floor = table.minimum_torch(["aoti_torch_get_dim", "torch_library_impl", "not_a_shim"])
    assert floor is not None
    assert str(floor) == "2.10.0"
    assert floor.defined_by == ("torch_library_impl",)
    assert table.minimum_torch(["memcpy"]) is None


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {**RAW, "format": 99},
        {**RAW, "shims": {"x": {"since": "not a version", "device": "cpu", "deprecated": False}}},
        {**RAW, "shims": {"x": {"since": "2.9.0", "device": "tpu", "deprecated": False}}},
        {k: v for k, v in RAW.items() if k != "header_only"},
    ],
)
def test_malformed_tables_are_rejected(broken: object) -> None:
    with pytest.raises(TableError):
        parse_table(broken)
