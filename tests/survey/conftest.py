"""A loopback index of fixture wheels (compiled libraries), and a survey run over it.

Projects on the index:

* ``survey-stable`` 1.0 and 1.1: a manylinux cp312 wheel holding the compiled stable plugin,
  ``Requires-Dist: torch>=2.0`` (below what its shims need); 1.1 also a pure wheel, which is
  what Windows gets;
* ``survey-unstable`` 2.0: the compiled unstable library, ``Requires-Dist: torch`` (unpinned);
* ``survey-corrupt`` 0.1: a wheel whose bytes are not a zip archive (pip refuses it);
* ``survey-damaged`` 0.1: a stored wheel whose library bytes no longer match their CRC-32;
* ``survey-missing`` 0.1: listed, but its file answers 404;
* ``survey-cuda``, ``survey-probe``, ``survey-pinned`` 1.0: Linux and Windows wheels that load,
  fail, cannot be told or are pinned to another torch on the newest release
  (:func:`helpers.survey_index.add_load_projects`; surveyed by ``tests/survey/test_loads.py``).

``surveyed`` runs ``survey run`` once over them (and ``survey-nowhere``, which the index does
not know) on the local engine; the tests read its store.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from helpers.build import Fixtures
from helpers.local_index import LocalIndex
from helpers.survey_index import PACKAGES, build_index, run_arguments
from torch_abi_audit.survey import cli as survey_cli


@pytest.fixture(scope="session")
def local_index(built: Fixtures, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalIndex]:
    """The fixture index, served on 127.0.0.1 (runs name it with ``--index-url``)."""
    index = build_index(tmp_path_factory.mktemp("index"), built)
    index.start()
    yield index
    index.close()


@dataclass(frozen=True)
class Surveyed:
    """The first survey run over the fixture index."""

    store: Path
    work_dir: Path
    exit_code: int
    stderr: str


@pytest.fixture(scope="session")
def surveyed(
    local_index: LocalIndex, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Surveyed]:
    base = tmp_path_factory.mktemp("survey")
    store, work = base / "store.db", base / "work"
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        arguments = run_arguments(local_index, store, *PACKAGES, "survey-nowhere")
        code = survey_cli.main([*arguments, "--work-dir", str(work), "-j", "2"])
    yield Surveyed(store, work, code, stderr.getvalue())


def section_cells(markdown: str, heading: str) -> list[list[str]]:
    """The rows of the tables under ``heading`` (up to the next heading), as rendered text."""
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    rows: list[list[str]] = []
    inside = False
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            inside = tokens[i + 1].content == heading
        elif inside and token.type == "tr_open":
            rows.append([])
        elif inside and token.type == "inline" and tokens[i - 1].type in ("th_open", "td_open"):
            rows[-1].append("".join(child.content for child in token.children or []))
    return rows
