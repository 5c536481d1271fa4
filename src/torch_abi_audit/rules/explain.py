"""One name explained: is it libtorch-internal, which entity is it, and what replaces it.

:func:`explain_name` takes what a user pastes — an Itanium-mangled name (``_ZN3c10…``, with
Mach-O's extra leading underscore or not), an MSVC-decorated one
(``?torchCheckFail@detail@c10@@…``), a demangled one
(``c10::detail::torchCheckFail(char const*, …)``), a C symbol (``aoti_torch_get_sizes``,
``THPVariableClass``), an ATen operator (``aten::select.int``) or a libtorch macro
(``TORCH_CHECK``) — and judges it with the same rules an audit uses
(:class:`~torch_abi_audit.rules.torch_abi.TorchRules`), then looks its entity up in the
replacements table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from torch_abi_audit.rules.replacements import Advice, ReplacementTable
from torch_abi_audit.rules.torch_abi import TorchRules, UnstableReason, demangle, entity_scope
from torch_abi_audit.rules.torch_table import Shim, TorchAbiTable


class NameForm(StrEnum):
    """How the name was given."""

    ITANIUM = "itanium"
    MSVC = "msvc"
    DEMANGLED = "demangled"
    OPERATOR = "aten-operator"
    MACRO = "macro"
    C = "c"


class Verdict(StrEnum):
    """What the name is, for the torch rules."""

    UNSTABLE = "unstable"  # ties a library to one libtorch release
    SHIM = "stable-shim"  # a function of the stable C shim
    UNKNOWN_SHIM = "unknown-shim"  # named like a shim, not in the table (newer torch?)
    STABLE = "stable"  # torch::stable, torch::headeronly, header-only c10
    MACRO = "libtorch-macro"  # a libtorch macro (its expansion is what binaries import)
    OTHER = "not-libtorch"  # nothing of libtorch's
    UNREADABLE = "unreadable"  # a mangled name that cannot be read


@dataclass(frozen=True)
class Explanation:
    """One name, judged. ``entity`` is the libtorch entity it names (or passes, for a
    signature), ``detail`` says why the verdict; ``advice`` is what replaces the entity (for
    unstable names, operators and macros), ``shim`` the shim's table entry (for shims)."""

    query: str
    form: NameForm
    verdict: Verdict
    detail: str
    demangled: str | None = None
    entity: str | None = None
    advice: Advice | None = None
    shim: Shim | None = None


_C_NAME = re.compile(r"[A-Za-z_]\w*")
_OPERATOR_NAME = re.compile(r"aten::(\w+)(?:\.(\w+))?")


def explain_name(
    text: str, rules: TorchRules, replacements: ReplacementTable, shims: TorchAbiTable
) -> Explanation:
    """Judge ``text`` (see the module docstring for the forms accepted)."""
    query = text.strip()
    name = query[1:] if query.startswith("__Z") else query  # Mach-O's extra underscore
    if name.startswith(("_Z", "?")):
        return _mangled(query, name, rules, replacements, shims)
    operator = _OPERATOR_NAME.fullmatch(query)
    if operator:
        return _operator(query, operator, replacements, shims)
    if _C_NAME.fullmatch(query):
        return _c_name(query, rules, replacements, shims)
    return _demangled(query, rules, replacements, shims)


def _mangled(
    query: str, name: str, rules: TorchRules, replacements: ReplacementTable, shims: TorchAbiTable
) -> Explanation:
    form = NameForm.MSVC if name.startswith("?") else NameForm.ITANIUM
    demangled = demangle(name)
    if demangled == name:  # every well-formed name demangles
        return Explanation(query, form, Verdict.UNREADABLE, "cannot read this mangled name")
    scope = entity_scope(name)
    analysis = rules.analyse([name])
    if analysis.unstable_details:
        unstable = analysis.unstable_details[0]
        entity = rules.unstable_entity(unstable)
        advice = replacements.lookup(entity, shims)
        shown = advice.entity
        if unstable.reason is UnstableReason.SIGNATURE:
            shown += " (in signatures)"
        return Explanation(query, form, Verdict.UNSTABLE, unstable.detail, demangled, shown, advice)
    named = "::".join(scope) or None
    if scope and scope[0] in ("at", "c10", "caffe2", "torch"):
        return Explanation(query, form, Verdict.STABLE, _stable_detail(scope), demangled, named)
    return Explanation(query, form, Verdict.OTHER, "names nothing of libtorch's", demangled, named)


def _stable_detail(scope: tuple[str, ...]) -> str:
    name = "::".join(scope)
    if scope[:2] in (("torch", "stable"), ("torch", "headeronly")):
        return f"{name} is part of the stable C++ API ({scope[0]}::{scope[1]})"
    return f"{name} is header-only: compiled into the extension, it ties it to no release"


