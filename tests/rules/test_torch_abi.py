"""Torch rules: which imports make a library STABLE or UNSTABLE, and why."""

from __future__ import annotations

import pytest

from helpers.build import Fixtures
from torch_abi_audit.readers import read_library
from torch_abi_audit.rules.torch_abi import TorchRules, UnstableReason, demangle, is_torch_library
from torch_abi_audit.rules.torch_table import load_table

RULES = TorchRules(load_table())


def imports(*names: str) -> list[str]:
    return list(names)


def test_shim_only_is_stable_with_floor() -> None:
    result = RULES.analyse(
        imports("aoti_torch_get_dim", "torch_dtype_float8_e8m0fnu", "memcpy"),
        needs_torch_library=True,
    )
    assert result.uses_torch and result.stable
    assert result.stable_shim_count == 2
    assert result.stable_shims == ("aoti_torch_get_dim", "torch_dtype_float8_e8m0fnu")
    assert result.unstable_symbols == ()
    assert result.min_torch_version == "2.11.0"
    assert result.min_torch_symbols == ("torch_dtype_float8_e8m0fnu",)


def test_no_torch_at_all() -> None:
    result = RULES.analyse(
        imports("memcpy", "_ZNSt6chrono3_V212system_clock3nowEv"), needs_torch_library=False
    )
    assert not result.uses_torch and not result.stable
    assert result.min_torch_version is None


def test_c10_function_is_unstable_by_namespace() -> None:
    name = "_ZN3c106detail23torchInternalAssertFailEPKcS2_jS2_S2_"
    result = RULES.analyse(imports("aoti_torch_get_dim", name), needs_torch_library=True)
    assert result.uses_torch and not result.stable
    assert result.stable_shim_count == 1
    (detail,) = result.unstable_details
    assert detail.symbol == name
    assert detail.reason is UnstableReason.NAMESPACE
    assert detail.demangled.startswith("c10::detail::torchInternalAssertFail(")
    assert result.unstable_symbols == (detail.demangled,)
    assert "namespace c10" in detail.detail


def test_torch_library_def_is_unstable_by_entity_not_argument() -> None:
    # torch::Library::_def passes torch::headeronly::Tag (stable) but torch::Library is internal.
    # As exported by libtorch_cpu.so 2.13.0 (an &&-qualified member function).
    name = (
        "_ZNR5torch7Library4_defEOSt7variantIJN3c1012OperatorNameENS2_14FunctionSchemaEEEONS_11"
        "CppFunctionERKSt6vectorINS_10headeronly3TagESaISB_EE"
    )
    demangled = demangle(name)
    assert demangled.startswith("torch::Library::_def(")
    (detail,) = RULES.analyse(imports(name), needs_torch_library=True).unstable_details
    assert detail.reason is UnstableReason.NAMESPACE
    assert "torch::Library" in detail.detail


def test_own_function_passing_at_tensor_is_unstable_by_signature() -> None:
    name = "_ZN8facebook10torchcodec9getFramesERKN2at6TensorE"
    (detail,) = RULES.analyse(imports(name), needs_torch_library=True).unstable_details
    assert detail.reason is UnstableReason.SIGNATURE
    assert "at::Tensor" in detail.detail


def test_own_function_passing_stable_types_is_not_unstable() -> None:
    names = (
        "_ZN8facebook10torchcodec12TensorReadIOC1EN5torch6stable6TensorE",
        "_ZN5mypkg6halvesEN3c104HalfE",  # mypkg::halves(c10::Half): header-only type
        "_ZN3c104HalfC1Ef",  # c10::Half::Half(float), header-only entity
        "_ZN3c108toStringENS_10ScalarTypeEPKc",  # a c10::toString no libtorch exports
        "_ZN3c10lsERSoRKNS_4HalfE",  # c10::operator<<(std::ostream&, c10::Half const&)
        "_ZN5torch10headeronly6detail3fooEv",
    )
    result = RULES.analyse(imports("aoti_torch_get_dim", *names), needs_torch_library=True)
    assert result.stable, result.unstable_details


