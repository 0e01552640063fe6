"""Tests for medkit.course.grading: release, autograde cohorts and demos, export."""

from __future__ import annotations

import hashlib
import html
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from medkit.course._feedback import CellGrade, write_feedback
from medkit.course._paths import PROJECT_DIR
from medkit.course._precheck import Problem
from medkit.course.demos import find_demos, write_submission
from medkit.course.grading import (
    COURSE_DIR,
    CohortReport,
    DemoScore,
    GradeReport,
    Limits,
    Release,
    find_assignments,
    grade_cohort,
    grade_demos,
    gradebook_path,
    release_assignments,
)
from medkit.exceptions import GradingError, GradingSettingError

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

    # With feedback, as make course grades them: a page that would show a hidden
    # test stops the grading.
    [report] = grade_demos(assignment, build_dir=tmp_path, progress=False)

    assert report.mismatches == []
    assert snapshot(COURSE_DIR) == before
    for score in report.scores:
        pages = list((tmp_path / "feedback" / assignment / score.submission).iterdir())
        assert pages, score.submission


def test_release_while_locked_raises(tmp_path: Path) -> None:
    import fcntl

    build = tmp_path / "build"
    build.mkdir()
    with open(build / ".nbgrader.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)

        with pytest.raises(GradingError, match="Another medkit release or grading"):
            release_assignments(course_dir=FIXTURE_COURSE, build_dir=build)

    assert not (build / "nbgrader").exists()


# Cohorts ------------------------------------------------------------------------

COHORT = {
    # student: demo submission it copies
    "s01": "solution",
    "s02": "blank",
    "s03": "fever_strict",
    "s04_late": "solution",
    "s05": "fever_strict",
    "s06": "solution",
}
COHORT_SCORES = {
    "s01": 3.0,
    "s02": 0.0,
    "s03": 2.0,
    "s04_late": 3.0,
    "s05": 2.0,
    "s06": 3.0,
}


def write_cohort(folder: Path, release_build: Path, students: dict[str, str]) -> Path:
    """Write demo submissions of ps0_vitals under ``folder/<student>/ps0_vitals``."""
    [release] = release_assignments(course_dir=FIXTURE_COURSE, build_dir=release_build)
    demos = {
        demo.name: demo for demo in find_demos(FIXTURE_COURSE / "demo" / "ps0_vitals")
    }
    for student, demo in students.items():
        write_submission(
            demos[demo],
            FIXTURE_COURSE / "source" / "ps0_vitals",
            release.directory,
            folder / student / "ps0_vitals",
        )
    return folder


def gradebook_state(gradebook: Path, assignment: str) -> dict:
    """Map (student, notebook, cell) to (auto_score, needs_manual_grade, comment)."""
    state = {}
    with Gradebook(f"sqlite:///{gradebook}", "medkit_test") as book:
        for submission in book.assignment_submissions(assignment):
            for notebook in submission.notebooks:
                comments = {c.name: c.auto_comment for c in notebook.comments}
                for grade in notebook.grades:
                    key = (submission.student.id, notebook.name, grade.name)
                    state[key] = (
                        grade.auto_score,
                        grade.needs_manual_grade,
                        comments.get(grade.name),
                    )
    return state


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cohort")
    submitted = write_cohort(folder / "submitted", folder / "release", COHORT)
    (submitted / "s04_late" / "ps0_vitals" / "timestamp.txt").write_text(
        "2026-03-01 09:30:00.000000 UTC", encoding="utf-8"
    )
    return submitted


@pytest.fixture(scope="module")
def graded_cohort(
    cohort: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[CohortReport, Path]:
    build = tmp_path_factory.mktemp("cohort_build")
    report = grade_cohort(
        "ps0_vitals", cohort, course_dir=FIXTURE_COURSE, build_dir=build, jobs=2
    )
    return report, build


@pytest.mark.slow
@pytest.mark.notebook
def test_grade_cohort_scores(graded_cohort) -> None:
    report, build = graded_cohort

    assert report.scores == COHORT_SCORES
    assert report.failed == {}
    assert report.problems == []
    assert report.max_score == 5.0
    assert report.jobs == 2
    assert report.gradebook == build / "nbgrader" / "gradebook.db"
    assert report.gradebook == gradebook_path(build)


@pytest.mark.slow
@pytest.mark.notebook
def test_grade_cohort_grades_csv(graded_cohort) -> None:
    report, build = graded_cohort

    assert report.grades_csv == build / "grades" / "ps0_vitals.csv"
    assert report.grades_csv.read_text(encoding="utf-8") == (
        "student,score,max_score,test_bmi,test_fever,units_answer\n"
        "s01,3,5,2,1,\n"
        "s02,0,5,0,0,0\n"
        "s03,2,5,2,0,\n"
        "s04_late,3,5,2,1,\n"
        "s05,2,5,2,0,\n"
        "s06,3,5,2,1,\n"
    )


@pytest.mark.slow
@pytest.mark.notebook
def test_grade_cohort_gradebook_rows(graded_cohort) -> None:
    report, _ = graded_cohort

    with sqlite3.connect(report.gradebook) as connection:
        rows = {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("student", "submitted_assignment", "grade", "comment")
        }
    connection.close()

    # ps0_vitals: 3 graded cells (2 tests, 1 written answer), 3 answer cells.
    assert rows == {"student": 6, "submitted_assignment": 6, "grade": 18, "comment": 18}


@pytest.mark.slow
@pytest.mark.notebook
def test_grade_cohort_timestamp_recorded(graded_cohort) -> None:
    report, _ = graded_cohort

    with Gradebook(f"sqlite:///{report.gradebook}", "medkit_test") as book:
        late = book.find_submission("ps0_vitals", "s04_late").timestamp
        on_time = book.find_submission("ps0_vitals", "s01").timestamp

    assert late == datetime(2026, 3, 1, 9, 30)
    assert on_time is None


@pytest.mark.slow
@pytest.mark.notebook
def test_grade_cohort_matches_nbgrader_autograde(
    graded_cohort, cohort, tmp_path
) -> None:
    report, _ = graded_cohort
    course = tmp_path / "course"
    shutil.copytree(FIXTURE_COURSE, course)
    shutil.copytree(cohort, course / "submitted")
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    for step in (["generate_assignment", "ps0_vitals"], ["autograde", "ps0_vitals"]):
        subprocess.run(
            [sys.executable, "-m", "nbgrader", *step, "--force"],
            cwd=course,
            env=environment,
            check=True,
            capture_output=True,
        )

    plain = gradebook_state(course / "gradebook.db", "ps0_vitals")

    assert len(plain) == 18
    assert gradebook_state(report.gradebook, "ps0_vitals") == plain


@pytest.mark.slow
@pytest.mark.notebook
def test_grade_cohort_one_job_same_grades(graded_cohort, cohort, tmp_path) -> None:
    report, _ = graded_cohort

    sequential = grade_cohort(
        "ps0_vitals",
        cohort,
        course_dir=FIXTURE_COURSE,
        build_dir=tmp_path,
        jobs=1,
        feedback=False,
    )

    assert sequential.jobs == 1
    assert sequential.cells == report.cells
    assert sequential.feedback_dir is None
    assert gradebook_state(sequential.gradebook, "ps0_vitals") == gradebook_state(
        report.gradebook, "ps0_vitals"
    )


@pytest.mark.slow
@pytest.mark.notebook
def test_grade_cohort_feedback_pages(graded_cohort) -> None:
    report, build = graded_cohort

    assert report.feedback_dir == build / "feedback" / "ps0_vitals"
    pages = sorted(p.parent.name for p in report.feedback_dir.glob("*/vitals.html"))
    assert pages == sorted(COHORT)
    text = html.unescape(
        (report.feedback_dir / "s03" / "vitals.html").read_text(encoding="utf-8")
    )
    assert "2 of 5 points" in text
    assert (
        "Check has_fever on clear cases and, hidden, on the 38.0 °C threshold." in text
    )
    assert "AssertionError in a hidden check of this cell." in text
    assert "assert has_fever(38.0)" not in text


@pytest.mark.slow
@pytest.mark.notebook
def test_grade_cohort_regrade_keeps_manual_grades(tmp_path: Path) -> None:
    submitted = write_cohort(
        tmp_path / "submitted", tmp_path / "release", {"s01": "solution"}
    )
    build = tmp_path / "build"
    options = {"course_dir": FIXTURE_COURSE, "build_dir": build, "feedback": False}
    first = grade_cohort("ps0_vitals", submitted, **options)
    with Gradebook(f"sqlite:///{first.gradebook}", "medkit_test") as book:
        grade = book.find_grade("units_answer", "vitals", "ps0_vitals", "s01")
        grade.manual_score = 2.0
        book.db.commit()

    again = grade_cohort("ps0_vitals", submitted, **options)
    state = gradebook_state(again.gradebook, "ps0_vitals")

    assert first.scores == {"s01": 3.0}
    assert again.scores == {"s01": 5.0}
    assert again.cells == {
        "s01": {"test_bmi": 2.0, "test_fever": 1.0, "units_answer": 2.0}
    }
    assert state[("s01", "vitals", "units_answer")] == (None, True, None)
    assert len(state) == 3


@pytest.mark.slow
@pytest.mark.notebook
def test_grade_cohort_unreadable_notebook_fails_alone(tmp_path: Path) -> None:
    submitted = write_cohort(
        tmp_path / "submitted",
        tmp_path / "release",
        {"s01": "solution", "s02": "blank"},
    )
    (submitted / "s02" / "ps0_vitals" / "vitals.ipynb").write_text(
        "{not json", encoding="utf-8"
    )

    report = grade_cohort(
        "ps0_vitals",
        submitted,
        course_dir=FIXTURE_COURSE,
        build_dir=tmp_path / "build",
        feedback=False,
    )

    assert report.scores == {"s01": 3.0}
    assert list(report.failed) == ["s02"]
    assert report.failed["s02"].startswith("vitals.ipynb is not a valid notebook")
    assert "s02" not in report.grades_csv.read_text(encoding="utf-8")


@pytest.mark.slow
@pytest.mark.notebook
def test_grade_cohort_csv_keeps_earlier_students(tmp_path: Path) -> None:
    build = tmp_path / "build"
    first = write_cohort(tmp_path / "first", tmp_path / "release1", {"s01": "solution"})
    late = write_cohort(tmp_path / "late", tmp_path / "release2", {"s02": "blank"})

    for submitted in (first, late):
        report = grade_cohort(
            "ps0_vitals",
            submitted,
            course_dir=FIXTURE_COURSE,
            build_dir=build,
            feedback=False,
        )

    assert report.scores == {"s02": 0.0}
    assert report.grades_csv.read_text(encoding="utf-8") == (
        "student,score,max_score,test_bmi,test_fever,units_answer\n"
        "s01,3,5,2,1,\n"
        "s02,0,5,0,0,0\n"
    )


def test_grade_cohort_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(GradingError, match=r"Submissions folder .*absent not found"):
        grade_cohort(
            "ps0_vitals",
            tmp_path / "absent",
            course_dir=FIXTURE_COURSE,
            build_dir=tmp_path,
        )


def test_grade_cohort_without_submissions_raises(tmp_path: Path) -> None:
    (tmp_path / "submitted" / "s01" / "ps9").mkdir(parents=True)

    with pytest.raises(GradingError, match=r"No submissions of 'ps0_vitals' in"):
        grade_cohort(
            "ps0_vitals",
            tmp_path / "submitted",
            course_dir=FIXTURE_COURSE,
            build_dir=tmp_path / "build",
        )

    assert not (tmp_path / "build").exists()


@pytest.mark.parametrize("jobs", [0, -2])
def test_grade_cohort_invalid_jobs_raises(tmp_path: Path, jobs: int) -> None:
    (tmp_path / "submitted" / "s01" / "ps0_vitals").mkdir(parents=True)

    with pytest.raises(
        GradingSettingError, match=rf"jobs must be at least 1, got {jobs}"
    ):
        grade_cohort(
            "ps0_vitals",
            tmp_path / "submitted",
            course_dir=FIXTURE_COURSE,
            build_dir=tmp_path / "build",
            jobs=jobs,
        )


@pytest.mark.parametrize("setting", ["cell_timeout", "memory", "file_size", "output"])
def test_limits_invalid_value_raises(setting: str) -> None:
    with pytest.raises(
        GradingSettingError, match=rf"Limits\.{setting} must be a positive number"
    ) as raised:
        Limits(**{setting: 0})

    assert raised.value.name == setting
    assert raised.value.value == 0


def test_gradebook_path_default_is_class_folder() -> None:
    expected = PROJECT_DIR / "build" / "class" / "nbgrader" / "gradebook.db"

    assert gradebook_path() == expected


def test_grade_cohort_submissions_in_working_copy_raises(tmp_path: Path) -> None:
    submitted = tmp_path / "nbgrader" / "submitted"
    (submitted / "s01" / "ps0_vitals").mkdir(parents=True)

    with pytest.raises(GradingError, match=r"is inside the working copy .*nbgrader"):
        grade_cohort(
            "ps0_vitals", submitted, course_dir=FIXTURE_COURSE, build_dir=tmp_path
        )

    assert (submitted / "s01" / "ps0_vitals").is_dir()


# Feedback pages -----------------------------------------------------------------

FEEDBACK_TEST = (
    "# Checks that the dose is 5 mg per kg.\n"
    "assert dose(2) == 10, 'dose(2) must be 10'\n"
    "### BEGIN HIDDEN TESTS\n"
    "assert dose(3) == 15\n"
    "### END HIDDEN TESTS"
)


def feedback_notebook(source: str, outputs: list[dict]) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source, outputs=outputs)
    cell.metadata["nbgrader"] = {
        "grade": True,
        "grade_id": "test_dose",
        "locked": True,
        "points": 2,
        "solution": False,
    }
    return nbformat.v4.new_notebook(cells=[cell])


def error_output(ename: str, evalue: str, line: int) -> dict:
    return nbformat.v4.new_output(
        "error",
        ename=ename,
        evalue=evalue,
        traceback=[f"\x1b[0;31m{ename}\x1b[0m", f"Cell In[4], line {line}\n...", ename],
    )


@pytest.mark.parametrize(
    "output, expected",
    [
        pytest.param(
            error_output("AssertionError", "", 4),
            "AssertionError in a hidden check of this cell.",
            id="hidden",
        ),
        pytest.param(
            error_output("AssertionError", "dose(2) must be 10", 2),
            "AssertionError at the visible line `assert dose(2) == 10, 'dose(2) must "
            "be 10'`: dose(2) must be 10",
            id="visible",
        ),
        pytest.param(
            error_output("NameError", "name 'dose' is not defined", 2),
            "NameError at the visible line `assert dose(2) == 10, 'dose(2) must be "
            "10'`: name 'dose' is not defined",
            id="name-error",
        ),
        pytest.param(
            error_output("ValueError", "assert dose(3) == 15", 4),
            "ValueError in a hidden check of this cell.",
            id="message-quotes-hidden",
        ),
        pytest.param(
            nbformat.v4.new_output("stream", name="stderr", text="warning\n"),
            "The cell wrote to stderr, which nbgrader counts as a failure.",
            id="stderr",
        ),
    ],
)
def test_write_feedback_failed_test(tmp_path: Path, output, expected: str) -> None:
    graded = feedback_notebook(FEEDBACK_TEST, [output])
    released = feedback_notebook(FEEDBACK_TEST.split("### BEGIN")[0].strip(), [])

    page = write_feedback(
        tmp_path / "s01" / "doses.html",
        title="ps9: feedback for s01",
        graded=graded,
        released=released,
        grades={"test_dose": CellGrade(0.0, 2.0)},
        problems=[],
    )
    text = html.unescape(page.read_text(encoding="utf-8"))

    assert f"<p>{expected}</p>" in text
    assert "Failed</strong>: 0 of 2 points." in text
    assert "Checks that the dose is 5 mg per kg." in text
    assert "assert dose(3) == 15" not in text


def test_write_feedback_hidden_line_inside_visible_line(tmp_path: Path) -> None:
    source = (
        "# Checks the dose of two patients.\n"
        "low, high = dose_pair(2, 4)\n"
        "assert (low, high) == (10, 20)\n"
        "### BEGIN HIDDEN TESTS\n"
        "low, high = dose_pair(\n"
        "    3, 5\n"
        ")\n"
        "assert (low, high) == (15, 25)\n"
        "### END HIDDEN TESTS"
    )
    graded = feedback_notebook(source, [])
    released = feedback_notebook(source.split("### BEGIN")[0].strip(), [])

    page = write_feedback(
        tmp_path / "doses.html",
        title="ps9: feedback for s01",
        graded=graded,
        released=released,
        grades={"test_dose": CellGrade(2.0, 2.0)},
        problems=[],
    )
    text = html.unescape(page.read_text(encoding="utf-8"))

    assert "low, high = dose_pair(2, 4)" in text
    assert "(15, 25)" not in text


def test_write_feedback_problems_listed(tmp_path: Path) -> None:
    graded = feedback_notebook(FEEDBACK_TEST, [])
    problem = Problem("s01", "doses", "test_dose", "edited", "It was changed.")

    page = write_feedback(
        tmp_path / "doses.html",
        title="ps9: feedback for s01",
        graded=graded,
        released=graded,
        grades={"test_dose": CellGrade(2.0, 2.0)},
        problems=[problem],
    )
    text = html.unescape(page.read_text(encoding="utf-8"))

    assert "2 of 2 points" in text
    assert "<strong>test_dose</strong> (edited): It was changed." in text
    assert "Passed</strong>: 2 of 2 points." in text
