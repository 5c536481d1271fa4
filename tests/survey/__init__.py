"""Tests of torch_abi_audit.survey (a package, so that its conftest has a name of its own)."""
