"""Core metadata (``METADATA``) and wheel metadata (``WHEEL``), parsed with ``packaging``.

Shared by installed distributions (``*.dist-info`` directories) and wheels (the same files
inside the archive). Only the header block of ``METADATA`` is parsed: the long description
that follows the first empty line is never needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A requirement whose name could normalise to "torch" (PEP 503: case, and runs of -_.).
_MAYBE_TORCH = re.compile(r"\s*torch(?![\w.-]*[a-z0-9])", re.IGNORECASE)


@dataclass(frozen=True)
class DistributionMetadata:
    """What a distribution says about itself.

    ``requires_dist`` holds the ``Requires-Dist`` entries as written; ``wheel_tags`` the
    ``Tag`` lines of its ``WHEEL`` file (empty when there is none) and ``root_is_purelib`` its
    ``Root-Is-Purelib``. ``problem`` says why ``METADATA`` could not be read, if it could not.
    """

    name: str
    version: str
    requires_dist: tuple[str, ...] = ()
    wheel_tags: tuple[str, ...] = ()
    root_is_purelib: bool | None = None
    problem: str | None = None

    @property
    def torch_requirements(self) -> tuple[str, ...]:
        """The ``Requires-Dist`` entries that name ``torch`` and apply without extras."""
        candidates = [text for text in self.requires_dist if _MAYBE_TORCH.match(text)]
        if not candidates:
            return ()  # most distributions: no need to load the requirement parser
        from packaging.requirements import InvalidRequirement, Requirement
        from packaging.utils import canonicalize_name  # imports packaging.tags: load on use

        found = []
        for text in candidates:
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                continue
            if canonicalize_name(requirement.name) != "torch":
                continue
            if requirement.marker is not None and "extra" in str(requirement.marker):
                continue  # only with an optional extra: not a requirement of the package
            found.append(text)
        return tuple(found)


def parse_metadata(raw: bytes, *, wheel_file: bytes | None = None) -> DistributionMetadata:
    """Parse ``METADATA`` (and, if given, ``WHEEL``) bytes.

    Raises :class:`ValueError` when ``METADATA`` lacks a name or a version, and
    :class:`UnicodeDecodeError` for undecodable bytes.
    """
    from packaging.metadata import parse_email  # pulls in the email package: load on use

    header_end = raw.find(b"\n\n")
    headers = raw if header_end < 0 else raw[: header_end + 1]
    fields, _unparsed = parse_email(headers)
    name = fields.get("name")
    version = fields.get("version")
    if not name or not version:
        raise ValueError("METADATA has no Name or Version")
    tags: tuple[str, ...] = ()
    purelib: bool | None = None
    if wheel_file is not None:
        tags, purelib = parse_wheel_file(wheel_file)
    return DistributionMetadata(
        str(name),
        str(version),
        tuple(fields.get("requires_dist") or ()),
        wheel_tags=tags,
        root_is_purelib=purelib,
    )


def parse_wheel_file(raw: bytes) -> tuple[tuple[str, ...], bool | None]:
    """The ``Tag`` lines and ``Root-Is-Purelib`` of a ``WHEEL`` file (``Key: value`` lines)."""
    tags: list[str] = []
    purelib: bool | None = None
    for line in raw.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "tag":
            tags.append(value)
        elif key == "root-is-purelib":
            purelib = value.lower() == "true"
    return tuple(tags), purelib
