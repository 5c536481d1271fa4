"""Predict where the dynamic loader finds each library another one needs, without loading it.

The situation modelled is ``import ext`` in a Python process that has already done
``import torch``: torch's own libraries (and what they pulled in) are loaded, so a needed entry
naming one of them is satisfied whatever the search path says, because every loader first looks
among the objects already loaded (glibc ``_dl_map_object`` compares the name with each loaded
object's name and ``DT_SONAME``; dyld compares install names; Windows checks the loaded-module
list). Only then does each format walk its own search path:

* **ELF** (ld.so(8), "Finding shared objects"): a name containing ``/`` is a path; otherwise
  ``DT_RPATH`` of the object, only when it has no ``DT_RUNPATH``; ``LD_LIBRARY_PATH``; then
  ``DT_RUNPATH``; then ``/etc/ld.so.cache`` and the trusted default directories.
  ``LD_LIBRARY_PATH`` is ignored here: the environment the extension will be imported in is not
  ours to guess. The ``DT_RPATH`` of the objects that loaded this one (the interpreter's own,
  when it has one) is not followed either.
* **Mach-O** (dyld(1), ``dyld/Loader.cpp``): ``@rpath/`` against each ``LC_RPATH`` with
  ``@loader_path`` expanded (``@executable_path`` is the interpreter's directory, unknown here,
  so such entries are skipped — unless the file is itself the executable: then it is its own
  directory); ``@loader_path/``; absolute paths, where ``/usr/lib/…`` and
  ``/System/…`` are provided by macOS (the dyld shared cache) and satisfied without looking.
  The ``LC_RPATH`` entries of the loading chain and the ``DYLD_FALLBACK_LIBRARY_PATH`` defaults
  (``/usr/local/lib``) are not modelled.
* **PE** (CPython >= 3.8 loads extensions with ``LoadLibraryExW(path, NULL,
  LOAD_LIBRARY_SEARCH_DEFAULT_DIRS | LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR)``, ``Python/dynload_win.c``,
  bpo-36085; order per Microsoft Learn, "Dynamic-link library search order"): the DLL's own
  directory, the ``os.add_dll_directory`` directories, System32. Names are case-insensitive.
  ``PATH`` and the current directory are not searched with those flags.

Nothing is executed: lookups go through a :class:`Namespace`, the real file system
(:class:`FileSystemNamespace`) or a wheel's member list (:class:`WheelNamespace`).
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Protocol

from torch_abi_audit.files import read_regular
from torch_abi_audit.model import BinaryFormat, Library
from torch_abi_audit.rules.bundled_runtimes import is_cuda_runtime
from torch_abi_audit.sources.discovery import is_library_name

__all__ = [
    "FileSystemNamespace",
    "LoadContext",
    "LoadVia",
    "Namespace",
    "Resolution",
    "WheelNamespace",
    "is_cuda_runtime",
    "resolve_needed",
    "site_packages_context",
    "system_library_dirs",
]


class Namespace(Protocol):
    """Where files are looked up: the real file system, or a wheel's member list."""

    def exists(self, path: PurePosixPath) -> bool:
        """True when a file or directory exists at ``path``."""
        ...

    def listdir(self, path: PurePosixPath) -> Iterable[str]:
        """The entry names of the directory ``path`` (nothing if it is not one)."""
        ...


class FileSystemNamespace:
    """The real file system: ``exists`` and ``listdir`` never raise."""

    def exists(self, path: PurePosixPath) -> bool:
        return Path(path).exists()

    def listdir(self, path: PurePosixPath) -> Iterable[str]:
        try:
            return sorted(entry.name for entry in Path(path).iterdir())
        except OSError:
            return ()


# A wheel's ``<dist>.data/purelib/`` and ``platlib/`` members install into site-packages itself.
_SITE_ROOT = PurePosixPath(".")
_WHEEL_DATA = re.compile(r"^[^/]+\.data/(?:purelib|platlib)/")


