"""Grade submissions in worker processes, each with a gradebook of its own.

SQLite allows one writer at a time, so parallel ``nbgrader autograde`` runs on
one gradebook fail with "database is locked". Here each worker process copies a
template gradebook that holds only the released assignment, runs nbgrader's
Autograde converter on one submission at a time against that copy, and sends the
grades and comments back as plain records. The parent process alone writes them
into the course gradebook (see :mod:`medkit.course.grading`).

Workers share the course folder: each writes only ``submitted/<student>/``,
``autograded/<student>/`` and ``feedback/<assignment>/<student>/`` of the
students it grades.
"""

from __future__ import annotations

import copy
import logging
import logging.handlers
import multiprocessing
import os
import shutil
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.converters import Autograde
from nbgrader.converters.base import NbGraderException
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute
from traitlets.config import Config

from medkit.course._feedback import CellGrade, write_feedback
from medkit.course._nbgrader import NbgraderLog, nbgrader_environment
from medkit.course._precheck import Problem, check_notebook
from medkit.course._sandbox import Limits, SandboxExecute, take_events

logger = logging.getLogger("medkit.course.grading")


@dataclass(frozen=True)
class WorkerSetup:
    """Settings that every worker receives once, when it starts.

    Attributes
    ----------
    config : Config
        The course's nbgrader config with ``CourseDirectory.root`` set to the
        working copy; each worker sets its own ``db_url``.
    assignment : str
        The assignment ID.
    template_db : Path
        A gradebook with the released assignment and no submissions.
    scratch : Path
        A private folder for the workers' gradebooks.
    limits : Limits
        The sandbox limits.
    kernel_settings : dict
        Settings for :mod:`medkit.course._sandbox_kernel`.
    released : dict of str to str
        The released notebooks as JSON text, by name without ``.ipynb``.
    sources : dict of str to str
        The instructor versions as JSON text, by name without ``.ipynb``.
    feedback_dir : Path or None
        ``build/feedback/<assignment>/``, or None for no feedback.
    log_level : int
        The level of the parent's ``medkit`` logger.
    """

    config: Config
    assignment: str
    template_db: Path
    scratch: Path
    limits: Limits
    kernel_settings: dict[str, Any]
    released: dict[str, str]
    sources: dict[str, str]
    feedback_dir: Path | None
    log_level: int = logging.WARNING


@dataclass(frozen=True)
class SubmissionTask:
    """One submission to grade: a student and the folder of their notebooks."""

    student: str
    folder: Path


@dataclass(frozen=True)
class GradeRecord:
    """The autograded state of one grade (or comment) of a submission."""

    notebook: str
    grade_id: str
    auto_score: float | None
    needs_manual_grade: bool


@dataclass
class SubmissionResult:
    """The result of grading one submission, as a worker sends it back.

    Attributes
    ----------
    student : str
        The student ID.
    grades : list of GradeRecord
        One per graded cell.
    comments : dict of (str, str) to str or None
        nbgrader's automatic comment ("No response.") by (notebook, grade_id).
    late_penalties : dict of str to float or None
        Late penalty by notebook.
    timestamp : datetime or None
        The submission time from ``timestamp.txt``.
    problems : list of Problem
        Pre-grade findings and limits hit while grading.
    error : str or None
        Why the submission could not be graded, or None.
    seconds : float
        Time the worker spent on it.
    """

    student: str
    grades: list[GradeRecord] = field(default_factory=list)
    comments: dict[tuple[str, str], str | None] = field(default_factory=dict)
    late_penalties: dict[str, float | None] = field(default_factory=dict)
    timestamp: datetime | None = None
    problems: list[Problem] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


class UnreadableNotebook(Exception):
    """A submitted notebook that is not valid notebook JSON."""


