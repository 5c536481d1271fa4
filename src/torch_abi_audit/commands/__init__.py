"""Subcommands of ``torch-abi-audit`` (``diff``, ``explain``, …), one module each.

:func:`torch_abi_audit.cli.main` dispatches on its first argument: when it names a subcommand
listed in :data:`torch_abi_audit.cli.SUBCOMMANDS`, that module's ``main(argv) -> int`` runs with
the remaining arguments; anything else is the audit command. A subcommand module provides:

* ``build_parser() -> argparse.ArgumentParser``: its own parser (``prog`` names the subcommand);
* ``main(argv: Sequence[str]) -> int``: runs it and returns the exit code, with the audit
  command's meanings (0 ran, 1 a gate failed, 2 an operational problem).

Modules are imported only when their subcommand runs, so the audit command's start-up does not
pay for them.
"""
