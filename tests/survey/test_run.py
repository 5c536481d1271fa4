"""``survey run`` against a loopback index: rows, failures as rows, resumption, increments,
exports, the Dask engine on a local cluster, and Ctrl-C."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from helpers.build import Fixtures
from helpers.local_index import LocalIndex
from helpers.survey_index import run_arguments, stable_wheel
from survey.conftest import Surveyed
from torch_abi_audit.survey import cli as survey_cli


def _rows(store: Path, sql: str, parameters: tuple[object, ...] = ()) -> list[sqlite3.Row]:
    connection = sqlite3.connect(store)
    connection.row_factory = sqlite3.Row
    try:
        return list(connection.execute(sql, parameters))
    finally:
        connection.close()


def _wheel(store: Path, filename_part: str) -> sqlite3.Row:
    rows = _rows(store, "SELECT * FROM wheels WHERE filename LIKE ?", (f"%{filename_part}%",))
    assert len(rows) == 1, [r["filename"] for r in rows]
    return rows[0]


def test_rows_per_wheel_library_and_finding(surveyed: Surveyed) -> None:
    stable = _wheel(surveyed.store, "survey_stable-1.1-cp312")
    assert stable["status"] == "audited" and stable["torch_verdict"] == "torch-stable"
    assert stable["min_torch"] and stable["requires_torch"] == "torch>=2.0"
    assert stable["sha256"] == stable["key"] and len(stable["key"]) == 64
    assert stable["upload_time"] == "2026-01-10T10:00:00Z"
    assert stable["load_status"] == "loads" and stable["load_against"].startswith("torch ")
    (library,) = _rows(surveyed.store, "SELECT * FROM libraries WHERE key=?", (stable["key"],))
    assert library["path"] == "survey_stable/libstable_plugin.so"
    assert library["torch_label"] == "STABLE" and library["stable_shims"] >= 2
    codes = {
        r["code"]
        for r in _rows(surveyed.store, "SELECT code FROM findings WHERE key=?", (stable["key"],))
    }
    assert "torch-floor-too-low" in codes
    report = json.loads(zlib.decompress(stable["report_json"]))
    assert report["schema_version"] and report["torch_verdict"] == "torch-stable"

    unstable = _wheel(surveyed.store, "survey_unstable-2.0")
    assert unstable["torch_verdict"] == "torch-unstable" and unstable["min_torch"] is None
    # Judged against the release's Linux build: at::Tensor::dim() is inline, no build exports it.
    assert unstable["load_status"] == "fails"
    assert "torch-unpinned-unstable" in unstable["finding_codes"].split()


def test_failures_are_rows_with_reasons(surveyed: Surveyed) -> None:
    corrupt = _wheel(surveyed.store, "survey_corrupt")
    assert (corrupt["status"], corrupt["stage"]) == ("failed", "archive")
    assert "is invalid" in corrupt["error"]
    # pip takes a wheel whose library member is damaged; the audit reads it and says so.
    damaged = _wheel(surveyed.store, "survey_damaged")
    assert (damaged["status"], damaged["torch_verdict"]) == ("audited", "error")
    assert damaged["has_library_errors"] == 1
    (library,) = _rows(surveyed.store, "SELECT * FROM libraries WHERE key=?", (damaged["key"],))
    assert library["torch_label"] == "ERROR" and "CRC" in library["error"]
    missing = _wheel(surveyed.store, "survey_missing")
    assert (missing["status"], missing["stage"]) == ("failed", "download")
    assert missing["error"]
    assert surveyed.exit_code == 2  # failed wheels and an unknown package: an operational problem
    assert "survey-nowhere" in surveyed.stderr and "not found" in surveyed.stderr
    assert "FAILED at download" in surveyed.stderr


def test_selections_say_what_each_platform_gets(surveyed: Surveyed) -> None:
    rows = _rows(surveyed.store, "SELECT * FROM selections WHERE package='survey-stable'")
    chosen = {(r["version"], r["platform"]): (r["key"], r["reason"]) for r in rows}
    assert set(chosen) == {
        (v, p) for v in ("1.0", "1.1") for p in ("manylinux_2_39_x86_64", "win_amd64")
    }
    key, reason = chosen[("1.0", "win_amd64")]
    assert key is None and "no wheel for win_amd64" in reason
    pure = _wheel(surveyed.store, "survey_stable-1.1-py3-none-any")
    assert chosen[("1.1", "win_amd64")] == (pure["key"], None)
    assert pure["torch_verdict"] == "no-torch"


def test_run_row_and_bounded_disk(surveyed: Surveyed) -> None:
    run = _rows(surveyed.store, "SELECT * FROM runs ORDER BY id")[0]
    assert (run["engine"], run["workers"], run["outcome"]) == ("local", 2, "finished")
    assert (run["planned"], run["audited"], run["failed"], run["skipped"]) == (7, 5, 2, 0)
    assert run["bytes"] > 0 and run["wall_seconds"] > 0 and run["cpu_seconds"] > 0
    # Every fetched wheel was deleted, and the run's download directory with them.
    assert not any(surveyed.work_dir.rglob("*.whl"))
    assert list(surveyed.work_dir.iterdir()) == []


def test_rerun_resumes_and_adds_new_releases_only(
    surveyed: Surveyed,
    local_index: LocalIndex,
    built: Fixtures,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    local_index.add("survey-stable", stable_wheel(tmp_path, built, "1.2"), "2026-03-01T10:00:00Z")
    try:
        code = survey_cli.main(
            [
                *run_arguments(local_index, surveyed.store, "survey-stable", "survey-missing"),
                "-j",
                "1",
            ]
        )
    finally:
        local_index.projects["survey-stable"].pop()
    err = capsys.readouterr().err
    # 1.2 is new; 1.0, 1.1 and 1.1's pure wheel are stored; the download that answered 404 is
    # tried again (and fails again).
    assert "already stored" in err
    runs = _rows(surveyed.store, "SELECT * FROM runs ORDER BY id")
    assert (runs[-1]["audited"], runs[-1]["failed"]) == (1, 1)
    assert runs[-1]["skipped"] == 3
    assert code == 2
    assert _wheel(surveyed.store, "survey_stable-1.2")["torch_verdict"] == "torch-stable"


def test_export_csv_and_parquet(surveyed: Surveyed, tmp_path: Path) -> None:
    assert survey_cli.main(["export", "--store", str(surveyed.store), "-o", str(tmp_path)]) == 0
    with (tmp_path / "wheels.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert "report_json" not in rows[0]
    by_name = {row["filename"]: row for row in rows}
    stable = next(r for name, r in by_name.items() if name.startswith("survey_stable-1.1-cp312"))
    assert stable["torch_verdict"] == "torch-stable"
    for table in ("libraries", "findings", "selections", "runs"):
        assert (tmp_path / f"{table}.csv").stat().st_size > 0
    parquet = tmp_path / "parquet"
    assert (
        survey_cli.main(
            ["export", "--store", str(surveyed.store), "-o", str(parquet), "--format", "parquet"]
        )
        == 0
    )
    import pyarrow.parquet as pq

    table = pq.read_table(parquet / "wheels.parquet")
    assert table.num_rows == len(rows)
    assert set(table.column("torch_verdict").to_pylist()) >= {"torch-stable", "torch-unstable"}


def test_dask_engine_on_a_local_cluster(
    surveyed: Surveyed, local_index: LocalIndex, tmp_path: Path
) -> None:
    store = tmp_path / "dask.db"
    packages = ("survey-stable", "survey-unstable", "survey-corrupt")
    code = survey_cli.main(
        [*run_arguments(local_index, store, *packages), "--engine", "dask", "-j", "2", "-q"]
    )
    assert code == 2  # the corrupt wheel
    (run,) = _rows(store, "SELECT * FROM runs")
    assert (run["engine"], run["workers"], run["audited"], run["failed"]) == ("dask", 2, 4, 1)
    columns = "key, status, stage, torch_verdict, min_torch, load_status, finding_codes"
    on_dask = _rows(store, f"SELECT {columns} FROM wheels ORDER BY key")
    local = _rows(
        surveyed.store,
        f"SELECT {columns} FROM wheels WHERE package NOT IN ('survey-missing', 'survey-damaged')"
        " AND filename NOT LIKE '%1.2%' ORDER BY key",
    )
    assert [tuple(r) for r in on_dask] == [tuple(r) for r in local]


def _stored(store: Path) -> int:
    """Wheels in a store another process is writing (0 until its tables exist)."""
    try:
        return int(_rows(store, "SELECT COUNT(*) AS n FROM wheels")[0]["n"])
    except sqlite3.OperationalError:
        return 0


#: ``python -m torch_abi_audit`` with Ctrl-C raising KeyboardInterrupt, whoever started the
#: tests: a shell starts background jobs with SIGINT ignored, and Python then installs no
#: handler for it (the signal would be lost).
_WITH_CTRL_C = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'torch_abi_audit'; runpy.run_module('torch_abi_audit', run_name='__main__')"
)


def test_ctrl_c_stops_cleanly_and_a_rerun_resumes(local_index: LocalIndex, tmp_path: Path) -> None:
    store, work = tmp_path / "store.db", tmp_path / "work"
    arguments = run_arguments(local_index, store, "survey-stable", "survey-unstable")
    command = [sys.executable, "-m", "torch_abi_audit", "survey", *arguments]
    command += ["-j", "1", "--work-dir", str(work)]
    local_index.delay = 1.0
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", _WITH_CTRL_C, *command[3:]],
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ,
        )
        # The progress line of a wheel is written after the wheel is stored: interrupt on the
        # first one (polling the store raced with its creation and could miss the whole run).
        assert process.stderr is not None
        seen = []
        while line := process.stderr.readline():
            seen.append(line)
            if line.startswith("[1/"):
                break
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=60)
        err = "".join(seen) + rest
    finally:
        local_index.delay = 0.0
    assert process.returncode == 130, err
    assert "interrupted" in err and "run the same command again" in err
    assert "Traceback" not in err
    (run,) = _rows(store, "SELECT * FROM runs")
    assert run["outcome"] == "interrupted"
    stored = _stored(store)
    assert 1 <= stored < 4
    assert list(work.iterdir()) == []  # nothing left on disk
    rerun = subprocess.run(command, capture_output=True, text=True, env=os.environ, check=False)
    assert rerun.returncode == 0, rerun.stderr
    runs = _rows(store, "SELECT * FROM runs ORDER BY id")
    assert runs[-1]["skipped"] == stored and runs[-1]["audited"] == 4 - stored
    assert runs[-1]["outcome"] == "finished"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["run", "--store", "{store}"], "give at least one PACKAGE"),
        (["run", "x", "--store", "{store}", "--releases", "newest"], "--releases takes"),
        (["run", "x", "--store", "{store}", "--platform", "Windows 11"], "not a platform tag"),
        (["run", "x", "--store", "{store}", "--python-version", "3"], "--python-version"),
        (["run", "x", "--store", "{store}", "--torch-version", "banana"], "not a torch version"),
        (
            ["run", "x", "--store", "{store}", "--address", "tcp://127.0.0.1:1"],
            "--address goes with --engine dask",
        ),
        (["report", "--store", "{missing}", "-o", "{out}"], "no survey store"),
        (["export", "--store", "{garbage}", "-o", "{out}"], "not a survey store"),
    ],
)
def test_usage_errors_exit_2(
    arguments: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not sqlite" * 100)
    paths = {
        "store": tmp_path / "s.db",
        "missing": tmp_path / "none.db",
        "out": tmp_path / "o",
        "garbage": garbage,
    }
    argv = [a.format(**paths) for a in arguments]
    assert survey_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_progress_lines(surveyed: Surveyed) -> None:
    lines = surveyed.stderr.splitlines()
    assert "listed survey-stable: 2 releases, 3 wheels" in lines
    assert any(line.startswith("7 wheels planned, 0 already stored, 7 to do") for line in lines)
    wheel_lines = [line for line in lines if line.startswith("[")]
    assert len(wheel_lines) == 7
    assert wheel_lines[-1].startswith("[7/7] ") and "wheels/min" in wheel_lines[-1]
    assert lines[-1].startswith("done: 5 audited, 2 failed, 0 already stored")


def test_dry_run_and_keep(
    local_index: LocalIndex, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store.db"
    arguments = run_arguments(local_index, store, "survey-unstable")
    assert survey_cli.main([*arguments, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "1 wheels planned, 0 stored, 1 to fetch" in out
    assert "survey_unstable-2.0-cp312-cp312-manylinux_2_28_x86_64.whl" in out
    assert _rows(store, "SELECT COUNT(*) AS n FROM wheels")[0]["n"] == 0
    assert _rows(store, "SELECT COUNT(*) AS n FROM selections")[0]["n"] == 2
    kept = tmp_path / "kept"
    assert survey_cli.main([*arguments, "--keep", str(kept), "-q", "-j", "1"]) == 0
    (wheel,) = kept.glob("*.whl")
    assert wheel.name == "survey_unstable-2.0-cp312-cp312-manylinux_2_28_x86_64.whl"
    assert _wheel(store, "survey_unstable")["status"] == "audited"
