"""Load prediction rules and their findings, on a small hand-built table (no binaries)."""

from __future__ import annotations

import copy
from dataclasses import replace

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
    ReleaseBuildView,
    predict_against_install,
    predict_against_release,
    torch_owned_imports,
    with_failed_dependencies,
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
    nothing = predict_against_release(TorchAnalysis(), table, V("2.12.1"), label)
    assert nothing.status is LoadStatus.LOADS and nothing.message == "loads with torch 2.12"
    ok = predict_against_release(stable("old", "new"), table, V("2.12.1"), label)
    assert ok.status is LoadStatus.LOADS and ok.message == "loads with torch 2.12"
    late = predict_against_release(
        stable("old", "newest", "gone", floor="2.13.0"), table, V("2.12.1"), label
    )
    assert late.fails
    assert (late.newer_shims, late.removed_shims) == (("newest",), ("gone",))
    assert late.message == (
        "will not load with torch 2.12: needs torch>=2.13.0 (newest); "
        "imports shims removed by torch 2.12 (gone)"
    )
    unknown = predict_against_release(UNSTABLE, table, V("2.12.1"), label)
    assert unknown.status is LoadStatus.UNKNOWN and not unknown.fails
    assert unknown.message == (
        "cannot tell whether it loads with torch 2.12: the data holds no build of its platform"
    )


BUILD = "torch 2.12.1+cu130 (linux_x86_64)"
OWNED = frozenset({"old", "_ZN3c104fooEv", "?baz@c10@@YAXXZ"})


def test_release_build_decides_like_an_installation(table: TorchAbiTable) -> None:
    """With the build's exports, an unstable library loads or fails on its symbols."""
    label = "torch 2.12"
    view = ReleaseBuildView(label=BUILD, exports=OWNED)
    recorded = replace(UNSTABLE, unstable_details=UNSTABLE.unstable_details[:4])
    # A C import bound to c10.dll that is not libtorch-owned by name: the data does not
    # record such names, so whether the build exports it is undecided.
    orphan = UnstableSymbol("orphan", "orphan", UnstableReason.LIBRARY, "bound", "c10.dll")
    odd = replace(recorded, unstable_details=(*recorded.unstable_details, orphan))
    unknown = predict_against_release(odd, table, V("2.12.1"), label, view)
    assert unknown.status is LoadStatus.UNKNOWN
    assert unknown.undecided_symbols == ("orphan",) and unknown.build == BUILD
    assert unknown.message == (
        "cannot tell whether it loads with torch 2.12: imports the data does not record (orphan)"
    )
    loads = predict_against_release(recorded, table, V("2.12.1"), label, view)
    assert loads.status is LoadStatus.LOADS and loads.build == BUILD
    fails = predict_against_release(
        recorded, table, V("2.12.1"), label, replace(view, exports=frozenset({"old"}))
    )
    assert fails.fails
    assert fails.undefined_symbols == ("?baz@c10@@YAXXZ", "_ZN3c104fooEv")
    assert (
        fails.message
        == "will not load with torch 2.12: undefined symbol: ?baz@c10@@YAXXZ (and 1 more)"
    )
    pe = predict_against_release(
        recorded,
        table,
        V("2.12.1"),
        label,
        replace(view, exports=frozenset({"old"})),
        binary_format="pe",
    )
    assert pe.message.endswith(
        "The specified procedure could not be found (?baz@c10@@YAXXZ) (and 1 more)"
    )


