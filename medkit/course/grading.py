"""Release assignments and autograde submissions with nbgrader, in parallel.

``assignments/`` is an nbgrader course root. Every step here runs on a copy of
it in ``build/nbgrader/``, so the repository tree is only read:

1. ``generate_assignment`` makes the student version, copied to
   ``build/release/<assignment>/``;
2. each submission is checked against the student version (deleted or edited
   locked cells are put back, see :mod:`medkit.course._precheck`) and
   autograded by nbgrader in a worker process, its kernel under time, memory,
   output and network limits (:class:`Limits`);
3. the parent process alone writes the grades into the one gradebook,
   ``build/nbgrader/gradebook.db``, through nbgrader's Gradebook API;
4. the grades are exported to ``build/grades/<assignment>.csv`` and feedback
   HTML to ``build/feedback/<assignment>/<student>/``.

:func:`grade_cohort` grades a folder of submissions in nbgrader's ``submitted/``
layout. :func:`grade_demos` grades the demo submissions (see
:mod:`medkit.course.demos`) the same way and compares their scores with the
designed ones in ``expected.json``.

Examples
--------
>>> from medkit.course.grading import grade_demos
>>> [report] = grade_demos("ps1_digitization")  # doctest: +SKIP
>>> [(s.submission, s.score, s.expected) for s in report.scores]  # doctest: +SKIP
[('solution', 15.0, 15.0), ('blank', 0.0, 0.0), ('english_only', 12.0, 12.0), ...]
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from medkit.course._course import (
    COURSE_DIR,
    GRADEBOOK_FILE,
    Release,
    WorkingCourse,
    exclusive,
    find_assignments,
)
from medkit.course._paths import BUILD_DIR, display_path
from medkit.course._precheck import Problem
from medkit.course._run import GradingRun
from medkit.course._sandbox import Limits
from medkit.course._workers import SubmissionTask
from medkit.course.demos import (
    EXPECTED_FILE,
    DemoSubmission,
    find_demos,
    load_expected,
    write_submission,
)
from medkit.exceptions import GradingError, GradingSettingError

__all__ = [
    "CLASS_DIR",
    "COURSE_DIR",
    "CohortReport",
    "DemoScore",
    "GradeReport",
    "Limits",
    "Problem",
    "Release",
    "find_assignments",
    "grade_cohort",
    "grade_demos",
    "gradebook_path",
    "release_assignments",
]

logger = logging.getLogger(__name__)

DEMO_DIR = "demo"
SCORE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class DemoScore:
    """The autograded score of one demo submission.

    Attributes
    ----------
    submission : str
        The demo submission, which is also its nbgrader student ID.
    score : float
        Points awarded. Manually graded cells count 0 until graded by hand.
    max_score : float
        Points available, manually graded cells included.
    expected : float or None
        The designed score from ``expected.json``, or None without that file.
    cells : dict of str to float or None
        Points per graded cell by ``grade_id`` (``notebook:grade_id`` when the
        assignment has several notebooks); None for a cell awaiting manual grading.
    """

    submission: str
    score: float
    max_score: float
    expected: float | None
    cells: dict[str, float | None] = field(default_factory=dict)

    @property
    def matches(self) -> bool:
        """Whether the score equals the designed score, if one is given."""
        if self.expected is None:
            return True
        return math.isclose(self.score, self.expected, abs_tol=SCORE_TOLERANCE)


@dataclass(frozen=True)
class GradeReport:
    """The demo grades of one assignment.

    Attributes
    ----------
    assignment : str
        The assignment ID.
    scores : list of DemoScore
        One per demo submission: ``solution``, ``blank``, then the mistakes.
    grades_csv : Path
        ``build/grades/<assignment>.csv``.
    feedback_dir : Path or None
        ``build/feedback/<assignment>/``, or None when feedback was not made.
    """

    assignment: str
    scores: list[DemoScore]
    grades_csv: Path
    feedback_dir: Path | None = None

    @property
    def mismatches(self) -> list[DemoScore]:
        """The scores that differ from their designed score."""
        return [score for score in self.scores if not score.matches]


@dataclass(frozen=True)
class CohortReport:
    """The grades of a cohort's submissions of one assignment.

    Attributes
    ----------
    assignment : str
        The assignment ID.
    gradebook : Path
        The nbgrader gradebook that contains the grades,
        ``build/nbgrader/gradebook.db``.
    grades_csv : Path
        ``build/grades/<assignment>.csv``: one row per graded student with
        ``student``, ``score``, ``max_score``, then the points of each graded
        cell by ``grade_id`` (empty while a cell waits for manual grading).
    scores : dict of str to float
        Total points by student, manual grades included once entered.
    max_score : float
        Points available, manually graded cells included.
    cells : dict of str to dict
        Points per graded cell by student, keyed as in the CSV header.
    problems : list of Problem
        What the pre-grade check found and the limits submissions hit, by
        student in ID order.
    failed : dict of str to str
        Students whose submission could not be graded, with the reason. They
        have no row in the CSV and no grades in the gradebook.
    seconds : float
        Wall-clock time of the whole run.
    jobs : int
        Number of processes that graded.
    feedback_dir : Path or None
        ``build/feedback/<assignment>/``, or None when feedback was not made.
    """

    assignment: str
    gradebook: Path
    grades_csv: Path
    scores: dict[str, float]
    max_score: float
    cells: dict[str, dict[str, float | None]]
    problems: list[Problem]
    failed: dict[str, str]
    seconds: float
    jobs: int
    feedback_dir: Path | None = None


CLASS_DIR = BUILD_DIR / "class"
"""Default build folder of :func:`grade_cohort`.

