"""The exports of each torch release build, read for ``generate_stable_abi_data.py``.

For every release and platform (Linux x86_64, macOS arm64, Windows x64) the generator reads the
default wheel the package index serves — on Linux a CUDA build of 0.5-0.9 GB, read in place with
the product's wheel reader, never extracted — and records:

* what its libtorch libraries (every ``libtorch*``/``libc10*`` file under ``torch/lib``) export
  of the kinds the rules call torch-owned (``recorded_export``): C++ entities of ``at``, ``c10``,
  ``caffe2``, ``torch``; libtorch's own C names; every C name of ``libtorch_python``;
* which CUDA major its ``Requires-Dist`` installs (``nvidia-cudnn-cu13``, ``cuda-toolkit==13.0.2``
  with the markers evaluated for the platform), cross-checked with ``torch/version.py``'s
  ``cuda`` and with the ``libcudart`` its libraries need;
* the CUDA runtime libraries its libraries need (installed beside it by those requirements).

Reading a Linux CUDA wheel takes ~30 s (``libtorch_cuda.so`` alone is 1-1.5 GB deflated), so
what is read is cached per wheel SHA-256 in ``$TORCH_ABI_AUDIT_CACHE/release-exports``.
"""

from __future__ import annotations

import gzip
import json
import lzma
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from email.parser import HeaderParser
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import Version

# Imported by generate_stable_abi_data.py, which puts the checkout's src/ on sys.path first.
from torch_abi_audit.library_search import is_cuda_runtime
from torch_abi_audit.readers import BinaryReadError, parse_library, read_library
from torch_abi_audit.rules.release_exports import (
    INDEX_FILE,
    PLATFORMS,
    SUPPORTED_FORMAT,
    recorded_export,
)
from torch_abi_audit.rules.torch_abi import entity_scope, is_torch_library
from torch_abi_audit.sources.torch_install import LIB_DIR, VERSION_FILE, lib_files_of, version_field
from torch_abi_audit.sources.wheels import WheelArchive, WheelError

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "src" / "torch_abi_audit" / "data"
CACHE_FORMAT = 1
#: pip ``--platform`` per platform of the data. pip expands a macOS tag to every older one.
PIP_PLATFORMS = {
    "linux_x86_64": "manylinux_2_28_x86_64",
    "macos_arm64": "macosx_26_0_arm64",
    "win_amd64": "win_amd64",
}
#: The environment ``Requires-Dist`` markers are evaluated in, per platform (CPython 3.11).
MARKER_ENVIRONMENTS = {
    "linux_x86_64": {
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "sys_platform": "linux",
    },
    "macos_arm64": {
        "platform_system": "Darwin",
        "platform_machine": "arm64",
        "sys_platform": "darwin",
    },
    "win_amd64": {
        "platform_system": "Windows",
        "platform_machine": "AMD64",
        "sys_platform": "win32",
    },
}
_CUDA_SUFFIX = re.compile(r"-cu(\d+)$")
_CUDA_FIELD = re.compile(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.M)
_CUDART_MAJOR = re.compile(r"(?i)^(?:lib)?cudart(?:64_|\.so\.)(\d+)")


@dataclass
class BuildExports:
    """What one platform build of one release exports and needs (see the module docstring).

    ``exports`` maps each recorded name to the library files exporting it.
    """

    platform: str
    release: str
    version: str
    variant: str | None
    cuda_major: int | None
    cuda_version: str | None
    libraries: list[str]
    cuda_runtime: list[str]
    wheel: str
    sha256: str
    exports: dict[str, list[str]] = field(default_factory=dict)


def wheel_platform(filename: str) -> str | None:
    """The data's platform of a torch wheel file name, ``None`` for another platform."""
    if filename.endswith("_x86_64.whl") and "manylinux" in filename:
        return "linux_x86_64"
    if filename.endswith("_arm64.whl") and "macosx_" in filename:
        return "macos_arm64"
    if filename.endswith("-win_amd64.whl"):
        return "win_amd64"
    return None


def cuda_major_from_requirements(requirements: Iterable[str], platform: str) -> int | None:
    """The CUDA major the ``Requires-Dist`` lines install on ``platform``: from the ``-cuNN``
    suffix of NVIDIA's packages or the pinned version of ``cuda-toolkit``/``nvidia-*`` CUDA
    packages. ``None`` when none applies there. Raises :class:`SystemExit` when they disagree."""
    environment = {**MARKER_ENVIRONMENTS[platform], "python_version": "3.11", "extra": ""}
    majors: set[int] = set()
    for text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        marker: Marker | None = requirement.marker
        if marker is not None and not marker.evaluate(environment):
            continue
        name = requirement.name.lower()
        suffix = _CUDA_SUFFIX.search(name)
        if suffix:
            majors.add(int(suffix.group(1)))
        elif name in {"cuda-toolkit", "nvidia-cuda-runtime", "nvidia-cublas"}:
            pinned = [s.version for s in requirement.specifier if s.operator in {"==", ">="}]
            majors.update(Version(v).major for v in pinned)
    if len(majors) > 1:
        raise SystemExit(f"requirements name several CUDA majors on {platform}: {sorted(majors)}")
    return majors.pop() if majors else None


