#!/usr/bin/env python3
"""Generate ``src/torch_abi_audit/data/torch_stable_abi.json`` from a real PyTorch release.

The table is never edited by hand: re-run this script against a torch release to update it.

    python scripts/generate_stable_abi_data.py --torch /path/to/site-packages/torch
    python scripts/generate_stable_abi_data.py --torch torch-2.13.0-cp311-...-x86_64.whl
    python scripts/generate_stable_abi_data.py --check --torch ...   # exit 1 if the file differs

With no ``--torch`` the script looks for an installed ``torch`` next to the running interpreter
(without importing it). What it reads:

* the shim headers under ``torch/include`` (``aoti_torch/c/shim*.h``, ``aoti_torch/generated/
  c_shim_*.h``, ``stable/c/shim.h``): every ``AOTI_TORCH_EXPORT`` C function, with the
  ``TORCH_FEATURE_VERSION >= TORCH_VERSION_X_Y_Z`` guard around it (unguarded means "before
  2.10", recorded as the 2.9.0 baseline), its device tier, and ``[[deprecated]]`` markers;
* ``torch/headeronly``: the ``c10`` names it re-exports with ``using c10::X`` — header-only code
  that may appear as defined (weak) symbols in stable extensions;
* the exports of ``libtorch_cpu``, ``libc10``, ``libtorch`` and ``libtorch_python``: which shims the
  release really exports, and the libtorch-owned C names (``THP*``, ``FLAGS_*``…) that are not
  shims and therefore tie a library to one release.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import sysconfig
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from torch_abi_audit.readers import BinaryReadError, read_library  # noqa: E402

OUTPUT = REPO / "src" / "torch_abi_audit" / "data" / "torch_stable_abi.json"
FORMAT_VERSION = 1
BASELINE_VERSION = "2.9.0"

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
# C (unmangled) exports of the libraries above that belong to libtorch rather than to the
# third-party code it bundles (MKL, Sleef, libuv, miniz, NNPACK, cpuinfo…).
TORCH_OWNED_C_PREFIXES = ("THP", "FLAGS_", "torch_", "aoti_", "_torch_", "at_", "c10_")
LIBRARY_STEMS = frozenset(TORCH_LIBRARIES) | {s.removeprefix("lib") for s in TORCH_LIBRARIES}
PLATFORM_C_NAMES = {"_end", "_edata", "__bss_start", "_init", "_fini"}

_VERSION_GUARD = re.compile(r"TORCH_FEATURE_VERSION\s*>=\s*TORCH_VERSION_(\d+)_(\d+)_(\d+)")
_DEVICE_GUARD = re.compile(r"\bUSE_(CUDA|XPU|MPS|ROCM)\b")
_DECLARATION = re.compile(
    r"(?P<deprecated>\[\[deprecated(?:\((?P<message>(?:[^()]|\([^()]*\))*)\))?\]\]\s*)?"
    r"AOTI_TORCH_EXPORT\b(?P<decl>[^;{]*?)\b(?P<name>[A-Za-z_]\w*)\s*\(",
    re.S,
)
_USING_C10 = re.compile(r"\busing\s+(?:::)?(c10(?:::\w+)+)\s*;")
_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)


@dataclass
class ShimDeclaration:
    """One shim function as declared by one release's headers."""

    name: str
    header: str
    device: str
    guard: str | None
    deprecated: bool
    deprecation_message: str | None


@dataclass
class ReleaseData:
    """What one torch release declares and exports."""

    version: str
    source: str
    declarations: dict[str, ShimDeclaration] = field(default_factory=dict)
    exported_shims: dict[str, list[str]] = field(default_factory=dict)
    header_only: set[str] = field(default_factory=set)
    internal_c_symbols: dict[str, str] = field(default_factory=dict)


# -- header parsing --------------------------------------------------------------------------


