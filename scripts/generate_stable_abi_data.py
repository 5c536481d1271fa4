#!/usr/bin/env python3
"""Generate ``src/torch_abi_audit/data/torch_stable_abi.json`` from real PyTorch releases.

The table is never edited by hand: re-run this script to update it.

    python scripts/generate_stable_abi_data.py                     # every release since 2.9.0
    python scripts/generate_stable_abi_data.py --check             # exit 1 if the file differs
    python scripts/generate_stable_abi_data.py --releases 2.9.1,2.10.0 --output /tmp/t.json
    python scripts/generate_stable_abi_data.py --torch /path/to/site-packages/torch --output ...

**Per-release mode** (the default, which produces the shipped file): the releases are those the
package index lists for macOS arm64 from ``--minimum`` (2.9.0) on, final releases only
(``pip index versions torch``). Of each it reads one small wheel, the macOS arm64 one (~75-140 MB),
downloaded once with ``pip download --no-deps --only-binary :all:`` into
``$TORCH_ABI_AUDIT_CACHE/wheels`` (default ``~/.cache/torch-abi-audit/wheels``, the cache the
tests and benchmarks share) and read in place, never extracted. A symbol is dated by the releases
themselves: ``since`` is the first release whose headers declare it or whose libraries export it,
``removed`` the first later release that does neither. The ``TORCH_FEATURE_VERSION`` guards only
corroborate; where a guard and the releases disagree the file lists it under ``disagreements``.

**Single-release mode** (``--torch DIR_OR_WHEEL``): one installed torch directory or one wheel of
any platform. With one release there is nothing to compare, so ``since`` is the guard around the
declaration (unguarded: the 2.9.0 baseline), as PyTorch's own rule has it.

What is read from each release:

* the shim headers under ``torch/include`` (``aoti_torch/c/shim*.h``, ``aoti_torch/generated/
  c_shim_*.h``, ``stable/c/shim.h``): every ``AOTI_TORCH_EXPORT`` C function, with the
  ``TORCH_FEATURE_VERSION >= TORCH_VERSION_X_Y_Z`` guard around it, its device tier (from the
  header and ``USE_CUDA``/``USE_XPU``/``USE_MPS`` blocks), ``[[deprecated]]`` markers and the
  replacement a deprecation message or the comment above a declaration names;
* ``torch/headeronly``: the ``c10`` names it re-exports with ``using c10::X`` — header-only code
  that may appear as defined (weak) symbols in stable extensions;
* the exports of ``libtorch_cpu``, ``libc10``, ``libtorch`` and ``libtorch_python`` (read with the
  product's own ELF / Mach-O / PE readers): which shims the release really exports, and the
  libtorch-owned C names (``THP*``, ``FLAGS_*``…) that are not shims and therefore tie a library
  to one release. The macOS wheels export CPU and MPS shims; CUDA and XPU shims are dated by their
  declarations alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "scripts"))

from packaging.version import InvalidVersion, Version  # noqa: E402

import release_exports  # noqa: E402
from torch_abi_audit.readers import BinaryReadError, parse_library, read_library  # noqa: E402
from torch_abi_audit.rules.release_exports import (  # noqa: E402
    LINKER_C_NAMES,
    PLATFORMS,
    TORCH_OWNED_C_PREFIXES,
)
from torch_abi_audit.rules.torch_abi import TorchRules  # noqa: E402
from torch_abi_audit.rules.torch_table import parse_table  # noqa: E402
from torch_abi_audit.sources.index import (  # noqa: E402
    DownloadError,
    default_cache,
    fetch_wheel,
    file_sha256,
    find_cached_wheel,
    index_versions,
)
from torch_abi_audit.sources.wheels import WheelArchive, WheelError  # noqa: E402

OUTPUT = REPO / "src" / "torch_abi_audit" / "data" / "torch_stable_abi.json"
FORMAT_VERSION = 2
GENERATED_BY = "scripts/generate_stable_abi_data.py"
BASELINE_VERSION = "2.9.0"
# The wheels read per release: CPython 3.11 (the platforms are release_exports.PIP_PLATFORMS).
WHEEL_PYTHON = "3.11"

# Shim headers, relative to torch/include, with the device tier their declarations belong to.
SHIM_HEADERS: dict[str, str] = {
    "torch/csrc/inductor/aoti_torch/c/shim.h": "cpu",
    "torch/csrc/inductor/aoti_torch/c/shim_deprecated.h": "cpu",
    "torch/csrc/inductor/aoti_torch/c/shim_cpu.h": "cpu",
    "torch/csrc/inductor/aoti_torch/c/shim_mps.h": "mps",
    "torch/csrc/inductor/aoti_torch/c/shim_xpu.h": "xpu",
    "torch/csrc/inductor/aoti_torch/generated/c_shim_aten.h": "cpu",
    "torch/csrc/inductor/aoti_torch/generated/c_shim_cpu.h": "cpu",
    "torch/csrc/inductor/aoti_torch/generated/c_shim_cuda.h": "cuda",
    "torch/csrc/inductor/aoti_torch/generated/c_shim_mps.h": "mps",
    "torch/csrc/inductor/aoti_torch/generated/c_shim_xpu.h": "xpu",
    "torch/csrc/stable/c/shim.h": "cpu",
}
HEADERONLY_DIR = "torch/headeronly"
# Libraries whose exports are read, by stem (".so", ".dylib" or ".dll" is added).
TORCH_LIBRARIES = ("libtorch_cpu", "libc10", "libtorch", "libtorch_python")
# Undeclared exports named like this are shims whose header the release does not ship.
_DEVICE_BY_PREFIX = (
    ("aoti_torch_cuda_", "cuda"),
    ("aoti_torch_xpu_", "xpu"),
    ("aoti_torch_mps_", "mps"),
)

_VERSION_GUARD = re.compile(r"TORCH_FEATURE_VERSION\s*>=\s*TORCH_VERSION_(\d+)_(\d+)_(\d+)")
_DEVICE_GUARD = re.compile(r"\bUSE_(CUDA|XPU|MPS|ROCM)\b")
_DECLARATION = re.compile(
    r"(?P<deprecated>\[\[deprecated(?:\((?P<message>(?:[^()]|\([^()]*\))*)\))?\]\]\s*)?"
    r"AOTI_TORCH_EXPORT\b(?P<decl>[^;{]*?)\b(?P<name>[A-Za-z_]\w*)\s*\(",
    re.S,
)
# "Use aoti_torch_copy_ instead", "deprecated, use new_way", "replaced by `x`".
_REPLACEMENT_HINT = re.compile(
    r"\b(?:use|replaced\s+by|in\s+favou?r\s+of)\s+`?([A-Za-z_]\w*)", re.I
)
_USING_C10 = re.compile(r"\busing\s+(?:::)?(c10(?:::\w+)+)\s*;")
_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)


@dataclass
class ShimDeclaration:
    """One shim function as declared by one release's headers.

    ``replacement`` is the identifier the ``[[deprecated]]`` message or the comment right above
    the declaration tells callers to use instead (unchecked: the table keeps it only when it
    names a known shim).
    """

    name: str
    header: str
    device: str
    guard: str | None
    deprecated: bool
    deprecation_message: str | None
    replacement: str | None = None


@dataclass
class ReleaseData:
    """What one torch release declares and exports.

    ``c_exports`` maps every libtorch-owned unmangled export (and every declared shim that is
    exported) to the libraries, by stem, that export it.
    """

    version: str
    source: str
    sha256: str | None
    declarations: dict[str, ShimDeclaration] = field(default_factory=dict)
    c_exports: dict[str, list[str]] = field(default_factory=dict)
    header_only: set[str] = field(default_factory=set)


# -- header parsing --------------------------------------------------------------------------


def _strip_comments(text: str) -> str:
    # Comments become as many newlines as they held, so line numbers survive. (Deprecation
    # messages are string literals outside comments.)
    return _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def parse_shim_header(text: str, header: str, device: str) -> Iterator[ShimDeclaration]:
    """Yield every ``AOTI_TORCH_EXPORT`` function of one header with its guards.

    Preprocessor conditions are tracked as a stack: a declaration's guard is the newest
    ``TORCH_FEATURE_VERSION`` condition around it (``#else`` branches of a version guard are
    older API and count as unguarded); ``USE_CUDA``/``USE_XPU``/``USE_MPS`` blocks set the
    device tier.
    """
    hints = _comment_hints(text)
    # Each stack entry: (version guard or None, device or None, in_else_branch)
    stack: list[tuple[str | None, str | None, bool]] = []
    chunk: list[str] = []

    def flush() -> Iterator[ShimDeclaration]:
        body = "\n".join(chunk)
        chunk.clear()
        guards = [v for v, _d, in_else in stack if v and not in_else]
        devices = [d for _v, d, in_else in stack if d and not in_else]
        guard = max(guards, key=_version_key) if guards else None
        for match in _DECLARATION.finditer(body):
            name = match.group("name")
            message = _c_string(match.group("message")) if match.group("message") else None
            yield ShimDeclaration(
                name=name,
                header=header,
                device=devices[-1] if devices else device,
                guard=guard,
                deprecated=match.group("deprecated") is not None,
                deprecation_message=message,
                replacement=_replacement_in(message, name) or hints.get(name),
            )

    lines = _strip_comments(text).splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        # Join continued preprocessor lines.
        while line.rstrip().endswith("\\") and index + 1 < len(lines):
            index += 1
            line = line.rstrip()[:-1] + " " + lines[index]
        index += 1
        stripped = line.strip()
        if not stripped.startswith("#"):
            chunk.append(line)
            continue
        directive = stripped[1:].strip()
        keyword = directive.split(None, 1)[0] if directive else ""
        if keyword not in {"if", "ifdef", "ifndef", "elif", "else", "endif"}:
            continue
        yield from flush()
        if keyword in {"if", "ifdef", "ifndef"}:
            stack.append(_condition(directive, keyword))
        elif keyword == "elif" and stack:
            stack[-1] = _condition(directive, "if")
        elif keyword == "else" and stack:
            version, dev, _ = stack[-1]
            stack[-1] = (version, dev, True)
        elif keyword == "endif" and stack:
            stack.pop()
    yield from flush()


def _comment_hints(text: str) -> dict[str, str]:
    """Declared name -> the replacement named by the ``//`` comment block right above it."""
    raw_lines = text.splitlines()
    stripped = _strip_comments(text)
    hints: dict[str, str] = {}
    for match in _DECLARATION.finditer(stripped):
        line = stripped.count("\n", 0, match.start())
        block: list[str] = []
        above = line - 1
        while above >= 0 and raw_lines[above].strip().startswith("//"):
            block.append(raw_lines[above].strip().lstrip("/"))
            above -= 1
        name = match.group("name")
        hint = _replacement_in(" ".join(reversed(block)), name)
        if hint:
            hints[name] = hint
    return hints


