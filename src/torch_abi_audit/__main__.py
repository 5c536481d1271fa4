"""``python -m torch_abi_audit``."""

from torch_abi_audit.cli import run

run()
