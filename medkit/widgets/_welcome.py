"""Widgets of the welcome lesson: the course map and the raw-data browser."""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """One stage of the course: a property of digital healthcare and its lesson.

    ``ready`` is False for a stage whose lesson and module are not released yet.
    """

    key: str
    title: str
    chinese: str
    formula: str
    meaning: str
    how: str
    lesson: str
    module: str
    ready: bool = True


STAGES: tuple[Stage, ...] = (
    Stage(
        key="digitization",
        title="Data-driven",
        chinese="数据化",
        formula="D = E(R)",
        meaning=(
            "Raw records R become encoded data D that a computer can count, join "
            "and check."
        ),
        how=(
            "Profile the exports, clean them with named rules, encode categories "
            "with a reversible codebook and store the result in a database. Rows "
            "that fail a rule go to a quarantine table with the reason."
        ),
        lesson="01_digitization.ipynb",
        module="medkit.digitize",
    ),
    Stage(
        key="intelligence",
        title="Intelligent",
        chinese="智能化",
        formula="S = A(R)",
        meaning="An analysis A of the records gives a service S, such as a risk score.",
        how=(
            "Predict 30-day readmission without leakage, report sensitivity, "
            "specificity, AUROC and calibration, and explain each prediction."
        ),
        lesson="02_intelligence.ipynb",
        module="medkit.intelligence",
    ),
    Stage(
        key="networking",
        title="Networked",
        chinese="网络化",
        formula="N = C(R)",
        meaning="Records reach another site through a channel C that protects them.",
        how=(
            "De-identify the records, check k-anonymity, and exchange statistics "
            "and models over an authenticated HTTP service."
        ),
        lesson="03_networking.ipynb",
        module="medkit.network",
    ),
    Stage(
        key="personalization",
        title="Personalized",
        chinese="个性化",
        formula="P = F(T)",
        meaning="A service P is fitted to the information T about one patient.",
        how=(
            "Find similar patients from English and Chinese notes and recommend "
            "services with the reasons, then measure the recommendations."
        ),
        lesson="04_personalization.ipynb",
        module="medkit.personalize",
    ),
    Stage(
        key="capstone",
        title="Capstone",
        chinese="综合实践",
        formula="E → A → C → F",
        meaning=(
            "The four transformations, one after the other, on the exports of a "
            "second hospital whose system writes its data differently."
        ),
        how=(
            "Adapt the cleaning specs to site B, train and validate a model there, "
            "share its de-identified stays with site A, recommend services to its "
            "patients, and measure the field's open problems on the result."
        ),
        lesson="05_capstone.ipynb",
        module="medkit.datasets.write_site",
    ),
)


def describe_stage(key: str) -> str:
    """Render one stage of the course map as HTML.

    Parameters
    ----------
    key : str
        The stage key, one of ``"digitization"``, ``"intelligence"``,
        ``"networking"``, ``"personalization"`` or ``"capstone"``.

    Returns
    -------
    str
        An HTML fragment with the property, its formula, meaning and method.

    Raises
    ------
    KeyError
        If `key` names no stage.
    """
    stages = {stage.key: stage for stage in STAGES}
    if key not in stages:
        raise KeyError(f"stage {key!r} not found; expected one of {sorted(stages)}")
    stage = stages[key]
    return (
        f"<h4>{html.escape(stage.title)} ({stage.chinese}): "
        f"<code>{stage.formula}</code></h4>"
        f"<p><b>What it means.</b> {html.escape(stage.meaning)}</p>"
        f"<p><b>How it is done.</b> {html.escape(stage.how)}</p>"
        f"<p><b>Where.</b> lesson <code>{stage.lesson}</code>, "
        f"module <code>{stage.module}</code>"
        f"{'' if stage.ready else ' (in preparation: not in this release yet)'}</p>"
    )


def course_map():
    """Build a widget that shows each stage of the course on a button press.

    Returns
    -------
    ipywidgets.VBox
        Toggle buttons for the four stages and the capstone above an HTML
        description.
    """
    import ipywidgets as widgets

    buttons = widgets.ToggleButtons(
        options=[(f"{s.title} {s.chinese}", s.key) for s in STAGES],
        description="Stage:",
    )
    detail = widgets.HTML(describe_stage(buttons.value))

    def on_change(change: dict) -> None:
        detail.value = describe_stage(change["new"])

    buttons.observe(on_change, names="value")
    return widgets.VBox([buttons, detail])


def preview_file(path: str | Path, rows: int = 5) -> tuple[str, pd.DataFrame]:
    """Read the first rows of a raw export as text, with its detected encoding.

    Parameters
    ----------
    path : str or Path
        A CSV file.
    rows : int, default=5
        How many records to show.

    Returns
    -------
    encoding : str
        The encoding the file was read with.
    frame : DataFrame
        The first `rows` records, every column as text.
    """
    from medkit import digitize

    frame = digitize.read_table(path)
    return frame.attrs["encoding"], frame.head(rows)


def data_browser(directory: str | Path):
    """Build a widget that previews each raw export in a folder.

    Parameters
    ----------
    directory : str or Path
        A folder of CSV files, such as ``medkit.datasets.data_dir() / "raw"``.

    Returns
    -------
    ipywidgets.VBox
        A file chooser, a row-count slider and the preview.
    """
    import ipywidgets as widgets
    from IPython.display import display

    files = sorted(Path(directory).glob("*.csv"))
    chooser = widgets.Dropdown(
        options=[(path.name, path) for path in files], description="File:"
    )
    rows = widgets.IntSlider(value=5, min=1, max=20, description="Rows:")
    output = widgets.Output()

    def refresh(_change: object = None) -> None:
        output.clear_output()
        encoding, frame = preview_file(chooser.value, rows.value)
        with output:
            display(widgets.HTML(f"<b>{chooser.value.name}</b>, encoding {encoding}"))
            display(frame)

    chooser.observe(refresh, names="value")
    rows.observe(refresh, names="value")
    refresh()
    return widgets.VBox([widgets.HBox([chooser, rows]), output])