def _replacement_in(text: str | None, name: str) -> str | None:
    for match in _REPLACEMENT_HINT.finditer(text or ""):
        if match.group(1) != name and "_" in match.group(1):
            return match.group(1)
    return None


def _condition(directive: str, keyword: str) -> tuple[str | None, str | None, bool]:
    version_match = _VERSION_GUARD.search(directive)
    version = ".".join(version_match.groups()) if version_match else None
    device_match = _DEVICE_GUARD.search(directive) if keyword != "ifndef" else None
    device = device_match.group(1).lower() if device_match else None
    if device == "rocm":
        device = "cuda"
    return (version, device, False)


def _c_string(text: str) -> str:
    """Concatenate the C string literals of a deprecation message."""
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', text)
    return "".join(parts) if parts else text.strip()


def _version_key(version: str) -> Version:
    return Version(version)


def parse_header_only_names(texts: Iterable[str]) -> set[str]:
    """The ``c10::`` names that ``torch/headeronly`` re-exports (header-only code)."""
    names: set[str] = set()
    for text in texts:
        for match in _USING_C10.finditer(_strip_comments(text)):
            names.add(match.group(1))
    # ``using c10::operator+;`` and friends are judged by their argument types, not by name.
    return {n for n in names if not n.endswith("::operator")}


