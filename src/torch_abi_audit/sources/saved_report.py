"""Reports saved by an earlier run (``--json``), read back as :class:`PackageReport` objects.

So that CI can compare a build with the report it stored for the last release
(``torch-abi-audit diff last-release.json dist/pkg.whl``), a saved report is a source like a
wheel or a directory: its package objects become reports with their libraries, torch and
CPython analyses and findings, as the run that wrote them saw them. Any ``schema_version``
``1.x`` is read; fields a version lacks take their defaults. Load predictions are not read back
(they belong to the torch they were made against).

A file that is not such a report raises :class:`SavedReportError` with the reason; nothing else
escapes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from torch_abi_audit.files import read_regular
from torch_abi_audit.report import (
    Distribution,
    ExtensionReport,
    LibraryKind,
    PackageReport,
    Problem,
    WheelReport,
)
from torch_abi_audit.rules.cpython_abi import CPythonAnalysis
from torch_abi_audit.rules.findings import Finding, Severity
from torch_abi_audit.rules.torch_abi import TorchAnalysis, UnstableReason, UnstableSymbol

#: Saved reports larger than this are refused (an environment report is ~10 MB).
MAX_BYTES = 256 * 1024 * 1024
_T = TypeVar("_T")


class SavedReportError(Exception):
    """The file is not a torch-abi-audit JSON report this version can read."""


def looks_like_saved_report(path: Path) -> bool:
    """True for a ``.json`` file (whether it is a report is for :func:`read_saved_report`)."""
    return path.suffix.lower() == ".json" and path.is_file()


def read_saved_report(path: Path) -> list[PackageReport]:
    """The packages of the report saved at ``path`` (one for a package document, every one
    for an environment document). Raises :class:`SavedReportError`."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise SavedReportError(f"{path}: {size} bytes, more than a report can be")
        document = json.loads(read_regular(path, MAX_BYTES))  # a FIFO is refused, not waited on
    except OSError as exc:
        raise SavedReportError(f"{path}: {exc.strerror or exc}") from exc
    except (ValueError, RecursionError) as exc:
        raise SavedReportError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(document, dict) or "schema_version" not in document:
        raise SavedReportError(f"{path}: not a torch-abi-audit report (no schema_version)")
    version = str(document["schema_version"])
    if not version.startswith("1."):
        raise SavedReportError(f"{path}: schema_version {version} is not one this version reads")
    objects = document.get("packages", [document])
    try:
        if not isinstance(objects, list):
            raise TypeError("packages is not a list")
        return [package_from_json(item) for item in objects]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SavedReportError(f"{path}: malformed report ({exc!r})") from exc


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return tuple(str(item) for item in value)


def _optional(value: Any) -> str | None:
    return None if value is None else str(value)


