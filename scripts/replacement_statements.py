"""Sentences in PyTorch's sources that say what replaces a libtorch name.

Used by ``scripts/generate_replacements.py``. Two readers:

* :func:`docs_statements` reads the stable-ABI notes (``docs/source/notes/libtorch_stable_abi.md``)
  line by line: its migration examples, its component list, its StableIValue table and the
  rules it states for ATen functions, Tensor methods, the C shims of ATen operators and
  ``torch_call_dispatcher``;
* :func:`header_statements` reads the comments of the stable headers (``torch/csrc/stable``,
  ``torch/headeronly``) as :mod:`cxx_headers` found them, each tied to the declaration right
  below it (or, for a block of methods, to every method after it in its class).

A statement keeps both names as PyTorch wrote them; the generator checks them against what the
headers declare and drops (and reports) those that name nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from cxx_headers import Declaration, Header

DOCS_PATH = "docs/source/notes/libtorch_stable_abi.md"
_LIBTORCH = r"(?:at|c10|torch|caffe2)::\w[\w:]*"


@dataclass(frozen=True)
class Source:
    """Where a statement was read: a file, its 1-based line, and the release (``torch 2.15.0``)
    or commit (``pytorch@0431c5b7``) the file is from."""

    file: str
    line: int
    origin: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} ({self.origin})"

    def as_json(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "origin": self.origin}


@dataclass(frozen=True)
class Statement:
    """``stable`` replaces ``libtorch`` (``stable`` ``None``: PyTorch lists ``libtorch`` with no
    stable counterpart). ``operator`` marks a libtorch side that is an ATen operator written
    ``name.overload``. ``relation`` is a short phrase saying how the source puts it."""

    libtorch: str
    stable: str | None
    relation: str
    source: Source
    operator: bool = False


#: The rules the notes state for whole families, by name.
RULES = (
    "aten-function",  # at::pad -> torch::stable::pad
    "tensor-method",  # Tensor.pad -> torch::stable::pad
    "aten-c-shim",  # aoti_torch_aten_* C shims of ATen operators
    "dispatcher",  # torch_call_dispatcher calls any operator
    "similar-macros",  # library.h: STABLE_<X> for TORCH_LIBRARY and the macros like it
)

_DOCS_PAIRS = (
    (re.compile(r"all uses of `([^`]+)` must be replaced with `([^`]+)`"), "replaced with"),
    (re.compile(r"\binstead of [^`]*`([^`]+)`[^`]*\bvia `([^`]+)`"), "instead of"),
    (re.compile(r"`([^`]+)` enum lives here as `([^`]+)`"), "lives in torch/headeronly as"),
    (
        re.compile(r"libtorch-independent version of `([^`]+)` that is `([^`]+)`"),
        "libtorch-independent version",
    ),
)
_DOCS_PROVIDES = re.compile(
    r"^- torch/csrc/stable/[\w.]+: Provides ([\w:]+), a stable version of ([\w:]+)\."
)
# The family rules are found by the names and the Markdown shape the notes use, not by their
# wording: a list item giving an ATen function's (or a Tensor method's) ``torch::stable``
# namesake, the list item for ``c_shim_aten.h``, the item for ``torch/csrc/stable/library.h``
# naming ``TORCH_LIBRARY``; the dispatcher's rule is the text under the numbered item
# `` `torch_call_dispatcher` `` (see :func:`_dispatcher_item`).
_DOCS_RULES = {
    "aten-function": re.compile(r"^\s*- .*`at::([a-z_]\w*)`.*`torch::stable::\1`"),
    "tensor-method": re.compile(r"^\s*- .*`Tensor\.(\w+)`.*`torch::stable::\1`"),
    "aten-c-shim": re.compile(r"^\s*- .*\bc_shim_aten\.h\b"),
    "similar-macros": re.compile(r"^\s*- torch/csrc/stable/library\.h:.*\bTORCH_LIBRARY\b"),
}
_DISPATCHER_ITEM = re.compile(r"^\s*\d+\.\s+`(?:aoti_)?torch_call_dispatcher`\s*$")


def docs_statements(text: str, origin: str) -> tuple[list[Statement], dict[str, Source]]:
    """The statements and family rules of the stable-ABI notes; ``origin`` names the commit."""
    statements: list[Statement] = []
    rules: dict[str, Source] = {}
    in_table = False
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        source = Source(DOCS_PATH, number, origin)
        for pattern, relation in _DOCS_PAIRS:
            for match in pattern.finditer(line):
                statements.append(Statement(match.group(1), match.group(2), relation, source))
        provides = _DOCS_PROVIDES.search(line)
        if provides:
            statements.append(
                Statement(provides.group(2), provides.group(1), "stable version of", source)
            )
        for rule, pattern in _DOCS_RULES.items():
            if pattern.search(line):
                rules.setdefault(rule, source)
        if "dispatcher" not in rules and _DISPATCHER_ITEM.match(line):
            rules["dispatcher"] = _dispatcher_item(lines, number, origin)
        if "type in custom extension" in line and line.startswith("|"):
            in_table = True
            continue
        if in_table:
            if not line.startswith("|"):
                in_table = False
                continue
            statements.extend(_table_row(line, source))
    return statements, rules


def _dispatcher_item(lines: list[str], number: int, origin: str) -> Source:
    """The first text line under the numbered item `` `torch_call_dispatcher` `` (line
    ``number``, 1-based): where the notes say what it is for; the item itself if none."""
    for below in range(number, len(lines)):
        if lines[below].strip():
            return Source(DOCS_PATH, below + 1, origin)
    return Source(DOCS_PATH, number, origin)


def _table_row(line: str, source: Source) -> Iterator[Statement]:
    """A StableIValue table row: the libtorch type (third column) and the extension's type
    (first column; ``?`` documents that there is none yet)."""
    cells = [cell.strip().replace("\\<", "<") for cell in line.strip().strip("|").split("|")]
    if len(cells) < 4 or set(cells[0]) <= {"-", " "}:
        return
    extension, libtorch = cells[0], cells[2]
    stable_names = [n for n in extension.split("/") if n.startswith(("torch::", "std::"))]
    for written in libtorch.split("/"):
        name = re.sub(r"<.*", "", written).strip()
        if not re.fullmatch(r"(?:\w+::)+\w+", name) or name.startswith("std::"):
            continue
        if extension == "?":
            yield Statement(name, None, "no stable type in the StableIValue table", source)
        elif stable_names and name not in stable_names:
            for stable in stable_names:
                yield Statement(name, re.sub(r"<.*", "", stable), "StableIValue table", source)


# -- header comments --------------------------------------------------------------------------

_COMMENT_PAIRS = (
    # (pattern, relation, group of the libtorch name, group of the stable name or None when the
    # stable name is the declaration the comment documents)
    (
        re.compile(rf"\b[Ss]table (?:ABI )?version of `?({_LIBTORCH})`?"),
        "stable version of",
        1,
        None,
    ),
    (re.compile(rf"\bstable interface to `?({_LIBTORCH})`?"), "stable interface to", 1, None),
    (re.compile(rf"\bapproximate copy of `?({_LIBTORCH})`?"), "approximate copy of", 1, None),
    (
        re.compile(rf"\b[Ss]table corollary to `?({_LIBTORCH})(?![\w:])`?(?!\s+method)"),
        "stable corollary to",
        1,
        None,
    ),
    (
        re.compile(rf"\b[Mm]odeled after `?({_LIBTORCH}|[A-Z]\w+)\b`?"),
        "modeled after",
        1,
        None,
    ),
    (
        re.compile(rf"\b(\w+) is (?:the )?same as (?:the )?`?({_LIBTORCH}|[A-Z]\w+)\b"),
        "same as",
        2,
        1,
    ),
    (
        re.compile(rf"`?([\w:]+)`? instead of `?({_LIBTORCH}|[A-Z][A-Z0-9_]+|[A-Z]\w*)\b`?"),
        "instead of",
        2,
        1,
    ),
)
_COROLLARY_METHOD = re.compile(rf"\b[Ss]table corollary to `?({_LIBTORCH})`? method m\.(\w+)\(")
_OPERATOR_COMMENT = re.compile(r"\b[Ss]table versions? of the ([\w.]+) op\b")
_OPERATOR_NAME = re.compile(r"\bthe (?:existing )?([\w.]+) op\b")
_REGION = re.compile(r"counterparts in (\w+)\.h|mirror the methods defined in\s*(\w+)")
_REGION_END = re.compile(r"\bEND of\b")


def header_statements(headers: dict[str, Header], origin: str) -> list[Statement]:
    """Statements in the comments of the stable headers (``headers``: path -> header)."""
    statements: list[Statement] = []
    for path, header in sorted(headers.items()):
        file = f"torch/include/{path}"
        documented = _documented_names(header)
        for block in header.comment_blocks():
            target = documented.get(block[-1][0] + 1)
            for number, text in _sentences(block):
                source = Source(file, number, origin)
                statements.extend(_comment_statements(text, target, source))
        statements.extend(_region_statements(header, file, origin))
    return statements


def _documented_names(header: Header) -> dict[int, Declaration]:
    """Line -> the declaration (or macro, as a declaration of kind ``macro``) starting there."""
    found: dict[int, Declaration] = {}
    for macro in header.macros:
        found.setdefault(macro.line, Declaration(macro.name, "macro", macro.line))
    for declaration in header.declarations:
        found.setdefault(declaration.line, declaration)
    return found


def _sentences(block: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """A comment block as (line a sentence starts on, sentence text): lines are joined so a
    sentence broken over several comment lines is read whole."""
    joined = ""
    starts: list[tuple[int, int]] = []
    for number, text in block:
        starts.append((len(joined), number))
        joined += text.strip() + " "
    sentences = []
    # A sentence ends at "." or ";" followed by a space (so "e.g." and "c10::str()." do not).
    for match in re.finditer(r"(?:[^.;]|[.;](?!\s|$))+(?:[.;]|$)", joined):
        if not match.group(0).strip():
            continue
        start_line = max(n for offset, n in starts if offset <= match.start())
        sentences.append((start_line, match.group(0).strip()))
    return sentences


def _comment_statements(
    text: str, target: Declaration | None, source: Source
) -> Iterator[Statement]:
    """The statements of one sentence; ``target`` is what the comment documents, if anything
    (a sentence calling it the stable version of ``c10::Device`` names only the libtorch side)."""
    if _OPERATOR_COMMENT.search(text):
        # A sentence may name several operators (the stable op and the existing ``name.overload``
        # it matches): every one is taken; the generator keeps those that exist.
        if target is not None and target.kind == "function":
            for operator in _OPERATOR_NAME.findall(text):
                yield Statement(
                    operator, target.qualified, "stable version of the operator", source, True
                )
        return
    for match in _COROLLARY_METHOD.finditer(text):
        if target is not None:
            method = f"{match.group(1)}::{match.group(2)}"
            yield Statement(method, target.qualified, "stable corollary to", source)
    for pattern, relation, libtorch_group, stable_group in _COMMENT_PAIRS:
        for match in pattern.finditer(text):
            if stable_group is None and target is None:
                continue
            stable = match.group(stable_group) if stable_group else target.qualified  # type: ignore[union-attr]
            # "X is same as Y but with ...": ranks after a plain equivalence.
            qualified = " but " in text[match.end() :]
            yield Statement(
                match.group(libtorch_group),
                stable,
                f"{relation}, with differences" if qualified else relation,
                source,
            )


def _region_statements(header: Header, file: str, origin: str) -> Iterator[Statement]:
    """A comment opening a block of methods that mirror a libtorch class's (it names their
    ``counterparts in TensorBase.h``): one statement per method declared after it in the same
    class, up to an ``END of`` comment."""
    for line, text in sorted(header.comments.items()):
        number = line
        region = _REGION.search(text)
        if region is None:
            previous = header.comments.get(line - 1, "")
            if _REGION.search(previous + " " + text) is None or _REGION.search(previous):
                continue
            region = _REGION.search(previous + " " + text)
            number = line - 1
        assert region is not None
        libtorch_class = region.group(1) or region.group(2)
        end = min(
            (n for n, t in header.comments.items() if n > number and _REGION_END.search(t)),
            default=10**9,
        )
        after = [d for d in header.declarations if number < d.line < end]
        classes = [d for d in header.declarations if d.kind == "class" and d.line < number]
        owner = next(
            (
                c.qualified
                for c in reversed(classes)
                if any(d.qualified.startswith(c.qualified + "::") for d in after)
            ),
            None,
        )
        if owner is None:
            # Definitions outside the class ("Tensor::mutable_data_ptr"): the class is named.
            owner = next(
                (d.qualified.rsplit("::", 1)[0] for d in after if d.kind == "function"), None
            )
        if owner is None:
            continue
        source = Source(file, number, origin)
        methods = {
            d.name
            for d in after
            if d.kind == "function"
            and d.qualified.rsplit("::", 1)[0].endswith(owner.rsplit("::", 1)[-1])
            and not d.name.startswith(("operator", "~"))
            and d.name != owner.rsplit("::", 1)[-1]
        }
        for method in sorted(methods):
            yield Statement(
                f"{libtorch_class}::{method}",
                f"{owner}::{method}",
                f"counterpart in {libtorch_class}",
                source,
            )
