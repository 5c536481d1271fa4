"""A small hand-built stable-ABI table (format 2), for rule tests that need exact releases.

Releases 2.9.0, 2.10.0, 2.12.0, 2.12.1, 2.13.0; shims ``old`` (baseline), ``gone`` (removed by
2.12.0), ``patch_gone`` (2.10.0, removed by 2.12.1), ``new`` (2.12.0), ``patch_new`` (2.12.1),
``newest`` (2.13.0) and ``dep`` (deprecated, replaced by ``old``).
"""

from __future__ import annotations

from typing import Any


def shim_entry(since: str, removed: str | None = None, **extra: Any) -> dict[str, Any]:
    """One shim's entry as the generator writes it (cpu, stable/c/shim.h, not deprecated)."""
    entry: dict[str, Any] = {
        "since": since,
        "removed": removed,
        "guard": None,
        "device": "cpu",
        "header": "torch/csrc/stable/c/shim.h",
        "exported_by": ["libtorch_cpu"],
        "deprecated": False,
    }
    entry.update(extra)
    return entry


SMALL: dict[str, Any] = {
    "format": 2,
    "generated_by": "hand",
    "generated_on": "2026-01-01",
    "baseline_version": "2.9.0",
    "releases": [{"version": v} for v in ("2.9.0", "2.10.0", "2.12.0", "2.12.1", "2.13.0")],
    "disagreements": [],
    "shims": {
        "old": shim_entry("2.9.0"),
        "gone": shim_entry("2.9.0", "2.12.0"),
        "patch_gone": shim_entry("2.10.0", "2.12.1"),
        "new": shim_entry("2.12.0", guard="2.12.0"),
        "patch_new": shim_entry("2.12.1"),
        "newest": shim_entry("2.13.0"),
        "dep": shim_entry(
            "2.9.0",
            deprecated=True,
            deprecation_message="dep is deprecated, use old",
            replacement="old",
        ),
    },
    "header_only": ["c10::Half"],
    "internal_c_symbols": {"THPVariableClass": "libtorch_python"},
    "internal_c_symbols_all_releases": {
        "THPVariableClass": "libtorch_python",
        "THPGone": "libtorch_python",
    },
}
