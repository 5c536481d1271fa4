"""Names of files as the reports show them, the same in every stage.

Rules, renderers, loading and the diff all name a library by a path inside its package or by its
file name; they live here, below all of them, with one definition each. Pure string and path
work: nothing is read from disk.
"""

from __future__ import annotations

from pathlib import Path


def relative_or_name(path: Path, root: Path) -> str:
    """``path`` inside ``root`` with forward slashes, or its file name when it is elsewhere."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


__all__ = ["relative_or_name"]