def _objects(value: Any, build: Callable[[dict[str, Any]], _T]) -> tuple[_T, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise TypeError("expected a list of objects")
    return tuple(build(item) for item in value)


def _torch(raw: dict[str, Any] | None) -> TorchAnalysis:
    if not raw:
        return TorchAnalysis()
    details = _objects(
        raw.get("unstable_details"),
        lambda u: UnstableSymbol(
            str(u["symbol"]),
            str(u["demangled"]),
            UnstableReason(u["reason"]),
            str(u["detail"]),
            _optional(u.get("library")),
        ),
    )
    return TorchAnalysis(
        uses_torch=bool(raw.get("uses_torch", False)),
        stable=bool(raw.get("stable", False)),
        unstable_symbols=_strings(raw.get("unstable_symbols")),
        stable_shim_count=int(raw.get("stable_shim_count", 0)),
        unstable_details=details,
        stable_shims=_strings(raw.get("stable_shims")),
        unknown_shims=_strings(raw.get("unknown_shims")),
        min_torch_version=_optional(raw.get("min_torch_version")),
        min_torch_symbols=_strings(raw.get("min_torch_symbols")),
        torch_libraries=_strings(raw.get("torch_libraries")),
        optional_shims=_strings(raw.get("optional_shims")),
        weak_imports=_strings(raw.get("weak_imports")),
    )


def _cpython(raw: dict[str, Any] | None) -> CPythonAnalysis:
    if not raw:
        return CPythonAnalysis()
    future = raw.get("future_symbols") or {}
    if not isinstance(future, dict):
        raise TypeError("future_symbols is not an object")
    return CPythonAnalysis(
        intent=bool(raw.get("intent", False)),
        compliant=bool(raw.get("compliant", False)),
        violations=_strings(raw.get("violations")),
        capi_symbol_count=int(raw.get("capi_symbol_count", 0)),
        python_library=_optional(raw.get("python_library")),
        python_version=_optional(raw.get("python_version")),
        computed=_optional(raw.get("computed")),
        abi3t=bool(raw.get("abi3t", False)),
        free_threaded=bool(raw.get("free_threaded", False)),
        baseline=_optional(raw.get("baseline")),
        baseline_source=_optional(raw.get("baseline_source")),
        future_symbols=tuple((str(k), str(v)) for k, v in future.items()),
    )


def _library(raw: dict[str, Any]) -> ExtensionReport:
    return ExtensionReport(
        path=Path(str(raw["path"])),
        cpython=_cpython(raw.get("cpython")),
        torch=_torch(raw.get("torch")),
        error=_optional(raw.get("error")),
        kind=LibraryKind(raw.get("kind", LibraryKind.BUNDLED)),
        skipped=_optional(raw.get("skipped")),
        format=_optional(raw.get("format")),
        machine=_optional(raw.get("machine")),
        needed=_strings(raw.get("needed")),
        soname=_optional(raw.get("soname")),
        runpath=_strings(raw.get("runpath")),
        rpath=_strings(raw.get("rpath")),
        entry_points=_strings(raw.get("entry_points")),
        min_os=_optional(raw.get("min_os")),
    )


def _finding(raw: dict[str, Any]) -> Finding:
    evidence = raw.get("evidence") or {}
    if not isinstance(evidence, dict):
        raise TypeError("evidence is not an object")
    return Finding(str(raw["code"]), Severity(raw["severity"]), str(raw["message"]), evidence)


def package_from_json(raw: dict[str, Any]) -> PackageReport:
    """One package object of a saved report as a :class:`PackageReport`.

    Raises ``KeyError``/``TypeError``/``ValueError`` for a malformed object (the callers turn
    them into :class:`SavedReportError`).
    """
    dist = raw.get("distribution")
    wheel = raw.get("wheel")
    libraries = [
        _library({**item, "kind": item.get("kind", "extension")})
        for item in raw.get("extensions", [])
    ]
    libraries += [
        _library({**item, "kind": item.get("kind", "bundled")})
        for item in raw.get("bundled_libs", [])
    ]
    return PackageReport(
        name=str(raw["name"]),
        root=Path(str(raw["root"])),
        extensions=tuple(lib for lib in libraries if lib.kind is LibraryKind.EXTENSION),
        bundled_libs=tuple(lib for lib in libraries if lib.kind is LibraryKind.BUNDLED),
        error=_optional(raw.get("error")),
        distribution=(
            Distribution(
                str(dist["name"]),
                str(dist["version"]),
                _strings(dist.get("requires_torch")),
                _strings(dist.get("tags")),
            )
            if dist
            else None
        ),
        problems=_objects(
            raw.get("problems"), lambda p: Problem(Path(str(p["path"])), str(p["reason"]))
        ),
        wheel=(
            WheelReport(Path(str(wheel["path"])), str(wheel["filename"]), _strings(wheel["tags"]))
            if wheel
            else None
        ),
        unavailable=_optional(raw.get("unavailable")),
        findings=_objects(raw.get("findings"), _finding),
    )
