"""Tests for medkit.course.analytics: item statistics, gradebook reading, report."""

from __future__ import annotations

import hashlib
import math
import warnings
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbgrader.api import Base, Gradebook
from sqlalchemy import create_engine
from sqlalchemy.exc import SAWarning

from medkit.cli import main
from medkit.course.analytics import (
    SCORE_COLUMNS,
    analyse_scores,
    cronbach_alpha,
    graded_items,
    item_analysis,
    item_statistics,
    objective_mastery,
    objective_summary,
    read_gradebook,
    reteach_items,
    score_matrix,
    trainee_scores,
    write_report,
)
from medkit.exceptions import GradingError

# Four trainees, three items: a (2 points) and b (1 point) check objective x,
# c (2 points) checks objective y. Totals 5, 3, 1, 2.
HAND_POINTS = {
    "s1": {"a": 2, "b": 1, "c": 2},
    "s2": {"a": 2, "b": 0, "c": 1},
    "s3": {"a": 0, "b": 1, "c": 0},
    "s4": {"a": 0, "b": 0, "c": 2},
}
HAND_ITEMS = {"a": ("x", 2.0), "b": ("x", 1.0), "c": ("y", 2.0)}

# Worked by hand from the matrix above.
# a = [2, 2, 0, 0], rest = [3, 1, 1, 2]: deviations [1, 1, -1, -1] and
# [1.25, -0.75, -0.75, 0.25]; cross products 1.0, squares 4 and 2.75.
R_A = 1 / math.sqrt(11)
# b = [1, 0, 1, 0], rest = [4, 3, 0, 2]: cross products -0.5, squares 1 and 8.75.
R_B = -0.5 / math.sqrt(8.75)
# c = [2, 1, 0, 2], rest = [3, 2, 1, 0]: cross products 0.5, squares 2.75 and 5.
R_C = 0.5 / math.sqrt(13.75)
# Item variances 4/3, 1/3, 11/12 (sum 31/12); total variance 35/12;
# alpha = 3/2 * (1 - 31/35).
ALPHA = 6 / 35

PS1 = "ps1_digitization"


def hand_scores(extra: dict[str, dict[str, float]] | None = None) -> pd.DataFrame:
    """Return the hand matrix as a tidy score table, plus optional extra items."""
    items = dict(HAND_ITEMS)
    rows = []
    for student, points in HAND_POINTS.items():
        for item, (objective, maximum) in items.items():
            rows.append((student, item, objective, float(points[item]), maximum))
    for item, scores in (extra or {}).items():
        for student, score in scores.items():
            rows.append((student, item, "z", score, 4.0))
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def write_gradebook(
    path: Path,
    assignment: str,
    cells: dict[str, tuple[float, str]],
    grades: dict[str, dict[str, tuple[float | None, float | None]]],
) -> Path:
    """Write an nbgrader gradebook with one notebook named like the assignment.

    ``cells`` maps grade_id to (points, cell type); ``grades`` maps each student
    to (auto_score, manual_score) per grade_id.
    """
    url = f"sqlite:///{path}"
    # Gradebook stamps a new database by running the alembic command, which
    # takes seconds. It skips the stamp when the tables exist, and reading
    # grades does not need it.
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    with (
        warnings.catch_warnings(),
        Gradebook(url, course_id="medkit") as book,
    ):
        # nbgrader 0.9.6 on SQLAlchemy 2 warns "not in session" while it adds
        # submissions; the rows are stored all the same.
        warnings.filterwarnings("ignore", category=SAWarning)
        book.add_assignment(assignment)
        book.add_notebook(assignment, assignment)
        for grade_id, (points, cell_type) in cells.items():
            book.add_grade_cell(
                grade_id, assignment, assignment, max_score=points, cell_type=cell_type
            )
        for student, scores in grades.items():
            book.add_student(student)
            book.add_submission(assignment, student)
            for grade_id, (auto, manual) in scores.items():
                grade = book.find_grade(grade_id, assignment, assignment, student)
                grade.auto_score = auto
                grade.manual_score = manual
            book.db.commit()
    return path