def test_release_build_libraries_come_first(table: TorchAbiTable) -> None:
    label = "torch 2.12"
    cudart = "libcudart.so.12: cannot open shared object file: No such file or directory"
    view = ReleaseBuildView(label=BUILD, missing_libraries=(cudart,))
    # Stable and fully within the shim table, yet its CUDA 12 runtime is not there.
    failed = predict_against_release(stable("old"), table, V("2.12.1"), label, view)
    assert failed.fails and failed.missing_libraries == (cudart,)
    assert failed.message == f"will not load with torch 2.12: {cudart}"
    # A library that imports nothing of torch but needs its CUDA runtime is judged too.
    plain = predict_against_release(TorchAnalysis(), table, V("2.12.1"), label, view)
    assert plain.fails
    undecided = ReleaseBuildView(label=BUILD, undecided_libraries=("libnpp.so.12",))
    maybe = predict_against_release(stable("old"), table, V("2.12.1"), label, undecided)
    assert maybe.status is LoadStatus.UNKNOWN
    assert maybe.undecided_libraries == ("libnpp.so.12",)
    assert "needs libnpp.so.12, which torch 2.12.1+cu130 (linux_x86_64) does not install" in (
        maybe.message
    )


def test_release_build_without_a_device_tier(table: TorchAbiTable) -> None:
    """A +cpu build has no CUDA shims: importing one fails even without export data."""
    gpu = copy.deepcopy(SMALL)
    gpu["shims"]["aoti_torch_cuda_x"] = {**gpu["shims"]["old"], "device": "cuda"}
    cuda_table = parse_table(gpu)
    view = ReleaseBuildView(label="torch 2.12.1+cpu (linux_x86_64)", no_devices=frozenset({"cuda"}))
    failed = predict_against_release(
        stable("old", "aoti_torch_cuda_x"), cuda_table, V("2.12.1"), "torch 2.12+cpu", view
    )
    assert failed.fails
    assert failed.undefined_symbols == ("aoti_torch_cuda_x",)
    loads = predict_against_release(stable("old"), cuda_table, V("2.12.1"), "torch 2.12+cpu", view)
    assert loads.status is LoadStatus.LOADS


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


# -- the install rules hold against a release -----------------------------------------------------

OLD_ABI = "_ZN3c106detail14torchCheckFailEPKcS2_jRKSs"
NEW_ABI = (
    "_ZN3c106detail14torchCheckFailEPKcS2_jRKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE"
)


def test_release_weak_imports_never_fail_the_load(table: TorchAbiTable) -> None:
    label = "torch 2.12"
    # A weakly imported shim the release does not have yet: optional, reported, no failure.
    weak_new = replace(stable("old", "newest"), weak_imports=("newest",))
    loads = predict_against_release(weak_new, table, V("2.12.1"), label)
    assert loads.status is LoadStatus.LOADS and loads.weak_undefined_symbols == ("newest",)
    assert loads.message == "loads with torch 2.12 (missing but optional: 1 weak import (newest))"
    # A required one still fails; the weak one removed by the release is listed beside it.
    both = replace(stable("old", "newest", "gone", floor="2.13.0"), weak_imports=("gone",))
    failed = predict_against_release(both, table, V("2.12.1"), label)
    assert failed.fails and (failed.newer_shims, failed.removed_shims) == (("newest",), ())
    assert failed.weak_undefined_symbols == ("gone",)
    assert failed.message == "will not load with torch 2.12: needs torch>=2.13.0 (newest)"
    # With the build's exports: a weak libtorch internal it lacks (a TLS init function).
    tls = "_ZTHN3c104impl26raw_local_dispatch_key_setE"
    weak_tls = TorchAnalysis(
        uses_torch=True,
        stable=False,
        stable_shims=("old",),
        unstable_details=(UnstableSymbol(tls, tls, UnstableReason.NAMESPACE, "c10"),),
        weak_imports=(tls,),
    )
    view = ReleaseBuildView(label=BUILD, exports=frozenset({"old"}))
    tls_loads = predict_against_release(weak_tls, table, V("2.12.1"), label, view)
    assert tls_loads.status is LoadStatus.LOADS and tls_loads.weak_undefined_symbols == (tls,)
    # Unstable only through weak imports: without the build's exports the table decides.
    assert predict_against_release(weak_tls, table, V("2.12.1"), label).status is LoadStatus.LOADS
    # Weak-linked or delay-loaded libraries the build lacks do not stop it either.
    optional = replace(view, missing_optional_libraries=("torch_cuda.dll",))
    dll = predict_against_release(stable("old"), table, V("2.12.1"), label, optional)
    assert dll.status is LoadStatus.LOADS and dll.missing_optional_libraries == ("torch_cuda.dll",)
    assert dll.message == (
        "loads with torch 2.12 (missing but optional: 1 weak or delay-loaded library)"
    )


