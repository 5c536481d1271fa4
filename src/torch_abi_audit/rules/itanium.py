"""The scope of the entity an Itanium-mangled symbol names.

The torch rules judge a C++ symbol by the entity it names (``c10::detail::torchCheckFail``), not by
the types in its signature. A demangled string mixes the two and, for template functions, puts a
return type first; the mangled form keeps them apart. This module reads just the leading
``<nested-name>`` components of a mangled name — enough to tell ``c10::Half`` from ``c10::IValue``
or ``torch::stable`` from ``torch::jit`` — and stops at the first thing it does not need (template
arguments, operators, constructors, substitutions).

Grammar: Itanium C++ ABI, section 5.1 "External Names" (``<mangled-name>``, ``<encoding>``,
``<special-name>``, ``<nested-name>``, ``<local-name>``, ``<source-name>``).
"""

from __future__ import annotations

import re

#: Marker component for an operator (``operator<<``) ending the parsed scope.
OPERATOR = "operator"

_STD_ABBREVIATIONS = {
    "St": ("std",),
    "Sa": ("std", "allocator"),
    "Sb": ("std", "basic_string"),
    "Ss": ("std", "basic_string"),
    "Si": ("std", "basic_istream"),
    "So": ("std", "basic_ostream"),
    "Sd": ("std", "basic_iostream"),
}
# <special-name>s followed by a <type> (vtable, VTT, typeinfo, typeinfo name) or a <name>
# (guard variable, TLS init/wrapper, reference temporary).
_SPECIAL_TYPE = ("TV", "TT", "TI", "TS")
_SPECIAL_NAME = ("GV", "TH", "TW", "GR")
# Enough for every rule (namespace, torch::stable, c10::guts::typelist::x); deeper parts are
# not read, which keeps this cheap for the thousands of names a libtorch build imports.
_MAX_COMPONENTS = 4
_DIGITS = re.compile(r"[0-9]+")
# ASCII digits and their values ("" and anything else are not in it).
_DIGIT_VALUE = {str(value): value for value in range(10)}


def entity_scope(mangled: str) -> tuple[str, ...]:
    """The leading qualified-name components of the entity ``mangled`` names.

    ``_ZN3c106detail14torchCheckFailEPKcS2_jRKSs`` -> ``("c10", "detail", "torchCheckFail")``;
    ``_ZN3c104HalfC1Ef`` (a constructor) -> ``("c10", "Half")``; ``_ZTVN2at6TensorE`` (a vtable)
    -> ``("at", "Tensor")``; ``_Z3fooi`` -> ``("foo",)``. An operator ends the path with
    :data:`OPERATOR`. Returns ``()`` for names that are not Itanium-mangled or whose scope cannot
    be read; never raises.
    """
    if not mangled.startswith("_Z"):
        return ()
    # _ZN and _ZNK followed by a digit, the usual openings, without the regular expression.
    head = mangled[3:5]
    if mangled[2:3] == "N" and head[:1] in _DIGIT_VALUE:
        scope = _plain_nested_scope(mangled, 3)
    elif mangled[2:4] == "NK" and head[1:] in _DIGIT_VALUE:
        scope = _plain_nested_scope(mangled, 4)
    else:
        start = _PLAIN_NESTED.match(mangled)
        scope = None if start is None else _plain_nested_scope(mangled, start.end())
    if scope is not None:
        return scope
    try:
        return _Parser(mangled, 2).encoding()
    except (IndexError, ValueError):
        return ()


# Most C++ imports are plain nested names (_ZN, _ZNK, ...) whose scope is a run of
# <source-name>s. _plain_nested_scope reads exactly those, as _Parser would, and hands anything
# else (ABI tags, operators, std abbreviations, local and special names) back to _Parser.
_PLAIN_NESTED = re.compile(r"_ZN[rVK]*[RO]?(?=[0-9])")


def _plain_nested_scope(text: str, pos: int) -> tuple[str, ...] | None:
    # Thousands of calls per libtorch: dictionary look-ups and slices only, no regular
    # expression or int() per component (a length has one or two digits; more take the loop).
    size = len(text)
    components: list[str] = []
    digit = _DIGIT_VALUE.get
    for _ in range(_MAX_COMPONENTS):
        first = digit(text[pos : pos + 1])
        if first is None:
            char = text[pos : pos + 1]
            if char and (char in "BL" or char.islower()):
                return None  # ABI tag, internal linkage or operator: the full parser's job
            break
        second = digit(text[pos + 1 : pos + 2])
        if second is None:
            length, start = first, pos + 1
        elif text[pos + 2 : pos + 3] not in _DIGIT_VALUE:
            length, start = first * 10 + second, pos + 2
        else:  # three digits or more
            start = pos + 3
            while text[start : start + 1] in _DIGIT_VALUE:
                start += 1
            length = int(text[pos:start])
        pos = start + length
        if length <= 0 or pos > size:
            return ()
        components.append(text[start:pos])
    if text[pos : pos + 1] == "B":
        return None  # an ABI tag after the last component read
    if "_GLOBAL__N" in text:
        return tuple(
            "(anonymous namespace)" if part.startswith("_GLOBAL__N") else part
            for part in components
        )
    return tuple(components)


