"""The abi3 version questions abi3audit answers (baseline, computed, future and non-abi3
symbols), and free threading, on an extension compiled at test time.

The fixture (``tests/fixtures/src/abi3_versions.c``) is built for the 3.10 limited API but calls
``PyType_FromMetaclass`` (stable since 3.12) and ``PyUnicode_AsUTF8`` (not in the limited API),
exports two ``PyInit_`` entry points and a ``PyMyHelper`` function of its own.
"""

from __future__ import annotations

import json
import shutil
import sysconfig
from pathlib import Path

import jsonschema
import pytest

from helpers.build import compile_shared
from helpers.wheel_builder import write_wheel
from torch_abi_audit import inspect_extension, inspect_package, inspect_site_packages
from torch_abi_audit.cli import main
from torch_abi_audit.renderers.json_report import load_schema
from torch_abi_audit.report import CPythonLabel
from torch_abi_audit.sources.interpreter import site_packages_interpreter

FUTURE = (("PyType_FromMetaclass", "3.12"),)


@pytest.fixture(scope="module")
def extension(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("abi3v") / "ext.abi3.so"
    include = ["-I", sysconfig.get_paths()["include"]]
    return compile_shared("abi3_versions.c", out, *include).read_bytes()


def wheel(directory: Path, data: bytes, *tags: str, name: str = "ext.abi3.so") -> Path:
    return write_wheel(directory, "abi3pkg", "1.0", list(tags), {f"abi3pkg/{name}": data})


def test_the_module_alone(extension: bytes, tmp_path: Path) -> None:
    path = tmp_path / "ext.abi3.so"
    path.write_bytes(extension)
    report = inspect_extension(path)
    cpython = report.cpython
    assert report.entry_points == ("PyInit_first", "PyInit_second")  # two entry points: legal
    assert cpython.violations == ("PyUnicode_AsUTF8",)  # not its own PyMyHelper
    assert cpython.computed == "3.12"
    assert cpython.needs_python == "3.12"
    assert cpython.versioned_symbols == (
        ("PyType_FromMetaclass", "3.12"),
        ("PyUnicode_AsUTF8AndSize", "3.10"),
    )
    assert cpython.baseline is None  # known once the package is: see below
    assert report.cpython_label is CPythonLabel.ABI3_TAGGED_VIOLATIONS


@pytest.mark.parametrize(
    ("tags", "baseline", "future"),
    [
        (("cp310-abi3-manylinux_2_28_x86_64",), "3.10", FUTURE),
        (("cp312-abi3-manylinux_2_28_x86_64",), "3.12", ()),
        # Several abi3 tags: the highest promises the least, as abi3audit reads them.
        (("cp39-abi3-manylinux_2_28_x86_64", "cp311-abi3-manylinux_2_28_x86_64"), "3.11", FUTURE),
    ],
)
def test_baseline_from_the_wheel_tags(
    extension: bytes,
    tmp_path: Path,
    tags: tuple[str, ...],
    baseline: str,
    future: tuple[tuple[str, str], ...],
) -> None:
    report = inspect_package(wheel(tmp_path, extension, *tags), jobs=1)
    [lib] = report.libraries
    cpython = lib.cpython
    assert (cpython.baseline, cpython.baseline_source) == (baseline, "wheel tag")
    assert cpython.future_symbols == future
    assert cpython.computed == "3.12"
    codes = sorted(f.code for f in report.findings)
    assert ("abi3-newer-than-tag" in codes) == bool(future)
    if future:
        [finding] = [f for f in report.findings if f.code == "abi3-newer-than-tag"]
        assert finding.message.startswith(
            f"abi3pkg/ext.abi3.so uses the Python 3.12 ABI, but is tagged for the Python "
            f"{baseline} ABI (PyType_FromMetaclass (3.12))"
        )


def test_assumed_minimum_without_a_wheel(extension: bytes, tmp_path: Path) -> None:
    package = tmp_path / "abi3pkg"
    package.mkdir()
    (package / "ext.abi3.so").write_bytes(extension)
    [default] = inspect_package(package, jobs=1).libraries
    assert (default.cpython.baseline, default.cpython.baseline_source) == ("3.2", "assumed")
    assumed = inspect_package(package, jobs=1, assume_minimum_abi3="3.12")
    [lib] = assumed.libraries
    assert lib.cpython.baseline == "3.12" and lib.cpython.future_symbols == ()


def test_check_abi3_table_and_json(
    extension: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = wheel(tmp_path, extension, "cp310-abi3-manylinux_2_28_x86_64")
    assert main([str(path), "--check", "abi3"]) == 1
    captured = capsys.readouterr()
    assert (
        "  abi3pkg: [abi3] abi3-newer-than-tag (abi3pkg/ext.abi3.so): abi3pkg/ext.abi3.so uses the "
        "Python 3.12 ABI, but "
        "is tagged for the Python 3.10 ABI (PyType_FromMetaclass (3.12))"
    ) in captured.err
    assert (
        "  abi3pkg: [abi3] abi3-tagged-violations (abi3pkg/ext.abi3.so): tagged abi3 but imports "
        "PyUnicode_AsUTF8"
    ) in captured.err.splitlines()
    lines = captured.out.splitlines()
    assert "  abi3 version: tagged 3.10 (wheel tag), uses 3.12" in lines
    assert (
        "        uses the Python 3.12 ABI, but is tagged for the Python 3.10 ABI: "
        "PyType_FromMetaclass (3.12)"
    ) in lines
    assert main([str(path), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    jsonschema.validate(document, load_schema())
    [ext] = document["extensions"]
    cpython = ext["cpython"]
    assert (cpython["baseline"], cpython["computed"]) == ("3.10", "3.12")
    assert cpython["future_symbols"] == {"PyType_FromMetaclass": "3.12"}
    assert cpython["non_abi3_symbols"] == ["PyUnicode_AsUTF8"]
    assert main(["--assume-minimum-abi3", "three", str(path)]) == 2
    assert "--assume-minimum-abi3 takes a version" in capsys.readouterr().err


def site(root: Path, python_dir: str, files: dict[str, bytes]) -> Path:
    directory = root / "lib" / python_dir / "site-packages"
    for name, data in files.items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return directory


def test_the_environment_interpreter(extension: bytes, tmp_path: Path) -> None:
    old = site(tmp_path / "old", "python3.11", {"abi3pkg/ext.abi3.so": extension})
    assert site_packages_interpreter(old) is not None
    report = inspect_site_packages(old, jobs=1)
    [package] = report.packages
    [finding] = [f for f in package.findings if f.code == "load-failure"]
    assert finding.message == (
        "abi3pkg/ext.abi3.so will not import with Python 3.11: needs Python 3.12, the environment "
        "runs Python 3.11"
    )
    new = site(tmp_path / "new", "python3.12", {"abi3pkg/ext.abi3.so": extension})
    [package] = inspect_site_packages(new, jobs=1).packages
    assert not [f for f in package.findings if f.code == "load-failure"]


def test_free_threaded_environments_do_not_load_abi3(extension: bytes, tmp_path: Path) -> None:
    files = {"abi3pkg/ext.abi3.so": extension, "abi3pkg/ext.abi3t.so": extension}
    directory = site(tmp_path / "ft", "python3.15t", files)
    interpreter = site_packages_interpreter(directory)
    assert interpreter is not None and interpreter.free_threaded
    [package] = inspect_site_packages(directory, jobs=1).packages
    [finding] = [f for f in package.findings if f.code == "load-failure"]
    assert finding.libraries == ("abi3pkg/ext.abi3.so",)  # the .abi3t twin is fine
    assert "Python 3.15t does not load .abi3 modules" in finding.message
    abi3t = [lib for lib in package.libraries if lib.path.name == "ext.abi3t.so"]
    assert abi3t[0].cpython.abi3t and abi3t[0].cpython.intent


@pytest.fixture(scope="module")
def abi3t_module(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("abi3t") / "ft.abi3t.so"
    include = ["-I", sysconfig.get_paths()["include"]]
    return compile_shared("abi3t_module.c", out, *include).read_bytes()


def test_abi3t_builds_export_the_module_hook(
    extension: bytes, abi3t_module: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tags = ("cp315-abi3-manylinux_2_28_x86_64", "cp315-abi3t-manylinux_2_28_x86_64")
    good = write_wheel(tmp_path, "ftpkg", "1.0", list(tags), {"ftpkg/ft.abi3t.so": abi3t_module})
    report = inspect_package(good, jobs=1)
    [lib] = report.libraries
    assert lib.entry_points == ("PyModExport_ft",)
    assert (lib.cpython.abi3t, lib.cpython.intent, lib.cpython.violations) == (True, True, ())
    assert [f.code for f in report.findings] == []
    assert main([str(good), "--check", "abi3"]) == 0
    capsys.readouterr()

    # The 3.10 fixture renamed .abi3t, in a wheel tagged abi3t: PyInit_ and a PyModuleDef.
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    files = {"abi3pkg/ext.abi3t.so": extension, "abi3pkg/ft.abi3t.so": abi3t_module}
    bad = write_wheel(bad_dir, "abi3pkg", "1.0", list(tags), files)
    [finding] = [
        f for f in inspect_package(bad, jobs=1).findings if f.code == "abi3t-without-export-hook"
    ]
    assert finding.severity.value == "error"
    assert finding.evidence["libraries"] == ["abi3pkg/ext.abi3t.so"]  # not the hooked one
    assert finding.evidence["entry_points"] == ["PyInit_first", "PyInit_second"]
    assert finding.message.startswith(
        "abi3pkg/ext.abi3t.so claims abi3t but exports PyInit_first, PyInit_second and no "
        "PyModExport_ hook"
    )
    assert main([str(bad), "--check", "abi3"]) == 1
    assert "abi3pkg/ext.abi3t.so claims abi3t" in capsys.readouterr().err


def test_free_threading_tags(extension: bytes, tmp_path: Path) -> None:
    plain = inspect_package(wheel(tmp_path, extension, "cp312-abi3-manylinux_2_28_x86_64"), jobs=1)
    [info] = [f for f in plain.findings if f.code == "abi3-not-free-threaded"]
    assert info.evidence["libraries"] == ["abi3pkg/ext.abi3.so"]
    assert "do not load .abi3 modules such as abi3pkg/ext.abi3.so" in info.message
    both_dir = tmp_path / "both"
    both_dir.mkdir()
    both = wheel(
        both_dir,
        extension,
        "cp315-abi3-manylinux_2_28_x86_64",
        "cp315-abi3t-manylinux_2_28_x86_64",
        name="ext.abi3t.so",
    )
    report = inspect_package(both, jobs=1)
    codes = {f.code for f in report.findings}
    assert "abi3-not-free-threaded" not in codes
    # The fixture defines itself through PyInit_ and a PyModuleDef: an abi3 build renamed.
    assert "abi3t-without-export-hook" in codes
    [lib] = report.libraries
    assert (lib.cpython.baseline, lib.cpython.abi3t) == ("3.15", True)
    versioned_dir = tmp_path / "ft"
    versioned_dir.mkdir()
    ft_name = "ext.cpython-313t-x86_64-linux-gnu.so"
    ft = inspect_package(
        wheel(versioned_dir, extension, "cp313-cp313t-manylinux_2_28_x86_64", name=ft_name), jobs=1
    )
    [lib] = ft.libraries
    assert lib.cpython.free_threaded and not lib.cpython.intent
    shutil.rmtree(versioned_dir)
