#!/usr/bin/env python3
"""Audit real PyTorch extension wheels and assert the verdicts we expect (run in CI).

Each wheel named in :data:`EXPECTATIONS` is downloaded with the ordinary pip client (or taken
from the cache), unpacked into a temporary directory and audited with the Python API
(:func:`torch_abi_audit.inspect_package` over the unpacked wheel root, so vendored ``<name>.libs``
directories are covered too). When an installed torch is found (without importing it), its
package directory is audited as well. Nothing audited is ever imported.

    python scripts/check_real_world.py                     # every expectation
    python scripts/check_real_world.py --only torchcodec   # a subset (repeatable; NAME[==VERSION])
    python scripts/check_real_world.py -v                  # also print one row per library

The wheel cache is ``--cache DIR``, else ``$TORCH_ABI_AUDIT_CACHE/wheels``, else
``~/.cache/torch-abi-audit/wheels``; a wheel already there is not downloaded again. The installed
torch is looked for in ``$TORCH_ABI_AUDIT_TORCH_DIR`` (a ``torch`` package directory, or a
directory holding one) if set, else in this interpreter's site-packages. Without a torch the
torch check is skipped, which is not a failure.

Every failed expectation is collected and listed; the exit status is 1 if there was any.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath, PureWindowsPath

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

REPO = Path(__file__).resolve().parent.parent
# Like the other scripts, runnable from a checkout without installing the package first.
sys.path.insert(0, str(REPO / "src"))

from torch_abi_audit import (  # noqa: E402
    ExtensionReport,
    PackageReport,
    TorchLabel,
    TorchVerdict,
    inspect_package,
)

CACHE_ENV = "TORCH_ABI_AUDIT_CACHE"
TORCH_DIR_ENV = "TORCH_ABI_AUDIT_TORCH_DIR"
#: How many unstable symbols a failure message quotes.
QUOTED_SYMBOLS = 5


class Source(StrEnum):
    """Where the audited files come from."""

    WHEEL = "wheel"  # downloaded (or cached) wheel, unpacked to a temporary directory
    INSTALLED_TORCH = "installed-torch"  # the torch package directory found on this machine


@dataclass(frozen=True)
class LibraryCheck:
    """What must hold for the libraries whose relative path matches ``pattern``.

    ``pattern`` is an :func:`fnmatch.fnmatchcase` glob over the POSIX path relative to the
    audited root (the unpacked wheel root, or the torch package directory). At least one
    library must match. Every match must carry ``label`` (``None``: only require presence),
    import at least ``min_unstable`` unstable symbols and at least ``min_shims`` stable shims.
    """

    pattern: str
    label: TorchLabel | None = None
    min_unstable: int = 0
    min_shims: int = 0


@dataclass(frozen=True)
class Expectation:
    """The verdicts expected for one release of one distribution on one platform.

    ``library_count`` (if set) is the exact number of libraries in the report;
    ``forbidden_labels`` are labels that no library may carry; ``min_torch`` (if set) is the
    package's expected torch floor. ``platforms`` and ``python_version`` are passed to
    ``pip download`` for wheels; the first platform names the expectation in the output.
    """

    name: str
    version: str
    verdict: TorchVerdict
    libraries: tuple[LibraryCheck, ...] = ()
    library_count: int | None = None
    forbidden_labels: tuple[TorchLabel, ...] = ()
    min_torch: str | None = None
    source: Source = Source.WHEEL
    platforms: tuple[str, ...] = ("manylinux_2_28_x86_64",)
    python_version: str = "3.11"

    @property
    def title(self) -> str:
        """Short display name: ``name version`` plus the platform for wheels."""
        where = "installed" if self.source is Source.INSTALLED_TORCH else self.platforms[0]
        return f"{self.name} {self.version} ({where})"

    @property
    def expected(self) -> str:
        """The expected verdict (and torch floor) as shown in the summary table."""
        return self.verdict + (f" >={self.min_torch}" if self.min_torch else "")


STABLE = TorchLabel.STABLE
UNSTABLE = TorchLabel.UNSTABLE

EXPECTATIONS: list[Expectation] = [
    # torchaudio 2.9 links against libtorch internals (at::Tensor, c10::...) and a few shims.
    Expectation(
        "torchaudio",
        "2.9.1",
        TorchVerdict.UNSTABLE,
        libraries=(
            LibraryCheck(
                "torchaudio/lib/libtorchaudio.so", UNSTABLE, min_unstable=100, min_shims=1
            ),
        ),
    ),
    # torchaudio 2.11 was ported to the stable ABI: abi3 libraries on shims only.
    Expectation(
        "torchaudio",
        "2.11.0",
        TorchVerdict.STABLE,
        libraries=(
            LibraryCheck("torchaudio/lib/_torchaudio.abi3.so", STABLE),
            LibraryCheck("torchaudio/lib/libtorchaudio.abi3.so", STABLE),
            LibraryCheck("torchaudio/lib/torchaudio_prefixctc.abi3.so", STABLE),
        ),
        library_count=3,
        forbidden_labels=(UNSTABLE,),
        min_torch="2.11.0",
    ),
    Expectation(
        "torchcodec",
        "0.8.1",
        TorchVerdict.UNSTABLE,
        libraries=(LibraryCheck("torchcodec/libtorchcodec_core*.so", UNSTABLE),),
    ),
    Expectation(
        "torchcodec",
        "0.17.0",
        TorchVerdict.STABLE,
        libraries=(
            LibraryCheck("torchcodec/libtorchcodec_core*.so", STABLE),
            LibraryCheck("torchcodec/libtorchcodec_custom_ops*.so", STABLE),
        ),
        forbidden_labels=(UNSTABLE,),
        min_torch="2.11.0",
    ),
    # The wheel is cp310-abi3, which `--python-version 3.11` matches.
    Expectation(
        "torchao",
        "0.18.0",
        TorchVerdict.STABLE,
        libraries=(
            LibraryCheck("torchao/_C_cutlass_90a.abi3.so", STABLE),
            LibraryCheck("torchao/_C_mxfp8.cpython-310-x86_64-linux-gnu.so", STABLE),
        ),
        min_torch="2.11.0",
    ),
    # torch itself: libtorch_cpu uses its own internals; vendored libgomp must be seen.
    Expectation(
        "torch",
        "2.13.0",
        TorchVerdict.UNSTABLE,
        libraries=(
            LibraryCheck("lib/libtorch_cpu.so", UNSTABLE),
            LibraryCheck("lib/libgomp.so.1"),
        ),
        source=Source.INSTALLED_TORCH,
    ),
]


# -- checking ----------------------------------------------------------------------------------


def relative_name(library: ExtensionReport, root: Path) -> str:
    """``library``'s path relative to ``root`` in POSIX form (the absolute path if outside)."""
    try:
        return library.path.relative_to(root).as_posix()
    except ValueError:
        return library.path.as_posix()


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


