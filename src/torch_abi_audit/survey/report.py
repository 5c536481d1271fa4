"""``survey report``: a store as markdown (``report.md``) and a static HTML page (``index.html``).

Both say the same things from one :class:`~torch_abi_audit.survey.summary.Summary`: the
headline numbers, the five plots (as ``plots/*.svg`` beside the markdown, inlined in the HTML,
each followed by its numbers as a table), a table per package and the wheels that failed. The
HTML page loads nothing from anywhere: no script, no stylesheet, no font, no image from outside.
Names and messages come from the index and the audited files: they are escaped for the format
they are written in, with the project's escaping rules (:mod:`torch_abi_audit.renderers.
escaping`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch_abi_audit.renderers.escaping import html_text, markdown_text
from torch_abi_audit.rules.registry import FINDING_CODES
from torch_abi_audit.survey.plots import PLOTS
from torch_abi_audit.survey.store import SurveyStore
from torch_abi_audit.survey.summary import Summary, summarize

Table = tuple[tuple[str, ...], list[tuple[str, ...]]]


def _names(items: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def headline_items(summary: Summary) -> list[tuple[str, str, str]]:
    """(id, label, value) of each headline number, in order."""
    h = summary.headline
    share = (
        f"{h.stable_wheels / (h.stable_wheels + h.unstable_wheels):.0%}"
        if (h.stable_wheels + h.unstable_wheels)
        else "n/a"
    )
    per_core = h.bytes / 1e6 / h.cpu_seconds if h.cpu_seconds else 0.0
    return [
        ("packages", "Packages surveyed", str(h.packages)),
        ("releases", "Releases", str(h.releases)),
        ("wheels", "Wheels", f"{h.wheels} ({h.audited} audited, {h.failed} failed)"),
        ("libraries", "Libraries read", str(h.libraries)),
        ("bytes", "Read", f"{h.bytes / 1e9:.2f} GB"),
        (
            "time",
            "Time",
            f"{h.wall_seconds:.0f} s wall, {h.cpu_seconds:.0f} CPU-s "
            f"({per_core:.1f} MB per CPU-second)",
        ),
        (
            "stable-share",
            "Wheels using torch that keep to the stable ABI",
            f"{share} ({h.stable_wheels} stable, {h.unstable_wheels} unstable; "
            f"{h.no_torch_wheels} use no torch"
            + (f"; {h.unreadable_wheels} unreadable" if h.unreadable_wheels else "")
            + ")",
        ),
        (
            "packages-stable",
            "Packages shipping stable-ABI wheels",
            f"{len(h.packages_with_stable)}: {_names(h.packages_with_stable)}"
            if h.packages_with_stable
            else "0",
        ),
        (
            "packages-all-stable",
            "Packages whose newest release is stable on every platform it ships for",
            f"{len(h.packages_all_stable)}: {_names(h.packages_all_stable)}"
            if h.packages_all_stable
            else "0",
        ),
        (
            "under-declared",
            "Stable wheels that under-declare their torch floor",
            f"{h.under_declared} (of {len(h.under_declared_packages)} packages: "
            f"{_names(h.under_declared_packages)})"
            if h.under_declared
            else "0",
        ),
        (
            "unpinned",
            "Unstable wheels that do not pin torch",
            f"{h.unpinned} (of {len(h.unpinned_packages)} packages: {_names(h.unpinned_packages)})"
            if h.unpinned
            else "0",
        ),
        (
            "newest-torch",
            f"Predicted on {h.load_against or 'the newest torch'}",
            _loads_line(summary),
        ),
    ]


def _loads_line(summary: Summary) -> str:
    """``stable: 41 load, 2 fail; unstable: …`` from the load rows."""
    by_kind: dict[str, list[str]] = {}
    for row in summary.loads:
        kind, _, outcome = row.category.partition(", ")
        by_kind.setdefault(kind, []).append(f"{row.wheels} {_VERBS.get(outcome, outcome)}")
    return "; ".join(f"{kind}: {', '.join(parts)}" for kind, parts in by_kind.items()) or "n/a"


_VERBS = {
    "loads": "load",
    "fails": "fail",
    "unknown": "cannot be told",
    "admits it": "admit it",
    "no torch requirement": "declare no torch",
}


#: What each plot shows, said under its caption.
PLOT_NOTES = {
    "months": "Wheels audited, by the month the index received them, by torch verdict (those "
    "whose libraries could not all be read are left out); the line is the stable share of "
    "those that use torch.",
    "packages": "Every surveyed wheel of each package (all releases and platforms surveyed); "
    "failed: not audited (see the last table), unreadable: audited, but some of its libraries "
    "could not be read (so it has no torch verdict).",
    "min-torch": "For wheels that keep to the stable ABI: the oldest torch release whose shims "
    "they all find (the newest shim they import).",
    "findings": "Wheels with each metadata finding (the codes the metadata gate fails on, and "
    "the informational packaging notes); colour is severity (error, warning, info). The codes "
    "that restate a library's verdict ("
    + ", ".join(code for code, entry in FINDING_CODES.items() if entry.restates_verdict)
    + ") are counted by the plots above, not here.",
    "loads": "Wheels that use torch, on the newest torch release the release data holds, each "
    "library judged against the index's default build of that release for its own platform "
    "(the columns). Stable wheels load unless they import shims it lacks or need torch or CUDA "
    "libraries it does not install (a CUDA runtime of another major); unstable wheels load "
    "only if that build still exports every libtorch symbol they import; unknown: the release "
    "data cannot tell. Pinned elsewhere: the wheel's Requires-Dist excludes this release, so "
    "pip never installs the two together. The second table says why wheels fail or cannot be "
    "told (a wheel may have several reasons).",
}


def plot_tables(summary: Summary) -> dict[str, Table]:
    """The numbers behind each plot, by plot stem."""
    return {
        "months": (
            ("month", "stable", "unstable", "no torch"),
            [(m, str(s), str(u), str(n)) for m, s, u, n in summary.months],
        ),
        "packages": (
            ("package", "stable", "unstable", "no torch", "failed", "unreadable"),
            [
                (
                    p.name,
                    str(p.stable),
                    str(p.unstable),
                    str(p.no_torch),
                    str(p.failed),
                    str(p.unreadable),
                )
                for p in summary.packages
            ],
        ),
        "min-torch": (
            ("oldest torch", "stable wheels"),
            [(release, str(count)) for release, count in summary.min_torch],
        ),
        "findings": (
            ("finding", "severity", "wheels"),
            [(code, severity, str(count)) for code, severity, count in summary.findings],
        ),
        "loads": (
            ("predicted load", "wheels using torch", *summary.load_builds),
            [
                (row.category, str(row.wheels), *(str(n) for n in row.per_build))
                for row in summary.loads
            ],
        ),
    }


def follow_up_tables(summary: Summary) -> dict[str, tuple[str, Table]]:
    """A second table under some plots, by plot stem: (its id suffix, the table)."""
    tables: dict[str, tuple[str, Table]] = {}
    if summary.load_reasons:
        tables["loads"] = (
            "why",
            (
                ("predicted load", "why", "wheels"),
                [(category, why, str(n)) for category, why, n in summary.load_reasons],
            ),
        )
    return tables


def package_table(summary: Summary) -> Table:
    """One row per package: releases, wheels, verdict counts and its newest release."""
    platforms = summary.platforms
    header = (
        "package",
        "releases",
        "wheels",
        "stable",
        "unstable",
        "newest",
        *platforms,
        "newest min torch",
    )
    rows = [
        (
            p.name,
            str(p.releases),
            str(p.wheels),
            str(p.stable),
            str(p.unstable),
            p.newest,
            *(p.newest_verdicts.get(platform, "-") for platform in platforms),
            p.newest_min_torch or "-",
        )
        for p in summary.packages
    ]
    return header, rows


def failure_table(summary: Summary) -> Table:
    """One row per failed wheel."""
    return ("wheel", "stage", "reason"), [tuple(row) for row in summary.failures]


# -- markdown -------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return markdown_text(text) or " "


def _md_table(table: Table) -> str:
    header, rows = table
    lines = [
        "| " + " | ".join(_md_cell(h) for h in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(summary: Summary, title: str, plots: dict[str, str]) -> str:
    """The markdown report; ``plots`` maps plot stems that were drawn to their file names."""
    parts = [f"# {_md_cell(title)}", ""]
    parts += [f"- **{label}**: {_md_cell(value)}" for _, label, value in headline_items(summary)]
    tables = plot_tables(summary)
    follow_ups = follow_up_tables(summary)
    for stem, caption, _ in PLOTS:
        parts += ["", f"## {caption}", "", _md_cell(PLOT_NOTES[stem]), ""]
        if stem in plots:
            parts += [f"![{caption}]({plots[stem]})", ""]
        parts.append(_md_table(tables[stem]) if tables[stem][1] else "Nothing to show.")
        if stem in follow_ups:
            parts += ["", _md_table(follow_ups[stem][1])]
    parts += ["", "## Packages", "", _md_table(package_table(summary))]
    if summary.failures:
        parts += ["", "## Wheels that could not be audited", "", _md_table(failure_table(summary))]
    return "\n".join(parts) + "\n"


# -- HTML -----------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; }
dl.headline { display: grid; grid-template-columns: max-content auto; gap: 0.3rem 1rem; }
dt { font-weight: 600; }
figure { margin: 1rem 0; }
figure svg { max-width: 100%; height: auto; }
"""


