"""Audit results as frozen dataclasses, with the documented verdict roll-ups.

``ExtensionReport`` (one library), ``PackageReport`` (one package or distribution) and
``EnvironmentReport`` (one site-packages) are the public result types of the Python API and the
input of every renderer. A package's verdicts roll up its libraries' (the worst one wins:
:data:`TORCH_SEVERITY` ranks the torch verdicts).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from torch_abi_audit.gate_report import AllowEntry, NothingAudited
from torch_abi_audit.python_model import is_torch_distribution
from torch_abi_audit.rules.cpython_abi import CPythonAnalysis, CPythonLabel, cpython_label_of
from torch_abi_audit.rules.torch_abi import TorchAnalysis, package_minimum_torch

if TYPE_CHECKING:  # annotations only: load prediction and porting advice load when used
    from torch_abi_audit.model import VersionNeed
    from torch_abi_audit.rules.bundled_runtimes import RuntimeCopy
    from torch_abi_audit.rules.findings import Finding
    from torch_abi_audit.rules.load_prediction import LoadPrediction, LoadStatus
    from torch_abi_audit.rules.migration import MigrationPlan


class LibraryKind(StrEnum):
    """Extension module (exports ``PyInit_*``), any other bundled shared library, or a program
    the package ships (``bin/…``, a wheel's ``.data/scripts/``)."""

    EXTENSION = "extension"
    BUNDLED = "bundled"
    EXECUTABLE = "executable"


class TorchLabel(StrEnum):
    """Per-library torch label, as printed in the table."""

    STABLE = "STABLE"
    UNSTABLE = "UNSTABLE"
    NO_TORCH = "NO-TORCH"
    ERROR = "ERROR"
    SKIPPED = "SKIPPED"


class TorchVerdict(StrEnum):
    """Package roll-up of the torch labels (worst case wins, see :data:`TORCH_SEVERITY`)."""

    NO_TORCH = "no-torch"
    STABLE = "torch-stable"
    UNSTABLE = "torch-unstable"
    ERROR = "error"


TORCH_SEVERITY = {
    TorchVerdict.NO_TORCH: 0,
    TorchVerdict.STABLE: 1,
    TorchVerdict.UNSTABLE: 2,
    TorchVerdict.ERROR: 3,
}


class CPythonVerdict(StrEnum):
    """Package roll-up of the CPython analysis of its extension modules."""

    ABI3_COMPLIANT = "abi3-compliant"
    NOT_ABI3 = "not-abi3"
    MIXED = "mixed"
    NO_EXTENSIONS = "no-extensions"


@dataclass(frozen=True)
class Problem:
    """Something under an audited path that could not be scanned (not a library error)."""

    path: Path
    reason: str


@dataclass(frozen=True)
class Distribution:
    """The installed (or wheel) distribution a package report covers.

    ``requires_torch`` are its ``Requires-Dist: torch`` entries as written; ``tags`` the wheel
    tags its ``WHEEL`` file records.
    """

    name: str
    version: str
    requires_torch: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class TorchReference:
    """The torch that loading is predicted against.

    ``label`` names it in messages (``torch 2.13.0+cpu``, ``torch 2.12``); ``version`` is its
    version when known; ``root`` the installation (``torch`` directory or wheel) whose exports
    were read, ``None`` for a release known only from the stable-ABI table; ``origin`` says
    where it came from: ``environment`` (the scanned site-packages), ``--torch`` or
    ``--torch-version``. For a release, ``variant`` is the build variant asked for (``cpu``,
    ``cu126``; ``None``: the index's default build) and ``cuda_major`` the CUDA major of that
    build on Linux x86_64 (``None``: no CUDA, or not known).
    """

    label: str
    version: str | None
    root: Path | None
    origin: str
    variant: str | None = None
    cuda_major: int | None = None


@dataclass(frozen=True)
class WheelReport:
    """The wheel a package report was read from: its path, file name and the tags it names.

    ``unverified_members`` are the library members whose size and CRC-32 were not checked:
    they were decompressed only as far as the audit needed (``--verify-archive`` reads every
    member to its end); ``verified`` is true when there are none.
    """

    path: Path
    filename: str
    tags: tuple[str, ...]
    unverified_members: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        """Every library member's size and CRC-32 were checked."""
        return not self.unverified_members


def torch_label_of(torch: TorchAnalysis) -> TorchLabel:
    """STABLE / UNSTABLE / NO-TORCH for an audited library (or slice)."""
    if not torch.uses_torch:
        return TorchLabel.NO_TORCH
    return TorchLabel.STABLE if torch.stable else TorchLabel.UNSTABLE


@dataclass(frozen=True)
class SliceReport:
    """One architecture of a universal (fat) Mach-O library, judged on its own.

    The library's own verdict is the worst across its slices (it is judged on the union of
    their imports); slices show where builds for different architectures differ.
    """

    machine: str
    min_os: str | None = None
    torch: TorchAnalysis = field(default_factory=TorchAnalysis)
    cpython: CPythonAnalysis = field(default_factory=CPythonAnalysis)

    @property
    def torch_label(self) -> TorchLabel:
        """STABLE / UNSTABLE / NO-TORCH for this slice."""
        return torch_label_of(self.torch)

    @property
    def cpython_label(self) -> CPythonLabel:
        """The CPython label for this slice."""
        return cpython_label_of(self.cpython)


@dataclass(frozen=True)
class ExtensionReport:
    """Everything learnt about one compiled library.

    ``error`` names why the file could not be audited; ``skipped`` names why it was listed but
    not audited (a binary format this release does not read). Either leaves the analyses at
    their empty defaults. ``min_os`` is the oldest OS release the binary declares (macOS), the
    newest across ``slices`` for a universal binary. ``load`` is the load prediction against
    the package's :class:`TorchReference`, when there is one and the library concerns torch.
    ``optional_needed`` are the needed libraries whose absence does not stop the load
    (weak-linked dylibs, delay-loaded DLLs). ``verified`` is, for a wheel member, whether its
    size and CRC-32 were checked (``False``: it was decompressed only as far as the audit
    needed); ``None`` for a file. ``runtime`` says when the file is a copy of libtorch or of a
    CUDA runtime library (:mod:`~torch_abi_audit.rules.bundled_runtimes`). ``version_needs``
    are the symbol versions an ELF file requires (``GLIBC_2.34`` from ``libc.so.6``…), each
    with one import that needs it. ``distribution_path`` is where the library lies inside its
    distribution (the wheel member name, or the path relative to site-packages:
    ``torchaudio/lib/libtorchaudio.so``, the same for a wheel and an installed copy), what
    findings, gate results and baseline entries name it by.
    """

    path: Path
    cpython: CPythonAnalysis = field(default_factory=CPythonAnalysis)
    torch: TorchAnalysis = field(default_factory=TorchAnalysis)
    error: str | None = None
    kind: LibraryKind = LibraryKind.BUNDLED
    skipped: str | None = None
    format: str | None = None
    machine: str | None = None
    needed: tuple[str, ...] = ()
    soname: str | None = None
    runpath: tuple[str, ...] = ()
    rpath: tuple[str, ...] = ()
    entry_points: tuple[str, ...] = ()
    min_os: str | None = None
    slices: tuple[SliceReport, ...] = ()
    load: LoadPrediction | None = None
    optional_needed: tuple[str, ...] = ()
    verified: bool | None = None
    runtime: RuntimeCopy | None = None
    version_needs: tuple[VersionNeed, ...] = ()
    distribution_path: str | None = None

    @property
    def torch_label(self) -> TorchLabel:
        """STABLE / UNSTABLE / NO-TORCH, or ERROR / SKIPPED when the file was not audited."""
        if self.error:
            return TorchLabel.ERROR
        if self.skipped:
            return TorchLabel.SKIPPED
        return torch_label_of(self.torch)

    @property
    def cpython_label(self) -> CPythonLabel:
        """The documented CPython row label (see :func:`cpython_label_of`)."""
        return cpython_label_of(self.cpython)


@dataclass(frozen=True)
class PackageReport:
    """One audited package: an installed distribution, a directory, or a single library.

    ``extensions`` are Python extension modules; ``bundled_libs`` every other shared library;
    ``executables`` the programs the package ships (ELF, Mach-O or PE executables, such as
    ``bin/`` tools linked to libtorch). All count for the torch verdict and load prediction;
    only extensions count for the CPython verdict.
    ``migration`` is the package's migration plan when one was asked for (``explain``).
    """

    name: str
    root: Path
    extensions: tuple[ExtensionReport, ...] = ()
    bundled_libs: tuple[ExtensionReport, ...] = ()
    error: str | None = None
    distribution: Distribution | None = None
    problems: tuple[Problem, ...] = ()
    wheel: WheelReport | None = None
    unavailable: str | None = None
    findings: tuple[Finding, ...] = ()
    torch_reference: TorchReference | None = None
    migration: MigrationPlan | None = None
    executables: tuple[ExtensionReport, ...] = ()

    @property
    def libraries(self) -> tuple[ExtensionReport, ...]:
        """Extensions, then bundled libraries, then executables: every binary audited."""
        return self.extensions + self.bundled_libs + self.executables

    def with_libraries(self, libraries: tuple[ExtensionReport, ...]) -> PackageReport:
        """This report with :attr:`libraries` replaced (same order), each back in its group."""
        groups = (len(self.extensions), len(self.bundled_libs))
        return replace(
            self,
            extensions=libraries[: groups[0]],
            bundled_libs=libraries[groups[0] : sum(groups)],
            executables=libraries[sum(groups) :],
        )

    @cached_property
    def _distribution_paths(self) -> dict[Path, str]:
        return {lib.path: lib.distribution_path for lib in self.libraries if lib.distribution_path}

    def library_name(self, path: Path) -> str:
        """How findings and gates name the library at ``path``: its path inside the
        distribution (``torchaudio/lib/libfoo.so``; for a wheel, the member's name); for a file
        the audit did not place in a distribution, its path relative to :attr:`root`, or its
        file name when it lies outside."""
        known = self._distribution_paths.get(path)
        if known is not None:
            return known
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.name

    def library_named(self, name: str) -> ExtensionReport | None:
        """The library that findings and gates call ``name`` (see :meth:`library_name`)."""
        return next((lib for lib in self.libraries if self.library_name(lib.path) == name), None)

    def finding_libraries(self, finding: Finding) -> tuple[ExtensionReport, ...]:
        """The libraries a finding is about (none for a finding about the package as a
        whole)."""
        named = set(finding.libraries)
        return tuple(lib for lib in self.libraries if self.library_name(lib.path) in named)

    @property
    def is_torch(self) -> bool:
        """True for torch itself (by its distribution name, else the package name): the
        implementation of the internals that the torch gate keeps others from using."""
        return is_torch_distribution(self.distribution.name if self.distribution else self.name)

    @property
    def has_error(self) -> bool:
        """True if the package, or any library in it, could not be audited."""
        return bool(self.error or self.problems) or any(lib.error for lib in self.libraries)

    @property
    def torch_verdict(self) -> TorchVerdict:
        """Worst case over every library: error > torch-unstable > torch-stable > no-torch."""
        if self.error or self.problems:
            return TorchVerdict.ERROR
        verdict = TorchVerdict.NO_TORCH
        for lib in self.libraries:
            if lib.error:
                current = TorchVerdict.ERROR
            elif lib.skipped or not lib.torch.uses_torch:
                continue
            else:
                current = TorchVerdict.STABLE if lib.torch.stable else TorchVerdict.UNSTABLE
            if TORCH_SEVERITY[current] > TORCH_SEVERITY[verdict]:
                verdict = current
        return verdict

    @property
    def cpython_verdict(self) -> CPythonVerdict:
        """``abi3-compliant`` when every extension module is ``abi3-ok`` (tagged and keeping to
        the stable ABI), ``not-abi3`` when none is, else ``mixed``; ``no-extensions`` without
        extension modules."""
        audited = [ext for ext in self.extensions if not ext.error and not ext.skipped]
        if not audited:
            return CPythonVerdict.NO_EXTENSIONS
        compliant = [ext.cpython_label is CPythonLabel.ABI3_OK for ext in audited]
        if all(compliant):
            return CPythonVerdict.ABI3_COMPLIANT
        if not any(compliant):
            return CPythonVerdict.NOT_ABI3
        return CPythonVerdict.MIXED

    @property
    def load_failures(self) -> tuple[ExtensionReport, ...]:
        """The libraries predicted not to load on the :attr:`torch_reference`."""
        return tuple(lib for lib in self.libraries if lib.load is not None and lib.load.fails)

    @property
    def load_status(self) -> LoadStatus | None:
        """``fails`` if any library is predicted not to load, ``unknown`` if the data cannot
        tell for some, ``loads`` if all that concern torch load; ``None`` without a
        prediction."""
        statuses = {lib.load.status for lib in self.libraries if lib.load is not None}
        if not statuses:
            return None
        from torch_abi_audit.rules.load_prediction import LoadStatus

        for status in (LoadStatus.FAILS, LoadStatus.UNKNOWN, LoadStatus.TIED, LoadStatus.LOADS):
            if status in statuses:
                return status
        return None

    @property
    def min_torch_version(self) -> str | None:
        """The oldest torch release every library can load on: the newest per-library floor.

        ``None`` unless the package is ``torch-stable``: an unstable package is tied to the
        release it was built against, whatever floor its shim imports suggest.
        """
        if self.torch_verdict is not TorchVerdict.STABLE:
            return None
        return package_minimum_torch(lib.torch for lib in self.libraries)


@dataclass(frozen=True)
class EnvironmentReport:
    """Every package found in one or more site-packages directories.

    ``site_packages`` is the first directory scanned (the documented field);
    ``search_paths`` lists all of them. ``torch_reference`` is the torch loading was predicted
    against, if any.
    """

    site_packages: Path
    packages: tuple[PackageReport, ...] = ()
    search_paths: tuple[Path, ...] = ()
    problems: tuple[Problem, ...] = ()
    torch_reference: TorchReference | None = None

    @property
    def has_error(self) -> bool:
        """True if any package, library or directory could not be audited."""
        return bool(self.problems) or any(p.has_error for p in self.packages)


class GateStatus(StrEnum):
    """What became of a gate violation: it fails the run, a baseline entry allows it, or its
    finding code is ignored. Allowed and ignored violations are shown, never hidden."""

    FAILED = "failed"
    ALLOWED = "allowed"
    IGNORED = "ignored"


@dataclass(frozen=True)
class GateResult:
    """One violation of one ``--check`` gate.

    ``gate`` is the elementary gate (``torch``, ``abi3``, ``metadata``, ``load``); ``package``
    the package's name and ``root`` its root (which tells apart two wheels of one package);
    ``library`` the library's path inside the package when the violation is a library's;
    ``code`` the finding code behind it; ``message`` the reason in words;
    ``justification`` why it is allowed or ignored, and ``allowed_by`` the baseline entry that
    allows it.
    """

    gate: str
    package: str
    status: GateStatus
    message: str
    library: str | None = None
    code: str | None = None
    justification: str | None = None
    root: Path | None = None
    allowed_by: AllowEntry | None = None

    def concerns(self, package: PackageReport) -> bool:
        """True if this violation is ``package``'s."""
        return self.package == package.name and self.root in (None, package.root)


@dataclass(frozen=True)
class AuditResult:
    """Everything one run of the audit command found: what every renderer renders.

    ``packages`` are the audited packages in order; ``environment`` is set when a whole
    environment was scanned (``--env``, ``--site-packages``, ``--python``; then ``packages`` are
    its packages). ``checks`` are the elementary gates that were asked for and
    ``gate_results`` every violation they found, with its status. The baseline entries that
    fail the gates themselves are ``stale`` (they match no current violation) and ``expired``;
    ``unchecked`` ones concern only gates not checked. ``nothing_audited`` are the requested
    targets that gave nothing to judge under ``--check`` (exit code 2).
    """

    packages: tuple[PackageReport, ...] = ()
    environment: EnvironmentReport | None = None
    checks: tuple[str, ...] = ()
    gate_results: tuple[GateResult, ...] = ()
    stale: tuple[AllowEntry, ...] = ()
    expired: tuple[AllowEntry, ...] = ()
    unchecked: tuple[AllowEntry, ...] = ()
    nothing_audited: tuple[NothingAudited, ...] = ()

    @classmethod
    def of_environment(
        cls,
        environment: EnvironmentReport,
        checks: tuple[str, ...] = (),
        gate_results: tuple[GateResult, ...] = (),
    ) -> AuditResult:
        """The result of an environment scan."""
        return cls(environment.packages, environment, checks, gate_results)

    @property
    def has_error(self) -> bool:
        """True if anything could not be audited (exit code 2)."""
        if self.environment is not None:
            return self.environment.has_error
        return any(p.has_error for p in self.packages)

    @property
    def failed(self) -> tuple[GateResult, ...]:
        """The gate violations that fail the run (exit code 1)."""
        return tuple(r for r in self.gate_results if r.status is GateStatus.FAILED)

    @property
    def gates_failed(self) -> bool:
        """True when a violation failed or a baseline entry is stale or expired (exit 1)."""
        return bool(self.failed or self.stale or self.expired)

    @property
    def gates_passed(self) -> bool:
        """True when gates were checked and passed on everything asked for: no failure, no
        stale or expired entry, no target that audited nothing or could not be read."""
        return bool(self.checks) and not (
            self.gates_failed or self.nothing_audited or self.has_error
        )

    @property
    def unaudited(self) -> tuple[NothingAudited, ...]:
        """The packages that could not be (wholly) read, with why: the gates cannot pass on
        them."""
        found = []
        for package in self.packages:
            if not package.has_error:
                continue
            broken = [lib for lib in package.libraries if lib.error]
            reason = package.error or (
                f"{len(broken)} of {len(package.libraries)} libraries could not be read"
                if broken
                else "; ".join(problem.reason for problem in package.problems)
            )
            found.append(NothingAudited(package.name, reason))
        if self.environment is not None:
            found += [NothingAudited(str(p.path), p.reason) for p in self.environment.problems]
        return tuple(found)

    @property
    def torch_reference(self) -> TorchReference | None:
        """The torch loading was predicted against (the same for every package of a run)."""
        if self.environment is not None:
            return self.environment.torch_reference
        return next((p.torch_reference for p in self.packages if p.torch_reference), None)


__all__ = [
    "TORCH_SEVERITY",
    "AuditResult",
    "CPythonLabel",
    "CPythonVerdict",
    "Distribution",
    "EnvironmentReport",
    "ExtensionReport",
    "GateResult",
    "GateStatus",
    "LibraryKind",
    "PackageReport",
    "Problem",
    "SliceReport",
    "TorchLabel",
    "TorchReference",
    "TorchVerdict",
    "WheelReport",
    "cpython_label_of",
    "torch_label_of",
]
