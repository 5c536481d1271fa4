#!/usr/bin/env python3
"""Benchmark torch-abi-audit on wheel files against abi3audit and against the predecessor pipeline.

Two comparisons, each in the same run with one warm-up per contender and then rounds whose
order alternates (forwards, backwards, ...):

(a) **abi3 wheels** — ``torch-abi-audit WHEEL --json`` against ``abi3audit WHEEL --report``
    (abi3audit 0.0.26) on the torchao 0.18.0 and cryptography 50.0.2 manylinux x86_64 abi3
    wheels and, for abi3audit's other formats, the cryptography 48.0.1 universal2 (Mach-O) and
    50.0.2 win_amd64 (PE) wheels, one wheel per run and all of them in one run. Target: ours
    at least 5x faster per wheel. Both tools' CPython verdicts are printed side by side, per
    shared object.

(b) **torch wheel** — ``torch-abi-audit WHEEL --json`` on the torch 2.14.1 manylinux x86_64
    wheel against the pipeline that had to be used before wheels could be read directly:
    unzip the wheel into a fresh temporary directory, then run torch-abi-audit 0.3.0 on the
    unpacked ``torch`` directory. The pipeline is timed as a whole (the sum of its steps; the
    directory is created before and deleted after the timed region). Targets: ours faster
    than the pipeline, and ours at most 400 MB peak RSS. Both tools' torch verdicts are
    printed per library.

Measurements reuse ``bench_env``: wall time from :func:`time.perf_counter`, peak RSS and CPU
time from :func:`os.wait4` on each child (POSIX only). Our tool is installed from this checkout,
not editable, into a venv of its own (``bench_env.install_checkout``).

This is not a test: the targets are informational and the exit status is 0 unless
``--strict`` is given and a target is missed (1), or the benchmark could not run (2).

Usage::

    python benchmarks/bench_wheels.py                        # venvs under ~/.cache
    python benchmarks/bench_wheels.py --rounds 5 --json-out wheels.json
    python benchmarks/bench_wheels.py --only abi3 --abi3audit-dir /path/to/venv --quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

# bench_env.py sits next to this file; make it importable when run as a script.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_env import (
    PREDECESSOR_REQUIREMENT,
    PREDECESSOR_VERSION,
    REPO,
    BenchError,
    JSONObject,
    LibraryVerdict,
    Run,
    ToolStats,
    default_cache_dir,
    ensure_venv,
    format_timing,
    install_checkout,
    mib,
    our_libraries,
    our_packages,
    parse_report,
    predecessor_libraries,
    predecessor_packages,
    summarise,
    timed_run,
    tool_version,
    venv_bin,
)
from torch_abi_audit.sources.index import DownloadError, default_cache, fetch_wheel

ABI3AUDIT_VERSION = "0.0.26"
ABI3AUDIT_REQUIREMENT = f"abi3audit=={ABI3AUDIT_VERSION}"


@dataclass(frozen=True)
class WheelSpec:
    """A wheel the benchmark audits: a release, and the platform pip fetches it for."""

    label: str
    name: str
    version: str
    platform: str | None = None
    python_version: str | None = "3.11"


LINUX = "manylinux_2_28_x86_64"
ABI3_WHEELS: tuple[WheelSpec, ...] = (
    WheelSpec("torchao", "torchao", "0.18.0", LINUX),
    WheelSpec("cryptography", "cryptography", "50.0.2", LINUX),
    # abi3audit's other formats: a universal2 Mach-O (two slices) and a Windows PE.
    WheelSpec("cryptography-mac", "cryptography", "48.0.1", "macosx_10_9_universal2"),
    WheelSpec("cryptography-win", "cryptography", "50.0.2", "win_amd64"),
)
TORCH_WHEEL = WheelSpec("torch", "torch", "2.14.1", LINUX)

DEFAULT_ROUNDS = 3
ABI3_TARGET = 5.0  # abi3audit median / ours median, per wheel
PIPELINE_TARGET = 1.0  # pipeline median / ours median must exceed this
RSS_TARGET_BYTES = 400 * 1000 * 1000  # 400 MB (decimal), ours on the torch wheel
TMP = "{tmp}"  # placeholder for the round's temporary directory in a step's command
SHOWN_SYMBOLS = 6
PREDECESSOR_SUFFIXES = (".so", ".pyd", ".dylib")  # the only library names 0.3.0 audits


# --------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Step:
    """One command of a contender; ``{tmp}`` in an argument becomes the round's temp dir."""

    name: str
    command: tuple[str, ...]


Parser = Callable[[JSONObject, Path | None], list[LibraryVerdict]]


