"""torch-abi-audit: does a compiled Python package keep to the PyTorch and CPython stable ABIs?

Reads the symbol tables of the libraries a package ships — without importing or running
anything — and reports, per library, whether it stays on the PyTorch Stable ABI (the
``aoti_torch_*`` / ``torch_*`` C shim, ``torch::stable``, ``torch::headeronly``) or reaches into
libtorch internals, and whether its extension modules keep to the CPython Stable ABI (abi3).

    >>> from torch_abi_audit import inspect_package
    >>> report = inspect_package("torchaudio")       # doctest: +SKIP
    >>> report.torch_verdict                          # doctest: +SKIP
    <TorchVerdict.STABLE: 'torch-stable'>
"""

from torch_abi_audit._version import __version__
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
