#!/usr/bin/env python3
"""torch-abi-audit with every library's report made beforehand: what a run costs when reading
and judging its libraries costs nothing. ``bench_env.py`` times it as the floor of a scan: the
most that any speed-up of the per-library work could give. A diagnostic, not a tool.

    python libraries_for_free.py --collect REPORTS -- ARGS   # audit ARGS serially, keep the reports
    python libraries_for_free.py REPORTS -- ARGS             # audit ARGS, the reports looked up

The second form runs the console script's entry point on ARGS with
``engine.inspect_extension`` replaced by a look-up in REPORTS (a pickle of location -> report).
Everything else runs as usual: the start-up, discovery, the worker pool and the reports'
way back to the main process, the findings, the output. Each worker loads REPORTS as it is
forked, while it would otherwise wait for its first task; a library missing from REPORTS is
read for real.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

from torch_abi_audit import cli, engine
from torch_abi_audit.report import ExtensionReport

_Store = dict[engine.LibraryLocation, ExtensionReport]


def _collect(store_path: Path, arguments: list[str]) -> int:
    store: _Store = {}
    read = engine.inspect_extension

    def keep(location: engine.LibraryLocation | str, **options: bool) -> ExtensionReport:
        report = read(location, **options)
        if not isinstance(location, str):
            store[location] = report
        return report

    engine.inspect_extension = keep
    sys.stdout = Path(os.devnull).open("w")  # noqa: SIM115 - for the life of the process
    code = cli.main([*arguments, "--jobs", "1"])  # in this process: every report is seen here
    with store_path.open("wb") as file:
        pickle.dump(store, file, protocol=pickle.HIGHEST_PROTOCOL)
    print(f"{len(store)} reports kept in {store_path}", file=sys.stderr)
    return code


def _replay(store_path: Path, arguments: list[str]) -> None:
    read = engine.inspect_extension
    store: _Store = {}

    def load() -> None:
        with store_path.open("rb") as file:
            store.update(pickle.load(file))

    def look_up(location: engine.LibraryLocation | str, **options: bool) -> ExtensionReport:
        if not store:
            load()
        found = store.get(location) if not isinstance(location, str) else None
        return found if found is not None else read(location, **options)

    engine.inspect_extension = look_up
    os.register_at_fork(after_in_child=load)
    sys.argv = [sys.argv[0], *arguments]
    cli.run()


def main() -> int:
    """``[--collect] REPORTS -- ARGS``."""
    argv = sys.argv[1:]
    collect = bool(argv) and argv[0] == "--collect"
    argv = argv[1:] if collect else argv
    if len(argv) < 2 or argv[1] != "--":
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    store_path, arguments = Path(argv[0]), argv[2:]
    if collect:
        return _collect(store_path, arguments)
    _replay(store_path, arguments)
    return 0  # not reached: cli.run ends the process


if __name__ == "__main__":
    raise SystemExit(main())
