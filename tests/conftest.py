"""Shared fixtures: libraries compiled once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.build import Fixtures, build_fixtures
from helpers.demo_wheels import DemoWheels, build_demo
from helpers.site import FakeSite, make_site


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Fixtures:
    """Every compiled fixture library (see ``tests/helpers/build.py``)."""
    return build_fixtures(tmp_path_factory.mktemp("compiled"))


@pytest.fixture(scope="session")
def fake_site(built: Fixtures, tmp_path_factory: pytest.TempPathFactory) -> FakeSite:
    """A fake site-packages with several distributions (see ``tests/helpers/site.py``)."""
    return make_site(tmp_path_factory.mktemp("fake-site"), built)


@pytest.fixture(scope="session")
def demo(built: Fixtures, tmp_path_factory: pytest.TempPathFactory) -> DemoWheels:
    """The two demo wheels of the report formats (see ``tests/helpers/demo_wheels.py``)."""
    return build_demo(tmp_path_factory.mktemp("demo"), built)


@pytest.fixture
def in_demo(demo: DemoWheels, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in the directory holding the demo wheels (paths in reports are relative to it)."""
    monkeypatch.chdir(demo.port.parent)
    return demo.port.parent
