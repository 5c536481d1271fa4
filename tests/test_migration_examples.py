"""The migration guide's examples on real releases (docs/migration.md) are what the tool prints
today. They show real wheels, so they are pasted with lines elided ("…"), not regenerated like
the demo examples (``tests/test_golden.py``): every line they do show must be printed, in order.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from helpers.real_wheels import real_wheel
from helpers.scripts import load_script
from torch_abi_audit.cli import main

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "docs" / "migration.md").read_text(encoding="utf-8")
GOLDEN = re.compile(r"<!-- golden: [a-z0-9-]+ -->\n```console\n.*?```", re.S)


def _console_block(command_prefix: str) -> tuple[list[str], list[str]]:
    """(argv, output lines) of the page's pasted console block whose command starts so."""
    pasted = GOLDEN.sub("", PAGE)
    for block in re.findall(r"```console\n(.*?)```", pasted, re.S):
        first, *rest = block.rstrip("\n").split("\n")
        if first.startswith(f"$ {command_prefix}"):
            return shlex.split(first[2:])[1:], rest
    raise AssertionError(f"no pasted example starting with {command_prefix!r}")


def _shown_in_order(shown: list[str], printed: list[str]) -> None:
    position = 0
    for line in (line for line in shown if not line.strip().startswith("…")):
        position = printed.index(line, position) + 1


@pytest.mark.network
def test_explain_plan_and_target_examples(capsys: pytest.CaptureFixture[str]) -> None:
    """Every line shown of --explain on torchcodec 0.8.1 and of --target-version on torchaudio
    2.11.0 is printed, in order."""
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
        _shown_in_order(shown, (captured.out + captured.err).split("\n"))


@pytest.mark.network
def test_diff_example(capsys: pytest.CaptureFixture[str]) -> None:
    """The torchaudio 2.9.1 -> 2.11.0 diff, fetched by pip as the page runs it."""
    argv, shown = _console_block("torch-abi-audit diff torchaudio==")
    main(argv)
    captured = capsys.readouterr()
    _shown_in_order(shown, (captured.out + captured.err).split("\n"))


@pytest.mark.network
def test_coverage_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert load_script("migration_coverage").main(["--markdown", "--uncovered", "0"]) == 0
    table = capsys.readouterr().out.strip()
    assert table in PAGE


def test_the_pasted_examples_are_found() -> None:
    """The blocks the network tests check are on the page (they fail loudly if renamed)."""
    for prefix in (
        "torch-abi-audit torchcodec-0.8.1",
        "torch-abi-audit torchaudio-2.11.0",
        "torch-abi-audit diff torchaudio==",
    ):
        argv, shown = _console_block(prefix)
        assert argv and shown