def _exports_of(archive: WheelArchive, member: str) -> tuple[frozenset[str], tuple[str, ...]]:
    source = archive.open_member(member)
    try:
        library = parse_library(source, Path(member))
        names = library.exports.names()
        source.finish(verify=True)  # reads the member to its end: checks its CRC-32
    finally:
        source.close()
    return names, library.needed


def _record(
    build: BuildExports, library: str, names: Iterable[str], needed: Iterable[str]
) -> set[str]:
    python = library.lower().startswith(("libtorch_python", "torch_python"))
    for name in names:
        if recorded_export(name, python_library=python):
            build.exports.setdefault(name, []).append(library)
    return {n for n in needed if is_cuda_runtime(n)}


def read_wheel_build(path: Path, sha256: str) -> BuildExports:
    """Read one torch wheel in place. Raises :class:`SystemExit` when it cannot be read."""
    platform = wheel_platform(path.name)
    if platform is None:
        raise SystemExit(f"{path.name}: not a Linux x86_64, macOS arm64 or win_amd64 wheel")
    try:
        with WheelArchive(path) as archive:
            members = archive.member_names()
            metadata = next(m for m in members if m.endswith(".dist-info/METADATA"))
            headers = HeaderParser().parsestr(archive.read_text(metadata))
            version_text = archive.read_text(VERSION_FILE)
            lib_files = lib_files_of(members)
            version = version_field(version_text)
            if version is None:
                raise SystemExit(f"{path.name}: no __version__ in {VERSION_FILE}")
            build = BuildExports(
                platform=platform,
                release=Version(version).base_version,
                version=version,
                variant=Version(version).local,
                cuda_major=cuda_major_from_requirements(
                    headers.get_all("Requires-Dist") or [], platform
                ),
                cuda_version=_field(_CUDA_FIELD, version_text),
                libraries=[n for n in lib_files if _is_library_file(n)],
                cuda_runtime=[],
                wheel=path.name,
                sha256=sha256,
            )
            runtime: set[str] = set()
            for name in build.libraries:
                names, needed = _exports_of(archive, str(LIB_DIR / name))
                if is_torch_library(name):
                    runtime |= _record(build, name, names, needed)
                else:
                    runtime |= {n for n in needed if is_cuda_runtime(n)}
    except (WheelError, BinaryReadError, OSError, StopIteration) as exc:
        raise SystemExit(f"{path.name}: {exc!r}") from exc
    build.cuda_runtime = sorted(runtime - set(build.libraries))
    _check_cuda(build)
    return build


def _is_library_file(name: str) -> bool:
    return name.endswith((".so", ".dylib", ".dll")) or ".so." in name


def _field(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    return match.group(1) if match else None


def _check_cuda(build: BuildExports) -> None:
    """The three witnesses of the CUDA major must agree: requirements, version.py, libcudart."""
    cudart = {int(m.group(1)) for n in build.cuda_runtime if (m := _CUDART_MAJOR.match(n))}
    from_version = int(build.cuda_version.split(".")[0]) if build.cuda_version else None
    witnesses: set[int | None] = {build.cuda_major, from_version}
    witnesses |= cudart if cudart else {None}
    if len(witnesses) > 1:
        raise SystemExit(
            f"{build.wheel}: CUDA majors disagree: requirements {build.cuda_major}, "
            f"version.py {build.cuda_version}, libcudart {sorted(cudart)}"
        )


def read_build(path: Path, sha256: str, cache: Path) -> BuildExports:
    """:func:`read_wheel_build`, cached in ``cache`` by the wheel's SHA-256."""
    cached = cache / f"{sha256}.json.gz"
    if cached.is_file():
        data = json.loads(gzip.decompress(cached.read_bytes()))
        if data.pop("cache_format", None) == CACHE_FORMAT:
            return BuildExports(**data)
    build = read_wheel_build(path, sha256)
    cache.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"cache_format": CACHE_FORMAT, **asdict(build)}).encode()
    cached.write_bytes(gzip.compress(payload, 6))
    return build


def read_tree_exports(lib_dir: Path) -> dict[str, list[str]]:
    """Recorded exports of an installed ``torch/lib`` (single-release mode), by name."""
    exports: dict[str, list[str]] = {}
    for path in sorted(lib_dir.iterdir()):
        if not (path.is_file() and is_torch_library(path.name)):
            continue
        try:
            names = read_library(path).exports.names()
        except BinaryReadError as exc:
            raise SystemExit(f"{path}: {exc}") from exc
        python = path.name.startswith(("libtorch_python", "torch_python"))
        for name in names:
            if recorded_export(name, python_library=python):
                exports.setdefault(name, []).append(path.name)
    return exports


# -- the shipped files -------------------------------------------------------------------------


def symbol_file_name(platform: str) -> str:
    """``torch_release_exports_linux_x86_64.json.xz``."""
    return f"torch_release_exports_{platform}.json.xz"


