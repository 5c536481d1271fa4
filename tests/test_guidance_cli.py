"""--explain and --target-version on the audit command, on compiled fixtures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from helpers.build import Fixtures
from torch_abi_audit import inspect_package
from torch_abi_audit.cli import main
from torch_abi_audit.renderers.json_report import load_schema

SCHEMA = load_schema()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def package(built: Fixtures, tmp_path: Path) -> Path:
    root = tmp_path / "mypkg"
    root.mkdir()
    shutil.copyfile(built.unstable_lib, root / "libcore.so")
    shutil.copyfile(built.signature_lib, root / "libsig.so")
    shutil.copyfile(built.stable_plugin, root / "libplugin.so")
    return root


def test_explain_block(capsys: pytest.CaptureFixture[str], package: Path) -> None:
    code, out, err = run(capsys, str(package), "--explain")
    assert code == 0 and err == ""
    lines = out.splitlines()
    start = lines.index(
        "  -- migration: 3 unstable imports of 3 libtorch entities; 3 (100%) have a stable "
        "replacement --"
    )
    block = lines[start + 1 :]
    assert block[0].startswith("    1x in 1 library  at::Tensor (in signatures)")
    dim = block.index("    1x in 1 library  at::Tensor::dim")
    # at::Tensor inherits TensorBase::dim, whose counterpart torch::stable::Tensor has.
    assert block[dim + 1].startswith("        -> torch::stable::Tensor::dim (since torch 2.9.0)")
    (check,) = [
        i
        for i, line in enumerate(block)
        if line.startswith("    1x in 1 library  c10::detail::torchCheckFail  (via TORCH_CHECK, ")
    ]
    assert block[check + 1].startswith("        -> STD_TORCH_CHECK (since torch 2.9.0)  [docs/")
    # libplugin needs 2.11 today; every replacement is older.
    assert block[-1] == (
        "    min torch after the port: 2.11.0 (today's shims need 2.11.0; no replacement raises it)"
    )


def test_explain_json(capsys: pytest.CaptureFixture[str], package: Path) -> None:
    code, out, _ = run(capsys, str(package), "--explain", "--json")
    assert code == 0
    document = json.loads(out)
    jsonschema.validate(document, SCHEMA)
    migration = document["migration"]
    assert (migration["occurrences"], migration["covered"]) == (3, 3)
    entities = {e["entity"]: e for e in migration["entities"]}
    check = entities["c10::detail::torchCheckFail"]
    assert check["replacement"] == "STD_TORCH_CHECK" and check["libraries"] == ["mypkg/libcore.so"]
    assert check["source"]["file"] == "docs/source/notes/libtorch_stable_abi.md"
    assert entities["at::Tensor (in signatures)"]["in_signatures"] is True
    # Without --explain the field is there, and null.
    _, plain, _ = run(capsys, str(package), "--json")
    assert json.loads(plain)["migration"] is None


def test_explain_in_environment_mode(capsys: pytest.CaptureFixture[str], fake_site: object) -> None:
    site = fake_site.site  # type: ignore[attr-defined]
    code, out, _ = run(capsys, "--site-packages", str(site), "--explain", "--no-load-prediction")
    assert code == 2  # the fake site holds a corrupt library
    lines = out.splitlines()
    torchish = lines.index("Package: torchish")
    assert lines[torchish + 1] == (
        "  -- migration: 1 unstable import of 1 libtorch entity; 1 (100%) have a stable "
        "replacement --"
    )
    assert lines[torchish + 2].startswith("    1x in 1 library  at::Tensor (in signatures)")


def test_target_version(capsys: pytest.CaptureFixture[str], built: Fixtures) -> None:
    plugin = str(built.stable_plugin)
    code, out, err = run(capsys, plugin, "--target-version", "2.10", "--check", "torch")
    assert code == 1
    assert (
        "[error] above-target-version: libstable_plugin.so imports stable-ABI shims newer "
        "than the target torch 2.10: torch_dtype_float8_e8m0fnu (2.11.0)" in out
    )
    assert "above-target-version" in err
    # It is the torch gate's, not the metadata gate's.
    code, _, _ = run(capsys, plugin, "--target-version", "2.10", "--check", "metadata")
    assert code == 0
    code, out, _ = run(capsys, plugin, "--target-version", "2.11", "--check", "torch")
    assert code == 0 and "above-target-version" not in out
    code, _, err = run(capsys, plugin, "--target-version", "two")
    assert code == 2 and "--target-version takes a torch release X.Y" in err


def test_python_api(package: Path, built: Fixtures) -> None:
    report = inspect_package(package, explain=True, target_version="2.10")
    assert report.migration is not None and report.migration.covered == 3
    assert [f.code for f in report.findings if f.code == "above-target-version"] == [
        "above-target-version"
    ]
    assert inspect_package(package).migration is None
