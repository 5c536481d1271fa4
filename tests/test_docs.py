"""The documentation site's sources: every page is reachable, the generated reference covers
the whole command line and the whole schema, every example block names a real run, and the
README stays the short front door that links to the site.

The site itself is built in strict mode by ``.ci/run`` (``zensical build --strict``: broken
links and anchors fail it); the freshness of what is generated is ``tests/test_golden.py``'s.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from helpers.scripts import load_script
from torch_abi_audit.renderers.json_report import SCHEMA_VERSION, load_schema

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
GENERATED = DOCS / "generated"


def _nav_pages(entries: list[Any]) -> list[str]:
    pages: list[str] = []
    for entry in entries:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_page_is_in_the_navigation_and_every_entry_exists() -> None:
    config = tomllib.loads((ROOT / "zensical.toml").read_text(encoding="utf-8"))["project"]
    navigation = _nav_pages(config["nav"])
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if GENERATED not in p.parents}
    assert sorted(navigation) == sorted(pages)
    assert len(navigation) == len(set(navigation))


def test_the_cli_reference_covers_every_option_of_every_command() -> None:
    reference = load_script("docs_reference")
    page = (GENERATED / "cli.md").read_text(encoding="utf-8")
    options = reference.option_strings()
    assert "--check" in options and "--download" in options
    for option in options:
        assert re.search(rf"`[^`]*(?<![\w-]){re.escape(option)}(?![\w-])[^`]*`", page), option
    from torch_abi_audit.cli import SUBCOMMANDS

    for name in SUBCOMMANDS:
        assert f"`torch-abi-audit {name}" in page


def test_the_cli_reference_links_options_it_mentions() -> None:
    page = (GENERATED / "cli.md").read_text(encoding="utf-8")
    # "same as --format json": the option in a help text links to its own row.
    assert "[`--format`](#opt-format)" in page
    anchors = set(re.findall(r'<span id="([^"]+)"></span>', page))
    anchors |= set(re.findall(r"\{#([^}]+)\}$", page, re.M))  # headings
    for target in re.findall(r"\]\(#([^)]+)\)", page):
        assert target in anchors


def test_the_json_reference_covers_every_definition_and_field() -> None:
    page = (GENERATED / "json-fields.md").read_text(encoding="utf-8")
    schema = load_schema()
    assert f"`schema_version` **{SCHEMA_VERSION}**" in page
    for name, definition in schema["$defs"].items():
        assert f"### `{name}` {{#{name.lower()}}}" in page
        for field in definition.get("properties", {}):
            assert f"| `{field}` |" in page, (name, field)


_GOLDEN = re.compile(r"<!-- golden: (?P<name>[a-z0-9-]+) -->")


def test_every_example_block_names_a_run_and_every_run_is_shown() -> None:
    examples = load_script("generate_golden_outputs").EXAMPLES
    shown = set()
    for page in [ROOT / "README.md", *DOCS.rglob("*.md")]:
        names = _GOLDEN.findall(page.read_text(encoding="utf-8"))
        assert set(names) <= set(examples), page
        shown |= set(names)
    assert shown == set(examples)


def test_an_unknown_example_name_is_refused() -> None:
    script = load_script("generate_golden_outputs")
    page = "<!-- golden: nope -->\n```console\n```\n<!-- end golden -->\n"
    with pytest.raises(script.UnknownExample, match="nope"):
        script.with_outputs({}, page)


def test_an_indented_block_is_filled_indented() -> None:
    script = load_script("generate_golden_outputs")
    fence = "    ```json\n    ```\n"
    page = f"??? example\n\n    <!-- golden: json -->\n{fence}    <!-- end golden -->\n"
    filled = script.with_outputs({"json": '{\n  "a": 1\n}\n'}, page)
    assert filled == (
        "??? example\n\n    <!-- golden: json -->\n    ```json\n"
        '    {\n      "a": 1\n    }\n    ```\n    <!-- end golden -->\n'
    )


def test_the_readme_is_the_short_front_door() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) < 12_000
    # Its two newcomer commands (CI runs them).
    assert "python -m pip install . && torch-abi-audit --env" in readme
    assert "python -m pip install -e '.[test]' && python -m pytest" in readme
    config = tomllib.loads((ROOT / "zensical.toml").read_text(encoding="utf-8"))["project"]
    assert config["site_url"] in readme
    # How to build the site locally, as the development page says.
    assert "zensical serve" in readme
    assert "zensical serve" in (DOCS / "development.md").read_text(encoding="utf-8")


def test_ci_builds_the_site_in_strict_mode() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"pip install( --quiet)? -e '\.\[docs\]'", ci)
    assert "zensical build --strict" in ci


def _explicit_anchors(page: Path) -> set[str]:
    """The ids a page sets itself: heading attributes ``{#id}`` and ``<span id="id">``."""
    text = page.read_text(encoding="utf-8")
    return set(re.findall(r"\{#([^}\s]+)\}\s*$", text, re.M)) | set(
        re.findall(r'<span id="([^"]+)"></span>', text)
    )


def test_sarif_rules_link_to_the_place_on_the_site_that_explains_them() -> None:
    from torch_abi_audit.renderers import sarif

    config = tomllib.loads((ROOT / "zensical.toml").read_text(encoding="utf-8"))["project"]
    assert config["site_url"] == sarif.DOCUMENTATION_URI
    golden = json.loads((ROOT / "tests" / "golden" / "demo.sarif").read_text(encoding="utf-8"))
    rules = [rule["id"] for rule in golden["runs"][0]["tool"]["driver"]["rules"]]
    codes = re.findall(r'id="finding-([a-z0-9-]+)"', (DOCS / "verdicts.md").read_text("utf-8"))
    assert "torch-unpinned-unstable" in rules and "load-failure" in codes
    for rule_id in {*rules, *sarif.VERDICT_RULES, *codes}:
        uri = sarif.help_uri(rule_id)
        assert uri.startswith(sarif.DOCUMENTATION_URI)
        path, anchor = uri.removeprefix(sarif.DOCUMENTATION_URI).split("/#")
        assert anchor in _explicit_anchors(DOCS / f"{path}.md"), uri


def test_the_readme_links_to_pages_that_exist() -> None:
    config = tomllib.loads((ROOT / "zensical.toml").read_text(encoding="utf-8"))["project"]
    site = config["site_url"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(re.escape(site) + r"([\w/.-]*)", readme)
    assert links
    for path in links:
        page = path.strip("/") or "index"
        assert (DOCS / f"{page}.md").is_file() or (DOCS / page / "index.md").is_file(), path
