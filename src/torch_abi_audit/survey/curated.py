"""The shipped list of torch extension packages, and package lists users give.

``data/torch_extensions.json`` is written by ``scripts/curate_survey_packages.py`` from the
index's metadata and the packages' own binaries (see its ``how`` field), never by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import InvalidName, canonicalize_name

#: The shipped list (package data).
CURATED_FILE = Path(__file__).parent / "data" / "torch_extensions.json"


class CuratedListError(Exception):
    """A package list that cannot be read."""


@dataclass(frozen=True)
class CuratedPackage:
    """One package of the list, with the evidence it was kept on."""

    name: str
    release: str
    requires_torch: str | None
    platforms: tuple[str, ...]
    evidence: str


@dataclass(frozen=True)
class CuratedList:
    """The list and how it was made."""

    how: str
    generated_at: str
    packages: tuple[CuratedPackage, ...]


def _entry(raw: Any) -> CuratedPackage:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise CuratedListError(f"not a package entry: {raw!r}")
    return CuratedPackage(
        name=raw["name"],
        release=str(raw.get("release") or ""),
        requires_torch=raw.get("requires_torch"),
        platforms=tuple(raw.get("platforms") or ()),
        evidence=str(raw.get("evidence") or ""),
    )


def parse_curated(document: Any) -> CuratedList:
    """A :class:`CuratedList` from its JSON document; raises :class:`CuratedListError`."""
    if not isinstance(document, dict) or not isinstance(document.get("packages"), list):
        raise CuratedListError("not a curated package list (no 'packages' array)")
    return CuratedList(
        how=str(document.get("how") or ""),
        generated_at=str(document.get("generated_at") or ""),
        packages=tuple(_entry(raw) for raw in document["packages"]),
    )


def load_curated(path: Path = CURATED_FILE) -> CuratedList:
    """The shipped list (or another file of the same shape)."""
    try:
        return parse_curated(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CuratedListError(f"{path}: {exc}") from exc


def read_package_file(path: Path) -> list[str]:
    """Package names from ``path``: a curated-list JSON, or one name per line (``#`` starts a
    comment). Raises :class:`CuratedListError` when it cannot be read or names nothing valid."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CuratedListError(f"{path}: {exc}") from exc
    if text.lstrip().startswith("{"):
        try:
            return [entry.name for entry in parse_curated(json.loads(text)).packages]
        except json.JSONDecodeError as exc:
            raise CuratedListError(f"{path}: {exc}") from exc
    names = []
    for number, line in enumerate(text.splitlines(), 1):
        name = line.split("#", 1)[0].strip()
        if not name:
            continue
        try:
            canonicalize_name(name, validate=True)
        except InvalidName as exc:
            raise CuratedListError(f"{path}:{number}: not a package name: {name!r}") from exc
        names.append(name)
    return names
