"""Plots and the HTML page of an item-analysis report (see medkit.course.analytics)."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from medkit.course.analytics import ItemAnalysis

PLOT_FILES = {
    "totals": "totals.png",
    "items": "items.png",
    "objectives": "objectives.png",
}
FLAGGED_COLOUR = "#c0392b"
PLAIN_COLOUR = "#2e86c1"
BAND_COLOURS = ("#c0392b", "#f0b27a", "#27ae60")
DPI = 110


def write_plots(analysis: ItemAnalysis, folder: Path) -> dict[str, Path]:
    """Draw the three report figures as PNG files in ``folder``."""
    figures = {
        "totals": _plot_totals(analysis),
        "items": _plot_items(analysis),
        "objectives": _plot_objectives(analysis),
    }
    paths = {}
    for name, figure in figures.items():
        path = folder / PLOT_FILES[name]
        figure.savefig(path, dpi=DPI)
        paths[name] = path
    return paths


def _new_figure(width: float, height: float) -> Figure:
    """Make a figure on the Agg canvas, leaving pyplot's global state alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _plot_totals(analysis: ItemAnalysis) -> Figure:
    from matplotlib.ticker import MaxNLocator

    fractions = analysis.trainees["fraction"].dropna()
    figure = _new_figure(6.4, 3.6)
    ax = figure.add_subplot()
    ax.hist(fractions, bins=np.linspace(0, 1, 11), color=PLAIN_COLOUR, rwidth=0.9)
    if not fractions.empty:
        mean = float(fractions.mean())
        ax.axvline(mean, color="black", linestyle="--", label=f"mean {mean:.2f}")
        ax.legend(loc="upper left")
    maximum = analysis.trainees["max_score"].iloc[0]
    ax.set_xlabel(f"fraction of the {maximum:g} autograded points")
    ax.set_ylabel("trainees")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0, 1)
    ax.set_title(f"{analysis.assignment}: total scores of {len(fractions)} trainees")
    return figure


def _plot_items(analysis: ItemAnalysis) -> Figure:
    items = analysis.items.dropna(subset=["difficulty"])
    flagged = items.index.isin(analysis.reteach.index)
    colours = [FLAGGED_COLOUR if flag else PLAIN_COLOUR for flag in flagged]
    positions = np.arange(len(items))[::-1]
    figure = _new_figure(9.0, 1.2 + 0.45 * max(len(items), 2))
    left, right = figure.subplots(1, 2, sharey=True)

    left.barh(positions, items["difficulty"], color=colours)
    left.axvline(analysis.min_difficulty, color="black", linestyle="--")
    left.set_xlim(0, 1)
    left.set_xlabel("difficulty (mean fraction of marks)")
    left.set_yticks(positions, items.index)

    discrimination = items["discrimination"].fillna(0)
    right.barh(positions, discrimination, color=colours)
    right.axvline(analysis.min_discrimination, color="black", linestyle="--")
    right.axvline(0, color="grey", linewidth=0.8)
    right.set_xlim(min(-0.2, float(discrimination.min()) - 0.05), 1)
    right.set_xlabel("discrimination (corrected item-total r)")
    figure.suptitle(
        f"{analysis.assignment}: items (red: to reteach; dashed: thresholds)"
    )
    return figure


def _plot_objectives(analysis: ItemAnalysis) -> Figure:
    objectives = list(analysis.objectives.index)
    mastery = analysis.trainees[objectives]
    level = analysis.mastery_level
    bands = {
        "below 0.5": (mastery < 0.5).mean(),
        f"0.5 to {level:g}": ((mastery >= 0.5) & (mastery < level)).mean(),
        f"{level:g} or more": (mastery >= level).mean(),
    }
    positions = np.arange(len(objectives))[::-1]
    figure = _new_figure(7.5, 1.2 + 0.45 * max(len(objectives), 2))
    ax = figure.add_subplot()
    start = np.zeros(len(objectives))
    for (label, shares), colour in zip(bands.items(), BAND_COLOURS, strict=True):
        ax.barh(positions, shares, left=start, color=colour, label=label)
        start += shares.to_numpy()
    ax.set_yticks(positions, objectives)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of trainees by fraction of the objective's marks")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"{analysis.assignment}: mastery of each learning objective")
    return figure


# HTML -------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 64em;
       padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
