"""The cibuildwheel recipes of the site's CI page (docs/ci.md), run exactly as written
(placeholders filled) on a wheel built in the test by a real build backend (setuptools, a
limited-API extension module)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from helpers.demo_wheels import DemoWheels

RECIPES_PAGE = Path(__file__).resolve().parent.parent / "docs" / "ci.md"
_RECIPE = re.compile(r"<!-- recipe: (?P<name>[\w-]+) -->\s*```toml\n(?P<toml>.*?)```", re.S)


def recipes() -> dict[str, dict[str, object]]:
    """Every recipe block of the CI page, by name: its ``[tool.cibuildwheel]`` table."""
    found = {}
    for match in _RECIPE.finditer(RECIPES_PAGE.read_text(encoding="utf-8")):
        table = tomllib.loads(match["toml"])["tool"]["cibuildwheel"]
        assert isinstance(table, dict)
        found[match["name"]] = table
    return found


def audit(recipe: dict[str, object], wheel: Path) -> subprocess.CompletedProcess[str]:
    """Run the recipe's ``audit-command`` as cibuildwheel does: ``{wheel}`` filled in, through
    the shell, with the tools ``audit-requires`` installs on the PATH."""
    command = str(recipe["audit-command"]).format(wheel=shlex.quote(str(wheel)))
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    environment = {**os.environ, "PATH": path}
    return subprocess.run(
        command, shell=True, capture_output=True, text=True, env=environment, check=False
    )


PROJECT = {
    "pyproject.toml": '[build-system]\nrequires = ["setuptools>=64", "wheel"]\n'
    'build-backend = "setuptools.build_meta"\n\n'
    '[project]\nname = "limitedext"\nversion = "0.1"\nrequires-python = ">=3.11"\n',
    "setup.py": "from setuptools import Extension, setup\n\n"
    "setup(ext_modules=[Extension('limitedext._ext', ['ext.c'], py_limited_api=True,\n"
    "      define_macros=[('Py_LIMITED_API', '0x030B0000')])],\n"
    "      packages=['limitedext'], options={'bdist_wheel': {'py_limited_api': 'cp311'}})\n",
    "limitedext/__init__.py": "",
    "ext.c": "#include <Python.h>\n"
    'static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ext", NULL, -1, NULL};\n'
    "PyMODINIT_FUNC PyInit__ext(void) { return PyModule_Create(&module); }\n",
}


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``limitedext-0.1-cp311-abi3-<platform>.whl``, built with pip and setuptools."""
    project = tmp_path_factory.mktemp("limitedext")
    for name, text in PROJECT.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    dist = project / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(project)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("limitedext-0.1-cp311-abi3-*.whl")
    return wheel


def test_the_ci_page_has_the_recipes() -> None:
    found = recipes()
    assert set(found) == {"cibuildwheel-replace", "cibuildwheel-keep"}
    assert found["cibuildwheel-replace"]["audit-requires"] == ["torch-abi-audit"]
    assert found["cibuildwheel-keep"]["audit-requires"] == ["abi3audit", "torch-abi-audit"]


@pytest.mark.network  # the build backend comes from the index (pip's build isolation)
@pytest.mark.parametrize("name", ["cibuildwheel-replace", "cibuildwheel-keep"])
def test_a_recipe_passes_a_good_wheel_and_fails_a_bad_one(
    name: str, built_wheel: Path, demo: DemoWheels
) -> None:
    recipe = recipes()[name]
    passed = audit(recipe, built_wheel)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "Package: limitedext" in passed.stdout
    assert "[NO-TORCH] [abi3-ok               ] limitedext/_ext.abi3.so" in passed.stdout
    # The demo port tagged abi3 imports private CPython API and libtorch internals.
    failed = audit(recipe, demo.port)
    assert failed.returncode == 1, failed.stdout + failed.stderr
