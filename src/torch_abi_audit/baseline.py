"""Baselines: known exceptions a team commits to, and shrinks.

A baseline is a TOML file of ``[[allow]]`` entries (the configuration's ``allow`` key takes the
same entries)::

    [[allow]]
    library = "vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so"  # glob on the path inside the distribution
    package = "vllm"                                       # instead of, or beside, library
    check = "torch"                                        # a gate, or a finding code
    reason = "FA2 not yet ported to the stable ABI"        # required
    expires = 2027-03-01                                   # optional

``library`` globs match the whole path: ``*`` and ``?`` stay within one directory, ``**``
crosses directories, ``[...]`` is a character class. Entries are validated when read: an
unknown key, a check that is neither a gate nor a finding code, a missing reason or a bad date
raise :class:`BaselineError` (an operational error, exit 2), never a silent pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from functools import cache
from pathlib import Path

from torch_abi_audit.gate_report import AllowEntry
from torch_abi_audit.python_model import normalize_name
from torch_abi_audit.report import GateResult, GateStatus
from torch_abi_audit.rules.registry import FINDING_CODES, Gate

#: The keys an ``[[allow]]`` entry may have.
ENTRY_KEYS = ("library", "package", "check", "reason", "expires")


class BaselineError(ValueError):
    """A baseline file or ``allow`` entry that cannot be used as written."""


def known_checks() -> tuple[str, ...]:
    """What ``check`` (and ``--ignore``, for the codes) accepts: the gates, then every code."""
    return (*(str(gate) for gate in Gate), *FINDING_CODES)


def did_you_mean(word: str, known: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the known word closest to a mistaken one, or ``""``."""
    import difflib  # only on a mistake: not worth its import at every start

    close = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_problem(check: str, *, gates: bool = True) -> str | None:
    """Why ``check`` names neither a gate (when ``gates``) nor a finding code; ``None`` if it
    does."""
    names = known_checks() if gates else tuple(FINDING_CODES)
    if check in names:
        return None
    hint = did_you_mean(check, names)
    what = (
        "neither a gate (torch, abi3, metadata, load) nor a finding code"
        if gates
        else ("not a finding code")
    )
    return f"{check!r} is {what}{hint}"