.figures dt { font-weight: bold; }
.reteach li { margin-bottom: 0.3em; }
"""


def write_html(analysis: ItemAnalysis, plots: dict[str, Path], path: Path) -> Path:
    """Write the report page, linking the PNG files by their names."""
    title = f"Item analysis of {analysis.assignment}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{_escape(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{_escape(title)}</h1>",
        _summary(analysis),
        "<h2>What to reteach</h2>",
        _reteach(analysis),
        "<h2>Total scores</h2>",
        _image(plots["totals"], "Histogram of the trainees' total scores"),
        "<h2>Items</h2>",
        _image(plots["items"], "Difficulty and discrimination of each item"),
        _table(_items_table(analysis)),
        "<h2>Learning objectives</h2>",
        _image(plots["objectives"], "Mastery of each learning objective"),
        _table(_objectives_table(analysis)),
        "<h2>Trainees</h2>",
        _table(_trainees_table(analysis)),
        "<h2>How to read these figures</h2>",
        _explanation(analysis),
        "</body>",
        "</html>",
    ]
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def _summary(analysis: ItemAnalysis) -> str:
    trainees = analysis.trainees
    graded = analysis.items["difficulty"].notna().sum()
    pending = analysis.pending_items
    figures = {
        "Trainees": f"{analysis.n_trainees}",
        "Items analysed": f"{graded} of {len(analysis.items)}",
        "Mean total": (
            f"{trainees['score'].mean():.2f} of {trainees['max_score'].iloc[0]:g} "
            f"points ({trainees['fraction'].mean():.0%})"
        ),
        "Cronbach's alpha": _number(analysis.alpha),
        "Awaiting manual grading": ", ".join(pending) if pending else "none",
    }
    rows = "".join(
        f"<dt>{_escape(name)}</dt><dd>{_escape(value)}</dd>"
        for name, value in figures.items()
    )
    return f'<dl class="figures">{rows}</dl>'


def _reteach(analysis: ItemAnalysis) -> str:
    if analysis.reteach.empty:
        return "<p>No item is below the difficulty or discrimination thresholds.</p>"
    entries = "".join(
        f"<li><strong>{_escape(item)}</strong> (objective "
        f"<em>{_escape(row['objective'])}</em>): {_escape(row['reason'])}</li>"
        for item, row in analysis.reteach.iterrows()
    )
    return f'<ul class="reteach">{entries}</ul>'


def _items_table(analysis: ItemAnalysis) -> pd.DataFrame:
    items = analysis.items.copy()
    items["reteach"] = np.where(items.index.isin(analysis.reteach.index), "yes", "")
    return items


def _objectives_table(analysis: ItemAnalysis) -> pd.DataFrame:
    table = analysis.objectives.copy()
    table["mastered"] = table["mastered"].map("{:.0%}".format)
    return table.rename(
        columns={"mastered": f"trainees at {analysis.mastery_level:g} or more"}
    )


def _trainees_table(analysis: ItemAnalysis) -> pd.DataFrame:
    return analysis.trainees.sort_values("score", ascending=False, kind="stable")


def _table(frame: pd.DataFrame) -> str:
    # A named index would get a header row of its own; as a column it shares one.
    if frame.index.name is not None:
        frame = frame.reset_index()
    return frame.to_html(
        index=False,
        float_format=_number,
        na_rep="n/a",
        border=0,
        escape=True,
        justify="left",
    )


def _image(path: Path, description: str) -> str:
    return f'<img src="{_escape(path.name)}" alt="{_escape(description)}">'


def _explanation(analysis: ItemAnalysis) -> str:
    return (
        "<ul>"
        "<li><strong>difficulty</strong>: the mean fraction of an item's marks "
        "earned; low values are hard items. Items below "
        f"{analysis.min_difficulty:g} are listed to reteach.</li>"
        "<li><strong>discrimination</strong>: the correlation between an item and "
        "the total of the other items. Items below "
        f"{analysis.min_discrimination:g} separate strong from weak trainees "
        "poorly; a negative value often points to a misleading question or a "
        "wrong test.</li>"
        "<li><strong>Cronbach's alpha</strong>: how consistently the items "
        "measure one skill, from the item and total variances.</li>"
        "<li><strong>mastery</strong>: a trainee's fraction of the marks of the "
        "items tagged with a learning objective.</li>"
        "<li>Items awaiting manual grading are left out until they are graded."
        "</li></ul>"
    )


def _number(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f}".rstrip("0").rstrip(".") if value % 1 else f"{value:g}"


def _escape(text: object) -> str:
    return html.escape(str(text), quote=True)