def check_report(expectation: Expectation, report: PackageReport, root: Path) -> list[str]:
    """Every way ``report`` (of files under ``root``) falls short of ``expectation``.

    An empty list means the expectation holds.
    """
    failures: list[str] = []
    if report.error:
        failures.append(f"package error: {report.error}")
    failures += [f"cannot scan {p.path}: {p.reason}" for p in report.problems]
    named = [(relative_name(lib, root), lib) for lib in report.libraries]
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
    return failures


# -- wheels ------------------------------------------------------------------------------------


class WheelError(Exception):
    """A wheel could not be obtained or unpacked."""


_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_(\w+)")
_LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}


def expand_platform(platform: str) -> list[str]:
    """The platform tags a target platform accepts, as pip expands them.

    ``manylinux_2_28_x86_64`` also accepts every older ``manylinux_2_*`` tag (and the legacy
    ``manylinux2014``/``2010``/``1`` aliases); other platforms accept only themselves.
    """
    match = _MANYLINUX.fullmatch(platform)
    if match is None:
        return [platform]
    major, minor, arch = int(match[1]), int(match[2]), match[3]
    expanded: list[str] = []
    for glibc_minor in range(minor, -1, -1):
        expanded.append(f"manylinux_{major}_{glibc_minor}_{arch}")
        legacy = _LEGACY_MANYLINUX.get((major, glibc_minor))
        if legacy:
            expanded.append(f"{legacy}_{arch}")
    return expanded


def target_tags(expectation: Expectation) -> frozenset[Tag]:
    """Every wheel tag pip would accept for the expectation's Python version and platforms."""
    python = tuple(int(part) for part in expectation.python_version.split("."))
    platforms = [tag for p in expectation.platforms for tag in expand_platform(p)]
    return frozenset(cpython_tags(python, platforms=platforms)) | frozenset(
        compatible_tags(python, platforms=platforms)
    )


