"""Widgets of the digitization lesson: the cleaning explorer and its parts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def clean_table(frame: pd.DataFrame, table: str, *, dayfirst: bool = True):
    """Clean a raw hospital table with the default rules and a chosen date order.

    Parameters
    ----------
    frame : DataFrame
        The raw table as :func:`medkit.digitize.read_table` returns it.
    table : str
        ``"patients"``, ``"visits"`` or ``"labs"``.
    dayfirst : bool, default=True
        Read ``07/03/1956`` as 7 March (True) or 3 July (False).

    Returns
    -------
    medkit.digitize.CleanResult
    """
    from dataclasses import replace

    from medkit import digitize

    spec = replace(digitize.HOSPITAL[table], dayfirst=dayfirst)
    return digitize.clean(frame, spec)


def compare_column(
    raw: pd.DataFrame, result, column: str, top: int = 8
) -> pd.DataFrame:
    """Count the most common values of a column before and after cleaning.

    Parameters
    ----------
    raw : DataFrame
        The raw table, every column as text.
    result : medkit.digitize.CleanResult
        The outcome of cleaning `raw`.
    column : str
        The column to compare.
    top : int, default=8
        How many of the most common raw values to list.

    Returns
    -------
    DataFrame
        Indexed by the raw value as written: ``raw rows`` (how often it occurs
        in the raw file) and ``clean values`` (every value the clean table holds
        for rows written that way, or ``<not kept>`` when all such rows were
        quarantined or removed as duplicates).
    """
    written = raw[column]
    kept = pd.DataFrame(
        {
            "raw": written.loc[result.frame.index],
            "clean": result.frame[column].astype("string").fillna("<missing>"),
        }
    )
    clean_values = kept.groupby("raw")["clean"].agg(lambda v: ", ".join(sorted(set(v))))
    counts = written.value_counts().head(top)
    table = pd.DataFrame({"raw rows": counts})
    table["clean values"] = [
        clean_values.get(value, "<not kept>") for value in counts.index
    ]
    table.index.name = f"{column} as written"
    return table


def plot_counts(result, *, ax=None):
    """Draw the clean, quarantined and duplicate rows of a cleaned table.

    Parameters
    ----------
    result : medkit.digitize.CleanResult
        The outcome of :func:`medkit.digitize.clean`.
    ax : matplotlib Axes, optional
        Where to draw; a new figure is made when omitted.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 2.4))
    counts = result.counts
    labels = ["clean", "quarantined", "duplicates"]
    values = [counts[label] for label in labels]
    bars = ax.barh(labels, values, color=["#4c72b0", "#dd8452", "#8c8c8c"])
    ax.bar_label(bars, padding=3)
    ax.set_xlabel(f"rows (of {counts['read']} read)")
    ax.set_title(f"{result.table}: where every row went")
    ax.invert_yaxis()
    ax.figure.tight_layout()
    return ax.figure


def plot_column(raw: pd.DataFrame, result, column: str, *, top: int = 10):
    """Draw a column as written beside the same column after cleaning.

    Numeric columns are drawn as histograms, so a unit mix-up shows as a second
    peak before cleaning; other columns as bars of their most common values.

    Parameters
    ----------
    raw : DataFrame
        The raw table, every column as text.
    result : medkit.digitize.CleanResult
        The outcome of cleaning `raw`.
    column : str
        The column to draw.
    top : int, default=10
        How many of the most common values to draw for a text column.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    figure, (before, after) = plt.subplots(1, 2, figsize=(9, 3))
    clean = result.frame[column]
    if pd.api.types.is_numeric_dtype(clean):
        written = pd.to_numeric(raw[column], errors="coerce").dropna()
        before.hist(written, bins=40, color="#8c8c8c")
        after.hist(clean.dropna().astype(float), bins=40, color="#4c72b0")
    else:
        written = raw[column].value_counts().head(top)
        cleaned = clean.astype("string").fillna("<missing>").value_counts().head(top)
        before.barh(
            [str(v) for v in written.index], written.to_numpy(), color="#8c8c8c"
        )
        after.barh([str(v) for v in cleaned.index], cleaned.to_numpy(), color="#4c72b0")
        before.invert_yaxis()
        after.invert_yaxis()
    before.set_title(f"{column} as written ({len(raw)} rows)")
    after.set_title(f"{column} after cleaning ({len(clean)} rows)")
    figure.tight_layout()
    return figure


def cleaning_explorer(raw_dir: str | Path):
    """Build a widget to explore how the cleaning rules change each table.

    Choose a table, a column, the rules to list and the date order; the view
    shows where every row went, what each chosen rule changed, and the most
    common values of the column before and after cleaning.

    Parameters
    ----------
    raw_dir : str or Path
        Folder with ``patients.csv``, ``visits.csv`` and ``labs.csv``.

    Returns
    -------
    ipywidgets.VBox
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    from medkit import digitize

    raw_tables = {
        name: digitize.read_table(Path(raw_dir) / f"{name}.csv", spec)
        for name, spec in digitize.HOSPITAL.items()
    }
    table = widgets.Dropdown(options=list(raw_tables), description="Table:")
    column = widgets.Dropdown(description="Column:")
    rules = widgets.SelectMultiple(
        options=digitize.RULES, value=digitize.RULES, rows=5, description="Rules:"
    )
    dayfirst = widgets.Checkbox(value=True, description="Day first (07/03 = 7 March)")
    output = widgets.Output()

    def on_table(_change: object = None) -> None:
        column.options = list(raw_tables[table.value].columns)

    def refresh(_change: object = None) -> None:
        raw = raw_tables[table.value]
        result = clean_table(raw, table.value, dayfirst=dayfirst.value)
        log = result.log[result.log["rule"].isin(rules.value)]
        output.clear_output(wait=True)
        with output:
            figure = plot_counts(result)
            display(figure)
            plt.close(figure)
            display(widgets.HTML("<b>What the chosen rules changed</b>"))
            display(log)
            if column.value is not None:
                display(compare_column(raw, result, column.value))
                figure = plot_column(raw, result, column.value)
                display(figure)
                plt.close(figure)

    on_table()
    table.observe(on_table, names="value")
    for control in (table, column, rules, dayfirst):
        control.observe(refresh, names="value")
    refresh()
    controls = widgets.HBox([widgets.VBox([table, column, dayfirst]), rules])
    return widgets.VBox([controls, output])
