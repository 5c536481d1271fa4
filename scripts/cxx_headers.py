"""A small reader of C++ headers for the replacements generator: declarations and macros.

``scripts/generate_replacements.py`` reads PyTorch's headers (as a torch wheel ships them under
``torch/include``) to learn what the stable surface declares, what libtorch declares, which
libtorch names each macro expands to, and which comments sit above which declaration. It needs
qualified names, not types, so this is not a C++ parser: it strips comments and literals, walks
the braces, and classifies what precedes each ``{`` or ``;`` at namespace and class level
(``namespace``, ``class``/``struct``/``union``/``enum``, a function, a ``using``); function
bodies and initialisers are skipped whole. Preprocessor conditionals keep their first branch
only (``#else`` / ``#elif`` branches are skipped, so both variants of a declaration are not
read twice), and each declaration records the ``TORCH_FEATURE_VERSION >= TORCH_VERSION_X_Y_Z``
guard around it. ``HIDDEN_NAMESPACE_BEGIN(a, b)`` / ``_END`` (torch/headeronly/macros/Macros.h)
open and close namespaces as ``namespace a::b {`` would.

Everything here is a pure function of header text; nothing is compiled or executed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

#: Identifiers that are macros decorating a declaration, not its name.
_DECORATION = re.compile(r"^(?:[A-Z][A-Z0-9_]*|alignas|__attribute__|__declspec|decltype)$")
_KEYWORDS = frozenset(
    [
        "inline",
        "static",
        "constexpr",
        "consteval",
        "constinit",
        "virtual",
        "explicit",
        "extern",
        "friend",
        "const",
        "volatile",
        "typename",
        "template",
        "unsigned",
        "signed",
        "long",
        "short",
        "int",
        "char",
        "bool",
        "void",
        "double",
        "float",
        "auto",
        "struct",
        "class",
        "union",
        "enum",
        "mutable",
        "noexcept",
        "override",
        "final",
        "return",
        "operator",
    ]
)
_GUARD = re.compile(r"TORCH_FEATURE_VERSION\s*>=\s*TORCH_VERSION_(\d+)_(\d+)_(\d+)")
_DEFINE = re.compile(r"#\s*define\s+([A-Za-z_]\w*)(\([^)]*\))?")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_HIDDEN_NAMESPACE = re.compile(r"\bHIDDEN_NAMESPACE_(BEGIN|END)\s*\(([^)]*)\)")


@dataclass(frozen=True)
class Declaration:
    """A name a header declares: ``qualified`` (``torch::stable::Tensor::sizes``), its
    ``kind`` (namespace, class, enum, function, alias), the 1-based ``line`` its declaration
    starts on, and the ``guard`` version (``"2.10.0"``) around it, if any. ``out_of_line``: a
    member defined outside its class (``Symbol Symbol::attr(...) {...}``), declared elsewhere."""

    qualified: str
    kind: str
    line: int
    guard: str | None = None
    out_of_line: bool = False

    @property
    def name(self) -> str:
        """The last component."""
        return self.qualified.rsplit("::", 1)[-1]


@dataclass(frozen=True)
class Macro:
    """A ``#define``: its name, parameters (``None`` for an object-like macro), body (line
    continuations joined) and the 1-based line it starts on."""

    name: str
    parameters: tuple[str, ...] | None
    body: str
    line: int


@dataclass
class Header:
    """What one header declares, defines and says in comments."""

    path: str
    declarations: list[Declaration] = field(default_factory=list)
    macros: list[Macro] = field(default_factory=list)
    #: 1-based line -> the comment text on that line (without ``//`` or ``*`` decoration).
    comments: dict[int, str] = field(default_factory=dict)

    def comment_above(self, line: int) -> list[tuple[int, str]]:
        """The comment block that ends on the line right above ``line`` (lines in order)."""
        block: list[tuple[int, str]] = []
        current = line - 1
        while current >= 1 and current in self.comments:
            block.append((current, self.comments[current]))
            current -= 1
        return block[::-1]

    def comment_blocks(self) -> list[list[tuple[int, str]]]:
        """Every run of comment lines on consecutive lines, in order."""
        blocks: list[list[tuple[int, str]]] = []
        for number in sorted(self.comments):
            if blocks and blocks[-1][-1][0] == number - 1:
                blocks[-1].append((number, self.comments[number]))
            else:
                blocks.append([(number, self.comments[number])])
        return blocks


def _blank(text: str, start: int, end: int) -> str:
    """``text[start:end]`` with everything but newlines turned into spaces, and a backslash
    ending a line kept: the line splice (``\\`` newline) happens before comments are removed,
    so a comment inside a multi-line ``#define`` does not end the macro."""
    return _BLANKED.sub(lambda m: m.group(0) if m.group("splice") else " ", text[start:end])


