"""Load prediction rules and their findings, on a small hand-built table (no binaries)."""

from __future__ import annotations

import copy

import pytest
from packaging.version import Version

from helpers.small_table import SMALL
from torch_abi_audit.rules import torch_findings
from torch_abi_audit.rules.cpython_abi import CPythonAnalysis
from torch_abi_audit.rules.facts import LibraryFacts, PackageFacts, RuleContext
from torch_abi_audit.rules.findings import Finding
from torch_abi_audit.rules.load_prediction import (
    LoadPrediction,
    LoadStatus,
    predict_against_install,
    predict_against_release,
    torch_owned_imports,
)
from torch_abi_audit.rules.torch_abi import TorchAnalysis, UnstableReason, UnstableSymbol
from torch_abi_audit.rules.torch_table import TorchAbiTable, parse_table


def load_findings(predictions: list[tuple[str, LoadPrediction]]) -> list[Finding]:
    libraries = tuple(
        LibraryFacts(name, False, TorchAnalysis(), CPythonAnalysis(), load=prediction)
        for name, prediction in predictions
    )
    return torch_findings.load_findings(PackageFacts("pkg", libraries), RuleContext())


def deprecated_shim_findings(
    libraries: list[tuple[str, TorchAnalysis]], table: TorchAbiTable
) -> list[Finding]:
    facts = tuple(LibraryFacts(name, False, torch, CPythonAnalysis()) for name, torch in libraries)
    return torch_findings.deprecated_shim_findings(
        PackageFacts("pkg", facts), RuleContext(table=table)
    )


V = Version


@pytest.fixture
def table() -> TorchAbiTable:
    return parse_table(copy.deepcopy(SMALL))


def stable(*shims: str, floor: str = "2.9.0") -> TorchAnalysis:
    return TorchAnalysis(
        uses_torch=True,
        stable=True,
        stable_shims=shims,
        stable_shim_count=len(shims),
        min_torch_version=floor,
    )


UNSTABLE = TorchAnalysis(
    uses_torch=True,
    stable=False,
    stable_shims=("old",),
    unstable_details=(
        UnstableSymbol("_ZN3c104fooEv", "c10::foo()", UnstableReason.NAMESPACE, "c10"),
        UnstableSymbol(
            "_Z3barRKN2at6TensorE", "bar(at::Tensor const&)", UnstableReason.SIGNATURE, "x"
        ),
        UnstableSymbol("?baz@c10@@YAXXZ", "c10::baz()", UnstableReason.NAMESPACE, "c10", "c10.dll"),
        UnstableSymbol(
            "?own@c10@@YAXXZ", "c10::own()", UnstableReason.NAMESPACE, "c10", "mine.dll"
        ),
        UnstableSymbol("c10_c", "c10_c", UnstableReason.LIBRARY, "bound", "c10.dll"),
    ),
)


def test_torch_owned_imports_leave_out_the_package_own() -> None:
    # The signature-only one is the package's own function; "own" is bound to another DLL.
    assert torch_owned_imports(UNSTABLE) == ("?baz@c10@@YAXXZ", "_ZN3c104fooEv", "c10_c", "old")


def test_release_prediction(table: TorchAbiTable) -> None:
    label = "torch 2.12"
    assert predict_against_release(TorchAnalysis(), table, V("2.12.1"), label) is None
    ok = predict_against_release(stable("old", "new"), table, V("2.12.1"), label)
    assert (
        ok is not None and ok.status is LoadStatus.LOADS and ok.message == "loads with torch 2.12"
    )
    late = predict_against_release(
        stable("old", "newest", "gone", floor="2.13.0"), table, V("2.12.1"), label
    )
    assert late is not None and late.fails
    assert (late.newer_shims, late.removed_shims) == (("newest",), ("gone",))
    assert late.message == (
        "will not load with torch 2.12: needs torch>=2.13.0 (newest); "
        "imports shims removed by torch 2.12 (gone)"
    )
    tied = predict_against_release(UNSTABLE, table, V("2.12.1"), label)
    assert tied is not None and tied.status is LoadStatus.TIED and not tied.fails


def test_install_prediction(table: TorchAbiTable) -> None:
    exports = frozenset({"old", "_ZN3c104fooEv", "?baz@c10@@YAXXZ", "c10_c"})
    loads = predict_against_install(UNSTABLE, "torch 2.12.1", exports)
    assert loads.status is LoadStatus.LOADS
    missing = predict_against_install(
        stable("old", "newest"), "torch 2.12.1", exports, table=table, release=V("2.12.1")
    )
    assert missing.undefined_symbols == ("newest",) and missing.newer_shims == ("newest",)
    assert missing.other_undefined == ()
    assert missing.message == "will not load with torch 2.12.1: undefined symbol: newest"
    mac = predict_against_install(
        stable("newest", "new"), "torch 2.10", frozenset(), binary_format="mach-o"
    )
    assert mac.message == "will not load with torch 2.10: Symbol not found: _new (and 1 more)"
    lib = predict_against_install(
        stable("old"), "torch 2.12.1", exports, missing_libraries=["libtorch_cuda.so: cannot open"]
    )
    assert (
        lib.fails
        and lib.message == "will not load with torch 2.12.1: libtorch_cuda.so: cannot open"
    )


def test_load_findings_split_newer_shims_from_other_failures(table: TorchAbiTable) -> None:
    exports = frozenset({"old"})
    newer = predict_against_install(
        stable("old", "newest"), "torch 2.12.1", exports, table=table, release=V("2.12.1")
    )
    broken = predict_against_install(
        UNSTABLE, "torch 2.12.1", exports, table=table, release=V("2.12.1")
    )
    fine = predict_against_install(stable("old"), "torch 2.12.1", exports)
    findings = {
        f.code: f for f in load_findings([("a.so", newer), ("b.so", broken), ("c.so", fine)])
    }
    assert sorted(findings) == ["load-failure", "needs-newer-torch"]
    assert findings["needs-newer-torch"].evidence["libraries"] == ["a.so"]
    assert findings["needs-newer-torch"].evidence["shims"] == ["newest"]
    assert findings["load-failure"].evidence["libraries"] == ["b.so"]
    assert findings["load-failure"].libraries == ("b.so",)
    assert load_findings([("c.so", fine)]) == []


def test_deprecated_shim_finding_names_replacements(table: TorchAbiTable) -> None:
    [finding] = deprecated_shim_findings(
        [("a.so", stable("dep", "old")), ("b.so", stable("old"))], table
    )
    assert finding.code == "deprecated-shim" and finding.severity == "warning"
    assert finding.evidence == {
        "shims": ["dep"],
        "replacements": ["dep -> old"],
        "libraries": ["a.so"],
    }
    assert "dep (use old)" in finding.message
    assert deprecated_shim_findings([("b.so", stable("old"))], table) == []
