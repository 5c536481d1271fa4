"""What the package index shows about the project, and the changelog kept with it."""

from __future__ import annotations

import tomllib
from pathlib import Path

from torch_abi_audit.renderers.json_report import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parent.parent


def test_project_metadata() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(project["urls"]) >= {"Homepage", "Documentation", "Issues", "Changelog"}
    assert project["urls"]["Changelog"].endswith("/CHANGELOG.md")
    assert "Programming Language :: Python :: 3.14" in project["classifiers"]
    # --download runs pip with this interpreter: tool runners (uvx, pipx) add none otherwise.
    assert any(dependency.startswith("pip") for dependency in project["dependencies"])


def test_changelog_has_an_unreleased_section_first() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings[0] == "## Unreleased"
    assert "--format" in text and "schema_version` 1.6" in text
    # The JSON schema the package ships has its line.
    assert f"schema_version` {SCHEMA_VERSION}" in text
