"""Migration guidance as text, Markdown and JSON: what to replace, with what, since when.

Pure functions of :class:`~torch_abi_audit.rules.migration.MigrationPlan` and
:class:`~torch_abi_audit.rules.replacements.Advice` (the ``--explain`` block of the table, the
``migration`` object of the JSON report, the ``explain`` subcommand). Text lines are returned
unescaped: the caller escapes every line it prints (:mod:`torch_abi_audit.renderers.escape`).
"""

from __future__ import annotations

from typing import Any

from torch_abi_audit.renderers.escaping import markdown_code, markdown_text
from torch_abi_audit.renderers.summary import counted
from torch_abi_audit.rules.explain import Explanation
from torch_abi_audit.rules.findings import name_list
from torch_abi_audit.rules.migration import EntityUse, MigrationPlan
from torch_abi_audit.rules.replacements import NO_REPLACEMENT, Advice

#: How many macros a line names before "and N more".
VIA_SHOWN = 3


def via_text(advice: Advice) -> str:
    """``via TORCH_CHECK, TORCH_CHECK_INDEX and 4 more`` (empty without macros)."""
    if not advice.via:
        return ""
    return f"via {name_list(advice.via, VIA_SHOWN)}"


def replacement_text(advice: Advice) -> str:
    """``STD_TORCH_CHECK (since torch 2.9.0)`` or ``no stable replacement yet``."""
    if advice.replacement is None:
        if advice.documented:
            return f"{NO_REPLACEMENT} (PyTorch lists it without a stable counterpart)"
        return NO_REPLACEMENT
    text = advice.replacement
    if advice.since:
        text += f" (since torch {advice.since})"
    return text


def plan_summary(plan: MigrationPlan) -> str:
    """``525 unstable imports of 60 libtorch entities; 220 (42%) have a stable replacement``."""
    return (
        f"{counted(plan.occurrences, 'unstable import')} of "
        f"{counted(len(plan.entities), 'libtorch entity', 'libtorch entities')}; "
        f"{plan.covered} ({plan.coverage:.0%}) have a stable replacement"
    )


def floor_text(plan: MigrationPlan) -> str:
    """What the replacements mean for the oldest torch the package can load on."""
    today = (
        f"today's shims need {plan.current_floor}"
        if plan.current_floor
        else "no shim sets one today"
    )
    after = plan.floor_after or "any"
    if not plan.raised_by:
        return f"min torch after the port: {after} ({today}; no replacement raises it)"
    raised = name_list([f"{name} ({since})" for name, since in plan.raised_by])
    return f"min torch after the port: {after} ({today}; raised by {raised})"


def _use_heading(use: EntityUse) -> str:
    libs = counted(len(use.libraries), "library", "libraries")
    via = via_text(use.advice)
    return f"{use.occurrences}x in {libs}  {use.entity}" + (f"  ({via})" if via else "")


def plan_lines(plan: MigrationPlan, indent: str = "  ") -> list[str]:
    """The ``--explain`` block under a package: a summary, two lines per entity, the floor."""
    if not plan.occurrences:
        return [f"{indent}-- migration: no unstable imports, nothing to port --"]
    lines = [f"{indent}-- migration: {plan_summary(plan)} --"]
    for use in plan.entities:
        lines.append(f"{indent}  {_use_heading(use)}")
        source = f"  [{use.advice.source}]" if use.advice.source else ""
        lines.append(f"{indent}      -> {replacement_text(use.advice)}{source}")
    lines.append(f"{indent}  {floor_text(plan)}")
    return lines


def advice_object(advice: Advice) -> dict[str, Any]:
    """The JSON form of one piece of advice."""
    source = advice.source
    return {
        "entity": advice.entity,
        "replacement": advice.replacement,
        "since": advice.since,
        "relation": advice.relation,
        "source": (
            {"file": source.file, "line": source.line, "origin": source.origin} if source else None
        ),
        "via": list(advice.via),
        "alternatives": list(advice.alternatives),
        "declared_in": advice.declared_in,
        "documented": advice.documented,
    }


def plan_object(plan: MigrationPlan) -> dict[str, Any]:
    """The ``migration`` object of a package in the JSON report."""
    return {
        "occurrences": plan.occurrences,
        "covered": plan.covered,
        "current_floor": plan.current_floor,
        "floor_after": plan.floor_after,
        "raised_by": [{"replacement": n, "since": s} for n, s in plan.raised_by],
        "entities": [
            {
                **advice_object(use.advice),
                "entity": use.entity,
                "occurrences": use.occurrences,
                "libraries": list(use.libraries),
                "symbols": list(use.symbols),
                "in_signatures": use.in_signatures,
            }
            for use in plan.entities
        ],
    }


def plan_markdown(plan: MigrationPlan) -> list[str]:
    """The plan as a Markdown table (for pull requests)."""
    if not plan.occurrences:
        return ["No unstable imports: nothing to port."]
    lines = [
        f"{plan_summary(plan)}.",
        "",
        "| uses | libraries | libtorch entity | replacement | since |",
        "|---:|---:|---|---|---|",
    ]
    for use in plan.entities:
        advice = use.advice
        entity = markdown_code(use.entity)
        if advice.via:
            entity += f" ({markdown_text(via_text(advice))})"
        replacement = markdown_code(advice.replacement) if advice.replacement else NO_REPLACEMENT
        lines.append(
            f"| {use.occurrences} | {len(use.libraries)} | {entity} | {replacement} | "
            f"{advice.since or '-'} |"
        )
    lines += ["", f"{floor_text(plan)[0].upper()}{floor_text(plan)[1:]}."]
    return lines


def explanation_lines(explanation: Explanation) -> list[str]:
    """The ``explain`` subcommand's block for one name."""
    lines = [explanation.query]
    if explanation.demangled and explanation.demangled != explanation.query:
        lines.append(f"  demangled:   {explanation.demangled}")
    if explanation.entity:
        lines.append(f"  entity:      {explanation.entity}")
    lines.append(f"  verdict:     {explanation.verdict}: {explanation.detail}")
    advice = explanation.advice
    if advice is None:
        return lines
    via = via_text(advice)
    if via:
        lines.append(f"  emitted by:  {via.removeprefix('via ')}")
    lines.append(f"  replacement: {replacement_text(advice)}")
    if advice.alternatives:
        lines.append(f"  also:        {', '.join(advice.alternatives)}")
    if advice.declared_in:
        lines.append(f"  declared in: {advice.declared_in}")
    if advice.source is not None:
        lines.append(f"  source:      {advice.source}")
    return lines


def explanation_object(explanation: Explanation) -> dict[str, Any]:
    """The JSON form of one explained name."""
    shim = explanation.shim
    return {
        "query": explanation.query,
        "form": str(explanation.form),
        "verdict": str(explanation.verdict),
        "detail": explanation.detail,
        "demangled": explanation.demangled,
        "entity": explanation.entity,
        "advice": advice_object(explanation.advice) if explanation.advice else None,
        "shim": (
            {
                "name": shim.name,
                "since": str(shim.since),
                "removed": str(shim.removed) if shim.removed else None,
                "deprecated": shim.deprecated,
                "replacement": shim.replacement,
                "device": shim.device,
            }
            if shim
            else None
        ),
    }
