"""PyTorch's stable-ABI notes for the tests that need the real file (the generator pins it)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest


def real_notes_or_skip(generator: ModuleType) -> Path:
    """The notes ``generator`` (``scripts/generate_replacements.py`` loaded) pins: from the
    cache, else downloaded into it. Skips the test, saying why and how to provide the file,
    when it cannot be downloaded; a file that is not the pinned one fails the test."""
    try:
        return Path(generator.obtain_docs())
    except SystemExit as exc:
        if "cannot download" not in str(exc):
            raise
        pytest.skip(f"needs PyTorch's stable-ABI notes at {generator.DOCS_COMMIT[:12]}: {exc}")
