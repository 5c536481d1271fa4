"""``torch-abi-audit explain SYMBOL ...``: what a libtorch name is, and what replaces it.

Each name may be Itanium-mangled (``_ZN3c10…``, ``__ZN3c10…`` as macOS tools print it),
MSVC-decorated (``?…@c10@@…``), demangled (``c10::detail::torchCheckFail(…)``), a C symbol
(a shim, ``THPVariableClass``), an ATen operator (``aten::select.int``) or a libtorch macro
(``TORCH_CHECK``); ``-`` reads names from standard input, one per line. Exit status: 0, or 2
when a name cannot be read (the others are still explained).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from torch_abi_audit._version import __version__
from torch_abi_audit.console import writes_to_terminal
from torch_abi_audit.output import OutputError, write_report
from torch_abi_audit.renderers import json_report
from torch_abi_audit.renderers.escape import terminal_lines
from torch_abi_audit.renderers.migration import explanation_lines
from torch_abi_audit.rules.explain import Explanation, Verdict, explain_name
from torch_abi_audit.rules.replacements import load_replacements
from torch_abi_audit.rules.torch_abi import torch_rules
from torch_abi_audit.rules.torch_table import load_table


def build_parser() -> argparse.ArgumentParser:
    """The ``explain`` subcommand's parser."""
    parser = argparse.ArgumentParser(
        prog="torch-abi-audit explain",
        description=(
            "Explain libtorch names: the entity a symbol names, whether it ties a library to "
            "one torch release, and what PyTorch says replaces it on the stable ABI (since "
            "which release, and where it says so)."
        ),
        epilog="exit status: 0 every name explained, 2 a name could not be read",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "names",
        nargs="+",
        metavar="SYMBOL",
        help="mangled (Itanium or MSVC) or demangled C++ name, C symbol, aten::op.overload, "
        "or libtorch macro; '-' reads names from standard input, one per line",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _names(arguments: Sequence[str]) -> list[str]:
    names: list[str] = []
    for argument in arguments:
        if argument == "-":
            names += [line.strip() for line in sys.stdin if line.strip()]
        elif argument.strip():
            names.append(argument)
    return names


def explain_all(names: Sequence[str]) -> list[Explanation]:
    """Every name explained with the shipped tables."""
    rules, replacements, shims = torch_rules(), load_replacements(), load_table()
    return [explain_name(name, rules, replacements, shims) for name in names]


def main(argv: Sequence[str]) -> int:
    """Run ``explain``; returns the exit code."""
    args = build_parser().parse_args(argv)
    names = _names(args.names)
    if not names:
        print("torch-abi-audit explain: error: no name given", file=sys.stderr)
        return 2
    explanations = explain_all(names)
    if args.json:
        document = json_report.explain_document(explanations)
        text = json_report.dumps(document, pretty=writes_to_terminal(sys.stdout))
    else:
        text = "\n\n".join(terminal_lines(explanation_lines(e)) for e in explanations)
    try:
        write_report(text, None)
    except OutputError as exc:
        print(f"torch-abi-audit explain: error: {exc}", file=sys.stderr)
        return 2
    unreadable = [e.query for e in explanations if e.verdict is Verdict.UNREADABLE]
    for query in unreadable:
        print(f"error: cannot read {query!r} as a symbol name", file=sys.stderr)
    return 2 if unreadable else 0
