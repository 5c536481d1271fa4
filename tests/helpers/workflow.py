"""GitHub Actions workflow commands read back as the runner reads them (tests of the
``github`` format, for the audit and for diffs)."""

from __future__ import annotations

import re

COMMAND = re.compile(r"^::(?P<name>[a-z-]+)(?: (?P<properties>[^:]*))?::(?P<data>.*)$")


def unescape(value: str) -> str:
    """What the runner makes of an escaped value (actions/runner, ``UnescapeProperty``)."""
    for escaped, raw in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        value = value.replace(escaped, raw)
    return value


def commands(text: str) -> list[tuple[str, dict[str, str], str]]:
    """The workflow commands the runner would act on: none between ``::stop-commands::TOKEN``
    and ``::TOKEN::``."""
    found = []
    stopped: str | None = None
    for line in text.splitlines():
        if stopped is not None:
            if line == f"::{stopped}::":
                stopped = None
            continue
        match = COMMAND.match(line)
        if not match:
            continue
        if match["name"] == "stop-commands":
            stopped = match["data"]
            continue
        properties = {}
        for item in (match["properties"] or "").split(","):
            if item:
                key, _, value = item.partition("=")
                properties[key] = unescape(value)
        found.append((match["name"], properties, unescape(match["data"])))
    return found