It is apart from ``build/``, where :func:`grade_demos` rebuilds its gradebook on
every run, so that ``make course`` never touches a class's grades.
"""


def gradebook_path(build_dir: str | Path | None = None) -> Path:
    """Return the gradebook of a build folder, ``<build_dir>/nbgrader/gradebook.db``.

    Parameters
    ----------
    build_dir : str or Path, default=``build/class/`` of the project
        The build folder that :func:`grade_cohort` writes to.
    """
    build_dir = CLASS_DIR if build_dir is None else Path(build_dir)
    return build_dir / "nbgrader" / GRADEBOOK_FILE


def release_assignments(
    assignment: str | None = None,
    course_dir: str | Path | None = None,
    build_dir: str | Path | None = None,
) -> list[Release]:
    """Generate the student version of assignments into ``build/release/``.

    Parameters
    ----------
    assignment : str, optional
        The assignment to release; by default every one in ``source/``.
    course_dir : str or Path, default=``assignments/`` of the project
        The nbgrader course root. It is copied, never written.
    build_dir : str or Path, default=``build/`` of the project
        Where the working copy and the releases are written.

    Returns
    -------
    list of Release
        One per assignment, in ID order.

    Raises
    ------
    GradingError
        If the assignment does not exist, nbgrader fails on it, or another
        release or grading run is using the same ``build_dir``.
    """
    course = WorkingCourse(course_dir, build_dir)
    names = course.select(assignment)
    with exclusive(course.build_dir):
        course.prepare()
        return [course.release(name) for name in names]


def grade_cohort(
    assignment: str,
    submissions_dir: str | Path,
    *,
    course_dir: str | Path | None = None,
    build_dir: str | Path | None = None,
    jobs: int | None = None,
    feedback: bool = True,
    progress: bool | None = None,
    limits: Limits | None = None,
) -> CohortReport:
    """Autograde every submission of an assignment in a cohort folder.

    Parameters
    ----------
    assignment : str
        The assignment ID, e.g. ``"ps1_digitization"``.
    submissions_dir : str or Path
        A folder in nbgrader's ``submitted/`` layout:
        ``<submissions_dir>/<student>/<assignment>/<notebook>.ipynb``, with an
        optional ``timestamp.txt`` beside the notebooks. It is only read.
    course_dir : str or Path, default=``assignments/`` of the project
        The nbgrader course root. It is copied, never written.
    build_dir : str or Path, default=``build/class/`` of the project
        Where the working copy, gradebook, grades and feedback are written.
        Grades already in its gradebook are kept, manual grades included; a
        student graded again gets new autograded scores. The grades CSV lists
        every student in the gradebook, not only this run's.
    jobs : int, optional
        Number of processes that grade at once; by default the number of CPU
        cores, and never more than the number of submissions.
    feedback : bool, default=True
        Write a feedback page per notebook to
        ``build/feedback/<assignment>/<student>/``.
    progress : bool, optional
        Show a progress bar over the submissions; by default only on a terminal.
    limits : Limits, optional
        Time, memory, output and network limits of each kernel; by default
        ``Limits()``.

    Returns
    -------
    CohortReport
        Scores, problems and failures; the grades are in ``report.gradebook``.

    Raises
    ------
    GradingError
        If the assignment or the submissions folder does not exist, the folder
        holds no submission of the assignment, ``jobs`` is below 1, nbgrader
        cannot release the assignment, or another run uses ``build_dir``.
        A submission that cannot be graded is reported in ``failed`` instead.

    Examples
    --------
    >>> report = grade_cohort("ps1_digitization", "cohort/submitted", jobs=2)
    ... # doctest: +SKIP
    >>> report.scores["s001"], report.failed  # doctest: +SKIP
    (15.0, {})
    """
    started = time.perf_counter()
    course = WorkingCourse(course_dir, CLASS_DIR if build_dir is None else build_dir)
    [assignment] = course.select(assignment)
    tasks = _find_submissions(Path(submissions_dir), assignment)
    jobs = _job_count(jobs, len(tasks))
    if course.root.resolve() in Path(submissions_dir).resolve().parents:
        raise GradingError(
            f"Submissions folder {display_path(Path(submissions_dir))} is inside the "
            f"working copy {display_path(course.root)}, which grading rebuilds; copy "
            "the submissions to a folder of their own."
        )

    with exclusive(course.build_dir):
        course.refresh(assignment)
        course.release(assignment)
        outcome = GradingRun(course, assignment, limits, feedback).run(
            tasks, jobs, progress, protected=[Path(submissions_dir)]
        )

    students = sorted(outcome.scores)
    grades_csv = _write_grades(
        _gradebook_rows(course, assignment),
        course.build_dir / "grades" / f"{assignment}.csv",
    )
    seconds = time.perf_counter() - started
    logger.info(
        "Graded %d of %d submissions of %s in %.1f s with %d processes",
        len(students),
        len(tasks),
        assignment,
        seconds,
        jobs,
    )
    return CohortReport(
        assignment=assignment,
        gradebook=course.gradebook,
        grades_csv=grades_csv,
        scores={name: outcome.scores[name] for name in students},
        max_score=outcome.max_score,
        cells={name: outcome.cells[name] for name in students},
        problems=sorted(outcome.problems, key=lambda problem: problem.student),
        failed=dict(sorted(outcome.failed.items())),
        seconds=seconds,
        jobs=jobs,
        feedback_dir=outcome.feedback_dir,
    )


def grade_demos(
    assignment: str | None = None,
    course_dir: str | Path | None = None,
    build_dir: str | Path | None = None,
    *,
    check: bool = True,
    feedback: bool = True,
    progress: bool | None = None,
    jobs: int | None = None,
    limits: Limits | None = None,
) -> list[GradeReport]:
    """Autograde the demo submissions of assignments and export the grades.

    Parameters
    ----------
    assignment : str, optional
        The assignment to grade; by default every one in ``source/``.
    course_dir : str or Path, default=``assignments/`` of the project
        The nbgrader course root, with demo folders in ``demo/``. It is copied,
        never written.
    build_dir : str or Path, default=``build/`` of the project
        Where the working copy, grades and feedback are written. Its working
        copy and gradebook are replaced.
    check : bool, default=True
        Raise if a demo score differs from its designed score. This needs an
        ``expected.json`` for every assignment.
    feedback : bool, default=True
        Also write a feedback page for each demo submission.
    progress : bool, optional
        Show a progress bar over the submissions; by default only on a terminal.
    jobs : int, optional
        Number of processes that grade at once; by default the number of CPU
        cores, and never more than the number of demo submissions.
    limits : Limits, optional
        Limits of each kernel, as in :func:`grade_cohort`.

    Returns
    -------
    list of GradeReport
        One per assignment, in ID order.

    Raises
    ------
    GradingError
        If an assignment or its demo folder is invalid, nbgrader fails on a demo,
        another release or grading run is using the same ``build_dir``, or, with
        ``check``, a score differs from the designed one. Every assignment is
        graded and exported before a difference is raised.
    """
    course = WorkingCourse(course_dir, build_dir)
    names = course.select(assignment)
    # Read every demo folder before running nbgrader, so a bad one fails fast.
    demos = {
        name: _load_demos(course.source_root / DEMO_DIR / name, check) for name in names
    }
    reports = []
    with exclusive(course.build_dir):
        course.prepare()
        for name in names:
            course.release(name)
            submissions, expected = demos[name]
            report = _grade_demo_set(
                course,
                name,
                submissions,
                expected,
                feedback=feedback,
                progress=progress,
                jobs=_job_count(jobs, len(submissions)),
                limits=limits,
            )
            reports.append(report)

    differences = [
        f"{report.assignment} '{score.submission}' scored {score.score:g}, "
        f"expected {score.expected:g}"
        for report in reports
        for score in report.mismatches
    ]
    if check and differences:
        raise GradingError(
            f"Demo scores differ from {EXPECTED_FILE}: {'; '.join(differences)}. "
            f"Per-cell grades are in {display_path(reports[0].grades_csv.parent)}."
        )
    return reports


def _grade_demo_set(
    course: WorkingCourse,
    assignment: str,
    demos: list[DemoSubmission],
    expected: dict[str, float],
    *,
    feedback: bool,
    progress: bool | None,
    jobs: int,
    limits: Limits | None,
) -> GradeReport:
    """Write the demo submissions to ``submitted/`` and grade them."""
    source = course.step_dir(course.coursedir.source_directory, assignment)
    release = course.step_dir(course.coursedir.release_directory, assignment)
    tasks = []
    for demo in demos:
        submitted = course.step_dir(
            course.coursedir.submitted_directory, assignment, demo.name
        )
        write_submission(demo, source, release, submitted)
        tasks.append(SubmissionTask(demo.name, submitted))

    outcome = GradingRun(course, assignment, limits, feedback).run(
        tasks, jobs, progress
    )
    if outcome.failed:
        name, reason = next(iter(outcome.failed.items()))
        raise GradingError(
            f"nbgrader autograde of '{assignment}' for '{name}' failed: {reason}"
        )

    scores = [
        DemoScore(
            submission=demo.name,
            score=outcome.scores[demo.name],
            max_score=outcome.max_score,
            expected=expected.get(demo.name),
            cells=outcome.cells[demo.name],
        )
        for demo in demos
    ]
    grades_csv = _write_grades(
        [(s.submission, s.score, s.max_score, s.cells) for s in scores],
        course.build_dir / "grades" / f"{assignment}.csv",
    )
    for score in scores:
        logger.info(
            "%s '%s': %g of %g points (designed %s)",
            assignment,
            score.submission,
            score.score,
            score.max_score,
            "none" if score.expected is None else f"{score.expected:g}",
        )
    return GradeReport(assignment, scores, grades_csv, outcome.feedback_dir)


def _find_submissions(folder: Path, assignment: str) -> list[SubmissionTask]:
    """List ``<folder>/<student>/<assignment>/`` folders, by student ID."""
    if not folder.is_dir():
        raise GradingError(
            f"Submissions folder {display_path(folder)} not found; pass a folder "
            f"laid out as <student>/{assignment}/<notebook>.ipynb."
        )
    tasks = [
        SubmissionTask(student.name, student / assignment)
        for student in sorted(folder.iterdir())
        if not student.name.startswith(".") and (student / assignment).is_dir()
    ]
    if not tasks:
        raise GradingError(
            f"No submissions of '{assignment}' in {display_path(folder)}; expected "
            f"folders <student>/{assignment}/ with the submitted notebooks."
        )
    return tasks


def _job_count(jobs: int | None, submissions: int) -> int:
    if jobs is not None and (isinstance(jobs, bool) or jobs < 1):
        raise GradingSettingError(
            f"jobs must be at least 1, got {jobs!r}.", name="jobs", value=jobs
        )
    wanted = jobs if jobs is not None else os.cpu_count() or 1
    return max(1, min(wanted, submissions))


def _load_demos(
    demo_dir: Path, check: bool
) -> tuple[list[DemoSubmission], dict[str, float]]:
    """Return the demo submissions and their designed scores, if known or needed."""
    demos = find_demos(demo_dir)
    expected: dict[str, float] = {}
    if check or (demo_dir / EXPECTED_FILE).exists():
        expected = load_expected(demo_dir, [demo.name for demo in demos])
    return demos, expected


def _gradebook_rows(
    course: WorkingCourse, assignment: str
) -> list[tuple[str, float, float, dict[str, float | None]]]:
    """Read every student's graded cells of `assignment` from the gradebook."""
    from medkit.course._gradebook import read_gradebook

    if not course.gradebook.exists():
        return []
    try:
        scores = read_gradebook(course.gradebook, assignment, course_dir=course.root)
    except GradingError:
        # No submission of the assignment was graded, so there is no row to write.
        return []
    rows = []
    for student, cells in scores.groupby("student", sort=True):
        points = {
            item: None if pd.isna(score) else float(score)
            for item, score in zip(cells["item"], cells["score"], strict=True)
        }
        total = float(cells["score"].sum(skipna=True))
        rows.append((str(student), total, float(cells["max_score"].sum()), points))
    return rows


def _write_grades(
    rows: list[tuple[str, float, float, dict[str, float | None]]], path: Path
) -> Path:
    """Write one row per student: totals, then points per graded cell."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cell_columns = list(rows[0][3]) if rows else []
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["student", "score", "max_score", *cell_columns])
        for student, score, max_score, cells in rows:
            values = ["" if value is None else f"{value:g}" for value in cells.values()]
            writer.writerow([student, f"{score:g}", f"{max_score:g}", *values])
    logger.info("Wrote %s", path)
    return path
