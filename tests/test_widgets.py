"""Widget callbacks, called directly without a browser."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

from medkit import datasets, digitize, widgets


@pytest.fixture(scope="module")
def raw_patients() -> pd.DataFrame:
    return digitize.read_table(datasets.raw_path("patients"), digitize.PATIENTS)


@pytest.fixture(scope="module")
def raw_visits() -> pd.DataFrame:
    return digitize.read_table(datasets.raw_path("visits"), digitize.VISITS)


def test_describe_stage_names_formula() -> None:
    text = widgets.describe_stage("networking")

    assert "网络化" in text
    assert "N = C(R)" in text
    assert "03_networking.ipynb" in text


def test_describe_stage_marks_unreleased_stage(monkeypatch) -> None:
    import dataclasses

    from medkit.widgets import _welcome

    unreleased = dataclasses.replace(_welcome.STAGES[2], ready=False)
    monkeypatch.setattr(_welcome, "STAGES", (*_welcome.STAGES[:2], unreleased))

    assert "in preparation" in widgets.describe_stage(unreleased.key)
    assert "in preparation" not in widgets.describe_stage("digitization")


def test_stages_ready_match_lesson_files() -> None:
    from medkit.course.lessons import find_lessons

    lessons = {path.name for path in find_lessons()}

    for stage in widgets.STAGES:
        assert stage.ready == (stage.lesson in lessons), stage.key


def test_describe_stage_unknown_raises() -> None:
    with pytest.raises(KeyError, match="stage 'billing' not found"):
        widgets.describe_stage("billing")


def test_course_map_button_updates_detail() -> None:
    view = widgets.course_map()
    buttons, detail = view.children

    buttons.value = "personalization"

    assert "P = F(T)" in detail.value
    assert "个性化" in detail.value


def test_preview_file_reports_encoding() -> None:
    encoding, frame = widgets.preview_file(datasets.raw_path("visits"), rows=3)

    assert encoding == "gb18030"
    assert len(frame) == 3
    assert frame["patient_id"].map(type).eq(str).all()


def test_compare_column_sex_spellings(raw_patients: pd.DataFrame) -> None:
    result = widgets.clean_table(raw_patients, "patients")

    table = widgets.compare_column(raw_patients, result, "sex", top=20)

    faults = datasets.load_answer_key("faults")
    spelled_male = faults.query("table == 'patients' and fault.str.contains('男')")
    assert table.loc["男", "raw rows"] == int(spelled_male["count"].sum())
    assert table.loc["男", "clean values"] == "M"
    assert table.loc["女", "clean values"] == "F"
    assert table.loc["FEMALE", "clean values"] == "F"
    assert table.loc["未知", "clean values"] == "<missing>"


def test_compare_column_marks_unkept_values() -> None:
    raw = pd.DataFrame(
        {
            "lab_id": ["L00000001", "L00000002"],
            "visit_id": ["V0000001", "V0000001"],
            "test": ["GLU", "GLU"],
            "value": ["5.0", "48"],
            "unit": ["mmol/L", "mmol/mol"],
            "taken_date": ["2024-01-05", "2024-01-05"],
        }
    )
    result = widgets.clean_table(raw, "labs")

    table = widgets.compare_column(raw, result, "unit")

    assert table["raw rows"].tolist() == [1, 1]
    assert table.loc["mmol/L", "clean values"] == "mmol/L"
    assert table.loc["mmol/mol", "clean values"] == "<not kept>"


def test_clean_table_month_first_quarantines_more(raw_visits: pd.DataFrame) -> None:
    day_first = widgets.clean_table(raw_visits, "visits")
    month_first = widgets.clean_table(raw_visits, "visits", dayfirst=False)

    assert day_first.counts["quarantined"] == 12
    assert month_first.counts["quarantined"] > day_first.counts["quarantined"]
    assert month_first.counts["read"] == 6149


def test_plot_counts_bars_match_counts(raw_visits: pd.DataFrame) -> None:
    result = widgets.clean_table(raw_visits, "visits")

    figure = widgets.plot_counts(result)

    bars = figure.axes[0].patches
    assert [bar.get_width() for bar in bars] == [6117, 12, 20]


def test_cleaning_explorer_switches_table() -> None:
    view = widgets.cleaning_explorer(datasets.data_dir() / "raw")
    controls = view.children[0]
    table, column, _dayfirst = controls.children[0].children

    table.value = "labs"

    assert list(column.options) == [
        "lab_id",
        "visit_id",
        "test",
        "value",
        "unit",
        "taken_date",
    ]


def test_plot_column_sex_before_after(raw_patients: pd.DataFrame) -> None:
    result = widgets.clean_table(raw_patients, "patients")
    answer = datasets.load_answer_key("patients")

    figure = widgets.plot_column(raw_patients, result, "sex")

    before, after = figure.axes
    assert len(before.patches) == 10
    assert before.patches[0].get_width() == raw_patients["sex"].value_counts().iloc[0]
    labels = [label.get_text() for label in after.get_yticklabels()]
    widths = dict(zip(labels, (bar.get_width() for bar in after.patches), strict=True))
    assert widths == {
        "F": (answer["sex"] == "F").sum(),
        "M": (answer["sex"] == "M").sum(),
        "<missing>": answer["sex"].isna().sum(),
    }


def test_plot_column_numeric_histograms(raw_visits: pd.DataFrame) -> None:
    result = widgets.clean_table(raw_visits, "visits")

    figure = widgets.plot_column(raw_visits, result, "age")

    before, after = figure.axes
    assert sum(bar.get_height() for bar in before.patches) == len(raw_visits)
    assert sum(bar.get_height() for bar in after.patches) == 6117