class Grader:
    """Autograde submissions one at a time against a private gradebook."""

    def __init__(self, setup: WorkerSetup) -> None:
        self.setup = setup
        self.db = setup.scratch / f"gradebook-{os.getpid()}.db"
        shutil.copyfile(setup.template_db, self.db)

        config = copy.deepcopy(setup.config)
        config.CourseDirectory.db_url = f"sqlite:///{self.db}"
        if setup.limits.cell_timeout is not None:
            config.Execute.timeout = setup.limits.cell_timeout
        config.SandboxKernelManager.sandbox = setup.kernel_settings
        self.config = config
        self.coursedir = CourseDirectory(config=config)
        self.released = {
            name: nbformat.reads(text, as_version=4)
            for name, text in setup.released.items()
        }
        self.sources = {
            name: nbformat.reads(text, as_version=4)
            for name, text in setup.sources.items()
        }
        self._gradebook: Gradebook | None = None
        self._names: dict[str, str] = {}

    def grade(self, task: SubmissionTask) -> SubmissionResult:
        """Grade one submission; any failure becomes the result's ``error``."""
        started = time.perf_counter()
        result = SubmissionResult(task.student)
        try:
            self._grade(task, result)
        except UnreadableNotebook as error:
            result.error = str(error)
        except Exception as error:  # noqa: BLE001
            # One broken submission must not stop the cohort; the traceback is
            # logged for the instructor and the student is reported as failed.
            logger.debug("Grading %s failed:\n%s", task.student, traceback.format_exc())
            result.error = f"{type(error).__name__}: {error}"
        result.seconds = time.perf_counter() - started
        return result

    def _grade(self, task: SubmissionTask, result: SubmissionResult) -> None:
        assignment = self.setup.assignment
        submitted = Path(
            self.coursedir.format_path(
                self.coursedir.submitted_directory, task.student, assignment
            )
        )
        if task.folder.resolve() != submitted.resolve():
            if submitted.exists():
                shutil.rmtree(submitted)
            shutil.copytree(task.folder, submitted)
        result.problems.extend(self._precheck(task.student, submitted))

        log = self._autograde(task.student)
        result.problems.extend(
            Problem(task.student, event.notebook, event.cell, event.kind, event.message)
            for event in take_events()
        )
        if log is not None:
            result.error = f"nbgrader autograde failed: {log.summary()}"
            return
        self._read_grades(task.student, result)
        if self.setup.feedback_dir is not None:
            self._write_feedback(task.student, result)

    def _precheck(self, student: str, submitted: Path) -> list[Problem]:
        problems = []
        for name, released in self.released.items():
            path = submitted / f"{name}.ipynb"
            if not path.is_file():
                problems.append(
                    Problem(
                        student,
                        name,
                        "",
                        "missing",
                        f"{name}.ipynb was not submitted; its cells score 0.",
                    )
                )
                continue
            try:
                notebook = nbformat.read(path, as_version=4)
            except (ValueError, KeyError, AttributeError, TypeError) as error:
                raise UnreadableNotebook(
                    f"{name}.ipynb is not a valid notebook ({error}); ask the "
                    "trainee to submit it again from Jupyter."
                ) from error
            fixed, found = check_notebook(
                student, name, notebook, released, self.sources.get(name)
            )
            if any(problem.kind in ("deleted", "edited") for problem in found):
                nbformat.write(fixed, path)
            problems.extend(found)
        return problems

    def _autograde(self, student: str) -> NbgraderLog | None:
        """Run Autograde; return its log if it failed, None if it succeeded."""
        log = NbgraderLog()
        converter = Autograde(coursedir=self.coursedir, config=self.config, log=log)
        converter.force = True
        converter.autograde_preprocessors = [
            SandboxExecute if preprocessor is Execute else preprocessor
            for preprocessor in converter.autograde_preprocessors
        ]
        self.coursedir.assignment_id = self.setup.assignment
        self.coursedir.student_id = student
        take_events()
        try:
            with nbgrader_environment():
                converter.start()
        except NbGraderException:
            return log
        return None

    def _read_grades(self, student: str, result: SubmissionResult) -> None:
        """Copy the student's grades and comments from the worker's gradebook."""
        gradebook = self._open_gradebook()
        try:
            try:
                submission = gradebook.find_submission(self.setup.assignment, student)
            except MissingEntry as error:
                raise NbGraderException(f"no grades were stored: {error}") from error
            result.timestamp = submission.timestamp
            for notebook in submission.notebooks:
                name = self._names[notebook.notebook_id]
                result.late_penalties[name] = notebook.late_submission_penalty
                for grade in notebook.grades:
                    result.grades.append(
                        GradeRecord(
                            name,
                            self._names[grade.cell_id],
                            grade.auto_score,
                            bool(grade.needs_manual_grade),
                        )
                    )
                for comment in notebook.comments:
                    key = (name, self._names[comment.cell_id])
                    result.comments[key] = comment.auto_comment
        finally:
            # End the read transaction, so the next Autograde run sees no lock
            # and the next read sees its writes.
            gradebook.db.rollback()
            gradebook.db.expire_all()

    def close(self) -> None:
        """Close the worker's gradebook."""
        if self._gradebook is not None:
            self._gradebook.close()
            self._gradebook = None

    def _open_gradebook(self) -> Gradebook:
        """Open the worker's gradebook once, with the names of its notebooks and cells.

        The names come from one lookup, because reading ``grade.name`` loads each
        cell from the database.
        """
        if self._gradebook is None:
            with nbgrader_environment():
                self._gradebook = Gradebook(
                    self.coursedir.db_url, self.coursedir.course_id
                )
            assignment = self._gradebook.find_assignment(self.setup.assignment)
            for notebook in assignment.notebooks:
                self._names[notebook.id] = notebook.name
                cells = [*notebook.grade_cells, *notebook.solution_cells]
                for cell in [*cells, *notebook.task_cells]:
                    self._names[cell.id] = cell.name
            self._gradebook.db.rollback()
        return self._gradebook

    def _write_feedback(self, student: str, result: SubmissionResult) -> None:
        folder = self.setup.feedback_dir / student
        if folder.exists():
            shutil.rmtree(folder)
        autograded = Path(
            self.coursedir.format_path(
                self.coursedir.autograded_directory, student, self.setup.assignment
            )
        )
        max_scores = _max_scores(self.released)
        for name, released in self.released.items():
            path = autograded / f"{name}.ipynb"
            if not path.is_file():
                continue
            grades = {
                record.grade_id: CellGrade(
                    record.auto_score, max_scores.get((name, record.grade_id), 0.0)
                )
                for record in result.grades
                if record.notebook == name
            }
            write_feedback(
                folder / f"{name}.html",
                title=_feedback_title(self.setup.assignment, name, student),
                graded=nbformat.read(path, as_version=4),
                released=released,
                grades=grades,
                problems=[p for p in result.problems if p.notebook == name],
            )