def _ordered(builds: Sequence[BuildExports]) -> list[BuildExports]:
    order = {p: i for i, p in enumerate(PLATFORMS)}
    return sorted(builds, key=lambda b: (order[b.platform], Version(b.release)))


def build_exports_data(
    builds: Sequence[BuildExports], generated_on: str, notes: str
) -> tuple[dict[str, object], dict[str, dict[str, object]]]:
    """The index and, per platform, the symbol document (groups of names by column mask)."""
    builds = _ordered(builds)
    entries: list[dict[str, object]] = []
    documents: dict[str, dict[str, object]] = {}
    platforms = [p for p in PLATFORMS if any(b.platform == p for b in builds)]
    for platform in platforms:
        own = [b for b in builds if b.platform == platform]
        masks: dict[str, int] = {}
        for column, build in enumerate(own):
            entries.append(_index_entry(build, column))
            for name in build.exports:
                masks[name] = masks.get(name, 0) | (1 << column)
        groups: dict[int, list[str]] = {}
        for name, mask in masks.items():
            groups.setdefault(mask, []).append(name)
        documents[platform] = {
            "format": SUPPORTED_FORMAT,
            "platform": platform,
            "columns": [b.version for b in own],
            "groups": {f"{m:x}": sorted(groups[m]) for m in sorted(groups)},
        }
    index: dict[str, object] = {
        "format": SUPPORTED_FORMAT,
        "generated_by": "scripts/generate_stable_abi_data.py",
        "generated_on": generated_on,
        "notes": notes,
        "symbol_files": {p: symbol_file_name(p) for p in platforms},
        "builds": entries,
    }
    return index, documents


def _index_entry(build: BuildExports, column: int) -> dict[str, object]:
    return {
        "platform": build.platform,
        "release": build.release,
        "version": build.version,
        "variant": build.variant,
        "cuda_major": build.cuda_major,
        "cuda_version": build.cuda_version,
        "wheel": build.wheel,
        "sha256": build.sha256,
        "column": column,
        "symbols": len(build.exports),
        "libraries": build.libraries,
        "cuda_runtime": build.cuda_runtime,
    }


def render_index(index: dict[str, object]) -> str:
    """The index as JSON, one build per line."""
    head = {k: v for k, v in index.items() if k != "builds"}
    lines = ["{"]
    lines += [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    builds = index["builds"]
    assert isinstance(builds, list)
    lines.append(' "builds": [')
    lines.append(",\n".join(f"  {json.dumps(b)}" for b in builds))
    lines.append(" ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def compress_symbols(document: dict[str, object]) -> bytes:
    """A symbol document as xz-compressed JSON (deterministic: same input, same bytes)."""
    text = json.dumps(document, separators=(",", ":"), sort_keys=False)
    return lzma.compress(text.encode(), preset=9 | lzma.PRESET_EXTREME)


def write_exports_data(
    index: dict[str, object], documents: dict[str, dict[str, object]], data_dir: Path = DATA
) -> list[tuple[Path, int]]:
    """Write the index and the symbol files; returns each file with its size."""
    written = []
    for platform, document in documents.items():
        path = data_dir / symbol_file_name(platform)
        payload = compress_symbols(document)
        path.write_bytes(payload)
        written.append((path, len(payload)))
    index_path = data_dir / INDEX_FILE
    text = render_index(index)
    index_path.write_text(text, encoding="utf-8")
    written.append((index_path, len(text.encode())))
    return written


def exports_data_differs(
    index: dict[str, object], documents: dict[str, dict[str, object]], data_dir: Path = DATA
) -> list[str]:
    """The shipped files that do not hold what ``index`` and ``documents`` say (for --check)."""
    stale = []
    index_path = data_dir / INDEX_FILE
    current = json.loads(index_path.read_text("utf-8")) if index_path.is_file() else {}
    current.pop("generated_on", None)
    expected = {k: v for k, v in index.items() if k != "generated_on"}
    if current != json.loads(json.dumps(expected)):
        stale.append(INDEX_FILE)
    for platform, document in documents.items():
        path = data_dir / symbol_file_name(platform)
        shipped = json.loads(lzma.decompress(path.read_bytes())) if path.is_file() else None
        if shipped != json.loads(json.dumps(document)):
            stale.append(path.name)
    return stale


def c10_exports_of(exports: dict[str, list[str]], where: str = "") -> dict[str, str]:
    """The recorded exports of ``c10`` entities (operators included) in ``exports``, each with
    the first library exporting it (followed by `` (where)`` when given)."""
    suffix = f" ({where})" if where else ""
    return {
        name: f"{libraries[0]}{suffix}"
        for name, libraries in exports.items()
        if entity_scope(name)[:1] == ("c10",)
    }


def c10_exports(builds: Iterable[BuildExports]) -> dict[str, str]:
    """:func:`c10_exports_of` over ``builds``: each symbol with its oldest build exporting it."""
    found: dict[str, str] = {}
    for build in _ordered(list(builds)):
        for name, where in c10_exports_of(
            build.exports, f"{build.platform} {build.release}"
        ).items():
            found.setdefault(name, where)
    return found
