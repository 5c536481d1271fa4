"""Shared fixtures: libraries compiled once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.build import Fixtures, build_fixtures


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Fixtures:
    """Every compiled fixture library (see ``tests/helpers/build.py``)."""
    return build_fixtures(tmp_path_factory.mktemp("compiled"))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A scratch directory for one test."""
    return tmp_path
