"""A torch installation to predict loading against: its version and what its libraries export.

A torch installation is a ``torch`` package directory (in a site-packages) or a torch wheel, read
in place. Nothing is imported: the version comes from ``torch/version.py`` read as text, the
exports from the symbol tables of the libtorch libraries under ``torch/lib`` (``libtorch_cpu``,
``libtorch``, ``libc10``, ``libtorch_cuda``, ``libc10_cuda``, ``libtorch_python``… — ``.so``,
``.dylib`` or ``.dll``). Reading them costs tens of milliseconds (``libtorch_cpu`` exports 75k
names), so an installation is read once per process and shared by every library judged against it.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

from torch_abi_audit.files import not_regular_reason, read_regular
from torch_abi_audit.readers import BinaryReadError, parse_library, read_library
from torch_abi_audit.rules.torch_abi import is_torch_library
from torch_abi_audit.sources.wheels import WheelArchive, WheelError

_VERSION = re.compile(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
LIB_DIR = PurePosixPath("torch/lib")
_MAX_VERSION_FILE = 1 << 20


class TorchInstallError(Exception):
    """The path is not a readable torch installation (the message says why)."""


class LoadTargetError(Exception):
    """``--torch`` or ``--torch-version`` names nothing usable (the message says why)."""


@dataclass(frozen=True)
class TorchInstall:
    """What a torch installation provides to the libraries that load against it.

    ``root`` is the ``torch`` package directory or the wheel; ``version`` its ``__version__``
    (``2.13.0+cpu``), ``None`` if ``version.py`` is missing; ``libraries`` the libtorch
    libraries whose exports were read (file names) and ``exports`` the union of their defined
    dynamic symbols; ``lib_files`` every file name in ``torch/lib`` (what ``import torch`` may
    have loaded). ``problems`` names libraries that could not be read.
    """

    root: Path
    version: str | None
    libraries: tuple[str, ...]
    exports: frozenset[str]
    lib_files: tuple[str, ...]
    problems: tuple[str, ...] = ()
    formats: frozenset[str] = frozenset()

    @property
    def release(self) -> str | None:
        """The version without its local part: ``2.13.0`` for ``2.13.0+cpu``."""
        return self.version.split("+")[0] if self.version else None

    @property
    def label(self) -> str:
        """``torch 2.13.0+cpu`` (or ``torch (unknown version)``) for messages."""
        return f"torch {self.version}" if self.version else "torch (unknown version)"

    @property
    def lib_dir(self) -> Path:
        """``torch/lib`` of a package directory (inside a wheel: the member path under it)."""
        return self.root / "lib" if self.root.is_dir() else self.root / LIB_DIR


def _version_of(text: str) -> str | None:
    match = _VERSION.search(text)
    return match[1] if match else None


def _torch_package(path: Path) -> Path | None:
    for candidate in (path, path / "torch"):
        if candidate.name == "torch" and (candidate / "lib").is_dir():
            return candidate
    return None


def find_torch(site_packages: Path) -> Path | None:
    """The ``torch`` package directory in ``site_packages``, if there is one with a ``lib``."""
    return _torch_package(site_packages / "torch")


@cache
def load_torch_install(path: Path) -> TorchInstall:
    """Read the torch installation at ``path``: a ``torch`` directory, a directory holding one
    (a site-packages), or a torch wheel. Cached per path for the process.

    Raises :class:`TorchInstallError` when ``path`` holds no torch, or no libtorch library of
    it can be read.
    """
    mode = path.stat().st_mode  # OSError when it does not exist
    if stat.S_ISREG(mode):
        return _from_wheel(path)
    if not stat.S_ISDIR(mode):  # a FIFO named *.whl is not opened
        raise TorchInstallError(f"{path}: {not_regular_reason(mode)}")
    package = _torch_package(path)
    if package is None:
        raise TorchInstallError(f"{path}: no torch package (torch/lib) here")
    try:
        text = read_regular(package / "version.py", _MAX_VERSION_FILE).decode("utf-8", "replace")
        version = _version_of(text)
    except OSError:  # missing, not a regular file, too large: the version is unknown
        version = None
    lib_files = tuple(sorted(p.name for p in (package / "lib").iterdir() if p.is_file()))
    exports: set[str] = set()
    read: list[str] = []
    problems: list[str] = []
    for name in lib_files:
        if not is_torch_library(name):
            continue
        try:
            exports.update(read_library(package / "lib" / name).exports.names())
            read.append(name)
        except (BinaryReadError, OSError) as exc:
            problems.append(f"{name}: {exc}")
    return _checked(
        TorchInstall(package, version, tuple(read), frozenset(exports), lib_files, tuple(problems))
    )


def _from_wheel(path: Path) -> TorchInstall:
    try:
        archive = WheelArchive(path)
    except WheelError as exc:
        raise TorchInstallError(f"{path.name}: {exc}") from exc
    with archive:
        names = set(archive.member_names())
        lib_files = tuple(
            sorted(
                PurePosixPath(n).name
                for n in names
                if PurePosixPath(n).parent == LIB_DIR and not n.endswith("/")
            )
        )
        version = None
        if "torch/version.py" in names:
            version = _version_of(archive.read_text("torch/version.py"))
        exports: set[str] = set()
        read: list[str] = []
        problems: list[str] = []
        formats: set[str] = set()
        for name in lib_files:
            if not is_torch_library(name):
                continue
            member = str(LIB_DIR / name)
            try:
                source = archive.open_member(member)
                try:
                    library = parse_library(source, path / member)
                    exports.update(library.exports.names())
                    formats.add(str(library.format))
                    source.finish()
                finally:
                    source.close()
                read.append(name)
            except (BinaryReadError, OSError, WheelError) as exc:
                problems.append(f"{name}: {exc}")
    return _checked(
        TorchInstall(path, version, tuple(read), frozenset(exports), lib_files, tuple(problems))
    )


def _checked(install: TorchInstall) -> TorchInstall:
    if not install.libraries:
        detail = f" ({'; '.join(install.problems)})" if install.problems else ""
        raise TorchInstallError(
            f"{install.root}: no readable libtorch library in torch/lib{detail}"
        )
    return install
