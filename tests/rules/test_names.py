"""The rules' questions asked of all import names at once (rules/names.py) give what asking name
by name gives: the C API names, the torch C++ names, the verdicts."""

from __future__ import annotations

import random

import pytest

from torch_abi_audit.rules import cpython_abi, torch_abi
from torch_abi_audit.rules.cpython_abi import ENTRY_POINT_PREFIXES, analyse_cpython
from torch_abi_audit.rules.names import names_text
from torch_abi_audit.rules.torch_abi import torch_rules

# Pieces of real import names, and of awkward ones (newlines, prefixes inside names).
_PIECES = [
    "Py",
    "_Py",
    "PyInit_",
    "PyInitU_",
    "PyModExport_",
    "PyModExportU_",
    "Long_FromLong",
    "_ZN",
    "_Z",
    "3c10",
    "2at",
    "5torch",
    "6caffe2",
    "6detail",
    "14torchCheckFail",
    "Ev",
    "?",
    "@c10@",
    "@at@",
    "@@",
    "?6",  # an MSVC operator's code: ??6c10@@ is c10::operator<<
    "?_0",
    "c10@",
    "torch@",
    "torch_",
    "aoti_torch_",
    "foo",
    "\n",
    "x",
    "",
]


def _random_names(rng: random.Random) -> frozenset[str]:
    count = rng.randint(0, 40)
    return frozenset(
        "".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 6))) for _ in range(count)
    )


def _capi_one_by_one(names: frozenset[str]) -> set[str]:
    capi = filter(cpython_abi._CAPI_NAME.match, names)
    return {n for n in capi if not n.startswith(ENTRY_POINT_PREFIXES)}


def test_names_text_lines_and_mentions() -> None:
    text = names_text(frozenset({"PyLong_FromLong", "_ZN3c104HalfC1Ef"}))
    assert text.lines
    assert text.mentions(("3c10",))
    assert not text.mentions(("5torch", "Half\nPy"))
    assert not names_text(frozenset({"a\nb", "c"})).lines
    assert names_text(frozenset()).text == ""
    assert names_text(frozenset()).lines


def test_the_last_frozen_set_is_kept_and_a_mutable_set_never() -> None:
    names = frozenset({"PyList_New"})
    assert names_text(names) is names_text(names)
    mutable = {"PyList_New"}
    first = names_text(mutable)
    mutable.add("PyDict_New")
    assert "PyDict_New" in names_text(mutable).text
    assert "PyDict_New" not in first.text


def test_capi_names_agree_with_the_per_name_rule() -> None:
    rng = random.Random(20240601)
    for _ in range(3000):
        names = _random_names(rng)
        assert cpython_abi._capi_names(names) == _capi_one_by_one(names), sorted(names)
        # A mutable set (and any other iterable) takes the per-name path: the same answer.
        assert cpython_abi._capi_names(set(names)) == _capi_one_by_one(names)


def test_torch_cxx_names_agree_with_the_per_name_rule() -> None:
    rng = random.Random(20240602)
    matched = 0
    for _ in range(3000):
        names = _random_names(rng)
        expected = sorted(filter(torch_abi._TORCH_CXX_NAME.match, names))
        assert torch_abi._torch_cxx_names(names, names_text(names)) == expected, sorted(names)
        matched += bool(expected)
    assert matched > 100


def test_msvc_operators_are_found_in_the_text() -> None:
    """An MSVC operator names its namespace right after the operator's code, with no '@'
    before it (``??6c10@@`` is c10::operator<<): the one-text search finds it too."""
    operators = {
        "??6c10@@YAAEAV?$basic_ostream@DU?$char_traits@D@std@@@std@@AEAV12@W4DeviceType@0@@Z",
        "??8c10@@YA_NAEBVDevice@0@0@Z",
        "??_0torch@@YAXXZ",
    }
    names = frozenset({*operators, "?foo@mypkg@@YAXXZ", "PyList_New", "??6mypkg@@YAXH@Z"})
    assert torch_abi._torch_cxx_names(names, names_text(names)) == sorted(operators)
    assert sorted(filter(torch_abi._TORCH_CXX_NAME.match, names)) == sorted(operators)


@pytest.mark.parametrize("seed", range(5))
def test_verdicts_do_not_depend_on_the_path_taken(seed: int) -> None:
    """A frozen set and a list of the same names get the same torch and CPython verdicts (the
    CPython rule reads a list name by name, a frozen set through its text)."""
    rng = random.Random(seed)
    rules = torch_rules()
    for _ in range(300):
        names = _random_names(rng) | {"aoti_torch_empty_strided", "PyInit_x", "PyList_New"}
        listed = sorted(names)
        assert rules.analyse(names) == rules.analyse(listed)
        assert rules.analyse(names, needs_torch_library=True) == rules.analyse(
            listed, needs_torch_library=True
        )
        assert analyse_cpython(names, "x.abi3.so") == analyse_cpython(listed, "x.abi3.so")
