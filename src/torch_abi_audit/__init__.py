"""torch-abi-audit: does a compiled Python package keep to the PyTorch and CPython stable ABIs?

Reads the symbol tables of the libraries a package ships — without importing or running
anything — and reports, per library, whether it stays on the PyTorch Stable ABI (the
``aoti_torch_*`` / ``torch_*`` C shim, ``torch::stable``, ``torch::headeronly``) or reaches into
libtorch internals, and whether its extension modules keep to the CPython Stable ABI (abi3).

    >>> from torch_abi_audit import inspect_package
    >>> report = inspect_package("torchaudio")       # doctest: +SKIP
    >>> report.torch_verdict                          # doctest: +SKIP
    <TorchVerdict.STABLE: 'torch-stable'>

The names below are loaded when first used (PEP 562): importing a submodule, as the command
line does, does not load the whole audit.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from torch_abi_audit._version import __version__

if TYPE_CHECKING:
    from torch_abi_audit.audit import (
        inspect_extension,
        inspect_package,
        inspect_site_packages,
        inspect_targets,
    )
    from torch_abi_audit.report import (
        CPythonLabel,
        CPythonVerdict,
        Distribution,
        EnvironmentReport,
        ExtensionReport,
        LibraryKind,
        PackageReport,
        Problem,
        TorchLabel,
        TorchVerdict,
    )
    from torch_abi_audit.rules.cpython_abi import CPythonAnalysis
    from torch_abi_audit.rules.torch_abi import TorchAnalysis, UnstableReason, UnstableSymbol

#: Public name -> the module that defines it.
_PUBLIC = {
    "inspect_extension": "torch_abi_audit.audit",
    "inspect_package": "torch_abi_audit.audit",
    "inspect_site_packages": "torch_abi_audit.audit",
    "inspect_targets": "torch_abi_audit.audit",
    "CPythonLabel": "torch_abi_audit.report",
    "CPythonVerdict": "torch_abi_audit.report",
    "Distribution": "torch_abi_audit.report",
    "EnvironmentReport": "torch_abi_audit.report",
    "ExtensionReport": "torch_abi_audit.report",
    "LibraryKind": "torch_abi_audit.report",
    "PackageReport": "torch_abi_audit.report",
    "Problem": "torch_abi_audit.report",
    "TorchLabel": "torch_abi_audit.report",
    "TorchVerdict": "torch_abi_audit.report",
    "CPythonAnalysis": "torch_abi_audit.rules.cpython_abi",
    "TorchAnalysis": "torch_abi_audit.rules.torch_abi",
    "UnstableReason": "torch_abi_audit.rules.torch_abi",
    "UnstableSymbol": "torch_abi_audit.rules.torch_abi",
}

__all__ = [
    "CPythonAnalysis",
    "CPythonLabel",
    "CPythonVerdict",
    "Distribution",
    "EnvironmentReport",
    "ExtensionReport",
    "LibraryKind",
    "PackageReport",
    "Problem",
    "TorchAnalysis",
    "TorchLabel",
    "TorchVerdict",
    "UnstableReason",
    "UnstableSymbol",
    "__version__",
    "inspect_extension",
    "inspect_package",
    "inspect_site_packages",
    "inspect_targets",
]


def __getattr__(name: str) -> Any:
    """Load a public name on first use (and keep it)."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
