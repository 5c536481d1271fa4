"""Predicted loads on the newest release in a survey: every wheel judged against that
release's build of its own platform (from the release-exports data), and the report's split
into loads / fails / unknown / pinned elsewhere, with the reasons, per build.

The wheels (:func:`helpers.survey_index.add_load_projects`) are served by the loopback index
and surveyed once on the two test platforms (manylinux x86_64 and Windows).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import zlib
from pathlib import Path

import pytest
from packaging.version import Version

from helpers.local_index import LocalIndex
from helpers.survey_index import LOAD_PACKAGES, OLD_CUDART, UNRECORDED, run_arguments
from survey.conftest import section_cells
from torch_abi_audit.rules.registry import FINDING_CODES, Gate
from torch_abi_audit.rules.release_exports import load_release_exports
from torch_abi_audit.rules.torch_table import load_table
from torch_abi_audit.survey import cli as survey_cli
from torch_abi_audit.survey import loads
from torch_abi_audit.survey.loads import (
    default_release,
    judged_builds,
    load_category,
    load_reasons,
    stored_loads,
)
from torch_abi_audit.survey.report import headline_items
from torch_abi_audit.survey.store import SurveyStore
from torch_abi_audit.survey.summary import metadata_codes, summarize

NEEDS_LIBRARIES = "needs torch or CUDA libraries the build does not install"
UNRECORDED_REASON = "imports symbols the release data does not record"
LOAD_REASONS = {
    "failed": "needs a library of its own package that does not load",
    "unknown-dependency": loads.UNKNOWN_DEPENDENCY,
    "no-build": loads.NO_BUILD,
    "other": loads.OTHER,
}


@pytest.fixture(scope="module")
def load_store(local_index: LocalIndex, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("loads") / "store.db"
    arguments = run_arguments(local_index, store, *LOAD_PACKAGES)
    assert survey_cli.main([*arguments, "-j", "2", "-q"]) == 0
    return store


def _builds() -> tuple[str, str]:
    """The labels of the newest release's Linux and Windows builds, as the data names them."""
    data = load_release_exports()
    release = Version(default_release())
    linux, windows = data.build("linux_x86_64", release), data.build("win_amd64", release)
    assert linux is not None and windows is not None
    return linux.label, windows.label


def _wheels(store: Path) -> dict[str, sqlite3.Row]:
    connection = sqlite3.connect(store)
    connection.row_factory = sqlite3.Row
    try:
        rows = list(connection.execute("SELECT * FROM wheels"))
    finally:
        connection.close()
    return {
        row["filename"].split("-")[0] + "/" + row["filename"].split("-")[-1]: row for row in rows
    }


def test_the_default_release_has_a_build_for_every_platform() -> None:
    release = default_release()
    data = load_release_exports()
    assert release in load_table().releases
    assert all(data.build(p, Version(release)) for p in {b.platform for b in data.builds})
    # The table and the data are generated together: today they agree on the newest release.
    assert Version(release) == max(data.releases)


def test_each_wheel_is_judged_against_its_own_platforms_build(load_store: Path) -> None:
    linux, windows = _builds()
    wheels = _wheels(load_store)
    assert set(wheels) == {
        "survey_cuda/manylinux_2_28_x86_64.whl",
        "survey_cuda/win_amd64.whl",
        "survey_probe/win_amd64.whl",
        "survey_pinned/manylinux_2_28_x86_64.whl",
        "survey_pinned/win_amd64.whl",
    }
    assert {row["load_against"] for row in wheels.values()} == {f"torch {default_release()}"}
    judged = {name: judged_builds(stored_loads(row["report_json"])) for name, row in wheels.items()}
    for name, builds in judged.items():
        assert builds == ((linux,) if "manylinux" in name else (windows,)), name
    statuses = {name: (row["torch_verdict"], row["load_status"]) for name, row in wheels.items()}
    assert statuses["survey_cuda/manylinux_2_28_x86_64.whl"] == ("torch-stable", "fails")
    assert statuses["survey_cuda/win_amd64.whl"] == ("torch-stable", "loads")
    assert statuses["survey_probe/win_amd64.whl"] == ("torch-unstable", "unknown")
    assert statuses["survey_pinned/win_amd64.whl"] == ("torch-stable", "loads")
    with SurveyStore(load_store, create=False) as store:
        messages = {
            row["path"]: row["load_message"]
            for row in store.query("SELECT path, load_message FROM libraries")
        }
    assert OLD_CUDART in messages["survey_cuda/libcudaops.so"]
    assert UNRECORDED in messages["survey_probe/_C.pyd"]


