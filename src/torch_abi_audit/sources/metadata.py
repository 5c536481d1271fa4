"""Core metadata (``METADATA``) and wheel metadata (``WHEEL``), parsed with ``packaging``.

Shared by installed distributions (``*.dist-info`` directories) and wheels (the same files
inside the archive). Only the header block of ``METADATA`` is parsed: the long description
that follows the first empty line is never needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch_abi_audit.python_model import is_torch_distribution

#: The largest ``METADATA`` or ``WHEEL`` file read (installed or in a wheel): real ones are a few
#: kilobytes, a long description included; the largest on the index are well under 1 MiB.
MAX_METADATA_SIZE = 16 << 20

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
    def may_require_torch(self) -> bool:
        """Whether a ``Requires-Dist`` entry may name torch: only then is the requirement parser
        needed (:attr:`torch_requirements`)."""
        return any(_MAYBE_TORCH.match(text) for text in self.requires_dist)

    @property
    def invalid_torch_requirements(self) -> tuple[str, ...]:
        """The ``Requires-Dist`` entries that name ``torch`` but are not valid requirements
        (PEP 508): an installer refuses or drops them, so they state nothing."""
        candidates = [text for text in self.requires_dist if _MAYBE_TORCH.match(text)]
        if not candidates:
            return ()
        from packaging.requirements import InvalidRequirement, Requirement

        invalid = []
        for text in candidates:
            try:
                Requirement(text)
            except InvalidRequirement:
                invalid.append(text)
        return tuple(invalid)

    @property
    def torch_requirements(self) -> tuple[str, ...]:
        """The ``Requires-Dist`` entries that name ``torch`` and apply without extras."""
        candidates = [text for text in self.requires_dist if _MAYBE_TORCH.match(text)]
        if not candidates:
            return ()  # most distributions: no need to load the requirement parser
        from packaging.requirements import InvalidRequirement, Requirement

        found = []
        for text in candidates:
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                continue  # see invalid_torch_requirements
            if not is_torch_distribution(requirement.name):
                continue
            if requirement.marker is not None and "extra" in str(requirement.marker):
                continue  # only with an optional extra: not a requirement of the package
            found.append(text)
        return tuple(found)


def load_requirement_parser() -> None:
    """Import ``packaging``'s requirement parser now (it compiles its tokenizer's patterns on
    import: ~15 ms) rather than at the first requirement that may name torch."""
    import packaging.requirements  # noqa: F401


def _header_fields(raw: bytes) -> dict[str, list[str]] | None:
    """The header fields of a ``METADATA`` file, or ``None`` if they need the full parser.

    Core metadata is RFC 822-style headers (one ``Key: value`` per line, continuation lines
    indented) followed by an optional body. This reader handles that common case; anything
    unusual (non-UTF-8 bytes, RFC 2047 encoded words) is left to ``packaging.metadata``, whose
    email machinery costs ~30 ms to import — a third of a small wheel's audit.
    """
    end = raw.find(b"\n\n")
    crlf_end = raw.find(b"\r\n\r\n")
    if crlf_end >= 0 and (end < 0 or crlf_end < end):
        end = crlf_end
    headers = raw if end < 0 else raw[:end]
    try:
        text = headers.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "=?" in text:
        return None
    fields: dict[str, list[str]] = {}
    last: list[str] | None = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t"):
            if last is None:
                return None
            last[-1] += " " + line.strip()
            continue
        key, sep, value = line.partition(":")
        if not sep:
            return None
        last = fields.setdefault(key.strip().lower(), [])
        last.append(value.strip())
    return fields


def parse_metadata(raw: bytes, *, wheel_file: bytes | None = None) -> DistributionMetadata:
    """Parse ``METADATA`` (and, if given, ``WHEEL``) bytes.

    Name, version and ``Requires-Dist`` come from the header block; values are later parsed by
    ``packaging`` (requirements, versions). Raises :class:`ValueError` when ``METADATA`` lacks a
    name or a version, and :class:`UnicodeDecodeError` for undecodable bytes.
    """
    fields = _header_fields(raw)
    if fields is not None and fields.get("name") and fields.get("version"):
        name, version = fields["name"][0], fields["version"][0]
        requires = tuple(fields.get("requires-dist", ()))
    else:
        from packaging.metadata import parse_email  # the email package: only when needed

        header_end = raw.find(b"\n\n")
        parsed, _unparsed = parse_email(raw if header_end < 0 else raw[: header_end + 1])
        parsed_name = parsed.get("name")
        parsed_version = parsed.get("version")
        if not parsed_name or not parsed_version:
            raise ValueError("METADATA has no Name or Version")
        name, version = str(parsed_name), str(parsed_version)
        requires = tuple(parsed.get("requires_dist") or ())
    tags: tuple[str, ...] = ()
    purelib: bool | None = None
    if wheel_file is not None:
        tags, purelib = parse_wheel_file(wheel_file)
    return DistributionMetadata(name, version, requires, wheel_tags=tags, root_is_purelib=purelib)


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
