"""Parity with pypa's abi3audit: our CPython (abi3) verdicts against its own, on real abi3 wheels.

Each wheel is checked twice, both tools on the same bytes in the same test:

* **wheel**: the wheel as published, each library judged against the abi3 version its tags
  promise (``cp39-abi3`` -> 3.9);
* **bare**: each library extracted alone, judged against the assumed minimum 3.2 — every
  stable-ABI symbol stabilised after 3.2 is then a future symbol, so the two symbol readers
  (ELF, Mach-O incl. fat, PE) and the version table are compared symbol by symbol.

Per library (abi3audit names them by file name, so we match on the basename) they must agree on
the baseline, the computed version, the future symbols (names and versions) and the non-abi3
symbols, except for the reviewed differences in :data:`EXPECTED_DIFFERENCES`, each with the
reason we hold our verdict right, which must still hold exactly (a difference that goes away
fails too, so the list stays true). abi3audit is given local files only, through a dead proxy,
so it cannot reach PyPI.

The published wheels are clean at their tags, so a compiled extension with violations
(``tests/fixtures/src/abi3_versions.c``: a 3.12 symbol under a 3.10 tag, a non-limited symbol,
two ``PyInit_``, a ``Py``-named function of its own) is compared the same way, offline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from helpers.build import compile_shared
from helpers.real_wheels import real_wheel
from helpers.wheel_builder import write_wheel
from torch_abi_audit import inspect_package
from torch_abi_audit.rules.cpython_abi import CPythonAnalysis

ASSUMED = "3.2"
TORCHAO = "torchao-0.18.0-cp310-abi3-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl"
#: The wheels, with how many future symbols their libraries have together in the bare check
#: (at 3.2): a guard against both tools agreeing on nothing.
WHEELS = {
    TORCHAO: 0,
    "cryptography-50.0.2-cp311-abi3-manylinux_2_28_x86_64.whl": 23,
    "cryptography-50.0.2-cp311-abi3-macosx_11_0_arm64.whl": 23,  # 50.0.2 has no x86_64 macOS
    "cryptography-50.0.2-cp311-abi3-win_amd64.whl": 23,
    "cryptography-42.0.7-cp39-abi3-manylinux_2_28_x86_64.whl": 6,
    "cryptography-42.0.7-cp39-abi3-macosx_10_12_universal2.whl": 6,
    "cryptography-42.0.7-cp39-abi3-win_amd64.whl": 4,
}
FIELDS = ("baseline", "computed", "future", "non_abi3")

Value = str | frozenset[str] | None


@dataclass(frozen=True)
class Difference:
    """A reviewed disagreement: in ``check`` of ``wheel``, ``member`` has ``field`` = ``ours``
    for us and ``theirs`` for abi3audit, because of ``reason``."""

    wheel: str
    check: str
    member: str
    field: str
    ours: Value
    theirs: Value
    reason: str


_MXFP8 = "_C_mxfp8.cpython-310-x86_64-linux-gnu.so"
_NOT_ABI3 = (
    "claims no abi3 (version-specific name, no python3 library, no PyInit_, not one Py* symbol: "
    "a torch op library); we judge abi3-intent libraries only, abi3audit every .so/.pyd, its "
    "computed being just the baseline floor; no violation either way"
)
COMPILED = "abi3pkg-1.0-cp310-abi3-manylinux_2_28_x86_64.whl"
_OWN = (
    "PyMyHelper is defined and exported by the extension itself (st_shndx != SHN_UNDEF), not "
    "taken from libpython: abi3audit reads every dynamic Py* symbol, defined or not, and calls "
    "it a non-abi3 symbol; the module loads on any abi3 interpreter, so it is no violation"
)
_OURS_ONLY = frozenset({"PyUnicode_AsUTF8"})
_THEIRS_TOO = frozenset({"PyUnicode_AsUTF8", "PyMyHelper"})
EXPECTED_DIFFERENCES = (
    Difference(TORCHAO, "wheel", _MXFP8, "baseline", None, "3.10", _NOT_ABI3),
    Difference(TORCHAO, "wheel", _MXFP8, "computed", None, "3.10", _NOT_ABI3),
    Difference(TORCHAO, "bare", _MXFP8, "baseline", None, ASSUMED, _NOT_ABI3),
    Difference(TORCHAO, "bare", _MXFP8, "computed", None, ASSUMED, _NOT_ABI3),
    Difference(COMPILED, "wheel", "ext.abi3.so", "non_abi3", _OURS_ONLY, _THEIRS_TOO, _OWN),
    Difference(COMPILED, "bare", "ext.abi3.so", "non_abi3", _OURS_ONLY, _THEIRS_TOO, _OWN),
)


def ours(cpython: CPythonAnalysis) -> dict[str, Value]:
    return {
        "baseline": cpython.baseline,
        "computed": cpython.computed,
        "future": frozenset(f"{name} {version}" for name, version in cpython.future_symbols),
        "non_abi3": frozenset(cpython.violations),
    }


def theirs(result: dict[str, Any]) -> dict[str, Value]:
    return {
        "baseline": result["baseline"],
        "computed": result["computed"],
        "future": frozenset(f"{n} {v}" for n, v in result["future_abi3_objects"].items()),
        "non_abi3": frozenset(result["non_abi3_symbols"]),
    }


def start_abi3audit(*specs: Path, assume: str | None = None) -> subprocess.Popen[str]:
    """abi3audit's JSON report on local files, run in the background."""
    command = [sys.executable, "-m", "abi3audit", "--report"]
    if assume is not None:
        command += ["--assume-minimum-abi3", assume]
    dead = "http://127.0.0.1:9"  # nothing listens there: any PyPI request would fail
    env = {**os.environ, "NO_COLOR": "1", "HTTP_PROXY": dead, "HTTPS_PROXY": dead}
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    return subprocess.Popen(
        [*command, *map(str, specs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def abi3audit_results(process: subprocess.Popen[str], kind: str) -> dict[str, dict[str, Value]]:
    """Basename -> verdict, from a finished abi3audit run whose specs are all of ``kind``."""
    stdout, stderr = process.communicate(timeout=300)
    # It exits 1 when it finds a problem (future symbols in the bare check): not a failure here.
    assert process.returncode in (0, 1), stderr
    results: dict[str, dict[str, Value]] = {}
    for spec in json.loads(stdout)["specs"].values():
        assert spec["kind"] == kind, spec  # a wheel or a file, never a PyPI project
        for entry in spec["wheel"] if kind == "wheel" else [spec["object"]]:
            assert entry["name"] not in results, entry["name"]
            results[entry["name"]] = theirs(entry["result"])
    return results


def compare(
    wheel: str, check: str, mine: dict[str, dict[str, Value]], other: dict[str, dict[str, Value]]
) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """(every row, the failing rows): member, field, ours, theirs, expected difference."""
    expected = {
        (d.member, d.field): d for d in EXPECTED_DIFFERENCES if (d.wheel, d.check) == (wheel, check)
    }
    rows: list[tuple[str, ...]] = []
    failures: list[tuple[str, ...]] = []
    for member in sorted(mine.keys() | other.keys()):
        if member not in mine or member not in other:
            row = (check, member, "member", str(member in mine), str(member in other), "")
            rows.append(row)
            failures.append(row)
            continue
        for field in FIELDS:
            a, b = mine[member][field], other[member][field]
            difference = expected.pop((member, field), None)
            row = (check, member, field, show(a), show(b), "")
            if difference is not None:
                row = (*row[:5], f"expected: {show(difference.ours)} / {show(difference.theirs)}")
                failed = (a, b) != (difference.ours, difference.theirs)
            else:
                failed = a != b
            rows.append(row)
            if failed:
                failures.append(row)
    for difference in expected.values():  # a reviewed difference about a member not seen
        row = (check, difference.member, difference.field, "?", "?", "expected, not seen")
        rows.append(row)
        failures.append(row)
    return rows, failures


def show(value: Value) -> str:
    if value is None:
        return "-"
    if isinstance(value, frozenset):
        return "{" + ", ".join(sorted(value)) + "}"
    return value


def table(rows: list[tuple[str, ...]]) -> str:
    header = ("check", "member", "field", "ours", "theirs", "note")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


def compare_with_abi3audit(wheel: Path, tmp_path: Path) -> dict[str, dict[str, Value]]:
    """Both checks on ``wheel``; fails on any unreviewed difference. Returns our bare verdicts."""
    members = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.endswith((".so", ".pyd", ".dylib", ".dll")):
                bare = tmp_path / PurePosixPath(name).name
                assert not bare.exists(), f"two members named {bare.name}"
                bare.write_bytes(archive.read(name))
                members[name] = bare
    bare_paths = sorted(members.values())
    # Both abi3audit runs in the background while ours run (the PE ones take seconds).
    running_wheel = start_abi3audit(wheel)
    # abi3audit reads .so and .pyd files only (it takes any other argument for a PyPI project).
    audited = [path for path in bare_paths if path.suffix in (".so", ".pyd")]
    running_bare = start_abi3audit(*audited, assume=ASSUMED)

    report = inspect_package(wheel, jobs=1)
    assert report.error is None and not report.problems, (report.error, report.problems)
    in_wheel = {}
    for library in report.libraries:
        assert library.error is None and library.skipped is None, library.path
        member = library.path.relative_to(report.root).as_posix()
        assert member in members, member
        assert PurePosixPath(member).name not in in_wheel, member
        in_wheel[PurePosixPath(member).name] = ours(library.cpython)
    alone = {}
    for bare in bare_paths:
        (library,) = inspect_package(bare, jobs=1, assume_minimum_abi3=ASSUMED).libraries
        alone[bare.name] = ours(library.cpython)

    name = wheel.name
    rows, failures = compare(name, "wheel", in_wheel, abi3audit_results(running_wheel, "wheel"))
    more_rows, more_failures = compare(
        name, "bare", alone, abi3audit_results(running_bare, "object")
    )
    rows, failures = rows + more_rows, failures + more_failures
    print(f"{name}\n{table(rows)}")
    assert not failures, f"{name}: ours and abi3audit's verdicts differ\n{table(failures)}"
    return alone


@pytest.mark.network
@pytest.mark.parametrize("filename", list(WHEELS), ids=lambda f: f.split("-abi3-")[0])
def test_cpython_verdicts_match_abi3audit(filename: str, tmp_path: Path) -> None:
    alone = compare_with_abi3audit(real_wheel(filename), tmp_path)
    future = [symbol for verdict in alone.values() for symbol in verdict["future"] or ()]
    assert len(future) == WHEELS[filename], f"future symbols at {ASSUMED} (bare check): {future}"


def test_violations_match_abi3audit_on_a_compiled_extension(tmp_path: Path) -> None:
    built = tmp_path / "build"
    built.mkdir()
    include = ["-I", sysconfig.get_paths()["include"]]
    extension = compile_shared("abi3_versions.c", built / "ext.abi3.so", *include)
    tags = ["cp310-abi3-manylinux_2_28_x86_64"]
    wheel = write_wheel(
        built, "abi3pkg", "1.0", tags, {"abi3pkg/ext.abi3.so": extension.read_bytes()}
    )
    assert wheel.name == COMPILED
    alone = compare_with_abi3audit(wheel, tmp_path)
    # What both tools found, beyond the reviewed difference: the guard against agreeing on nothing.
    assert alone["ext.abi3.so"] == {
        "baseline": ASSUMED,
        "computed": "3.12",
        "future": frozenset({"PyType_FromMetaclass 3.12", "PyUnicode_AsUTF8AndSize 3.10"}),
        "non_abi3": _OURS_ONLY,
    }
