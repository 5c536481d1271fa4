"""A torch installation to predict loading against: its version and what its libraries export.

A torch installation is a ``torch`` package directory (in a site-packages) or a torch wheel, read
in place. Nothing is imported: the version comes from ``torch/version.py`` read as text, the
exports from the symbol tables of the libtorch libraries under ``torch/lib`` (``libtorch_cpu``,
``libtorch``, ``libc10``, ``libtorch_cuda``, ``libc10_cuda``, ``libtorch_python``… — ``.so``,
``.dylib`` or ``.dll``). Reading them costs tens of milliseconds (``libtorch_cpu`` exports 75k
names), so an installation is read once per process and shared by every library judged against it.
"""

from __future__ import annotations

import os
import re
import stat
import sysconfig
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path, PurePosixPath

from torch_abi_audit.files import is_inside, not_regular_reason, outside_reason, read_regular
from torch_abi_audit.model import Library
from torch_abi_audit.readers import BinaryReadError, parse_library, read_library
from torch_abi_audit.rules.cxx_abi import uses_cxx11_abi
from torch_abi_audit.rules.torch_abi import is_torch_library
from torch_abi_audit.sources.wheels import WheelArchive, WheelError

_VERSION = re.compile(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
LIB_DIR = PurePosixPath("torch/lib")
#: The wheel member that holds the ``__version__`` of a torch build.
VERSION_FILE = "torch/version.py"
_MAX_VERSION_FILE = 1 << 20
#: Environment variable naming the installed torch that scripts, tests and benchmarks use (a
#: ``torch`` package directory or a site-packages holding one).
TORCH_DIR_VARIABLE = "TORCH_ABI_AUDIT_TORCH_DIR"


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
    have loaded). ``problems`` names libraries that could not be read. ``formats`` are the
    binary formats of the libraries read; ``cxx11_abi`` says which libstdc++ string ABI an ELF
    build uses (:func:`~torch_abi_audit.rules.cxx_abi.uses_cxx11_abi`), ``None`` for other
    formats.
    """

    root: Path
    version: str | None
    libraries: tuple[str, ...]
    exports: frozenset[str]
    lib_files: tuple[str, ...]
    problems: tuple[str, ...] = ()
    formats: frozenset[str] = frozenset()
    cxx11_abi: bool | None = None

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


def version_field(text: str) -> str | None:
    """``__version__`` in the text of a torch ``version.py`` (``None`` when it names none)."""
    match = _VERSION.search(text)
    return match[1] if match else None


def torch_package(path: Path) -> Path | None:
    """``path`` itself or ``path/torch``, whichever is a ``torch`` package directory with a
    ``lib`` folder (an installation to load against); ``None`` if neither is."""
    for candidate in (path, path / "torch"):
        if candidate.name == "torch" and (candidate / "lib").is_dir():
            return candidate
    return None


def find_torch(site_packages: Path) -> Path | None:
    """The ``torch`` package directory in ``site_packages``, if there is one with a ``lib``."""
    return torch_package(site_packages / "torch")


def torch_version(package: Path) -> str | None:
    """``__version__`` of a ``torch`` package directory, read from ``version.py`` as text (never
    imported); ``None`` when the file is missing or names no version."""
    try:
        text = read_regular(package / "version.py", _MAX_VERSION_FILE, within=package)
    except OSError:  # missing, not a regular file (never opened), too large
        return None
    return version_field(text.decode("utf-8", errors="replace"))


@dataclass(frozen=True)
class TorchSearch:
    """Where an installed torch was looked for, and what was found (``package`` or ``None``)."""

    package: Path | None
    searched: str


def locate_installed_torch() -> TorchSearch:
    """The installed torch that scripts, tests and benchmarks use, found without importing it.

    ``$TORCH_ABI_AUDIT_TORCH_DIR`` (a ``torch`` directory or a site-packages holding one) when
    it is set, else this interpreter's site-packages (purelib, platlib).
    """
    configured = os.environ.get(TORCH_DIR_VARIABLE)
    if configured:
        return TorchSearch(torch_package(Path(configured)), f"${TORCH_DIR_VARIABLE}={configured}")
    paths = sysconfig.get_paths()
    sites = list(dict.fromkeys(Path(paths[key]) for key in ("purelib", "platlib")))
    for site in sites:
        found = find_torch(site)
        if found is not None:
            return TorchSearch(found, str(site))
    return TorchSearch(None, ", ".join(str(site) for site in sites))


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
    return _from_directory(path)


@dataclass
class _Reading:
    """The libtorch libraries of one installation, as they are read: the union of their
    exports, their formats, the names read and the problems met."""

    exports: set[str] = field(default_factory=set)
    read: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    formats: set[str] = field(default_factory=set)

    def add(self, name: str, library: Library, check: Callable[[], object] | None = None) -> None:
        """``library`` (file ``name``) was read; ``check`` (a wheel member's integrity check)
        runs after its exports are counted and before it counts as read."""
        self.exports.update(library.exports.names())
        self.formats.add(str(library.format))
        if check is not None:
            check()
        self.read.append(name)

    def fail(self, name: str, reason: object) -> None:
        self.problems.append(f"{name}: {reason}")

    def result(self, root: Path, version: str | None, lib_files: tuple[str, ...]) -> TorchInstall:
        return _checked(
            TorchInstall(
                root,
                version,
                tuple(self.read),
                frozenset(self.exports),
                lib_files,
                tuple(self.problems),
                frozenset(self.formats),
            )
        )


def _from_directory(path: Path) -> TorchInstall:
    package = torch_package(path)
    if package is None:
        raise TorchInstallError(f"{path}: no torch package (torch/lib) here")
    version = torch_version(package)
    lib_files = tuple(sorted(p.name for p in (package / "lib").iterdir() if p.is_file()))
    reading = _Reading()
    for name in lib_files:
        if not is_torch_library(name):
            continue
        file = package / "lib" / name
        if not is_inside(file, package):  # read nothing a link takes out of the installation
            reading.fail(name, outside_reason(os.path.realpath(file)))
            continue
        try:
            reading.add(name, read_library(file))
        except (BinaryReadError, OSError) as exc:
            reading.fail(name, exc)
    return reading.result(package, version, lib_files)


def lib_files_of(members: Iterable[str]) -> tuple[str, ...]:
    """The file names directly in ``torch/lib`` among a wheel's member names, sorted."""
    return tuple(
        sorted(
            PurePosixPath(n).name
            for n in members
            if PurePosixPath(n).parent == LIB_DIR and not n.endswith("/")
        )
    )


def _from_wheel(path: Path) -> TorchInstall:
    try:
        archive = WheelArchive(path)
    except WheelError as exc:
        raise TorchInstallError(f"{path.name}: {exc}") from exc
    with archive:
        names = set(archive.member_names())
        lib_files = lib_files_of(names)
        version = None
        if VERSION_FILE in names:
            version = version_field(archive.read_text(VERSION_FILE))
        reading = _Reading()
        for name in lib_files:
            if not is_torch_library(name):
                continue
            member = str(LIB_DIR / name)
            try:
                source = archive.open_member(member)
                try:
                    # A member whose integrity check fails is a problem; what it exports was
                    # counted already.
                    reading.add(name, parse_library(source, path / member), check=source.finish)
                finally:
                    source.close()
            except (BinaryReadError, OSError, WheelError) as exc:
                reading.fail(name, exc)
    return reading.result(path, version, lib_files)


def _checked(install: TorchInstall) -> TorchInstall:
    if not install.libraries:
        detail = f" ({'; '.join(install.problems)})" if install.problems else ""
        raise TorchInstallError(
            f"{install.root}: no readable libtorch library in torch/lib{detail}"
        )
    if install.formats == {"elf"}:
        return replace(install, cxx11_abi=uses_cxx11_abi(install.exports))
    return install