def _demangled(
    query: str, rules: TorchRules, replacements: ReplacementTable, shims: TorchAbiTable
) -> Explanation:
    scope = qualified_scope(query)
    if rules.is_internal_scope(scope):
        advice = replacements.lookup(scope, shims)
        detail = f"{'::'.join(scope)} is libtorch-internal (namespace {scope[0]})"
        return Explanation(
            query, NameForm.DEMANGLED, Verdict.UNSTABLE, detail, query, advice.entity, advice
        )
    passed = rules.libtorch_type_in(query)
    if passed:
        advice = replacements.lookup(passed, shims)
        detail = f"signature passes {'::'.join(passed)}, a libtorch type"
        entity = f"{advice.entity} (in signatures)"
        return Explanation(
            query, NameForm.DEMANGLED, Verdict.UNSTABLE, detail, query, entity, advice
        )
    if scope and scope[0] in ("at", "c10", "caffe2", "torch"):
        return Explanation(
            query,
            NameForm.DEMANGLED,
            Verdict.STABLE,
            _stable_detail(scope),
            query,
            "::".join(scope),
        )
    return Explanation(
        query, NameForm.DEMANGLED, Verdict.OTHER, "names nothing of libtorch's", query
    )


def qualified_scope(text: str) -> tuple[str, ...]:
    """The qualified name a demangled declaration names, split: ``void c10::foo<int>(int)``
    -> ``("c10", "foo")``; ``at::Tensor::item<float>() const`` -> ``("at", "Tensor", "item")``.
    Template arguments and the parameter list are dropped; so is a return type; a constructor
    or destructor (``c10::Half::Half(float)``) names its class."""
    depth = 0
    kept: list[str] = []
    for char in text:
        if char == "<":
            depth += 1
        elif char == ">":
            depth = max(depth - 1, 0)
        elif depth == 0:
            if char == "(" and kept and not "".join(kept).rstrip().endswith("operator"):
                break
            kept.append(char)
    words = "".join(kept).split()
    if not words:
        return ()
    parts = tuple(part for part in words[-1].split("::") if part)
    # A constructor or destructor names its class, as the mangled readers say.
    if len(parts) >= 2 and parts[-1].lstrip("~") == parts[-2]:
        parts = parts[:-1]
    return parts


def _operator(
    query: str, match: re.Match[str], replacements: ReplacementTable, shims: TorchAbiTable
) -> Explanation:
    name, overload = match.group(1), match.group(2)
    full = f"{name}.{overload}" if overload else name
    structs = [s for s, op in replacements.aten_operators.items() if op == full]
    if not structs:
        return Explanation(
            query, NameForm.OPERATOR, Verdict.OTHER, f"aten::{full} is not an ATen operator"
        )
    advice = replacements.lookup(("at", "_ops", structs[0]), shims)
    detail = f"an ATen operator (at::_ops::{structs[0]}), called through libtorch's dispatcher"
    return Explanation(
        query, NameForm.OPERATOR, Verdict.UNSTABLE, detail, None, advice.entity, advice
    )


def _c_name(
    query: str, rules: TorchRules, replacements: ReplacementTable, shims: TorchAbiTable
) -> Explanation:
    shim = shims.shims.get(query)
    if shim is not None:
        return Explanation(query, NameForm.C, Verdict.SHIM, _shim_detail(shim), shim=shim)
    if query in replacements.macro_names:
        advice = replacements.macro_advice(query)
        expands = replacements.expansions(query)
        detail = "a libtorch macro: binaries import what it expands to" + (
            f" ({', '.join(expands[:4])}{' and more' if len(expands) > 4 else ''})"
            if expands
            else ""
        )
        return Explanation(query, NameForm.MACRO, Verdict.MACRO, detail, advice=advice)
    analysis = rules.analyse([query])
    if analysis.unstable_details:
        unstable = analysis.unstable_details[0]
        advice = replacements.lookup((query,), shims)
        return Explanation(
            query, NameForm.C, Verdict.UNSTABLE, unstable.detail, entity=query, advice=advice
        )
    if analysis.unknown_shims or query.startswith(("aoti_torch_", "torch_")):
        return Explanation(
            query,
            NameForm.C,
            Verdict.UNKNOWN_SHIM,
            f"named like a shim but in no release read ({', '.join(shims.releases[:1])} to "
            f"{shims.releases[-1]}): probably newer",
        )
    return Explanation(query, NameForm.C, Verdict.OTHER, "names nothing of libtorch's")


def _shim_detail(shim: Shim) -> str:
    parts = [f"a stable-ABI shim since torch {shim.since}"]
    if shim.removed is not None:
        parts.append(f"removed in {shim.removed}")
    if shim.deprecated:
        parts.append("deprecated" + (f" (use {shim.replacement})" if shim.replacement else ""))
    if shim.device != "cpu":
        parts.append(f"{shim.device} builds only")
    return ", ".join(parts)