PS1_CELLS = {
    "test_read_raw": (2.0, "code"),
    "test_to_missing": (2.0, "code"),
    "test_normalise_sex": (3.0, "code"),
    "test_parse_date": (3.0, "code"),
    "test_glucose_mmol": (2.0, "code"),
    "test_split_valid": (3.0, "code"),
    "answer_naive_cleaning": (4.0, "markdown"),
}


def ps1_grades() -> dict[str, dict[str, tuple[float | None, float | None]]]:
    """Three ps1 submissions: full marks, a date mistake, and a blank one."""
    full = {cell: (points, None) for cell, (points, _) in PS1_CELLS.items()}
    full["answer_naive_cleaning"] = (None, None)
    dates = dict(full, test_parse_date=(0.0, None))
    dates["answer_naive_cleaning"] = (None, 3.0)
    blank = {cell: (0.0, None) for cell in PS1_CELLS}
    return {"zoe": full, "amir": dates, "li": blank}


@pytest.fixture
def ps1_gradebook(tmp_path: Path) -> Path:
    return write_gradebook(tmp_path / "gradebook.db", PS1, PS1_CELLS, ps1_grades())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# Statistics of the hand matrix ------------------------------------------------


def test_score_matrix_hand_matrix() -> None:
    matrix = score_matrix(hand_scores())

    assert matrix.index.tolist() == ["s1", "s2", "s3", "s4"]
    assert matrix.columns.tolist() == ["a", "b", "c"]
    assert matrix.to_numpy().tolist() == [[2, 1, 2], [2, 0, 1], [0, 1, 0], [0, 0, 2]]


def test_item_statistics_hand_matrix() -> None:
    items = item_statistics(hand_scores())

    assert items.index.tolist() == ["a", "b", "c"]
    assert items["objective"].tolist() == ["x", "x", "y"]
    assert items["max_score"].tolist() == [2.0, 1.0, 2.0]
    assert items["graded"].tolist() == [4, 4, 4]
    assert items["pending"].tolist() == [0, 0, 0]
    assert items["mean_score"].tolist() == [1.0, 0.5, 1.25]
    assert items["difficulty"].tolist() == [0.5, 0.5, 0.625]
    assert items.loc["a", "discrimination"] == pytest.approx(R_A, abs=1e-12)
    assert items.loc["b", "discrimination"] == pytest.approx(R_B, abs=1e-12)
    assert items.loc["c", "discrimination"] == pytest.approx(R_C, abs=1e-12)


def test_item_statistics_discrimination_matches_numpy() -> None:
    matrix = np.array([[2, 1, 2], [2, 0, 1], [0, 1, 0], [0, 0, 2]], dtype=float)
    rest = matrix.sum(axis=1, keepdims=True) - matrix
    expected = [np.corrcoef(matrix[:, i], rest[:, i])[0, 1] for i in range(3)]

    items = item_statistics(hand_scores())

    assert items["discrimination"].tolist() == pytest.approx(expected, abs=1e-12)


def test_cronbach_alpha_hand_matrix() -> None:
    assert cronbach_alpha(hand_scores()) == pytest.approx(ALPHA, abs=1e-12)


def test_cronbach_alpha_matches_numpy() -> None:
    matrix = np.array([[2, 1, 2], [2, 0, 1], [0, 1, 0], [0, 0, 2]], dtype=float)
    item_variance = matrix.var(axis=0, ddof=1).sum()
    total_variance = matrix.sum(axis=1).var(ddof=1)

    expected = 3 / 2 * (1 - item_variance / total_variance)

    assert cronbach_alpha(hand_scores()) == pytest.approx(expected, abs=1e-12)


def test_trainee_scores_hand_matrix() -> None:
    trainees = trainee_scores(hand_scores())

    assert trainees["score"].tolist() == [5.0, 3.0, 1.0, 2.0]
    assert trainees["max_score"].tolist() == [5.0] * 4
    assert trainees["fraction"].tolist() == pytest.approx([1.0, 0.6, 0.2, 0.4])


