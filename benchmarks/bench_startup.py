#!/usr/bin/env python3
"""Time torch-abi-audit's start-up: what importing the command costs, and a small audit.

A regression check, not a comparison with another tool: every audit pays the start-up, and on
a wheel of a few megabytes it is most of the time. Contenders, all from the venv this checkout
is installed into (bytecode caches on, as for every benchmark):

- ``python -c "import os; os._exit(0)"``: the interpreter alone;
- ``python -c "import torch_abi_audit.cli, os; os._exit(0)"``: the console script's module and
  what it imports (target: at most 0.1 s more than the interpreter alone; ``os._exit`` leaves
  out the interpreter's teardown, which is not the import's);
- ``torch-abi-audit --version``: the argument parser built;
- ``torch-abi-audit WHEEL --json`` on a small abi3 wheel (torchao 0.18.0, 3 MB: informational).

    python benchmarks/bench_startup.py                # 10 rounds
    python benchmarks/bench_startup.py --quick
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_wheels import SMALL_ABI3, wheel
from harness import Budget, Contender, finish, install_checkout, measure, parser, report, run

IMPORT_BUDGET = 0.1  # seconds over the bare interpreter


def main() -> int:
    """Set up, measure, print; the exit code."""
    args = parser(__doc__.split("\n\n")[0], rounds=10).parse_args()
    rounds = 1 if args.quick else args.rounds
    ours = install_checkout(args.bench_dir / "ours", args.venv_python)
    python = str(ours.with_name("python"))
    bare = Contender("python (start, no teardown)", [python, "-c", "import os; os._exit(0)"])
    statement = "import torch_abi_audit.cli, os; os._exit(0)"
    imported = Contender("import torch_abi_audit.cli", [python, "-c", statement])
    version = Contender("torch-abi-audit --version", [str(ours), "--version"])
    small = wheel(*SMALL_ABI3[0])
    audit = Contender(f"ours {small.name.split('-')[0]} --json", [str(ours), str(small), "--json"])
    contenders = [bare, imported, version, audit]
    measure(contenders, rounds)
    checks = [Budget("importing the command", imported, bare, IMPORT_BUDGET)]
    title = f"Start-up ({rounds} rounds after a warm-up, order alternating)"
    print(report(title, contenders, checks))
    return finish(args, contenders, checks)


if __name__ == "__main__":
    run(main)
