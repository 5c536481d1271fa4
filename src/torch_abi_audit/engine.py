"""The per-library pipeline (read -> judge -> report) and the worker pool that runs it.

:func:`inspect_extension` turns one file into an :class:`ExtensionReport`. :class:`LibraryAnalysis`
runs it over many files: serially for a handful, otherwise in forked worker processes that
inherit the rule tables already loaded. Work can be submitted while the caller is still
discovering files, so reading libraries overlaps with walking the tree.
"""

from __future__ import annotations

import copyreg
import gc
import os
import re
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from torch_abi_audit.model import BinaryFormat, Library
from torch_abi_audit.progress import NO_PROGRESS, Progress
from torch_abi_audit.readers import (
    BinaryReadError,
    ByteSource,
    UnsupportedFormatError,
    parse_library,
)
from torch_abi_audit.readers.source import file_bytes
from torch_abi_audit.readers.strings import find_strings
from torch_abi_audit.report import ExtensionReport, LibraryKind, SliceReport
from torch_abi_audit.rules.bundled_runtimes import RuntimeCopy, identify_runtime, is_interpreter
from torch_abi_audit.rules.cpython_abi import (
    CPythonAnalysis,
    analyse_cpython,
    entry_points,
    stable_abi_symbols,
)
from torch_abi_audit.rules.torch_abi import (
    TorchAnalysis,
    UnstableSymbol,
    is_torch_library,
    torch_rules,
)
from torch_abi_audit.sources.wheels import (
    WheelError,
    WheelMember,
    close_wheels,
    member_entries,
    open_wheel,
    receive_entries,
)

if TYPE_CHECKING:  # the pool machinery costs ~30 ms to import: only load it when it is used
    from concurrent.futures import Future, ProcessPoolExecutor

    from torch_abi_audit.sources.zip_directory import Entry

_EXTENSION_NAME_MARKERS = (".cpython-", ".abi3.", ".pypy", ".pyd")
# Below this many files a worker pool costs more than it saves.
PARALLEL_THRESHOLD = 6
# Files this large are read as tasks of their own, first: they set the critical path.
_LARGE_FILE = 4 << 20
# Small files travel in batches: one task per file would cost more in IPC than the work.
_BATCH_SIZE = 12


def _looks_like_extension(path: Path) -> bool:
    name = path.name.lower()
    return any(marker in name for marker in _EXTENSION_NAME_MARKERS)


#: What the engine reads: a file on disk, or a library inside a wheel.
LibraryLocation = Path | WheelMember


# The functions that look a symbol up by name at run time (POSIX, Windows).
_RUNTIME_LOOKUP_FUNCTIONS = frozenset({"dlsym", "dlvsym", "GetProcAddress"})
# Shim names as C string literals.
_SHIM_STRING = re.compile(rb"((?:aoti_)?torch_[A-Za-z0-9_]+)\x00")
# Read-only data scanned at most per library (a stable extension has well under 1 MB).
_MAX_RODATA_SCAN = 16 << 20


def _runtime_lookups(
    source: ByteSource, library: Library, imported: frozenset[str]
) -> frozenset[str]:
    """Shim-like names a library carries as strings and may look up with ``dlsym``.

    Only asked of libraries that import a run-time lookup function, use libtorch, and are not
    libtorch themselves; the names it imports or exports are left out (PE keeps its import and
    export names among its read-only data).
    """
    if not imported & _RUNTIME_LOOKUP_FUNCTIONS:
        return frozenset()
    if is_torch_library(library.path.name) or not any(is_torch_library(n) for n in library.needed):
        return frozenset()
    if not library.rodata:  # last: an ELF wheel member reads its section headers for this
        return frozenset()
    names = find_strings(
        source,
        library.rodata,
        _SHIM_STRING,
        max_bytes=_MAX_RODATA_SCAN,
        needle=b"torch_",
        needle_lead=len("aoti_"),
    )
    return names - imported - library.exports.names()


class _Opened:
    """A library's bytes, and for a wheel member whether its size and CRC-32 were checked."""

    def __init__(self, source: ByteSource) -> None:
        self.source = source
        self.verified: bool | None = None


