"""The survey store: one SQLite file, one row per wheel, per library and per finding.

Why SQLite rather than DuckDB: the store is written one wheel at a time while a run goes on for
hours and is read by reports meanwhile. SQLite ships with Python (the store needs no extra
package), commits each wheel in its own transaction (a Ctrl-C, a kill or a power cut loses at
most the wheel in flight, and a rerun resumes from the file), and in WAL mode lets ``survey
report`` or any ``sqlite3`` shell read while a run writes; a DuckDB file admits one writing
process and no reader beside it. The report's queries are small group-bys over thousands of
rows, which SQLite answers in milliseconds. For analysis elsewhere, :meth:`SurveyStore.export`
writes every table as CSV (standard library) or Parquet (pyarrow, in the ``survey`` extra).

Tables (see :data:`SCHEMA`): ``wheels`` (key: the wheel's sha256 as the index lists it),
``libraries`` and ``findings`` (per wheel), ``selections`` (which wheel each release x
platform x Python gets, or why none), ``runs`` (one per ``survey run``: counts, bytes, times).
"""

from __future__ import annotations

import csv
import datetime
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch_abi_audit.survey.plan import Selection
from torch_abi_audit.survey.task import RETRIED_STAGES, WheelOutcome

#: Bumped when a table changes shape; a store of another version is refused, not migrated.
STORE_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS wheels (
    key TEXT PRIMARY KEY,           -- sha256 from the index (or unhashed:<filename>)
    package TEXT NOT NULL,
    version TEXT NOT NULL,
    filename TEXT NOT NULL,
    url TEXT,
    upload_time TEXT,               -- ISO 8601 UTC, from the index (PEP 700)
    python TEXT,
    status TEXT NOT NULL,           -- audited | failed
    stage TEXT,                     -- download | checksum | audit | worker | internal
    error TEXT,
    sha256 TEXT,                    -- of the file read
    size INTEGER,
    torch_verdict TEXT,             -- no-torch | torch-stable | torch-unstable | error
    cpython_verdict TEXT,
    min_torch TEXT,
    requires_torch TEXT,            -- Requires-Dist: torch entries, '; '-joined
    tags TEXT,
    libraries INTEGER,
    stable_libraries INTEGER,
    unstable_libraries INTEGER,
    has_library_errors INTEGER,
    load_against TEXT,
    load_status TEXT,               -- loads | fails | unknown (older rows: tied-to-build)
    finding_codes TEXT,             -- ' '-joined, for quick filters; details in findings
    report_json BLOB,               -- the --json document, zlib-compressed
    seconds_download REAL,
    seconds_audit REAL,
    cpu_seconds REAL,
    worker TEXT,
    tool_version TEXT,
    stored_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS libraries (
    key TEXT NOT NULL REFERENCES wheels(key) ON DELETE CASCADE,
    path TEXT NOT NULL,
    kind TEXT, format TEXT, machine TEXT,
    torch_label TEXT, cpython_label TEXT, min_torch TEXT,
    stable_shims INTEGER, unstable_symbols INTEGER, abi3_computed TEXT,
    load_status TEXT, load_message TEXT, error TEXT,
    PRIMARY KEY (key, path)
);
CREATE TABLE IF NOT EXISTS findings (
    key TEXT NOT NULL REFERENCES wheels(key) ON DELETE CASCADE,
    code TEXT NOT NULL, severity TEXT NOT NULL, message TEXT NOT NULL, evidence TEXT
);
CREATE INDEX IF NOT EXISTS findings_key ON findings(key);
CREATE TABLE IF NOT EXISTS selections (
    package TEXT NOT NULL, version TEXT NOT NULL, platform TEXT NOT NULL, python TEXT NOT NULL,
    upload_time TEXT,
    key TEXT,                        -- the wheel chosen, NULL when there is none
    reason TEXT,                     -- why there is none
    checked_at TEXT NOT NULL,
    PRIMARY KEY (package, version, platform, python)
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL, finished_at TEXT,
    command TEXT, engine TEXT, workers INTEGER,
    planned INTEGER, skipped INTEGER, audited INTEGER, failed INTEGER,
    bytes INTEGER, wall_seconds REAL, cpu_seconds REAL,
    outcome TEXT                     -- running | finished | interrupted | crashed
);
"""

#: The exported tables, in order (``report_json`` stays in the store: it is for re-reading).
EXPORTED = ("wheels", "libraries", "findings", "selections", "runs")


class StoreError(Exception):
    """The store cannot be opened or written: not a survey store, another version, I/O."""


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class RunTotals:
    """What one run did, for the ``runs`` table."""

    planned: int
    skipped: int
    audited: int
    failed: int
    bytes: int
    wall_seconds: float
    cpu_seconds: float
    outcome: str


class SurveyStore:
    """An open survey store. Use as a context manager; every write commits on its own."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        if not create and not path.is_file():
            raise StoreError(f"{path}: no survey store there")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.connection = sqlite3.connect(path, timeout=30.0)
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA foreign_keys=ON")
            self.connection.executescript(SCHEMA)
            self._check_version(path)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not a survey store ({exc})") from exc
        except OSError as exc:
            raise StoreError(f"{path}: {exc.strerror or exc}") from exc
        self.path = path

    def _check_version(self, path: Path) -> None:
        row = self.connection.execute("SELECT value FROM meta WHERE key='store_version'").fetchone()
        if row is None:
            with self.connection:
                self.connection.execute(
                    "INSERT INTO meta VALUES ('store_version', ?)", (STORE_VERSION,)
                )
        elif row[0] != STORE_VERSION:
            raise StoreError(
                f"{path}: a version {row[0]} survey store; this release reads version "
                f"{STORE_VERSION} (start a new store)"
            )

    def __enter__(self) -> SurveyStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database (committed work is already on disk)."""
        self.connection.close()

    def done_keys(self) -> set[str]:
        """Keys of wheels a rerun skips: audited, or failed in a way a retry would repeat."""
        placeholders = ",".join("?" for _ in RETRIED_STAGES)
        rows = self.connection.execute(
            f"SELECT key FROM wheels WHERE status='audited' OR stage NOT IN ({placeholders})",
            tuple(sorted(RETRIED_STAGES)),
        )
        return {row[0] for row in rows}

    def record_selections(self, selections: Iterable[Selection]) -> None:
        """Remember which wheel each release x platform gets (replacing what was known)."""
        now = _now()
        with self.connection:
            self.connection.executemany(
                "INSERT OR REPLACE INTO selections VALUES (?,?,?,?,?,?,?,?)",
                [
                    (
                        s.package,
                        s.version,
                        s.platform,
                        s.python,
                        s.upload_time,
                        s.key,
                        s.reason,
                        now,
                    )
                    for s in selections
                ],
            )

    def record(self, outcome: WheelOutcome) -> None:
        """Store one wheel's outcome with its libraries and findings, in one transaction
        (replacing an earlier attempt at the same wheel)."""
        job = outcome.job
        stable = sum(1 for lib in outcome.libraries if lib.torch_label == "STABLE")
        unstable = sum(1 for lib in outcome.libraries if lib.torch_label == "UNSTABLE")
        codes = " ".join(sorted({f.code for f in outcome.findings}))
        row = (
            job.key,
            job.package,
            job.version,
            job.filename,
            job.url,
            job.upload_time,
            job.python,
            outcome.status,
            outcome.stage,
            outcome.error,
            outcome.sha256,
            outcome.size,
            outcome.torch_verdict,
            outcome.cpython_verdict,
            outcome.min_torch,
            outcome.requires_torch,
            outcome.tags,
            len(outcome.libraries),
            stable,
            unstable,
            int(outcome.has_library_errors),
            outcome.load_against,
            outcome.load_status,
            codes,
            outcome.report_json,
            outcome.seconds_download,
            outcome.seconds_audit,
            outcome.cpu_seconds,
            outcome.worker,
            outcome.tool_version,
            _now(),
        )
        with self.connection:
            self.connection.execute("DELETE FROM wheels WHERE key=?", (job.key,))
            self.connection.execute(
                f"INSERT INTO wheels VALUES ({','.join('?' for _ in row)})", row
            )
            self.connection.executemany(
                "INSERT INTO libraries VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        job.key,
                        lib.path,
                        lib.kind,
                        lib.format,
                        lib.machine,
                        lib.torch_label,
                        lib.cpython_label,
                        lib.min_torch,
                        lib.stable_shims,
                        lib.unstable_symbols,
                        lib.abi3_computed,
                        lib.load_status,
                        lib.load_message,
                        lib.error,
                    )
                    for lib in outcome.libraries
                ],
            )
            self.connection.executemany(
                "INSERT INTO findings VALUES (?,?,?,?,?)",
                [(job.key, f.code, f.severity, f.message, f.evidence) for f in outcome.findings],
            )

    def start_run(self, command: str, engine: str, workers: int) -> int:
        """Open a ``runs`` row; returns its id."""
        with self.connection:
            cursor = self.connection.execute(
                "INSERT INTO runs (started_at, command, engine, workers, outcome) "
                "VALUES (?,?,?,?, 'running')",
                (_now(), command, engine, workers),
            )
        return int(cursor.lastrowid or 0)

    def finish_run(self, run_id: int, totals: RunTotals) -> None:
        """Close a ``runs`` row with what the run did."""
        with self.connection:
            self.connection.execute(
                "UPDATE runs SET finished_at=?, planned=?, skipped=?, audited=?, failed=?, "
                "bytes=?, wall_seconds=?, cpu_seconds=?, outcome=? WHERE id=?",
                (
                    _now(),
                    totals.planned,
                    totals.skipped,
                    totals.audited,
                    totals.failed,
                    totals.bytes,
                    totals.wall_seconds,
                    totals.cpu_seconds,
                    totals.outcome,
                    run_id,
                ),
            )

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Rows of a read-only query, addressable by column name."""
        cursor = self.connection.cursor()
        cursor.row_factory = sqlite3.Row
        return list(cursor.execute(sql, parameters))

    def columns(self, table: str) -> list[str]:
        """The exported columns of a table (all but the compressed ``report_json``)."""
        info = self.connection.execute(f"PRAGMA table_info({table})")
        return [row[1] for row in info if row[1] != "report_json"]

    def export(self, directory: Path, fmt: str) -> list[Path]:
        """Write every table to ``directory`` as ``TABLE.csv`` or ``TABLE.parquet``.

        Raises :class:`StoreError` when Parquet is asked for and pyarrow is missing.
        """
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for table in EXPORTED:
            columns = self.columns(table)
            rows = self.connection.execute(f"SELECT {', '.join(columns)} FROM {table}")
            target = directory / f"{table}.{fmt}"
            if fmt == "csv":
                _write_csv(target, columns, rows)
            else:
                _write_parquet(target, columns, rows)
            written.append(target)
        return written


def _write_csv(target: Path, columns: list[str], rows: Iterable[tuple[Any, ...]]) -> None:
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)


def _write_parquet(target: Path, columns: list[str], rows: Iterable[tuple[Any, ...]]) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise StoreError(
            "Parquet export needs pyarrow: pip install 'torch-abi-audit[survey]'"
        ) from exc
    data = list(rows)
    table = pa.table({name: [row[i] for row in data] for i, name in enumerate(columns)})
    pq.write_table(table, target)


def evidence_of(text: str | None) -> dict[str, Any]:
    """A finding's evidence, parsed back from the store."""
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}