@dataclass
class Contender:
    """A timed command, or pipeline of commands, and everything collected about it.

    ``runs`` holds one synthesised :class:`Run` per timed round for the contender as a whole
    (seconds and CPU summed over the steps, peak RSS the largest step's); ``step_runs`` holds
    the steps' own runs when there is more than one step. ``parse`` turns the last step's JSON
    into per-library verdicts (paths relative to the wheel or the unpacked directory), used to
    check that the output does not change between rounds.
    """

    name: str
    steps: tuple[Step, ...]
    parse: Parser
    uses_tmpdir: bool = False
    runs: list[Run] = field(default_factory=list)
    step_runs: dict[str, list[Run]] = field(default_factory=lambda: defaultdict(list))
    fingerprints: set[tuple[tuple[str, str], ...]] = field(default_factory=set)
    last_document: JSONObject = field(default_factory=dict)
    last_libraries: list[LibraryVerdict] = field(default_factory=list)

    @property
    def commands(self) -> list[list[str]]:
        """The steps' commands, ``{tmp}`` left as a placeholder."""
        return [list(step.command) for step in self.steps]


@dataclass(frozen=True)
class Target:
    """One target and whether this run met it."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class ObjectComparison:
    """One shared object of an abi3 wheel, as each tool reports it.

    ``member`` is the path inside the wheel (abi3audit only gives the file name, which is what
    the two reports are matched on). ``ours_kind`` is ``extension`` (exports ``PyInit_``) or
    ``bundled`` (does not: a library loaded by the dynamic linker or through torch), ``None``
    when our report does not list the file; ``abi3audit`` is its ``result`` object, ``None``
    when its report does not list it.
    """

    wheel: str
    member: str
    ours_kind: str | None
    ours_cpython_label: str | None
    ours_violations: tuple[str, ...]
    abi3audit: JSONObject | None
    status: str
    notes: tuple[str, ...]


@dataclass(frozen=True)
class TorchRow:
    """One library of the torch wheel with both tools' torch labels (``None``: not audited)."""

    path: str
    ours: str | None
    predecessor: str | None
    hint: str

    @property
    def agree(self) -> bool:
        """Both tools audited the library and gave it the same label."""
        return self.ours is not None and self.ours == self.predecessor


# --------------------------------------------------------------------------------------------
# Setup


def ensure_wheel(spec: WheelSpec, cache: Path) -> Path:
    """The cached wheel file, fetched by the project's downloader if missing."""
    platforms = (spec.platform,) if spec.platform else ()
    try:
        return fetch_wheel(
            spec.name,
            spec.version,
            platforms=platforms,
            python_version=spec.python_version,
            cache=cache,
        )
    except DownloadError as exc:
        raise BenchError(str(exc)) from exc


def ensure_tool(env_dir: Path, requirement: str, distribution: str, exe: str, python: str) -> Path:
    """Build or reuse a venv with ``requirement``; returns the path of its ``exe``."""
    ensure_venv(env_dir, [requirement], [distribution], python)
    path = venv_bin(env_dir, exe)
    if not path.exists():
        raise BenchError(f"{path} does not exist")
    return path


def check_version(name: str, found: str, expected: str) -> None:
    """Warn when a reference tool is not the expected version."""
    if found != expected:
        print(f"warning: {name} reports version {found}, expected {expected}", file=sys.stderr)


def unzip_step(choice: str, wheel: Path) -> tuple[Step, str]:
    """The pipeline's unpacking step (``unzip`` binary or ``python -m zipfile``) and a label."""
    binary = shutil.which("unzip") if choice in {"auto", "unzip"} else None
    if choice == "unzip" and binary is None:
        raise BenchError("--unzip unzip: no unzip binary on PATH")
    if binary is not None:
        first = subprocess.run(
            [binary, "-v"], capture_output=True, text=True, check=False
        ).stdout.splitlines()
        version = " ".join(first[0].split()[:2]) if first else "unzip"
        return Step("unzip", (binary, "-q", str(wheel), "-d", TMP)), f"{binary} ({version})"
    command = (sys.executable, "-m", "zipfile", "-e", str(wheel), TMP)
    return Step("unzip", command), f"{sys.executable} -m zipfile -e"


# --------------------------------------------------------------------------------------------
# Reading the reports


def packages_of(document: JSONObject) -> list[JSONObject]:
    """Package documents of one of our (or the predecessor's) reports.

    A single target prints one package document; several targets (or environment mode) print
    ``{"packages": [...]}``.
    """
    packages = document.get("packages")
    return list(packages) if isinstance(packages, list) else [document]


def relative_path(path: str, *roots: Path) -> str:
    """``path`` relative to the first of ``roots`` (resolved or not) that contains it."""
    candidate = Path(path)
    for root in roots:
        for base in (root, root.resolve()):
            try:
                return candidate.relative_to(base).as_posix()
            except ValueError:
                continue
    return path


