"""Find the compiled libraries under a directory tree.

A file is a *candidate* when its name is a shared-library name (``*.so``, ``*.so.1.2.3``,
``*.dylib``, ``*.pyd``, ``*.dll``); the readers then decide from its magic bytes what it really is,
so a text file called ``foo.so`` becomes a per-file error rather than being trusted or dropped.
Names decide candidacy because sniffing the first bytes of every ``.py`` file in an environment
would cost more than the whole audit.

Executables a package ships (``bin/torch_shm_manager``, ``ptxas``, ``tool.exe``) have no such
name. A file is an *executable candidate* when its name has no extension (the programs of Linux
and macOS) or ends in ``.exe``; one without an extension must also have an execute permission
bit (one ``stat``, of the few extension-less files a tree holds: ``LICENSE``, ``Makefile``…).
Only candidates that are regular files have their first bytes read: they are kept when those
are ELF, Mach-O or PE magic (:func:`is_binary`), and dropped silently otherwise (shell and
Python scripts).

The walk never reads outside the directories it was given: a symbolic link (to a file or a
directory) that leads out of them is reported as a :class:`ScanProblem` and not followed. Inside,
every library is named by its real location (a file reached through ``pkg/up -> ..`` is the file
of the package that really holds it), one path per file (a symlink or hard link to a library
already found is not scanned again), and no directory is entered twice. Unreadable directories,
broken or looping links and special files (FIFOs, devices, sockets: never opened) are
problems too.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from torch_abi_audit.files import RealPaths, not_regular_reason, open_regular, outside_reason
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
    """True when the regular file at ``path`` starts with ELF, Mach-O or PE magic (8 bytes
    read; a FIFO or a device is never opened).

    Unreadable files are not binaries (their listing's problems are reported elsewhere)."""
    try:
        with open_regular(path) as handle:
            return detect_format(handle.read(MAGIC_SIZE)) is not None
    except OSError:
        return False


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


def _contains(path: str, others: Iterable[str]) -> bool:
    """True when ``path`` is an ancestor of one of ``others`` (following it would walk them
    again: a link such as ``pkg/up -> ..``)."""
    return any(other.startswith(path.rstrip(os.sep) + os.sep) for other in others)


class _Boundary:
    """The directories a walk may read inside, by real path, and how a real path inside them
    is shown: under the path the caller gave (``/venv/lib`` stays itself when it is a link)."""

    def __init__(self, directories: Iterable[Path], real_path: RealPaths) -> None:
        self.bases = [(str(d), real_path(d)) for d in directories]

    def canonical(self, real: str) -> str | None:
        """``real`` under the base that holds it, or ``None`` when it lies outside all."""
        for given, base in self.bases:
            if real == base:
                return given
            if real.startswith(base.rstrip(os.sep) + os.sep):
                return given.rstrip(os.sep) + os.sep + real[len(base) :].lstrip(os.sep)
        return None


def _leaves(link: str, target: str) -> ScanProblem:
    return ScanProblem(Path(link), outside_reason(target))


class _Walk:
    """One walk of :func:`find_libraries` (see there)."""

    def __init__(self, boundary: _Boundary, real_path: RealPaths) -> None:
        self.boundary = boundary
        self.real_path = real_path  # the walk's links, resolved once
        self.result = ScanResult()
        # One path per file (device, inode): the canonical path first in sort order, so that
        # the choice does not depend on how the file was reached or on listing order.
        self.found: dict[tuple[int, int], str] = {}
        self.walked: list[str] = []  # real paths of the directories walked from the top
        self.followed: list[str] = []  # real paths of the directory links followed

    def problem(self, path: str | Path, reason: str) -> None:
        self.result.problems.append(ScanProblem(Path(path), reason))

    def add_file(self, path: str, canonical: str | None) -> None:
        """A candidate at ``path`` (shown as ``canonical``; ``None``: work it out, the path
        may be a link)."""
        try:
            info = os.stat(path)  # noqa: PTH116 - plain strings on the hot path
        except OSError as exc:
            self.problem(path, _describe(exc))
            return
        if not stat.S_ISREG(info.st_mode):
            self.problem(path, not_regular_reason(info.st_mode))
            return
        if canonical is None:
            real = self.real_path(path)
            canonical = self.boundary.canonical(real)
            if canonical is None:
                self.result.problems.append(_leaves(path, real))
                return
        key = (info.st_dev, info.st_ino)
        if key not in self.found or canonical < self.found[key]:
            self.found[key] = canonical

    def executable(self, entry: os.DirEntry[str], link: bool) -> bool:
        """Whether a directory entry not named like a library, but named like a program
        (:func:`is_executable_name`, tested by the caller), is a program to audit: a regular
        file, runnable, starting with a binary's magic. One that a link takes out of the
        boundary is not read (nothing says it is a library)."""
        name = entry.name
        if link and self.boundary.canonical(self.real_path(entry.path)) is None:
            return False
        try:
            mode = entry.stat().st_mode
        except OSError:
            return False
        if not stat.S_ISREG(mode):
            return False
        if not name.lower().endswith(".exe") and not has_execute_bit(mode):
            return False
        return is_binary(entry.path)

    def directory_link(self, path: str) -> str | None:
        """The canonical path to walk a directory link as, or ``None`` if it is not walked:
        it leaves the boundary (a problem), or leads where the walk goes anyway."""
        target = self.real_path(path)
        canonical = self.boundary.canonical(target)
        if canonical is None:
            self.result.problems.append(_leaves(path, target))
            return None
        covered = [*self.walked, *self.followed]
        if _inside(target, covered) or _contains(target, covered):
            return None
        self.followed.append(target)
        return canonical

    def walk(self, directory: str, canonical: str) -> None:
        matches = _LIBRARY_NAME.search
        stack = [(directory, canonical)]
        while stack:
            directory, canonical = stack.pop()
            try:
                with os.scandir(directory) as entries:
                    for entry in entries:
                        name = entry.name
                        try:
                            is_dir = entry.is_dir()
                        except OSError:
                            is_dir = False
                        # Only the entries kept are asked whether they are links (most are
                        # neither directories nor candidates: .py files).
                        if is_dir:
                            if name in SKIPPED_DIRECTORIES:
                                continue
                            shown = (
                                self.directory_link(entry.path)
                                if entry.is_symlink()
                                else canonical + os.sep + name
                            )
                            if shown is not None:
                                stack.append((entry.path, shown))
                        elif matches(name) or (
                            # is_executable_name, cheaply: an entry's name has no "/" and
                            # is never empty
                            ("." not in name or name[-4:].lower() == ".exe")
                            and self.executable(entry, entry.is_symlink())
                        ):
                            shown = None if entry.is_symlink() else canonical + os.sep + name
                            self.add_file(entry.path, shown)
            except OSError as exc:
                self.problem(directory, _describe(exc))


def find_libraries(roots: Iterable[Path], *, boundary: Iterable[Path] | None = None) -> ScanResult:
    """Walk ``roots`` (files or directories) and collect library candidates and the programs
    among the files not named like libraries (see the module docstring).

    A root that is itself a file is taken as a candidate whatever its name. Paths come back
    sorted and canonical: each library under the real path of the directory that holds it
    (shown below the root or boundary directory it lies in), one path per file (same device
    and inode), so that a file reached through a symbolic link is attributed to where it
    really is, whichever way the walk came.

    Nothing outside ``boundary`` (default: the directory roots) is read: a symbolic link that
    leads out of it is a problem, not followed; with an explicit ``boundary``, so is a root
    that lies outside it. A directory link is not followed either when its target is walked
    anyway or holds what is walked (a cycle such as ``pkg/up -> ..``). Directories named in
    :data:`SKIPPED_DIRECTORIES` are not entered.
    """
    roots = list(roots)
    explicit = boundary is not None
    real_path = RealPaths()
    directories, files = _split_roots(roots, real_path)
    bases = boundary if boundary is not None else (d for d, _ in directories)
    walk = _Walk(_Boundary(bases, real_path), real_path)
    for path, problem in files:
        if problem is not None:
            walk.problem(path, problem)
        elif explicit:
            walk.add_file(str(path), None)
        else:  # a file the caller named is read where it is, link or not
            walk.add_file(str(path), str(path))
    # Every top directory is in ``walked`` before any walk starts (a link inside one must
    # see all of them).
    starts: list[tuple[str, str]] = []
    for directory, real in _outermost(directories):
        canonical = walk.boundary.canonical(real)
        if canonical is None:
            walk.result.problems.append(_leaves(str(directory), real))
            continue
        walk.walked.append(real)
        starts.append((str(directory), canonical))
    for start, canonical in starts:
        walk.walk(start, canonical)
    walk.result.libraries = [Path(path) for path in sorted(set(walk.found.values()))]
    walk.result.problems.sort(key=lambda p: str(p.path))
    return walk.result


def _split_roots(
    roots: list[Path], real_path: RealPaths
) -> tuple[list[tuple[Path, str]], list[tuple[Path, str | None]]]:
    """The directory roots with their real paths, and the file roots (or why they fail)."""
    directories: list[tuple[Path, str]] = []
    files: list[tuple[Path, str | None]] = []
    for root in roots:
        try:
            info = root.stat()
        except OSError as exc:
            files.append((root, _describe(exc)))
            continue
        if stat.S_ISDIR(info.st_mode):
            directories.append((root, real_path(root)))
        else:
            files.append((root, None))
    return directories, files


def _outermost(directories: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """The directory roots not inside another one (by real path; of two roots that are the
    same directory, the one that is not a link, else the first)."""
    kept: list[tuple[Path, str]] = []
    ranked = sorted(directories, key=lambda d: (d[1].count(os.sep), d[0].is_symlink(), str(d[0])))
    for directory, real in ranked:
        if not _inside(real, (r for _, r in kept)):
            kept.append((directory, real))
    return kept
