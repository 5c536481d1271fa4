"""Every output format, registered by name: the one place ``--format`` choices come from.

The command line looks a renderer up here and never branches on the format itself.
"""

from __future__ import annotations

from torch_abi_audit.renderers import github, json_report, markdown, sarif, table
from torch_abi_audit.renderers.base import Renderer

#: ``--format`` name -> renderer, in the order ``--help`` lists them (the first is the default).
RENDERERS: dict[str, Renderer] = {
    renderer.name: renderer
    for renderer in (
        table.RENDERER,
        json_report.RENDERER,
        markdown.RENDERER,
        github.RENDERER,
        sarif.RENDERER,
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
