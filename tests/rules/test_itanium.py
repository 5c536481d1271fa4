"""Entity scopes of Itanium-mangled names (names taken from real torch extension binaries)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pycxxfilt
import pytest

from helpers.build import Fixtures
from torch_abi_audit.rules.itanium import OPERATOR, entity_scope

CASES = [
    # (mangled, expected scope)
    (
        "_ZN3c106detail23torchInternalAssertFailEPKcS2_jS2_S2_",
        ("c10", "detail", "torchInternalAssertFail"),
    ),
    (
        "_ZN2at4_ops10mul_Scalar4callERKNS_6TensorERKN3c106ScalarE",
        ("at", "_ops", "mul_Scalar", "call"),
    ),
    ("_ZN2at18in_parallel_regionEv", ("at", "in_parallel_region")),
    ("_ZN3c1013ParallelGuardC1Eb", ("c10", "ParallelGuard")),  # constructor
    ("_ZN3c1021AutogradMetaInterfaceD2Ev", ("c10", "AutogradMetaInterface")),  # destructor
    ("_ZNK3c106SymInt16sym_ne_slow_pathERKS0_", ("c10", "SymInt", "sym_ne_slow_path")),  # const
    ("_ZNK2at6Tensor4itemIlEET_v", ("at", "Tensor", "item")),  # template member
    ("_ZTVN5torch8autograd12AutogradMetaE", ("torch", "autograd", "AutogradMeta")),  # vtable
    ("_ZTIN3c105ErrorE", ("c10", "Error")),  # typeinfo
    (
        "_ZN5torch3jit11parseSchemaERKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEEb",
        ("torch", "jit", "parseSchema"),
    ),
    (
        "_ZN8facebook10torchcodec12TensorReadIOC1EN5torch6stable6TensorE",
        ("facebook", "torchcodec", "TensorReadIO"),
    ),
    ("_ZN3c104HalfC1Ef", ("c10", "Half")),
    ("_ZN3c108toStringENS_10ScalarTypeE", ("c10", "toString")),
    ("_ZN3c10lsERSoRKNS_4HalfE", ("c10", OPERATOR)),  # c10::operator<<
    ("_ZZN3c1010Dispatcher9singletonEvE9_instance", ("c10", "Dispatcher", "singleton")),  # local
    ("_ZGVZN3c1010Dispatcher9singletonEvE9_instance", ("c10", "Dispatcher", "singleton")),  # guard
    ("_ZThn8_N3c1010TensorImplD0Ev", ("c10", "TensorImpl")),  # thunk
    ("_ZN12_GLOBAL__N_13fooEv", ("(anonymous namespace)", "foo")),
    ("_ZSt4cout", ("std", "cout")),
    (
        "_ZNKSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEE4findEPKcmm",
        ("std", "__cxx11", "basic_string"),
    ),
    ("_ZN3c1013MessageLogger6streamB5cxx11Ev", ("c10", "MessageLogger", "stream")),  # ABI tag
    ("_Z16THPVariable_WrapRKN2at10TensorBaseE", ("THPVariable_Wrap",)),  # global function
    ("_ZL3barv", ("bar",)),  # internal linkage
    ("_ZN5torch10headeronly6detail3fooEv", ("torch", "headeronly", "detail", "foo")),
]


@pytest.mark.parametrize(("mangled", "expected"), CASES, ids=[c[0] for c in CASES])
def test_entity_scope(mangled: str, expected: tuple[str, ...]) -> None:
    # The fixture data must itself be valid Itanium names.
    assert pycxxfilt.demangle(mangled)
    assert entity_scope(mangled) == expected


@pytest.mark.parametrize(
    "name", ["", "printf", "_Z", "_ZN", "_ZN3c1", "_ZN99x", "_ZTIi", "?foo@@YAXXZ"]
)
def test_unreadable_or_scopeless_names_give_empty_scope(name: str) -> None:
    assert entity_scope(name) == ()


def test_never_raises_on_garbage() -> None:
    import random

    rng = random.Random(1234)
    alphabet = "_ZNSKIEL0123456789abcdefxyzCDTVhv"
    for _ in range(5000):
        text = "_Z" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert isinstance(entity_scope(text), tuple)


def test_fast_path_agrees_with_the_full_parser() -> None:
    """entity_scope's fast path for plain nested names must give what the parser gives."""
    import random

    from torch_abi_audit.rules import itanium

    names = [mangled for mangled, _ in CASES]
    rng = random.Random(99)
    parts = [
        "3c10",
        "2at",
        "5torch",
        "6stable",
        "4Half",
        "B5cxx11",
        "6detail",
        "I",
        "E",
        "C1",
        "ls",
        "L",
        "K",
        "R",
        "St",
        "12_GLOBAL__N_1",
        "9",
        "0",
        "Ev",
        "RKS0_",
    ]
    for _ in range(20000):
        names.append("_ZN" + "".join(rng.choice(parts) for _ in range(rng.randint(1, 7))))
    checked = 0
    for name in names:
        start = itanium._PLAIN_NESTED.match(name)
        if start is None:
            continue
        fast = itanium._plain_nested_scope(name, start.end())
        if fast is None:
            continue
        try:
            slow = itanium._Parser(name, 2).encoding()
        except (IndexError, ValueError):
            slow = ()
        assert fast == slow, name
        checked += 1
    assert checked > 5000