# -- release sources ---------------------------------------------------------------------------


class ReleaseFiles:
    """The files of one torch release that the generator reads (``torch/`` is the root)."""

    #: Wheel file name or directory path: where the data came from.
    source: str
    #: SHA-256 of the wheel file, ``None`` for a directory.
    sha256: str | None = None

    def read_text(self, relative: str) -> str | None:
        """The text of ``torch/<relative>``, ``None`` when the release has no such file."""
        raise NotImplementedError

    def headers_under(self, relative_dir: str) -> list[str]:
        """The texts of every ``.h`` file below ``torch/<relative_dir>``, in name order."""
        raise NotImplementedError

    def library_exports(self, stem: str) -> frozenset[str] | None:
        """The names ``torch/lib/<stem>.{so,dylib,dll}`` exports; ``None`` if it is absent.

        Raises :class:`SystemExit` when the library cannot be read.
        """
        raise NotImplementedError

    def version(self) -> str:
        """The release's public version (``2.13.0``, without ``+cpu``) from ``version.py``."""
        text = self.read_text("version.py") or ""
        match = re.search(r"__version__\s*=\s*['\"]([^'\"]+)['\"]", text)
        if not match:
            raise SystemExit(f"{self.source}: cannot find the torch version in version.py")
        return Version(match.group(1)).public

    def close(self) -> None:
        """Release open files."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @staticmethod
    def library_names(stem: str) -> list[str]:
        bare = stem.removeprefix("lib")
        return [f"{stem}.so", f"{stem}.dylib", f"{bare}.dll", f"{stem}.dll"]


class TorchTree(ReleaseFiles):
    """An installed torch package directory (``.../site-packages/torch``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.source = str(root)

    def read_text(self, relative: str) -> str | None:
        path = self.root / relative
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None

    def headers_under(self, relative_dir: str) -> list[str]:
        base = self.root / relative_dir
        return [p.read_text(encoding="utf-8", errors="replace") for p in sorted(base.rglob("*.h"))]

    def library_exports(self, stem: str) -> frozenset[str] | None:
        for name in self.library_names(stem):
            path = self.root / "lib" / name
            if path.is_file():
                try:
                    return read_library(path).exports.names()
                except BinaryReadError as exc:
                    raise SystemExit(f"{path}: {exc}") from exc
        return None


class TorchWheel(ReleaseFiles):
    """A torch wheel, read in place: headers as text members, libraries through byte sources."""

    def __init__(self, path: Path) -> None:
        try:
            self.archive = WheelArchive(path)
        except WheelError as exc:
            raise SystemExit(f"{path}: {exc}") from exc
        self.source = path.name
        self.sha256 = file_sha256(path)
        self._members = frozenset(self.archive.member_names())

    def read_text(self, relative: str) -> str | None:
        member = f"torch/{relative}"
        if member not in self._members:
            return None
        try:
            return self.archive.read_text(member)
        except WheelError as exc:
            raise SystemExit(f"{self.source}: {exc}") from exc

    def headers_under(self, relative_dir: str) -> list[str]:
        prefix = f"torch/{relative_dir.rstrip('/')}/"
        names = sorted(m for m in self._members if m.startswith(prefix) and m.endswith(".h"))
        return [self.read_text(m.removeprefix("torch/")) or "" for m in names]

    def library_exports(self, stem: str) -> frozenset[str] | None:
        for name in self.library_names(stem):
            member = f"torch/lib/{name}"
            if member not in self._members:
                continue
            try:
                source = self.archive.open_member(member)
                try:
                    exports = parse_library(source, Path(member)).exports.names()
                    source.finish(verify=True)  # reads the member to its end: checks its CRC-32
                finally:
                    source.close()
            except BinaryReadError as exc:
                raise SystemExit(f"{self.source}/{member}: {exc}") from exc
            return exports
        return None

    def close(self) -> None:
        self.archive.close()


def open_release(path: Path) -> ReleaseFiles:
    """The files of an installed torch directory or of a torch wheel.

    Raises :class:`SystemExit` for anything else.
    """
    if path.is_dir():
        return TorchTree(path)
    if path.suffix == ".whl" and path.is_file():
        return TorchWheel(path)
    raise SystemExit(f"{path}: expected a torch directory or a .whl file")


# -- finding and fetching releases -------------------------------------------------------------

# A site pip.conf may cap torch with a constraints file (``unconstrained``): the index must be
# seen as it is.


def discover_releases(minimum: str = BASELINE_VERSION) -> list[str]:
    """Every final torch release from ``minimum`` on with a macOS arm64 wheel, ascending.

    Asks the index through ``pip index versions``; raises :class:`SystemExit` if that fails.
    """
    try:
        listed = index_versions(
            "torch",
            platforms=(release_exports.PIP_PLATFORMS["macos_arm64"],),
            python_version=WHEEL_PYTHON,
            unconstrained=True,
        )
    except DownloadError as exc:
        raise SystemExit(f"{exc} (pass --releases)") from exc
    return select_releases(listed, minimum)


def select_releases(versions: Iterable[str], minimum: str = BASELINE_VERSION) -> list[str]:
    """The final releases (no pre-, dev- or local versions) from ``minimum`` on, ascending."""
    found: set[Version] = set()
    for text in versions:
        try:
            version = Version(text.strip())
        except InvalidVersion:
            continue
        if version.is_prerelease or version.is_devrelease or version.local:
            continue
        if version >= Version(minimum):
            found.add(version)
    return [str(v) for v in sorted(found)]


def fetch_release_wheel(
    version: str, cache: Path | None = None, platform: str = "macos_arm64"
) -> Path:
    """The CPython 3.11 wheel of torch ``version`` for ``platform`` (``macos_arm64``,
    ``linux_x86_64``, ``win_amd64``): from the cache, else downloaded into it (the project's
    one downloader). Raises :class:`SystemExit` on failure.
    """
    platforms = (release_exports.PIP_PLATFORMS[platform],)
    if (
        find_cached_wheel(
            "torch", version, platforms=platforms, python_version=WHEEL_PYTHON, cache=cache
        )
        is None
    ):
        print(f"downloading torch {version} ({platforms[0]})", file=sys.stderr)
    try:
        return fetch_wheel(
            "torch",
            version,
            platforms=platforms,
            python_version=WHEEL_PYTHON,
            cache=cache,
            unconstrained=True,
        )
    except DownloadError as exc:
        raise SystemExit(str(exc)) from exc


# -- reading one release -----------------------------------------------------------------------


def read_release(files: ReleaseFiles) -> ReleaseData:
    """Declarations, header-only names and libtorch-owned C exports of one release."""
    release = ReleaseData(version=files.version(), source=files.source, sha256=files.sha256)
    for header, device in SHIM_HEADERS.items():
        text = files.read_text(f"include/{header}")
        if text is None:
            continue
        for declaration in parse_shim_header(text, header, device):
            release.declarations.setdefault(declaration.name, declaration)
    release.header_only = parse_header_only_names(files.headers_under(f"include/{HEADERONLY_DIR}"))
    for stem in TORCH_LIBRARIES:
        exports = files.library_exports(stem)
        for name in sorted(exports or ()):
            if name.startswith("_Z") or name in LINKER_C_NAMES:
                continue
            if (
                name in release.declarations
                or stem == "libtorch_python"
                or name.startswith(TORCH_OWNED_C_PREFIXES)
            ):
                release.c_exports.setdefault(name, []).append(stem)
    return release


# -- the table ---------------------------------------------------------------------------------


def shim_names(releases: Sequence[ReleaseData]) -> set[str]:
    """Every shim of the releases: declared in a shim header, or an ``aoti_torch_*`` export of
    ``libtorch_cpu`` (a shim whose header the release does not ship)."""
    names: set[str] = set()
    for release in releases:
        names.update(release.declarations)
        names.update(
            name
            for name, libraries in release.c_exports.items()
            if name.startswith("aoti_torch_") and "libtorch_cpu" in libraries
        )
    return names


def _device_of(name: str) -> str:
    for prefix, device in _DEVICE_BY_PREFIX:
        if name.startswith(prefix):
            return device
    return "cpu"


def _evidence(release: ReleaseData, name: str) -> str:
    declaration = release.declarations.get(name)
    parts = []
    if declaration is not None:
        parts.append(f"declared in {declaration.header}")
    if name in release.c_exports:
        parts.append(f"exported by {', '.join(release.c_exports[name])}")
    return f"{release.source}: {' and '.join(parts)}"


def _shim_entry(
    name: str, releases: Sequence[ReleaseData], known: set[str]
) -> tuple[dict[str, object], dict[str, object] | None, list[str]]:
    """One shim's table entry, its guard-vs-release disagreement (or None) and its gaps."""
    present = [name in r.declarations or name in r.c_exports for r in releases]
    first = present.index(True)
    last = len(present) - 1 - present[::-1].index(True)
    declaring = [r for r in releases if name in r.declarations]
    exporting = [r for r in releases if name in r.c_exports]
    declaration = declaring[-1].declarations[name] if declaring else None
    guard = declaration.guard if declaration else None
    claim = Version(guard or BASELINE_VERSION)
    oldest = Version(releases[0].version)
    first_seen = Version(releases[first].version)
    # Nothing older than the oldest release read is known: what it already has is dated by the
    # guard (PyTorch's own rule), which is all a single-release run can go by.
    since = min(claim, oldest) if first == 0 else first_seen
    removed = releases[last + 1].version if last + 1 < len(releases) else None
    gaps = [
        r.version
        for r, here in zip(releases[first:last], present[first:last], strict=True)
        if not here
    ]
    deprecated_in = [r for r in declaring if r.declarations[name].deprecated]
    entry: dict[str, object] = {
        "since": str(since),
        "removed": removed,
        "guard": guard,
        "device": declaration.device if declaration else _device_of(name),
        "header": declaration.header if declaration else None,
        "exported_by": exporting[-1].c_exports[name] if exporting else [],
        "first_declared": declaring[0].version if declaring else None,
        "first_exported": exporting[0].version if exporting else None,
        "deprecated": bool(declaration and declaration.deprecated),
    }
    if declaration and declaration.deprecated:
        entry["deprecated_since"] = deprecated_in[0].version
        if declaration.deprecation_message:
            entry["deprecation_message"] = declaration.deprecation_message
    replacement = declaration.replacement if declaration else None
    if replacement and replacement in known:
        entry["replacement"] = replacement
    disagreement: dict[str, object] | None = None
    if first > 0 and claim != first_seen:
        if guard is None:
            kind = "unguarded but new"
        elif claim > first_seen:
            kind = "guard newer than the first release with it"
        else:
            kind = "guard older than the first release with it"
        disagreement = {
            "symbol": name,
            "guard": guard,
            "first_seen": str(first_seen),
            "kind": kind,
            "evidence": _evidence(releases[first], name),
        }
        lacking = [r for r in releases[:first] if Version(r.version) >= claim]
        if lacking:
            disagreement["evidence"] = (
                f"{disagreement['evidence']}; {lacking[0].source} neither declares nor exports it"
            )
    return entry, disagreement, gaps


def header_only_exported(header_only: Iterable[str], c10_exports: dict[str, str]) -> dict[str, str]:
    """The ``c10`` exports (symbol -> where) that the ``header_only`` names, or the rule for
    ``c10`` operators on header-only types, would exempt: defined in libtorch, so not
    header-only whatever their names say (``c10::report_overflow(char const*)``)."""
    probe = parse_table(
        {
            "format": 2,
            "baseline_version": BASELINE_VERSION,
            "releases": [{"version": BASELINE_VERSION}],
            "shims": {},
            "header_only": sorted(header_only),
            "internal_c_symbols_all_releases": {},
        }
    )
    rules = TorchRules(probe)
    return {n: c10_exports[n] for n in sorted(c10_exports) if rules.exempt_as_header_only(n)}


def build_table(
    releases: Sequence[ReleaseData],
    generated_on: str | None = None,
    c10_exports: dict[str, str] | None = None,
) -> dict[str, object]:
    """The format-2 table for ``releases`` (any order; at least one). ``c10_exports`` are the
    ``c10`` symbols libtorch libraries export (symbol -> library and build) over the releases
    and platforms read: those the header-only names would exempt become
    ``header_only_exported``."""
    releases = sorted(releases, key=lambda r: Version(r.version))
    if not releases:
        raise SystemExit("no release to build the table from")
    known = shim_names(releases)
    shims: dict[str, dict[str, object]] = {}
    disagreements: list[dict[str, object]] = []
    gaps: dict[str, list[str]] = {}
    for name in sorted(known):
        entry, disagreement, missing = _shim_entry(name, releases, known)
        shims[name] = entry
        if disagreement:
            disagreements.append(disagreement)
        if missing:
            gaps[name] = missing
    newest = releases[-1]
    internal_all: dict[str, str] = {}
    for release in reversed(releases):
        for name, libraries in sorted(release.c_exports.items()):
            if name not in known:
                internal_all.setdefault(name, libraries[0])
    internal_newest = {
        name: libraries[0]
        for name, libraries in sorted(newest.c_exports.items())
        if name not in known
    }
    table: dict[str, object] = {
        "format": FORMAT_VERSION,
        "generated_by": GENERATED_BY,
        "generated_on": generated_on or dt.date.today().isoformat(),
        "baseline_version": BASELINE_VERSION,
        "notes": _notes(len(releases)),
        "releases": [_release_summary(r, shims) for r in releases],
        "disagreements": disagreements,
    }
    if gaps:
        table["gaps"] = gaps
    table["shims"] = {name: shims[name] for name in sorted(shims)}
    # Header-only in any release read: an extension built against that release carries (and
    # may import from a sibling library) the code, whatever later releases re-export.
    names = sorted(set().union(*(r.header_only for r in releases)))
    table["header_only"] = names
    table["header_only_exported"] = header_only_exported(names, c10_exports or {})
    table["internal_c_symbols"] = internal_newest
    table["internal_c_symbols_all_releases"] = dict(sorted(internal_all.items()))
    return table


def _notes(count: int) -> str:
    if count == 1:
        return (
            "One release read: since = the TORCH_FEATURE_VERSION guard around the declaration "
            f"(unguarded: the {BASELINE_VERSION} baseline). Do not edit: re-run the generator."
        )
    return (
        "since = the first release read whose headers declare the shim or whose libraries export "
        "it (what the oldest release already has is dated by its guard, unguarded = the "
        f"{BASELINE_VERSION} baseline); removed = the first later release that does neither. "
        "guard = the TORCH_FEATURE_VERSION guard in the newest release declaring it; "
        "disagreements lists every shim whose guard says otherwise. exported_by = the libraries "
        "of the newest release exporting it (macOS arm64 wheels: CUDA and XPU shims are dated by "
        "their declarations). header_only = the c10 names torch/headeronly re-exports in any "
        "release read; header_only_exported = the symbols those names (or c10 operators on "
        "header-only types) would exempt but that a libtorch library of a release read (Linux "
        "x86_64, macOS arm64, Windows x64 builds) exports: not header-only. Do not edit: "
        "re-run scripts/generate_stable_abi_data.py."
    )


def _release_summary(
    release: ReleaseData, shims: dict[str, dict[str, object]]
) -> dict[str, object]:
    version = release.version
    exported = [n for n in shims if n in release.c_exports]
    present = set(release.declarations) | set(exported)
    where = (
        {"wheel": release.source, "sha256": release.sha256}
        if release.sha256
        else {"directory": release.source}
    )
    return {
        "version": version,
        **where,
        "declared": len(release.declarations),
        "exported": len(exported),
        "present": len(present),
        "new": sum(1 for e in shims.values() if e["since"] == version),
        "removed": sum(1 for e in shims.values() if e["removed"] == version),
        "deprecated": sum(1 for d in release.declarations.values() if d.deprecated),
    }


def render(table: dict[str, object]) -> str:
    """JSON with one line per shim, release, symbol: small, and diffs read well."""
    lines = ["{"]
    items = list(table.items())
    for index, (key, value) in enumerate(items):
        comma = "," if index < len(items) - 1 else ""
        if isinstance(value, dict) and value:
            inner = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items()]
            lines.append(f" {json.dumps(key)}: {{")
            lines.append(",\n".join(inner))
            lines.append(f" }}{comma}")
        elif isinstance(value, list) and value:
            lines.append(f" {json.dumps(key)}: [")
            lines.append(",\n".join(f"  {json.dumps(v)}" for v in value))
            lines.append(f" ]{comma}")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _comparable(text: str) -> object:
    data = json.loads(text)
    if isinstance(data, dict):
        data.pop("generated_on", None)
    return data