def find_cached_wheel(cache: Path, expectation: Expectation) -> Path | None:
    """A wheel in ``cache`` with the expectation's name and version and a matching tag."""
    if not cache.is_dir():
        return None
    name = canonicalize_name(expectation.name)
    version = Version(expectation.version)
    accepted = target_tags(expectation)
    for candidate in sorted(cache.glob("*.whl")):
        try:
            wheel_name, wheel_version, _, tags = parse_wheel_filename(candidate.name)
        except (InvalidWheelFilename, InvalidVersion):
            continue
        if wheel_name == name and wheel_version == version and tags & accepted:
            return candidate
    return None


def download_wheel(cache: Path, expectation: Expectation) -> Path:
    """The expectation's wheel from ``cache``, downloading it with pip when it is not there."""
    cached = find_cached_wheel(cache, expectation)
    if cached is not None:
        return cached
    cache.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
    for platform in expectation.platforms:
        command += ["--platform", platform]
    command += ["--python-version", expectation.python_version, "-d", str(cache)]
    command.append(f"{expectation.name}=={expectation.version}")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip().splitlines()
        tail = " | ".join(output[-3:]) if output else "no output"
        raise WheelError(f"pip download failed (exit {result.returncode}): {tail}")
    downloaded = find_cached_wheel(cache, expectation)
    if downloaded is None:
        raise WheelError(f"pip download succeeded but no matching wheel is in {cache}")
    return downloaded


def _unsafe(member: str) -> bool:
    if member.startswith(("/", "\\")) or PureWindowsPath(member).drive:
        return True
    return ".." in PurePosixPath(member.replace("\\", "/")).parts