@contextmanager
def _opened(location: LibraryLocation, path: Path, *, verify: bool) -> Iterator[_Opened]:
    """The bytes of a library file, or of a wheel member. On success a member is read to its
    end, which checks its CRC-32 and size, when ``verify`` is true or what is left is small
    (:meth:`StreamedMember.finish`); ``verified`` says whether it was."""
    if isinstance(location, WheelMember):
        try:
            archive = open_wheel(location.wheel)
        except WheelError as exc:
            raise BinaryReadError(f"{location.wheel.name}: {exc}") from exc
        member = archive.open_member(location.name, seek=not verify)
        try:
            opened = _Opened(member)
            yield opened
            opened.verified = member.finish(verify=verify)
        finally:
            member.close()
        return
    with file_bytes(path) as source:  # a FIFO or a device is refused, never waited on
        yield _Opened(source)


def inspect_extension(
    location: LibraryLocation | str, *, verify_archive: bool = False
) -> ExtensionReport:
    """Read and judge one compiled library: a file, or a :class:`WheelMember` of a wheel.

    A wheel member is decompressed only as far as the readers need, and its size and CRC-32
    are checked when that costs little or ``verify_archive`` is true (``verified`` in the
    report says whether they were).

    Never raises for bad input: an unreadable or corrupt file gives a report with ``error`` set,
    a format this release cannot read one with ``skipped`` set.
    """
    if isinstance(location, WheelMember):
        member: WheelMember | None = location
        path = location.display_path
    else:
        member = None
        path = Path(location).absolute()
    guessed_kind = LibraryKind.EXTENSION if _looks_like_extension(path) else LibraryKind.BUNDLED
    try:
        with _opened(member or path, path, verify=verify_archive) as opened:
            library = parse_library(opened.source, path)
            # Symbol tables decode lazily: a bad entry found now is still this file's error.
            entries = entry_points(library)
            lookups = _runtime_lookups(opened.source, library, library.imports.names())
            runtime = identify_runtime(library)
        torch, cpython = judge(library, path.name, lookups)
        slices = tuple(
            SliceReport(part.machine, part.min_os, *judge(part, path.name, lookups))
            for part in library.slices
        )
    except UnsupportedFormatError as exc:
        return ExtensionReport(path, kind=guessed_kind, skipped=str(exc))
    except BinaryReadError as exc:
        return ExtensionReport(path, kind=guessed_kind, error=str(exc))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return ExtensionReport(path, kind=guessed_kind, error=f"cannot read file: {reason}")
    except Exception as exc:  # a bug here must not end the audit of every other file
        return ExtensionReport(path, kind=guessed_kind, error=internal_error(exc))
    return ExtensionReport(
        path=path,
        cpython=cpython,
        torch=torch,
        kind=_kind(library, entries, runtime),
        format=str(library.format),
        machine=library.machine,
        needed=library.needed,
        optional_needed=library.optional_needed,
        runtime=runtime,
        version_needs=library.version_needs,
        soname=library.soname,
        runpath=library.runpath,
        rpath=library.rpath,
        entry_points=entries,
        min_os=library.min_os,
        slices=slices,
        verified=opened.verified,
    )


#: How a per-file error caused by a bug of this tool begins (the fuzz tests look for it).
INTERNAL_ERROR = "internal error"


def internal_error(exc: BaseException) -> str:
    """The per-file error for an exception no reader should raise: a bug, reported as such."""
    detail = str(exc).splitlines()[0] if str(exc) else ""
    return (
        f"{INTERNAL_ERROR} reading this file: {type(exc).__name__}"
        + (f": {detail}" if detail else "")
        + " (a bug of torch-abi-audit: please report it)"
    )


