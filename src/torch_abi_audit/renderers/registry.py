"""Every output format, registered by name: the one place ``--format`` choices come from.

The command line looks a renderer up here and never branches on the format itself. A format's
module is imported when it first renders (``--help`` and ``--format`` need only the names and
descriptions): an audit loads the one format it writes, not all five.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from torch_abi_audit.renderers.base import Document, Renderer, RenderOptions


def _loaded(module: str) -> Callable[[Document, RenderOptions], str]:
    """The ``render`` function of ``torch_abi_audit.renderers.<module>``, imported on first use."""

    def render(document: Document, options: RenderOptions) -> str:
        function: Callable[[Document, RenderOptions], str]
        function = importlib.import_module(f"torch_abi_audit.renderers.{module}").render
        return function(document, options)

    return render


#: ``--format`` name -> renderer, in the order ``--help`` lists them (the first is the default).
RENDERERS: dict[str, Renderer] = {
    renderer.name: renderer
    for renderer in (
        Renderer("table", "the human-readable table (the default)", _loaded("table")),
        Renderer(
            "json",
            "the documented JSON document (schema_version, shipped JSON Schema)",
            _loaded("json_report"),
            shows_progress=False,
        ),
        Renderer(
            "markdown",
            "GitHub Markdown for a pull request comment or $GITHUB_STEP_SUMMARY (under 65,536 "
            "characters)",
            _loaded("markdown"),
        ),
        Renderer(
            "github",
            "GitHub Actions workflow commands (annotations for violations and findings), then "
            "the table",
            _loaded("github"),
        ),
        Renderer(
            "sarif",
            "SARIF 2.1.0 for code scanning (a rule per finding code and verdict kind)",
            _loaded("sarif"),
            shows_progress=False,
        ),
    )
}

DEFAULT_FORMAT = "table"


def get_renderer(name: str) -> Renderer:
    """The renderer registered as ``name``; :class:`KeyError` names the known formats."""
    try:
        return RENDERERS[name]
    except KeyError:
        known = ", ".join(RENDERERS)
        raise KeyError(f"unknown format {name!r} (known: {known})") from None