@pytest.mark.parametrize(
    ("name", "entity", "library"),
    [
        # c10::report_overflow(char const*): declared C10_API in c10/util/TypeCast.h, whose
        # checked_convert torch/headeronly re-exports; defined in libc10.
        ("_ZN3c1015report_overflowEPKc", "c10::report_overflow", "libc10.so"),
        ("?report_overflow@c10@@YAXPEBD@Z", "c10::report_overflow", "c10.dll"),
        # c10::operator<<(std::ostream&, c10::DeviceType): on a header-only type, yet libc10's.
        ("_ZN3c10lsERSoNS_10DeviceTypeE", "c10::operator", "libc10.so"),
        # The same for MSVC: the operator's code (?6) comes right before its namespace, with no
        # '@' between them (the pre-filter once missed it: a false STABLE on Windows).
        (
            "??6c10@@YAAEAV?$basic_ostream@DU?$char_traits@D@std@@@std@@AEAV12@W4DeviceType@0@@Z",
            "c10::operator",
            "c10.dll",
        ),
        (
            "_ZN3c10lsERNSt3__113basic_ostreamIcNS0_11char_traitsIcEEEENS_10DeviceTypeE",
            "c10::operator",
            "libc10.dylib",
        ),
        # c10::toString(c10::ScalarType) is inline in the headers, but libtorch_nvshmem.so of
        # the Linux builds exports a definition: an import of it binds there.
        ("_ZN3c108toStringENS_10ScalarTypeE", "c10::toString", "libtorch_nvshmem.so"),
    ],
)
def test_header_only_names_that_libtorch_defines_are_unstable(
    name: str, entity: str, library: str
) -> None:
    """Exempt by name, but a libtorch library of some release exports the definition: the
    import ties the library to libtorch (the shipped table's header_only_exported)."""
    assert RULES.exempt_as_header_only(name)
    result = RULES.analyse(imports("aoti_torch_get_dim", name), needs_torch_library=True)
    assert not result.stable
    (detail,) = result.unstable_details
    assert detail.reason is UnstableReason.NAMESPACE
    assert detail.detail.startswith(f"{entity}") and f"is defined in {library} (" in detail.detail
    assert detail.detail.endswith("), not header-only")


@pytest.mark.parametrize(
    "name",
    [
        "_ZN3c10lsERSoRKNS_6IValueE",  # c10::operator<<(std::ostream&, c10::IValue const&)
        "??6c10@@YAAEAV?$basic_ostream@DU?$char_traits@D@std@@@std@@AEAV12@AEBVIValue@0@@Z",
    ],
)
def test_c10_operator_with_internal_type_is_unstable(name: str) -> None:
    (detail,) = RULES.analyse(imports(name), needs_torch_library=True).unstable_details
    assert detail.reason is UnstableReason.SIGNATURE
    assert "c10::IValue" in detail.detail


@pytest.mark.parametrize(
    ("name", "stable"),
    [
        ("??8c10@@YA_NAEBVDevice@0@0@Z", False),  # c10::operator==(Device const&, Device const&)
        ("??Hat@@YA?AVTensor@0@AEBV10@0@Z", False),  # at::operator+(Tensor const&, Tensor const&)
        ("??_0torch@@YAXXZ", False),  # an operator /= in namespace torch
        ("??Hc10@@YA?AUHalf@0@AEBU10@0@Z", True),  # c10::operator+(Half const&, Half const&)
        ("??6mypkg@@YAAEAV?$basic_ostream@DU?$char_traits@D@std@@@std@@AEAV12@H@Z", True),
    ],
)
def test_msvc_operators_in_torch_namespaces_are_judged(name: str, stable: bool) -> None:
    """An MSVC operator in a namespace of its own (``??6c10@@``: c10::operator<<) spells no
    '@' before the namespace; it is judged like any other import, never skipped as foreign."""
    result = RULES.analyse(imports("aoti_torch_get_dim", name), needs_torch_library=True)
    assert result.stable is stable, result.unstable_details


def test_vtable_and_typeinfo_imports_count() -> None:
    result = RULES.analyse(
        imports("_ZTVN5torch8autograd12AutogradMetaE", "_ZTIN3c105ErrorE"), needs_torch_library=True
    )
    assert [d.reason for d in result.unstable_details] == [UnstableReason.NAMESPACE] * 2
    # Reported in the order of their mangled names.
    assert result.unstable_symbols == (
        "typeinfo for c10::Error",
        "vtable for torch::autograd::AutogradMeta",
    )


def test_libtorch_c_symbol_is_unstable() -> None:
    result = RULES.analyse(imports("THPVariableClass"), needs_torch_library=False)
    (detail,) = result.unstable_details
    assert detail.reason is UnstableReason.C_SYMBOL
    assert "libtorch_python" in detail.detail


