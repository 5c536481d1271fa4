"""The findings registry: every code declared once, and what is generated from it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from helpers.scripts import load_script
from torch_abi_audit.checks import CheckPolicy, gates, parse_policies
from torch_abi_audit.renderers.json_report import load_schema
from torch_abi_audit.rules.findings import name_list
from torch_abi_audit.rules.registry import (
    FINDING_CODES,
    FindingCode,
    Gate,
    UnknownFindingCode,
    _declare,
    finding,
    gate_codes,
)

DOCS = load_script("generate_findings_docs")


def test_docs_table_and_schema_enum_match_the_registry() -> None:
    # Fails when a code is added, renamed or re-gated without re-running the script.
    assert DOCS.drift() == []
    assert DOCS.main(["--check"]) == 0


def _page_rows() -> list[list[str]]:
    """The findings table of the verdicts page, read by a Markdown parser: the cell texts per
    row (a code cell's anchor left out)."""
    text = DOCS.PAGE.read_text(encoding="utf-8")
    section = text[text.index(DOCS.BEGIN) : text.index(DOCS.END)]
    tokens = MarkdownIt("commonmark").enable("table").parse(section)
    rows: list[list[str]] = []
    for token in tokens:
        if token.type == "tr_open":
            rows.append([])
        elif token.type == "inline" and rows:
            rows[-1].append(re.sub(r'^<span id="finding-[a-z0-9-]+"></span>', "", token.content))
    return rows


def test_docs_findings_table_is_a_table_of_every_code() -> None:
    header, *rows = _page_rows()
    assert header == ["code", "severity", "fails", "when"]
    assert [row[0].strip("`") for row in rows] == list(FINDING_CODES)
    for row in rows:
        entry = FINDING_CODES[row[0].strip("`")]
        assert row[1] == entry.severity
        assert row[2] == (", ".join(f"`{g}`" for g in entry.gates) or "none")
        assert row[3] == entry.description


def test_schema_enum_is_the_registry() -> None:
    code = load_schema()["$defs"]["finding"]["properties"]["code"]
    assert code["enum"] == list(FINDING_CODES)


def test_drift_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "verdicts.md"
    page.write_text(
        DOCS.PAGE.read_text(encoding="utf-8").replace(
            '| <span id="finding-torch-over-pinned"></span>`torch-over-pinned` |', "| x |"
        )
    )
    schema = tmp_path / "report.schema.json"
    document = json.loads(DOCS.SCHEMA.read_text(encoding="utf-8"))
    document["$defs"]["finding"]["properties"]["code"]["enum"].pop()
    schema.write_text(json.dumps(document, indent=2) + "\n")
    monkeypatch.setattr(DOCS, "PAGE", page)
    monkeypatch.setattr(DOCS, "SCHEMA", schema)
    assert len(DOCS.drift()) == 2
    assert DOCS.main(["--check"]) == 1
    assert DOCS.main([]) == 0  # rewrites both
    assert DOCS.drift() == []


def test_codes_are_declared_once_and_well_formed() -> None:
    entry = FINDING_CODES["torch-floor-missing"]
    with pytest.raises(ValueError, match="declared twice"):
        _declare(entry, entry)
    with pytest.raises(ValueError, match="lower-case-with-hyphens"):
        _declare(FindingCode("Bad_Code", entry.severity, (), "x"))
    for code, declared in FINDING_CODES.items():
        assert declared.code == code and declared.description
        assert "\n" not in declared.description  # one line: it is a table cell
        # A code that restates a row label exists for a gate.
        assert declared.gates or not declared.restates_verdict


def test_findings_only_of_declared_codes() -> None:
    made = finding("bundled-libpython", "ships libpython3.11.dylib", libraries=["a/b.dylib"])
    assert (made.severity, made.libraries, made.evidence) == ("error", ("a/b.dylib",), {})
    assert finding("bundled-libpython", "m", severity=FINDING_CODES["torch-over-pinned"].severity)
    with pytest.raises(UnknownFindingCode, match="'no-such-code' is not a finding code"):
        finding("no-such-code", "message")


def test_gates_come_from_the_registry() -> None:
    assert gate_codes(Gate.LOAD) == {"load-failure", "needs-newer-torch"}
    assert gate_codes(Gate.TORCH) == {"torch-unstable", "above-target-version"}
    assert {"abi3-newer-than-tag", "abi3t-without-export-hook"} <= gate_codes(Gate.ABI3)
    assert "abi3-newer-than-tag" in gate_codes(Gate.METADATA)
    assert "torch-over-pinned" not in {c for g in Gate for c in gate_codes(g)}
    assert gates([CheckPolicy.BOTH]) == (Gate.TORCH, Gate.ABI3)
    assert gates([CheckPolicy.ALL]) == tuple(Gate)
    assert gates(parse_policies("load, torch")) == (Gate.TORCH, Gate.LOAD)
    with pytest.raises(ValueError, match="invalid choice: 'tourch'"):
        parse_policies("torch,tourch")


@pytest.mark.parametrize(
    ("items", "shown", "text"),
    [
        ([], 3, ""),
        (["a"], 3, "a"),
        (["a", "b", "c"], 3, "a, b, c"),
        (["a", "b", "c", "d", "e"], 3, "a, b, c and 2 more"),
        (["a", "b", "c"], 2, "a, b and 1 more"),
    ],
)
def test_name_list(items: list[str], shown: int, text: str) -> None:
    assert name_list(items, shown) == text