class WheelNamespace:
    """A wheel's members as installed under the site-packages root ``prefix``.

    Directories are derived from member paths, so a ``RUNPATH`` of ``$ORIGIN/../pkg.libs`` or an
    ``@loader_path/../.dylibs/`` name resolves inside the wheel; anything outside it exists
    nowhere. Paths are compared after lexical normalisation (``a/b/../c`` is ``a/c``).
    """

    def __init__(self, member_names: Iterable[str], prefix: PurePosixPath = _SITE_ROOT) -> None:
        self.prefix = prefix
        self._files: set[str] = set()
        self._children: dict[str, set[str]] = {}
        for member in member_names:
            if member.endswith("/"):
                continue
            path = _normalize(prefix / _WHEEL_DATA.sub("", member))
            self._files.add(str(path))
            child = path
            for parent in path.parents:
                self._children.setdefault(str(parent), set()).add(child.name)
                child = parent

    def path(self, member: str) -> PurePosixPath:
        """Where the member ``member`` lands once installed (what to pass as a location)."""
        return _normalize(self.prefix / _WHEEL_DATA.sub("", member))

    def exists(self, path: PurePosixPath) -> bool:
        key = str(_normalize(path))
        return key in self._files or key in self._children

    def listdir(self, path: PurePosixPath) -> Iterable[str]:
        return sorted(self._children.get(str(_normalize(path)), ()))


@dataclass(frozen=True)
class LoadContext:
    """What the importing process looks like.

    ``preloaded`` are the file names of the libraries already loaded (ELF sonames, Mach-O
    install-name basenames, DLL names, compared case-insensitively for PE). ``extra_dirs`` are
    the directories the process added to the search (``os.add_dll_directory``); only the
    Windows loader has such a thing, so ELF and Mach-O lookups ignore them (on those systems
    torch's own RPATHs load its libraries, which ``preloaded`` accounts for). ``system_dirs`` is
    the ELF system search path (:func:`system_library_dirs`), looked up in ``namespace``; when
    none of them exists there (a wheel, or an empty tuple) the system is unknown and the
    libraries the manylinux policy lets every wheel assume (``libc.so.6``, ``libstdc++.so.6``…,
    plus the driver's ``libcuda.so.1``) count as provided by the system.
    """

    format: BinaryFormat
    preloaded: frozenset[str]
    extra_dirs: tuple[PurePosixPath, ...]
    system_dirs: tuple[PurePosixPath, ...]
    namespace: Namespace


class LoadVia(StrEnum):
    """How a needed entry is satisfied (or that it is not)."""

    PRELOADED = "preloaded"  # a library of that name is already loaded (torch and its deps)
    RPATH = "rpath"  # ELF DT_RPATH, Mach-O LC_RPATH
    RUNPATH = "runpath"  # ELF DT_RUNPATH
    LOADER_PATH = "loader path"  # Mach-O @loader_path/, PE: the DLL's own directory
    ADDED_DIRECTORY = "added dll directory"  # PE: os.add_dll_directory (torch/lib, nvidia/*)
    SYSTEM_PATH = "system path"  # ELF: ld.so.cache / ld.so.conf / default directories
    SYSTEM = "system"  # provided by the OS, satisfied without looking
    PATH = "path"  # the needed name is itself an absolute path
    UNKNOWN = "unknown"  # relative to the working or executable directory: cannot tell
    MISSING = "missing"