def _libraries_of(package: JSONObject) -> list[JSONObject]:
    """A package's extension modules followed by its bundled libraries."""
    return [*(package.get("extensions") or []), *(package.get("bundled_libs") or [])]


def _wheel_root(package: JSONObject) -> Path:
    """The wheel file our report paths start with (``wheel.path``, else ``root``)."""
    wheel = package.get("wheel") or {}
    return Path(str(wheel.get("path") or package.get("root") or "/"))


def ours_cpython_libraries(document: JSONObject, tmp: Path | None = None) -> list[LibraryVerdict]:
    """Per library of our report: ``kind:cpython_label``, violations as the hint."""
    del tmp  # ours reads the wheel itself
    verdicts = []
    for package in packages_of(document):
        root = _wheel_root(package)
        for lib in _libraries_of(package):
            violations = (lib.get("cpython") or {}).get("violations") or []
            verdicts.append(
                LibraryVerdict(
                    path=f"{root.name}/{relative_path(lib['path'], root)}",
                    package=str(package.get("name")),
                    label=f"{lib.get('kind')}:{lib.get('cpython_label')}",
                    hint=" ".join(violations),
                )
            )
    return verdicts


def abi3audit_objects(document: JSONObject) -> dict[str, list[tuple[str, JSONObject]]]:
    """Wheel file name -> ``(shared object name, result)`` pairs of an abi3audit report."""
    found: dict[str, list[tuple[str, JSONObject]]] = {}
    for spec, body in (document.get("specs") or {}).items():
        entries = body.get("wheel") or []
        if body.get("kind") == "object" and body.get("object"):
            entries = [body["object"]]
        found[Path(spec).name] = [(str(e.get("name")), e.get("result") or {}) for e in entries]
    return found


def abi3audit_libraries(document: JSONObject, tmp: Path | None = None) -> list[LibraryVerdict]:
    """Per shared object of an abi3audit report: its verdict fields as a label."""
    del tmp
    return [
        LibraryVerdict(
            path=f"{wheel}/{name}",
            package=wheel,
            label=(
                f"is_abi3={result.get('is_abi3')} "
                f"compatible={result.get('is_abi3_baseline_compatible')} "
                f"baseline={result.get('baseline')} computed={result.get('computed')}"
            ),
            hint=" ".join(result.get("non_abi3_symbols") or []),
        )
        for wheel, objects in abi3audit_objects(document).items()
        for name, result in objects
    ]


def ours_torch_libraries(document: JSONObject, tmp: Path | None = None) -> list[LibraryVerdict]:
    """Our torch labels per library (``bench_env.our_libraries``), paths inside the wheel."""
    del tmp
    verdicts = []
    for package in packages_of(document):
        root = _wheel_root(package)
        verdicts += [
            replace(lib, path=relative_path(lib.path, root))
            for lib in our_libraries({"packages": [package]})
        ]
    return verdicts


def predecessor_torch_libraries(
    document: JSONObject, tmp: Path | None = None
) -> list[LibraryVerdict]:
    """The predecessor's torch labels (``bench_env``), paths inside the unpacked directory."""
    roots = [tmp] if tmp is not None else []
    return [
        replace(lib, path=relative_path(lib.path, *roots))
        for lib in predecessor_libraries({"packages": packages_of(document)})
    ]


# --------------------------------------------------------------------------------------------
# Measuring


def run_once(contender: Contender, round_no: int) -> Run:
    """Run every step of ``contender`` once; record and return the synthesised run.

    The temporary directory (if any) is created before the first step and deleted after the
    output has been read, both outside the timed region. A step other than the last one that
    fails makes the benchmark fail.
    """
    tmp = Path(tempfile.mkdtemp(prefix="bench-wheels-")) if contender.uses_tmpdir else None
    try:
        step_runs: list[Run] = []
        stdout = stderr = b""
        for index, step in enumerate(contender.steps):
            command = [arg.replace(TMP, str(tmp)) if tmp else arg for arg in step.command]
            tool = contender.name if len(contender.steps) == 1 else f"{contender.name}: {step.name}"
            run, stdout, stderr = timed_run(command, tool, round_no)
            step_runs.append(run)
            if index < len(contender.steps) - 1 and run.exit_code != 0:
                tail = stderr.decode(errors="replace").strip().splitlines()[-10:]
                raise BenchError(
                    f"{tool} exited {run.exit_code}; stderr tail:\n  " + "\n  ".join(tail)
                )
        document = parse_report(stdout, stderr, step_runs[-1], require_packages=False)
        libraries = contender.parse(document, tmp)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    contender.fingerprints.add(tuple(sorted((lib.path, lib.label) for lib in libraries)))
    contender.last_document = document
    contender.last_libraries = libraries
    whole = Run(
        tool=contender.name,
        round=round_no,
        seconds=sum(r.seconds for r in step_runs),
        max_rss_kib=max(r.max_rss_kib for r in step_runs),
        user_seconds=sum(r.user_seconds for r in step_runs),
        system_seconds=sum(r.system_seconds for r in step_runs),
        exit_code=step_runs[-1].exit_code,
    )
    if round_no > 0:
        contender.runs.append(whole)
        if len(step_runs) > 1:
            for step, run in zip(contender.steps, step_runs, strict=True):
                contender.step_runs[step.name].append(run)
    return whole