def test_the_report_splits_loads_per_build(load_store: Path) -> None:
    linux, windows = _builds()
    with SurveyStore(load_store, create=False) as store:
        summary = summarize(store)
    assert summary.load_builds == tuple(sorted((linux, windows)))
    rows = {
        row.category: (row.wheels, dict(zip(summary.load_builds, row.per_build, strict=True)))
        for row in summary.loads
    }
    assert rows == {
        "stable, loads": (1, {linux: 0, windows: 1}),
        "stable, fails": (1, {linux: 1, windows: 0}),
        "stable, pinned elsewhere": (1, {linux: 0, windows: 1}),
        "unstable, unknown": (1, {linux: 0, windows: 1}),
        "unstable, pinned elsewhere": (1, {linux: 1, windows: 0}),
    }
    assert summary.load_reasons == (
        ("stable, fails", NEEDS_LIBRARIES, 1),
        ("unstable, unknown", UNRECORDED_REASON, 1),
    )
    items = {key: value for key, _, value in headline_items(summary)}
    assert items["newest-torch"] == (
        "stable: 1 load, 1 fail, 1 pinned elsewhere; unstable: 1 cannot be told, 1 pinned elsewhere"
    )


def test_a_store_predicted_on_several_releases_says_so(load_store: Path, tmp_path: Path) -> None:
    store_path = tmp_path / "mixed.db"
    shutil.copy(load_store, store_path)
    connection = sqlite3.connect(store_path)
    with connection:  # as if an earlier run had predicted this wheel on 2.9.1
        connection.execute(
            "UPDATE wheels SET load_against='torch 2.9.1' WHERE filename LIKE 'survey_pinned%win%'"
        )
    connection.close()
    with SurveyStore(store_path, create=False) as store:
        summary = summarize(store)
    assert summary.headline.load_against == f"torch 2.9.1, torch {default_release()}"
    # Each wheel is split by its own release: pinned to 2.9.1, it is not pinned elsewhere.
    rows = {row.category: row.wheels for row in summary.loads}
    assert "stable, pinned elsewhere" not in rows and rows["stable, loads"] == 2


def test_metadata_findings_come_from_the_registry(load_store: Path) -> None:
    with SurveyStore(load_store, create=False) as store:
        summary = summarize(store)
        stored = {row["code"] for row in store.query("SELECT DISTINCT code FROM findings")}
    shown = {code for code, _, _ in summary.findings}
    # The codes that restate a verdict are stored with the wheel, never counted as findings.
    assert "torch-unstable" in stored and "torch-unstable" not in shown
    assert {"torch-over-pinned", "torch-unpinned-unstable"} <= shown
    assert shown == stored & metadata_codes()
    for code, entry in FINDING_CODES.items():
        expected = not entry.restates_verdict and (Gate.METADATA in entry.gates or not entry.gates)
        assert (code in metadata_codes()) is expected, code
    assert "load-failure" not in metadata_codes() and "above-target-version" not in (
        metadata_codes()
    )


def test_the_markdown_shows_builds_and_reasons(load_store: Path, tmp_path: Path) -> None:
    linux, windows = _builds()
    assert survey_cli.main(["report", "--store", str(load_store), "-o", str(tmp_path)]) == 0
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    rows = section_cells(markdown, "Predicted loads on the newest torch")
    assert rows[0] == ["predicted load", "wheels using torch", *sorted((linux, windows))]
    assert ["stable, fails", "1", *(("1", "0") if linux < windows else ("0", "1"))] in rows
    assert ["predicted load", "why", "wheels"] in rows
    assert ["stable, fails", NEEDS_LIBRARIES, "1"] in rows
    assert ["unstable, unknown", UNRECORDED_REASON, "1"] in rows
    findings = section_cells(markdown, "Metadata findings by kind")
    assert findings[0] == ["finding", "severity", "wheels"]
    with SurveyStore(load_store, create=False) as store:
        shown = {code for code, _, _ in summarize(store).findings}
    assert {row[0] for row in findings[1:]} == shown


