"""The README's porting examples are what the tool prints today."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from helpers.real_wheels import real_wheel
from helpers.scripts import load_script
from torch_abi_audit.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _console_block(command_prefix: str) -> tuple[list[str], list[str]]:
    """(argv, output lines) of the README console block whose command starts so."""
    for block in re.findall(r"```console\n(.*?)```", README, re.S):
        first, *rest = block.rstrip("\n").split("\n")
        if first.startswith(f"$ {command_prefix}"):
            return shlex.split(first[2:])[1:], rest
    raise AssertionError(f"no README example starting with {command_prefix!r}")


def test_explain_example(capsys: pytest.CaptureFixture[str]) -> None:
    argv, shown = _console_block("torch-abi-audit explain ")
    assert main(argv) == 0
    assert capsys.readouterr().out.rstrip("\n").split("\n") == shown


@pytest.mark.network
def test_explain_plan_and_target_examples(capsys: pytest.CaptureFixture[str]) -> None:
    """Every line the README shows of --explain on torchcodec 0.8.1 and of --target-version
    on torchaudio 2.11.0 (the examples elide lines with "…") is printed, in order."""
    for prefix, wheel in (
        (
            "torch-abi-audit torchcodec-0.8.1",
            "torchcodec-0.8.1-cp311-cp311-manylinux_2_28_x86_64.whl",
        ),
        (
            "torch-abi-audit torchaudio-2.11.0",
            "torchaudio-2.11.0-cp311-cp311-manylinux_2_28_x86_64.whl",
        ),
    ):
        argv, shown = _console_block(prefix)
        argv[0] = str(real_wheel(wheel))
        main([*argv, "--no-load-prediction"])
        captured = capsys.readouterr()
        printed = (captured.out + captured.err).split("\n")
        position = 0
        for line in (
            line for line in shown if line.strip() != "…" and not line.strip().startswith("…")
        ):
            position = printed.index(line, position) + 1


@pytest.mark.network
def test_coverage_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert load_script("migration_coverage").main(["--markdown", "--uncovered", "0"]) == 0
    table = capsys.readouterr().out.strip()
    assert table in README
