"""``python -m torch_abi_audit``."""

from torch_abi_audit.cli import main

raise SystemExit(main())
