"""``torch-abi-audit explain``: representative names in both manglings, demangled, C, macros."""

from __future__ import annotations

import io
import json

import jsonschema
import pytest

from torch_abi_audit.cli import main
from torch_abi_audit.commands.explain import explain_all
from torch_abi_audit.renderers.json_report import load_schema
from torch_abi_audit.rules.explain import NameForm, Verdict, qualified_scope

SCHEMA = load_schema()

# (name as pasted, form, verdict, entity, replacement)
ITANIUM = [
    (
        "_ZN3c106detail14torchCheckFailEPKcS2_jRKSs",
        "c10::detail::torchCheckFail",
        "STD_TORCH_CHECK",
    ),
    (
        "_ZN3c106detail14torchCheckFailEPKcS2_jRKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE",
        "c10::detail::torchCheckFail",
        "STD_TORCH_CHECK",
    ),
    (
        "_ZN2at4_ops10select_int4callERKNS_6TensorElN3c106SymIntE",
        "aten::select.int",
        "torch::stable::select",
    ),
    (
        "_ZN2at4_ops10add_Tensor4callERKNS_6TensorES4_RKN3c106ScalarE",
        "aten::add.Tensor",
        'torch_call_dispatcher("aten::add", "Tensor")',
    ),
    ("_ZNK2at10TensorBase5sizesEv", "at::TensorBase::sizes", "torch::stable::Tensor::sizes"),
    (
        "_ZNK2at10TensorBase16mutable_data_ptrIfEEPT_v",
        "at::TensorBase::mutable_data_ptr",
        "torch::stable::Tensor::mutable_data_ptr",
    ),
    ("_ZNK2at6Tensor4itemIfEET_v", "at::Tensor::item", "torch_call_dispatcher"),
    (
        "_ZNR5torch7Library4_defEON3c1014FunctionSchemaEPNS1_12OperatorNameERKSt6vectorIN2at3Tag"
        "ESaIS8_EENS_17_RegisterOrVerifyE",
        "torch::Library::_def",
        "STABLE_TORCH_LIBRARY",
    ),
    (
        "_ZN3c106DeviceC1ERKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE",
        "c10::Device",
        "torch::stable::Device",
    ),
    (
        "_ZN3c105ErrorC1ENS_14SourceLocationENSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE",
        "c10::Error",
        "std::runtime_error",
    ),
    ("_ZTIN3c105ErrorE", "c10::Error", "std::runtime_error"),  # typeinfo, from a catch clause
    (
        "_ZN2at12parallel_forIZ3foovEUlllE_EEvlllRKT_",
        "at::parallel_for",
        "torch::stable::parallel_for",
    ),
    (
        "__ZN3c106detail14torchCheckFailEPKcS2_jPKc",
        "c10::detail::torchCheckFail",
        "STD_TORCH_CHECK",
    ),  # Mach-O
    ("_ZN5mypkg7processERKN2at6TensorE", "at::Tensor (in signatures)", "torch::stable::Tensor"),
    (
        "_ZN3c104impl3cow23materialize_cow_storageERNS_11StorageImplE",
        "c10::impl::cow::materialize_cow_storage",
        None,
    ),
    ("_ZNK3c106SymInt9guard_intEPKcl", "c10::SymInt::guard_int", None),
]

# Real imports of torchcodec 0.8.1's win_amd64 wheel.
MSVC = [
    ("?torchCheckFail@detail@c10@@YAXPEBD0I0@Z", "c10::detail::torchCheckFail", "STD_TORCH_CHECK"),
    (
        "?torchCheckFail@detail@c10@@YAXPEBD0IAEBV?$basic_string@DU?$char_traits@D@std@@"
        "V?$allocator@D@2@@std@@@Z",
        "c10::detail::torchCheckFail",
        "STD_TORCH_CHECK",
    ),
    (
        "?call@cat@_ops@at@@SA?AVTensor@3@AEBV?$IListRef@VTensor@at@@@c10@@_J@Z",
        "aten::cat",
        'torch_call_dispatcher("aten::cat", "")',
    ),
    (
        "??$mutable_data_ptr@N@TensorBase@at@@QEBAPEANXZ",
        "at::TensorBase::mutable_data_ptr",
        "torch::stable::Tensor::mutable_data_ptr",
    ),
    ("??0Device@c10@@QEAA@W4DeviceType@1@C@Z", "c10::Device", "torch::stable::Device"),
    ("??0Error@c10@@QEAA@AEBV01@@Z", "c10::Error", "std::runtime_error"),
    ("??1Library@torch@@QEAA@XZ", "torch::Library", "STABLE_TORCH_LIBRARY"),
    (
        "?_impl@Library@torch@@AEGAAAEAV12@PEBD$$QEAVCppFunction@2@W4_RegisterOrVerify@2@@Z",
        "torch::Library::_impl",
        "STABLE_TORCH_LIBRARY",
    ),
    ("??0MessageLogger@c10@@QEAA@PEBDHH@Z", "c10::MessageLogger", None),
]


@pytest.mark.parametrize(("name", "entity", "replacement"), ITANIUM + MSVC)
def test_mangled_names(name: str, entity: str, replacement: str | None) -> None:
    (explanation,) = explain_all([name])
    assert explanation.form is (NameForm.MSVC if name.startswith("?") else NameForm.ITANIUM)
    assert explanation.verdict is Verdict.UNSTABLE
    assert explanation.entity == entity
    assert explanation.advice is not None
    assert explanation.advice.replacement == replacement
    assert explanation.demangled and explanation.demangled != name


