"""Shared fixtures: libraries compiled once per test session."""

from __future__ import annotations

import pytest

from helpers.build import Fixtures, build_fixtures
from helpers.site import FakeSite, make_site


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Fixtures:
    """Every compiled fixture library (see ``tests/helpers/build.py``)."""
    return build_fixtures(tmp_path_factory.mktemp("compiled"))


@pytest.fixture(scope="session")
def fake_site(built: Fixtures, tmp_path_factory: pytest.TempPathFactory) -> FakeSite:
    """A fake site-packages with several distributions (see ``tests/helpers/site.py``)."""
    return make_site(tmp_path_factory.mktemp("fake-site"), built)