def same_table(current: str, generated: str) -> bool:
    """True when two renderings of a generated table say the same (the generation date
    aside): what the ``--check`` of the table generators compares."""
    return _comparable(current) == _comparable(generated)


def check_or_write(
    output: Path,
    text: str,
    *,
    check: bool,
    versions: Sequence[str],
    summary: str,
    script: str,
    also_stale: Sequence[str] = (),
) -> int:
    """What the table generators end with. With ``check``: exit status 1 when ``output`` does
    not say what ``text`` says (:func:`same_table`) or ``also_stale`` names other outputs that
    differ, and which, else 0. Without: write ``text`` to ``output`` and say so with ``summary``
    (0).
    """
    if check:
        current = output.read_text(encoding="utf-8") if output.exists() else "{}"
        stale = [*([] if same_table(current, text) else [str(output)]), *also_stale]
        if stale:
            print(f"out of date: {', '.join(stale)}; re-run {script}", file=sys.stderr)
            return 1
        print(f"{output} matches torch {', '.join(versions)}")
        return 0
    output.write_text(text, encoding="utf-8")
    print(f"wrote {output} ({len(text.encode())} bytes)\n{summary}")
    return 0


def _summary(table: dict[str, object]) -> str:
    releases = table["releases"]
    assert isinstance(releases, list)
    rows = [
        f"  {r['version']:>7}: {r['declared']} declared, {r['exported']} exported, "
        f"{r['new']} new, {r['removed']} removed, {r['deprecated']} deprecated "
        f"({r.get('wheel') or r.get('directory')})"
        for r in releases
    ]
    shims, disagreements = table["shims"], table["disagreements"]
    assert isinstance(shims, dict) and isinstance(disagreements, list)
    internal = table["internal_c_symbols_all_releases"]
    assert isinstance(internal, dict)
    return "\n".join(
        [
            f"{len(shims)} shims, {len(disagreements)} guard/release disagreements, "
            f"{len(internal)} internal C symbols over all releases",
            *rows,
        ]
    )