@dataclass(frozen=True)
class Resolution:
    """Where one needed entry would be loaded from.

    ``found`` is the path in the namespace (``None`` when preloaded, provided by the system,
    unknown or missing); ``entry`` the search-path entry that found it as the binary spells it
    (``$ORIGIN/../lib``, ``@loader_path/../.dylibs``) or the added directory; ``tried`` every
    candidate path looked at, in order.
    """

    needed: str
    found: PurePosixPath | None
    how: LoadVia
    format: BinaryFormat
    entry: str | None = None
    tried: tuple[PurePosixPath, ...] = ()

    @property
    def missing(self) -> bool:
        """True when the loader would fail on this entry."""
        return self.how is LoadVia.MISSING

    def error_message(self, library_name: str) -> str:
        """The loader's own words for this failure, as the ``ImportError`` shows them.

        ``library_name`` is the path (or file name) of the library that needs the entry: dyld
        names it in ``Referenced from``, and Windows' message names the module being imported
        (the file name before its first ``.``, or the last component of a dotted module name).

        Raises :class:`ValueError` if the entry is not missing.
        """
        if not self.missing:
            raise ValueError(f"{self.needed} is not missing (found: {self.how})")
        if self.format is BinaryFormat.ELF:
            # glibc elf/dl-load.c, _dl_map_object: _dl_signal_error (errno, name, NULL,
            # N_("cannot open shared object file")); dlfcn/dlerror.c joins object name, message
            # and strerror(ENOENT) with ": ". CPython's dynload_shlib.c raises ImportError with
            # dlerror() unchanged: "libtorch_cuda.so: cannot open shared object file: No such
            # file or directory" (e.g. github.com/C0untFloyd/bark-gui/issues/112).
            return f"{self.needed}: cannot open shared object file: No such file or directory"
        if self.format is BinaryFormat.MACHO:
            # dyld/Loader.cpp (dyld4): "Library not loaded: %s\n  Referenced from: <%s> %s%s\n
            # Reason: %s"; the reason is "no LC_RPATH's found" or "tried: '<path>' (no such
            # file), ..." (github.com/pytorch/pytorch/issues/72172). The image UUID is not
            # modelled, so "<UUID> " is left out; Python prefixes "dlopen(<path>, 0x0002): ".
            if self.needed.startswith("@rpath/") and not self.tried:
                reason = "no LC_RPATH's found"
            else:
                reason = "tried: " + ", ".join(f"'{p}' (no such file)" for p in self.tried)
            return (
                f"Library not loaded: {self.needed}\n"
                f"  Referenced from: {library_name}\n"
                f"  Reason: {reason}"
            )
        # CPython Python/dynload_win.c: "DLL load failed while importing %s: " + the
        # FormatMessageW text of GetLastError(), ERROR_MOD_NOT_FOUND (126) for a missing
        # dependency: "The specified module could not be found."
        return (
            f"DLL load failed while importing {_module_short_name(library_name)}: "
            "The specified module could not be found."
        )


def _module_short_name(library_name: str) -> str:
    base = library_name.replace("\\", "/").rsplit("/", 1)[-1]
    if base.lower().endswith((".pyd", ".dll", ".so")):
        return base.split(".", 1)[0]
    return base.rsplit(".", 1)[-1]


def _normalize(path: PurePosixPath) -> PurePosixPath:
    return PurePosixPath(posixpath.normpath(str(path)))


