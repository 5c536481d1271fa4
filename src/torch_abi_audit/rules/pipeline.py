"""Every finding rule, listed once, and the one function that runs them on a package.

Each rule has the shape ``(PackageFacts, RuleContext) -> list[Finding]`` and emits only codes
declared in :mod:`torch_abi_audit.rules.registry`; findings come out in the order of
:data:`RULES`. Adding a rule is one line here.
"""

from __future__ import annotations

from torch_abi_audit.rules import (
    bundled_runtimes,
    manylinux,
    metadata_checks,
    python_findings,
    torch_findings,
)
from torch_abi_audit.rules.facts import PackageFacts, Rule, RuleContext
from torch_abi_audit.rules.findings import Finding

#: Every rule that yields findings, in the order their findings are listed.
RULES: tuple[Rule, ...] = (
    metadata_checks.invalid_requirement_findings,
    metadata_checks.torch_requirement_findings,
    metadata_checks.tag_findings,
    manylinux.manylinux_tag_findings,
    metadata_checks.macos_tag_findings,
    bundled_runtimes.bundled_libpython_findings,
    bundled_runtimes.bundled_runtime_findings,
    torch_findings.deprecated_shim_findings,
    python_findings.abi3_version_findings,
    python_findings.abi3t_findings,
    python_findings.free_threading_findings,
    python_findings.interpreter_findings,
    torch_findings.load_findings,
    torch_findings.target_version_findings,
    torch_findings.unstable_library_findings,
    python_findings.abi3_label_findings,
)


def package_findings(package: PackageFacts, context: RuleContext) -> tuple[Finding, ...]:
    """Every finding the rules make about ``package``."""
    return tuple(found for rule in RULES for found in rule(package, context))
