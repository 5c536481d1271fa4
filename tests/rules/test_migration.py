"""Migration plans (rules/migration.py) and the above-target-version finding."""

from __future__ import annotations

from torch_abi_audit.rules import torch_findings
from torch_abi_audit.rules.cpython_abi import CPythonAnalysis
from torch_abi_audit.rules.facts import LibraryFacts, PackageFacts, RuleContext
from torch_abi_audit.rules.findings import Finding
from torch_abi_audit.rules.migration import plan_migration
from torch_abi_audit.rules.replacements import load_replacements
from torch_abi_audit.rules.torch_abi import TorchAnalysis, TorchRules
from torch_abi_audit.rules.torch_table import TorchAbiTable, load_table

TABLE = load_table()


def target_version_findings(
    libraries: list[tuple[str, TorchAnalysis]], table: TorchAbiTable, target: str
) -> list[Finding]:
    """The ``above-target-version`` rule on libraries given as (name, torch analysis)."""
    facts = tuple(LibraryFacts(name, False, torch, CPythonAnalysis()) for name, torch in libraries)
    context = RuleContext(table=table, target_version=target)
    return torch_findings.target_version_findings(PackageFacts("pkg", facts), context)


RULES = TorchRules(TABLE)
REPLACEMENTS = load_replacements()

CHECK_FAIL = "_ZN3c106detail14torchCheckFailEPKcS2_jRKSs"  # TORCH_CHECK's expansion
SELECT_INT = "_ZN2at4_ops10select_int4callERKNS_6TensorElN3c106SymIntE"
ADD_TENSOR = "_ZN2at4_ops10add_Tensor4callERKNS_6TensorES4_RKN3c106ScalarE"
COW = "_ZN3c104impl3cow23materialize_cow_storageERNS_11StorageImplE"
OWN_SIGNATURE = "_ZN5mypkg7processERKN2at6TensorE"  # mypkg::process(at::Tensor const&)
MSVC_CHECK_FAIL = (
    "?torchCheckFail@detail@c10@@YAXPEBD0IAEBV?$basic_string@DU?$char_traits@D@std@@"
    "V?$allocator@D@2@@std@@@Z"
)


def _analyse(*names: str) -> TorchAnalysis:
    return RULES.analyse(names)


def test_entities_are_counted_once_per_package_and_ranked() -> None:
    libraries = [
        ("lib/a.so", _analyse(CHECK_FAIL, SELECT_INT, COW, "aoti_torch_get_dim")),
        ("lib/b.so", _analyse(CHECK_FAIL, ADD_TENSOR, OWN_SIGNATURE)),
        ("lib/c.dll", _analyse(MSVC_CHECK_FAIL)),
    ]
    plan = plan_migration(libraries, RULES, REPLACEMENTS, TABLE)
    assert plan.occurrences == 7
    first = plan.entities[0]
    # Itanium and MSVC spellings of one entity are one entity.
    assert (first.entity, first.occurrences) == ("c10::detail::torchCheckFail", 3)
    assert first.libraries == ("lib/a.so", "lib/b.so", "lib/c.dll")
    assert first.advice.replacement == "STD_TORCH_CHECK" and first.advice.via[0] == "TORCH_CHECK"
    by_entity = {use.entity: use for use in plan.entities}
    assert by_entity["aten::select.int"].advice.replacement == "torch::stable::select"
    assert by_entity["aten::add.Tensor"].advice.replacement == (
        'torch_call_dispatcher("aten::add", "Tensor")'
    )
    signature = by_entity["at::Tensor (in signatures)"]
    assert signature.in_signatures and signature.symbols == (OWN_SIGNATURE,)
    assert signature.advice.replacement == "torch::stable::Tensor"
    cow = by_entity["c10::impl::cow::materialize_cow_storage"]
    assert cow.advice.replacement is None
    assert plan.covered == 6 and plan.replaceable == tuple(
        u for u in plan.entities if u.entity != cow.entity
    )
    assert round(plan.coverage, 3) == round(6 / 7, 3)


def test_floor_after_the_port() -> None:
    # Today's shims need 2.9.0 (aoti_torch_get_dim); select.int's stable function and the
    # dispatcher came in 2.10.0, so the port needs 2.10.0.
    libraries = [("a.so", _analyse(SELECT_INT, ADD_TENSOR, "aoti_torch_get_dim"))]
    plan = plan_migration(libraries, RULES, REPLACEMENTS, TABLE)
    assert plan.current_floor == "2.9.0"
    assert plan.floor_after == "2.10.0"
    assert dict(plan.raised_by) == {
        "torch::stable::select": "2.10.0",
        "torch_call_dispatcher": "2.10.0",
    }
    # A floor already above every replacement is not raised.
    newer = [("a.so", _analyse(SELECT_INT, "torch_has_storage"))]
    kept = plan_migration(newer, RULES, REPLACEMENTS, TABLE)
    assert (kept.current_floor, kept.floor_after, kept.raised_by) == ("2.14.0", "2.14.0", ())


def test_stable_package_has_nothing_to_port() -> None:
    plan = plan_migration([("a.so", _analyse("aoti_torch_get_dim"))], RULES, REPLACEMENTS, TABLE)
    assert (plan.occurrences, plan.entities, plan.coverage) == (0, (), 1.0)


def test_above_target_version() -> None:
    libraries = [
        (
            "lib/new.so",
            _analyse("aoti_torch_get_dim", "torch_dtype_float8_e8m0fnu", "torch_has_storage"),
        ),
        ("lib/old.so", _analyse("aoti_torch_get_dim")),
    ]
    (finding,) = target_version_findings(libraries, TABLE, "2.10")
    assert finding.code == "above-target-version" and finding.severity == "error"
    assert finding.evidence["libraries"] == ["lib/new.so"]
    assert finding.evidence["shims"] == [
        "torch_has_storage: 2.14.0",
        "torch_dtype_float8_e8m0fnu: 2.11.0",
    ]
    assert "torch_has_storage (2.14.0)" in finding.message
    (at_211,) = target_version_findings(libraries, TABLE, "2.11")
    assert at_211.evidence["shims"] == ["torch_has_storage: 2.14.0"]
    assert target_version_findings(libraries, TABLE, "2.14") == []


def test_runtime_lookups_do_not_count_against_the_target() -> None:
    # A build targeting 2.10 that looks torch_has_storage up with dlsym keeps its promise.
    looked_up = RULES.analyse(
        ["aoti_torch_get_dim", "dlsym"], runtime_lookups=frozenset({"torch_has_storage"})
    )
    assert looked_up.optional_shims == ("torch_has_storage",)
    assert target_version_findings([("a.so", looked_up)], TABLE, "2.10") == []


def test_a_patch_release_shim_is_above_its_minor_target() -> None:
    # TORCH_TARGET_VERSION encodes major.minor with patch 0: 2.12 means 2.12.0.
    patch = [s for s in TABLE.shims.values() if s.since.micro and s.removed is None]
    if not patch:  # every shipped shim came with an X.Y.0 release
        return
    shim = patch[0]
    target = f"{shim.since.major}.{shim.since.minor}"
    assert target_version_findings([("a.so", _analyse(shim.name))], TABLE, target)