class _Parser:
    def __init__(self, text: str, pos: int) -> None:
        self.text = text
        self.pos = pos

    def peek(self, length: int = 1) -> str:
        return self.text[self.pos : self.pos + length]

    def encoding(self) -> tuple[str, ...]:
        head = self.peek(2)
        if head in _SPECIAL_TYPE or head in _SPECIAL_NAME:
            self.pos += 2
            return self.name()
        if head in ("Th", "Tv", "Tc"):
            # Thunks: <call-offset>s, then the encoding of the target function.
            self.pos += 1
            offsets = 2 if head == "Tc" else 1
            for _ in range(offsets):
                kind = self.text[self.pos]
                self.pos += 1
                for _ in range(1 if kind == "h" else 2):
                    self.number()
                    self.expect("_")
            return self.encoding()
        if head == "GT":  # transaction-safe entry: GTt / GTn <encoding>
            self.pos += 3
            return self.encoding()
        return self.name()

    def name(self) -> tuple[str, ...]:
        char = self.peek()
        if char == "N":
            self.pos += 1
            return self.nested()
        if char == "Z":
            # <local-name>: Z <function encoding> E <entity>. The entity lives inside the function,
            # so the function's scope is what owns it.
            self.pos += 1
            return self.encoding()
        abbreviation = _STD_ABBREVIATIONS.get(self.peek(2))
        if abbreviation is not None:
            self.pos += 2
            if abbreviation == ("std",):
                return ("std", *self.unqualified_components(limit=1))
            return abbreviation
        if char == "L":  # internal linkage (GCC extension)
            self.pos += 1
        return tuple(self.unqualified_components(limit=1))

    def nested(self) -> tuple[str, ...]:
        while self.peek() in ("r", "V", "K"):
            self.pos += 1
        if self.peek() in ("R", "O"):
            self.pos += 1
        components: list[str] = []
        abbreviation = _STD_ABBREVIATIONS.get(self.peek(2))
        if abbreviation is not None:
            self.pos += 2
            components.extend(abbreviation)
        components.extend(self.unqualified_components(limit=_MAX_COMPONENTS))
        return tuple(components)

    def unqualified_components(self, limit: int) -> list[str]:
        # The hot path of the torch rules (thousands of names per libtorch_python.so): plain
        # string indexing and one regex per <source-name>, no helper calls per character.
        text = self.text
        size = len(text)
        pos = self.pos
        components: list[str] = []
        while len(components) < limit and pos < size:
            char = text[pos]
            digits = _DIGITS.match(text, pos)
            if digits is not None:
                pos = self._source_name_at(digits, components)
                # ABI tags (B <source-name>) decorate the name just read: skip them.
                while pos < size and text[pos] == "B":
                    tag = _DIGITS.match(text, pos + 1)
                    if tag is None:
                        break
                    pos = self._source_name_at(tag, None)
            elif char == "L" and _DIGITS.match(text, pos + 1):
                pos += 1  # internal-linkage marker inside a nested name
            elif char.islower() and text[pos : pos + 2].isalpha() and pos + 1 < size:
                components.append(OPERATOR)
                break
            else:
                break  # template args, ctor/dtor, substitution, end of name, ...
        self.pos = pos
        return components

    def _source_name_at(self, digits: re.Match[str], into: list[str] | None) -> int:
        """Read the <source-name> whose length ``digits`` matched; returns the position after it."""
        length = int(digits.group())
        start = digits.end()
        end = start + length
        if length <= 0 or end > len(self.text):
            raise ValueError("bad source-name length")
        if into is not None:
            identifier = self.text[start:end]
            into.append(
                "(anonymous namespace)" if identifier.startswith("_GLOBAL__N") else identifier
            )
        return end

    def number(self) -> int:
        start = self.pos
        if self.peek() == "n":
            self.pos += 1
        while self.peek().isdigit():
            self.pos += 1
        text = self.text[start : self.pos].replace("n", "-")
        return int(text)

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise ValueError(f"expected {char!r}")
        self.pos += 1
