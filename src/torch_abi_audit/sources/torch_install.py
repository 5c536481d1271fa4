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
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path, PurePosixPath

from torch_abi_audit.files import is_inside, not_regular_reason, outside_reason, read_regular
from torch_abi_audit.readers import BinaryReadError, parse_library, read_library
from torch_abi_audit.rules.cxx_abi import uses_cxx11_abi
from torch_abi_audit.rules.torch_abi import is_torch_library
from torch_abi_audit.sources.wheels import WheelArchive, WheelError

_VERSION = re.compile(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
LIB_DIR = PurePosixPath("torch/lib")
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


def _version_of(text: str) -> str | None:
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
    return _version_of(text.decode("utf-8", errors="replace"))


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
    package = torch_package(path)
    if package is None:
        raise TorchInstallError(f"{path}: no torch package (torch/lib) here")
    version = torch_version(package)
    lib_files = tuple(sorted(p.name for p in (package / "lib").iterdir() if p.is_file()))
    exports: set[str] = set()
    read: list[str] = []
    problems: list[str] = []
    formats: set[str] = set()
    for name in lib_files:
        if not is_torch_library(name):
            continue
        file = package / "lib" / name
        if not is_inside(file, package):  # read nothing a link takes out of the installation
            problems.append(f"{name}: {outside_reason(os.path.realpath(file))}")
            continue
        try:
            library = read_library(file)
            exports.update(library.exports.names())
            formats.add(str(library.format))
            read.append(name)
        except (BinaryReadError, OSError) as exc:
            problems.append(f"{name}: {exc}")
    return _checked(
        TorchInstall(
            package,
            version,
            tuple(read),
            frozenset(exports),
            lib_files,
            tuple(problems),
            frozenset(formats),
        )
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
        TorchInstall(
            path,
            version,
            tuple(read),
            frozenset(exports),
            lib_files,
            tuple(problems),
            frozenset(formats),
        )
    )


def _checked(install: TorchInstall) -> TorchInstall:
    if not install.libraries:
        detail = f" ({'; '.join(install.problems)})" if install.problems else ""
        raise TorchInstallError(
            f"{install.root}: no readable libtorch library in torch/lib{detail}"
        )
    if install.formats == {"elf"}:
        return replace(install, cxx11_abi=uses_cxx11_abi(install.exports))
    return install
