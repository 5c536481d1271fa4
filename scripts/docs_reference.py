"""Reference pages of the documentation site, generated from the code they describe.

* :func:`cli_reference`: the command line, from the argument parsers themselves (the audit
  command's :func:`torch_abi_audit.cli.build_parser`, then every subcommand's ``build_parser``
  listed in :data:`torch_abi_audit.cli.SUBCOMMANDS`, their own sub-parsers included);
* :func:`json_reference`: the fields of the JSON report, from the JSON Schema the package ships.

``scripts/generate_golden_outputs.py`` writes them into ``docs/generated/`` beside the example
outputs it regenerates, and ``--check`` (run by ``tests/test_golden.py``) fails when they are
stale; the site's pages include them with ``--8<--``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

#: Width of the usage blocks (argparse wraps to the terminal otherwise).
USAGE_WIDTH = 100
_OPTION = re.compile(r"(?<![\w`-])(--?[a-z][a-z0-9-]*)")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_|<>\[\]])")


def _escape(text: str) -> str:
    """``text`` as literal Markdown (help strings are prose, not markup)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


@contextlib.contextmanager
def _columns(width: int) -> Iterator[None]:
    """argparse wraps usage to ``$COLUMNS``: pin it so the page does not depend on a terminal."""
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def _anchor(prefix: str, action: argparse.Action) -> str:
    names = [s for s in action.option_strings if s.startswith("--")] or action.option_strings
    name = names[0].lstrip("-") if names else str(action.metavar or action.dest)
    return prefix + "opt-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _invocation(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """How the argument is written, as ``--help`` shows it: ``-o FILE, --output FILE``,
    ``--check [GATE]``, ``[TARGET ...]``."""
    formatter = parser._get_formatter()
    if action.option_strings:
        return formatter._format_action_invocation(action)
    return formatter._format_args(action, action.dest)


def _help(action: argparse.Action, prog: str) -> str:
    """The help text with argparse's ``%(...)s`` expanded, as ``--help`` prints it."""
    text = action.help or ""
    if "%" not in text:
        return text
    params: dict[str, Any] = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
    params["prog"] = prog
    if params.get("choices") is not None:
        params["choices"] = ", ".join(str(c) for c in params["choices"])
    return text % params


def _linked(text: str, anchors: Mapping[str, str]) -> str:
    """Escaped ``text`` where every option of the same parser links to its row."""
    pieces = []
    last = 0
    for match in _OPTION.finditer(text):
        option = match.group(1)
        pieces.append(_escape(text[last : match.start()]))
        pieces.append(f"[`{option}`](#{anchors[option]})" if option in anchors else f"`{option}`")
        last = match.end()
    pieces.append(_escape(text[last:]))
    return "".join(pieces)


def _usage(parser: argparse.ArgumentParser) -> str:
    with _columns(USAGE_WIDTH):
        return parser.format_usage().strip()


def _exclusive_note(action: argparse.Action, parser: argparse.ArgumentParser) -> str:
    for group in parser._mutually_exclusive_groups:
        if action in group._group_actions:
            others = [
                other.option_strings[-1]
                for other in group._group_actions
                if other is not action and other.option_strings
            ]
            if others:
                return " (not with " + ", ".join(others) + ")"
    return ""


def _subcommand_rows(action: argparse._SubParsersAction[Any], prefix: str) -> list[str]:
    """One row per sub-command of ``action``, linking to its section."""
    helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
    return [
        f"| [`{name}`](#{prefix}{name}) | {_escape(helps.get(name, ''))} |"
        for name in action.choices
    ]


def _parser_section(
    parser: argparse.ArgumentParser, title: str, level: int, prefix: str, anchor: str
) -> list[str]:
    """One parser: its description, usage, an option table per argument group, its epilog, then
    its sub-commands' sections (``anchor`` is its heading's id, ``prefix`` its options')."""
    hashes = "#" * level
    lines = [f"{hashes} {title} {{#{anchor}}}", ""]
    if parser.description:
        lines += [_escape(parser.description), ""]
    lines += ["```text", _usage(parser), "```", ""]
    visible = [a for a in parser._actions if a.help is not argparse.SUPPRESS]
    anchors = {s: _anchor(prefix, a) for a in visible for s in a.option_strings}
    children: list[tuple[str, argparse.ArgumentParser]] = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a in visible]
        rows = []
        for action in actions:
            if isinstance(action, argparse._SubParsersAction):
                children += list(action.choices.items())
                lines += ["**commands**", "", "| command | what it does |", "|---|---|"]
                lines += [*_subcommand_rows(action, f"{anchor}-"), ""]
                continue
            description = _linked(_help(action, parser.prog), anchors)
            description += _linked(_exclusive_note(action, parser), anchors)
            cell = f'<span id="{_anchor(prefix, action)}"></span>`{_invocation(parser, action)}`'
            rows.append(f"| {cell} | {description.strip()} |")
        if rows:
            lines += [f"**{_escape(group.title or 'arguments')}**", ""]
            lines += ["| argument | meaning |", "|---|---|", *rows, ""]
    if parser.epilog:
        lines += ["```text", parser.epilog.strip(), "```", ""]
    for name, child in children:
        lines += _parser_section(
            child, f"`{child.prog}`", level + 1, f"{prefix}{name}-", f"{anchor}-{name}"
        )
    return lines


