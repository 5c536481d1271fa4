"""Fixtures of the renderer tests: the demo wheels, and reports built by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.build import Fixtures
from helpers.demo_wheels import DemoWheels, build_demo


@pytest.fixture(scope="session")
def demo(built: Fixtures, tmp_path_factory: pytest.TempPathFactory) -> DemoWheels:
    """The two demo wheels (see ``tests/helpers/demo_wheels.py``)."""
    return build_demo(tmp_path_factory.mktemp("demo"), built)


@pytest.fixture
def in_demo(demo: DemoWheels, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in the directory holding the demo wheels (paths in reports are relative to it)."""
    monkeypatch.chdir(demo.port.parent)
    return demo.port.parent
