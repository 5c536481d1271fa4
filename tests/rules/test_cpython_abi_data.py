"""The CPython stable ABI's tables: abi3info's, from the shipped copy while the installed abi3info
holds the same data (``scripts/generate_cpython_abi_data.py`` makes it), else from abi3info."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.scripts import load_script
from torch_abi_audit.package_data import read_text
from torch_abi_audit.rules import cpython_abi
from torch_abi_audit.rules.cpython_abi import (
    DATA_FILE,
    abi3info_fingerprint,
    opaque_in_abi3t,
    stable_abi_symbols,
    stable_abi_versions,
    tables_from_abi3info,
)

SHIPPED = json.loads(read_text("data", DATA_FILE))
MATCHES = SHIPPED["source"]["fingerprint"] == abi3info_fingerprint()
NOT_THE_SAME_ABI3INFO = pytest.mark.skipif(
    not MATCHES,
    reason=f"the installed abi3info is not {SHIPPED['source']['package']}, which the shipped "
    "copy was made from: run scripts/generate_cpython_abi_data.py",
)


@pytest.fixture
def fresh_tables() -> Iterator[None]:
    """The tables read anew in the test, and again after it."""
    cpython_abi._tables.cache_clear()
    stable_abi_symbols.cache_clear()
    yield
    cpython_abi._tables.cache_clear()
    stable_abi_symbols.cache_clear()


def test_the_tables_are_abi3infos(fresh_tables: None) -> None:
    # Whichever way they are read, with whichever abi3info is installed.
    versions, opaque = tables_from_abi3info()
    assert stable_abi_versions() == versions
    assert opaque_in_abi3t() == opaque
    assert stable_abi_symbols() == frozenset(versions)
    assert versions["PyModule_Create2"] == "3.2" and versions["PyAIter_Check"] == "3.10"
    assert "PyModuleDef" in opaque


@NOT_THE_SAME_ABI3INFO
def test_the_shipped_copy_is_what_the_generator_makes(capsys: pytest.CaptureFixture[str]) -> None:
    script = load_script("generate_cpython_abi_data")
    assert script.main(["--check"]) == 0, capsys.readouterr().err
    assert SHIPPED["generated_by"] == "scripts/generate_cpython_abi_data.py"


def test_the_copy_is_used_only_while_abi3info_holds_the_same_data(
    fresh_tables: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = ({"PyLive_Only": "3.99"}, ("PyLive",))
    monkeypatch.setattr(cpython_abi, "tables_from_abi3info", lambda: live)
    # Another abi3info (another size or CRC-32 of its tables), or none to read as a file.
    monkeypatch.setattr(cpython_abi, "abi3info_fingerprint", lambda: {"size": 1, "crc32": 2})
    assert stable_abi_versions() == live[0] and opaque_in_abi3t() == live[1]
    cpython_abi._tables.cache_clear()
    monkeypatch.setattr(cpython_abi, "abi3info_fingerprint", lambda: None)
    assert stable_abi_versions() == live[0]
    # A copy that cannot be read or is not the expected document: abi3info says.
    cpython_abi._tables.cache_clear()
    monkeypatch.setattr(
        cpython_abi, "abi3info_fingerprint", lambda: SHIPPED["source"]["fingerprint"]
    )
    monkeypatch.setattr(cpython_abi, "read_text", lambda *parts: '{"source": {}}')
    assert stable_abi_versions() == live[0]
    cpython_abi._tables.cache_clear()
    monkeypatch.setattr(cpython_abi, "read_text", lambda *parts: "not json")
    assert stable_abi_versions() == live[0]
    # The matching copy is used, without asking abi3info.
    cpython_abi._tables.cache_clear()
    monkeypatch.setattr(cpython_abi, "read_text", read_text)
    assert stable_abi_versions() == SHIPPED["symbols"]


@NOT_THE_SAME_ABI3INFO
def test_judging_cpython_imports_does_not_import_abi3info() -> None:
    # What made every worker of a scan pay ~30 ms before its first library.
    program = (
        "import sys\n"
        "from torch_abi_audit.rules.cpython_abi import analyse_cpython, opaque_in_abi3t\n"
        "result = analyse_cpython(frozenset({'PyList_New', '_PyUnicode_Ready'}), 'm.abi3.so', ())\n"
        "opaque_in_abi3t()\n"
        "print(result.violations, 'abi3info' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["('_PyUnicode_Ready',)", "False"]


def test_the_fingerprint_is_of_the_installed_tables() -> None:
    import abi3info

    tables = Path(abi3info.__file__).with_name(cpython_abi.ABI3INFO_TABLES).read_bytes()
    fingerprint = abi3info_fingerprint()
    assert fingerprint is not None and fingerprint["size"] == len(tables)
