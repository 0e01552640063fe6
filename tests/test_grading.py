"""Tests for medkit.course.grading: nbgrader release, autograde and export."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from medkit.course.grading import (
    COURSE_DIR,
    DemoScore,
    GradeReport,
    Release,
    find_assignments,
    grade_demos,
    release_assignments,
)
from medkit.exceptions import GradingError

FIXTURE_COURSE = Path(__file__).parent / "fixtures" / "course"
REAL_ASSIGNMENTS = find_assignments()


def snapshot(folder: Path) -> dict[str, str]:
    """Map every file below ``folder`` to the SHA-256 of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> tuple[GradeReport, Path, dict]:
    """Grade the fixture course once.

    Returns the report, the build folder and a snapshot of the course taken before.
    """
    build = tmp_path_factory.mktemp("build")
    before = snapshot(FIXTURE_COURSE)
    [report] = grade_demos(course_dir=FIXTURE_COURSE, build_dir=build, progress=False)
    return report, build, before


def score_of(report: GradeReport, submission: str) -> DemoScore:
    return next(score for score in report.scores if score.submission == submission)


def test_find_assignments_fixture_course() -> None:
    assert find_assignments(FIXTURE_COURSE) == ["ps0_vitals"]


def test_find_assignments_without_source(tmp_path: Path) -> None:
    assert find_assignments(tmp_path) == []


def test_demo_score_matches_within_tolerance() -> None:
    assert DemoScore("blank", 0.0, 5.0, expected=1e-9).matches
    assert not DemoScore("blank", 0.5, 5.0, expected=0.0).matches
    assert DemoScore("blank", 0.5, 5.0, expected=None).matches


def test_grade_demos_unknown_assignment_raises(tmp_path: Path) -> None:
    with pytest.raises(
        GradingError,
        match=r"Assignment 'ps9' not found in .*; the assignments are ps0_vitals",
    ):
        grade_demos("ps9", course_dir=FIXTURE_COURSE, build_dir=tmp_path)

    assert list(tmp_path.iterdir()) == []


def test_grade_demos_missing_course_raises(tmp_path: Path) -> None:
    with pytest.raises(GradingError, match=r"Course folder .*absent not found"):
        grade_demos(course_dir=tmp_path / "absent", build_dir=tmp_path)


@pytest.mark.slow
@pytest.mark.notebook
def test_grade_demos_solution_full_autograded_marks(graded) -> None:
    report, _, _ = graded
    solution = score_of(report, "solution")

    assert solution.score == 3.0
    assert solution.max_score == 5.0
    assert solution.expected == 3.0
    assert solution.cells == {"test_bmi": 2.0, "test_fever": 1.0, "units_answer": None}


@pytest.mark.slow
@pytest.mark.notebook
def test_grade_demos_blank_scores_zero(graded) -> None:
    report, _, _ = graded
    blank = score_of(report, "blank")

    assert blank.score == 0.0
    assert blank.max_score == 5.0
    # nbgrader gives 0 to a written answer left as the stub, without manual grading.
    assert blank.cells == {"test_bmi": 0.0, "test_fever": 0.0, "units_answer": 0.0}


@pytest.mark.slow
@pytest.mark.notebook
def test_grade_demos_mistake_fails_hidden_test(graded) -> None:
    report, _, _ = graded
    mistake = score_of(report, "fever_strict")

    # has_fever uses > 38.0: the visible asserts pass, the hidden one at 38.0 fails.
    # The written answer is the model solution's, so it waits for manual grading.
    assert mistake.score == 2.0
    assert mistake.cells == {"test_bmi": 2.0, "test_fever": 0.0, "units_answer": None}


@pytest.mark.slow
@pytest.mark.notebook
def test_grade_demos_order_and_no_mismatch(graded) -> None:
    report, _, _ = graded

    assert report.assignment == "ps0_vitals"
    assert [score.submission for score in report.scores] == [
        "solution",
        "blank",
        "fever_strict",
    ]
    assert report.mismatches == []


@pytest.mark.slow
@pytest.mark.notebook
def test_grade_demos_grades_csv(graded) -> None:
    report, build, _ = graded

    assert report.grades_csv == build / "grades" / "ps0_vitals.csv"
    assert report.grades_csv.read_text(encoding="utf-8") == (
        "student,score,max_score,test_bmi,test_fever,units_answer\n"
        "solution,3,5,2,1,\n"
        "blank,0,5,0,0,0\n"
        "fever_strict,2,5,2,0,\n"
    )