def _full_parser_scope(name: str) -> tuple[str, ...]:
    """entity_scope without its fast path: what the full parser reads."""
    from torch_abi_audit.rules import itanium

    if not name.startswith("_Z"):
        return ()
    try:
        return itanium._Parser(name, 2).encoding()
    except (IndexError, ValueError):
        return ()


def _assert_fast_path_agrees(names: set[str]) -> int:
    """Every name's scope equals the full parser's; returns how many took the fast path."""
    from torch_abi_audit.rules import itanium

    fast = 0
    for name in sorted(names):
        assert entity_scope(name) == _full_parser_scope(name), name
        start = itanium._PLAIN_NESTED.match(name)
        if start is not None and itanium._plain_nested_scope(name, start.end()) is not None:
            fast += 1
    return fast


def _cxx_names(libraries: Iterable[Path]) -> set[str]:
    """The Itanium names the libraries import and export (unreadable files are skipped)."""
    from torch_abi_audit.readers import BinaryReadError, read_library

    names: set[str] = set()
    for path in libraries:
        try:
            library = read_library(path)
        except (BinaryReadError, OSError):
            continue
        for part in (library, *library.slices):
            names.update(n for n in part.imports.names() if n.startswith("_Z"))
            names.update(n for n in part.exports.names() if n.startswith("_Z"))
    return names


def test_fast_path_agrees_on_the_fixtures(built: Fixtures) -> None:
    """The fast path gives the full parser's scope on every C++ name of the compiled fixtures
    (and on the hand-written cases)."""
    names = _cxx_names(p for p in built.directory.iterdir() if p.is_file())
    names.update(mangled for mangled, _ in CASES)
    assert _assert_fast_path_agrees(names) > 10


#: The benchmark environment (benchmarks/bench_env.py): torch and fifteen compiled packages.
BENCH_SITE = Path.home() / ".cache/torch-abi-audit/bench/env/lib/python3.11/site-packages"


@pytest.mark.torch
def test_fast_path_agrees_on_every_name_a_real_environment_imports() -> None:
    """The fast path gives the full parser's scope on every C++ name the libraries of a real
    environment import (tens of thousands, most of them libtorch's own): the benchmark
    environment's site-packages, else the installed torch's."""
    from torch_abi_audit.sources.discovery import is_library_name

    if BENCH_SITE.is_dir():
        root = BENCH_SITE
    else:
        from helpers.real_wheels import installed_torch

        root = installed_torch()
    libraries = (p for p in root.rglob("*") if is_library_name(p.name) and p.is_file())
    names = _cxx_names(libraries)
    if len(names) < 1000:
        pytest.skip(f"{root}: too few C++ names to be worth it")
    fast = _assert_fast_path_agrees(names)
    assert fast > len(names) // 2  # the fast path is the common one
