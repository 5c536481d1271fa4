"""Run the command line in-process, as the tests of its options do."""

from __future__ import annotations

import pytest

from torch_abi_audit.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``torch-abi-audit ARGV``: the exit code, standard output and standard error."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
