"""CPython Stable ABI rules: which Python library a module links, and what that says."""

from __future__ import annotations

from pathlib import Path

import pytest

from torch_abi_audit.python_model import Interpreter
from torch_abi_audit.report import CPythonLabel, cpython_label_of
from torch_abi_audit.rules import python_findings
from torch_abi_audit.rules.cpython_abi import (
    CPythonAnalysis,
    abi3_baseline,
    analyse_cpython,
    linked_python,
)
from torch_abi_audit.rules.facts import LibraryFacts, PackageFacts, RuleContext
from torch_abi_audit.rules.findings import Finding
from torch_abi_audit.rules.torch_abi import TorchAnalysis
from torch_abi_audit.sources.interpreter import site_packages_interpreter


def interpreter_findings(
    libraries: list[tuple[str, CPythonAnalysis, bool]], interpreter: Interpreter
) -> list[Finding]:
    facts = tuple(
        LibraryFacts(name, is_extension, TorchAnalysis(), cpython)
        for name, cpython, is_extension in libraries
    )
    return python_findings.interpreter_findings(
        PackageFacts("pkg", facts), RuleContext(interpreter=interpreter)
    )


def abi3t_findings(
    libraries: list[tuple[str, CPythonAnalysis, tuple[str, ...]]], tags: tuple[str, ...] = ()
) -> list[Finding]:
    facts = tuple(
        LibraryFacts(name, bool(entries), TorchAnalysis(), cpython, entry_points=entries)
        for name, cpython, entries in libraries
    )
    return python_findings.abi3t_findings(PackageFacts("pkg", facts, tags=tags), RuleContext())


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


def test_abi3_baseline_from_tags() -> None:
    assert abi3_baseline(["cp39-abi3-manylinux_2_28_x86_64"]) == "3.9"
    assert abi3_baseline(["cp39-abi3-macosx_11_0_arm64", "cp310-abi3-macosx_11_0_arm64"]) == "3.10"
    assert abi3_baseline(["cp315-abi3t-manylinux_2_28_x86_64"]) == "3.15"
    assert abi3_baseline(["cp311-cp311-win_amd64", "py3-none-any"]) is None


def test_with_baseline_as_abi3audit() -> None:
    analysis = analyse_cpython({"PyLong_FromLong", "PyUnicode_AsUTF8AndSize"}, "_x.abi3.so")
    assert (analysis.computed, analysis.needs_python) == ("3.10", "3.10")
    older = analysis.with_baseline("3.9", "wheel tag")
    assert older.future_symbols == (("PyUnicode_AsUTF8AndSize", "3.10"),)
    newer = analysis.with_baseline("3.12", "wheel tag")
    # Computed never goes below the baseline (abi3audit's rule); what imports need stays 3.10.
    assert (newer.computed, newer.needs_python, newer.future_symbols) == ("3.12", "3.10", ())


def test_free_threading_file_tags() -> None:
    assert analyse_cpython(set(), "_x.abi3t.so").abi3t
    assert analyse_cpython(set(), "_x.abi3t.so").intent
    assert analyse_cpython(set(), "_x.cpython-313t-x86_64-linux-gnu.so").free_threaded
    assert not analyse_cpython(set(), "_x.cpython-313-x86_64-linux-gnu.so").free_threaded


@pytest.mark.parametrize(
    ("parts", "cfg", "expected"),
    [
        (("lib", "python3.11", "site-packages"), None, Interpreter("3.11")),
        (("lib", "python3.14t", "site-packages"), None, Interpreter("3.14", free_threaded=True)),
        (
            ("Lib", "site-packages"),
            "home = C:\\\\Python312\nversion = 3.12.4\n",
            Interpreter("3.12"),
        ),
        (("Lib", "site-packages"), None, None),
    ],
)
def test_site_packages_interpreter(
    tmp_path: Path, parts: tuple[str, ...], cfg: str | None, expected: Interpreter | None
) -> None:
    site = tmp_path.joinpath(*parts)
    site.mkdir(parents=True)
    if cfg is not None:
        (tmp_path / "pyvenv.cfg").write_text(cfg)
    assert site_packages_interpreter(site) == expected


def test_interpreter_findings() -> None:
    needs_312 = analyse_cpython({"PyType_FromMetaclass"}, "a.abi3.so").with_baseline(
        "3.9", "wheel tag"
    )
    version_specific = analyse_cpython(
        {"PyType_FromMetaclass"}, "b.cpython-311-x86_64-linux-gnu.so"
    )
    libraries = [
        ("a.abi3.so", needs_312, True),
        ("b.so", version_specific, True),
        ("c.so", needs_312, False),
    ]
    [finding] = interpreter_findings(libraries, Interpreter("3.11"))
    assert finding.evidence["libraries"] == ["a.abi3.so"]  # not the bundled one, nor a cp311 one
    assert interpreter_findings(libraries, Interpreter("3.12")) == []
    [ft] = interpreter_findings(libraries, Interpreter("3.13", free_threaded=True))
    assert ft.evidence["errors"] == [
        "a.abi3.so: Python 3.13t does not load .abi3 modules (free-threaded build)"
    ]


def test_abi3t_needs_the_export_hook() -> None:
    renamed = analyse_cpython({"PyModule_Create2"}, "a.abi3t.so")
    hooked = analyse_cpython({"PyModule_AddIntConstant"}, "b.abi3t.so")
    plain = analyse_cpython({"PyModule_Create2"}, "c.abi3.so")
    libraries = [
        ("a.abi3t.so", renamed, ("PyInit_a",)),
        ("b.abi3t.so", hooked, ("PyModExport_b",)),
        ("c.abi3.so", plain, ("PyInit_c",)),
        ("d.abi3t.so", renamed, ()),  # not an extension module: nothing to define
    ]
    [finding] = abi3t_findings(libraries)
    assert finding.code == "abi3t-without-export-hook"
    assert finding.evidence["libraries"] == ["a.abi3t.so"]  # a plain abi3 file claims no abi3t
    assert finding.evidence["claimed_by"] == ["a.abi3t.so: file name .abi3t"]
    assert "PyModuleDef and PyModuleDef_Base are opaque in abi3t" in finding.message  # abi3info
    # A wheel tagged abi3t claims it for its .abi3 modules too.
    [tagged] = abi3t_findings(libraries, ("cp315-abi3t-manylinux_2_28_x86_64",))
    assert tagged.evidence["libraries"] == ["a.abi3t.so", "c.abi3.so"]
    assert abi3t_findings(libraries[1:], ("cp315-abi3-manylinux_2_28_x86_64",)) == []
