"""Release assignments and autograde their demo submissions with nbgrader.

``assignments/`` is an nbgrader course root. Every step here runs on a fresh
copy of it in ``build/nbgrader/``, so the repository tree is only read:

1. ``generate_assignment`` makes the student version, copied to
   ``build/release/<assignment>/``;
2. the demo submissions (see :mod:`medkit.course.demos`) are written to
   ``submitted/`` and autograded, each under its own student ID;
3. the gradebook is exported to ``build/grades/<assignment>.csv`` and, on
   request, feedback HTML to ``build/feedback/<assignment>/<submission>/``;
4. the scores are compared with the designed ones in ``expected.json``.

Examples
--------
>>> from medkit.course.grading import grade_demos
>>> [report] = grade_demos("ps1_digitization")  # doctest: +SKIP
>>> [(s.submission, s.score, s.expected) for s in report.scores]  # doctest: +SKIP
[('solution', 9.0, 9.0), ('blank', 0.0, 0.0), ('zero_fill', 6.0, 6.0)]
"""

from __future__ import annotations

import csv
import fcntl
import logging
import math
import os
import shutil
import sysconfig
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbgrader.api import Gradebook
from nbgrader.converters import Autograde, GenerateAssignment, GenerateFeedback
from nbgrader.converters.base import BaseConverter, NbGraderException
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute
from sqlalchemy.exc import SAWarning
from tqdm.auto import tqdm
from traitlets.config import Config
from traitlets.config.loader import ConfigFileNotFound, PyFileConfigLoader

from medkit.course._kernel import InterpreterKernelManager
from medkit.course._paths import BUILD_DIR, PROJECT_DIR, display_path
from medkit.course.demos import (
    EXPECTED_FILE,
    DemoSubmission,
    find_demos,
    load_expected,
    write_submission,
)
from medkit.exceptions import GradingError

__all__ = [
    "COURSE_DIR",
    "DemoScore",
    "GradeReport",
    "Release",
    "find_assignments",
    "grade_demos",
    "release_assignments",
]

logger = logging.getLogger(__name__)

COURSE_DIR = PROJECT_DIR / "assignments"
CONFIG_FILE = "nbgrader_config.py"
DEMO_DIR = "demo"
LOCK_FILE = ".nbgrader.lock"
"""File in the build folder that a release or grading run holds locked."""
SCORE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Release:
    """The student version of one assignment.

    Attributes
    ----------
    assignment : str
        The assignment ID, e.g. ``"ps1_digitization"``.
    directory : Path
        ``build/release/<assignment>/``, ready to hand out.
    notebooks : list of str
        The released notebook file names.
    """

    assignment: str
    directory: Path
    notebooks: list[str]


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