def unpack_wheel(wheel: Path, destination: Path) -> None:
    """Extract ``wheel`` into ``destination``, refusing absolute or ``..`` member paths."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = archive.namelist()
            unsafe = [m for m in members if _unsafe(m)]
            if unsafe:
                raise WheelError(f"{wheel.name}: unsafe member paths: {', '.join(unsafe[:3])}")
            archive.extractall(destination, members)
    except (OSError, zipfile.BadZipFile) as exc:
        raise WheelError(f"{wheel.name}: cannot unpack: {exc}") from exc


# -- installed torch ---------------------------------------------------------------------------


def _torch_package(directory: Path) -> Path | None:
    for candidate in (directory, directory / "torch"):
        if candidate.name == "torch" and (candidate / "version.py").is_file():
            return candidate
    return None


def find_torch_dir() -> tuple[Path | None, str]:
    """The installed torch package directory, found without importing torch.

    Returns the directory (or ``None``) and where it was looked for.
    """
    configured = os.environ.get(TORCH_DIR_ENV)
    if configured:
        return _torch_package(Path(configured)), f"${TORCH_DIR_ENV}={configured}"
    paths = sysconfig.get_paths()
    sites = list(dict.fromkeys(Path(paths[key]) for key in ("purelib", "platlib")))
    for site in sites:
        found = _torch_package(site)
        if found is not None:
            return found, str(site)
    return None, ", ".join(str(site) for site in sites)


def torch_version(torch_dir: Path) -> str | None:
    """``__version__`` from ``torch/version.py``, read as text."""
    text = (torch_dir / "version.py").read_text(encoding="utf-8", errors="replace")
    match = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
    return match[1] if match else None


# -- running -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What happened to one expectation."""

    expectation: Expectation
    got: str = ""
    failures: list[str] = field(default_factory=list)
    skipped: str | None = None
    seconds: float = 0.0
    rows: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``OK``, ``FAIL`` or ``SKIP``."""
        if self.failures:
            return "FAIL"
        return "SKIP" if self.skipped else "OK"


def library_rows(report: PackageReport, root: Path) -> list[str]:
    """One line per library for ``-v``: label, shims, unstable symbols, torch floor, path."""
    rows = []
    for lib in sorted(report.libraries, key=lambda lib: relative_name(lib, root)):
        floor = lib.torch.min_torch_version or "-"
        rows.append(
            f"{lib.torch_label:<9} shims={lib.torch.stable_shim_count:<4} "
            f"unstable={len(lib.torch.unstable_symbols):<5} min={floor:<7} "
            f"{relative_name(lib, root)}"
        )
    return rows


def _judge(outcome: Outcome, report: PackageReport, root: Path) -> None:
    outcome.got = report.torch_verdict + (
        f" >={report.min_torch_version}" if report.min_torch_version else ""
    )
    outcome.failures += check_report(outcome.expectation, report, root)
    outcome.rows += library_rows(report, root)


def run_wheel(expectation: Expectation, cache: Path) -> Outcome:
    """Obtain, unpack and audit one wheel, and check it against ``expectation``."""
    outcome = Outcome(expectation)
    start = time.perf_counter()
    try:
        wheel = download_wheel(cache, expectation)
        outcome.rows.append(f"wheel: {wheel}")
        with tempfile.TemporaryDirectory(prefix="torch-abi-real-") as workdir:
            root = Path(workdir)
            unpack_wheel(wheel, root)
            _judge(outcome, inspect_package(root), root)
    except WheelError as exc:
        outcome.got = "-"
        outcome.failures.append(str(exc))
    outcome.seconds = time.perf_counter() - start
    return outcome


def run_installed_torch(expectation: Expectation) -> Outcome:
    """Audit the installed torch package directory, if it is the expected release."""
    outcome = Outcome(expectation, got="-")
    start = time.perf_counter()
    torch_dir, searched = find_torch_dir()
    if torch_dir is None:
        if os.environ.get(TORCH_DIR_ENV):
            outcome.failures.append(f"no torch package (torch/version.py) at {searched}")
        else:
            outcome.skipped = f"torch is not installed (looked in {searched})"
        return outcome
    found = torch_version(torch_dir)
    try:
        matches = found is not None and (
            Version(found).release == Version(expectation.version).release
        )
    except InvalidVersion:
        matches = False
    if not matches:
        outcome.skipped = (
            f"found torch {found} at {torch_dir}, expectations are for another release"
        )
        return outcome
    outcome.rows.append(f"torch {found}: {torch_dir}")
    _judge(outcome, inspect_package(torch_dir), torch_dir)
    outcome.seconds = time.perf_counter() - start
    return outcome


def default_cache() -> Path:
    """``$TORCH_ABI_AUDIT_CACHE/wheels``, else ``~/.cache/torch-abi-audit/wheels``."""
    base = os.environ.get(CACHE_ENV)
    return (Path(base) if base else Path.home() / ".cache" / "torch-abi-audit") / "wheels"


def select(expectations: Iterable[Expectation], only: Sequence[str]) -> list[Expectation]:
    """The expectations named by ``only`` (``NAME`` or ``NAME==VERSION``); all if it is empty."""
    chosen = []
    for expectation in expectations:
        for wanted in only or ["*"]:
            name, _, version = wanted.partition("==")
            if (name == "*" or canonicalize_name(name) == canonicalize_name(expectation.name)) and (
                not version or Version(version) == Version(expectation.version)
            ):
                chosen.append(expectation)
                break
    return chosen


def render(outcomes: Sequence[Outcome], *, verbose: bool) -> str:
    """The summary table, then per-library rows (verbose), failures and skips."""
    headers = ("wheel", "expected", "got", "result", "time")
    table = [
        (o.expectation.title, o.expectation.expected, o.got, o.status, f"{o.seconds:.1f}s")
        for o in outcomes
    ]
    widths = [max(len(row[i]) for row in [headers, *table]) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *table]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    for outcome in outcomes:
        details = []
        if verbose:
            details += [f"    {row}" for row in outcome.rows]
        details += [f"  FAIL {failure}" for failure in outcome.failures]
        if outcome.skipped:
            details.append(f"  SKIP {outcome.skipped}")
        if details:
            lines += ["", f"{outcome.expectation.title}:", *details]
    failed = sum(1 for o in outcomes if o.failures)
    skipped = sum(1 for o in outcomes if o.skipped and not o.failures)
    passed = len(outcomes) - failed - skipped
    lines += ["", f"{passed} passed, {failed} failed, {skipped} skipped"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected expectations; 0 when all hold (skips allowed), else 1."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cache", type=Path, default=None, help=f"wheel cache (default: {default_cache()})"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this distribution (NAME or NAME==VERSION; repeatable)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print per-library rows")
    args = parser.parse_args(argv)
    known = {canonicalize_name(e.name) for e in EXPECTATIONS}
    for wanted in args.only:
        name, _, version = wanted.partition("==")
        if canonicalize_name(name) not in known:
            parser.error(f"--only {wanted}: unknown name (known: {', '.join(sorted(known))})")
        try:
            Version(version or "0")
        except InvalidVersion:
            parser.error(f"--only {wanted}: invalid version")
    selected = select(EXPECTATIONS, args.only)
    if not selected:
        parser.error("--only matched no expectation")
    cache: Path = args.cache or default_cache()
    outcomes = [
        run_installed_torch(e) if e.source is Source.INSTALLED_TORCH else run_wheel(e, cache)
        for e in selected
    ]
    print(render(outcomes, verbose=args.verbose))
    return 1 if any(o.failures for o in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
