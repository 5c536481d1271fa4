"""The scope of the entity an MSVC-decorated symbol names.

The Windows counterpart of :mod:`torch_abi_audit.rules.itanium`: the torch rules judge a C++
symbol by the entity it names (``c10::detail::torchCheckFail``), not by the types in its
signature, and a Microsoft C++ decorated name keeps the two apart just as an Itanium one does.
This module reads the qualified name of the entity — enough to tell ``c10::Half`` from
``c10::IValue`` or ``torch::stable`` from ``torch::jit`` — and skips everything else.

MSVC writes a qualified name innermost first (``?torchCheckFail@detail@c10@@YAX...`` is
``c10::detail::torchCheckFail``), so the whole name is read before its leading components are
known. The common case — a plain run of ``name@`` pieces, as most imports from ``c10.dll`` and
``torch_cpu.dll`` are — is read with :meth:`str.find` and :meth:`str.split`; the rest goes
through :class:`_Parser`, which handles:

* operators and special members (``??6c10@@...`` is ``c10::operator<<``, ``??0IValue@c10@@...``
  a constructor, ``??_7Foo@c10@@6B@`` a vftable, ``??_R0?AVFoo@c10@@@8`` RTTI);
* templates (``?$Foo@H@``): the name is kept, the argument list skipped, which needs a small
  skipper of the type grammar (tag types, pointers, arrays, function types, non-type arguments);
* name back-references (``0``-``9``: the first ten distinct names of the qualified name, in
  order; a template's argument list has a table of its own and the whole template name is one
  entry of the enclosing table);
* anonymous namespaces (``?A0x1234abcd@``) and local names (``?1??singleton@Dispatcher@c10@@...``:
  a name declared inside a function, owned by that function, as in the Itanium reader; the
  ``?$TSS0@`` guard of a local static is a plain name there, not a template).

Where the parser meets something it cannot step over it gives up with ``()``, which is always
safe: the caller then falls back to checks on the demangled text.

Grammar: there is no published specification; this follows what LLVM's demangler
(``llvm/lib/Demangle/MicrosoftDemangle.cpp``) and Wine's ``undname`` accept.
"""

from __future__ import annotations

from torch_abi_audit.rules.itanium import OPERATOR

# As in the Itanium reader: enough for every rule, and what a caller compares against.
_MAX_COMPONENTS = 4
_ANONYMOUS = "(anonymous namespace)"
_DIGITS = "0123456789"
# A name back-reference table holds at most ten names (MSVC has ten digits for them).
_MAX_NAMES = 10

# Operator codes after "?" (basic), "?_" (under) and "?__" (double under). A code naming an
# operator ends the path with OPERATOR; the others (constructors, destructors, vftables, RTTI,
# compiler-generated helpers) name something of the class, which is then the path.
_BASIC_CODES = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_UNDER_OPERATORS = frozenset("0123456UV")  # op=s (/= %= >>= <<= &= |= ^=), new[], delete[]
_DOUBLE_UNDER_OPERATORS = frozenset("KLM")  # operator "" _x, co_await, <=>

# The type grammar, as far as skipping a type needs it.
_PRIMITIVES = frozenset("XDCEFGHIJKMNO")  # void, char, signed/unsigned char, ..., long double
_UNDER_PRIMITIVES = frozenset("DEFGHIJKLMNWQSUPT")  # __int8 ... bool, wchar_t, char8/16/32_t
_POINTERS = frozenset("APQRSB")  # &, *, * const, * volatile, * const volatile, volatile &
_TAGS = frozenset("TUV")  # union, struct, class (enum is W<digit>)
_QUALIFIERS = frozenset("ABCDQRST")  # cv (A-D), member + cv (Q-T)
_MEMBER_QUALIFIERS = frozenset("QRST")
_CALLING_CONVENTIONS = frozenset("ABCDEFGHIJMNOPQSW")
_REBASED_HEX = str.maketrans("ABCDEFGHIJKLMNOP", "0123456789abcdef")
# Function classes (access and kind of a function) without a ``this`` pointer: static or global.
_NO_THIS = frozenset("CDKLSTYZ")
_THIS_ADJUSTING = frozenset("GHOPWX")  # thunks adjusting ``this`` by a static offset