_BLANKED = re.compile(r"(?P<splice>\\(?=\n))|[^\n]")


def strip_comments_and_literals(text: str) -> tuple[str, dict[int, str]]:
    """``text`` with comments and string/char literal contents blanked (line numbers kept),
    and the comments found, by 1-based line."""
    out: list[str] = []
    comments: dict[int, str] = {}
    position = 0
    line = 1
    pattern = re.compile(
        r'//[^\n]*|/\*.*?\*/|R"(\w*)\(.*?\)\1"|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S
    )
    for match in pattern.finditer(text):
        out.append(text[position : match.start()])
        line += text.count("\n", position, match.start())
        token = match.group(0)
        if token.startswith(("//", "/*")):
            for offset, part in enumerate(token.split("\n")):
                cleaned = re.sub(r"^\s*(?:/\*+|\*+/?|/{2,}!?<?)?\s?", "", part)
                cleaned = re.sub(r"\s*\*+/\s*$", "", cleaned).rstrip()
                comments[line + offset] = cleaned
            out.append(_blank(text, match.start(), match.end()))
        else:
            quote = token[0] if token[0] in "\"'" else '"'
            out.append(quote + _blank(text, match.start() + 1, match.end() - 1) + quote)
        line += token.count("\n")
        position = match.end()
    out.append(text[position:])
    return "".join(out), comments


def _join_continuations(lines: list[str], index: int) -> tuple[str, int]:
    """The logical preprocessor line starting at ``lines[index]`` and the index after it."""
    parts = []
    while index < len(lines):
        current = lines[index]
        index += 1
        if current.rstrip().endswith("\\"):
            parts.append(current.rstrip()[:-1])
            continue
        parts.append(current)
        break
    return " ".join(parts), index


def _version(match: re.Match[str]) -> str:
    return ".".join(str(int(part)) for part in match.groups())


def preprocess(code: str) -> tuple[str, list[Macro], dict[int, str]]:
    """Blank every preprocessor line and every ``#else``/``#elif`` branch of ``code`` (already
    stripped of comments); returns the code, the macros defined (in every branch), and the
    ``TORCH_FEATURE_VERSION`` guard in force on each line that has one."""
    lines = code.split("\n")
    kept = list(lines)
    macros: list[Macro] = []
    guards: dict[int, str] = {}
    # One entry per open #if: (skipping this branch?, guard version of this branch).
    stack: list[tuple[bool, str | None]] = []
    index = 0
    while index < len(lines):
        stripped = lines[index].lstrip()
        if not stripped.startswith("#"):
            skipping = any(skip for skip, _ in stack)
            if skipping:
                kept[index] = ""
            else:
                versions = [g for _, g in stack if g]
                if versions:
                    guards[index + 1] = max(versions, key=lambda v: tuple(map(int, v.split("."))))
            index += 1
            continue
        start = index
        logical, index = _join_continuations(lines, index)
        for blank in range(start, index):
            kept[blank] = ""
        directive = logical.lstrip()[1:].lstrip()
        if directive.startswith("if"):
            guard = _GUARD.search(directive)
            stack.append((False, _version(guard) if guard else None))
        elif directive.startswith(("elif", "else")):
            if stack:
                stack[-1] = (True, None)
        elif directive.startswith("endif"):
            if stack:
                stack.pop()
        elif directive.startswith("undef"):
            undefined = re.match(r"undef\s+(\w+)", directive)
            if undefined:
                macros = [m for m in macros if m.name != undefined.group(1)]
        elif directive.startswith("define"):
            define = _DEFINE.match(logical.lstrip())
            if define:
                params = define.group(2)
                parameters = (
                    tuple(p.strip() for p in params[1:-1].split(",") if p.strip())
                    if params is not None
                    else None
                )
                macros.append(
                    Macro(define.group(1), parameters, logical[define.end() :].strip(), start + 1)
                )
    code = "\n".join(kept)
    code = _HIDDEN_NAMESPACE.sub(_namespace_macro, code)
    return code, macros, guards