def test_objective_mastery_hand_matrix() -> None:
    mastery = objective_mastery(hand_scores())

    assert mastery.columns.tolist() == ["x", "y"]
    assert mastery["x"].tolist() == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    assert mastery["y"].tolist() == [1.0, 0.5, 0.0, 1.0]


def test_objective_summary_hand_matrix() -> None:
    summary = objective_summary(hand_scores(), mastery_level=0.8)

    assert summary.index.tolist() == ["x", "y"]
    assert summary["items"].tolist() == [2, 1]
    assert summary["max_score"].tolist() == [3.0, 2.0]
    assert summary["mastery"].tolist() == pytest.approx([0.5, 0.625])
    assert summary["mastered"].tolist() == [0.25, 0.5]


def test_objective_summary_level_inclusive() -> None:
    summary = objective_summary(hand_scores(), mastery_level=0.5)

    assert summary["mastered"].tolist() == [0.5, 0.75]


def test_reteach_items_hand_matrix() -> None:
    reteach = reteach_items(item_statistics(hand_scores()))

    assert reteach.index.tolist() == ["b", "c"]
    assert reteach["objective"].tolist() == ["x", "y"]
    assert reteach.loc["b", "reason"] == "negative discrimination -0.17"
    assert reteach.loc["c", "reason"] == "discrimination 0.13 below 0.2"


def test_reteach_items_difficulty_threshold() -> None:
    reteach = reteach_items(
        item_statistics(hand_scores()), min_difficulty=0.6, min_discrimination=-1
    )

    assert reteach.index.tolist() == ["a", "b"]
    assert reteach.loc["a", "reason"] == "difficulty 0.50 below 0.6"
    assert reteach.loc["b", "reason"] == (
        "difficulty 0.50 below 0.6; negative discrimination -0.17"
    )


def test_item_statistics_pending_item_left_out() -> None:
    pending = {"d": {"s1": np.nan, "s2": np.nan, "s3": 0.0, "s4": 0.0}}
    scores = hand_scores(pending)

    items = item_statistics(scores)

    assert items.loc["d", "graded"] == 2
    assert items.loc["d", "pending"] == 2
    assert math.isnan(items.loc["d", "difficulty"])
    assert math.isnan(items.loc["d", "discrimination"])
    assert items.loc["a", "discrimination"] == pytest.approx(R_A, abs=1e-12)
    assert cronbach_alpha(scores) == pytest.approx(ALPHA, abs=1e-12)
    assert trainee_scores(scores)["score"].tolist() == [5.0, 3.0, 1.0, 2.0]
    assert objective_mastery(scores).columns.tolist() == ["x", "y"]


def test_item_statistics_constant_item_discrimination_nan() -> None:
    constant = {"d": {"s1": 4.0, "s2": 4.0, "s3": 4.0, "s4": 4.0}}

    items = item_statistics(hand_scores(constant))

    assert items.loc["d", "difficulty"] == 1.0
    assert math.isnan(items.loc["d", "discrimination"])


def test_cronbach_alpha_undefined_cases_nan() -> None:
    one_item = hand_scores()[lambda frame: frame["item"] == "a"]
    same_totals = pd.DataFrame(
        [
            ("s1", "a", "x", 1.0, 1.0),
            ("s1", "b", "x", 0.0, 1.0),
            ("s2", "a", "x", 0.0, 1.0),
            ("s2", "b", "x", 1.0, 1.0),
        ],
        columns=SCORE_COLUMNS,
    )

    assert math.isnan(cronbach_alpha(one_item))
    assert math.isnan(cronbach_alpha(same_totals))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="objective"), "no column 'objective'"),
        (lambda f: f.iloc[0:0], "no rows"),
        (lambda f: pd.concat([f, f.iloc[:1]]), "1 repeated rows, the first for"),
        (
            lambda f: f.assign(max_score=f["max_score"].where(f["student"] != "s1", 9)),
            "Item 'a' has 2 different values of max_score",
        ),
        (
            lambda f: f.assign(score=f["score"].where(f["student"] != "s2", 7)),
            "Student 's2' has 7 points on item 'a', outside 0 to 2",
        ),
        (lambda f: f.assign(max_score=0.0), "Item 'a' has a max_score of 0 or less"),
    ],
    ids=[
        "missing-column",
        "empty",
        "repeated-row",
        "two-maxima",
        "score-above-max",
        "zero-max",
    ],
)
def test_score_matrix_invalid_table_raises(change, message: str) -> None:
    with pytest.raises(GradingError, match=message):
        score_matrix(change(hand_scores()))