class InterpreterExecute(Execute):
    """nbgrader's Execute preprocessor, run by the interpreter that runs medkit."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("kernel_manager_class", InterpreterKernelManager)
        super().__init__(**kwargs)


def find_assignments(course_dir: str | Path | None = None) -> list[str]:
    """List the assignments in the course's ``source/`` folder.

    Parameters
    ----------
    course_dir : str or Path, default=``assignments/`` of the project
        The nbgrader course root.

    Returns
    -------
    list of str
        Sorted IDs of the folders that hold at least one notebook.
    """
    course_dir = COURSE_DIR if course_dir is None else Path(course_dir)
    source = course_dir / _load_config(course_dir).CourseDirectory.get(
        "source_directory", "source"
    )
    if not source.is_dir():
        return []
    return sorted(
        folder.name
        for folder in source.iterdir()
        if folder.is_dir()
        and not folder.name.startswith(".")
        and any(folder.glob("*.ipynb"))
    )


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
    course = _Course(course_dir, build_dir)
    names = course.select(assignment)
    with _exclusive(course.build_dir):
        course.prepare()
        return [course.release(name) for name in names]


def grade_demos(
    assignment: str | None = None,
    course_dir: str | Path | None = None,
    build_dir: str | Path | None = None,
    *,
    check: bool = True,
    feedback: bool = True,
    progress: bool | None = None,
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
        Where the working copy, grades and feedback are written.
    check : bool, default=True
        Raise if a demo score differs from its designed score. This needs an
        ``expected.json`` for every assignment.
    feedback : bool, default=True
        Also write nbgrader's feedback HTML for each demo submission.
    progress : bool, optional
        Show a progress bar over the submissions; by default only on a terminal.

    Returns
    -------
    list of GradeReport
        One per assignment, in ID order.

    Raises
    ------
    GradingError
        If an assignment or its demo folder is invalid, nbgrader fails, another
        release or grading run is using the same ``build_dir``, or, with
        ``check``, a score differs from the designed one. Every assignment is
        graded and exported before a difference is raised.
    """
    course = _Course(course_dir, build_dir)
    names = course.select(assignment)
    # Read every demo folder before running nbgrader, so a bad one fails fast.
    demos = {
        name: _load_demos(course.source_root / DEMO_DIR / name, check) for name in names
    }
    reports = []
    with _exclusive(course.build_dir):
        course.prepare()
        for name in names:
            course.release(name)
            report = course.grade(
                name, *demos[name], feedback=feedback, progress=progress
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


class _Course:
    """A working copy of an nbgrader course root under ``build/nbgrader/``."""

    def __init__(self, course_dir: str | Path | None, build_dir: str | Path | None):
        self.source_root = COURSE_DIR if course_dir is None else Path(course_dir)
        self.build_dir = BUILD_DIR if build_dir is None else Path(build_dir)
        self.root = self.build_dir / "nbgrader"
        if not self.source_root.is_dir():
            raise GradingError(
                f"Course folder {display_path(self.source_root)} not found."
            )

        self.config = _load_config(self.source_root)
        self.config.CourseDirectory.root = str(self.root.resolve())
        self.config.CourseDirectory.db_url = (
            f"sqlite:///{self.root.resolve()}/gradebook.db"
        )
        self.coursedir = CourseDirectory(config=self.config)

    def prepare(self) -> None:
        """Replace the working copy with the configuration and ``source/``.

        An instructor's own ``release/``, ``submitted/`` or ``gradebook.db`` in
        the course folder is never copied, so every run starts from scratch.
        """
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        source = self.source_root / self.coursedir.source_directory
        if source.is_dir():
            shutil.copytree(
                source,
                self.root / self.coursedir.source_directory,
                ignore=shutil.ignore_patterns(*self.coursedir.ignore),
            )

    def select(self, assignment: str | None) -> list[str]:
        """Return ``[assignment]``, or every assignment when it is None."""
        available = find_assignments(self.source_root)
        if assignment is None:
            return available
        if assignment not in available:
            raise GradingError(
                f"Assignment '{assignment}' not found in "
                f"{display_path(self.source_root / self.coursedir.source_directory)}; "
                f"the assignments are {', '.join(available) or 'none'}."
            )
        return [assignment]

    def step_dir(self, step: str, assignment: str, student: str = ".") -> Path:
        """Return the folder of one nbgrader step, e.g. ``submitted/<student>/<a>``."""
        return Path(self.coursedir.format_path(step, student, assignment))

    def release(self, assignment: str) -> Release:
        """Run ``generate_assignment`` and copy the student version to build/."""
        self._run(GenerateAssignment, "generate_assignment", assignment, ".")
        released = self.step_dir(self.coursedir.release_directory, assignment)
        target = self.build_dir / "release" / assignment
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(released, target)
        logger.info("Released %s to %s", assignment, target)
        return Release(
            assignment, target, sorted(p.name for p in target.glob("*.ipynb"))
        )

    def grade(
        self,
        assignment: str,
        demos: list[DemoSubmission],
        expected: dict[str, float],
        *,
        feedback: bool,
        progress: bool | None,
    ) -> GradeReport:
        """Autograde the demo submissions of a released assignment."""
        names = [demo.name for demo in demos]
        source = self.step_dir(self.coursedir.source_directory, assignment)
        release = self.step_dir(self.coursedir.release_directory, assignment)
        bar = tqdm(demos, desc=assignment, unit="submission", disable=_off(progress))
        for demo in bar:
            submitted = self.step_dir(
                self.coursedir.submitted_directory, assignment, demo.name
            )
            write_submission(demo, source, release, submitted)
            self._run(Autograde, "autograde", assignment, demo.name)

        scores = self._scores(assignment, names, expected)
        grades_csv = _write_grades(
            scores, self.build_dir / "grades" / f"{assignment}.csv"
        )
        feedback_dir = self._feedback(assignment) if feedback else None
        for score in scores:
            logger.info(
                "%s '%s': %g of %g points (designed %s)",
                assignment,
                score.submission,
                score.score,
                score.max_score,
                "none" if score.expected is None else f"{score.expected:g}",
            )
        return GradeReport(assignment, scores, grades_csv, feedback_dir)

    def _scores(
        self, assignment: str, names: list[str], expected: dict[str, float]
    ) -> list[DemoScore]:
        """Read each demo submission's scores from the gradebook."""
        columns = _graded_cells(
            self.step_dir(self.coursedir.source_directory, assignment)
        )
        scores = []
        with (
            _nbgrader_environment(),
            Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gradebook,
        ):
            for name in names:
                submission = gradebook.find_submission(assignment, name)
                grades = {}
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        graded = (
                            grade.auto_score is not None
                            or grade.manual_score is not None
                        )
                        grades[(notebook.name, grade.name)] = (
                            grade.score if graded else None
                        )
                cells = {column: grades.get(key) for key, column in columns.items()}
                scores.append(
                    DemoScore(
                        submission=name,
                        score=float(submission.score),
                        max_score=float(submission.max_score),
                        expected=expected.get(name),
                        cells=cells,
                    )
                )
        return scores

    def _feedback(self, assignment: str) -> Path:
        """Run ``generate_feedback`` and copy the HTML to build/feedback/."""
        self._run(GenerateFeedback, "generate_feedback", assignment, "*")
        target = self.build_dir / "feedback" / assignment
        if target.exists():
            shutil.rmtree(target)
        for html in sorted(
            self.root.glob(f"{self.coursedir.feedback_directory}/*/{assignment}/*.html")
        ):
            student = html.parent.parent.name
            (target / student).mkdir(parents=True, exist_ok=True)
            shutil.copy2(html, target / student / html.name)
        logger.info("Wrote feedback for %s to %s", assignment, target)
        return target

    def _run(
        self,
        converter_class: type[BaseConverter],
        step: str,
        assignment: str,
        student: str,
    ) -> None:
        """Run one nbgrader converter, raising GradingError with its first error."""
        log = _NbgraderLog()
        converter = converter_class(
            coursedir=self.coursedir, config=self.config, log=log
        )
        converter.force = True
        if isinstance(converter, Autograde):
            converter.autograde_preprocessors = [
                InterpreterExecute if preprocessor is Execute else preprocessor
                for preprocessor in converter.autograde_preprocessors
            ]

        self.coursedir.assignment_id = assignment
        self.coursedir.student_id = student
        try:
            with _nbgrader_environment():
                converter.start()
        except NbGraderException as error:
            for_student = "" if student in (".", "*") else f" for '{student}'"
            raise GradingError(
                f"nbgrader {step} of '{assignment}'{for_student} failed: "
                f"{log.summary()}"
            ) from error


class _NbgraderLog(logging.LoggerAdapter):
    """Logger for nbgrader: its messages go to medkit's log at DEBUG, errors are kept.

    nbgrader logs an error, often a whole traceback, and then raises an exception
    with a generic message; the kept errors make the message of GradingError.
    """

    def __init__(self) -> None:
        super().__init__(logger, {})
        self.errors: list[str] = []

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = f"{msg} {args}"
        if level >= logging.ERROR:
            self.errors.append(text)
        self.logger.debug("nbgrader: %s", text)

    def summary(self) -> str:
        """Return the last line of the first logged traceback, or the first error."""
        tracebacks = [text for text in self.errors if text.startswith("Traceback")]
        for text in tracebacks + self.errors:
            lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
            if lines:
                return lines[-1]
        return "nbgrader logged no error; run with -vv to see its log."


@contextmanager
def _exclusive(build_dir: Path) -> Iterator[None]:
    """Hold a lock on ``build_dir`` so that two runs never share one gradebook.

    Two processes that rebuild ``build/nbgrader/`` at once delete each other's
    files and corrupt the gradebook, so the second one fails at once instead.
    """
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / LOCK_FILE, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GradingError(
                f"Another medkit release or grading run is using "
                f"{display_path(build_dir)}; wait for it to finish, or pass "
                "another build_dir."
            ) from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def _nbgrader_environment() -> Iterator[None]:
    """Prepare the process for nbgrader: PATH, and its SQLAlchemy warnings.

    nbgrader's Gradebook runs the ``alembic`` command by name when it creates a
    database, and a virtual environment used without activation, as in
    ``.venv/bin/medkit``, does not have its scripts folder on PATH.
    """
    original = os.environ.get("PATH")
    scripts = sysconfig.get_path("scripts")
    os.environ["PATH"] = os.pathsep.join([scripts, original] if original else [scripts])
    try:
        with warnings.catch_warnings():
            # NOTE: nbgrader 0.9.6 on SQLAlchemy 2.x warns that objects are "not in
            # session" while it records grades. The stored grades are still
            # complete, which the demo score tests check.
            warnings.filterwarnings("ignore", category=SAWarning, module=r"nbgrader\.")
            yield
    finally:
        if original is None:
            del os.environ["PATH"]
        else:
            os.environ["PATH"] = original


def _load_demos(
    demo_dir: Path, check: bool
) -> tuple[list[DemoSubmission], dict[str, float]]:
    """Return the demo submissions and their designed scores, if known or needed."""
    demos = find_demos(demo_dir)
    expected: dict[str, float] = {}
    if check or (demo_dir / EXPECTED_FILE).exists():
        expected = load_expected(demo_dir, [demo.name for demo in demos])
    return demos, expected


def _load_config(course_dir: Path) -> Config:
    """Load the course's ``nbgrader_config.py``, or an empty config without one."""
    if not (course_dir / CONFIG_FILE).is_file():
        return Config()
    try:
        return PyFileConfigLoader(CONFIG_FILE, path=str(course_dir)).load_config()
    except (ConfigFileNotFound, SyntaxError, NameError) as error:
        raise GradingError(
            f"Cannot load {display_path(course_dir / CONFIG_FILE)}: {error}"
        ) from error


def _graded_cells(source: Path) -> dict[tuple[str, str], str]:
    """Map (notebook, grade_id) of every graded cell to its CSV column name."""
    notebooks = sorted(source.glob("*.ipynb"))
    columns = {}
    for path in notebooks:
        for cell in nbformat.read(path, as_version=4).cells:
            nbgrader = cell.get("metadata", {}).get("nbgrader", {})
            if nbgrader.get("grade"):
                grade_id = nbgrader["grade_id"]
                column = grade_id if len(notebooks) == 1 else f"{path.stem}:{grade_id}"
                columns[(path.stem, grade_id)] = column
    return columns


def _write_grades(scores: list[DemoScore], path: Path) -> Path:
    """Write one row per demo submission: totals, then points per graded cell."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cell_columns = list(scores[0].cells) if scores else []
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["student", "score", "max_score", *cell_columns])
        for score in scores:
            cells = [
                "" if value is None else f"{value:g}" for value in score.cells.values()
            ]
            writer.writerow(
                [score.submission, f"{score.score:g}", f"{score.max_score:g}", *cells]
            )
    logger.info("Wrote %s", path)
    return path


def _off(progress: bool | None) -> bool | None:
    """Translate ``progress`` to tqdm's ``disable``, where None means "not a tty"."""
    return None if progress is None else not progress