def measure(contenders: Sequence[Contender], rounds: int) -> None:
    """One warm-up of each contender, then ``rounds`` rounds alternating their order."""
    for round_no in range(rounds + 1):
        order = list(contenders) if round_no % 2 == 0 else list(reversed(contenders))
        for contender in order:
            phase = "warm-up" if round_no == 0 else f"round {round_no}/{rounds}"
            print(f"[{phase}] {contender.name} ...", end=" ", file=sys.stderr, flush=True)
            run = run_once(contender, round_no)
            print(
                f"{run.seconds:.2f} s, {run.max_rss_kib / 1024:.0f} MiB, exit {run.exit_code}",
                file=sys.stderr,
                flush=True,
            )


def contender_stats(contenders: Iterable[Contender]) -> dict[str, ToolStats]:
    """Stats per contender, then per step of the multi-step ones (``name: step``)."""
    stats: dict[str, ToolStats] = {}
    for contender in contenders:
        stats[contender.name] = summarise(contender.runs)
        for step, runs in contender.step_runs.items():
            stats[f"  {contender.name}: {step}"] = summarise(runs)
    return stats


def speedup(slow: ToolStats, fast: ToolStats) -> tuple[float, float]:
    """``slow / fast`` on medians and on best runs."""
    return slow.median_seconds / fast.median_seconds, slow.min_seconds / fast.min_seconds


def run_notes(contenders: Iterable[Contender]) -> list[str]:
    """Unusual exit codes and output that changed between rounds."""
    lines = []
    for contender in contenders:
        codes = sorted({r.exit_code for r in contender.runs})
        if codes != [0]:
            lines.append(f"note: {contender.name} exit codes {codes}")
        if len(contender.fingerprints) != 1:
            lines.append(f"note: {contender.name}'s per-library output changed between rounds")
    return lines


def pass_fail(target: Target, strict: bool) -> str:
    """``PASS``/``FAIL`` line for a target."""
    verdict = "PASS" if target.passed else "FAIL"
    return f"{target.name}: {verdict} ({target.detail}){'' if strict else '  [informational]'}"


# --------------------------------------------------------------------------------------------
# (a) abi3 wheels


def _symbols(symbols: Sequence[str]) -> str:
    """``[a, b, ...] (+N more)``."""
    shown = ", ".join(symbols[:SHOWN_SYMBOLS])
    more = f" (+{len(symbols) - SHOWN_SYMBOLS} more)" if len(symbols) > SHOWN_SYMBOLS else ""
    return f"[{shown}]{more}"


def compare_objects(
    wheel: str, package: JSONObject | None, objects: Sequence[tuple[str, JSONObject]]
) -> list[ObjectComparison]:
    """Pair our libraries with abi3audit's shared objects (by file name) and judge them."""
    theirs: dict[str, list[JSONObject]] = defaultdict(list)
    for name, found in objects:
        theirs[name].append(found)
    rows = []
    root = _wheel_root(package) if package else Path(wheel)
    for lib in _libraries_of(package) if package else []:
        member = relative_path(lib["path"], root)
        candidates = theirs.get(Path(member).name) or []
        result = candidates.pop(0) if candidates else None
        violations = tuple((lib.get("cpython") or {}).get("violations") or [])
        kind, label = lib.get("kind"), lib.get("cpython_label")
        notes: list[str] = []
        if result is None:
            status = "only in our report"
        else:
            symbols_same = set(violations) == set(result.get("non_abi3_symbols") or [])
            notes.append(
                "CPython symbols outside the stable ABI: "
                + ("same in both" if symbols_same else "DIFFERENT")
            )
            if result.get("future_abi3_objects"):
                notes.append(
                    "abi3audit only: uses stable-ABI symbols newer than the wheel's baseline "
                    "(ours does not check the version floor)"
                )
            if kind != "extension":
                status = "not comparable: a bundled library for ours, not an extension module"
                notes.append(
                    "no PyInit_ export: ours treats it as a library loaded through torch or the "
                    "dynamic linker, labels it for information only and leaves it out of the "
                    "package's cpython_verdict; abi3audit audits every shared object of an abi3 "
                    "wheel against the wheel's tag"
                )
            else:
                ours_ok = label == "abi3-ok"
                theirs_ok = bool(
                    result.get("is_abi3") and result.get("is_abi3_baseline_compatible")
                )
                agree = ours_ok == theirs_ok and symbols_same
                status = "agree" if agree else "DIFFER"
                if ours_ok != theirs_ok:
                    notes.append(
                        f"ours {'abi3-ok' if ours_ok else label} vs abi3audit "
                        f"{'compliant' if theirs_ok else 'not compliant'}"
                    )
        rows.append(
            ObjectComparison(
                wheel=wheel,
                member=member,
                ours_kind=kind,
                ours_cpython_label=label,
                ours_violations=violations,
                abi3audit=result,
                status=status,
                notes=tuple(notes),
            )
        )
    rows.extend(
        ObjectComparison(
            wheel=wheel,
            member=name,
            ours_kind=None,
            ours_cpython_label=None,
            ours_violations=(),
            abi3audit=result,
            status="only in abi3audit's report",
            notes=(),
        )
        for name, results in sorted(theirs.items())
        for result in results
    )
    return rows


