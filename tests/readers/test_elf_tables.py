"""The lazy symbol tables (names, prefixes, pickling) and, optionally, a real torch build."""

from __future__ import annotations

import pickle
import time

import pytest

from helpers.build import Fixtures
from helpers.elf_inspect import (
    GLIBC_VERSION,
    fixture_path,
)
from helpers.real_wheels import installed_torch
from torch_abi_audit.model import (
    Library,
    StaticSymbolTable,
    Symbol,
)
from torch_abi_audit.readers.elf import read_elf

# -- SymbolTable ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["versioned", "unstable_lib", "stable_plugin", "tiny32"])
def test_export_names_match_symbols(built: Fixtures, name: str) -> None:
    path = fixture_path(built, name)
    lazy = read_elf(path).exports
    names_first = lazy.names()  # before anything is decoded
    symbols = lazy.symbols()
    assert names_first == {s.name for s in symbols} == lazy.names()
    assert len(lazy) == len(symbols)
    assert list(lazy) == list(symbols)
    assert lazy[0] == symbols[0] and lazy[-1] == symbols[-1]
    assert tuple(lazy[1:3]) == symbols[1:3]


def test_with_prefix(built: Fixtures) -> None:
    exports = read_elf(built.versioned).exports
    foo = exports.with_prefix("foo_")
    assert {s.name for s in foo} == {
        "foo_api",
        "foo_weak",
        "foo_protected",
        "foo_data",
        "foo_tls",
        "foo_call_hook",
    }
    assert foo == tuple(s for s in exports.symbols() if s.name.startswith("foo_"))
    assert {s.name for s in exports.with_prefix("foo_api", "foo_tls")} == {"foo_api", "foo_tls"}
    assert exports.with_prefix("zz_absent_") == ()
    assert read_elf(built.versioned).exports.with_prefix("zz_absent_", "_ZN3c10") == ()


def test_with_prefix_absent_does_not_decode(
    built: Fixtures, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An absent prefix is answered from the string table, without decoding any symbol."""
    from torch_abi_audit.readers import elf_symbols

    lib = read_elf(built.versioned)

    def refuse(self: object, indices: object) -> tuple[Symbol, ...]:
        raise AssertionError("decoded although the prefix is absent")

    monkeypatch.setattr(elf_symbols.SymbolColumns, "decode", refuse)
    assert lib.exports.with_prefix("absent_") == ()
    with pytest.raises(AssertionError, match="decoded"):
        lib.exports.with_prefix("foo_")


def test_pickle_round_trip(built: Fixtures) -> None:
    lib = read_elf(built.versioned, local_symbols=True)
    restored = pickle.loads(pickle.dumps(lib))
    assert isinstance(restored, Library)
    assert isinstance(restored.exports, StaticSymbolTable)
    assert restored == lib
    assert restored.exports.symbols() == lib.exports.symbols()
    assert restored.exports.names() == lib.exports.names()
    assert restored.local_symbols == lib.local_symbols
    assert restored.imports == lib.imports


# -- a real torch build (optional) ----------------------------------------------------------------


@pytest.mark.torch
def test_libtorch_cpu() -> None:
    path = installed_torch() / "lib" / "libtorch_cpu.so"
    if not path.is_file():
        pytest.skip(f"{path} does not exist")
    lib = read_elf(path)
    assert lib.bits == 64
    start = time.perf_counter()
    assert lib.exports.with_prefix("zz_no_such_prefix_") == ()
    assert time.perf_counter() - start < 1.0
    assert len(lib.exports) > 70000
    glibc = [s for s in lib.imports if s.version and s.version.startswith("GLIBC_")]
    assert glibc
    assert all(GLIBC_VERSION.fullmatch(s.version or "") for s in glibc)
    # Each version requirement names a DT_NEEDED library (ld-linux-x86-64.so.2 included).
    assert {s.library for s in glibc} <= set(lib.needed)
    assert {"libc.so.6", "libm.so.6"} <= {s.library for s in glibc}
    assert lib.exports.with_prefix("_ZN2at")
