"""What the package index lists: a project's releases and files, from the JSON simple API.

The survey needs, for every file, what the index knows before anything is downloaded: its
name (tags), its sha256 (the store's key, so a rerun skips stored wheels without fetching them
again), its size, its upload time (PEP 700: the month the report plots by) and whether it is
yanked (PEP 592). The JSON form of the simple repository API (PEP 691) carries all of that in one
response per project, from PyPI and from any index that speaks it. The wheels themselves are
fetched by :func:`torch_abi_audit.sources.index.download` (pip), as ``--download`` does.

Whether the index serves a file's core metadata beside it (PEP 658/714:
``<file URL>.metadata``) is recorded as :attr:`IndexFile.has_metadata`.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from torch_abi_audit._version import __version__

#: PyPI's simple API; ``PIP_INDEX_URL`` moves it, as it moves pip.
DEFAULT_INDEX = "https://pypi.org/simple/"
_ACCEPT = "application/vnd.pypi.simple.v1+json"
_TIMEOUT = 60.0
_ATTEMPTS = 3


class IndexReadError(Exception):
    """The index could not be read for a project: unreachable, unknown project, bad answer."""


@dataclass(frozen=True)
class IndexFile:
    """One file of a release as the index lists it. ``upload_time`` is ISO 8601 (UTC) or
    ``None`` where the index does not say; ``sha256`` is ``None`` where it gives no hash."""

    filename: str
    url: str
    sha256: str | None
    size: int | None
    upload_time: str | None
    yanked: bool
    has_metadata: bool

    @property
    def is_wheel(self) -> bool:
        """True for a ``.whl`` file."""
        return self.filename.endswith(".whl")


@dataclass(frozen=True)
class Project:
    """A project on the index: its normalised name and files grouped by release."""

    name: str
    releases: dict[Version, tuple[IndexFile, ...]]

    def versions(self, *, include_pre: bool = False, include_yanked: bool = False) -> list[Version]:
        """Release versions, newest first. Pre-releases and releases whose every file is
        yanked are left out unless asked for."""
        chosen = [
            version
            for version, files in self.releases.items()
            if (include_pre or not (version.is_prerelease or version.is_devrelease))
            and (include_yanked or any(not f.yanked for f in files))
        ]
        return sorted(chosen, reverse=True)


def index_url() -> str:
    """The index to list: ``$PIP_INDEX_URL`` (as pip would use), else PyPI."""
    configured = os.environ.get("PIP_INDEX_URL", "").strip()
    return (configured or DEFAULT_INDEX).rstrip("/") + "/"


def _get(url: str) -> bytes:
    headers = {"User-Agent": f"torch-abi-audit/{__version__} (survey)", "Accept": _ACCEPT}
    request = urllib.request.Request(url, headers=headers)
    last: Exception | None = None
    for attempt in range(_ATTEMPTS):
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
                data: bytes = response.read()
                return data
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise IndexReadError(f"{url}: not found on the index (HTTP 404)") from exc
            last = exc
            if exc.code < 500 and exc.code != 429:
                break
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            last = exc
        time.sleep(0.5 * 2**attempt)
    raise IndexReadError(f"{url}: {last}")


def _version_of(filename: str) -> Version | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None  # eggs, .exe installers, malformed names: not a release file we read


def _file(entry: dict[str, Any], base: str) -> IndexFile:
    hashes = entry.get("hashes") or {}
    size = entry.get("size")
    return IndexFile(
        filename=str(entry["filename"]),
        url=urllib.parse.urljoin(base, str(entry["url"])),
        sha256=hashes.get("sha256"),
        size=size if isinstance(size, int) else None,
        upload_time=entry.get("upload-time"),
        yanked=bool(entry.get("yanked")),
        has_metadata=bool(entry.get("core-metadata") or entry.get("dist-info-metadata")),
    )


def parse_project(name: str, document: dict[str, Any], base: str) -> Project:
    """A :class:`Project` from a PEP 691 JSON document. Raises :class:`IndexReadError` when the
    document is not one."""
    if not isinstance(document, dict) or not isinstance(document.get("files"), list):
        raise IndexReadError(f"{base}: not a PEP 691 project page")
    releases: dict[Version, list[IndexFile]] = {}
    for entry in document["files"]:
        if not isinstance(entry, dict) or "filename" not in entry or "url" not in entry:
            continue
        version = _version_of(str(entry["filename"]))
        if version is not None:
            releases.setdefault(version, []).append(_file(entry, base))
    return Project(
        canonicalize_name(str(document.get("name") or name)),
        {version: tuple(files) for version, files in releases.items()},
    )


def fetch_project(name: str, index: str | None = None) -> Project:
    """The project ``name`` on ``index`` (default: :func:`index_url`).

    Raises :class:`IndexReadError` when the index cannot be reached, does not know the project,
    or does not answer with the JSON simple API.
    """
    base = (index or index_url()) + canonicalize_name(name) + "/"
    raw = _get(base)
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexReadError(
            f"{base}: the index did not answer with the JSON simple API (PEP 691)"
        ) from exc
    return parse_project(name, document, base)
