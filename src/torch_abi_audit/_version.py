"""The version of torch-abi-audit (read by the build backend)."""

__version__ = "0.4.0.dev0"