def format_abi3_verdicts(
    wheel: Path,
    package: JSONObject | None,
    objects: Sequence[tuple[str, JSONObject]],
    rows: Sequence[ObjectComparison],
) -> list[str]:
    """Both tools' CPython verdicts for one wheel, per shared object."""
    lines = [f"  {wheel.name}"]
    if package is not None:
        extensions = len(package.get("extensions") or [])
        bundled = len(package.get("bundled_libs") or [])
        findings = ", ".join(
            f"{f.get('code')} ({f.get('severity')})" for f in package.get("findings") or []
        )
        lines += [
            f"    ours: cpython_verdict={package.get('cpython_verdict')}; "
            f"{extensions} extension module{'s' * (extensions != 1)}, "
            f"{bundled} bundled librar{'ies' if bundled != 1 else 'y'}",
            f"    ours: findings: {findings or 'none'}",
        ]
    results = [result for _, result in objects]
    lines.append(
        f"    abi3audit: {len(results)} shared object{'s' * (len(results) != 1)}, "
        f"{sum(not r.get('is_abi3') for r in results)} with non-abi3 symbols, "
        f"{sum(not r.get('is_abi3_baseline_compatible') for r in results)} above the baseline"
    )
    for row in rows:
        lines.append(f"    {row.member}  => {row.status}")
        if row.ours_kind is not None:
            lines.append(
                f"      ours      : {row.ours_kind:<9} cpython_label={row.ours_cpython_label}  "
                f"cpython.violations={_symbols(row.ours_violations)}"
            )
        if row.abi3audit is not None:
            r = row.abi3audit
            lines.append(
                f"      abi3audit : is_abi3={r.get('is_abi3')}  "
                f"is_abi3_baseline_compatible={r.get('is_abi3_baseline_compatible')}  "
                f"baseline={r.get('baseline')}  computed={r.get('computed')}  "
                f"non_abi3_symbols={_symbols(r.get('non_abi3_symbols') or [])}  "
                f"future_abi3_objects={r.get('future_abi3_objects') or {}}"
            )
        lines += [f"      note      : {note}" for note in row.notes]
    return lines