def _kind(library: Library, entries: tuple[str, ...], runtime: RuntimeCopy | None) -> LibraryKind:
    """A program; else an extension module: it exports a module entry point (``PyInit_*``…) and
    is not the interpreter's own library, whose ``PyInit_*`` are its built-in modules' (see
    :mod:`~torch_abi_audit.rules.bundled_runtimes`); else a bundled library."""
    if library.executable:
        return LibraryKind.EXECUTABLE
    if entries and not is_interpreter(runtime):
        return LibraryKind.EXTENSION
    return LibraryKind.BUNDLED


def _any_library(_name: str) -> bool:
    return True


def judge(
    library: Library, filename: str, runtime_lookups: frozenset[str] = frozenset()
) -> tuple[TorchAnalysis, CPythonAnalysis]:
    """The torch and CPython analyses of one library (or one slice of a universal binary);
    ``runtime_lookups`` are the names it may look up with ``dlsym``."""
    imported = library.imports.names()
    torch_libraries = tuple(name for name in library.needed if is_torch_library(name))
    # PE import tables and Mach-O ordinals bind every import to a library; ELF records bindings
    # only through symbol versions, which libtorch does not use (and decoding every versioned
    # glibc import of a large library to learn nothing would cost time).
    binds = torch_libraries and library.format is not BinaryFormat.ELF
    bindings = library.imports.bound_to(_any_library) if binds else {}
    torch = torch_rules().analyse(
        imported,
        torch_libraries=torch_libraries,
        bindings=bindings,
        runtime_lookups=runtime_lookups,
        optional_imports=library.optional_imports(),
    )
    return torch, analyse_cpython(imported, filename, library.needed)


def default_jobs() -> int:
    """How many worker processes to use: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _size(location: LibraryLocation) -> int:
    if isinstance(location, WheelMember):
        return location.size
    try:
        return location.stat().st_size
    except OSError:
        return 0


def _inspect_batch(
    locations: list[LibraryLocation],
    verify_archive: bool = False,
    entries: dict[Path, list[Entry]] | None = None,
) -> list[ExtensionReport]:
    """A worker's task. ``entries``: the central directory entries of the wheel members among
    ``locations`` (a worker forked before the parent read their wheels reads them without
    reading the wheels' directories again)."""
    if entries:
        receive_entries(entries)
    return [inspect_extension(location, verify_archive=verify_archive) for location in locations]


# glibc's mallopt parameters (malloc.h) and the values a worker sets: keep the memory it frees
# for reuse instead of returning it to the system, and serve blocks up to 32 MiB (the most
# glibc allows) from that memory instead of fresh mappings.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_TRIM_THRESHOLD, _MMAP_THRESHOLD = 256 << 20, 32 << 20


def _reuse_freed_memory() -> None:
    """In a worker process (ours, never a caller's): have glibc's allocator reuse what it frees.

    A worker decompresses hundreds of megabytes in chunks of up to a few MiB that live briefly;
    by default glibc returns such blocks to the system as soon as they are freed, and every
    new one costs page faults again (about a third of a worker's CPU time went to the kernel
    on the vllm wheel; this halves it). Nothing happens where there is no glibc ``mallopt``
    (macOS, musl ignores it).
    """
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (ImportError, OSError, AttributeError):
        return
    mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)


#: The cyclic garbage collector's first threshold in a worker, and in the command-line run
#: (:func:`torch_abi_audit.cli.main`): allocations (net of deallocations) between collections.
#: The default (700) makes it walk the young objects every few hundred of the hundreds of
#: thousands of tuples, symbols and reports a scan allocates, none of which form cycles:
#: ~100 ms of CPU on an environment scan (parent and workers), for nothing to collect.
COLLECTOR_THRESHOLD = 200_000


def tune_collector() -> tuple[int, int, int]:
    """Raise the cyclic garbage collector's thresholds for an audit (see
    :data:`COLLECTOR_THRESHOLD`); the previous thresholds, to restore."""
    previous = gc.get_threshold()
    gc.set_threshold(COLLECTOR_THRESHOLD, 30, 30)
    return previous