def _html_table(table: Table, table_id: str) -> str:
    header, rows = table
    head = "".join(f"<th scope='col'>{html_text(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html_text(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table id='{table_id}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(summary: Summary, title: str, plots: dict[str, str]) -> str:
    """The HTML page; ``plots`` maps plot stems that were drawn to their SVG markup."""
    items = "".join(
        f"<dt>{html_text(label)}</dt><dd id='headline-{key}'>{html_text(value)}</dd>"
        for key, label, value in headline_items(summary)
    )
    sections = []
    tables = plot_tables(summary)
    follow_ups = follow_up_tables(summary)
    for stem, caption, _ in PLOTS:
        figure = (
            f"<figure id='plot-{stem}'>{plots[stem]}<figcaption>{html_text(caption)}"
            "</figcaption></figure>"
            if stem in plots
            else "<p>Nothing to show.</p>"
        )
        second = ""
        if stem in follow_ups:
            suffix, table = follow_ups[stem]
            second = _html_table(table, f"data-{stem}-{suffix}")
        sections.append(
            f"<section id='section-{stem}'><h2>{html_text(caption)}</h2>"
            f"<p>{html_text(PLOT_NOTES[stem])}</p>{figure}"
            f"{_html_table(tables[stem], f'data-{stem}')}{second}</section>"
        )
    sections.append(
        f"<section id='section-packages'><h2>Packages</h2>"
        f"{_html_table(package_table(summary), 'packages')}</section>"
    )
    if summary.failures:
        sections.append(
            "<section id='section-failures'><h2>Wheels that could not be audited</h2>"
            f"{_html_table(failure_table(summary), 'failures')}</section>"
        )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{html_text(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html_text(title)}</h1><dl class='headline'>{items}</dl>"
        + "".join(sections)
        + "</body></html>\n"
    )


def write_report(store: SurveyStore, directory: Path, *, title: str) -> list[Path]:
    """Write ``report.md``, ``index.html`` and ``plots/*.svg``; returns the files written."""
    summary = summarize(store)
    plots_dir = directory / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    svgs: dict[str, str] = {}
    written = []
    for stem, _, draw in PLOTS:
        svg = draw(summary)
        if svg is None:
            continue
        svgs[stem] = svg
        path = plots_dir / f"{stem}.svg"
        path.write_text(svg, encoding="utf-8")
        written.append(path)
    markdown = directory / "report.md"
    markdown.write_text(
        render_markdown(summary, title, {s: f"plots/{s}.svg" for s in svgs}), encoding="utf-8"
    )
    page = directory / "index.html"
    page.write_text(render_html(summary, title, svgs), encoding="utf-8")
    return [markdown, page, *written]