def bench_abi3(
    args: argparse.Namespace, ours_exe: Path, rounds: int
) -> tuple[list[str], list[Target], JSONObject]:
    """Section (a): setup, measurement, verdicts; returns output lines, targets, JSON."""
    cache = args.cache.expanduser()
    wheels = [ensure_wheel(spec, cache) for spec in ABI3_WHEELS]
    abi3audit = ensure_tool(
        args.abi3audit_dir.expanduser(),
        ABI3AUDIT_REQUIREMENT,
        "abi3audit",
        "abi3audit",
        args.venv_python,
    )
    abi3audit_version = tool_version([str(abi3audit)])
    check_version("abi3audit", abi3audit_version, ABI3AUDIT_VERSION)

    pairs: list[tuple[str, Contender, Contender]] = []
    for spec, wheel in zip(ABI3_WHEELS, wheels, strict=True):
        ours = Contender(
            f"ours {spec.label}",
            (Step("torch-abi-audit", (str(ours_exe), str(wheel), "--json")),),
            ours_cpython_libraries,
        )
        theirs = Contender(
            f"abi3audit {spec.label}",
            (Step("abi3audit", (str(abi3audit), str(wheel), "--report")),),
            abi3audit_libraries,
        )
        pairs.append((spec.label, ours, theirs))
    all_wheels = tuple(str(w) for w in wheels)
    ours_both = Contender(
        "ours both wheels",
        (Step("torch-abi-audit", (str(ours_exe), *all_wheels, "--json")),),
        ours_cpython_libraries,
    )
    theirs_both = Contender(
        "abi3audit both wheels",
        (Step("abi3audit", (str(abi3audit), *all_wheels, "--report")),),
        abi3audit_libraries,
    )
    contenders = [c for _, ours, theirs in pairs for c in (ours, theirs)]
    contenders += [ours_both, theirs_both]

    print("(a) abi3 wheels", file=sys.stderr)
    measure(contenders, rounds)
    stats = contender_stats(contenders)

    targets: list[Target] = []
    ratios: dict[str, dict[str, float]] = {}
    ratio_lines = []
    for label, ours, theirs in pairs:
        median, best = speedup(stats[theirs.name], stats[ours.name])
        ratios[label] = {"median": median, "best": best}
        target = Target(
            f"{label}: ours >= {ABI3_TARGET:g}x faster than abi3audit",
            median >= ABI3_TARGET,
            f"{median:.1f}x {'>=' if median >= ABI3_TARGET else '<'} {ABI3_TARGET:g}x on medians",
        )
        targets.append(target)
        ratio_lines.append(
            f"  {label:<22} abi3audit / ours: {median:5.1f}x on medians, {best:5.1f}x on best runs"
        )
    median, best = speedup(stats[theirs_both.name], stats[ours_both.name])
    ratios["both wheels"] = {"median": median, "best": best}
    ratio_lines.append(
        f"  {'both wheels, one run':<22} abi3audit / ours: {median:5.1f}x on medians, "
        f"{best:5.1f}x on best runs  (no target)"
    )

    single = sorted((lib.path, lib.label) for _, ours, _ in pairs for lib in ours.last_libraries)
    both = sorted((lib.path, lib.label) for lib in ours_both.last_libraries)

    theirs_objects: dict[str, list[tuple[str, JSONObject]]] = {}
    for _, _, theirs in pairs:
        theirs_objects.update(abi3audit_objects(theirs.last_document))
    verdict_lines: list[str] = []
    comparisons: list[ObjectComparison] = []
    for (_, ours, _), wheel in zip(pairs, wheels, strict=True):
        package = packages_of(ours.last_document)[0] if ours.last_document else None
        objects = theirs_objects.get(wheel.name, [])
        rows = compare_objects(wheel.name, package, objects)
        comparisons += rows
        verdict_lines += format_abi3_verdicts(wheel, package, objects, rows)

    lines = [
        "(a) abi3 wheels: torch-abi-audit WHEEL --json  vs  abi3audit WHEEL --report",
        f"  abi3audit : abi3audit {abi3audit_version}  ({abi3audit})",
        *(f"  wheel     : {w.name}  ({mib(w.stat().st_size, from_bytes=True)})" for w in wheels),
        "",
        "Wall time and resources (peak RSS: largest process in the child's tree, via wait4)",
        *format_timing(stats),
        "",
        "Speed-up",
        *ratio_lines,
        *(f"  {pass_fail(t, args.strict)}" for t in targets),
        *run_notes(contenders),
        *(
            []
            if single == both
            else ["note: ours' per-library labels differ between one-wheel and two-wheel runs"]
        ),
        "",
        "CPython verdicts per shared object (ours: extension modules and bundled libraries; "
        "abi3audit: every shared object of the wheel, by file name)",
        *verdict_lines,
    ]
    payload: JSONObject = {
        "abi3audit_version": abi3audit_version,
        "wheels": [str(w) for w in wheels],
        "commands": {c.name: c.commands for c in contenders},
        "runs": [asdict(r) for c in contenders for r in c.runs],
        "stats": {name.strip(): asdict(s) for name, s in stats.items()},
        "speedup": ratios,
        "targets": [asdict(t) for t in targets],
        "ours_single_matches_both": single == both,
        "verdicts": [asdict(row) for row in comparisons],
    }
    return lines, targets, payload


# --------------------------------------------------------------------------------------------
# (b) torch wheel


def compare_torch(
    ours: Sequence[LibraryVerdict], theirs: Sequence[LibraryVerdict]
) -> list[TorchRow]:
    """Rows per library path (relative to the wheel / the unpacked directory)."""
    mine = {lib.path: lib for lib in ours}
    other = {lib.path: lib for lib in theirs}
    rows = []
    for path in sorted(mine.keys() | other.keys()):
        a, b = mine.get(path), other.get(path)
        hint = (a.hint if a else "") or (f"0.3.0: {b.hint}" if b and b.hint else "")
        if b is None and not path.endswith(PREDECESSOR_SUFFIXES):
            hint = "0.3.0 only looks at names ending in .so/.pyd/.dylib" + (
                f"; ours: {hint}" if hint else ""
            )
        rows.append(
            TorchRow(
                path=path,
                ours=a.label if a else None,
                predecessor=b.label if b else None,
                hint=hint,
            )
        )
    return rows