def _strip_comments(text: str) -> str:
    # Keep string literals intact enough for deprecation messages: comments never hold them.
    return _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def parse_shim_header(text: str, header: str, device: str) -> Iterator[ShimDeclaration]:
    """Yield every ``AOTI_TORCH_EXPORT`` function of one header with its guards.

    Preprocessor conditions are tracked as a stack: a declaration's guard is the newest
    ``TORCH_FEATURE_VERSION`` condition around it (``#else`` branches of a version guard are
    older API and count as unguarded); ``USE_CUDA``/``USE_XPU``/``USE_MPS`` blocks set the
    device tier.
    """
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
            message = match.group("message")
            yield ShimDeclaration(
                name=match.group("name"),
                header=header,
                device=devices[-1] if devices else device,
                guard=guard,
                deprecated=match.group("deprecated") is not None,
                deprecation_message=_c_string(message) if message else None,
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


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def parse_header_only_names(texts: Iterable[str]) -> set[str]:
    """The ``c10::`` names that ``torch/headeronly`` re-exports (header-only code)."""
    names: set[str] = set()
    for text in texts:
        for match in _USING_C10.finditer(_strip_comments(text)):
            names.add(match.group(1))
    # ``using c10::operator+;`` and friends are judged by their argument types, not by name.
    return {n for n in names if not n.endswith("::operator")}


# -- release sources ---------------------------------------------------------------------------


class TorchTree:
    """An unpacked torch package directory (``.../site-packages/torch``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read_text(self, relative: str) -> str | None:
        path = self.root / relative
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None

    def glob_text(self, relative_dir: str, pattern: str) -> list[str]:
        base = self.root / relative_dir
        return [
            p.read_text(encoding="utf-8", errors="replace") for p in sorted(base.rglob(pattern))
        ]

    def library(self, stem: str) -> Path | None:
        for suffix in (".so", ".dylib", ".dll"):
            for candidate in (
                self.root / "lib" / f"{stem}{suffix}",
                self.root / "lib" / f"{stem.removeprefix('lib')}{suffix}",
            ):
                if candidate.is_file():
                    return candidate
        return None

    def version(self) -> str:
        text = self.read_text("version.py") or ""
        match = re.search(r"__version__\s*=\s*['\"]([^'\"]+)['\"]", text)
        if not match:
            raise SystemExit(f"cannot find the torch version in {self.root / 'version.py'}")
        return match.group(1)


def open_release(path: Path, workdir: Path) -> TorchTree:
    """A :class:`TorchTree` for an installed torch directory or a torch wheel."""
    if path.is_dir():
        return TorchTree(path)
    if path.suffix == ".whl":
        wanted = ("torch/include/", "torch/version.py", "torch/lib/")
        with zipfile.ZipFile(path) as wheel:
            for member in wheel.namelist():
                if not member.startswith(wanted):
                    continue
                stem = Path(member).name.split(".")[0]
                if member.startswith("torch/lib/") and stem not in LIBRARY_STEMS:
                    continue
                wheel.extract(member, workdir)
        return TorchTree(workdir / "torch")
    raise SystemExit(f"{path}: expected a torch directory or a .whl file")


def default_torch_dir() -> Path | None:
    for key in ("platlib", "purelib"):
        candidate = Path(sysconfig.get_paths()[key]) / "torch"
        if (candidate / "include").is_dir():
            return candidate
    return None


def read_release(tree: TorchTree, source: str) -> ReleaseData:
    release = ReleaseData(version=tree.version().split("+")[0], source=source)
    for header, device in SHIM_HEADERS.items():
        text = tree.read_text(f"include/{header}")
        if text is None:
            continue
        for declaration in parse_shim_header(text, header, device):
            release.declarations.setdefault(declaration.name, declaration)
    release.header_only = parse_header_only_names(
        tree.glob_text(f"include/{HEADERONLY_DIR}", "*.h")
    )
    for stem in TORCH_LIBRARIES:
        path = tree.library(stem)
        if path is None:
            continue
        try:
            library = read_library(path)
        except BinaryReadError as exc:
            raise SystemExit(f"{path}: {exc}") from exc
        for name in sorted(library.exports.names()):
            if name.startswith("_Z") or name in PLATFORM_C_NAMES:
                continue
            # Shims are what the headers declare; an undeclared aoti_torch_* export of
            # libtorch_cpu is a shim too (declared in a header this release does not ship).
            if name in release.declarations or (
                stem == "libtorch_cpu" and name.startswith("aoti_torch_")
            ):
                release.exported_shims.setdefault(name, []).append(stem)
            elif stem == "libtorch_python" or name.startswith(TORCH_OWNED_C_PREFIXES):
                release.internal_c_symbols.setdefault(name, stem)
    return release


# -- the table ---------------------------------------------------------------------------------


def build_table(release: ReleaseData) -> dict[str, object]:
    shims: dict[str, dict[str, object]] = {}
    declared = release.declarations
    exported = release.exported_shims
    for name in sorted(set(declared) | set(exported)):
        declaration = declared.get(name)
        entry: dict[str, object] = {
            "since": declaration.guard if declaration and declaration.guard else BASELINE_VERSION,
            "guard": declaration.guard if declaration else None,
            "device": declaration.device if declaration else "cpu",
            "header": declaration.header if declaration else None,
            "exported_by": exported.get(name, []),
            "deprecated": bool(declaration and declaration.deprecated),
        }
        if declaration and declaration.deprecation_message:
            entry["deprecation_message"] = declaration.deprecation_message
        shims[name] = entry
    return {
        "format": FORMAT_VERSION,
        "generated_by": "scripts/generate_stable_abi_data.py",
        "generated_on": dt.date.today().isoformat(),
        "baseline_version": BASELINE_VERSION,
        "releases": [{"version": release.version, "source": release.source}],
        "notes": (
            "since = the TORCH_FEATURE_VERSION guard around the declaration in the headers of the "
            "releases listed; unguarded declarations predate 2.10 and are recorded as the 2.9.0 "
            "baseline. Do not edit: re-run the generator."
        ),
        "shims": shims,
        "header_only": sorted(release.header_only),
        "internal_c_symbols": dict(sorted(release.internal_c_symbols.items())),
    }


def render(table: dict[str, object]) -> str:
    return json.dumps(table, indent=1, sort_keys=False) + "\n"


def _comparable(text: str) -> dict[str, object]:
    data = json.loads(text)
    data.pop("generated_on", None)
    if isinstance(data, dict):
        for release in data.get("releases", []):
            release.pop("source", None)
    return data  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--torch", type=Path, help="torch package directory or torch wheel")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if the output would change"
    )
    args = parser.parse_args(argv)
    torch_path = args.torch or default_torch_dir()
    if torch_path is None:
        parser.error("no installed torch found; pass --torch DIR_OR_WHEEL")
    with tempfile.TemporaryDirectory(prefix="torch-abi-data-") as workdir:
        tree = open_release(torch_path.resolve(), Path(workdir))
        release = read_release(tree, source=torch_path.name)
    text = render(build_table(release))
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else "{}"
        if _comparable(current) != _comparable(text):
            print(f"{args.output} is out of date; re-run {Path(__file__).name}", file=sys.stderr)
            return 1
        print(f"{args.output} matches torch {release.version}")
        return 0
    args.output.write_text(text, encoding="utf-8")
    counts: dict[str, int] = {}
    for name in release.declarations:
        since = release.declarations[name].guard or BASELINE_VERSION
        counts[since] = counts.get(since, 0) + 1
    per_release = ", ".join(
        f"{since}: {count}"
        for since, count in sorted(counts.items(), key=lambda kv: _version_key(kv[0]))
    )
    print(
        f"wrote {args.output}: torch {release.version}, {len(release.declarations)} declared "
        f"shims ({per_release}), {len(release.exported_shims)} exported, "
        f"{len(release.header_only)} header-only names, "
        f"{len(release.internal_c_symbols)} internal C symbols"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