@pytest.mark.parametrize(
    ("verdict", "status", "requirements", "expected"),
    [
        ("torch-stable", "loads", "torch>=2.9", "stable, loads"),
        ("torch-stable", "fails", None, "stable, fails"),
        ("torch-stable", "unknown", "torch>=2.9", "stable, unknown"),
        ("torch-stable", "loads", "torch==2.9.1", "stable, pinned elsewhere"),
        ("torch-stable", None, "torch>=2.9", "stable, no prediction"),
        # Judged against the release's build (schema 1.7 on): the prediction, unless pinned.
        ("torch-unstable", "fails", "torch", "unstable, fails"),
        ("torch-unstable", "loads", None, "unstable, loads"),
        ("torch-unstable", "unknown", "torch>=2.4", "unstable, unknown"),
        ("torch-unstable", "fails", "torch==2.9.1", "unstable, pinned elsewhere"),
        ("torch-unstable", "fails", "torch<2.15", "unstable, pinned elsewhere"),
        # An invalid requirement is dropped by installers: no torch requirement in effect.
        ("torch-unstable", "fails", "torch >=2.11,,", "unstable, fails"),
        # Rows stored before release builds were judged: split by their metadata alone.
        ("torch-unstable", "tied-to-build", "torch==2.9.1", "unstable, pinned elsewhere"),
        ("torch-unstable", "tied-to-build", "torch>=2.4; torch<2.16", "unstable, admits it"),
        ("torch-unstable", "tied-to-build", "torch", "unstable, admits it"),
        ("torch-unstable", "tied-to-build", None, "unstable, no torch requirement"),
        ("torch-unstable", "tied-to-build", "not a requirement", "unstable, no torch requirement"),
    ],
)
def test_load_categories_on_the_newest_release(
    verdict: str, status: str | None, requirements: str | None, expected: str
) -> None:
    assert load_category(verdict, status, requirements, "2.15.0") == expected


def _document(*loads: dict[str, object]) -> bytes:
    """A compressed ``--json`` document whose extension modules have ``loads``."""
    libraries = [{"path": f"m{i}.so", "load": load} for i, load in enumerate(loads)]
    return zlib.compress(json.dumps({"extensions": libraries, "bundled_libs": []}).encode())


BUILD = "torch 2.15.0+cu132 (linux_x86_64)"


@pytest.mark.parametrize(
    ("load", "expected"),
    [
        ({"missing_libraries": ["libcudart.so.12: cannot open"]}, (NEEDS_LIBRARIES,)),
        (
            {"newer_shims": ["aoti_new"], "undefined_symbols": ["aoti_new"]},
            ("imports shims newer than the release",),
        ),
        (
            {"removed_shims": ["aoti_old"], "undefined_symbols": ["aoti_old", "_ZN3c104xE"]},
            (
                "imports shims the release removed",
                "imports libtorch symbols the build does not export",
            ),
        ),
        ({"failed_dependencies": ["pkg/libhelper.so"]}, (LOAD_REASONS["failed"],)),
        (
            {"message": "cannot tell …: needs libx.so (bundled), which may not load: …"},
            (LOAD_REASONS["unknown-dependency"],),
        ),
        ({"build": None, "message": "cannot tell"}, (LOAD_REASONS["no-build"],)),
        ({"message": "cannot tell"}, (LOAD_REASONS["other"],)),
    ],
)
def test_why_a_wheel_fails_or_cannot_be_told(
    load: dict[str, object], expected: tuple[str, ...]
) -> None:
    status = "unknown" if "message" in load else "fails"
    judged = {"status": status, "build": BUILD, **load}
    loading: dict[str, object] = {"status": "loads", "build": BUILD, "undefined_symbols": ["y"]}
    document = _document(judged, loading)
    assert load_reasons(stored_loads(document), status) == expected
    assert load_reasons(stored_loads(document), "unknown" if status == "fails" else "fails") == ()
    assert load_reasons(stored_loads(None), status) == ()