def entity_scope(decorated: str) -> tuple[str, ...]:
    """The leading qualified-name components of the entity ``decorated`` names, outermost first.

    ``?torchCheckFail@detail@c10@@YAXPEBD0I0@Z`` -> ``("c10", "detail", "torchCheckFail")``;
    ``??0IValue@c10@@QEAA@_N@Z`` (a constructor) -> ``("c10", "IValue")``; ``??_7Foo@c10@@6B@``
    (a vftable) -> ``("c10", "Foo")``; ``?call@?$Foo@H@c10@@...`` -> ``("c10", "Foo", "call")``
    (template arguments are not part of a component). An operator ends the path with
    :data:`OPERATOR` (``??6c10@@...`` -> ``("c10", "operator")``); a name local to a function
    yields the function's path. At most four components. Returns ``()`` for names that are not
    MSVC-decorated (no leading ``?``) or whose scope cannot be read; never raises.
    """
    if not decorated.startswith("?"):
        return ()
    scope = _plain_scope(decorated)
    if scope is not None:
        return scope
    parser = _Parser(decorated)
    try:
        path = parser.symbol()
        if parser.pos >= len(decorated):
            return ()  # truncated: the name is not followed by any encoding
    except (IndexError, ValueError, RecursionError):
        return ()
    return tuple(path[:_MAX_COMPONENTS])


def _plain_scope(text: str) -> tuple[str, ...] | None:
    """The fast path: ``?name@ns@ns@@`` (or a constructor, destructor or operator of such a
    name), made only of simple names. Returns ``None`` for anything else, for :class:`_Parser`.
    """
    start = 1
    operator = False
    if text[1:2] == "?":
        code = text[2:3]
        if code not in _BASIC_CODES:
            return None  # special name (??_7, ??_R0, ...), template function (??$) or malformed
        start = 3
        operator = code not in "01"  # ?0 constructor, ?1 destructor: the class is the path
    end = text.find("@@", start)
    if end <= start or end + 2 >= len(text):
        return None
    chain = text[start:end]
    if "?" in chain:
        return None  # templates, anonymous namespaces, local names
    pieces = chain.split("@")
    for piece in pieces:
        if not piece or piece[0] in _DIGITS:
            return None  # a back-reference
    pieces.reverse()
    if operator:
        pieces.append(OPERATOR)
    return tuple(pieces[:_MAX_COMPONENTS])