def _text(value: object, key: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BaselineError(f"{where}: {key} must be a non-empty string")
    return value.strip()


def _expiry(value: object, where: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise BaselineError(f"{where}: expires must be a date (expires = 2027-03-01), not {value!r}")


def parse_entries(items: object, source: Path | None, where: str) -> tuple[AllowEntry, ...]:
    """The ``allow`` entries in ``items`` (an array of tables), validated.

    ``where`` names the array in messages (``baseline.toml [[allow]]``). Raises
    :class:`BaselineError` naming the entry and the key at fault.
    """
    if not isinstance(items, list):
        raise BaselineError(f"{where} must be an array of tables ([[allow]] entries)")
    entries = []
    for index, item in enumerate(items, 1):
        at = f"{where} entry {index}"
        if not isinstance(item, dict):
            raise BaselineError(f"{at}: not a table")
        unknown = [key for key in item if key not in ENTRY_KEYS]
        if unknown:
            hint = did_you_mean(unknown[0], ENTRY_KEYS)
            raise BaselineError(
                f"{at}: unknown key {unknown[0]!r}{hint}; an entry takes {', '.join(ENTRY_KEYS)}"
            )
        library = _text(item["library"], "library", at) if "library" in item else None
        package = _text(item["package"], "package", at) if "package" in item else None
        if library is None and package is None:
            raise BaselineError(f"{at}: give library (a glob), package, or both")
        if "check" not in item:
            raise BaselineError(f"{at}: check is required (a gate or a finding code)")
        check = _text(item["check"], "check", at)
        problem = check_problem(check)
        if problem is not None:
            raise BaselineError(f"{at}: check {problem}")
        if "reason" not in item:
            raise BaselineError(f"{at}: reason is required: say why the exception is accepted")
        entries.append(
            AllowEntry(
                check=check,
                reason=_text(item["reason"], "reason", at),
                library=library.removeprefix("./") if library else None,
                package=package,
                expires=_expiry(item["expires"], at) if "expires" in item else None,
                source=source,
                index=index,
            )
        )
    return tuple(entries)


def read_toml(path: Path) -> dict[str, object]:
    """A TOML file as a dict; raises :class:`BaselineError` when it is unreadable or invalid."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BaselineError(f"{path}: {exc.strerror or exc}") from exc
    import tomllib  # only when there is a file to read

    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BaselineError(f"{path}: not valid TOML: {exc}") from exc


def load_baseline(path: Path) -> tuple[AllowEntry, ...]:
    """The entries of the baseline file ``path``. Raises :class:`BaselineError`."""
    document = read_toml(path)
    unknown = [key for key in document if key != "allow"]
    if unknown:
        raise BaselineError(
            f"{path}: unknown key {unknown[0]!r}: a baseline holds [[allow]] entries"
        )
    return parse_entries(document.get("allow", []), path, f"{path} [[allow]]")


@cache
def _glob(pattern: str) -> re.Pattern[str]:
    parts = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            parts.append("(?:.*/)?")
            index += 3
            continue
        if pattern.startswith("**", index):
            parts.append(".*")
            index += 2
            continue
        if char == "*":
            parts.append("[^/]*")
        elif char == "?":
            parts.append("[^/]")
        elif char == "[" and (end := pattern.find("]", index + 2)) != -1:
            body = pattern[index + 1 : end]
            negate = body.startswith("!")
            body = re.escape(body[1:] if negate else body).replace("\\-", "-")
            parts.append(f"[{'^' if negate else ''}{body}]")
            index = end + 1
            continue
        else:
            parts.append(re.escape(char))
        index += 1
    return re.compile("".join(parts))


def library_matches(pattern: str, path: str) -> bool:
    """Whether ``path`` (inside a distribution) matches the glob ``pattern`` as a whole."""
    return _glob(pattern).fullmatch(path) is not None


def entry_gates(entry: AllowEntry) -> frozenset[Gate]:
    """The gates whose violations ``entry`` can cover."""
    if entry.check in {str(gate) for gate in Gate}:
        return frozenset({Gate(entry.check)})
    return frozenset(FINDING_CODES[entry.check].gates)


def entry_matches(
    entry: AllowEntry, gate: Gate, code: str, packages: Iterable[str], library: str | None
) -> bool:
    """Whether ``entry`` covers the violation of ``gate`` by ``code`` in ``library`` of the
    package known by the names ``packages`` (its name, its distribution's)."""
    if entry.check not in (gate, code):
        return False
    if entry.package is not None and normalize_name(entry.package) not in {
        normalize_name(name) for name in packages
    }:
        return False
    return entry.library is None or (
        library is not None and library_matches(entry.library, library)
    )


_HEADER = """\
# torch-abi-audit baseline: known violations the --check gates accept for now.
# Written by `torch-abi-audit --write-baseline`. Give each entry its reason (and an `expires`
# date if it should not outlive one), and remove entries as their violations are fixed: an entry
# that matches nothing any more, or is past its date, fails the gate.
"""


def _toml_string(text: str) -> str:
    # A JSON string is a TOML basic string (the same escapes; TOML takes \\uXXXX too).
    return json.dumps(text, ensure_ascii=False)


def glob_escape(path: str) -> str:
    """A glob that matches exactly ``path`` (its ``*``, ``?`` and ``[`` made literal)."""
    return re.sub(r"([*?\[])", r"[\1]", path)


def _entry_text(entry: AllowEntry) -> str:
    lines = ["[[allow]]"]
    if entry.library is not None:
        lines.append(f"library = {_toml_string(entry.library)}")
    if entry.package is not None:
        lines.append(f"package = {_toml_string(entry.package)}")
    lines.append(f"check = {_toml_string(entry.check)}")
    lines.append(f"reason = {_toml_string(entry.reason)}")
    if entry.expires is not None:
        lines.append(f"expires = {entry.expires.isoformat()}")
    return "\n".join(lines)


def baseline_text(results: Sequence[GateResult], keep_from: Path | None = None) -> str:
    """A baseline covering ``results``: the entries of ``keep_from`` that still allow something
    (with their reasons and dates), and a ``reason = "TODO"`` entry per failed violation (by
    library and code, or package and code). Violations allowed by entries written elsewhere
    (the configuration's ``allow``) stay covered there; ignored ones need no entry."""
    kept: dict[AllowEntry, None] = {}
    new: dict[tuple[str | None, str | None, str], None] = {}
    for result in results:
        if result.status is GateStatus.ALLOWED and result.allowed_by is not None:
            if keep_from is not None and result.allowed_by.source == keep_from:
                kept[result.allowed_by] = None
        elif result.status is GateStatus.FAILED:
            package = None if result.library else result.package
            new[(result.library, package, result.code or result.gate)] = None
    entries = list(kept)
    entries += [
        AllowEntry(
            check=code,
            reason="TODO",
            library=glob_escape(library) if library is not None else None,
            package=package,
        )
        for library, package, code in sorted(new, key=lambda k: (k[0] or "", k[1] or "", k[2]))
    ]
    return _HEADER + "".join(f"\n{_entry_text(entry)}\n" for entry in entries)


def write_baseline(path: Path, text: str) -> None:
    """Write a baseline file; raises :class:`BaselineError` when it cannot be written."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise BaselineError(f"cannot write {path}: {exc.strerror or exc}") from exc