# ---------------------------------------------------------------------------------------------
# System libraries


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# ELF: what a manylinux wheel may assume every system provides (PEP 513 / 571 / 599 / 600
# whitelist, as auditwheel's policy lists it), the dynamic linkers, and the NVIDIA driver's
# libraries. Used only when the system is unknown (no system directory in the namespace).
_ELF_BASELINE = _names(
    """
    libc.so.6 libm.so.6 libdl.so.2 librt.so.1 libpthread.so.0 libutil.so.1 libnsl.so.1
    libresolv.so.2 libcrypt.so.1 libgcc_s.so.1 libstdc++.so.6 libX11.so.6 libXext.so.6
    libXrender.so.1 libICE.so.6 libSM.so.6 libGL.so.1 libgobject-2.0.so.0
    libgthread-2.0.so.0 libglib-2.0.so.0 libmvec.so.1 ld-linux-x86-64.so.2
    ld-linux-aarch64.so.1 ld-linux.so.2 ld64.so.1 ld64.so.2 ld-linux-armhf.so.3 libcuda.so.1
    libnvidia-ml.so.1
    """
)
_MACHO_SYSTEM_PREFIXES = ("/usr/lib/", "/System/")
# PE: DLLs that ship with Windows (System32, most of them KnownDLLs), the CUDA driver (nvcuda.dll
# and nvml.dll live in System32), API sets, the Visual C++ redistributable, and the interpreter's
# own python3*.dll (already loaded from the application directory).
_WINDOWS_DLLS = _names(
    """
    kernel32 kernelbase ntdll user32 gdi32 gdi32full advapi32 sechost shell32 shlwapi shcore
    ole32 oleaut32 combase rpcrt4 ws2_32 wsock32 mswsock crypt32 bcrypt bcryptprimitives
    ncrypt secur32 sspicli userenv version winmm dbghelp dbgcore psapi setupapi cfgmgr32
    comctl32 comdlg32 imm32 iphlpapi netapi32 normaliz wldap32 wintrust powrprof dwmapi
    uxtheme dxgi d3d11 d3d12 dxcore d3dcompiler_47 opengl32 glu32 msvcrt ucrtbase msvcp_win
    winhttp wininet urlmon propsys mpr dnsapi hid nvcuda nvml
    """
)
_WINDOWS_RUNTIME = re.compile(
    r"""(?ix)
    (?:api-ms-win-|ext-ms-win-)[\w.-]+
    | (?:vcruntime140(?:_1|_threads)?|msvcp140(?:_1|_2|_atomic_wait|_codecvt_ids)?|concrt140
       |vcomp140|vccorlib140|vcamp140|mfc140u?|python3\d*(?:_d)?)\.dll
    """
)


def _is_windows_system_dll(name: str) -> bool:
    lowered = name.lower()
    stem, _, ext = lowered.rpartition(".")
    if ext == "dll" and stem in _WINDOWS_DLLS:
        return True
    return _WINDOWS_RUNTIME.fullmatch(lowered) is not None


# Debian multiarch tuples, for the default directories and the ``$LIB`` expansion.
_MULTIARCH = {
    "x86_64": "x86_64-linux-gnu",
    "i386": "i386-linux-gnu",
    "aarch64": "aarch64-linux-gnu",
    "ppc64le": "powerpc64le-linux-gnu",
    "s390x": "s390x-linux-gnu",
    "armv7l": "arm-linux-gnueabihf",
    "riscv64": "riscv64-linux-gnu",
}
# AT_PLATFORM, what ``$PLATFORM`` expands to, by wheel machine name.
_AT_PLATFORM = {"x86_64": "x86_64", "i386": "i686", "aarch64": "aarch64", "ppc64le": "ppc64le"}


@functools.cache
def system_library_dirs(root: Path = Path("/")) -> tuple[PurePosixPath, ...]:
    """The ELF system search path of the system mounted at ``root``, in search order.

    The directories ``/etc/ld.so.conf`` lists (what ``ldconfig`` puts in ``ld.so.cache``):
    one per line, ``#`` comments, ``include`` glob patterns (relative ones to the including
    file's directory, as glibc's ``ldconfig`` resolves them; each file read once, so include
    loops end), ``hwcap`` lines ignored; then the trusted defaults ld.so(8) searches last
    (``/lib``, ``/usr/lib``, ``/lib64``, ``/usr/lib64`` and the Debian multiarch directories).
    Only directories that exist are kept, named as the system names them (without ``root``).
    An unreadable configuration file is skipped. Cached per process and ``root``.
    """
    found: list[PurePosixPath] = []
    seen_files: set[str] = set()

    def under_root(path: str) -> Path:
        return root / path.lstrip("/")

    def add(directory: str) -> None:
        path = PurePosixPath(posixpath.normpath(directory))
        if path.is_absolute() and path not in found and under_root(str(path)).is_dir():
            found.append(path)

    def parse(conf: str) -> None:
        real = os.path.realpath(under_root(conf))
        if real in seen_files:
            return
        seen_files.add(real)
        try:
            text = read_regular(under_root(conf), 1 << 20).decode("utf-8", errors="replace")
        except OSError:
            return
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            keyword, *rest = line.split()
            if keyword == "include" and rest:
                for pattern in rest:
                    absolute = posixpath.join(posixpath.dirname(conf), pattern)
                    for match in sorted(root.glob(absolute.lstrip("/"))):
                        parse("/" + match.relative_to(root).as_posix())
            elif keyword == "hwcap":
                continue
            else:
                # Old ldconfig syntax "dir=TYPE" names a library type after the directory.
                add(line.split("=", 1)[0].strip())

    parse("/etc/ld.so.conf")
    # ld.so's built-in directories: Debian's multiarch ones, then upstream's lib64 and lib.
    multiarch = [f"{p}/{t}" for t in _MULTIARCH.values() for p in ("/lib", "/usr/lib")]
    for directory in [*multiarch, "/lib64", "/usr/lib64", "/lib", "/usr/lib"]:
        add(directory)
    return tuple(found)