#: prctl(2)'s request to have a signal sent to this process when its parent ends (Linux).
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """In a worker: be killed as soon as the process that forked it ends, however it ends (a CI
    job's timeout sends SIGTERM, SIGKILL, a crash). A worker left behind would wait for tasks
    forever, holding the caller's pipes open: a CI step reading them would never finish.
    Linux only (prctl ``PR_SET_PDEATHSIG``); elsewhere nothing is done."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        prctl = ctypes.CDLL(None).prctl
    except (ImportError, OSError, AttributeError):
        return
    prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the parent ended before the request was made
        os._exit(1)


def _prepare_worker(parent: int) -> None:
    """A worker's start (``parent``: the process id of the process that started the pool)."""
    _die_with_parent(parent)
    # Ctrl-C reaches the whole process group; the parent alone handles it (no worker tracebacks).
    # A worker is forked with SIGINT blocked (see _interrupts_held): one that arrived since is
    # pending, and discarded when it is unblocked below, now that it is ignored.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    # What the worker inherited lives as long as it does: no collection walks it again (nor
    # copies the pages it lies in by writing its collector headers).
    gc.freeze()
    tune_collector()
    _reuse_freed_memory()
    _send_reports_plainly()
    # Load the rule tables (a no-op where the parent loaded them before forking: a forked
    # worker; a spawned one loads its own).
    torch_rules()
    stable_abi_symbols()


#: What a worker sends back by the thousand: reports and their analyses (an environment scan:
#: ~10k unstable symbols, ~500 of the others).
_SENT_CLASSES = (ExtensionReport, SliceReport, TorchAnalysis, CPythonAnalysis, UnstableSymbol)


# What the default reduction of protocol 2 and later names: pickle writes it as NEWOBJ.
_NEWOBJ: Callable[..., object] = copyreg.__newobj__  # type: ignore[attr-defined]


def _plain_state(obj: object) -> tuple[Callable[..., object], tuple[type], dict[str, object]]:
    """How pickle reduces an instance of a plain frozen dataclass (no ``__slots__``, no custom
    state): its class made anew, then its ``__dict__``. The bytes are those of the default
    reduction, without the generic path's search for ``__getnewargs_ex__``, ``__getstate__``…
    (which cost more than the pickling itself: a third of the time it takes to pickle an
    environment's reports)."""
    return _NEWOBJ, (type(obj),), vars(obj)


def _send_reports_plainly() -> None:
    """In a worker: pickle the reports it sends back through :func:`_plain_state`."""
    from multiprocessing.reduction import ForkingPickler

    for cls in _SENT_CLASSES:
        ForkingPickler.register(cls, _plain_state)


