"""--format markdown, read back with a real Markdown parser (markdown-it-py, CommonMark with
GitHub's tables): the structure a reader sees, not the characters we wrote."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from helpers.demo_wheels import DemoWheels
from helpers.reports import unstable_package
from torch_abi_audit.cli import main
from torch_abi_audit.renderers.base import RenderOptions
from torch_abi_audit.renderers.markdown import GITHUB_COMMENT_LIMIT, LEVELS, render, render_at
from torch_abi_audit.report import AuditResult, GateResult, GateStatus

PARSER = MarkdownIt("commonmark").enable("table")


@dataclass
class Table:
    """A parsed table: header cells and row cells, as inline source."""

    header: list[str]
    rows: list[list[str]]


def tables(tokens: list[Token]) -> list[Table]:
    found: list[Table] = []
    current: Table | None = None
    row: list[str] = []
    in_head = False
    for token in tokens:
        if token.type == "table_open":
            current = Table([], [])
        elif token.type == "thead_open":
            in_head = True
        elif token.type == "thead_close":
            in_head = False
        elif token.type == "tr_open":
            row = []
        elif token.type == "inline" and current is not None:
            row.append(token.content)
        elif token.type == "tr_close" and current is not None:
            if in_head:
                current.header = row
            else:
                current.rows.append(row)
        elif token.type == "table_close" and current is not None:
            found.append(current)
            current = None
    return found


def html_blocks(tokens: list[Token]) -> list[str]:
    return [t.content for t in tokens if t.type == "html_block"]


def markdown_of(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main([*argv, "--format", "markdown"])
    return code, capsys.readouterr().out


def test_demo_structure(
    capsys: pytest.CaptureFixture[str], demo: DemoWheels, in_demo: Path
) -> None:
    code, text = markdown_of(capsys, demo.port.name, demo.stable.name, "--check", "all")
    assert code == 1
    tokens = PARSER.parse(text)
    assert tokens[0].type == "heading_open" and tokens[1].content.startswith("torch-abi-audit ")
    gates, summary, *details = tables(tokens)
    assert gates.header == ["Gate", "Status", "Package", "Library", "Reason"]
    assert {(row[0], row[1], row[2]) for row in gates.rows} == {
        ("torch", "**failed**", "`portpkg`"),
        ("abi3", "**failed**", "`portpkg`"),
        ("metadata", "**failed**", "`portpkg`"),
    }
    assert summary.header == [
        "Package",
        "Version",
        "Torch ABI",
        "Min torch",
        "CPython",
        "Loads",
        "Findings",
    ]
    assert summary.rows == [
        ["`portpkg`", "1.0", "**UNSTABLE**", "-", "no", "-", "1 error, 1 info"],
        ["`stablepkg`", "2.0", "STABLE", "2.11.0", "abi3", "-", "1 info"],
    ]
    # One folded block per package, each closed.
    blocks = html_blocks(tokens)
    assert sum(block.startswith("<details>") for block in blocks) == 2
    assert sum(block.strip() == "</details>" for block in blocks) == 2
    assert "<summary><b>portpkg</b> 1.0: UNSTABLE, 4 libraries" in blocks[0]
    libraries = next(t for t in details if t.header[0] == "Library")
    assert [row[0] for row in libraries.rows] == [
        "`portpkg/_C.abi3.so`",
        "`portpkg/lib/libcore.so`",
        "`portpkg/lib/libcore_cuda.so`",
        "`portpkg/lib/libops.so`",
    ]
    # The same libtorch symbols in two libraries: listed once, "in 2 libraries".
    symbols = next(t for t in details if t.header[0] == "Symbol" and "c10::" in str(t.rows))
    assert symbols.rows == [
        [
            "`c10::detail::torchCheckFail(char const*, char const*, unsigned int, char const*)`",
            "in 2 libraries",
        ],
        ["`at::Tensor::dim() const`", "in 2 libraries"],
    ]
    assert "**Unstable symbols**: 2 distinct, 4 imports" in text
    assert "Shortened" not in text
    assert len(text) < GITHUB_COMMENT_LIMIT


HOSTILE = "evil|pkg`</details><script>x</script>\n| injected | row |\n@octocat"


def test_hostile_names_add_no_structure(tmp_path: Path) -> None:
    package = unstable_package(
        HOSTILE, tmp_path / "evil", {"lib/a|b`c.so": ["c10::x|y</summary>", "`tick`"]}
    )
    gate = GateResult("torch", HOSTILE, GateStatus.FAILED, HOSTILE, library="lib/a|b`c.so")
    result = AuditResult((package,), checks=("torch",), gate_results=(gate,))
    text = render(result, RenderOptions())
    tokens = PARSER.parse(text)
    found = tables(tokens)
    # Every table row has exactly its header's number of cells: nothing split or added.
    assert all(len(row) == len(t.header) for t in found for row in t.rows)
    gates, summary, libraries, symbols = found
    assert libraries.rows[0][0] == "``lib/a|b`c.so``"  # one cell, the pipe kept
    assert len(summary.rows) == 1 and len(gates.rows) == 1 and len(symbols.rows) == 2
    # The <details> block is closed once, by us; no tag from the input survives as HTML.
    blocks = html_blocks(tokens)
    assert sum("</details>" in block for block in blocks) == 1
    assert "<script>" not in PARSER.render(text)
    # No raw line break from a name, and no mention of a GitHub user outside code (GitHub
    # links none inside code).
    assert "\\n| injected" in text
    rendered = PARSER.render(text)
    assert "@octocat" not in re.sub("<code>.*?</code>", "", rendered)
    assert "evil|pkg`&lt;/details&gt;&lt;script&gt;" in rendered


def test_a_long_report_is_shortened_under_the_limit_and_says_what_it_left_out(
    tmp_path: Path,
) -> None:
    symbol = "c10::impl::OperatorEntry::reportSignatureError(c10::FunctionSchema const&) const"
    packages = tuple(
        unstable_package(
            f"package{i:03}",
            tmp_path / f"p{i}",
            {f"lib/lib{j}.so": [f"{symbol} #{k}" for k in range(40)] for j in range(6)},
        )
        for i in range(60)
    )
    result = AuditResult(packages)
    full = render_at(result, RenderOptions(), LEVELS[0])
    assert len(full) > GITHUB_COMMENT_LIMIT  # the premise
    text = render(result, RenderOptions())
    assert len(text) <= GITHUB_COMMENT_LIMIT
    assert "Shortened to fit GitHub's 65,536-character limit for comments: left out" in text
    assert "`--format json` has everything" in text
    tokens = PARSER.parse(text)
    summary = next(t for t in tables(tokens) if t.header[0] == "Package")
    assert len(summary.rows) == 60  # every package is still in the summary
    blocks = html_blocks(tokens)
    assert sum(b.startswith("<details>") for b in blocks) == sum(
        b.strip() == "</details>" for b in blocks
    )


def test_thousands_of_packages_keep_the_rows_that_fit(tmp_path: Path) -> None:
    packages = tuple(
        unstable_package(f"a-rather-long-package-name-{i:05}", tmp_path / str(i), {"x.so": ["s"]})
        for i in range(2000)
    )
    text = render(AuditResult(packages), RenderOptions())
    assert len(text) <= GITHUB_COMMENT_LIMIT
    summary = next(t for t in tables(PARSER.parse(text)) if t.header[0] == "Package")
    assert 100 < len(summary.rows) < 2000
    assert f"left out {2000 - len(summary.rows)} packages from the summary table" in text.replace(
        "the details of 2000 packages, ", ""
    )
