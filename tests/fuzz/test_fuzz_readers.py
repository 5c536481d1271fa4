"""Structure-aware fuzzing of the ELF, Mach-O and PE readers through the whole per-file pipeline.

Seeds: compiled fixtures and byte-built images (ELF 32/64-bit in both byte orders, with and
without section headers, SysV and GNU hash, symbol versions; Mach-O thin 64-bit and 32-bit
big-endian, with classic bind opcodes and with chained fixups, universal 32- and 64-bit; PE32 and
PE32+ with imports, delay-load imports and exports with forwarders), and members of real wheels
(``network``). Mutants change structure fields (:mod:`helpers.mutants`), several at a time, and
each one goes through :func:`inspect_extension` — read, judge, report — and the renderers.

What must hold for every input: a report or a per-file error, never an exception and never an
"internal error" (a bug caught by the engine's last resort), within :data:`TIME_LIMIT` seconds
of CPU (a wall-clock deadline catches hangs) and :data:`MEMORY_LIMIT` of Python allocations,
and text output free of terminal controls.

The quick run (CI) takes :data:`QUICK_CASES` mutants of the compiled and built seeds and
:data:`QUICK_REAL_CASES` of the real members per format. The long run::

    TORCH_ABI_AUDIT_FUZZ_CASES=10000 TORCH_ABI_AUDIT_FUZZ_REPORT=fuzz.json \\
        python -m pytest tests/fuzz -p no:cacheprovider -q

runs that many per format (per seed family: compiled/built, and real members) and writes the
figures (cases, crashes, worst time, worst memory) to the report file.
"""

from __future__ import annotations

import gc
import json
import os
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.build import Fixtures
from helpers.elf_inspect import deadline
from helpers.fuzz_seeds import REAL_SEEDS, elf_seeds, macho_seeds, pe_seeds
from helpers.mutants import FIELD_MAPS, KINDS, Field, Mutation, describe, mutate
from helpers.real_wheels import member_bytes, real_wheel
from torch_abi_audit.engine import INTERNAL_ERROR, inspect_extension
from torch_abi_audit.renderers.escape import terminal_lines
from torch_abi_audit.renderers.json_report import dumps, library_object
from torch_abi_audit.renderers.table import library_lines
from torch_abi_audit.report import ExtensionReport

#: Mutants per format in the quick run: of the compiled and built seeds, of the real members.
QUICK_CASES = 150
QUICK_REAL_CASES = 100
CASES = int(os.environ.get("TORCH_ABI_AUDIT_FUZZ_CASES", QUICK_CASES))
REAL_CASES = int(os.environ.get("TORCH_ABI_AUDIT_FUZZ_CASES", QUICK_REAL_CASES))
#: What one file may cost at most (the guarantee is 2 s; seeds are small).
TIME_LIMIT = 2.0
MEMORY_LIMIT = 64 << 20

FORMATS = ("elf", "mach-o", "pe")
#: Seeds by format, each with its field map.
Family = dict[str, list[tuple[bytes, list[Field]]]]


@dataclass
class Figures:
    """What a run measured, per format and seed family."""

    cases: int = 0
    crashes: list[str] = field(default_factory=list)
    errors: int = 0
    worst_seconds: float = 0.0
    worst_memory: int = 0


FIGURES: dict[str, Figures] = {}


@pytest.fixture(scope="session", autouse=True)
def _write_figures() -> Iterator[None]:
    yield
    target = os.environ.get("TORCH_ABI_AUDIT_FUZZ_REPORT")
    if target and FIGURES:
        summary = {
            key: {
                "cases": f.cases,
                "crashes": len(f.crashes),
                "per_file_errors": f.errors,
                "worst_cpu_seconds": round(f.worst_seconds, 4),
                "worst_memory_bytes": f.worst_memory,
                "first_crashes": f.crashes[:5],
            }
            for key, f in sorted(FIGURES.items())
        }
        Path(target).write_text(json.dumps(summary, indent=2) + "\n")


# -- seeds --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeds(built: Fixtures) -> Family:
    found = {"elf": elf_seeds(built), "mach-o": macho_seeds(), "pe": pe_seeds()}
    return {fmt: [(data, FIELD_MAPS[fmt](data)) for data in datas] for fmt, datas in found.items()}