EXPORTS_NOTES = (
    "builds = the default wheel the package index serves per release and platform (CPython "
    "3.11), read in place; variant = its local version label; cuda_major = the CUDA major its "
    "Requires-Dist installs there (checked against torch/version.py and the libcudart its "
    "libraries need); cuda_runtime = the CUDA runtime libraries its libraries need; symbols = "
    "the exports recorded: C++ entities of at, c10, caffe2, torch and libtorch's own C names, "
    "over every libtorch*/libc10* library of torch/lib. Each platform's symbol file groups the "
    "names by the bit mask (hexadecimal) of the columns (builds) exporting them. Do not edit: "
    "re-run scripts/generate_stable_abi_data.py."
)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--torch", type=Path, help="single-release mode: a torch package directory or wheel"
    )
    parser.add_argument(
        "--releases", help="comma-separated releases to read (default: ask the index)"
    )
    parser.add_argument(
        "--minimum", default=BASELINE_VERSION, help="oldest release to read (default %(default)s)"
    )
    parser.add_argument(
        "--platforms",
        default=",".join(PLATFORMS),
        help="platforms whose builds' exports are read (default %(default)s)",
    )
    parser.add_argument("--cache", type=Path, default=default_cache(), help="wheel cache")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument(
        "--exports-dir",
        type=Path,
        default=release_exports.DATA,
        help="where the release-exports index and symbol files go (default: the package data)",
    )
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if the output would change"
    )
    args = parser.parse_args(argv)
    unknown = set(args.platforms.split(",")) - set(PLATFORMS)
    if unknown:
        parser.error(f"unknown platforms {sorted(unknown)}; known: {', '.join(PLATFORMS)}")
    return args


