"""``survey report``: the markdown read with a real Markdown parser, the HTML page in a real
headless browser (Debian's Chromium, driven through chromedriver with Selenium)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from survey.conftest import Surveyed, section_cells
from torch_abi_audit.survey import cli as survey_cli
from torch_abi_audit.survey.store import SurveyStore
from torch_abi_audit.survey.summary import summarize

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# The flags that work on a closed network (no background connections, no sandbox as root).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1600",
)
PLOT_TITLES = (
    "Stable-ABI wheels per month",
    "Stable-ABI wheels per package",
    "Oldest torch the stable wheels load on",
    "Metadata findings by kind",
    "Predicted loads on torch",
)


@pytest.fixture(scope="module")
def report_dir(surveyed: Surveyed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("report")
    code = survey_cli.main(["report", "--store", str(surveyed.store), "-o", str(directory)])
    assert code == 0
    return directory


def test_summary_headline(surveyed: Surveyed) -> None:
    with SurveyStore(surveyed.store, create=False) as store:
        summary = summarize(store)
    headline = summary.headline
    assert headline.packages_with_stable == ("survey-stable",)
    assert headline.under_declared >= 2 and headline.under_declared_packages == ("survey-stable",)
    assert (headline.unpinned, headline.unpinned_packages) == (1, ("survey-unstable",))
    assert headline.failed == 2 and headline.audited >= 5
    names = [p.name for p in summary.packages]
    assert "survey-corrupt" in names and "survey-nowhere" not in names
    stable = next(p for p in summary.packages if p.name == "survey-stable")
    assert stable.newest_verdicts["manylinux_2_39_x86_64"] == "torch-stable"
    # The damaged wheel was audited but its library could not be read: counted, and listed.
    damaged = next(p for p in summary.packages if p.name == "survey-damaged")
    assert (damaged.wheels, damaged.unreadable, damaged.failed) == (1, 1, 0)
    assert headline.unreadable_wheels == 1
    (row,) = [f for f in summary.failures if f[0].startswith("survey_damaged")]
    assert row[1] == "library" and row[2].startswith("survey_damaged/libstable_plugin.so: ")
    assert "CRC" in row[2]


def test_markdown_report(report_dir: Path) -> None:
    text = (report_dir / "report.md").read_text(encoding="utf-8")
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings[0] == "Torch extension packages on the index"
    assert "Packages" in headings and "Wheels that could not be audited" in headings
    images = [
        child.attrGet("src")
        for token in tokens
        if token.type == "inline"
        for child in token.children or []
        if child.type == "image"
    ]
    assert len(images) == 5
    for source in images:
        assert (report_dir / str(source)).is_file()
    assert sum(1 for t in tokens if t.type == "table_open") >= 7
    cells = [t.content for t in tokens if t.type == "inline"]
    assert "survey-unstable" in cells and "torch-unpinned-unstable" in cells
    # The codes restating a verdict are not metadata findings (the verdict plots count them).
    findings = {row[0] for row in section_cells(text, "Metadata findings by kind")[1:]}
    assert "torch-unpinned-unstable" in findings and "torch-floor-too-low" in findings
    assert not findings & {"torch-unstable", "not-abi3-compliant", "abi3-tagged-violations"}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        if os.environ.get("CI"):
            pytest.fail("Chromium and chromedriver must be installed in CI (see .ci/run)")
        pytest.skip("needs Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = Path(os.environ.get("TMPDIR", "/tmp")) / f"survey-chromium-{os.getpid()}"
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_html_report_in_headless_chromium(report_dir: Path, browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    browser.get((report_dir / "index.html").as_uri())
    assert browser.title == "Torch extension packages on the index"
    headline = browser.find_element(By.ID, "headline-packages-stable").text
    assert headline == "1: survey-stable"
    assert browser.find_element(By.ID, "headline-unpinned").text.startswith("1 (of 1 packages")
    # Five figures, each an inline SVG drawn at a real size with its title as text.
    figures = browser.find_elements(By.CSS_SELECTOR, "figure svg")
    assert len(figures) == 5
    for svg in figures:
        assert svg.size["width"] > 200 and svg.size["height"] > 100
    drawn = " ".join(
        e.get_attribute("textContent") or "" for e in browser.find_elements(By.TAG_NAME, "svg")
    )
    for title in PLOT_TITLES:
        assert title in drawn
    assert "survey-stable" in drawn and "torch-floor-too-low" in drawn
    # The numbers behind the plots and the package table, as a reader sees them.
    rows = browser.find_elements(By.CSS_SELECTOR, "#packages tbody tr")
    by_name = {row.find_element(By.TAG_NAME, "td").text: row.text for row in rows}
    assert {"survey-stable", "survey-unstable", "survey-corrupt"} <= set(by_name)
    failures = browser.find_element(By.ID, "failures").text
    assert "survey_corrupt" in failures and "archive" in failures
    # A page that loads nothing from anywhere: no requests beyond itself, no console errors.
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert resources == []
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]  # type: ignore[attr-defined]
    assert errors == []


def test_hostile_text_is_escaped_in_both_formats() -> None:
    from torch_abi_audit.survey.report import render_html, render_markdown
    from torch_abi_audit.survey.summary import Headline, Summary

    headline = Headline(1, 1, 1, 0, 1, 0, 10, 0, 0, 0, (), (), 0, (), 0, (), None, 1.0, 1.0)
    reason = "pip said <script>alert(1)</script> | a \x1b[31mred\x1b[0m line"
    summary = Summary(headline, (), (), (), (), (), (("evil.whl", "download", reason),))
    markdown = render_markdown(summary, "t", {})
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    cells = [t.content for t in tokens if t.type == "inline"]
    row = cells[cells.index("evil.whl") : cells.index("evil.whl") + 3]
    assert len(row) == 3 and "\x1b" not in row[2] and "\\x1b" in row[2]
    assert "html_block" not in {t.type for t in tokens}
    page = render_html(summary, "t", {})
    assert "<script>" not in page and "&lt;script&gt;" in page and "\x1b" not in page