def _namespace_macro(match: re.Match[str]) -> str:
    """``HIDDEN_NAMESPACE_BEGIN(a, b)`` as ``namespace a::b {``; ``_END(a, b)`` as ``}``."""
    if match.group(1) == "END":
        return "}"
    names = [n.strip() for n in match.group(2).split(",") if n.strip()]
    return f"namespace {'::'.join(names)} {{"


class _Scanner:
    """Walks the braces of preprocessed code, recording declarations by scope."""

    def __init__(self, code: str, guards: dict[int, str]) -> None:
        self.code = code
        self.guards = guards
        self.found: list[Declaration] = []
        # Line starts, to turn offsets into 1-based lines.
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", code)]

    def line_of(self, offset: int) -> int:
        low, high = 0, len(self.line_starts)
        while low + 1 < high:
            middle = (low + high) // 2
            if self.line_starts[middle] <= offset:
                low = middle
            else:
                high = middle
        return low + 1

    def skip_braces(self, position: int) -> int:
        """From just after an opening ``{``: the position just after its matching ``}``."""
        depth = 1
        code = self.code
        while depth and position < len(code):
            char = code[position]
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
            position += 1
        return position

    def record(self, scope: list[str], name: str, kind: str, offset: int) -> None:
        line = self.line_of(offset)
        qualified = "::".join([*scope, name]) if name else "::".join(scope)
        outside = kind == "function" and "::" in name.removeprefix("operator")
        self.found.append(Declaration(qualified, kind, line, self.guards.get(line), outside))

    def scan(self, position: int, end: int, scope: list[str]) -> int:
        """Scan declarations from ``position`` up to ``end`` or the ``}`` closing this scope;
        returns the position after it."""
        code = self.code
        head_start = position
        parens = 0
        while position < end:
            char = code[position]
            if char == "(":
                parens += 1
            elif char == ")":
                parens = max(parens - 1, 0)
            elif char == "{" and parens:
                position = self.skip_braces(position + 1)
                continue
            elif char == "{":
                head = code[head_start:position]
                if _brace_initialiser(head):
                    position = self.skip_braces(position + 1)
                    continue
                position = self.open_scope(head, head_start, position + 1, scope)
                head_start = position
                continue
            elif char == "}":
                return position + 1
            elif char == ";" and not parens:
                self.statement(code[head_start:position], head_start, scope)
                head_start = position + 1
            position += 1
        return position

    def open_scope(self, head: str, head_start: int, body: int, scope: list[str]) -> int:
        """Classify the ``head`` before a ``{`` at ``body - 1``; returns the position after
        the matching ``}``."""
        offset = head_start + _declaration_start(head)
        text = _declaration_text(head)
        namespace = re.fullmatch(r"(?:inline\s+)?namespace\s*([\w:]*)\s*(?:\[\[.*\]\])?", text)
        if namespace is not None:
            names = [n for n in namespace.group(1).split("::") if n] or ["(anonymous namespace)"]
            for depth in range(len(names)):
                self.record([*scope, *names[:depth]], names[depth], "namespace", offset)
            return self.scan(body, len(self.code), [*scope, *names])
        if re.fullmatch(r'extern\s*"\s*"', text.strip()):
            return self.scan(body, len(self.code), scope)
        tag = re.match(
            r"(?:typedef\s+)?(class|struct|union|enum(?:\s+class|\s+struct)?)\b(.*)", text
        )
        if tag is not None and "(" not in tag.group(2).split(":")[0].replace("alignas(", ""):
            name = _tag_name(tag.group(2))
            if name:
                kind = "enum" if tag.group(1).startswith("enum") else "class"
                self.record(scope, name, kind, offset)
                if kind == "class":
                    return self.scan(body, len(self.code), [*scope, name])
            return self.skip_braces(body)
        function = _function_name(text)
        if function:
            self.record(scope, function, "function", offset)
        return self.skip_braces(body)

    def statement(self, head: str, head_start: int, scope: list[str]) -> None:
        offset = head_start + _declaration_start(head)
        text = _declaration_text(head)
        if not text:
            return
        alias = re.match(r"using\s+([A-Za-z_]\w*)\s*=", text)
        if alias:
            self.record(scope, alias.group(1), "alias", offset)
            return
        using = re.match(r"using\s+(?:typename\s+)?(?:::)?([\w:]+::)?([A-Za-z_]\w*)$", text)
        if using and not text.startswith("using namespace"):
            self.record(scope, using.group(2), "alias", offset)
            return
        if text.startswith(("typedef", "friend", "static_assert", "using", "template")):
            return
        if re.match(r"(class|struct|union|enum)\b[^(]*$", text):
            return  # a forward declaration
        function = _function_name(text)
        if function:
            self.record(scope, function, "function", offset)
            return
        variable = re.match(
            r"(?:[\w:<>,*&\s]+?)\s[*&]*([A-Za-z_]\w*)\s*(?:\[[^\]]*\]\s*)?(?:=.*)?$", text
        )
        if variable and not text.startswith(("return", "case", "goto")):
            self.record(scope, variable.group(1), "variable", offset)