def _ready() -> None:
    """An empty task: submitting it makes the pool start its workers."""


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """SIGINT blocked in this thread while the pool forks its workers: a Ctrl-C in that window
    would reach a worker before its initializer ignores it (a worker's traceback on the
    terminal). The parent gets a Ctrl-C held there as soon as the block ends. POSIX only (no
    fork elsewhere)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def plan_tasks(paths: list[LibraryLocation]) -> list[list[LibraryLocation]]:
    """Split ``paths`` into tasks: large files alone and first, small ones in batches."""
    sized = sorted(((_size(p), p) for p in paths), key=lambda item: -item[0])
    tasks = [[path] for size, path in sized if size >= _LARGE_FILE]
    small = [path for size, path in sized if size < _LARGE_FILE]
    tasks += [small[i : i + _BATCH_SIZE] for i in range(0, len(small), _BATCH_SIZE)]
    return tasks


class LibraryAnalysis:
    """Reads and judges libraries, in parallel worker processes when there are enough of them.

    Use as a context manager: :meth:`submit` paths as they are found (duplicates are ignored),
    then collect every report with :meth:`results`. With ``eager`` (for callers that know many
    files are coming, such as an environment scan) the workers start at once and load the rule
    tables while the caller is still discovering files.
    """

    def __init__(
        self,
        jobs: int | None = None,
        *,
        eager: bool = False,
        progress: Progress = NO_PROGRESS,
        verify_archive: bool = False,
    ) -> None:
        self.jobs = default_jobs() if jobs is None else max(1, jobs)
        self._progress = progress
        self.verify_archive = verify_archive
        self._eager = eager and self.jobs > 1
        self._submitted: dict[LibraryLocation, None] = {}
        self._waiting: list[LibraryLocation] = []
        self._pool: ProcessPoolExecutor | None = None
        self._tasks: list[tuple[list[LibraryLocation], Future[list[ExtensionReport]]]] = []

    def __enter__(self) -> LibraryAnalysis:
        if self._eager:
            try:
                self._start_pool(preload=False)
            except BaseException:  # Ctrl-C as the workers start: no __exit__ will stop them
                self.close(cancel=True)
                raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close(cancel=kind is not None)

    def close(self, *, cancel: bool = False) -> None:
        """Stop the workers (dropping queued work when ``cancel``)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=cancel)
            self._pool = None

    def submit(self, paths: Iterable[LibraryLocation]) -> None:
        """Queue ``paths`` for analysis; with enough work queued, workers start on it now."""
        for path in paths:
            if path not in self._submitted:
                self._submitted[path] = None
                self._waiting.append(path)
        if self.jobs > 1 and (self._pool is not None or len(self._waiting) >= PARALLEL_THRESHOLD):
            self._dispatch()

    def _start_pool(self, *, preload: bool = True) -> ProcessPoolExecutor:
        """Start the worker pool, and return it: ``self._pool``, set before any worker exists,
        so that :meth:`close` stops whatever was started whatever interrupts this."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if preload:
            # Forked workers inherit tables loaded here instead of each loading their own.
            # An eager pool does not wait for them: its workers load them while the caller
            # reads a big wheel's directory or walks a tree.
            torch_rules()
            stable_abi_symbols()
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        pool = self._pool = ProcessPoolExecutor(
            max_workers=self.jobs,
            mp_context=context,
            initializer=_prepare_worker,
            initargs=(os.getpid(),),
        )
        with _interrupts_held():
            pool.submit(_ready)  # the workers start now (all of them, when forked)
        return pool

    def _dispatch(self) -> None:
        if not self._waiting:
            return
        pool = self._pool if self._pool is not None else self._start_pool()
        for task in plan_tasks(self._waiting):
            members = [location for location in task if isinstance(location, WheelMember)]
            entries = member_entries(members) if members else None
            future = pool.submit(_inspect_batch, task, self.verify_archive, entries)
            self._tasks.append((task, future))
        self._waiting = []

    def results(self) -> dict[LibraryLocation, ExtensionReport]:
        """Every submitted path's report (waits for the workers, telling the progress)."""
        reports: dict[LibraryLocation, ExtensionReport] = {}
        if self._pool is not None:
            self._dispatch()
        self._progress.start("reading libraries", len(self._submitted))
        if self._tasks:
            self._collect(reports)
        try:
            for path in self._waiting:
                reports[path] = inspect_extension(path, verify_archive=self.verify_archive)
                self._progress.advance()
        finally:
            close_wheels()
        self._waiting = []
        return {path: reports[path] for path in self._submitted}

    def _collect(self, reports: dict[LibraryLocation, ExtensionReport]) -> None:
        """The workers' reports as they finish; the progress is redrawn while waiting."""
        from concurrent.futures import FIRST_COMPLETED, wait

        pending = {future: task for task, future in self._tasks}
        while pending:
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                task = pending.pop(future)
                try:
                    found = future.result()
                except Exception:  # a worker died (BrokenProcessPool): redo its share here
                    found = _inspect_batch(task, self.verify_archive)
                reports.update(zip(task, found, strict=True))
                self._progress.advance(len(task))
            self._progress.tick()


def analyse_libraries(
    paths: Iterable[LibraryLocation],
    *,
    jobs: int | None = None,
    progress: Progress = NO_PROGRESS,
    verify_archive: bool = False,
) -> dict[LibraryLocation, ExtensionReport]:
    """Run :func:`inspect_extension` over ``paths`` (in parallel when it pays off)."""
    with LibraryAnalysis(jobs, progress=progress, verify_archive=verify_archive) as analysis:
        analysis.submit(paths)
        return analysis.results()