@pytest.mark.parametrize(
    ("name", "verdict", "entity", "replacement"),
    [
        (
            "c10::detail::torchCheckFail(char const*, char const*, unsigned int, char const*)",
            Verdict.UNSTABLE,
            "c10::detail::torchCheckFail",
            "STD_TORCH_CHECK",
        ),
        (
            "void at::parallel_for<foo()::{lambda(long, long)#1}>(long, long, long, "
            "foo()::{lambda(long, long)#1} const&)",
            Verdict.UNSTABLE,
            "at::parallel_for",
            "torch::stable::parallel_for",
        ),
        (
            "at::Tensor::item<float>() const",
            Verdict.UNSTABLE,
            "at::Tensor::item",
            "torch_call_dispatcher",
        ),
        (
            "mypkg::process(at::Tensor const&)",
            Verdict.UNSTABLE,
            "at::Tensor (in signatures)",
            "torch::stable::Tensor",
        ),
        (
            "torch::stable::Tensor::sizes() const",
            Verdict.STABLE,
            "torch::stable::Tensor::sizes",
            None,
        ),
        ("c10::Half::Half(float)", Verdict.STABLE, "c10::Half", None),
        ("std::vector<int, std::allocator<int>>::push_back(int const&)", Verdict.OTHER, None, None),
    ],
)
def test_demangled_names(
    name: str, verdict: Verdict, entity: str | None, replacement: str | None
) -> None:
    (explanation,) = explain_all([name])
    assert explanation.form is NameForm.DEMANGLED
    assert (explanation.verdict, explanation.entity) == (verdict, entity)
    assert (explanation.advice.replacement if explanation.advice else None) == replacement


def test_c_names_operators_and_macros() -> None:
    shim, internal, unknown, operator, macro, undocumented, other = explain_all(
        [
            "aoti_torch_get_sizes",
            "THPVariableClass",
            "torch_from_the_future",
            "aten::narrow",
            "TORCH_CHECK",
            "TORCH_WARN",
            "printf",
        ]
    )
    assert (
        shim.verdict is Verdict.SHIM and shim.shim is not None and str(shim.shim.since) == "2.9.0"
    )
    assert internal.verdict is Verdict.UNSTABLE and "libtorch_python" in internal.detail
    assert internal.advice is not None and internal.advice.replacement is None
    assert unknown.verdict is Verdict.UNKNOWN_SHIM
    assert operator.form is NameForm.OPERATOR and operator.advice is not None
    assert operator.advice.replacement == "torch::stable::narrow"
    assert macro.verdict is Verdict.MACRO and macro.advice is not None
    assert macro.advice.replacement == "STD_TORCH_CHECK"
    assert "c10::detail::torchCheckFail" in macro.detail
    assert undocumented.verdict is Verdict.MACRO and undocumented.advice is not None
    assert undocumented.advice.replacement is None and "c10::warn" in undocumented.detail
    assert other.verdict is Verdict.OTHER


def test_a_namespace_is_no_macro_expansion() -> None:
    """Every CUDA extension imports c10::cuda::getCurrentCUDAStream: it is no expansion of
    C10_CUDA_CHECK (that macro calls c10::cuda::c10_cuda_check_implementation, which the
    table now names, instead of the bare namespace that matched every c10::cuda:: name)."""
    stream, check = explain_all(
        ["_ZN3c104cuda20getCurrentCUDAStreamEa", "c10::cuda::c10_cuda_check_implementation"]
    )
    assert (stream.verdict, stream.entity) == (Verdict.UNSTABLE, "c10::cuda::getCurrentCUDAStream")
    assert stream.advice is not None and stream.advice.replacement is None
    assert stream.advice.via == ()
    assert check.advice is not None and "C10_CUDA_CHECK" in check.advice.via


def test_qualified_scope() -> None:
    assert qualified_scope("void c10::foo<int>(int)") == ("c10", "foo")
    assert qualified_scope("at::Tensor::item<float>() const") == ("at", "Tensor", "item")
    assert qualified_scope("") == ()


def test_cli_text_json_and_exit_codes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["explain", "_ZN3c106detail14torchCheckFailEPKcS2_jRKSs"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "_ZN3c106detail14torchCheckFailEPKcS2_jRKSs"
    assert "  entity:      c10::detail::torchCheckFail" in out
    assert "  replacement: STD_TORCH_CHECK (since torch 2.9.0)" in out
    assert any(
        line.startswith("  source:      docs/source/notes/libtorch_stable_abi.md:") for line in out
    )
    # A name that cannot be read: exit 2, and the others are still explained.
    assert main(["explain", "--json", "_Zgarbage", "aoti_torch_get_sizes"]) == 2
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    jsonschema.validate(document, SCHEMA)
    assert [s["verdict"] for s in document["symbols"]] == ["unreadable", "stable-shim"]
    assert "cannot read '_Zgarbage'" in captured.err
    # Names from standard input; hostile bytes are escaped on the terminal.
    monkeypatch.setattr("sys.stdin", io.StringIO("TORCH_CHECK\n\nfoo\x1b[2Jbar\n"))
    assert main(["explain", "-"]) == 0
    text = capsys.readouterr().out
    assert "TORCH_CHECK" in text and "\x1b" not in text and "foo\\x1b[2Jbar" in text
    assert main(["explain", " "]) == 2
    assert "no name given" in capsys.readouterr().err
