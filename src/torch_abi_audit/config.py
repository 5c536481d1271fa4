"""Configuration: ``[tool.torch-abi-audit]`` in the nearest ``pyproject.toml``, or ``--config``.

The nearest ``pyproject.toml`` upward from the working directory that has the table is used
(as ruff and pytest look for theirs); ``--config FILE`` names one instead (a ``pyproject.toml``,
or a TOML file whose top level is the table), ``--no-config`` uses none. Keys::

    [tool.torch-abi-audit]
    check = ["torch", "abi3"]        # or "torch,abi3": the --check policies
    ignore = ["torch-over-pinned"]   # finding codes no gate counts (--ignore)
    baseline = "ci/abi-baseline.toml"  # relative to this file (--baseline)
    jobs = 4                         # --jobs
    torch-version = "2.12"           # --torch-version (a string: 2.10 as a number is 2.1)
    format = "json"                  # --format (table, json, markdown, github, sarif)

    [[tool.torch-abi-audit.allow]]   # baseline entries written in place
    library = "vllm/_C.abi3.so"
    check = "torch"
    reason = "not yet ported"

A key given on the command line replaces the configuration's. An unknown key, or a value of
the wrong kind, raises :class:`ConfigError` naming it (exit 2): a gate must not quietly run
without the setting someone meant to give it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch_abi_audit.baseline import (
    BaselineError,
    check_problem,
    did_you_mean,
    parse_entries,
    read_toml,
)
from torch_abi_audit.checks import CheckPolicy, parse_policies
from torch_abi_audit.gate_report import AllowEntry
from torch_abi_audit.renderers.registry import RENDERERS

#: The keys ``[tool.torch-abi-audit]`` takes.
KEYS = ("check", "ignore", "allow", "baseline", "jobs", "torch-version", "format")
TABLE = "tool.torch-abi-audit"


class ConfigError(ValueError):
    """A configuration that cannot be used as written."""


@dataclass(frozen=True)
class Config:
    """The settings read from one configuration file (``path``; ``None``: no file)."""

    path: Path | None = None
    check: tuple[CheckPolicy, ...] = ()
    ignore: tuple[str, ...] = ()
    allow: tuple[AllowEntry, ...] = ()
    baseline: Path | None = None
    jobs: int | None = None
    torch_version: str | None = None
    format: str | None = None


def _tool_table(document: dict[str, object]) -> dict[str, object] | None:
    tool = document.get("tool")
    if not isinstance(tool, dict):
        return None
    table = tool.get("torch-abi-audit")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"[{TABLE}] must be a table")
    return table


def _read(path: Path) -> dict[str, object]:
    try:
        return read_toml(path)
    except BaselineError as exc:
        raise ConfigError(str(exc)) from None


def find_config(start: Path) -> Path | None:
    """The nearest ``pyproject.toml`` at or above ``start`` with a ``[tool.torch-abi-audit]``
    table. Raises :class:`ConfigError` for an invalid one met on the way (it might hold it)."""
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file() and _tool_table(_read(candidate)) is not None:
            return candidate
    return None


def _strings(value: object, key: str, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(item.strip() for item in value)
    raise ConfigError(f"{where}: {key} must be a string or an array of strings")


def _parse(table: dict[str, object], path: Path, where: str) -> Config:
    unknown = [key for key in table if key not in KEYS]
    if unknown:
        hint = did_you_mean(unknown[0], KEYS)
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}{hint}; known: {', '.join(KEYS)}")
    check: list[CheckPolicy] = []
    for text in _strings(table.get("check", []), "check", where):
        try:
            check += parse_policies(text)
        except ValueError as exc:
            raise ConfigError(f"{where}: check: {exc}") from None
    ignore = _strings(table.get("ignore", []), "ignore", where)
    for code in ignore:
        problem = check_problem(code, gates=False)
        if problem is not None:
            raise ConfigError(f"{where}: ignore: {problem}")
    try:
        allow = parse_entries(table.get("allow", []), path, f"{where} allow")
    except BaselineError as exc:
        raise ConfigError(str(exc)) from None
    jobs = table.get("jobs")
    if jobs is not None and (not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1):
        raise ConfigError(f"{where}: jobs must be a whole number of at least 1")
    torch_version = table.get("torch-version")
    if torch_version is not None and not isinstance(torch_version, str):
        raise ConfigError(f'{where}: torch-version must be a string (torch-version = "2.12")')
    output = table.get("format")
    if output is not None and output not in RENDERERS:
        known = ", ".join(RENDERERS)
        raise ConfigError(f"{where}: format must be one of {known}, not {output!r}")
    baseline = table.get("baseline")
    if baseline is not None and (not isinstance(baseline, str) or not baseline.strip()):
        raise ConfigError(f"{where}: baseline must be a path (a string)")
    return Config(
        path=path,
        check=tuple(check),
        ignore=ignore,
        allow=allow,
        baseline=path.parent / Path(baseline).expanduser() if baseline else None,
        jobs=jobs,
        torch_version=torch_version,
        format=str(output) if output is not None else None,
    )


def load_config(path: Path) -> Config:
    """The configuration in ``path``: its ``[tool.torch-abi-audit]`` table, or — for a file
    not named ``pyproject.toml`` without one — its top level. Raises :class:`ConfigError`."""
    path = path.absolute()
    if not path.is_file():
        raise ConfigError(f"{path}: no such configuration file")
    document = _read(path)
    table = _tool_table(document)
    if table is not None:
        return _parse(table, path, f"{path} [{TABLE}]")
    if path.name == "pyproject.toml":
        raise ConfigError(f"{path}: no [{TABLE}] table")
    return _parse(document, path, str(path))


def discover(explicit: Path | None, start: Path, *, enabled: bool = True) -> Config:
    """The configuration to use: ``explicit`` if given, else the nearest one above ``start``
    (none when ``enabled`` is false or nothing is found)."""
    if explicit is not None:
        return load_config(explicit)
    if not enabled:
        return Config()
    found = find_config(start.absolute())
    return load_config(found) if found is not None else Config()