def test_analyse_scores_hand_matrix() -> None:
    analysis = analyse_scores(hand_scores(), "hand")

    assert analysis.assignment == "hand"
    assert analysis.n_trainees == 4
    assert analysis.alpha == pytest.approx(ALPHA, abs=1e-12)
    assert analysis.pending_items == []
    assert analysis.trainees.columns.tolist() == [
        "score",
        "max_score",
        "fraction",
        "x",
        "y",
    ]
    assert analysis.reteach.index.tolist() == ["b", "c"]


# Course and gradebook ---------------------------------------------------------


def test_graded_items_ps1() -> None:
    items = graded_items(PS1)

    assert items["item"].tolist() == list(PS1_CELLS)
    assert items["objective"].tolist() == [
        "read-as-text",
        "missing-values",
        "categories",
        "dates",
        "units",
        "quarantine",
        "explain",
    ]
    assert items["max_score"].tolist() == [2, 2, 3, 3, 2, 3, 4]
    assert items["cell_type"].tolist() == ["code"] * 6 + ["markdown"]


def test_graded_items_two_objective_tags_raises(tmp_path: Path) -> None:
    cell = nbformat.v4.new_code_cell("assert True")
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "t1", "points": 1}
    cell.metadata["tags"] = ["objective:dates", "objective:units"]
    folder = tmp_path / "source" / "ps9"
    folder.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), folder / "ps9.ipynb")

    with pytest.raises(GradingError, match=r"'t1' in .* has 2 objective tags"):
        graded_items("ps9", tmp_path)


def test_graded_items_missing_assignment_raises(tmp_path: Path) -> None:
    with pytest.raises(GradingError, match="No source notebook of 'ps9' found"):
        graded_items("ps9", tmp_path)


def test_read_gradebook_ps1_submissions(ps1_gradebook: Path) -> None:
    scores = read_gradebook(ps1_gradebook, PS1)

    assert scores.columns.tolist() == SCORE_COLUMNS
    assert scores["student"].unique().tolist() == ["amir", "li", "zoe"]
    amir = scores[scores["student"] == "amir"].set_index("item")
    assert amir.index.tolist() == list(PS1_CELLS)
    assert amir["score"].tolist() == [2, 2, 3, 0, 2, 3, 3]
    assert amir.loc["test_parse_date", "objective"] == "dates"
    assert amir["max_score"].tolist() == [2, 2, 3, 3, 2, 3, 4]
    zoe = scores[scores["student"] == "zoe"].set_index("item")
    assert math.isnan(zoe.loc["answer_naive_cleaning", "score"])
    li = scores[scores["student"] == "li"]
    assert li["score"].tolist() == [0.0] * 7


def test_read_gradebook_leaves_file_unchanged(ps1_gradebook: Path) -> None:
    before = sha256(ps1_gradebook)

    read_gradebook(ps1_gradebook, PS1)

    assert sha256(ps1_gradebook) == before


def test_item_analysis_ps1_gradebook(ps1_gradebook: Path) -> None:
    analysis = item_analysis(ps1_gradebook, PS1)

    # answer_naive_cleaning awaits manual grading for zoe, so it is left out.
    assert analysis.pending_items == ["answer_naive_cleaning"]
    assert analysis.trainees["score"].to_dict() == {"amir": 12, "li": 0, "zoe": 15}
    assert analysis.items.loc["test_parse_date", "difficulty"] == 1 / 3
    assert analysis.items.loc["test_read_raw", "difficulty"] == 2 / 3
    assert analysis.objectives.index.tolist() == [
        "read-as-text",
        "missing-values",
        "categories",
        "dates",
        "units",
        "quarantine",
    ]
    assert analysis.reteach.index.tolist() == ["test_parse_date"]
    assert analysis.reteach.loc["test_parse_date", "reason"] == (
        "difficulty 0.33 below 0.5"
    )


