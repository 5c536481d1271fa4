"""The real-world expectations (``tests/fixtures/real_world.toml``): their model, how the data
file is read, and how a report is checked against one.

The data file's format is documented at its top. :func:`load_expectations` turns it into
:class:`Expectation` values, refusing unknown keys and values; :func:`check_report` lists every
way a :class:`~torch_abi_audit.PackageReport` falls short of one (an empty list: it holds).
"""

from __future__ import annotations

import tomllib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import Version

from torch_abi_audit import (
    CPythonLabel,
    ExtensionReport,
    PackageReport,
    TorchLabel,
    TorchVerdict,
)
from torch_abi_audit.rules.findings import Finding, Severity
from torch_abi_audit.rules.registry import FINDING_CODES
from torch_abi_audit.sources.index import expand_platform

EXPECTATIONS_FILE = Path(__file__).resolve().parent.parent / "fixtures" / "real_world.toml"
#: How many unstable symbols a failure message quotes.
QUOTED_SYMBOLS = 5


class Source(StrEnum):
    """Where the audited files come from."""

    WHEEL = "wheel"  # downloaded (or cached) wheel, audited in place
    INSTALLED_TORCH = "installed-torch"  # the torch package directory found on this machine


@dataclass(frozen=True)
class LibraryCheck:
    """What must hold for the libraries whose relative path matches ``pattern``.

    ``pattern`` is an :func:`fnmatch.fnmatchcase` glob over the POSIX path relative to the
    report's root (the member path inside the wheel, or the path under the torch package
    directory). At least one
    library must match. Every match must carry ``label`` (``None``: only require presence),
    import at least ``min_unstable`` unstable symbols and at least ``min_shims`` stable shims.
    ``torch_libraries`` must all be among the libtorch libraries it links (by file name, such
    as ``torch_cpu.dll``), and every unstable import the format binds to a library must be
    bound to one of them. ``cpython`` (if set) is its CPython label, ``python_library`` (if
    set) the Python library it links, and ``slices`` (if set) the architectures of its universal
    binary, in file order.
    """

    pattern: str
    label: TorchLabel | None = None
    min_unstable: int = 0
    min_shims: int = 0
    torch_libraries: tuple[str, ...] = ()
    cpython: CPythonLabel | None = None
    python_library: str | None = None
    slices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class FindingCheck:
    """A packaging-metadata finding the report must carry.

    ``code`` is the finding's code; ``severity`` (if set) its severity. Every ``(key, value)``
    in ``evidence`` must hold of the finding's evidence: ``evidence[key]`` equals ``value`` when
    it is a string, and includes it when it is a list.
    """

    code: str
    severity: Severity | None = None
    evidence: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class LoadCheck:
    """Predict loading on a torch and check the outcome.

    The torch is the wheel of release ``torch_wheel`` for ``torch_platforms`` (fetched like
    the audited wheels, read in place), the installed torch (``installed``), or a release of
    the stable-ABI table (``release``). ``loads`` is whether the package is predicted to load;
    ``message`` (if set) a text the first failing library's message must contain; ``missing``
    shims that must be among the symbols some failing library misses; ``weak`` imports some
    library misses without failing (weak references), which must never be among the symbols
    that fail a load; ``failed_dependencies`` ``(library, library it needs)`` path pairs: the
    first fails (also) because the second, of the same package, does not load.
    """

    loads: bool
    torch_wheel: str | None = None
    torch_platforms: tuple[str, ...] = ()
    installed: bool = False
    release: str | None = None
    message: str | None = None
    missing: tuple[str, ...] = ()
    weak: tuple[str, ...] = ()
    failed_dependencies: tuple[tuple[str, str], ...] = ()

    @property
    def against(self) -> str:
        """``torch 2.9.1`` / ``installed torch``: what loading is predicted against."""
        if self.installed:
            return "installed torch"
        return f"torch {self.torch_wheel or self.release}"


