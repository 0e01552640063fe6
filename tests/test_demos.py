"""Tests for medkit.course.demos: demo folders, expected scores, submissions."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from medkit.course.demos import (
    BLANK,
    SOLUTION,
    DemoSubmission,
    find_demos,
    load_expected,
    write_submission,
)
from medkit.exceptions import GradingError

FIXTURE_DEMO = Path(__file__).parent / "fixtures" / "course" / "demo" / "ps0_vitals"


def answer_cell(cell, grade_id: str):
    cell.metadata["nbgrader"] = {
        "grade": False,
        "grade_id": grade_id,
        "locked": False,
        "schema_version": 3,
        "solution": True,
        "task": False,
    }
    return cell


def write_assignment(folder: Path, stub: str, notebook: str = "ps.ipynb") -> Path:
    """Write a notebook with a code answer, a Markdown answer and a test cell."""
    test = new_code_cell("assert dose(2) == 10")
    test.metadata["nbgrader"] = {
        "grade": True,
        "grade_id": "test_dose",
        "locked": True,
        "points": 1,
        "schema_version": 3,
        "solution": False,
        "task": False,
    }
    nb = new_notebook(
        cells=[
            answer_cell(new_code_cell(stub), "dose_answer"),
            test,
            answer_cell(new_markdown_cell("YOUR ANSWER HERE"), "why_answer"),
        ]
    )
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / notebook)
    return folder


def sources(folder: Path, notebook: str = "ps.ipynb") -> list[str]:
    return [
        cell.source for cell in nbformat.read(folder / notebook, as_version=4).cells
    ]


@pytest.fixture
def assignment(tmp_path: Path) -> tuple[Path, Path]:
    """Return (source, release) folders of a one-notebook assignment."""
    source = write_assignment(tmp_path / "source", "def dose(kg):\n    return 5 * kg")
    release = write_assignment(tmp_path / "release", "raise NotImplementedError()")
    (source / "doses.csv").write_text("kg\n2\n", encoding="utf-8")
    (release / "doses.csv").write_text("kg\n2\n", encoding="utf-8")
    return source, release


def test_find_demos_fixture_folder() -> None:
    demos = find_demos(FIXTURE_DEMO)

    assert [demo.name for demo in demos] == [SOLUTION, BLANK, "fever_strict"]
    assert demos[0].answers == {}
    assert demos[2].answers == {
        "bmi_answer": FIXTURE_DEMO / "fever_strict" / "bmi_answer.py",
        "fever_answer": FIXTURE_DEMO / "fever_strict" / "fever_answer.py",
    }


def test_find_demos_missing_folder(tmp_path: Path) -> None:
    demos = find_demos(tmp_path / "absent")

    assert demos == [DemoSubmission(SOLUTION), DemoSubmission(BLANK)]


def test_find_demos_mistakes_sorted(tmp_path: Path) -> None:
    for name in ["zero_fill", "cast_to_int", ".ipynb_checkpoints"]:
        (tmp_path / name).mkdir()

    assert [demo.name for demo in find_demos(tmp_path)] == [
        SOLUTION,
        BLANK,
        "cast_to_int",
        "zero_fill",
    ]


def test_find_demos_reserved_name_raises(tmp_path: Path) -> None:
    (tmp_path / "blank").mkdir()

    with pytest.raises(GradingError, match=r"uses the reserved name 'blank'"):
        find_demos(tmp_path)


def test_find_demos_other_file_raises(tmp_path: Path) -> None:
    (tmp_path / "zero_fill").mkdir()
    (tmp_path / "zero_fill" / "notes.txt").write_text("why", encoding="utf-8")

    with pytest.raises(
        GradingError, match=r"notes\.txt is not an answer file; name it"
    ):
        find_demos(tmp_path)


def test_load_expected_fixture_scores() -> None:
    expected = load_expected(FIXTURE_DEMO, [SOLUTION, BLANK, "fever_strict"])

    assert expected == {SOLUTION: 3.0, BLANK: 0.0, "fever_strict": 2.0}


def test_load_expected_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(
        GradingError, match=r"expected\.json not found; write the designed"
    ):
        load_expected(tmp_path, [SOLUTION, BLANK])


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('{"solution": "3", "blank": 0}', id="text_score"),
        pytest.param('{"solution": true, "blank": 0}', id="boolean_score"),
        pytest.param('{"solution": NaN, "blank": 0}', id="nan_score"),
        pytest.param("[3, 0]", id="list"),
    ],
)
def test_load_expected_not_numbers_raises(tmp_path: Path, text: str) -> None:
    (tmp_path / "expected.json").write_text(text, encoding="utf-8")

    with pytest.raises(
        GradingError, match=r"must be a JSON object that maps each demo"
    ):
        load_expected(tmp_path, [SOLUTION, BLANK])


def test_load_expected_invalid_json_raises(tmp_path: Path) -> None:
    (tmp_path / "expected.json").write_text("{solution: 3}", encoding="utf-8")

    with pytest.raises(GradingError, match=r"expected\.json is not valid JSON"):
        load_expected(tmp_path, [SOLUTION, BLANK])


def test_load_expected_names_differ_raises(tmp_path: Path) -> None:
    scores = {SOLUTION: 9, "zero_fil": 6}
    (tmp_path / "expected.json").write_text(json.dumps(scores), encoding="utf-8")

    with pytest.raises(
        GradingError,
        match=r"has no score for 'blank', 'zero_fill' and a score for 'zero_fil', "
        r"which has no demo folder; list exactly 'solution', 'blank', 'zero_fill'\.",
    ):
        load_expected(tmp_path, [SOLUTION, BLANK, "zero_fill"])


def test_write_submission_solution_copies_source(
    assignment: tuple[Path, Path], tmp_path: Path
) -> None:
    source, release = assignment
    target = tmp_path / "submitted" / SOLUTION / "ps"

    write_submission(DemoSubmission(SOLUTION), source, release, target)

    assert sources(target)[0] == "def dose(kg):\n    return 5 * kg"
    assert (target / "doses.csv").read_text(encoding="utf-8") == "kg\n2\n"


def test_write_submission_blank_copies_release(
    assignment: tuple[Path, Path], tmp_path: Path
) -> None:
    source, release = assignment
    target = tmp_path / "submitted" / BLANK / "ps"

    write_submission(DemoSubmission(BLANK), source, release, target)

    assert sources(target) == sources(release)


def test_write_submission_mistake_replaces_answers(
    assignment: tuple[Path, Path], tmp_path: Path
) -> None:
    source, release = assignment
    code = tmp_path / "dose_answer.py"
    code.write_text("def dose(kg):\n    return 5 + kg\n", encoding="utf-8")
    text = tmp_path / "why_answer.md"
    text.write_text("Because the label says so.\n", encoding="utf-8")
    demo = DemoSubmission("adds", {"dose_answer": code, "why_answer": text})
    target = tmp_path / "submitted" / "adds" / "ps"

    write_submission(demo, source, release, target)

    assert sources(target) == [
        "def dose(kg):\n    return 5 + kg",
        "assert dose(2) == 10",
        "Because the label says so.",
    ]


def test_write_submission_replaces_old_target(
    assignment: tuple[Path, Path], tmp_path: Path
) -> None:
    source, release = assignment
    target = tmp_path / "submitted" / BLANK / "ps"
    target.mkdir(parents=True)
    (target / "stale.ipynb").write_text("{}", encoding="utf-8")

    write_submission(DemoSubmission(BLANK), source, release, target)

    assert sorted(path.name for path in target.iterdir()) == ["doses.csv", "ps.ipynb"]


def test_write_submission_unknown_grade_id_raises(
    assignment: tuple[Path, Path], tmp_path: Path
) -> None:
    source, release = assignment
    answer = tmp_path / "test_dose.py"
    answer.write_text("pass\n", encoding="utf-8")

    with pytest.raises(
        GradingError,
        match=r"names no answer cell; the answer cells' grade_ids are "
        r"dose_answer, why_answer",
    ):
        write_submission(
            DemoSubmission("cheat", {"test_dose": answer}),
            source,
            release,
            tmp_path / "out",
        )


def test_write_submission_wrong_cell_type_raises(
    assignment: tuple[Path, Path], tmp_path: Path
) -> None:
    source, release = assignment
    answer = tmp_path / "why_answer.py"
    answer.write_text("print('why')\n", encoding="utf-8")

    with pytest.raises(
        GradingError,
        match=r"contains a code answer, but the cell 'why_answer' is a markdown cell; "
        r"rename it to why_answer\.md",
    ):
        write_submission(
            DemoSubmission("typed", {"why_answer": answer}),
            source,
            release,
            tmp_path / "out",
        )


def test_write_submission_ambiguous_grade_id_raises(
    assignment: tuple[Path, Path], tmp_path: Path
) -> None:
    source, release = assignment
    write_assignment(source, "raise NotImplementedError()", notebook="part2.ipynb")
    answer = tmp_path / "dose_answer.py"
    answer.write_text("def dose(kg):\n    return 0\n", encoding="utf-8")

    with pytest.raises(
        GradingError, match=r"in several notebooks \(.*\); give the cells"
    ):
        write_submission(
            DemoSubmission("twice", {"dose_answer": answer}),
            source,
            release,
            tmp_path / "out",
        )
