"""Entity scopes of MSVC-decorated names, checked against LLVM's demangler.

The cases are real shapes from torch extension DLLs and hand-made ones for the rarer grammar;
every case is also demangled with LLVM (``pycxxfilt``) and the entity it names read back from the
text, so the expected scopes do not rest on this parser's reading of the grammar alone. The
network-marked test does the same for every decorated import and export of real Windows wheels.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

import pycxxfilt
import pytest

from helpers.real_wheels import library_members
from torch_abi_audit.rules import msvc
from torch_abi_audit.rules.itanium import OPERATOR
from torch_abi_audit.rules.msvc import entity_scope

OP = OPERATOR

CASES = [
    # (decorated, expected scope)
    ("?torchCheckFail@detail@c10@@YAXPEBD0I0@Z", ("c10", "detail", "torchCheckFail")),
    ("?__ExceptionPtrCreate@@YAXPEAX@Z", ("__ExceptionPtrCreate",)),
    ("?_Xbad_alloc@std@@YAXXZ", ("std", "_Xbad_alloc")),
    (
        "?call@full@_ops@at@@SA?AVTensor@3@V?$ArrayRef@VSymInt@c10@@@c10@@@Z",
        ("at", "_ops", "full", "call"),
    ),
    ("?a@b@c@d@e@f@@3HA", ("f", "e", "d", "c")),  # at most four components
    (
        "?warning_handler@WarningUtils@c10@@3PEAVWarningHandler@2@EA",  # a variable
        ("c10", "WarningUtils", "warning_handler"),
    ),
    # Constructors and destructors: the class. Operators: OPERATOR ends the path.
    ("??0IValue@c10@@QEAA@_N@Z", ("c10", "IValue")),
    ("??1SymInt@c10@@QEAA@XZ", ("c10", "SymInt")),
    ("??0?$basic_streambuf@DU?$char_traits@D@std@@@std@@IEAA@XZ", ("std", "basic_streambuf")),
    ("??1?$optional@VTensor@at@@@std@@QEAA@XZ", ("std", "optional")),
    (
        "??6c10@@YAAEAV?$basic_ostream@DU?$char_traits@D@std@@@std@@AEAV12@VHalf@0@@Z",
        ("c10", OP),
    ),
    ("??4Tensor@at@@QEGAAAEAV01@AEBV01@@Z", ("at", "Tensor", OP)),  # with a ref-qualifier
    ("??RFoo@c10@@QEBAXXZ", ("c10", "Foo", OP)),  # operator()
    ("??BSymBool@c10@@QEBA_NXZ", ("c10", "SymBool", OP)),  # conversion to bool
    ("??2@YAPEAX_K@Z", (OP,)),  # ::operator new
    ("??_U@YAPEAX_K@Z", (OP,)),  # ::operator new[]
    ("??_0Foo@ns@@QEAAAEAV01@H@Z", ("ns", "Foo", OP)),  # operator/=
    ("??__K_x@ns@@YAH_K@Z", ("ns", OP)),  # operator""_x
    ("??$?0H@CppFunction@torch@@QEAA@H@Z", ("torch", "CppFunction")),  # template constructor
    ("??$?6H@Foo@ns@@QEAAAEAV01@H@Z", ("ns", "Foo", OP)),  # template operator<<
    ("??$?BH@Foo@ns@@QEAAHXZ", ("ns", "Foo", OP)),  # template conversion
    # Special names: the class (or the declaration) they belong to.
    ("??_7Foo@c10@@6B@", ("c10", "Foo")),  # vftable
    ("??_7Foo@c10@@6BBar@1@@", ("c10", "Foo")),  # vftable {for Bar}
    ("??_R0?AVFoo@c10@@@8", ("c10", "Foo")),  # RTTI type descriptor
    ("??_R0?AU?$SingleElementType@$0M@UAwaitType@c10@@@c10@@@8", ("c10", "SingleElementType")),
    ("??_R1A@?0A@EA@Foo@c10@@8", ("c10", "Foo")),  # RTTI base class descriptor
    ("??_R2Foo@c10@@8", ("c10", "Foo")),
    ("??_R3Foo@c10@@8", ("c10", "Foo")),
    ("??_R4Foo@c10@@6B@", ("c10", "Foo")),
    ("??_GFoo@c10@@UEAAPEAXI@Z", ("c10", "Foo")),  # scalar deleting destructor
    ("??_EFoo@c10@@UEAAPEAXI@Z", ("c10", "Foo")),  # vector deleting destructor
    ("??_DFoo@c10@@QEAAXXZ", ("c10", "Foo")),  # vbase destructor
    ("??_FFoo@c10@@QEAAXXZ", ("c10", "Foo")),  # default constructor closure
    ("??_XFoo@c10@@QEAAXXZ", ("c10", "Foo")),  # an unknown code: the name after it
    ("??__Efoo@ns@@YAXXZ", ("ns", "foo")),  # dynamic initializer
    ("??__E?x@Foo@ns@@2HA@@YAXXZ", ("ns", "Foo", "x")),  # ... of a static data member
    ("??__Fx@?1??foo@ns@@YAXXZ@YAXXZ", ("ns", "foo")),  # atexit destructor of a local
    ("??_B?1??foo@ns@@YAXXZ@51", ("ns", "foo")),  # local static guard
    # Templates: the name without its arguments, which are skipped.
    ("?call@?$Foo@H@c10@@SAXXZ", ("c10", "Foo", "call")),
    ("??$item@M@Tensor@at@@QEBAMXZ", ("at", "Tensor", "item")),
    (
        "??$mutable_data_ptr@UHalf@c10@@@TensorBase@at@@QEBAPEAUHalf@c10@@XZ",
        ("at", "TensorBase", "mutable_data_ptr"),
    ),
    ("?f@?$Foo@V?$Bar@V?$Baz@H@ns@@@ns@@@ns@@SAXXZ", ("ns", "Foo", "f")),  # nested
    ("?f@?$Foo@$0A@$00$0?0$0BA@@ns@@SAXXZ", ("ns", "Foo", "f")),  # integers 0, 1, -1, 16
    ("?f@?$Foo@$$V@ns@@SAXXZ", ("ns", "Foo", "f")),  # empty packs
    ("?f@?$Foo@H$S@ns@@SAXXZ", ("ns", "Foo", "f")),
    ("?f@?$Foo@$$T@ns@@SAXXZ", ("ns", "Foo", "f")),  # nullptr_t
    ("?f@?$Foo@$$BY01H@ns@@SAXXZ", ("ns", "Foo", "f")),  # array
    ("?f@?$Foo@$$CBH@ns@@SAXXZ", ("ns", "Foo", "f")),  # const int
    ("?f@?$Foo@$$QEAH@ns@@SAXXZ", ("ns", "Foo", "f")),  # int &&
    ("?f@?$Foo@$$A6AHH@Z@ns@@SAXXZ", ("ns", "Foo", "f")),  # function type
    ("?f@?$Foo@P6AXXZ@ns@@SAXXZ", ("ns", "Foo", "f")),  # function pointer
    ("?f@?$Foo@P8Bar@@EAAXXZ@ns@@SAXXZ", ("ns", "Foo", "f")),  # member function pointer
    ("?f@?$Foo@PEQBar@@H@ns@@SAXXZ", ("ns", "Foo", "f")),  # data member pointer
    ("?f@?$Foo@$1?g@@3HA@ns@@SAXXZ", ("ns", "Foo", "f")),  # address of a variable
    ("?f@?$Foo@$1?g@@YAXXZ@ns@@SAXXZ", ("ns", "Foo", "f")),  # address of a function
    ("?f@?$Foo@$E?g@@3HA@ns@@SAXXZ", ("ns", "Foo", "f")),  # reference to a variable
    ("?f@?$Foo@$MH0A@@ns@@SAXXZ", ("ns", "Foo", "f")),  # auto non-type argument
    ("?f@?$Foo@W4Kind@c10@@@ns@@SAXXZ", ("ns", "Foo", "f")),  # enum
    ("?f@?$Foo@_J_N_W@ns@@SAXXZ", ("ns", "Foo", "f")),
    # Name back-references: the template's arguments have their own table; the template is one
    # entry of the enclosing one; each distinct name is memorized once.
    ("?f@?$Foo@H@ns@@2V12@A", ("ns", "Foo", "f")),
    ("?g@?$A@H@ns@1@3HA", ("A", "ns", "A", "g")),
    ("?g@?$A@VX@@@ns@1@3HA", ("A", "ns", "A", "g")),
    ("?a@b@a@c@d@2@3HA", ("c", "d", "c", "a")),
    ("?x@Outer@0@3HA", ("x", "Outer", "x")),
    # Anonymous namespaces and local names (owned by the enclosing function).
    ("?x@?A0x1234abcd@@3HA", ("(anonymous namespace)", "x")),
    ("?x@?A0x1234abcd@ns@@3HA", ("ns", "(anonymous namespace)", "x")),
    ("?x@?A0xab@y@1@3HA", ("(anonymous namespace)", "y", "(anonymous namespace)", "x")),
    ("?s@?1??singleton@Dispatcher@c10@@SAAEAV23@XZ@4AEAV23@EA", ("c10", "Dispatcher", "singleton")),
    ("?$TSS0@?1??singleton@Dispatcher@c10@@SAAEAV23@XZ@4HA", ("c10", "Dispatcher", "singleton")),
    ("?s@?BF@??f@?$Foo@H@ns@@SAXXZ@4HA", ("ns", "Foo", "f")),
    ("??R<lambda_1>@?1??f@ns@@YAXXZ@QEBAXXZ", ("ns", "f")),
    ("?s@?1???R<lambda_1>@?1??f@ns@@YAXXZ@QEBAXXZ@4HA", ("ns", "f")),
    ("?s@?1???0Foo@ns@@QEAA@XZ@4HA", ("ns", "Foo")),
]

# LLVM demangles these, but its text does not name the entity the way the rules need it:
LLVM_RENDERS_DIFFERENTLY = {
    "??_XFoo@c10@@QEAAXXZ",  # an unknown code: an empty name (c10::Foo::)
    "?x@?A0xab@y@1@3HA",  # a back-reference to an anonymous namespace: its key ("0xab")
}

MALFORMED = [
    "",
    "?",
    "??",
    "???",
    "?@",
    "?foo",
    "?foo@",
    "?foo@@",  # a name with no encoding after it
    "?foo@bar",
    "?1@@3HA",  # a back-reference with nothing to refer to
    "?x@9@3HA",
    "??$",
    "??$foo@",
    "??$@H@ns@@SAXXZ",
    "?f@?$@H@ns@@SAXXZ",
    "?f@?$Foo@H",
    "?f@?$Foo@H@@",
    "?f@?$Foo@$Xfoo@ns@@SAXXZ",  # unknown template argument
    "?f@?$Foo@_Z@ns@@SAXXZ",  # unknown type
    "?x@?Qfoo@@3HA",  # unknown name piece
    "??_R0?AVFoo",
    "??_R0H@8",  # RTTI of int: no class
    "??_R0P6A_NXZ@8",  # RTTI of a function pointer
    "??_R9Foo@@8",
    "??_C@_0M@KGDMHGPM@hello?5world@",  # string literal
    "??@a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6@",  # MD5 name
    "??_H@YAXPEAX_K1P6APEAX0@Z@Z",  # global `vector ctor iterator': no scope
    "?f@?$Foo@" + "PEA" * 5000 + "H@ns@@SAXXZ",  # nested too deep
    "_ZN3c104HalfC1Ef",  # Itanium
    "printf",
]


# -- reading LLVM's demangled text -----------------------------------------------------------------

_OPEN = {"<": ">", "(": ")", "[": "]", "{": "}", "`": "'"}
_CLOSE = frozenset(_OPEN.values())
_INNER_DECLARATION = re.compile(r"^`dynamic (?:initializer|atexit destructor) for `(.*)''$")
_RTTI = "`RTTI Type Descriptor'"


def _split(text: str, separator: str) -> list[str]:
    """``text`` split at each ``separator`` outside brackets and quotes."""
    parts: list[str] = []
    depth = start = i = 0
    while i < len(text):
        char = text[i]
        if char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth -= 1
        elif depth == 0 and text.startswith(separator, i):
            parts.append(text[start:i])
            i += len(separator)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return parts


def _declarator(text: str) -> str:
    """The qualified name a demangled declaration declares: the last name before the parameter
    list (or up to an ``operator``), or the last name of a variable."""
    depth = 0
    for i, char in enumerate(text):
        if depth == 0:
            if char == "(" and i and text[i - 1] != " ":
                text = text[:i]  # the parameter list
                break
            if char == "(" and text[i + 1] in "_&*":  # returns a function pointer or an array:
                return _declarator(_split(text[i + 1 :], ")")[0])  # the function is inside
            if text.startswith("operator", i) and (i == 0 or text[i - 1] in ": "):
                text = text[: i + len("operator")]  # operator<, operator(), conversions, ...
                break
        if char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth -= 1
    return [word for word in _split(text, " ") if word][-1]


def llvm_entity(demangled: str) -> tuple[str, ...]:
    """The path :func:`entity_scope` should give, read from LLVM's demangling of the name.

    ``public: static class at::Tensor __cdecl at::_ops::full::call(...)`` ->
    ``("at", "_ops", "full", "call")``. Constructors, destructors and special members
    (`` `vftable' ``) end at their class, operators with ``operator``, local names give their
    enclosing function, and an RTTI descriptor its class.
    """
    if demangled.endswith(" " + _RTTI):
        demangled = demangled.removesuffix(" " + _RTTI)
    elif _RTTI in demangled:
        return ()  # RTTI of a function (pointer) type: no class
    text = demangled.replace("decltype(auto)", "decltype-auto").replace(" for '", " for `")
    components = _split(_declarator(text).lstrip("&*"), "::")
    path: list[str] = []
    for component in components:
        if component.startswith("`"):
            if component == "`anonymous namespace'":
                path.append("(anonymous namespace)")
                continue
            inner = _INNER_DECLARATION.match(component)
            if inner:
                return (*path, *llvm_entity(inner.group(1)))
            if component is components[0] and len(components) > 1:
                return llvm_entity(component[1:-1])  # a local name: its enclosing function
            break  # `vftable', `RTTI ...', `scalar deleting dtor', ...: the class is the path
        if component == "operator":
            path.append(OPERATOR)
            break
        angle = component.find("<", 1)  # template arguments (but not "<lambda_1>")
        name = component[:angle] if angle > 0 else component
        if name.startswith("~") or (path and name == path[-1]):
            break  # destructor, constructor
        path.append(name)
    return tuple(path)


def demangle(decorated: str) -> str:
    """LLVM's demangling (``pycxxfilt`` raises ``ValueError`` on a name it cannot read)."""
    text = pycxxfilt.demangle(decorated)
    assert text is not None, decorated
    return text


@pytest.mark.parametrize(
    ("demangled", "expected"),
    [
        (
            "public: static class at::Tensor __cdecl at::_ops::full::call(class c10::ArrayRef"
            "<class c10::SymInt>, class std::optional<class c10::Scalar> const &)",
            ("at", "_ops", "full", "call"),
        ),
        (
            "class c10::Dispatcher &`public: static class c10::Dispatcher & __cdecl "
            "c10::Dispatcher::singleton(void)'::`2'::s",
            ("c10", "Dispatcher", "singleton"),
        ),
        ("const c10::Foo::`vftable'{for `c10::Bar'}", ("c10", "Foo")),
        (
            "void (__cdecl ** __cdecl std::addressof<void (__cdecl *)(int)>"
            "(void (__cdecl *&)(int)))(int)",
            ("std", "addressof"),
        ),
        (
            "public: bool __cdecl ns::Foo<int>::operator<<int>(int) const",
            ("ns", "Foo", OPERATOR),
        ),
        ("public: __cdecl ns::Foo<int>::~Foo<int>(void)", ("ns", "Foo")),
        ("void __cdecl `dynamic initializer for 'ns::foo''(void)", ("ns", "foo")),
        ("bool (__cdecl *`RTTI Type Descriptor')(void)", ()),
    ],
)
def test_llvm_entity_reads_demangled_text(demangled: str, expected: tuple[str, ...]) -> None:
    assert llvm_entity(demangled) == expected


# -- the cases ----------------------------------------------------------------------------------


def _ids(cases: Iterable[tuple[str, tuple[str, ...]]]) -> list[str]:
    return [decorated for decorated, _ in cases]


@pytest.mark.parametrize(("decorated", "expected"), CASES, ids=_ids(CASES))
def test_entity_scope(decorated: str, expected: tuple[str, ...]) -> None:
    assert entity_scope(decorated) == expected


LLVM_CASES = [case for case in CASES if case[0] not in LLVM_RENDERS_DIFFERENTLY]


@pytest.mark.parametrize(("decorated", "expected"), LLVM_CASES, ids=_ids(LLVM_CASES))
def test_cases_agree_with_llvm(decorated: str, expected: tuple[str, ...]) -> None:
    assert llvm_entity(demangle(decorated))[:4] == expected


@pytest.mark.parametrize("decorated", sorted(LLVM_RENDERS_DIFFERENTLY))
def test_llvm_renders_differently_but_demangles(decorated: str) -> None:
    assert demangle(decorated)


@pytest.mark.parametrize("decorated", MALFORMED, ids=[name[:60] for name in MALFORMED])
def test_unreadable_or_scopeless_names_give_empty_scope(decorated: str) -> None:
    assert entity_scope(decorated) == ()


def test_truncated_names_give_empty_or_full_scope() -> None:
    """A truncated name never raises, and never gives a scope the whole name does not have."""
    checked = 0
    for decorated, expected in CASES:
        for end in range(len(decorated)):
            assert entity_scope(decorated[:end]) in ((), expected), decorated[:end]
            checked += 1
    assert checked > 2000


def test_never_raises_on_mutated_names() -> None:
    rng = random.Random(1234)
    alphabet = "?@$_0123456789ABCDEFHIJKMNOPQRSTUVWXYZabc"
    names = [decorated for decorated, _ in CASES]
    for _ in range(20000):
        text = list(rng.choice(names))
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(text))
            action = rng.randrange(3)
            if action == 0:
                text[position] = rng.choice(alphabet)
            elif action == 1:
                text.insert(position, rng.choice(alphabet))
            else:
                del text[position]
        scope = entity_scope("".join(text))
        assert isinstance(scope, tuple) and len(scope) <= 4
        assert all(isinstance(component, str) and component for component in scope)