@dataclass(frozen=True)
class Expectation:
    """The verdicts and findings expected for one release of one distribution on one platform.

    ``library_count`` (if set) is the exact number of libraries in the report;
    ``forbidden_labels`` are labels that no library may carry; ``min_torch`` (if set) is the
    package's expected torch floor. ``findings`` are exactly the findings the report carries
    (compared by code, order-insensitive; empty means none). ``requires_torch`` (if set) is the
    exact ``Requires-Dist: torch`` entries the distribution metadata declares. ``platforms`` and
    ``python_version`` are passed to ``pip download`` for wheels (whose tags must name one of
    those platforms); the first platform names the expectation in the output.
    """

    name: str
    version: str
    verdict: TorchVerdict
    libraries: tuple[LibraryCheck, ...] = ()
    library_count: int | None = None
    forbidden_labels: tuple[TorchLabel, ...] = ()
    min_torch: str | None = None
    findings: tuple[FindingCheck, ...] = ()
    requires_torch: tuple[str, ...] | None = None
    source: Source = Source.WHEEL
    platforms: tuple[str, ...] = ("manylinux_2_28_x86_64",)
    python_version: str = "3.11"
    load: LoadCheck | None = None

    @property
    def test_id(self) -> str:
        """``name-version-platform``, and the torch loading is predicted against:
        ``torchaudio-2.11.0-macosx_11_0_arm64-on-torch-2.9.1``."""
        where = "installed" if self.source is Source.INSTALLED_TORCH else self.platforms[0]
        against = f"-on-{self.load.against.replace(' ', '-')}" if self.load else ""
        return f"{self.name}-{self.version}-{where}{against}"


# -- checking ----------------------------------------------------------------------------------


def relative_name(library: ExtensionReport, root: Path) -> str:
    """``library``'s path relative to ``root`` in POSIX form (the absolute path if outside).

    For a wheel, ``root`` is the wheel file and the result the member path inside it.
    """
    try:
        return library.path.relative_to(root).as_posix()
    except ValueError:
        return library.path.as_posix()


def _codes(codes: Iterable[str]) -> str:
    return ", ".join(sorted(codes)) or "none"


def _quote(symbols: Sequence[str]) -> str:
    shown = "; ".join(symbols[:QUOTED_SYMBOLS])
    more = len(symbols) - QUOTED_SYMBOLS
    return shown + (f"; ... {more} more" if more > 0 else "")


def _describe(name: str, library: ExtensionReport) -> str:
    """One library's label with why it is not what was expected."""
    label = library.torch_label
    text = f"{name} is {label}"
    if library.error:
        text += f" ({library.error})"
    elif library.skipped:
        text += f" ({library.skipped})"
    elif label is TorchLabel.UNSTABLE:
        symbols = library.torch.unstable_symbols
        text += f" ({len(symbols)} unstable symbols: {_quote(symbols)})"
    return text


def _check_library(
    check: LibraryCheck, matches: Sequence[tuple[str, ExtensionReport]]
) -> Iterator[str]:
    if not matches:
        yield f"no library matches {check.pattern}"
        return
    for name, library in matches:
        if check.label is not None and library.torch_label is not check.label:
            yield f"expected {check.label}: " + _describe(name, library)
        unstable = len(library.torch.unstable_symbols)
        if unstable < check.min_unstable:
            yield f"{name}: {unstable} unstable symbols, expected at least {check.min_unstable}"
        shims = library.torch.stable_shim_count
        if shims < check.min_shims:
            yield f"{name}: {shims} stable shim imports, expected at least {check.min_shims}"
        yield from _check_linking(check, name, library)


