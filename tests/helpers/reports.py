"""Reports built by hand, for renderer tests that need shapes no fixture has: hostile names,
thousands of packages, allowed and ignored gate violations."""

from __future__ import annotations

from pathlib import Path

from torch_abi_audit.report import ExtensionReport, LibraryKind, PackageReport
from torch_abi_audit.rules.findings import Finding, Severity
from torch_abi_audit.rules.torch_abi import TorchAnalysis, UnstableReason, UnstableSymbol


def unstable_library(path: Path, symbols: list[str]) -> ExtensionReport:
    """A bundled library that imports ``symbols`` (shown as given) from libtorch."""
    details = tuple(
        UnstableSymbol(f"_ZN3c10{i}{name}", name, UnstableReason.NAMESPACE, "namespace c10")
        for i, name in enumerate(symbols)
    )
    torch = TorchAnalysis(
        uses_torch=True,
        stable=False,
        unstable_symbols=tuple(symbols),
        unstable_details=details,
    )
    return ExtensionReport(path, torch=torch, kind=LibraryKind.BUNDLED, format="elf")


def unstable_package(name: str, root: Path, libraries: dict[str, list[str]]) -> PackageReport:
    """An unstable package: library path inside ``root`` -> the symbols it imports, and one
    error finding."""
    libs = tuple(unstable_library(root / lib, symbols) for lib, symbols in libraries.items())
    finding = Finding(
        "torch-unpinned-unstable",
        Severity.ERROR,
        f"{name} uses libtorch internals but declares no torch requirement",
        {"unstable_libraries": list(libraries)},
    )
    return PackageReport(name=name, root=root, bundled_libs=libs, findings=(finding,))