def _parsed(decorated: str) -> tuple[str, ...]:
    """What the full parser gives, without the fast path."""
    parser = msvc._Parser(decorated)
    try:
        path = parser.symbol()
    except (IndexError, ValueError, RecursionError):
        return ()
    return tuple(path[:4]) if parser.pos < len(decorated) else ()


def test_fast_path_agrees_with_the_full_parser() -> None:
    """entity_scope's fast path for plain names must give what the parser gives."""
    names = [decorated for decorated, _ in CASES]
    rng = random.Random(99)
    parts = ["c10", "at", "torch", "detail", "Half", "0", "1", "?$A@H@", "?A0x1@", "", "$T"]
    heads = ["?", "??0", "??1", "??6", "??B", "??_7", "??$f@H@", "?$TSS0@"]
    tails = ["@@YAXXZ", "@@QEAA@XZ", "@@3HA", "@@", "@", "@@6B@"]
    for _ in range(20000):
        pieces = [rng.choice(parts) for _ in range(rng.randint(1, 6))]
        names.append(rng.choice(heads) + "@".join(pieces) + rng.choice(tails))
    checked = 0
    for name in names:
        fast = msvc._plain_scope(name)
        if fast is None:
            continue
        assert fast == _parsed(name), name
        checked += 1
    assert checked > 2000