def _file_name(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def _check_linking(check: LibraryCheck, name: str, library: ExtensionReport) -> Iterator[str]:
    """Torch libraries, Python library and slices of one library."""
    linked = [_file_name(n) for n in library.torch.torch_libraries]
    missing = [n for n in check.torch_libraries if n not in linked]
    if missing:
        yield f"{name}: links {', '.join(linked) or 'no torch library'}, expected {missing}"
    if check.torch_libraries:
        stray = {
            _file_name(u.library)
            for u in library.torch.unstable_details
            if u.library and _file_name(u.library) not in check.torch_libraries
        }
        if stray:
            yield f"{name}: unstable imports bound to {', '.join(sorted(stray))}"
    if check.cpython is not None and library.cpython_label is not check.cpython:
        yield f"{name}: CPython label {library.cpython_label}, expected {check.cpython}"
    if check.python_library is not None and library.cpython.python_library != check.python_library:
        yield (
            f"{name}: links Python library {library.cpython.python_library}, "
            f"expected {check.python_library}"
        )
    if check.slices is not None:
        machines = tuple(part.machine for part in library.slices)
        if machines != check.slices:
            yield f"{name}: slices {machines or 'none (thin)'}, expected {check.slices}"


def _evidence_holds(actual: str | list[str] | None, wanted: str) -> bool:
    return wanted in actual if isinstance(actual, list) else actual == wanted


def _restates_verdict(code: str) -> bool:
    declared = FINDING_CODES.get(code)
    return declared is not None and declared.restates_verdict


def _check_findings(expectation: Expectation, findings: Sequence[Finding]) -> Iterator[str]:
    """The findings must have exactly the expected codes, and each its severity and evidence.

    Findings that restate a verdict (``torch-unstable`` and the like: the verdicts are checked
    on their own) are left out, as the table leaves them out.
    """
    findings = [f for f in findings if not _restates_verdict(f.code)]
    expected = Counter(check.code for check in expectation.findings)
    got = Counter(finding.code for finding in findings)
    if got != expected:
        unexpected = [f"{f.code}: {f.message}" for f in findings if f.code not in expected]
        detail = f" (unexpected: {'; '.join(unexpected)})" if unexpected else ""
        yield (
            f"findings: expected {_codes(expected.elements())}, "
            f"got {_codes(got.elements())}{detail}"
        )
    for check in expectation.findings:
        for finding in (f for f in findings if f.code == check.code):
            if check.severity is not None and finding.severity is not check.severity:
                yield (
                    f"finding {check.code}: severity {finding.severity}, expected {check.severity}"
                )
            for key, wanted in check.evidence:
                actual = finding.evidence.get(key)
                if not _evidence_holds(actual, wanted):
                    how = "to include" if isinstance(actual, list) else "to be"
                    yield (
                        f"finding {check.code}: evidence {key} is {actual!r}, "
                        f"expected {how} {wanted!r}"
                    )


def _check_wheel(expectation: Expectation, report: PackageReport) -> Iterator[str]:
    """A wheel report must name its wheel, tags for the target platform and its metadata."""
    if report.wheel is None:
        yield "not read as a wheel: the report names no wheel"
    elif not report.wheel.tags:
        yield f"{report.wheel.filename}: no wheel tags read"
    else:
        platforms = {tag for p in expectation.platforms for tag in expand_platform(p)}
        found = {tag.rpartition("-")[2] for tag in report.wheel.tags}
        if not found & platforms:
            yield (
                f"{report.wheel.filename}: wheel tags {', '.join(report.wheel.tags)} name no "
                f"{' or '.join(expectation.platforms)} platform"
            )
    dist = report.distribution
    if dist is None:
        yield "no distribution metadata read"
    elif canonicalize_name(dist.name) != canonicalize_name(expectation.name) or Version(
        dist.version
    ) != Version(expectation.version):
        yield (
            f"metadata names {dist.name} {dist.version}, "
            f"expected {expectation.name} {expectation.version}"
        )


def check_report(expectation: Expectation, report: PackageReport) -> list[str]:
    """Every way ``report`` falls short of ``expectation``.

    Library paths are matched relative to ``report.root`` (for a wheel, the member paths inside
    it). An empty list means the expectation holds.
    """
    failures: list[str] = []
    if report.error:
        failures.append(f"package error: {report.error}")
    failures += [f"cannot scan {p.path}: {p.reason}" for p in report.problems]
    if expectation.source is Source.WHEEL:
        failures += _check_wheel(expectation, report)
    named = [(relative_name(lib, report.root), lib) for lib in report.libraries]
    if report.torch_verdict is not expectation.verdict:
        culprits = [
            _describe(name, lib)
            for name, lib in named
            if lib.torch_label in (TorchLabel.UNSTABLE, TorchLabel.ERROR)
        ]
        detail = f" ({'; '.join(culprits)})" if culprits else ""
        failures.append(
            f"verdict: expected {expectation.verdict}, got {report.torch_verdict}{detail}"
        )
    if expectation.min_torch is not None:
        got = report.min_torch_version
        if got is None or Version(got) != Version(expectation.min_torch):
            failures.append(f"min torch: expected {expectation.min_torch}, got {got}")
    if expectation.library_count is not None and len(named) != expectation.library_count:
        listing = ", ".join(name for name, _ in named) or "none"
        failures.append(
            f"expected {expectation.library_count} libraries, found {len(named)}: {listing}"
        )
    for check in expectation.libraries:
        matches = [(name, lib) for name, lib in named if fnmatchcase(name, check.pattern)]
        failures += _check_library(check, matches)
    for name, lib in named:
        if lib.torch_label in expectation.forbidden_labels:
            failures.append("no library may be " + _describe(name, lib))
    if expectation.requires_torch is not None:
        declared = report.distribution.requires_torch if report.distribution else None
        if declared != expectation.requires_torch:
            failures.append(
                f"requires torch: expected {expectation.requires_torch}, got {declared}"
            )
    failures += _check_findings(expectation, report.findings)
    if expectation.load is not None:
        failures += _check_load(expectation.load, report)
    return failures


def _check_load(check: LoadCheck, report: PackageReport) -> Iterator[str]:
    """The load prediction must say what ``check`` expects."""
    if report.torch_reference is None or report.load_status is None:
        yield "no load prediction was made"
        return
    failing = report.load_failures
    if check.loads and failing:
        yield f"expected to load on {report.torch_reference.label}: {_load_messages(failing)}"
    if not check.loads and not failing:
        yield f"expected not to load on {report.torch_reference.label}, but every library loads"
    if check.message and failing:
        first = failing[0].load
        assert first is not None
        if check.message not in first.message:
            yield f"load message {first.message!r} does not contain {check.message!r}"
    missed = {s for lib in failing if lib.load for s in lib.load.undefined_symbols}
    absent = [name for name in check.missing if name not in missed]
    if absent:
        yield f"expected missing symbols not reported: {', '.join(absent)}"
    yield from _check_weak_and_chains(check, report)


def _check_weak_and_chains(check: LoadCheck, report: PackageReport) -> Iterator[str]:
    loads = [lib.load for lib in report.libraries if lib.load is not None]
    weak = {s for load in loads for s in load.weak_undefined_symbols}
    failing_on = {s for load in loads for s in load.undefined_symbols}
    for name in check.weak:
        if name not in weak:
            yield f"expected weak import {name} to be missing without failing the load"
        if name in failing_on:
            yield f"weak import {name} is reported as failing a load"
    by_path = {relative_name(lib, report.root): lib.load for lib in report.libraries}
    for library, needed in check.failed_dependencies:
        load = by_path.get(library)
        if load is None or needed not in load.failed_dependencies:
            got = load.failed_dependencies if load else "no prediction"
            yield f"{library}: expected to fail through {needed}, got {got}"


def _load_messages(libraries: Sequence[ExtensionReport]) -> str:
    return "; ".join(
        f"{lib.path.name}: {lib.load.message}" for lib in libraries[:QUOTED_SYMBOLS] if lib.load
    )


# -- the data file -------------------------------------------------------------------------------


class ExpectationError(ValueError):
    """The data file says something this module does not understand (the message says where)."""


def _build(kind: type[Any], raw: Mapping[str, Any], where: str, **converted: Any) -> Any:
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ExpectationError(f"{where}: unknown key(s) {', '.join(unknown)}")
    values = {**raw, **converted}
    try:
        return kind(**values)
    except (TypeError, ValueError) as exc:
        raise ExpectationError(f"{where}: {exc}") from exc


def _tuple(raw: Mapping[str, Any], key: str) -> dict[str, tuple[Any, ...]]:
    return {key: tuple(raw[key])} if key in raw else {}


def _library(raw: Mapping[str, Any], where: str) -> LibraryCheck:
    converted: dict[str, Any] = {}
    if "label" in raw:
        converted["label"] = TorchLabel(raw["label"])
    if "cpython" in raw:
        converted["cpython"] = CPythonLabel(raw["cpython"])
    converted |= _tuple(raw, "torch_libraries") | _tuple(raw, "slices")
    check: LibraryCheck = _build(LibraryCheck, raw, where, **converted)
    return check


def _finding(raw: Mapping[str, Any], where: str) -> FindingCheck:
    converted: dict[str, Any] = {"evidence": tuple(raw.get("evidence", {}).items())}
    if "severity" in raw:
        converted["severity"] = Severity(raw["severity"])
    check: FindingCheck = _build(FindingCheck, raw, where, **converted)
    return check


def _expectation(raw: Mapping[str, Any], where: str) -> Expectation:
    where = f"{where} ({raw.get('name')} {raw.get('version')})"
    try:
        return _expectation_at(dict(raw), where)
    except ExpectationError:
        raise
    except (TypeError, ValueError, AttributeError) as exc:  # a bad enum value, a non-list...
        raise ExpectationError(f"{where}: {exc}") from exc


def _expectation_at(raw: dict[str, Any], where: str) -> Expectation:
    libraries = raw.pop("library", [])
    converted: dict[str, Any] = {
        "verdict": TorchVerdict(str(raw.get("verdict"))),
        "libraries": tuple(_library(lib, f"{where}, library") for lib in libraries),
        "findings": tuple(_finding(f, f"{where}, finding") for f in raw.get("findings", [])),
        "forbidden_labels": tuple(TorchLabel(label) for label in raw.get("forbidden_labels", [])),
        "source": Source(raw.get("source", Source.WHEEL)),
    }
    converted |= _tuple(raw, "platforms") | _tuple(raw, "requires_torch")
    if "load" in raw:
        load = dict(raw["load"])
        load |= _tuple(load, "torch_platforms") | _tuple(load, "missing") | _tuple(load, "weak")
        if "failed_dependencies" in load:
            load["failed_dependencies"] = tuple(tuple(pair) for pair in load["failed_dependencies"])
        converted["load"] = _build(LoadCheck, load, f"{where}, load")
    expectation: Expectation = _build(Expectation, raw, where, **converted)
    return expectation


def load_expectations(path: Path = EXPECTATIONS_FILE) -> list[Expectation]:
    """Every expectation of the data file at ``path``, in file order.

    Raises :class:`ExpectationError` for unknown keys or values, and ``tomllib.TOMLDecodeError``
    for a file that is not TOML.
    """
    with path.open("rb") as handle:
        document = tomllib.load(handle)
    unknown = sorted(set(document) - {"expectation"})
    if unknown:
        raise ExpectationError(f"{path.name}: unknown top-level key(s) {', '.join(unknown)}")
    return [
        _expectation(raw, f"{path.name}: expectation {index + 1}")
        for index, raw in enumerate(document.get("expectation", []))
    ]
