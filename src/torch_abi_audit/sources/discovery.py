"""Find the compiled libraries (and executables) under a directory tree.

A file is a *candidate* when its name is a shared-library name (``*.so``, ``*.so.1.2.3``,
``*.dylib``, ``*.pyd``, ``*.dll``); the readers then decide from its magic bytes what it really is,
so a text file called ``foo.so`` becomes a per-file error rather than being trusted or dropped.
Names decide candidacy because sniffing the first bytes of every ``.py`` file in an environment
would cost more than the whole audit.

Executables a package ships (``bin/torch_shm_manager``, ``ptxas``, ``tool.exe``) have no such
name. A file is an *executable candidate* when its name has no extension (the programs of Linux
and macOS) or ends in ``.exe``; one without an extension must also have an execute permission
bit (one ``stat``, of the few extension-less files a tree holds: ``LICENSE``, ``Makefile``…).
Only candidates have their first bytes read: they are kept when those are ELF, Mach-O or PE
magic (:func:`is_binary`), and dropped silently otherwise (shell and Python scripts).

The walk follows directory symlinks but never enters a directory twice, reports unreadable
directories and broken or looping file links as :class:`ScanProblem`, and keeps one path per
file (a symlink or hard link to a library already found is not scanned again).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from torch_abi_audit.readers.detect import MAGIC_SIZE, detect_format

_LIBRARY_NAME = re.compile(
    r"""(?ix)
    (?: \.so (?: \.\d+[\w.-]* )? $ )   # ELF: foo.so, libfoo.so.1, libfoo.so.1.2.3
    | (?: \.dylib $ )                  # Mach-O
    | (?: \.(?:pyd|dll) $ )            # PE
    """
)
#: Directory names never worth descending into.
SKIPPED_DIRECTORIES = frozenset({"__pycache__", ".git", ".hg", ".svn"})


def is_library_name(name: str) -> bool:
    """True when ``name`` is spelled like a shared library or extension module."""
    return _LIBRARY_NAME.search(name) is not None


_EXECUTABLE_BITS = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH


def is_executable_name(name: str) -> bool:
    """True when ``name`` could be a program's: no extension (``ptxas``), or ``.exe``.

    A leading dot does not count as an extension separator, but a hidden file is no program
    a package ships either.
    """
    base = name.rsplit("/", 1)[-1]
    if base.lower().endswith(".exe"):
        return True
    return "." not in base and bool(base)


def has_execute_bit(mode: int) -> bool:
    """True when a file mode (``st_mode``, or a zip member's Unix mode) lets anyone run it."""
    return bool(mode & _EXECUTABLE_BITS)


def is_binary(path: Path | str) -> bool:
    """True when the file at ``path`` starts with ELF, Mach-O or PE magic (8 bytes read).

    Unreadable files are not binaries (their listing's problems are reported elsewhere)."""
    try:
        with open(path, "rb", buffering=0) as handle:  # noqa: PTH123 - str paths on the walk
            return detect_format(handle.read(MAGIC_SIZE)) is not None
    except OSError:
        return False


def _executable_candidate(entry: os.DirEntry[str]) -> bool:
    """Whether a directory entry not named like a library is a program to audit."""
    name = entry.name
    if not is_executable_name(name):
        return False
    if not name.lower().endswith(".exe"):
        try:
            if not has_execute_bit(entry.stat().st_mode):
                return False
        except OSError:
            return False
    return is_binary(entry.path)


@dataclass(frozen=True)
class ScanProblem:
    """A path the walk could not handle, with the reason in words."""

    path: Path
    reason: str


@dataclass
class ScanResult:
    """Library candidates (one path per distinct file) and the problems met on the way."""

    libraries: list[Path] = field(default_factory=list)
    problems: list[ScanProblem] = field(default_factory=list)


def _describe(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.ENOENT:
        return "broken symbolic link (its target does not exist)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or str(exc)


def _inside(path: str, bases: Iterable[str]) -> bool:
    return any(path == base or path.startswith(base + os.sep) for base in bases)


def find_libraries(roots: Iterable[Path], *, executables: bool = True) -> ScanResult:
    """Walk ``roots`` (files or directories) and collect library candidates, and, with
    ``executables``, the programs among the files not named like libraries (see the module
    docstring).

    A root that is itself a file is taken as a candidate whatever its name. Paths come back
    sorted, with duplicates (same device and inode) removed, preferring a path that is not a
    symbolic link.

    Directory symlinks are followed unless their target lies inside a root (it is walked there
    anyway) or inside a target already followed: that is what ends symlink cycles, without a
    ``stat`` of every directory.
    """
    result = ScanResult()
    # One path per file (device, inode): a path that is not a symlink wins, then the first
    # in sort order, so that the choice does not depend on directory listing order.
    found: dict[tuple[int, int], tuple[bool, str]] = {}

    def add_file(path: str, is_link: bool) -> None:
        try:
            info = os.stat(path)  # noqa: PTH116 - plain strings on the hot path
        except OSError as exc:
            result.problems.append(ScanProblem(Path(path), _describe(exc)))
            return
        if not stat.S_ISREG(info.st_mode):
            result.problems.append(ScanProblem(Path(path), "not a regular file"))
            return
        key = (info.st_dev, info.st_ino)
        rank = (is_link, path)
        if key not in found or rank < found[key]:
            found[key] = rank

    directories: list[str] = []
    for root in roots:
        try:
            root_info = root.stat()
        except OSError as exc:
            result.problems.append(ScanProblem(root, _describe(exc)))
            continue
        if stat.S_ISDIR(root_info.st_mode):
            directories.append(str(root))
        else:
            add_file(str(root), root.is_symlink())
    walked = [os.path.realpath(d) for d in directories]
    followed: list[str] = []
    stack = list(reversed(directories))
    matches = _LIBRARY_NAME.search
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    name = entry.name
                    try:
                        is_dir = entry.is_dir()
                    except OSError:
                        is_dir = False
                    if is_dir:
                        if name in SKIPPED_DIRECTORIES:
                            continue
                        if entry.is_symlink():
                            target = os.path.realpath(entry.path)
                            if _inside(target, walked) or _inside(target, followed):
                                continue
                            followed.append(target)
                        stack.append(entry.path)
                    elif matches(name) or (executables and _executable_candidate(entry)):
                        add_file(entry.path, entry.is_symlink())
        except OSError as exc:
            result.problems.append(ScanProblem(Path(directory), _describe(exc)))
    result.libraries = [Path(path) for _link, path in sorted(found.values(), key=lambda r: r[1])]
    result.problems.sort(key=lambda p: str(p.path))
    return result
