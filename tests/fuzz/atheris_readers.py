"""Coverage-guided fuzzing of the readers with atheris (libFuzzer), structure-aware.

The same seeds and mutations as ``test_fuzz_readers.py``, with libFuzzer keeping the mutants
that reach new code: its corpus starts from the seeds, and a custom mutator maps the fields of
whatever input it picks (:mod:`helpers.mutants`) and changes one to four of them (a plain
libFuzzer byte mutation one time in eight). Each input goes through ``inspect_extension`` and
the renderers; an exception, an internal error or more than 2 s is a crash. Not collected by
pytest (a long run, needs ``pip install atheris``)::

    python tests/fuzz/atheris_readers.py elf -runs=10000 -timeout=2 -rss_limit_mb=1024

(``mach-o`` and ``pe`` likewise). At exit it prints the figures: cases, crashes, worst time
and worst Python allocation peak of one input (every 1,000 inputs and after the last).
"""

from __future__ import annotations

import atexit
import gc
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the helpers

from helpers.build import build_fixtures
from helpers.fuzz_seeds import elf_seeds, macho_seeds, pe_seeds
from helpers.mutants import FIELD_MAPS, KINDS, Mutation, mutate

with atheris.instrument_imports(include=["torch_abi_audit"]):
    from torch_abi_audit.engine import INTERNAL_ERROR, inspect_extension
    from torch_abi_audit.renderers.escape import terminal_lines
    from torch_abi_audit.renderers.json_report import dumps, library_object
    from torch_abi_audit.renderers.table import library_lines

SUFFIX = {"elf": ".so", "mach-o": ".dylib", "pe": ".pyd"}
FIGURES = {"cases": 0, "worst_seconds": 0.0, "worst_memory": 0}


def _seeds(fmt: str, directory: Path) -> list[bytes]:
    if fmt == "elf":
        return elf_seeds(build_fixtures(directory / "compiled"))
    return macho_seeds() if fmt == "mach-o" else pe_seeds()


def main() -> None:
    fmt = sys.argv.pop(1)
    if fmt not in FIELD_MAPS:
        raise SystemExit(f"usage: {sys.argv[0]} {{elf,mach-o,pe}} [libFuzzer options]")
    work = Path(tempfile.mkdtemp(prefix="torch-abi-audit-atheris-"))
    corpus = work / "corpus"
    corpus.mkdir()
    for index, seed in enumerate(_seeds(fmt, work)):
        (corpus / f"seed{index}").write_bytes(seed)
    target = work / f"input{SUFFIX[fmt]}"
    fields_of = FIELD_MAPS[fmt]
    for start in sorted(corpus.iterdir()):  # what loads once (rule tables), before the clock
        target.write_bytes(start.read_bytes())
        inspect_extension(target)
    runs = next((int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("-runs=")), 0)

    def mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        fields = fields_of(data)
        if not fields or rng.random() < 1 / 8:
            return bytes(atheris.Mutate(data, max_size))
        mutations = [
            Mutation(rng.randrange(1 << 16), rng.choice(KINDS), rng.getrandbits(64))
            for _ in range(rng.randint(1, 4))
        ]
        return mutate(data, fields, mutations)[:max_size]

    def one_input(data: bytes) -> None:
        target.write_bytes(data)
        gc.disable()  # collections happen between inputs, on the fuzzer's heap
        tracemalloc.start()
        started = time.process_time()
        report = inspect_extension(target)
        terminal_lines(library_lines(report, work, verbose=True))
        dumps(library_object(report), pretty=False)
        seconds = time.process_time() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        gc.enable()
        FIGURES["cases"] += 1
        FIGURES["worst_seconds"] = max(FIGURES["worst_seconds"], seconds)
        FIGURES["worst_memory"] = max(FIGURES["worst_memory"], peak)
        if FIGURES["cases"] % 1000 == 0 or FIGURES["cases"] == runs:
            print(f"figures ({fmt}): {FIGURES}", file=sys.stderr, flush=True)
        if (report.error or "").startswith(INTERNAL_ERROR):
            raise RuntimeError(report.error)
        if seconds > 2:
            raise TimeoutError(f"{seconds:.2f} s for one file")

    atexit.register(lambda: print(f"figures ({fmt}): {FIGURES}", file=sys.stderr))
    atheris.Setup([sys.argv[0], *sys.argv[1:], str(corpus)], one_input, custom_mutator=mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