def _single_release_c10(source: Path) -> dict[str, str]:
    """The c10 exports of one torch directory or wheel (single-release mode)."""
    if source.is_dir():
        return release_exports.c10_exports_of(release_exports.read_tree_exports(source / "lib"))
    return release_exports.c10_exports([release_exports.read_wheel_build(source, "")])


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    builds: list[release_exports.BuildExports] = []
    if args.torch is not None:
        sources = [args.torch.resolve()]
        c10 = _single_release_c10(sources[0])
    else:
        versions = (
            select_releases(args.releases.split(","), "0")
            if args.releases
            else discover_releases(args.minimum)
        )
        if not versions:
            raise SystemExit("no torch release to read")
        sources = [fetch_release_wheel(version, args.cache) for version in versions]
        exports_cache = args.cache.parent / "release-exports"
        for platform in args.platforms.split(","):
            for version in versions:
                wheel = fetch_release_wheel(version, args.cache, platform)
                builds.append(release_exports.read_build(wheel, file_sha256(wheel), exports_cache))
        c10 = release_exports.c10_exports(builds)
    releases: list[ReleaseData] = []
    for source in sources:
        with open_release(source) as files:
            releases.append(read_release(files))
    table = build_table(releases, c10_exports=c10)
    text = render(table)
    index, documents = release_exports.build_exports_data(
        builds, str(table["generated_on"]), EXPORTS_NOTES
    )
    stale: list[str] = []
    if args.check and builds:
        stale = release_exports.exports_data_differs(index, documents, args.exports_dir)
    status = check_or_write(
        args.output,
        text,
        check=args.check,
        versions=[r.version for r in releases],
        summary=_summary(table),
        script=Path(__file__).name,
        also_stale=stale,
    )
    if builds and not args.check:
        for path, size in release_exports.write_exports_data(index, documents, args.exports_dir):
            print(f"wrote {path} ({size} bytes)")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
