"""The one interface every output format implements, and the options they share.

A renderer is a pure function from a finished result (a :data:`Document`) to text: it never
reads a file, runs a rule or looks at the terminal; whatever it needs to know about where it
runs (the working directory, whether the reader is a terminal) comes in
:class:`RenderOptions`. Formats are registered by name in :mod:`torch_abi_audit.renderers.registry`.

Adding a format is one module that defines ``render(document, options) -> str`` plus its
``Renderer(...)`` line in the registry (which imports the module when it first renders). Adding
a kind of result (a diff, a survey) is a new member of :data:`Document`; ``mypy`` then points
at every renderer that does not handle it yet (each dispatches with ``match`` and ends in
``assert_never``, or hands what is left to a function that takes only the last kind).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:  # a name for type checkers: the modules load when a renderer uses them
    from torch_abi_audit.diff import PackageDiff
    from torch_abi_audit.report import AuditResult

#: What renderers render: the result of the audit command, or of ``diff`` (later surveys).
Document: TypeAlias = "AuditResult | PackageDiff"


@dataclass(frozen=True)
class RenderOptions:
    """How to render.

    ``verbose`` (``-v``) lists symbols; ``show_all`` (``--all``) keeps packages without torch
    use in environment tables; ``pretty`` indents JSON (for a terminal) instead of writing one
    line; ``working_directory`` is what paths are made relative to in formats that point at
    files (GitHub annotations, SARIF locations).
    """

    verbose: bool = False
    show_all: bool = False
    pretty: bool = True
    working_directory: Path = field(default_factory=Path)


@dataclass(frozen=True)
class Renderer:
    """An output format: its name (``--format NAME``), a one-line description for ``--help``,
    the function that renders, and whether progress may be drawn on a terminal's stderr while
    it is being produced (not for formats read by programs: JSON, SARIF)."""

    name: str
    description: str
    render: Callable[[Document, RenderOptions], str]
    shows_progress: bool = True