# ---------------------------------------------------------------------------------------------
# Resolution

_DST = re.compile(r"\$(?:\{(ORIGIN|LIB|PLATFORM)\}|(ORIGIN|LIB|PLATFORM)(?![A-Za-z0-9_]))")


def _expand_elf_entry(entry: str, origin: PurePosixPath, library: Library) -> list[str]:
    """The directories one RPATH/RUNPATH entry stands for (ld.so(8) dynamic string tokens).

    ``$ORIGIN`` is the object's directory. ``$LIB`` is ``lib64`` (64-bit) or ``lib`` upstream
    but ``lib/<multiarch>`` on Debian-built glibc, so both are tried, in that order.
    ``$PLATFORM`` is the AT_PLATFORM string of the machine (``x86_64``, ``i686``…); for other
    machines the entry is dropped. An empty entry, or one that starts neither with ``/`` nor
    with ``$ORIGIN``, names a directory relative to the process's working directory, which is
    unknown: dropped too.
    """
    first = _DST.match(entry)
    if not entry.startswith("/") and not (first and "ORIGIN" in first.groups()):
        return []
    variants = [entry]
    for match in _DST.finditer(entry):
        token = match.group(1) or match.group(2)
        if token == "ORIGIN":
            values = [str(origin)]
        elif token == "LIB":
            values = ["lib64" if library.bits == 64 else "lib"]
            if library.machine in _MULTIARCH:
                values.append(f"lib/{_MULTIARCH[library.machine]}")
        else:
            platform = _AT_PLATFORM.get(library.machine)
            if platform is None:
                return []
            values = [platform]
        text = match.group(0)
        variants = [v.replace(text, value, 1) for v in variants for value in values]
    return variants


def _elf_entries(library: Library) -> tuple[LoadVia, list[str]]:
    # ld.so(8): DT_RPATH is used only if DT_RUNPATH is absent. Entries are ':'-separated.
    if library.runpath:
        return LoadVia.RUNPATH, [p for e in library.runpath for p in e.split(":")]
    return LoadVia.RPATH, [p for e in library.rpath for p in e.split(":")]


def _resolve_elf(
    name: str, library: Library, location: PurePosixPath, context: LoadContext
) -> Resolution:
    fmt = BinaryFormat.ELF
    ns = context.namespace
    if "/" in name:
        # ld.so(8): a name containing a slash is used as a path, relative ones from the
        # working directory.
        path = PurePosixPath(name)
        if not path.is_absolute():
            return Resolution(name, None, LoadVia.UNKNOWN, fmt)
        if ns.exists(path):
            return Resolution(name, _normalize(path), LoadVia.PATH, fmt, tried=(path,))
        return Resolution(name, None, LoadVia.MISSING, fmt, tried=(path,))
    if name in context.preloaded:
        return Resolution(name, None, LoadVia.PRELOADED, fmt)
    tried: list[PurePosixPath] = []
    how, entries = _elf_entries(library)
    for entry in entries:
        for expanded in _expand_elf_entry(entry, location.parent, library):
            candidate = _normalize(PurePosixPath(expanded) / name)
            tried.append(candidate)
            if ns.exists(candidate):
                return Resolution(name, candidate, how, fmt, entry, tuple(tried))
    for directory in context.system_dirs:
        candidate = directory / name
        tried.append(candidate)
        if ns.exists(candidate):
            return Resolution(
                name, candidate, LoadVia.SYSTEM_PATH, fmt, str(directory), tuple(tried)
            )
    if name in _ELF_BASELINE and not any(ns.exists(d) for d in context.system_dirs):
        return Resolution(name, None, LoadVia.SYSTEM, fmt, tried=tuple(tried))
    return Resolution(name, None, LoadVia.MISSING, fmt, tried=tuple(tried))