def test_torch_prefix_alone_is_not_a_shim() -> None:
    # Not in the table: not counted as a shim. Alone in an unrelated library it is ignored...
    lonely = RULES.analyse(imports("torch_make_coffee"), needs_torch_library=False)
    assert not lonely.uses_torch
    # ...next to real torch use it is reported as unknown (probably a newer release's shim).
    with_torch = RULES.analyse(imports("torch_make_coffee"), needs_torch_library=True)
    assert with_torch.unknown_shims == ("torch_make_coffee",)
    assert with_torch.stable_shim_count == 0
    unknown_aoti = RULES.analyse(imports("aoti_torch_from_the_future"), needs_torch_library=False)
    assert unknown_aoti.unknown_shims == ("aoti_torch_from_the_future",)
    assert unknown_aoti.uses_torch and unknown_aoti.stable


def test_defined_symbols_never_count(built: Fixtures) -> None:
    library = read_library(built.stable_plugin)
    defined = {s.name for s in library.exports}
    # The fixture defines header-only c10::Half and even c10::IValue members (weak).
    assert "_ZN3c104HalfC2Ef" in defined or "_ZN3c104HalfC1Ef" in defined
    assert any("IValue" in name for name in defined)
    result = RULES.analyse(library.imports.names(), needs_torch_library=False)
    assert result.stable and result.uses_torch
    assert result.stable_shims == (
        "aoti_torch_delete_tensor_object",
        "aoti_torch_get_dim",
        "torch_dtype_float8_e8m0fnu",
    )
    assert result.min_torch_version == "2.11.0"


def test_compiled_unstable_library(built: Fixtures) -> None:
    result = RULES.analyse(
        read_library(built.unstable_lib).imports.names(), needs_torch_library=False
    )
    assert not result.stable
    assert sorted(result.unstable_symbols) == [
        "at::Tensor::dim() const",
        "c10::detail::torchCheckFail(char const*, char const*, unsigned int, char const*)",
    ]
    assert result.stable_shim_count == 1


def test_compiled_signature_only_library(built: Fixtures) -> None:
    result = RULES.analyse(
        read_library(built.signature_lib).imports.names(), needs_torch_library=False
    )
    assert result.unstable_symbols == ("mypkg::process(at::Tensor const&)",)
    assert result.unstable_details[0].reason is UnstableReason.SIGNATURE


@pytest.mark.parametrize(
    ("name", "torch"),
    [
        ("libtorch_cpu.so", True),
        ("libc10.so", True),
        ("libtorch.so.2.13", True),
        ("@rpath/libc10.dylib", True),
        ("@rpath/libtorch_python.dylib", True),
        ("C10.dll", True),
        ("torch_cuda.dll", True),
        ("C:\\torch\\lib\\torch_cpu.dll", True),
        ("libtorchaudio.so", False),
        ("libtorchcodec_core4.dylib", False),
        ("c10d_helper.py", False),
        ("libc.so.6", False),
        ("python3.dll", False),
    ],
)
def test_torch_library_names(name: str, torch: bool) -> None:
    assert is_torch_library(name) is torch


def test_imports_bound_to_a_torch_library_that_are_not_shims() -> None:
    bindings = {
        "aoti_torch_get_dim": "torch_cpu.dll",
        "aoti_torch_from_the_future": "torch_cpu.dll",
        "c10_private_c_function": "c10.dll",
        "THPVariableClass": "torch_python.dll",
    }
    result = RULES.analyse(
        imports(*bindings, "memcpy"),
        torch_libraries=("torch_cpu.dll", "c10.dll", "torch_python.dll"),
        bindings=bindings,
    )
    assert not result.stable
    assert result.stable_shims == ("aoti_torch_get_dim",)
    assert result.unknown_shims == ("aoti_torch_from_the_future",)  # a newer shim, not unstable
    details = {u.symbol: (u.reason, u.library) for u in result.unstable_details}
    assert details == {
        "THPVariableClass": (UnstableReason.C_SYMBOL, "torch_python.dll"),
        "c10_private_c_function": (UnstableReason.LIBRARY, "c10.dll"),
    }
    assert result.torch_libraries == ("torch_cpu.dll", "c10.dll", "torch_python.dll")
    # Without bindings (ELF: libtorch does not version its symbols) an unknown C name says nothing.
    assert (
        RULES.analyse(imports("c10_private_c_function"), needs_torch_library=True).uses_torch
        is False
    )
