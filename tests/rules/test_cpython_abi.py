"""CPython Stable ABI rules: which Python library a module links, and what that says."""

from __future__ import annotations

import pytest

from torch_abi_audit.report import CPythonLabel, cpython_label_of
from torch_abi_audit.rules.cpython_abi import analyse_cpython, linked_python


@pytest.mark.parametrize(
    ("needed", "library", "version"),
    [
        (["KERNEL32.dll", "python3.dll"], "python3.dll", None),
        (["PYTHON311.dll"], "PYTHON311.dll", "3.11"),
        (["python39.dll"], "python39.dll", "3.9"),
        (["python313t.dll"], "python313t.dll", "3.13"),
        (["libc.so.6", "libpython3.11.so.1.0"], "libpython3.11.so.1.0", "3.11"),
        (["libpython3.13t.so.1.0"], "libpython3.13t.so.1.0", "3.13"),
        (["libpython3.so"], "libpython3.so", None),
        (
            ["@loader_path/.dylibs/libpython3.12.dylib"],
            "@loader_path/.dylibs/libpython3.12.dylib",
            "3.12",
        ),
        (
            ["/Library/Frameworks/Python.framework/Versions/3.10/Python"],
            "/Library/Frameworks/Python.framework/Versions/3.10/Python",
            "3.10",
        ),
        (["libc.so.6", "python27.dll", "libpythonize.so", "mypython3.dll"], None, None),
    ],
)
def test_linked_python(needed: list[str], library: str | None, version: str | None) -> None:
    assert linked_python(needed) == (library, version)


def test_python3_dll_is_abi3_intent_without_a_tag() -> None:
    result = analyse_cpython({"PyLong_FromLong", "memcpy"}, "_rust.pyd", ["python3.dll"])
    assert (result.intent, result.compliant, result.python_version) == (True, True, None)
    assert cpython_label_of(result) is CPythonLabel.ABI3_OK
    untagged = analyse_cpython({"PyLong_FromLong"}, "_rust.pyd", ["python311.dll"])
    assert (untagged.intent, untagged.compliant) == (False, False)
    assert cpython_label_of(untagged) is CPythonLabel.NOT_ABI3


def test_abi3_tag_and_a_versioned_python_library_is_a_violation() -> None:
    result = analyse_cpython({"PyLong_FromLong"}, "_x.abi3.so", ["libpython3.11.so.1.0"])
    assert result.intent and not result.compliant and result.violations == ()
    assert cpython_label_of(result) is CPythonLabel.ABI3_TAGGED_VIOLATIONS