_ACCESS = re.compile(r"\s*(?:(?:public|private|protected)\s*:(?!:)\s*)*")


def _declaration_start(head: str) -> int:
    """Where the declaration in ``head`` starts: after blanks and access specifiers."""
    match = _ACCESS.match(head)
    return match.end() if match else 0


def _declaration_text(head: str) -> str:
    """``head`` on one line, without access specifiers and a leading template list."""
    text = " ".join(head.split())
    text = re.sub(r"^(?:(?:public|private|protected)\s*:(?!:)\s*)+", "", text)
    return _without_templates(text)


def _without_templates(text: str) -> str:
    """``text`` without a leading ``template <...>`` parameter list (nested ones too)."""
    while text.startswith("template"):
        start = text.find("<")
        end = _matching(text, start, "<", ">") if start >= 0 else -1
        if end < 0:
            return text
        text = text[end + 1 :].lstrip()
    return text


def _tag_name(rest: str) -> str | None:
    """The name in ``[attributes] Name [final] [: bases]`` after ``class``/``struct``."""
    rest = re.sub(r"\[\[.*?\]\]|alignas\s*\([^)]*\)|__attribute__\s*\(\(.*?\)\)", " ", rest)
    before_bases = re.split(r"(?<!:):(?!:)", rest, maxsplit=1)[0]
    before_bases = re.sub(r"<.*>", "", before_bases)  # a specialisation's arguments
    words = [w for w in _IDENTIFIER.findall(before_bases) if w not in ("final",)]
    words = [w for w in words if not re.fullmatch(r"[A-Z][A-Z0-9_]*_API|C10_\w+|TORCH_\w+", w)]
    return words[-1] if words else None