def format_torch_verdicts(
    rows: Sequence[TorchRow], ours_doc: JSONObject, theirs_doc: JSONObject
) -> list[str]:
    """The per-library table and the package roll-up of both tools."""
    width = max([len("library"), *(len(r.path) for r in rows)])
    lines = [
        "Torch verdicts per library (paths inside the wheel / the unpacked directory)",
        f"  {'library':<{width}}  {'ours':<9} 0.3.0",
    ]
    for row in rows:
        if row.agree:
            flag = ""
        elif row.ours is None or row.predecessor is None:
            flag = "  <-- audited by one tool only"
        else:
            flag = "  <-- differs"
        line = f"  {row.path:<{width}}  {row.ours or '-':<9} {row.predecessor or '-':<9}{flag}"
        lines.append(line.rstrip())
        if not row.agree and row.hint:
            lines.append(f"      hint: {row.hint}")
    ours_pkgs = our_packages({"packages": packages_of(ours_doc)})
    theirs_pkgs = predecessor_packages({"packages": packages_of(theirs_doc)})
    differing = sum(not r.agree for r in rows)
    lines += [
        f"  {len(rows)} libraries, {differing} not agreeing",
        "  package roll-up: ours "
        + ", ".join(f"{p.name}={p.label}" for p in ours_pkgs)
        + "; 0.3.0 "
        + ", ".join(f"{p.name}={p.label}" for p in theirs_pkgs),
    ]
    return lines


def bench_torch(
    args: argparse.Namespace, ours_exe: Path, rounds: int
) -> tuple[list[str], list[Target], JSONObject]:
    """Section (b): setup, measurement, verdicts; returns output lines, targets, JSON."""
    wheel = ensure_wheel(TORCH_WHEEL, args.cache.expanduser())
    pred_exe = ensure_tool(
        args.predecessor_dir.expanduser(),
        PREDECESSOR_REQUIREMENT,
        "torch-abi-audit",
        "torch-abi-audit",
        args.venv_python,
    )
    pred_version = tool_version([str(pred_exe)])
    check_version("predecessor", pred_version, PREDECESSOR_VERSION)
    unzip, unzip_label = unzip_step(args.unzip, wheel)

    ours = Contender(
        "ours",
        (Step("torch-abi-audit", (str(ours_exe), str(wheel), "--json")),),
        ours_torch_libraries,
    )
    pipeline = Contender(
        "pipeline",
        (unzip, Step("torch-abi-audit 0.3.0", (str(pred_exe), f"{TMP}/torch", "--json"))),
        predecessor_torch_libraries,
        uses_tmpdir=True,
    )
    print("(b) torch wheel", file=sys.stderr)
    measure([ours, pipeline], rounds)
    stats = contender_stats([ours, pipeline])

    median, best = speedup(stats[pipeline.name], stats[ours.name])
    peak = max(r.max_rss_kib for r in ours.runs) * 1024
    targets = [
        Target(
            "ours faster than unzip + torch-abi-audit 0.3.0",
            median > PIPELINE_TARGET,
            f"{median:.1f}x {'>' if median > PIPELINE_TARGET else '<='} "
            f"{PIPELINE_TARGET:g}x on medians",
        ),
        Target(
            "ours peak RSS <= 400 MB",
            peak <= RSS_TARGET_BYTES,
            f"max over rounds {peak / 1e6:,.0f} MB = {mib(peak, from_bytes=True)}",
        ),
    ]
    rows = compare_torch(ours.last_libraries, pipeline.last_libraries)
    lines = [
        "(b) torch wheel: torch-abi-audit WHEEL --json  vs  unzip into a temp dir + "
        "torch-abi-audit 0.3.0 TMP/torch --json",
        f"  wheel       : {wheel.name}  ({mib(wheel.stat().st_size, from_bytes=True)})",
        f"  predecessor : torch-abi-audit {pred_version}  ({pred_exe})",
        f"  unzip step  : {unzip_label}",
        "  pipeline    : time = unzip + 0.3.0 (temp dir created before and deleted after, "
        "untimed); peak RSS = the larger step's",
        "",
        "Wall time and resources (peak RSS: largest process in the child's tree, via wait4)",
        *format_timing(stats),
        "",
        f"Speed-up, pipeline / ours: {median:.1f}x on medians, {best:.1f}x on best runs",
        *(f"  {pass_fail(t, args.strict)}" for t in targets),
        *run_notes([ours, pipeline]),
        "",
        *format_torch_verdicts(rows, ours.last_document, pipeline.last_document),
    ]
    payload: JSONObject = {
        "wheel": str(wheel),
        "predecessor_version": pred_version,
        "unzip": unzip_label,
        "commands": {c.name: c.commands for c in (ours, pipeline)},
        "runs": [asdict(r) for c in (ours, pipeline) for r in c.runs],
        "step_runs": {step: [asdict(r) for r in runs] for step, runs in pipeline.step_runs.items()},
        "stats": {name.strip(): asdict(s) for name, s in stats.items()},
        "speedup": {"median": median, "best": best},
        "ours_peak_rss_bytes": peak,
        "targets": [asdict(t) for t in targets],
        "verdicts": [asdict(r) | {"agree": r.agree} for r in rows],
    }
    return lines, targets, payload