def _feedback_title(assignment: str, notebook: str, student: str) -> str:
    shown = assignment if notebook == assignment else f"{assignment} ({notebook})"
    return f"{shown}: feedback for {student}"


def _max_scores(released: dict[str, Any]) -> dict[tuple[str, str], float]:
    scores = {}
    for name, notebook in released.items():
        for cell in notebook.cells:
            nbgrader = cell.get("metadata", {}).get("nbgrader", {})
            if nbgrader.get("grade"):
                scores[(name, nbgrader["grade_id"])] = float(nbgrader.get("points", 0))
    return scores


# Process pool -------------------------------------------------------------------

_GRADER: Grader | None = None


def _init_worker(setup: WorkerSetup, log_queue: Any) -> None:
    global _GRADER
    root = logging.getLogger()
    root.handlers = [logging.handlers.QueueHandler(log_queue)]
    root.setLevel(setup.log_level)
    _GRADER = Grader(setup)


def _grade_in_worker(task: SubmissionTask) -> SubmissionResult:
    assert _GRADER is not None, "the worker was started without _init_worker"
    return _GRADER.grade(task)


class _ForwardToLogger(logging.Handler):
    """Hand records from worker processes to the logger of the same name here."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(record.name).handle(record)


class WorkerPool:
    """Processes that grade submissions, started when the pool is entered.

    Workers are forked from this process, so they start without importing
    nbgrader again. They are forked before this process opens the gradebook or
    starts a thread, so they inherit neither.

    With ``jobs=1`` no process is started and :meth:`results` grades the
    submissions here, one by one.
    """

    def __init__(self, setup: WorkerSetup, tasks: list[SubmissionTask], jobs: int):
        self.setup = setup
        self.tasks = tasks
        self.jobs = jobs
        self._executor: ProcessPoolExecutor | None = None
        self._listener: logging.handlers.QueueListener | None = None
        self._futures: dict[Any, SubmissionTask] = {}

    def __enter__(self) -> WorkerPool:
        if self.jobs <= 1:
            return self
        context = multiprocessing.get_context("fork")
        log_queue = context.Queue()
        self._executor = ProcessPoolExecutor(
            max_workers=self.jobs,
            mp_context=context,
            initializer=_init_worker,
            initargs=(self.setup, log_queue),
        )
        # With the fork start method, the first submit forks every worker.
        self._futures = {
            self._executor.submit(_grade_in_worker, task): task for task in self.tasks
        }
        self._listener = logging.handlers.QueueListener(log_queue, _ForwardToLogger())
        self._listener.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        if self._listener is not None:
            self._listener.stop()

    def results(self) -> Iterator[SubmissionResult]:
        """Yield one result per task, in the order the submissions finish."""
        if self._executor is None:
            grader = Grader(self.setup)
            try:
                for task in self.tasks:
                    yield grader.grade(task)
            finally:
                grader.close()
            return
        for future in as_completed(self._futures):
            task = self._futures[future]
            try:
                yield future.result()
            except BrokenProcessPool as error:
                yield SubmissionResult(
                    task.student, error=f"the grading process stopped: {error}"
                )