def _brace_initialiser(head: str) -> bool:
    """True when the ``{`` after ``head`` initialises something (``x{1}``, ``= {..}``, a
    member in a constructor's initialiser list) rather than opening a scope or a body."""
    text = " ".join(head.split())
    if not text:
        return False
    depth = 0
    for char in _without_templates(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "=" and depth == 0 and "operator" not in text:
            return True
    # In a constructor's initialiser list "Foo(..) : a_{x}, b_(y) {": the member's "{"
    # follows an identifier; the body's follows ")" or "}".
    stripped = text.rstrip()
    if re.search(r"\)\s*(?:const\s*)?(?:noexcept\s*)?:(?!:)", stripped):
        return bool(re.search(r"[\w>]$", stripped)) and not stripped.endswith(
            ("const", "override", "final", "noexcept")
        )
    return False


def _function_name(text: str) -> str | None:
    """The name of the function ``text`` declares or defines (``None`` if it is none)."""
    # Step over decorations with arguments (macros, alignas, decltype, attributes).
    cleaned = re.sub(r"\[\[.*?\]\]", " ", text)
    position = 0
    while True:
        paren = cleaned.find("(", position)
        if paren < 0:
            return None
        before = cleaned[:paren].rstrip()
        operator = re.search(r"\boperator\s*(\(\)|[^\w\s(]+|\s+\w[\w:<> ]*)$", before)
        if operator and not before.endswith("operator()"):
            return "operator" + operator.group(1).strip()
        if before.endswith("operator"):
            return "operator()"
        name = re.search(r"(~?[A-Za-z_]\w*)$", before)
        if name is None:
            return None
        word = name.group(1)
        # An out-of-line definition names its class: ``Symbol Symbol::attr(...)``.
        owner = re.search(r"((?:[A-Za-z_]\w*::)+)$", before[: name.start()])
        if _DECORATION.match(word) and not re.search(r"[\w>*&]\s+" + re.escape(word) + "$", before):
            position = _matching(cleaned, paren) + 1
            if position <= 0:
                return None
            continue
        if "=" in before.replace("==", "") or word in _KEYWORDS:
            return None
        return owner.group(1).lstrip(":") + word if owner else word


def _matching(text: str, start: int, opening: str = "(", closing: str = ")") -> int:
    """The index of the ``closing`` that balances the ``opening`` at ``start``; -1 if none."""
    depth = 0
    for index in range(start, len(text)):
        if text[index] == opening:
            depth += 1
        elif text[index] == closing:
            depth -= 1
            if depth == 0:
                return index
    return -1


def read_header(path: str, text: str) -> Header:
    """Read one header's declarations, macros and comments."""
    code, comments = strip_comments_and_literals(text)
    code, macros, guards = preprocess(code)
    scanner = _Scanner(code, guards)
    position = 0
    while position < len(code):
        # A stray "}" at file level (unbalanced branches) closes nothing: keep going.
        position = scanner.scan(position, len(code), [])
    return Header(path, scanner.found, macros, comments)


_QUALIFIED = re.compile(r"(?<![\w:])(?:::)?((?:at|c10|torch|caffe2)(?:::~?[A-Za-z_]\w*)+)")
# What follows a name that code calls, constructs or declares an object of: "(", "{",
# template arguments, or a declarator ("Type name(", "Type& name").
_USED = re.compile(r"\s*(?:\(|\{|<|[&*]*\s*[A-Za-z_]\w*(?:\s*##\s*\w+)*\s*[(;{=,)])")


def qualified_names(text: str, *, used_only: bool = False) -> Iterator[str]:
    """Every ``at::``/``c10::``/``torch::``/``caffe2::`` qualified name in ``text``, as
    written (``::c10::detail::torchCheckFail`` -> ``c10::detail::torchCheckFail``).

    ``used_only`` keeps the names the code calls, constructs, or declares an object or a
    parameter of — not those merely listed as arguments (``_(at::qint8, QInt8)``)."""
    for match in _QUALIFIED.finditer(text):
        if used_only and not _USED.match(text, match.end()):
            continue
        yield match.group(1)
