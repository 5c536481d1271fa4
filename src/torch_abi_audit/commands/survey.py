"""``torch-abi-audit survey``: the survey subpackage's command line, as a subcommand.

The command lives with the survey (:mod:`torch_abi_audit.survey.cli`); this module is the
entry :mod:`torch_abi_audit.cli` dispatches to.
"""

from __future__ import annotations

from torch_abi_audit.survey.cli import build_parser, main

__all__ = ["build_parser", "main"]
