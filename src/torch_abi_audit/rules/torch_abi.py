"""PyTorch Stable ABI rules: which of a library's imports tie it to one libtorch release.

A library is judged by what it *imports* (its undefined dynamic symbols). Definitions never count:
stable extensions routinely define header-only code such as ``c10::Half`` as weak, exported
symbols.

* **Stable shim**: an import named in the generated shim table (the ``aoti_torch_*`` /
  ``torch_*`` C functions the headers declare and libtorch exports) — not any name with a
  ``torch_`` prefix.
* **Unstable**: an import that libtorch provides outside that surface —
  a C++ entity whose own enclosing namespace is ``at``, ``c10``, ``caffe2`` or ``torch``
  (but not ``torch::stable`` / ``torch::headeronly`` or the header-only ``c10`` names), any C++
  import whose signature passes a libtorch type that is not header-only (``at::Tensor``,
  ``c10::IValue``…), one of libtorch's own C symbols (``THPVariableClass``…), or — where the
  format records which library an import binds to (PE import DLLs, Mach-O two-level namespace)
  — any other import bound to a libtorch library (``c10.dll``, ``@rpath/libtorch_cpu.dylib``).

C++ names are judged by the entity they name, Itanium-mangled (``_ZN3c10…``, ELF and Mach-O)
or MSVC-decorated (``?…@c10@@…``, PE) alike.

See ``shared/reference/pytorch-stable-abi-facts.md`` for the binary-level facts behind these rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache

import pycxxfilt

from torch_abi_audit.rules import itanium, msvc
from torch_abi_audit.rules.itanium import OPERATOR
from torch_abi_audit.rules.names import NamesText, names_text
from torch_abi_audit.rules.torch_table import TorchAbiTable, load_table

#: Namespaces libtorch implements. Anything a library imports from them is libtorch-internal
#: unless it is explicitly part of the stable / header-only surface.
TORCH_NAMESPACES = frozenset({"at", "c10", "caffe2", "torch"})
#: ``torch::`` sub-namespaces that are the stable surface (header-only, hidden visibility).
STABLE_TORCH_NAMESPACES = frozenset({"stable", "headeronly"})
# How a mangled name spells a torch namespace: Itanium, length-prefixed (``3c10``); MSVC, as an
# ``@``-terminated scope fragment (``c10@``). Every name the patterns below match contains one:
# a library whose names mention none is answered by a few substring searches (most libraries
# of an environment).
_ITANIUM_TORCH_NEEDLES = tuple(f"{len(name)}{name}" for name in sorted(TORCH_NAMESPACES))
_MSVC_TORCH_NEEDLES = tuple(f"{name}@" for name in sorted(TORCH_NAMESPACES))
_ITANIUM_TORCH = "|".join(_ITANIUM_TORCH_NEEDLES)
_TORCH_NAMESPACE = "|".join(sorted(TORCH_NAMESPACES))
# Cheap pre-filter on mangled names: an Itanium name that mentions none of the length-prefixed
# namespaces (an MSVC name none of the scope fragments, each after an ``@`` or right after an
# operator's code: ``??6c10@@`` is ``c10::operator<<``) cannot involve a torch namespace, so it
# is neither demangled nor parsed.
_TORCH_CXX_NAME = re.compile(
    rf"_Z.*?(?:{_ITANIUM_TORCH})"
    rf"|\?(?:\?_{{0,2}}[0-9A-Z]|.*?@)(?:{_TORCH_NAMESPACE})@"
)
# _TORCH_CXX_NAME over the text of a set of names, one name a line (rules.names): each match is
# a whole name (what follows the needle, up to the end of the line).
_TORCH_CXX_LINE = re.compile(
    rf"\n(_Z[^\n]*?(?:{_ITANIUM_TORCH})[^\n]*"
    rf"|\?(?:\?_{{0,2}}[0-9A-Z]|[^\n]*?@)(?:{_TORCH_NAMESPACE})@[^\n]*)"
)
# File names of the libraries a torch build installs (libtorch_cpu.so, libc10.dylib, c10.dll,
# torch_cuda.dll, libtorch_python.so...), whatever directory or @rpath prefix names them.
_TORCH_LIBRARY = re.compile(
    r"(?:lib)?(?:torch|c10)(?:_\w+)?(?:\.so(?:\.[0-9.]+)?|\.dylib|\.dll)", re.IGNORECASE
)
# C names spelled like shims (judged against the table: a prefix alone is not proof).
_SHIM_LIKE_NAME = re.compile("aoti_torch_|torch_")
_SHIM_LIKE_NEEDLES = ("torch_",)  # in every name _SHIM_LIKE_NAME matches
_QUALIFIED_TORCH_NAME = re.compile(rf"(?<![\w:])((?:{_TORCH_NAMESPACE})(?:::~?[A-Za-z_]\w*)+)")
_SHIM_PREFIXES = ("aoti_torch_",)


class UnstableReason(StrEnum):
    """Why an import counts as unstable."""

    NAMESPACE = "namespace"  # the entity itself lives in a libtorch namespace
    SIGNATURE = "signature"  # its signature passes a libtorch type
    C_SYMBOL = "c-symbol"  # a C symbol that libtorch exports outside the shim
    LIBRARY = "library"  # bound to a libtorch library, and not a shim


@dataclass(frozen=True)
class UnstableSymbol:
    """One unstable import: raw name, demangled form, why it counts, and the library it binds
    to where the format records that."""

    symbol: str
    demangled: str
    reason: UnstableReason
    detail: str
    library: str | None = None


@dataclass(frozen=True)
class TorchAnalysis:
    """Torch verdict for one library.

    The first four fields are the documented ones (``uses_torch``, ``stable``,
    ``unstable_symbols`` — demangled — and ``stable_shim_count``). ``torch_libraries`` are the
    libtorch libraries it names as needed (``libtorch_cpu.so``, ``torch_cpu.dll``...);
    ``optional_shims`` the shims it does not import but may look up at run time (``dlsym``),
    which set no floor. ``weak_imports`` are the torch-owned imports (shims, unknown shims,
    unstable symbols) that loading does not need: weak references, Mach-O weak imports,
    imports from weak-linked dylibs or PE delay-loaded DLLs. They still count for the verdict
    (a weak ``c10::`` import is still a libtorch internal), but not for the torch floor nor for
    whether the library loads.
    """

    uses_torch: bool = False
    stable: bool = False
    unstable_symbols: tuple[str, ...] = ()
    stable_shim_count: int = 0
    unstable_details: tuple[UnstableSymbol, ...] = ()
    stable_shims: tuple[str, ...] = ()
    unknown_shims: tuple[str, ...] = ()
    min_torch_version: str | None = None
    min_torch_symbols: tuple[str, ...] = field(default=())
    torch_libraries: tuple[str, ...] = ()
    optional_shims: tuple[str, ...] = ()
    weak_imports: tuple[str, ...] = ()


@cache
def torch_rules() -> TorchRules:
    """The torch rules over the shipped table, built once per process (their verdicts are
    cached, so every caller shares them)."""
    return TorchRules(load_table())


def package_minimum_torch(analyses: Iterable[TorchAnalysis]) -> str | None:
    """The oldest torch release all the given libraries can load on: their newest floor.

    ``None`` when none imports a shim. The one place a package floor is computed (reports and
    the packaging-metadata checks both use it).
    """
    from packaging.version import Version

    floors = [Version(a.min_torch_version) for a in analyses if a.min_torch_version]
    return str(max(floors)) if floors else None


def demangle(name: str) -> str:
    """Human-readable form of ``name`` (Itanium or MSVC); the name itself if it is not mangled."""
    try:
        if name.startswith("_Z") and "@" not in name:
            # What pycxxfilt.demangle does for such a name, without its dispatch in Python.
            return pycxxfilt.itanium_demangle(name) or name
        return pycxxfilt.demangle(name) or name
    except ValueError:
        return name


def is_torch_library(name: str) -> bool:
    """True when ``name`` (a needed-library entry or an import's library) is one of libtorch's
    own libraries: ``libc10.so``, ``@rpath/libtorch_cpu.dylib``, ``torch_cuda.dll``…"""
    lowered = name.lower()
    if "torch" not in lowered and "c10" not in lowered:
        return False  # the common case, decided without the regular expression
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return _TORCH_LIBRARY.fullmatch(base) is not None


def entity_scope(name: str) -> tuple[str, ...]:
    """The scope of the entity a C++ linker name names, Itanium or MSVC; ``()`` for others."""
    if name.startswith("?"):
        return msvc.entity_scope(name)
    return itanium.entity_scope(name)


def _bound_to_libtorch(
    names: AbstractSet[str], bindings: Mapping[str, str], judged: set[str]
) -> list[UnstableSymbol]:
    """The imports among ``names`` that the format binds to a libtorch library and that no
    other rule judged (not shims, not C++ entities of libtorch): unstable by their binding."""
    return [
        UnstableSymbol(
            name,
            demangle(name),
            UnstableReason.LIBRARY,
            f"imported from {library}, outside the stable shim",
            library,
        )
        for name, library in sorted(bindings.items())
        if name in names and name not in judged and is_torch_library(library)
    ]


def _torch_cxx_names(names: AbstractSet[str], text: NamesText) -> list[str]:
    """The names :data:`_TORCH_CXX_NAME` matches, sorted: none without a search when no name
    mentions a torch namespace the way a mangled name spells it, else in one scan of the text."""
    itanium = "_Z" in text.text and text.mentions(_ITANIUM_TORCH_NEEDLES)
    if not itanium and not ("?" in text.text and text.mentions(_MSVC_TORCH_NEEDLES)):
        return []
    if text.lines:
        return sorted(_TORCH_CXX_LINE.findall(text.text))
    return sorted(filter(_TORCH_CXX_NAME.match, names))


#: How many C++ names' verdicts :class:`TorchRules` keeps (a few tens of MB at most).
_MAX_JUDGED = 200_000


class TorchRules:
    """Classifies a library's imports against one :class:`TorchAbiTable`."""

    def __init__(self, table: TorchAbiTable) -> None:
        self.table = table
        self._shim_names = frozenset(table.shims)
        self._internal = table.internal_c_symbols
        self._internal_names = frozenset(table.internal_c_symbols)
        # Verdicts on C++ names already judged: the libraries of one environment or wheel
        # import many of the same ones (an environment scan: 9,784 judgements of 6,072 names).
        self._judged: dict[tuple[str, str | None, bool], UnstableSymbol | None] = {}

    def analyse(
        self,
        imports: Iterable[str],
        *,
        needs_torch_library: bool = False,
        torch_libraries: Sequence[str] = (),
        bindings: Mapping[str, str] | None = None,
        runtime_lookups: frozenset[str] = frozenset(),
        optional_imports: frozenset[str] = frozenset(),
    ) -> TorchAnalysis:
        """Judge a library from the names of its imports.

        ``torch_libraries`` are the libtorch libraries it lists as needed (or say that there are
        some with ``needs_torch_library``): they let unknown ``torch_*`` names count as probable
        shims newer than the table. ``bindings`` maps imports to the library they are bound to,
        where the format records it (PE, Mach-O two-level namespace): any import bound to a
        libtorch library that is not a shim is unstable, and every unstable import carries its
        library. ``runtime_lookups`` are names the library may look up at run time (``dlsym``
        and a string constant): the shims among them are reported as optional and do not
        count toward its minimum torch. ``optional_imports`` are the imports loading does not
        need (:meth:`~torch_abi_audit.model.Library.optional_imports`): the torch-owned ones
        among them are reported as ``weak_imports`` and set no floor either.
        """
        names = imports if isinstance(imports, (set, frozenset)) else frozenset(imports)
        bindings = bindings or {}
        # Set algebra and one compiled-regex call per name keep this pass in C: a
        # libtorch_python.so imports 5,700 names, a whole environment ~100k.
        shims = sorted(names & self._shim_names)
        text = names_text(names)
        unstable = [
            finding
            for name in _torch_cxx_names(names, text)
            if (finding := self._judge_cxx(name, bindings.get(name))) is not None
        ]
        unstable += [
            UnstableSymbol(
                name,
                name,
                UnstableReason.C_SYMBOL,
                f"C symbol exported by {self._internal[name]}, outside the stable shim",
                bindings.get(name),
            )
            for name in sorted(names & self._internal_names)
        ]
        prefixed = (
            set(filter(_SHIM_LIKE_NAME.match, names)) - self._shim_names - self._internal_names
            if text.mentions(_SHIM_LIKE_NEEDLES)
            else set()
        )
        unknown = sorted(n for n in prefixed if n.startswith(_SHIM_PREFIXES))
        weak_unknown = sorted(prefixed.difference(unknown))
        if weak_unknown and (shims or unknown or needs_torch_library or torch_libraries):
            unknown = sorted(unknown + weak_unknown)
        if bindings:
            judged = {u.symbol for u in unstable}.union(shims, unknown)
            unstable += _bound_to_libtorch(names, bindings, judged)
        uses_torch = bool(shims or unstable or unknown)
        weak: list[str] = []
        if optional_imports and uses_torch:
            owned = {u.symbol for u in unstable}.union(shims, unknown)
            weak = sorted(owned & optional_imports)
        floor = self.table.minimum_torch(s for s in shims if s not in optional_imports)
        return TorchAnalysis(
            uses_torch=uses_torch,
            stable=uses_torch and not unstable,
            unstable_symbols=tuple(u.demangled for u in unstable),
            stable_shim_count=len(shims),
            unstable_details=tuple(unstable),
            stable_shims=tuple(shims),
            unknown_shims=tuple(unknown),
            min_torch_version=str(floor) if floor else None,
            min_torch_symbols=floor.defined_by if floor else (),
            torch_libraries=tuple(torch_libraries),
            optional_shims=tuple(sorted(runtime_lookups & self._shim_names)),
            weak_imports=tuple(weak),
        )

    def exempt_as_header_only(self, name: str) -> bool:
        """True when an import of the C++ symbol ``name`` looks like header-only ``c10`` code
        by the names ``torch/headeronly`` re-exports (or is a ``c10`` operator on header-only
        types), whatever libtorch exports: the generator keeps those that some libtorch
        library defines in the table's ``header_only_exported``."""
        scope = entity_scope(name)
        return scope[:1] == ("c10",) and self._judge_cxx(name, None, exported=False) is None

    def _judge_cxx(
        self, name: str, library: str | None, *, exported: bool = True
    ) -> UnstableSymbol | None:
        key = (name, library, exported)
        try:
            return self._judged[key]
        except KeyError:
            pass
        if len(self._judged) >= _MAX_JUDGED:
            self._judged.clear()
        verdict = self._judged[key] = self._judge_cxx_uncached(name, library, exported=exported)
        return verdict

    def _judge_cxx_uncached(
        self, name: str, library: str | None, *, exported: bool
    ) -> UnstableSymbol | None:
        scope = entity_scope(name)
        demangled = demangle(name)
        defined_in = self.table.header_only_exported.get(name) if exported else None
        if defined_in is not None:
            # Header-only by its name, yet libtorch defines it (declared C10_API, or an
            # out-of-line overload): the import binds to libtorch, not to the library's copy.
            return UnstableSymbol(
                name,
                demangled,
                UnstableReason.NAMESPACE,
                f"{'::'.join(scope)} is defined in {defined_in}, not header-only",
                library,
            )
        # An operator in c10 (operator<<, operator+) is judged by its argument types below.
        if self.is_internal_scope(scope):
            return UnstableSymbol(
                name,
                demangled,
                UnstableReason.NAMESPACE,
                f"{'::'.join(scope)} is libtorch-internal (namespace {scope[0]})",
                library,
            )
        # The entity is the library's own (or stable): it is still tied to one release when
        # its signature passes a libtorch type that is not header-only.
        passed = self.libtorch_type_in(demangled)
        if passed:
            return UnstableSymbol(
                name,
                demangled,
                UnstableReason.SIGNATURE,
                f"signature passes {'::'.join(passed)}, a libtorch type",
                library,
            )
        return None

    def libtorch_type_in(self, demangled: str) -> tuple[str, ...]:
        """The first libtorch name in a demangled signature that is not stable or header-only
        (``("at", "Tensor")`` for ``mypkg::f(at::Tensor const&)``); ``()`` if none."""
        for match in _QUALIFIED_TORCH_NAME.finditer(demangled):
            parts = tuple(match.group(1).split("::"))
            if parts[-1] == OPERATOR or self._stable_scope(parts):
                continue
            return parts
        return ()

    def unstable_entity(self, unstable: UnstableSymbol) -> tuple[str, ...]:
        """The libtorch entity an unstable import ties its library to: the entity a C++ name
        names (``("c10", "detail", "torchCheckFail")``), the libtorch type its signature passes
        (``("at", "Tensor")``), or the C symbol itself (``("THPVariableClass",)``)."""
        if unstable.reason is UnstableReason.SIGNATURE:
            return self.libtorch_type_in(unstable.demangled) or (unstable.symbol,)
        if unstable.reason is UnstableReason.C_SYMBOL:
            return (unstable.symbol,)
        return entity_scope(unstable.symbol) or (unstable.symbol,)

    def is_internal_scope(self, scope: tuple[str, ...]) -> bool:
        """True when an entity with this scope is libtorch-internal: it lives in a libtorch
        namespace and is neither stable (``torch::stable``, ``torch::headeronly``), nor
        header-only ``c10``, nor a ``c10`` operator (judged by its argument types)."""
        if not scope or scope[0] not in TORCH_NAMESPACES:
            return False
        c10_operator = scope[:1] == ("c10",) and OPERATOR in scope[:2]
        return not c10_operator and not self._stable_scope(scope)

    def _stable_scope(self, scope: tuple[str, ...]) -> bool:
        if scope[0] == "torch" and len(scope) > 1 and scope[1] in STABLE_TORCH_NAMESPACES:
            return True
        return scope[0] == "c10" and self.table.is_header_only(scope)