@pytest.fixture(scope="module")
def real_seeds() -> Family:
    return {
        fmt: [
            (data, FIELD_MAPS[fmt](data))
            for data in (member_bytes(real_wheel(wheel), member) for wheel, member in members)
        ]
        for fmt, members in REAL_SEEDS.items()
    }


# -- one case -----------------------------------------------------------------------------------


def _rendered(report: ExtensionReport, root: Path) -> str:
    """The report as the table and JSON show it (rendering must not fail either)."""
    text = terminal_lines(library_lines(report, root, verbose=True))
    return text + dumps(library_object(report), pretty=False)


def run_case(path: Path, data: bytes, key: str, context: str) -> None:
    """Audit ``data`` as the file ``path`` and check the guarantees; record the figures."""
    figures = FIGURES.setdefault(key, Figures())
    path.write_bytes(data)
    # The cyclic collector runs between cases, not inside one: what it would do there is
    # collect the fuzzer's own heap (hypothesis keeps every example's choices), not this file's.
    gc.disable()
    tracemalloc.start()
    started = time.process_time()  # this process's work, whatever else the machine runs
    try:
        with deadline(30):
            report = inspect_extension(path)
            _rendered(report, path.parent)
    except Exception as exc:  # a crash: recorded, then reported by the test
        figures.crashes.append(f"{type(exc).__name__}: {exc} [{context}]")
        raise
    finally:
        seconds = time.process_time() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        gc.enable()
    figures.cases += 1
    figures.worst_seconds = max(figures.worst_seconds, seconds)
    figures.worst_memory = max(figures.worst_memory, peak)
    if report.error is not None:
        figures.errors += 1
        if report.error.startswith(INTERNAL_ERROR):
            figures.crashes.append(f"{report.error} [{context}]")
    assert not (report.error or "").startswith(INTERNAL_ERROR), (report.error, context)
    assert seconds < TIME_LIMIT, (seconds, context)
    assert peak < MEMORY_LIMIT + 4 * len(data), (peak, context)


MUTATIONS = st.lists(
    st.builds(
        Mutation,
        st.integers(0, 1 << 16),
        st.sampled_from(KINDS),
        st.integers(0, (1 << 64) - 1),
    ),
    min_size=1,
    max_size=4,
)
LONG_RUN = "TORCH_ABI_AUDIT_FUZZ_CASES" in os.environ


def _fuzz(family: Family, fmt: str, key: str, where: Path, cases: int) -> None:
    """Run ``cases`` mutants of ``family``'s ``fmt`` seeds, recorded under ``key``."""
    suffix = {"elf": ".so", "mach-o": ".dylib", "pe": ".pyd"}[fmt]

    @settings(
        max_examples=cases,
        deadline=None,
        database=None,  # nothing written into the checkout
        derandomize=not LONG_RUN,  # CI: the same mutants every run
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(st.data())
    def check(data: st.DataObject) -> None:
        seed, fields = data.draw(st.sampled_from(family[fmt]), label="seed")
        mutations = data.draw(MUTATIONS, label="mutations")
        mutant = mutate(seed, fields, mutations)
        context = "; ".join(describe(fields, mutations))
        run_case(where / f"mutant{suffix}", mutant, key, context)

    check()


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_seed_has_fields_to_mutate(fmt: str, seeds: Family) -> None:
    for _data, fields in seeds[fmt]:
        assert len(fields) > 40
        assert {f.size for f in fields} >= {0, 2, 4}


@pytest.mark.parametrize("fmt", FORMATS)
def test_seeds_are_audited_as_they_are(fmt: str, seeds: Family, tmp_path: Path) -> None:
    for index, (data, _fields) in enumerate(seeds[fmt]):
        path = tmp_path / f"seed{index}.so"
        path.write_bytes(data)
        report = inspect_extension(path)
        assert report.error is None, (index, report.error)


@pytest.mark.parametrize("fmt", FORMATS)
def test_structure_mutants(
    fmt: str,
    seeds: Family,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    _fuzz(seeds, fmt, fmt, tmp_path_factory.mktemp(f"fuzz-{fmt}"), CASES)


@pytest.mark.network
@pytest.mark.parametrize("fmt", FORMATS)
def test_structure_mutants_of_real_wheel_members(
    fmt: str,
    real_seeds: Family,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    directory = tmp_path_factory.mktemp(f"fuzz-real-{fmt}")
    _fuzz(real_seeds, fmt, f"{fmt} (real)", directory, REAL_CASES)