def _subcommand_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    from torch_abi_audit.cli import SUBCOMMANDS

    parsers = []
    for name, (module_name, _summary) in SUBCOMMANDS.items():
        module = importlib.import_module(f"torch_abi_audit.commands.{module_name}")
        parsers.append((name, module.build_parser()))
    return parsers


def cli_reference() -> str:
    """The command-line reference in Markdown: every command, argument group and option."""
    from torch_abi_audit.cli import SUBCOMMANDS, build_parser

    lines = []
    if SUBCOMMANDS:
        lines += ["| command | what it does |", "|---|---|"]
        lines.append(
            "| [`torch-abi-audit`](#audit) | audit the targets (when no subcommand is named) |"
        )
        lines += [
            f"| [`torch-abi-audit {name}`](#{name}) | {_escape(summary)} |"
            for name, (_module, summary) in SUBCOMMANDS.items()
        ]
        lines.append("")
    lines += _parser_section(build_parser(), "`torch-abi-audit` (audit)", 2, "", "audit")
    for name, parser in _subcommand_parsers():
        lines += _parser_section(parser, f"`{parser.prog}`", 2, f"{name}-", name)
    return "\n".join(lines).rstrip() + "\n"


def _type_of(schema: Mapping[str, Any]) -> str:
    """A short type for a schema node: ``string``, ``array of library``, ``string | null``."""
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " \\| ".join(_type_of(option) for option in schema[key])
    if "enum" in schema:
        return " \\| ".join(
            f"`{value}`" if value is not None else "null" for value in schema["enum"]
        )
    if "const" in schema:
        return f"`{schema['const']}`"
    kind = schema.get("type", "any")
    kinds = kind if isinstance(kind, list) else [kind]
    rendered = []
    for one in kinds:
        if one == "array":
            rendered.append("array of " + _type_of(schema.get("items", {})))
        elif one == "object" and "additionalProperties" in schema:
            values = schema["additionalProperties"]
            inner = _type_of(values) if isinstance(values, dict) else "any"
            rendered.append(f"object of {inner}")
        else:
            rendered.append(str(one))
    return " \\| ".join(rendered)


def _rows(
    properties: Mapping[str, Mapping[str, Any]], required: set[str], prefix: str = ""
) -> list[tuple[str, str, str, str]]:
    """(field, type, always present, meaning) per property; inline objects field by field."""
    rows = []
    for field, node in properties.items():
        description = _escape(str(node.get("description", ""))).replace("\n", " ")
        present = "yes" if field in required else "no"
        rows.append((f"`{prefix}{field}`", _type_of(node), present, description))
        if "properties" in node:
            inner = set(node.get("required", ()))
            rows += _rows(node["properties"], inner, f"{prefix}{field}.")
    return rows


def _object_table(name: str, schema: Mapping[str, Any]) -> list[str]:
    lines = [f"### `{name}` {{#{name.lower()}}}", ""]
    if "description" in schema:
        lines += [_escape(str(schema["description"])), ""]
    properties: Mapping[str, Mapping[str, Any]] = schema.get("properties", {})
    if not properties:
        return [*lines, f"Type: {_type_of(schema)}.", ""]
    rows = _rows(properties, set(schema.get("required", ())))
    if any(row[3] for row in rows):
        lines += ["| field | type | always present | meaning |", "|---|---|---|---|"]
        lines += [f"| {' | '.join(row)} |" for row in rows]
    else:
        lines += ["| field | type | always present |", "|---|---|---|"]
        lines += [f"| {' | '.join(row[:3])} |" for row in rows]
    return [*lines, ""]


def json_reference(schema: Mapping[str, Any], version: str) -> str:
    """Every object of the JSON report (``schema_version`` ``version``), field by field, from
    the shipped JSON Schema."""
    lines = [f"This is `schema_version` **{version}**.", ""]
    if "description" in schema:
        lines += [_escape(str(schema["description"])), ""]
    documents = [_type_of(option) for option in schema.get("oneOf", ())]
    if documents:
        lines += ["A report is one of: " + ", ".join(documents) + ".", ""]
    definitions: Mapping[str, Mapping[str, Any]] = schema.get("$defs", {})
    for name, node in definitions.items():
        lines += _object_table(name, node)
    return "\n".join(lines).rstrip() + "\n"


def all_pages() -> dict[str, str]:
    """File name under ``docs/generated/`` -> content, for every generated reference page."""
    from torch_abi_audit.renderers.json_report import SCHEMA_VERSION, load_schema

    return {
        "cli.md": cli_reference(),
        "json-fields.md": json_reference(load_schema(), SCHEMA_VERSION),
    }


def option_strings() -> Sequence[str]:
    """Every option string of every parser the CLI reference covers (for its test)."""
    from torch_abi_audit.cli import build_parser

    found: list[str] = []
    pending = [build_parser(), *(parser for _, parser in _subcommand_parsers())]
    while pending:
        parser = pending.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending += list(action.choices.values())
            elif action.help is not argparse.SUPPRESS:
                found += action.option_strings
    return found