# -- real wheels ----------------------------------------------------------------------------------

WINDOWS_WHEELS = (
    "torchaudio-2.9.1-cp311-cp311-win_amd64.whl",  # the torch C++ API
    "torchaudio-2.11.0-cp311-cp311-win_amd64.whl",  # the torch stable ABI
    "torchcodec-0.8.1-cp311-cp311-win_amd64.whl",
    "torchcodec-0.17.0-cp311-cp311-win_amd64.whl",
)
_TORCH_NAMESPACE = re.compile(r"@(?:c10|at|torch|caffe2)@")


@pytest.mark.network
def test_real_wheel_names_agree_with_llvm() -> None:
    """Every MSVC-decorated import and export of real torch extension wheels: the scope read
    is a prefix of the entity LLVM's demangling names, and ``()`` only where it names none."""
    names: set[str] = set()
    occurrences = 0
    for filename in WINDOWS_WHEELS:
        for _member, library in library_members(filename, (".pyd", ".dll")):
            for symbol in (*library.imports, *library.exports):
                if symbol.name.startswith("?"):
                    names.add(symbol.name)
                    occurrences += 1
    disagreements: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
    unread: list[str] = []
    exact = torch_names = torch_unread = 0
    for name in sorted(names):
        scope = entity_scope(name)
        expected = llvm_entity(demangle(name))
        in_torch = _TORCH_NAMESPACE.search(name) is not None
        torch_names += in_torch
        fast = msvc._plain_scope(name)
        assert fast is None or fast == _parsed(name), name
        if not scope:
            unread.append(name)
            torch_unread += in_torch
            if expected:  # LLVM names an entity: it should have been read
                disagreements.append((name, scope, expected))
        elif expected[: len(scope)] != scope:
            disagreements.append((name, scope, expected))
        else:
            exact += scope == expected[:4]
    summary = (
        f"{occurrences} decorated imports and exports, {len(names)} distinct names checked; "
        f"{len(unread)} read as () ({torch_unread} of {torch_names} in c10/at/torch/caffe2); "
        f"{exact} exactly LLVM's entity"
    )
    print(summary)
    assert len(names) > 10_000, summary
    assert not disagreements, disagreements[:10]
    assert torch_unread < 0.01 * torch_names, summary