def _resolve_macho(
    name: str, library: Library, location: PurePosixPath, context: LoadContext
) -> Resolution:
    fmt = BinaryFormat.MACHO
    ns = context.namespace

    def lookup(path: PurePosixPath, how: LoadVia, entry: str | None) -> Resolution:
        candidate = _normalize(path)
        if str(candidate).startswith(_MACHO_SYSTEM_PREFIXES):
            return Resolution(name, None, LoadVia.SYSTEM, fmt, entry)
        if ns.exists(candidate):
            return Resolution(name, candidate, how, fmt, entry, (candidate,))
        return Resolution(name, None, LoadVia.MISSING, fmt, entry, (candidate,))

    if name.startswith("@rpath/"):
        leaf = name.removeprefix("@rpath/")
        # dyld matches an already-loaded image by install name; torch's are @rpath/<file>.
        if PurePosixPath(leaf).name in context.preloaded:
            return Resolution(name, None, LoadVia.PRELOADED, fmt)
        tried: list[PurePosixPath] = []
        own_directory = (
            ("@loader_path", "@executable_path") if library.executable else ("@loader_path",)
        )
        for entry in library.rpath:
            token = next((p for p in own_directory if entry.startswith(p)), None)
            if token is not None:
                directory = str(location.parent) + entry.removeprefix(token)
            elif entry.startswith("/"):
                directory = entry
            else:
                continue  # @executable_path (the interpreter) or working-directory relative
            result = lookup(PurePosixPath(directory) / leaf, LoadVia.RPATH, entry)
            if not result.missing:
                return Resolution(
                    name, result.found, result.how, fmt, entry, (*tried, *result.tried)
                )
            tried.extend(result.tried)
        return Resolution(name, None, LoadVia.MISSING, fmt, tried=tuple(tried))
    if name.startswith("@loader_path/") or (
        library.executable and name.startswith("@executable_path/")
    ):
        return lookup(location.parent / name.split("/", 1)[1], LoadVia.LOADER_PATH, None)
    if name.startswith("/"):
        return lookup(PurePosixPath(name), LoadVia.PATH, None)
    if PurePosixPath(name).name in context.preloaded:
        return Resolution(name, None, LoadVia.PRELOADED, fmt)
    # @executable_path/…, a leaf name or a relative path: depends on the interpreter's
    # location, the working directory or DYLD_FALLBACK_LIBRARY_PATH.
    return Resolution(name, None, LoadVia.UNKNOWN, fmt)


def _find_case_insensitive(ns: Namespace, directory: PurePosixPath, name: str) -> str | None:
    wanted = name.lower()
    return next((entry for entry in ns.listdir(directory) if entry.lower() == wanted), None)


def _resolve_pe(name: str, location: PurePosixPath, context: LoadContext) -> Resolution:
    fmt = BinaryFormat.PE
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if base.lower() in {p.lower() for p in context.preloaded}:
        return Resolution(name, None, LoadVia.PRELOADED, fmt)
    if _is_windows_system_dll(base):
        return Resolution(name, None, LoadVia.SYSTEM, fmt)
    tried: list[PurePosixPath] = []
    searched = [
        (location.parent, LoadVia.LOADER_PATH),
        *((d, LoadVia.ADDED_DIRECTORY) for d in context.extra_dirs),
    ]
    for searched_dir, how in searched:
        directory = _normalize(searched_dir)
        tried.append(directory / base)
        entry = _find_case_insensitive(context.namespace, directory, base)
        if entry is not None:
            return Resolution(name, directory / entry, how, fmt, str(directory), tuple(tried))
    return Resolution(name, None, LoadVia.MISSING, fmt, tried=tuple(tried))