@pytest.mark.slow
@pytest.mark.notebook
def test_grade_demos_release_hides_solutions(graded) -> None:
    _, build, _ = graded
    released = build / "release" / "ps0_vitals" / "vitals.ipynb"

    text = "\n".join(
        cell.source for cell in nbformat.read(released, as_version=4).cells
    )

    assert "raise NotImplementedError()" in text
    assert "BEGIN SOLUTION" not in text
    assert "assert has_fever(38.0)" not in text


@pytest.mark.slow
@pytest.mark.notebook
def test_grade_demos_feedback_html(graded) -> None:
    report, build, _ = graded

    assert report.feedback_dir == build / "feedback" / "ps0_vitals"
    for submission in ["solution", "blank", "fever_strict"]:
        html = report.feedback_dir / submission / "vitals.html"
        assert "<html" in html.read_text(encoding="utf-8")


@pytest.mark.slow
@pytest.mark.notebook
def test_grade_demos_course_folder_unchanged(graded) -> None:
    _, _, before = graded

    assert snapshot(FIXTURE_COURSE) == before
    assert sorted(path.name for path in FIXTURE_COURSE.iterdir()) == [
        "demo",
        "nbgrader_config.py",
        "source",
    ]


@pytest.mark.notebook
def test_release_assignments_student_version(tmp_path: Path) -> None:
    [release] = release_assignments(course_dir=FIXTURE_COURSE, build_dir=tmp_path)

    assert release == Release(
        "ps0_vitals", tmp_path / "release" / "ps0_vitals", ["vitals.ipynb"]
    )
    assert not (tmp_path / "grades").exists()


@pytest.mark.slow
@pytest.mark.notebook
def test_grade_demos_score_differs_raises(tmp_path: Path) -> None:
    course = tmp_path / "course"
    shutil.copytree(FIXTURE_COURSE, course)
    shutil.rmtree(course / "demo" / "ps0_vitals" / "fever_strict")
    expected = {"solution": 3, "blank": 1}
    (course / "demo" / "ps0_vitals" / "expected.json").write_text(
        json.dumps(expected), encoding="utf-8"
    )

    with pytest.raises(
        GradingError,
        match=r"Demo scores differ from expected\.json: ps0_vitals 'blank' scored 0, "
        r"expected 1\. Per-cell grades are in",
    ):
        grade_demos(course_dir=course, build_dir=tmp_path / "build", feedback=False)

    assert (tmp_path / "build" / "grades" / "ps0_vitals.csv").exists()


@pytest.mark.slow
@pytest.mark.notebook
def test_grade_demos_no_check_without_expected(tmp_path: Path) -> None:
    course = tmp_path / "course"
    shutil.copytree(FIXTURE_COURSE, course)
    shutil.rmtree(course / "demo")

    [report] = grade_demos(
        course_dir=course, build_dir=tmp_path / "build", check=False, feedback=False
    )

    assert [
        (score.submission, score.score, score.expected) for score in report.scores
    ] == [
        ("solution", 3.0, None),
        ("blank", 0.0, None),
    ]
    assert report.feedback_dir is None


def test_grade_demos_check_without_expected_raises(tmp_path: Path) -> None:
    course = tmp_path / "course"
    shutil.copytree(FIXTURE_COURSE, course)
    (course / "demo" / "ps0_vitals" / "expected.json").unlink()

    with pytest.raises(GradingError, match=r"expected\.json not found"):
        grade_demos(course_dir=course, build_dir=tmp_path / "build")

    assert not (tmp_path / "build").exists()


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.parametrize(
    "assignment",
    REAL_ASSIGNMENTS
    or [
        pytest.param(None, marks=pytest.mark.skip(reason="assignments/source is empty"))
    ],
)
def test_real_assignment_demos_score_as_designed(
    assignment: str, tmp_path: Path
) -> None:
    before = snapshot(COURSE_DIR)

    [report] = grade_demos(
        assignment, build_dir=tmp_path, feedback=False, progress=False
    )

    assert report.mismatches == []
    assert snapshot(COURSE_DIR) == before


def test_release_while_locked_raises(tmp_path: Path) -> None:
    import fcntl

    build = tmp_path / "build"
    build.mkdir()
    with open(build / ".nbgrader.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)

        with pytest.raises(GradingError, match="Another medkit release or grading"):
            release_assignments(course_dir=FIXTURE_COURSE, build_dir=build)

    assert not (build / "nbgrader").exists()