# --------------------------------------------------------------------------------------------
# Entry point


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    bench = default_cache_dir()
    parser = argparse.ArgumentParser(
        description="Time torch-abi-audit on wheels against abi3audit (abi3 wheels) and against "
        "unzip + torch-abi-audit 0.3.0 (the torch wheel), and compare their verdicts.",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help="timed rounds per contender after one warm-up each (default: %(default)s)",
    )
    parser.add_argument("--quick", action="store_true", help="one timed round (overrides --rounds)")
    parser.add_argument(
        "--only", choices=("abi3", "torch"), help="run one of the two comparisons only"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--json-out", type=Path, metavar="FILE", help="write measurements here")
    parser.add_argument(
        "--cache",
        type=Path,
        default=default_cache(),
        metavar="DIR",
        help="where the wheels are (missing ones are fetched with pip; default: %(default)s)",
    )
    parser.add_argument(
        "--ours-dir",
        type=Path,
        default=bench / "ours",
        help="venv into which this checkout is installed for timing (default: %(default)s)",
    )
    parser.add_argument(
        "--abi3audit-dir",
        type=Path,
        default=bench / "abi3audit",
        help=f"venv with {ABI3AUDIT_REQUIREMENT}; built if missing (default: %(default)s)",
    )
    parser.add_argument(
        "--predecessor-dir",
        type=Path,
        default=bench / "predecessor",
        help=f"venv with {PREDECESSOR_REQUIREMENT}; built if missing (default: %(default)s)",
    )
    parser.add_argument(
        "--unzip",
        choices=("auto", "unzip", "zipfile"),
        default="auto",
        help="pipeline's unpacking step: the unzip binary, python -m zipfile -e, or auto (unzip "
        "when on PATH; default: %(default)s)",
    )
    parser.add_argument(
        "--venv-python",
        default=sys.executable,
        help="interpreter that creates missing venvs and runs pip download (default: the "
        "running one)",
    )
    return parser


def run_benchmark(args: argparse.Namespace) -> int:
    """Set up, measure, compare, print; returns the exit code."""
    rounds = 1 if args.quick else args.rounds
    if rounds < 1:
        raise BenchError("--rounds must be at least 1")
    our_exe = install_checkout(args.ours_dir.expanduser(), args.venv_python)
    our_version = tool_version([str(our_exe)])

    sections: list[tuple[str, list[str], list[Target], JSONObject]] = []
    if args.only in {None, "abi3"}:
        sections.append(("abi3", *bench_abi3(args, our_exe, rounds)))
    if args.only in {None, "torch"}:
        sections.append(("torch", *bench_torch(args, our_exe, rounds)))

    targets = [t for _, _, section_targets, _ in sections for t in section_targets]
    lines = [
        "torch-abi-audit wheel benchmark",
        f"  ours     : torch-abi-audit {our_version}  ({our_exe}, installed from {REPO})",
        f"  machine  : {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}",
        f"  rounds   : {rounds} per contender after 1 warm-up each, order alternating",
    ]
    for _, section_lines, _, _ in sections:
        lines += ["", *section_lines]
    lines += [
        "",
        f"Targets: {sum(t.passed for t in targets)} of {len(targets)} met"
        f"{'' if args.strict else ' (informational; --strict makes a miss exit 1)'}",
        *(f"  {'PASS' if t.passed else 'FAIL'}  {t.name}: {t.detail}" for t in targets),
    ]
    print("\n".join(lines))

    if args.json_out:
        payload = {
            "ours_version": our_version,
            "ours": str(our_exe),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "rounds": rounds,
            **{name: data for name, _, _, data in sections},
            "targets_met": all(t.passed for t in targets),
        }
        args.json_out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"\nmeasurements written to {args.json_out}")
    return 1 if args.strict and not all(t.passed for t in targets) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return run_benchmark(args)
    except BenchError as exc:
        print(f"bench_wheels: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench_wheels: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