def resolve_needed(
    library: Library,
    location: PurePosixPath,
    context: LoadContext,
    *,
    only: Callable[[str], bool] | None = None,
) -> tuple[Resolution, ...]:
    """Where each of ``library.needed`` would be loaded from, in ``needed`` order.

    ``location`` is where ``library`` sits in ``context.namespace`` (its directory is
    ``$ORIGIN`` / ``@loader_path`` / the DLL load directory). ``only`` limits the answer to the
    entries it accepts (e.g. torch-family or :func:`is_cuda_runtime` names). The loader stops
    at the first missing entry; every entry is resolved here, so the caller can report that
    one (``next(r for r in resolutions if r.missing)``) or all of them.
    Never raises for the binary's contents; the namespace's own errors propagate.
    """
    results: list[Resolution] = []
    for name in library.needed:
        if only is not None and not only(name):
            continue
        if context.format is BinaryFormat.ELF:
            results.append(_resolve_elf(name, library, location, context))
        elif context.format is BinaryFormat.MACHO:
            results.append(_resolve_macho(name, library, location, context))
        else:
            results.append(_resolve_pe(name, location, context))
    return tuple(results)


# ---------------------------------------------------------------------------------------------
# An installed environment

_TORCH_CUDA = re.compile(r"(?i)(?:lib)?(?:torch|c10)_cuda[._].*")


def _library_names(directory: Path) -> Iterator[str]:
    try:
        names = sorted(entry.name for entry in directory.iterdir())
    except OSError:
        return
    yield from (name for name in names if is_library_name(name))


def site_packages_context(site: Path, torch_dir: Path | None, fmt: BinaryFormat) -> LoadContext:
    """The context of ``import ext`` after ``import torch`` in the environment ``site``.

    ``preloaded`` holds the library file names of ``torch/lib`` and ``torch.libs`` (torch's
    files are named by their soname / install name) — all taken as loaded, though torch opens a
    few lazily. When torch is a CUDA build (``libtorch_cuda`` / ``torch_cuda.dll`` present) the
    names in ``nvidia/*/lib`` and ``nvidia/*/bin`` count as loaded too, since torch's CUDA
    libraries link them; next to a CPU-only torch they are not loaded and, on Linux and macOS,
    not on any search path either. ``extra_dirs`` are ``torch/lib`` and the ``nvidia/*``
    library directories, which torch adds with ``os.add_dll_directory`` on Windows (ignored for
    ELF and Mach-O). ``system_dirs`` are :func:`system_library_dirs` for ELF. ``torch_dir``
    ``None`` means torch is not installed: nothing is preloaded.
    """
    torch_names: set[str] = set()
    extra: list[PurePosixPath] = []
    if torch_dir is not None:
        torch_lib = torch_dir / "lib"
        torch_names.update(_library_names(torch_lib))
        torch_names.update(_library_names(torch_dir.parent / "torch.libs"))
        if torch_lib.is_dir():
            extra.append(PurePosixPath(torch_lib.as_posix()))
    nvidia_dirs = sorted(
        d for pattern in ("*/lib", "*/bin") for d in (site / "nvidia").glob(pattern) if d.is_dir()
    )
    extra.extend(PurePosixPath(d.as_posix()) for d in nvidia_dirs)
    preloaded = set(torch_names)
    if any(_TORCH_CUDA.fullmatch(name) for name in torch_names):
        for directory in nvidia_dirs:
            preloaded.update(_library_names(directory))
    return LoadContext(
        format=fmt,
        preloaded=frozenset(preloaded),
        extra_dirs=tuple(extra),
        system_dirs=system_library_dirs() if fmt is BinaryFormat.ELF else (),
        namespace=FileSystemNamespace(),
    )