def test_read_gradebook_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(GradingError, match=r"Gradebook .*absent.db not found"):
        read_gradebook(tmp_path / "absent.db", PS1)

    assert not (tmp_path / "absent.db").exists()


def test_read_gradebook_not_gradebook_raises(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    other.write_bytes(b"")

    with pytest.raises(GradingError, match="is not an nbgrader gradebook"):
        read_gradebook(other, PS1)

    assert other.read_bytes() == b""


def test_read_gradebook_unknown_assignment_raises(ps1_gradebook: Path) -> None:
    with pytest.raises(
        GradingError,
        match=r"'ps2_intelligence' is not in the gradebook .*; it has ps1_digitization",
    ):
        read_gradebook(ps1_gradebook, "ps2_intelligence")


def test_read_gradebook_no_submission_raises(tmp_path: Path) -> None:
    path = write_gradebook(tmp_path / "gradebook.db", PS1, PS1_CELLS, {})

    with pytest.raises(GradingError, match="has no graded submission of"):
        read_gradebook(path, PS1)


# Report -------------------------------------------------------------------------


def test_write_report_hand_matrix(tmp_path: Path) -> None:
    analysis = analyse_scores(hand_scores(), "hand")

    index = write_report(analysis, tmp_path)

    assert index == tmp_path / "hand" / "index.html"
    for name in ("totals.png", "items.png", "objectives.png"):
        png = (tmp_path / "hand" / name).read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n"), name
        assert f'src="{name}"' in index.read_text(encoding="utf-8")
    html = index.read_text(encoding="utf-8")
    assert "<dt>Cronbach&#x27;s alpha</dt><dd>0.171</dd>" in html
    assert "<dt>Trainees</dt><dd>4</dd>" in html
    assert "<dt>Mean total</dt><dd>2.75 of 5 points (55%)</dd>" in html
    assert (
        "<li><strong>b</strong> (objective <em>x</em>): negative discrimination "
        "-0.17</li>" in html
    )
    assert "<strong>c</strong> (objective <em>y</em>): discrimination 0.13" in html
    assert "<strong>a</strong>" not in html


def test_write_report_tables_have_one_header_row(tmp_path: Path) -> None:
    index = write_report(analyse_scores(hand_scores(), "hand"), tmp_path)

    html = index.read_text(encoding="utf-8")
    tables = html.count("<table")
    assert tables == 3
    assert html.count("<thead>") == tables
    assert html.count("</tr>\n  </thead>") == tables
    assert html.count("<tr") - html.count("<tr>\n      <td") == tables


def test_write_report_escapes_names(tmp_path: Path) -> None:
    scores = hand_scores().replace({"objective": {"x": "<script>"}})

    index = write_report(analyse_scores(scores, "hand"), tmp_path)

    html = index.read_text(encoding="utf-8")
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_cli_report_prints_figures(
    ps1_gradebook: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["report", PS1, "--gradebook", str(ps1_gradebook), "--out", str(tmp_path)]
    )

    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert lines[0].startswith(f"Item analysis of {PS1}: ")
    assert lines[0].endswith(f"{PS1}/index.html")
    # Totals 12, 0 and 15 of 15 points.
    assert lines[1].startswith("  3 trainees; mean total 9.0 of 15 autograded points")
    assert lines[2] == "  awaiting manual grading: answer_naive_cleaning"
    assert lines[3] == "  to reteach: 1"
    assert lines[4] == "    test_parse_date (dates): difficulty 0.33 below 0.5"
    assert (tmp_path / PS1 / "index.html").is_file()


def test_cli_report_missing_gradebook_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["report", PS1, "--gradebook", str(tmp_path / "absent.db")])

    assert status == 1
    assert "medkit: error: Gradebook" in capsys.readouterr().err
