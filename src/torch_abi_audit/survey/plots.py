"""The report's plots, drawn with matplotlib as SVG (text kept as text, so a browser, a screen
reader and a test can read the titles, axes and labels).

Each function takes the :class:`~torch_abi_audit.survey.summary.Summary` and returns SVG markup,
or ``None`` when there is nothing to plot. matplotlib is imported here only (the ``survey``
extra), with the non-interactive SVG backend.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch_abi_audit.survey.summary import Summary

#: Colours per torch verdict (colour-blind safe: Okabe-Ito).
COLOURS = {
    "stable": "#009E73",
    "unstable": "#D55E00",
    "no torch": "#999999",
    "failed": "#000000",
    "unreadable": "#CC79A7",
    "error": "#D55E00",
    "warning": "#E69F00",
    "info": "#56B4E9",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("svg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays <text>, not paths
    matplotlib.rcParams["svg.hashsalt"] = "torch-abi-audit"  # stable ids: reproducible files
    import matplotlib.pyplot as plt

    return plt


def _svg(draw: Callable[[Any, Any], None], size: tuple[float, float], title: str) -> str:
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(figsize=size, layout="constrained")
    try:
        for axis in (axes.xaxis, axes.yaxis):
            axis.set_major_locator(MaxNLocator(integer=True))  # counts of wheels
        draw(figure, axes)
        axes.set_title(title)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Title": title})
    finally:
        plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # no XML prolog: the SVG is inlined in HTML


def _stacked(
    axes: Any, labels: Sequence[str], series: Mapping[str, Sequence[int]], *, horizontal: bool
) -> None:
    base = [0] * len(labels)
    positions = list(range(len(labels)))
    for name, values in series.items():
        if horizontal:
            axes.barh(positions, values, left=base, label=name, color=COLOURS[name])
        else:
            axes.bar(positions, values, bottom=base, label=name, color=COLOURS[name])
        base = [b + v for b, v in zip(base, values, strict=True)]
    if horizontal:
        axes.set_yticks(positions, labels)
        axes.invert_yaxis()
    else:
        axes.set_xticks(positions, labels, rotation=60, ha="right")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def months_plot(summary: Summary) -> str | None:
    """Wheels per upload month, stacked by torch verdict."""
    if not summary.months:
        return None
    labels = [m for m, *_ in summary.months]
    series = {
        "stable": [s for _, s, _, _ in summary.months],
        "unstable": [u for _, _, u, _ in summary.months],
        "no torch": [n for _, _, _, n in summary.months],
    }

    shares = [100 * s / (s + u) if s + u else None for _, s, u, _ in summary.months]

    def draw(_figure: Any, axes: Any) -> None:
        _stacked(axes, labels, series, horizontal=False)
        axes.set_xlabel("month the wheel was uploaded")
        axes.set_ylabel("wheels")
        share_axis = axes.twinx()
        points = [(i, v) for i, v in enumerate(shares) if v is not None]
        share_axis.plot(
            [i for i, _ in points],
            [v for _, v in points],
            color="#0072B2",
            marker="o",
            label="stable share of wheels using torch (%)",
        )
        share_axis.set_ylim(0, 105)
        share_axis.set_ylabel("stable share of wheels using torch (%)")

    width = max(6.0, 0.35 * len(labels) + 2)
    return _svg(draw, (width, 4.0), "Stable-ABI wheels per month")


def packages_plot(summary: Summary) -> str | None:
    """Wheels per package, stacked by torch verdict."""
    if not summary.packages:
        return None
    labels = [p.name for p in summary.packages]
    series = {
        "stable": [p.stable for p in summary.packages],
        "unstable": [p.unstable for p in summary.packages],
        "no torch": [p.no_torch for p in summary.packages],
        "failed": [p.failed for p in summary.packages],
        "unreadable": [p.unreadable for p in summary.packages],
    }

    def draw(_figure: Any, axes: Any) -> None:
        _stacked(axes, labels, series, horizontal=True)
        axes.set_xlabel("wheels surveyed")

    return _svg(draw, (7.0, 0.28 * len(labels) + 1.5), "Stable-ABI wheels per package")


def _bars(
    labels: Sequence[str],
    values: Sequence[int],
    colours: Sequence[str],
    title: str,
    axis: str,
    *,
    horizontal: bool = False,
) -> str:
    def draw(_figure: Any, axes: Any) -> None:
        positions = list(range(len(labels)))
        if horizontal:
            axes.barh(positions, values, color=colours)
            axes.set_yticks(positions, labels)
            axes.invert_yaxis()
            axes.set_xlabel(axis)
        else:
            axes.bar(positions, values, color=colours)
            axes.set_xticks(positions, labels)
            axes.set_ylabel(axis)
        for position, value in zip(positions, values, strict=True):
            if horizontal:
                axes.annotate(
                    str(value),
                    (value, position),
                    xytext=(3, 0),
                    textcoords="offset points",
                    va="center",
                )
            else:
                axes.annotate(
                    str(value),
                    (position, value),
                    xytext=(0, 3),
                    textcoords="offset points",
                    ha="center",
                )

    height = 0.35 * len(labels) + 1.5 if horizontal else 3.5
    return _svg(draw, (7.0, height), title)


def min_torch_plot(summary: Summary) -> str | None:
    """Stable wheels by the oldest torch they load on."""
    if not summary.min_torch:
        return None
    labels = [release for release, _ in summary.min_torch]
    values = [count for _, count in summary.min_torch]
    return _bars(
        labels,
        values,
        [COLOURS["stable"]] * len(labels),
        "Oldest torch the stable wheels load on",
        "stable wheels",
    )


def findings_plot(summary: Summary) -> str | None:
    """Wheels per metadata finding, coloured by severity."""
    if not summary.findings:
        return None
    labels = [code for code, _, _ in summary.findings]
    values = [count for _, _, count in summary.findings]
    colours = [COLOURS.get(severity, "#999999") for _, severity, _ in summary.findings]
    return _bars(labels, values, colours, "Metadata findings by kind", "wheels", horizontal=True)


#: The colour of each load category by its outcome (the part after the comma).
LOAD_COLOURS = {
    "loads": COLOURS["stable"],
    "fails": COLOURS["error"],
    "unknown": COLOURS["warning"],
    "admits it": COLOURS["unstable"],
    "no torch requirement": COLOURS["warning"],
}


def load_colour(category: str) -> str:
    """The bar colour of a load category (grey: set aside, or nothing predicted)."""
    _, _, outcome = category.partition(", ")
    if category == "unstable, loads":
        return COLOURS["info"]  # loads, but built for another release: by luck of the exports
    return LOAD_COLOURS.get(outcome, COLOURS["no torch"])


def loads_plot(summary: Summary) -> str | None:
    """Wheels that use torch, by their predicted load on the newest torch."""
    if not summary.loads:
        return None
    labels = [row.category for row in summary.loads]
    values = [row.wheels for row in summary.loads]
    colours = [load_colour(row.category) for row in summary.loads]
    against = summary.headline.load_against or "the newest torch"
    return _bars(
        labels,
        values,
        colours,
        f"Predicted loads on {against}",
        "wheels using torch",
        horizontal=True,
    )


#: (file stem, caption, plot) in the report's order.
PLOTS: tuple[tuple[str, str, Callable[[Summary], str | None]], ...] = (
    ("months", "Stable-ABI share of wheels per upload month", months_plot),
    ("packages", "Stable-ABI share of wheels per package", packages_plot),
    ("min-torch", "Distribution of the oldest torch stable wheels load on", min_torch_plot),
    ("findings", "Metadata findings by kind", findings_plot),
    ("loads", "Predicted loads on the newest torch", loads_plot),
)