def test_release_build_abi_explains_string_imports(table: TorchAbiTable) -> None:
    """The build's string ABI (read from its exports by the caller) names why an import of the
    other one is missing; a build whose ABI is not known says nothing more."""
    old_abi = TorchAnalysis(
        uses_torch=True,
        stable=False,
        unstable_details=(
            UnstableSymbol(
                OLD_ABI, "c10::detail::torchCheckFail(...)", UnstableReason.NAMESPACE, "c10"
            ),
        ),
    )
    view = ReleaseBuildView(label=BUILD, exports=frozenset({NEW_ABI}), cxx11_abi=True)
    failed = predict_against_release(
        old_abi, table, V("2.12.1"), "torch 2.12", view, binary_format="elf"
    )
    assert failed.fails and failed.cxx11_abi_mismatch == (OLD_ABI,)
    assert failed.message.startswith(
        f"will not load with torch 2.12: undefined symbol: {OLD_ABI}; it was built with the "
        "pre-C++11 ABI (_GLIBCXX_USE_CXX11_ABI=0) but torch 2.12 with the C++11 ABI "
        "(_GLIBCXX_USE_CXX11_ABI=1), so its imports taking or returning std::string cannot "
        "resolve (c10::detail::torchCheckFail("
    )
    unknown_abi = predict_against_release(
        old_abi,
        table,
        V("2.12.1"),
        "torch 2.12",
        replace(view, cxx11_abi=None),
        binary_format="elf",
    )
    assert unknown_abi.fails and unknown_abi.cxx11_abi_mismatch == ()


def test_release_failures_spread_through_a_package(table: TorchAbiTable) -> None:
    cudart = "libcudart.so.12: cannot open shared object file: No such file or directory"
    view = ReleaseBuildView(label=BUILD, missing_libraries=(cudart,))
    helper = predict_against_release(stable("old"), table, V("2.12.1"), "torch 2.12", view)
    unknown = predict_against_release(UNSTABLE, table, V("2.12.1"), "torch 2.12")
    fine = predict_against_release(stable("old"), table, V("2.12.1"), "torch 2.12")
    spread = with_failed_dependencies(
        [helper, None, unknown],
        [[], [(0, "libhelper.so.0")], [(0, "libhelper.so.0")]],
        ["libs/libhelper.so.0", "_ext.so", "_unstable.so"],
    )
    ext, unstable = spread[1], spread[2]
    assert ext is not None and ext.fails and ext.build == BUILD
    assert ext.message == (
        f"will not load with torch 2.12: needs libhelper.so.0 (bundled), which will not load: "
        f"{cudart}"
    )
    # Unknown on its own, but what it needs fails: that is certain.
    assert unstable is not None and unstable.fails
    assert unstable.failed_dependencies == ("libs/libhelper.so.0",)
    # Nothing fails, but what it needs may not load: neither "loads" nor "fails".
    odd = predict_against_release(UNSTABLE, table, V("2.12.1"), "torch 2.12")
    spread = with_failed_dependencies(
        [fine, odd, None, fine],
        [[(1, "libodd.so")], [], [(0, "_fine.so")], [(3, "self")]],
        ["_fine.so", "libodd.so", "_outer.so", "_alone.so"],
    )
    outer = spread[2]
    assert spread[0] is not None and spread[0].status is LoadStatus.UNKNOWN
    assert spread[0].message == (
        "cannot tell whether it loads with torch 2.12: needs libodd.so (bundled), which may not "
        "load: the data holds no build of its platform"
    )
    assert outer is not None and outer.status is LoadStatus.UNKNOWN
    assert outer.message.startswith(
        "cannot tell whether it loads with torch 2.12: needs _fine.so (bundled), which may not "
        "load: needs libodd.so (bundled)"
    )
    assert spread[3] is fine and spread[1] is odd