class _Parser:
    """A reader of one decorated name. Malformed input raises ``IndexError`` or ``ValueError``.

    The methods reading the entity's own name keep the name back-reference table; the
    ``skip_*`` methods only step over the rest (template arguments, types, nested symbols), where
    a back-reference is a single character whose meaning does not matter.
    """

    __slots__ = ("keys", "names", "pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 1
        # The back-reference table: what each entry stands for, and the text it was memorized
        # from (MSVC memorizes each distinct name once).
        self.names: list[str] = []
        self.keys: list[str] = []

    # -- the entity's name ------------------------------------------------------------------------

    def symbol(self) -> list[str]:
        """The path of the symbol whose leading ``?`` is just before :attr:`pos`."""
        text = self.text
        pos = self.pos
        if text[pos] != "?":
            return self.name_path(None)  # a plain name: the first piece of the chain
        kind = text[pos + 1]
        if kind == "$":  # ??$name@args@...: a function template
            self.pos = pos + 2
            return self.name_path(self.template_leaf())
        if kind == "_":
            code = text[pos + 2]
            if code == "R":  # RTTI: ??_R0 <type>, ??_R1 <4 numbers> <scope>, ??_R2-4 <scope>
                table = text[pos + 3]
                self.pos = pos + 4
                if table == "0":
                    return self.type_path()
                if table == "1":
                    for _ in range(4):
                        self.number()
                elif table not in "234":
                    raise ValueError("unknown RTTI code")
                return self.name_path(None)
            if code == "C":
                raise ValueError("string literal")
            if code == "_" and text[pos + 3] in "EF":
                # ??__E / ??__F: dynamic initializer / atexit destructor for a declaration,
                # written as a symbol (with a leading "?" when a static data member).
                self.pos = pos + 4
                if text[self.pos] == "?":
                    self.pos += 1
                return self.symbol()
        if kind == "@":
            raise ValueError("MD5 name")
        self.pos = pos + 1
        return self.name_path(self.operator_code())

    def name_path(self, leaf: str | None) -> list[str]:
        """The path of a qualified name whose scope starts at :attr:`pos`, ``leaf`` appended."""
        pieces, local = self.name_chain()
        if local is not None:
            return local
        pieces.reverse()
        if leaf is not None:
            pieces.append(leaf)
        return pieces

    def name_chain(self) -> tuple[list[str], list[str] | None]:
        """Read names up to the ``@`` ending a qualified name; innermost first.

        A local scope (``?1?`` followed by the symbol of the enclosing function) ends the read:
        it is returned second, as the path that owns the name.
        """
        text = self.text
        pieces: list[str] = []
        while True:
            pos = self.pos
            char = text[pos]
            if char == "@":
                self.pos = pos + 1
                return pieces, None
            if char in _DIGITS:
                pieces.append(self.names[int(char)])
                self.pos = pos + 1
            elif char != "?":
                end = text.index("@", pos)
                name = text[pos:end]
                self.memorize(name, name)
                pieces.append(name)
                self.pos = end + 1
            else:
                kind = text[pos + 1]
                if kind == "$":
                    pieces.append(self.template_name())
                elif kind == "A":
                    end = text.index("@", pos)
                    self.memorize(text[pos:end], _ANONYMOUS)
                    pieces.append(_ANONYMOUS)
                    self.pos = end + 1
                else:
                    self.pos = pos + 1
                    self.local_scope()
                    self.expect("?")
                    return pieces, self.symbol()

    def template_name(self) -> str:
        """A class template instance in a scope (``?$Foo@H@``): its name, memorized whole."""
        text = self.text
        start = self.pos
        pos = start + 2
        end = text.index("@", pos)
        if end == pos or text[pos] == "?":
            raise ValueError("bad template name")
        name = text[pos:end]
        self.pos = end + 1
        self.skip_template_args()
        self.memorize(text[start : self.pos], name)
        return name

    def template_leaf(self) -> str | None:
        """The name of a function template (after ``??$``); not memorized, unlike a scope's."""
        text = self.text
        pos = self.pos
        if text[pos] == "?":
            self.pos = pos + 1
            leaf = self.operator_code()
        else:
            end = text.index("@", pos)
            if end == pos:
                raise ValueError("empty template name")
            leaf = text[pos:end]
            self.pos = end + 1
        self.skip_template_args()
        return leaf

    def operator_code(self) -> str | None:
        """An operator code after its ``?``: :data:`OPERATOR`, or ``None`` for a special member."""
        text = self.text
        pos = self.pos
        code = text[pos]
        if code != "_":
            if code not in _BASIC_CODES:
                raise ValueError("bad operator code")
            self.pos = pos + 1
            return None if code in "01" else OPERATOR  # ?0 constructor, ?1 destructor
        code = text[pos + 1]
        if code != "_":
            if code not in _BASIC_CODES:
                raise ValueError("bad operator code")
            self.pos = pos + 2
            return OPERATOR if code in _UNDER_OPERATORS else None
        code = text[pos + 2]
        if code not in _BASIC_CODES:
            raise ValueError("bad operator code")
        self.pos = pos + 3
        if code == "K":  # literal operator: its suffix follows
            self.pos = text.index("@", self.pos) + 1
        return OPERATOR if code in _DOUBLE_UNDER_OPERATORS else None

    def type_path(self) -> list[str]:
        """The path of the class an RTTI type descriptor describes (``?AVFoo@c10@@``)."""
        text = self.text
        if text[self.pos] == "?":
            self.pos += 1
            self.qualifier()
        tag = text[self.pos]
        if tag in _TAGS:
            self.pos += 1
        elif tag == "W" and text[self.pos + 1] in _DIGITS:
            self.pos += 2
        else:
            raise ValueError("not a class type")
        return self.name_path(None)

    def memorize(self, key: str, name: str) -> None:
        """Add ``name`` (read from the text ``key``) to the back-reference table, once."""
        keys = self.keys
        if len(keys) < _MAX_NAMES and key not in keys:
            keys.append(key)
            self.names.append(name)

    def local_scope(self) -> None:
        """Step over ``<number>?`` after the ``?`` of a local scope, up to its function's symbol."""
        char = self.text[self.pos]
        if not (char in _DIGITS or char == "@" or "B" <= char <= "P"):
            raise ValueError("unknown name piece")
        self.number()
        self.expect("?")

    # -- skipping ---------------------------------------------------------------------------------

    def skip_template_args(self) -> None:
        """Step over a template argument list, up to and including its closing ``@``."""
        text = self.text
        while True:
            char = text[self.pos]
            if char == "@":
                self.pos += 1
                return
            if char == "$":
                self.skip_template_arg()
            else:
                self.skip_type()

    def skip_template_arg(self) -> None:
        """A template argument starting with ``$``: a value, an empty pack or a special type."""
        text = self.text
        pos = self.pos
        kind = text[pos + 1]
        if kind == "$":
            extra = text[pos + 2]
            if extra in "VZ":  # $$V, $$Z: empty parameter pack
                self.pos = pos + 3
            elif extra == "$" and text[pos + 3] == "V":
                self.pos = pos + 4
            elif extra == "Y":  # alias template
                self.pos = pos + 3
                self.skip_qualified_name()
            else:  # $$B array, $$C qualified type, $$Q/$$R rvalue reference, $$A function, $$T
                self.skip_type()
        elif kind == "S":  # empty pack
            self.pos = pos + 2
        elif kind == "M":  # auto non-type argument: its type, then the value without the "$"
            self.pos = pos + 2
            self.skip_type()
            self.skip_value()
        else:
            self.pos = pos + 1
            self.skip_value()

    def skip_value(self) -> None:
        """A non-type template argument, after its ``$``."""
        text = self.text
        kind = text[self.pos]
        self.pos += 1
        if kind in "0DQ":  # an integer; a template parameter index
            self.number()
        elif kind in "1HIJ":  # pointer to (member) symbol, with 0-3 this-adjusting offsets
            if text[self.pos] == "?":
                self.skip_symbol()
            for _ in range("1HIJ".index(kind)):
                self.number()
        elif kind == "E":  # reference to symbol
            self.skip_symbol()
        elif kind in "2F":  # a float (mantissa, exponent); a data member pointer
            self.number()
            self.number()
        elif kind == "G":
            self.number()
            self.number()
            self.number()
        else:
            raise ValueError("unknown template argument")

    def skip_type(self) -> None:
        """Step over one type (a template argument, a parameter, a pointee, ...)."""
        text = self.text
        pos = self.pos
        char = text[pos]
        if char in _PRIMITIVES or char in _DIGITS:  # a digit: function parameter back-reference
            self.pos = pos + 1
        elif char in _TAGS:
            self.pos = pos + 1
            self.skip_qualified_name()
        elif char in _POINTERS:
            self.pos = pos + 1
            self.skip_pointee()
        elif char == "_":
            if text[pos + 1] not in _UNDER_PRIMITIVES:
                raise ValueError("unknown type")
            self.pos = pos + 2
        elif char == "W":
            if text[pos + 1] not in _DIGITS:
                raise ValueError("unknown type")
            self.pos = pos + 2
            self.skip_qualified_name()
        elif char == "Y":
            self.pos = pos + 1
            self.skip_array()
        elif char == "?":  # a custom type: ?<name>@
            self.pos = pos + 1
            self.skip_qualified_piece()
            self.expect("@")
        elif char == "$" and text[pos + 1] == "$":
            kind = text[pos + 2]
            self.pos = pos + 3
            if kind in "QR":  # rvalue reference
                self.skip_pointee()
            elif kind == "A":  # function type: $$A6 (plain) or $$A8@@ (with this qualifiers)
                kind = text[self.pos]
                if kind == "6":
                    self.pos += 1
                    self.skip_function_type(this_qualifiers=False)
                elif text.startswith("8@@", self.pos):
                    self.pos += 3
                    self.skip_function_type(this_qualifiers=True)
                else:
                    raise ValueError("unknown function type")
            elif kind == "C":  # qualified type
                self.qualifier()
                self.skip_type()
            elif kind == "B":  # array template argument
                self.skip_type()
            elif kind != "T" and kind not in "VZ":  # nullptr_t; empty packs
                raise ValueError("unknown type")
        else:
            raise ValueError("unknown type")

    def skip_pointee(self) -> None:
        """What follows a pointer or reference letter: the pointed-to (member) type."""
        text = self.text
        while text[self.pos] in "EIF":  # __ptr64, __restrict, __unaligned
            self.pos += 1
        char = text[self.pos]
        self.pos += 1
        if char == "6":  # function pointer
            self.skip_function_type(this_qualifiers=False)
        elif char == "8":  # member function pointer
            self.skip_qualified_name()
            self.skip_function_type(this_qualifiers=True)
        elif char in _MEMBER_QUALIFIERS:  # data member pointer: class, then member type
            self.skip_qualified_name()
            self.skip_type()
        elif char in _QUALIFIERS:
            self.skip_type()
        else:
            raise ValueError("bad pointer")

    def skip_array(self) -> None:
        """After ``Y``: the rank, each dimension, optional qualifiers, the element type."""
        rank = self.number()
        if rank <= 0:
            raise ValueError("bad array rank")
        for _ in range(rank):
            self.number()
        if self.text.startswith("$$C", self.pos):
            self.pos += 3
            self.qualifier()
        self.skip_type()

    def skip_function_type(self, *, this_qualifiers: bool) -> None:
        """``[this qualifiers] <calling convention> <return type> <parameters> <throw spec>``."""
        text = self.text
        if this_qualifiers:
            while text[self.pos] in "EIF":
                self.pos += 1
            if text[self.pos] in "GH":  # & or && ref-qualifier
                self.pos += 1
            self.qualifier()
        if text[self.pos] not in _CALLING_CONVENTIONS:
            raise ValueError("bad calling convention")
        self.pos += 1
        if text[self.pos] == "@":  # no return type: a constructor or destructor
            self.pos += 1
        else:
            if text[self.pos] == "?":
                self.pos += 1
                self.qualifier()
            self.skip_type()
        # Parameters: X (none), or types ended by @ (or by Z: variadic).
        if text[self.pos] == "X":
            self.pos += 1
        else:
            while text[self.pos] not in "@Z":
                self.skip_type()
            self.pos += 1
        if text.startswith("_E", self.pos):  # noexcept
            self.pos += 2
        else:
            self.expect("Z")

    def skip_qualified_name(self) -> None:
        """Step over a qualified name (``Foo@c10@@``), up to and including its closing ``@``."""
        text = self.text
        pos = self.pos
        # The commonest pieces (names, back-references, class templates) are handled inline:
        # this loop is where the parser spends most of its time.
        while True:
            char = text[pos]
            if char == "@":
                self.pos = pos + 1
                return
            if char in _DIGITS:
                pos += 1
            elif char != "?":
                pos = text.index("@", pos) + 1
            elif text[pos + 1] == "$" and text[pos + 2] != "?":  # a class template
                self.pos = text.index("@", pos + 2) + 1
                self.skip_template_args()
                pos = self.pos
            else:
                self.pos = pos
                self.skip_qualified_piece()
                pos = self.pos

    def skip_qualified_piece(self) -> None:
        """One piece of a qualified name: a name, back-reference, template or local scope."""
        text = self.text
        pos = self.pos
        char = text[pos]
        if char in _DIGITS:
            self.pos = pos + 1
        elif char != "?":
            end = text.index("@", pos)
            if end == pos:
                raise ValueError("empty name")
            self.pos = end + 1
        else:
            kind = text[pos + 1]
            if kind == "$":
                self.pos = pos + 2
                if text[self.pos] == "?":
                    self.pos += 1
                    self.operator_code()
                else:
                    self.pos = text.index("@", self.pos) + 1
                self.skip_template_args()
            elif kind == "A":
                self.pos = text.index("@", pos) + 1
            else:
                self.pos = pos + 1
                self.local_scope()
                self.skip_symbol()

    def skip_symbol(self) -> None:
        """Step over a whole decorated name (a template argument, an enclosing function)."""
        text = self.text
        self.expect("?")
        if text[self.pos] == "?" and text[self.pos + 1] != "$":
            self.pos += 1
            self.operator_code()
        else:
            self.skip_qualified_piece()  # a name, or a function template's (?$)
        self.skip_qualified_name()
        # The encoding: a variable (storage class 0-4, type, qualifiers) or a function.
        kind = text[self.pos]
        if kind in "01234":
            self.pos += 1
            self.skip_type()
            while text[self.pos] in "EIF":
                self.pos += 1
            if text[self.pos] in _MEMBER_QUALIFIERS:
                self.pos += 1
                self.skip_qualified_name()
            else:
                self.qualifier()
            return
        if text.startswith("$$J0", self.pos):  # extern "C"
            self.pos += 4
        kind = text[self.pos]
        self.pos += 1
        if kind == "9":  # extern "C" without a parameter list
            return
        if kind == "$":  # virtual-this-adjusting thunk: $0-$5, or $R0-$R5 (vtordispex)
            offsets = 2
            if text[self.pos] == "R":
                self.pos += 1
                offsets = 4
            if text[self.pos] not in "012345":
                raise ValueError("bad thunk")
            self.pos += 1
            for _ in range(offsets):
                self.number()
            self.skip_function_type(this_qualifiers=True)
            return
        if not "A" <= kind <= "Z":
            raise ValueError("bad function class")
        if kind in _THIS_ADJUSTING:
            self.number()
        self.skip_function_type(this_qualifiers=kind not in _NO_THIS)

    # -- small pieces -----------------------------------------------------------------------------

    def number(self) -> int:
        """``[?]`` then a digit (1-10) or rebased hex digits ``A``-``P`` ended by ``@``."""
        text = self.text
        pos = self.pos
        negative = text[pos] == "?"
        if negative:
            pos += 1
        char = text[pos]
        if char in _DIGITS:
            self.pos = pos + 1
            value = int(char) + 1
        else:
            end = text.index("@", pos)
            digits = text[pos:end]
            if digits.strip("ABCDEFGHIJKLMNOP"):
                raise ValueError("bad number")
            self.pos = end + 1
            value = int(digits.translate(_REBASED_HEX), 16) if digits else 0
        return -value if negative else value

    def qualifier(self) -> None:
        """A cv-qualifier letter (``A``-``D``, or ``Q``-``T`` for a member)."""
        if self.text[self.pos] not in _QUALIFIERS:
            raise ValueError("bad qualifier")
        self.pos += 1

    def expect(self, char: str) -> None:
        if self.text[self.pos] != char:
            raise ValueError(f"expected {char!r}")
        self.pos += 1
