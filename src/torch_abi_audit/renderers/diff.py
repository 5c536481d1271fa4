"""A :class:`~torch_abi_audit.diff.PackageDiff` as text (the terminal), Markdown (the pull
request) and JSON. Pure functions; text lines come back unescaped for the caller to escape
(:mod:`torch_abi_audit.renderers.escape`), Markdown escapes every name it shows itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch_abi_audit.diff import EntityChange, LibraryChange, LibraryStatus, PackageDiff, Side
from torch_abi_audit.renderers.escaping import markdown_code, markdown_text
from torch_abi_audit.renderers.json_report import finding_object
from torch_abi_audit.renderers.migration import advice_object, replacement_text
from torch_abi_audit.renderers.summary import CPYTHON_VERDICT_LABELS, TORCH_VERDICT_LABELS
from torch_abi_audit.report import CPythonVerdict, TorchVerdict
from torch_abi_audit.rules.findings import Finding

#: Symbols listed per entity with ``-v``.
SYMBOLS_SHOWN = 5


#: What a diff says for its regressions when a side could not be read in full (exit code 2):
#: none were found, but what was not read was not compared.
NO_REGRESSIONS_UNREAD = "none found in what could be read (not everything was: see below)"


def _torch(verdict: str) -> str:
    return TORCH_VERDICT_LABELS[TorchVerdict(verdict)]


def _cpython(verdict: str) -> str:
    return CPYTHON_VERDICT_LABELS[CPythonVerdict(verdict)]


def _arrow(old: object, new: object) -> str:
    old_text, new_text = old if old is not None else "-", new if new is not None else "-"
    return str(old_text) if old_text == new_text else f"{old_text} -> {new_text}"


def _finding_line(finding: Finding) -> str:
    return f"[{finding.severity}] {finding.code}: {finding.message}"


def _labels(change: LibraryChange) -> str:
    old, new = change.old, change.new
    if old is None or new is None:
        side = new or old
        assert side is not None
        return side.torch_label
    return _arrow(old.torch_label, new.torch_label)


def _facts(change: LibraryChange) -> str:
    old, new = change.old, change.new
    parts = []
    if old is not None and new is not None:
        if old.unstable or new.unstable:
            parts.append(f"unstable {old.unstable} -> {new.unstable}")
        if old.stable_shims or new.stable_shims:
            parts.append(f"shims {old.stable_shims} -> {new.stable_shims}")
        if old.min_torch or new.min_torch:
            parts.append(f"min-torch {_arrow(old.min_torch, new.min_torch)}")
        if old.cpython_label != new.cpython_label:
            parts.append(f"cpython {_arrow(old.cpython_label, new.cpython_label)}")
        if old.path != new.path:
            parts.append(f"was {old.path}")
    else:
        side = new or old
        assert side is not None
        if side.unstable:
            parts.append(f"unstable {side.unstable}")
        if side.stable_shims:
            parts.append(f"shims {side.stable_shims}")
        if side.min_torch:
            parts.append(f"min-torch {side.min_torch}")
        if side.error:
            parts.append(f"error: {side.error}")
    return "  ".join(parts)


def _entity_lines(sign: str, changes: tuple[EntityChange, ...], verbose: bool) -> list[str]:
    lines = []
    for change in changes:
        line = f"        {sign} {len(change.symbols):>3}  {change.entity}"
        if sign == "+" or change.advice.has_replacement:
            line += f"  -> {replacement_text(change.advice)}"
        lines.append(line)
        if verbose:
            shown = change.symbols[:SYMBOLS_SHOWN]
            lines += [f"               {symbol}" for symbol in shown]
            if len(change.symbols) > SYMBOLS_SHOWN:
                lines.append(f"               ... {len(change.symbols) - SYMBOLS_SHOWN} more")
    return lines


def diff_lines(diff: PackageDiff, *, verbose: bool = False) -> list[str]:
    """The text report: the package's roll-ups, findings, regressions, then every library
    that changed (unchanged ones are counted; ``verbose`` lists them and each symbol)."""
    old, new = diff.old, diff.new
    lines = [
        f"Diff: {old.label} -> {new.label}",
        f"  Torch ABI:   {_arrow(_torch(old.torch_verdict), _torch(new.torch_verdict))}",
        f"  Min torch:   {_arrow(old.min_torch or 'n/a', new.min_torch or 'n/a')}",
        f"  CPython ABI: {_arrow(_cpython(old.cpython_verdict), _cpython(new.cpython_verdict))}",
        f"  Libraries:   {_arrow(old.libraries, new.libraries)}" + _status_counts(diff.libraries),
        f"  Unstable imports: {_arrow(old.unstable, new.unstable)} "
        f"({diff.unstable_removed} removed, {diff.unstable_added} added)",
    ]
    if diff.findings_fixed:
        lines.append("  Findings fixed:")
        lines += [f"    {_finding_line(f)}" for f in diff.findings_fixed]
    if diff.findings_introduced:
        lines.append("  Findings introduced:")
        lines += [f"    {_finding_line(f)}" for f in diff.findings_introduced]
    if diff.regressions:
        lines.append("  Regressions:")
        lines += [f"    [{r.gate}] {r.reason}" for r in diff.regressions]
    else:
        lines.append(f"  Regressions: {NO_REGRESSIONS_UNREAD if diff.errors else 'none'}")
    if diff.errors:
        lines.append("  Not read:")
        lines += [f"    {error}" for error in diff.errors]
    shown = [c for c in diff.libraries if verbose or c.status is not LibraryStatus.UNCHANGED]
    if shown:
        lines.append("  -- libraries --")
    first_with: dict[tuple[object, ...], str] = {}
    for change in shown:
        facts = _facts(change)
        lines.append(
            f"    {change.status:<9} [{_labels(change):<20}] {change.name}"
            + (f"  {facts}" if facts else "")
        )
        lines += _change_details(change, verbose, first_with)
    return lines


def _change_details(
    change: LibraryChange, verbose: bool, first_with: dict[tuple[object, ...], str]
) -> list[str]:
    """A library's entity changes (or, when an earlier library had the very same ones, a
    pointer to it: builds for several FFmpeg or CUDA versions repeat them), then what else
    it gained."""
    lines: list[str] = []
    key = (
        *((e.entity, len(e.symbols)) for e in change.removed),
        "+",
        *((e.entity, len(e.symbols)) for e in change.added),
    )
    if (change.removed or change.added) and not verbose and key in first_with:
        lines.append(f"        (the same unstable imports as {first_with[key]})")
    else:
        first_with.setdefault(key, change.name)
        lines += _entity_lines("-", change.removed, verbose)
        lines += _entity_lines("+", change.added, verbose)
    if change.shims_added and verbose:
        lines.append(f"        shims gained: {', '.join(change.shims_added)}")
    if change.cpython_added and change.old is not None:
        lines.append(f"        CPython API gained: {', '.join(change.cpython_added[:5])}")
    return lines


def _status_counts(changes: tuple[LibraryChange, ...]) -> str:
    counts = dict.fromkeys(LibraryStatus, 0)
    for change in changes:
        counts[change.status] += 1
    parts = [f"{counts[s]} {s}" for s in LibraryStatus if counts[s]]
    return f" ({', '.join(parts)})" if parts else ""


# -- Markdown ----------------------------------------------------------------------------------


def _cell(change: LibraryChange, value: Callable[[Side], object]) -> str:
    """One fact of a library for a Markdown cell: ``old → new`` for a library both builds
    have (``-`` for a missing value), the one value for an added or removed one."""
    if change.old is None or change.new is None:
        side = change.new or change.old
        assert side is not None
        shown = value(side)
        return markdown_text(str(shown)) if shown is not None else "-"
    old, new = value(change.old), value(change.new)
    old_text = "-" if old is None else markdown_text(str(old))
    new_text = "-" if new is None else markdown_text(str(new))
    return old_text if old_text == new_text else f"{old_text} → {new_text}"


def diff_markdown(diff: PackageDiff, *, details: bool = True) -> str:
    """The Markdown report for a pull request: a summary table, regressions, findings, a
    table of the libraries that changed, and (``details``) the entity changes per library in
    a collapsed section."""
    old, new = diff.old, diff.new
    lines = [
        f"### torch-abi-audit diff: {markdown_text(old.label)} → {markdown_text(new.label)}",
        "",
        "| | old | new |",
        "|---|---|---|",
        f"| Torch ABI | {_torch(old.torch_verdict)} | {_torch(new.torch_verdict)} |",
        f"| Min torch | {old.min_torch or 'n/a'} | {new.min_torch or 'n/a'} |",
        f"| CPython ABI | {_cpython(old.cpython_verdict)} | {_cpython(new.cpython_verdict)} |",
        f"| Libraries | {old.libraries} | {new.libraries} |",
        f"| Unstable imports | {old.unstable} | {new.unstable} |",
        "",
    ]
    if diff.regressions:
        lines.append(f"**Regressions ({len(diff.regressions)}):**")
        lines.append("")
        lines += [f"- `{r.gate}`: {markdown_text(r.reason)}" for r in diff.regressions]
    else:
        lines.append(f"**Regressions:** {NO_REGRESSIONS_UNREAD if diff.errors else 'none'}.")
    if diff.errors:
        lines += ["", "**Not read:**", ""]
        lines += [f"- {markdown_text(error)}" for error in diff.errors]
    for title, findings in (
        ("fixed", diff.findings_fixed),
        ("introduced", diff.findings_introduced),
    ):
        if findings:
            lines += ["", f"**Findings {title}:**", ""]
            lines += [f"- {f.severity} `{f.code}`: {markdown_text(f.message)}" for f in findings]
    changed = [c for c in diff.libraries if c.status is not LibraryStatus.UNCHANGED]
    unchanged = len(diff.libraries) - len(changed)
    lines += ["", "| library | change | torch | unstable imports | min torch |"]
    lines.append("|---|---|---|---:|---|")
    for change in changed:
        lines.append(
            f"| {markdown_code(change.name)} | {change.status} | "
            f"{_cell(change, lambda side: side.torch_label)} | "
            f"{_cell(change, lambda side: side.unstable)} | "
            f"{_cell(change, lambda side: side.min_torch)} |"
        )
    if unchanged:
        lines += ["", f"{unchanged} libraries unchanged."]
    if details:
        lines += _markdown_entities(changed)
    elif any(c.removed or c.added for c in changed):
        lines += [
            "",
            "The unstable imports per library are left out: they do not fit in a comment.",
        ]
    return "\n".join(lines) + "\n"


def _markdown_entities(changed: list[LibraryChange]) -> list[str]:
    with_entities = [c for c in changed if c.removed or c.added]
    if not with_entities:
        return []
    total = sum(len(e.symbols) for c in with_entities for e in (*c.removed, *c.added))
    lines = [
        "",
        "<details>",
        f"<summary>Unstable imports removed and added, by libtorch entity ({total})</summary>",
        "",
    ]
    for change in with_entities:
        lines += [
            f"**{markdown_code(change.name)}**",
            "",
            "| | imports | libtorch entity | replacement |",
            "|---|---:|---|---|",
        ]
        for sign, entities in (("\u2212", change.removed), ("+", change.added)):
            for entity in entities:
                replacement = (
                    markdown_code(entity.advice.replacement)
                    if entity.advice.replacement
                    else "no stable replacement yet"
                )
                entity_cell = markdown_code(entity.entity)
                lines.append(f"| {sign} | {len(entity.symbols)} | {entity_cell} | {replacement} |")
        lines.append("")
    lines.append("</details>")
    return lines


# -- JSON --------------------------------------------------------------------------------------


def _side_object(side: Any) -> dict[str, Any] | None:
    if side is None:
        return None
    return {
        "path": side.path,
        "torch_label": side.torch_label,
        "cpython_label": side.cpython_label,
        "min_torch": side.min_torch,
        "unstable": side.unstable,
        "stable_shims": side.stable_shims,
        "error": side.error,
    }


def _entities_object(changes: tuple[EntityChange, ...]) -> list[dict[str, Any]]:
    return [
        {
            "entity": c.entity,
            "symbols": list(c.symbols),
            "advice": advice_object(c.advice),
        }
        for c in changes
    ]


def diff_object(diff: PackageDiff) -> dict[str, Any]:
    """The ``diff`` object of the JSON document."""
    summaries = {
        side: {
            "label": summary.label,
            "name": summary.name,
            "version": summary.version,
            "torch_verdict": summary.torch_verdict,
            "cpython_verdict": summary.cpython_verdict,
            "min_torch_version": summary.min_torch,
            "libraries": summary.libraries,
            "unstable": summary.unstable,
        }
        for side, summary in (("old", diff.old), ("new", diff.new))
    }
    return {
        **summaries,
        "unstable_removed": diff.unstable_removed,
        "unstable_added": diff.unstable_added,
        "libraries": [
            {
                "status": str(c.status),
                "matched_by": c.matched_by,
                "old": _side_object(c.old),
                "new": _side_object(c.new),
                "removed": _entities_object(c.removed),
                "added": _entities_object(c.added),
                "entities_gained": list(c.entities_gained),
                "shims_added": list(c.shims_added),
                "shims_removed": list(c.shims_removed),
                "cpython_added": list(c.cpython_added),
                "cpython_removed": list(c.cpython_removed),
            }
            for c in diff.libraries
        ],
        "findings_fixed": [finding_object(f) for f in diff.findings_fixed],
        "findings_introduced": [finding_object(f) for f in diff.findings_introduced],
        "regressions": [{"gate": str(r.gate), "reason": r.reason} for r in diff.regressions],
        "errors": list(diff.errors),
    }
