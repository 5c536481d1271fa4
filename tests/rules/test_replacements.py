"""The shipped replacements table: its invariants, and what it answers for real entities."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from helpers.small_table import SMALL, shim_entry
from torch_abi_audit.rules.replacements import (
    ReplacementTableError,
    load_replacements,
    parse_replacements,
)
from torch_abi_audit.rules.torch_table import load_table, parse_table

DATA = Path(__file__).resolve().parents[2] / "src" / "torch_abi_audit" / "data"
RAW: dict[str, Any] = json.loads((DATA / "torch_replacements.json").read_text("utf-8"))
TABLE = load_replacements()
SHIMS = load_table()
RELEASES = {r["version"] for r in RAW["sources"]["releases"]}


def test_every_replacement_says_where_pytorch_says_so() -> None:
    origins = {f"torch {r}" for r in RELEASES} | {
        f"pytorch@{RAW['sources']['docs']['commit'][:12]}"
    }
    for name, entry in RAW["entities"].items():
        if entry["replacement"] is not None:
            source = entry["source"]
            assert source["origin"] in origins, name
            assert source["file"].startswith(("torch/include/", "docs/source/notes/")), name
            assert source["line"] >= 1
        assert entry["since"] is None or entry["since"] in RELEASES, name
        # A replacement that is not a std:: type is dated and declared somewhere.
        if entry["replacement"] and not entry["replacement"].startswith("std::"):
            assert entry["since"] and entry["declared_in"], name
    for name, entry in RAW["operators"].items():
        assert entry["function"].startswith("torch::stable::"), name
        assert entry["since"] in RELEASES
        assert name in RAW["aten_operators"].values()


def test_entities_are_libtorch_names_never_the_stable_surface() -> None:
    for name in RAW["entities"]:
        assert name.split("::")[0] in {"at", "c10", "torch", "caffe2"}, name
        assert not name.startswith(("torch::stable", "torch::headeronly")), name
        assert not SHIMS.is_header_only(tuple(name.split("::"))), name


# (entity scope as the rules read it from a mangled name, shown entity, replacement, since)
CASES = [
    (
        ("c10", "detail", "torchCheckFail"),
        "c10::detail::torchCheckFail",
        "STD_TORCH_CHECK",
        "2.9.0",
    ),
    (("at", "Tensor"), "at::Tensor", "torch::stable::Tensor", "2.9.0"),
    (
        ("at", "TensorBase", "sizes"),
        "at::TensorBase::sizes",
        "torch::stable::Tensor::sizes",
        "2.10.0",
    ),
    (
        ("at", "TensorBase", "mutable_data_ptr"),
        "at::TensorBase::mutable_data_ptr",
        "torch::stable::Tensor::mutable_data_ptr",
        "2.10.0",
    ),
    (("torch", "Library", "_def"), "torch::Library::_def", "STABLE_TORCH_LIBRARY", "2.9.0"),
    (("c10", "Device"), "c10::Device", "torch::stable::Device", "2.10.0"),
    (
        ("c10", "DeviceGuard"),
        "c10::DeviceGuard",
        "torch::stable::accelerator::DeviceGuard",
        "2.9.0",
    ),
    (("at", "parallel_for"), "at::parallel_for", "torch::stable::parallel_for", "2.10.0"),
    (("c10", "Error", "what"), "c10::Error::what", "std::runtime_error", None),
    # ATen operators: a torch::stable function, else the dispatcher on the operator.
    (("at", "_ops", "select_int", "call"), "aten::select.int", "torch::stable::select", "2.10.0"),
    (("at", "_ops", "narrow", "call"), "aten::narrow", "torch::stable::narrow", "2.9.0"),
    (
        ("at", "_ops", "add_Tensor", "call"),
        "aten::add.Tensor",
        'torch_call_dispatcher("aten::add", "Tensor")',
        "2.10.0",
    ),
    # A Tensor method that is an operator: the notes' rule for native functions.
    (("at", "Tensor", "item"), "at::Tensor::item", "torch_call_dispatcher", "2.10.0"),
    (
        ("at", "Tensor", "contiguous"),
        "at::Tensor::contiguous",
        "torch::stable::contiguous",
        "2.10.0",
    ),
]


@pytest.mark.parametrize(("scope", "entity", "replacement", "since"), CASES)
def test_lookup(scope: tuple[str, ...], entity: str, replacement: str, since: str | None) -> None:
    advice = TABLE.lookup(scope, SHIMS)
    assert (advice.entity, advice.replacement, advice.since) == (entity, replacement, since)
    assert advice.source is not None
    assert advice.has_replacement


def test_documented_and_undocumented_absence() -> None:
    documented = TABLE.lookup(("c10", "SymInt", "guard_int"), SHIMS)
    assert documented.replacement is None and documented.documented
    assert documented.source is not None and "libtorch_stable_abi.md" in documented.source.file
    silent = TABLE.lookup(("c10", "impl", "cow", "materialize_cow_storage"), SHIMS)
    assert silent.replacement is None and not silent.documented and silent.source is None
    assert TABLE.lookup((), SHIMS).replacement is None


def test_macro_expansions_name_the_macro() -> None:
    advice = TABLE.lookup(("c10", "detail", "torchCheckFail"), SHIMS)
    assert advice.via[0] == "TORCH_CHECK"
    warn = TABLE.lookup(("c10", "warn"), SHIMS)
    assert "TORCH_WARN" in warn.via and warn.replacement is None


def test_aten_c_shim_is_offered_when_there_is_no_stable_function() -> None:
    # Every aoti_torch_aten_* shim of the shipped tables has a torch::stable function, which
    # wins; an operator with a C shim and no function (here: a hand-built shim table) gets it.
    with_function = TABLE.lookup(("at", "_ops", "new_empty", "call"), SHIMS)
    assert with_function.replacement == "torch::stable::new_empty"
    raw = copy.deepcopy(SMALL)
    raw["shims"]["aoti_torch_aten_add_Tensor"] = shim_entry("2.12.0")
    shims = parse_table(raw)
    advice = TABLE.lookup(("at", "_ops", "add_Tensor", "call"), shims)
    assert (advice.replacement, advice.since) == ("aoti_torch_aten_add_Tensor", "2.12.0")
    assert advice.source is not None
    assert advice.source.line == RAW["rules"]["aten-c-shim"]["source"]["line"]
    method = TABLE.lookup(("at", "Tensor", "add"), parse_table(raw))
    assert (method.replacement or "").startswith("torch_call_dispatcher")  # no aten_add shim
    # Without a shim table, the operator goes to the dispatcher.
    assert TABLE.lookup(("at", "_ops", "add_Tensor", "call")).replacement == (
        'torch_call_dispatcher("aten::add", "Tensor")'
    )


def test_since_versions_parse() -> None:
    for scope, *_ in CASES:
        advice = TABLE.lookup(scope, SHIMS)
        version = advice.since_version()
        assert version is None or version >= Version("2.9.0")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda raw: raw.update(format=2), "unsupported"),
        (lambda raw: raw.pop("entities"), "malformed"),
        (lambda raw: raw["entities"]["at::Tensor"].pop("via"), "missing via"),
        (lambda raw: raw["entities"]["at::Tensor"].update(source=None), "without a source"),
        (lambda raw: raw["entities"]["at::Tensor"].update(since="two"), "invalid version"),
        (lambda raw: raw["operators"]["select.int"].pop("source"), "operator select.int"),
    ],
)
def test_malformed_tables_are_refused(mutate: Any, message: str) -> None:
    raw = copy.deepcopy(RAW)
    mutate(raw)
    with pytest.raises(ReplacementTableError, match=message):
        parse_replacements(raw)
