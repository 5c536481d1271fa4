"""The benchmarks' floor helper (benchmarks/libraries_for_free.py) does the scan's job without
reading libraries: its output is the real run's, and it looks the reports up instead of reading
the files (a library broken after the reports were made is still reported as it was)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from helpers.site import FakeSite

HELPER = Path(__file__).resolve().parent.parent / "benchmarks" / "libraries_for_free.py"


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *command], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_floor_replays_the_scan_without_reading_a_library(
    fake_site: FakeSite, tmp_path: Path
) -> None:
    site = tmp_path / "site-packages"
    shutil.copytree(fake_site.site, site, symlinks=True)
    # --jobs 2: the reports reach forked workers, as in the benchmark.
    scan = ["--site-packages", str(site), "--all", "--json", "--no-load-prediction", "--jobs", "2"]
    real = _run("-m", "torch_abi_audit", *scan)
    assert real.returncode == 2, real.stderr  # the fake site holds corrupt files
    reports = tmp_path / "reports.pickle"

    collected = _run(str(HELPER), "--collect", str(reports), "--", *scan)
    assert collected.returncode == real.returncode, collected.stderr
    assert collected.stdout == ""  # the report is not the point of collecting
    assert "reports kept" in collected.stderr

    unstable = site / "fakepkg_extra" / "libextra.so"
    unstable.write_bytes(b"\x7fELF broken after the reports were made")
    read_now = _run("-m", "torch_abi_audit", *scan)
    assert "libextra.so" in read_now.stdout
    assert read_now.stdout != real.stdout  # reading the files now would tell

    replayed = _run(str(HELPER), str(reports), "--", *scan)
    assert replayed.returncode == real.returncode, replayed.stderr
    assert replayed.stdout == real.stdout


def test_the_floor_helper_says_how_to_call_it() -> None:
    result = _run(str(HELPER), "reports.pickle", "--site-packages", ".")
    assert result.returncode == 2
    assert "--collect REPORTS -- ARGS" in result.stderr
