"""One grading run: worker processes grade, this process merges the grades.

:class:`GradingRun` starts the workers of :mod:`medkit.course._workers`, writes
each result into the course gradebook through nbgrader's Gradebook API as it
arrives, and collects the scores that :mod:`medkit.course.grading` reports.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Grade, Gradebook, SubmittedNotebook
from tqdm.auto import tqdm

from medkit.course._course import WorkingCourse
from medkit.course._nbgrader import nbgrader_environment
from medkit.course._precheck import Problem, installed_kernels
from medkit.course._sandbox import (
    Limits,
    kernel_settings,
    probe_limits,
    readable_folders,
)
from medkit.course._workers import (
    SubmissionResult,
    SubmissionTask,
    WorkerPool,
    WorkerSetup,
)

logger = logging.getLogger("medkit.course.grading")


@dataclass
class Outcome:
    """Scores of the submissions merged into the gradebook in one run."""

    scores: dict[str, float] = field(default_factory=dict)
    max_score: float = 0.0
    cells: dict[str, dict[str, float | None]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    feedback_dir: Path | None = None


class GradingRun:
    """One run: worker processes grade, this process merges into the gradebook."""

    def __init__(
        self,
        course: WorkingCourse,
        assignment: str,
        limits: Limits | None,
        feedback: bool,
    ) -> None:
        self.course = course
        self.assignment = assignment
        self.limits = Limits() if limits is None else limits
        self.feedback_dir = (
            course.build_dir / "feedback" / assignment if feedback else None
        )
        self.columns = graded_cells(
            course.step_dir(course.coursedir.source_directory, assignment)
        )
        self._names: dict[str, str] | None = None

    def run(
        self,
        tasks: list[SubmissionTask],
        jobs: int,
        progress: bool | None,
        protected: Sequence[Path] = (),
    ) -> Outcome:
        """Grade ``tasks`` in ``jobs`` processes and merge each result."""
        outcome = Outcome(feedback_dir=self.feedback_dir)
        scratch = Path(tempfile.mkdtemp(prefix="medkit-grade-"))
        try:
            setup = self._setup(scratch, [*protected, scratch])
            # The workers start first, so they inherit no thread and no gradebook.
            with (
                WorkerPool(setup, tasks, jobs) as pool,
                tqdm(
                    total=len(tasks),
                    desc=self.assignment,
                    unit="submission",
                    disable=off(progress),
                ) as bar,
                nbgrader_environment(),
                Gradebook(
                    self.course.coursedir.db_url, self.course.coursedir.course_id
                ) as gradebook,
            ):
                for result in pool.results():
                    self._merge(gradebook, result, outcome)
                    bar.update(1)
                    if outcome.failed:
                        bar.set_postfix(failed=len(outcome.failed))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return outcome

    def _setup(self, scratch: Path, protected: list[Path]) -> WorkerSetup:
        # A consistent copy of the gradebook, made with SQLite's backup API.
        template = scratch / "template.db"
        source = sqlite3.connect(self.course.gradebook)
        target = sqlite3.connect(template)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()

        release = self.course.step_dir(
            self.course.coursedir.release_directory, self.assignment
        )
        released = {
            path.stem: path.read_text(encoding="utf-8")
            for path in sorted(release.glob("*.ipynb"))
        }
        source = self.course.step_dir(
            self.course.coursedir.source_directory, self.assignment
        )
        sources = {
            path.stem: path.read_text(encoding="utf-8")
            for path in sorted(source.glob("*.ipynb"))
        }
        settings = kernel_settings(
            self.limits, protected_paths(self.course, protected), readable_folders()
        )
        log_unapplied_limits(settings)
        # Read here, so that forked workers inherit the list instead of reading it.
        installed_kernels()
        return WorkerSetup(
            config=self.course.config,
            assignment=self.assignment,
            template_db=template,
            scratch=scratch,
            limits=self.limits,
            kernel_settings=settings,
            released=released,
            sources=sources,
            feedback_dir=self.feedback_dir,
            log_level=logging.getLogger("medkit").getEffectiveLevel(),
        )

    def _merge(
        self, gradebook: Gradebook, result: SubmissionResult, outcome: Outcome
    ) -> None:
        """Write one submission's autograded state into the course gradebook.

        The rules are those of nbgrader's SaveAutoGrades: a manual score already
        entered is kept, and such a grade is flagged for review again.
        """
        outcome.problems.extend(result.problems)
        if result.error is not None:
            outcome.failed[result.student] = result.error
            logger.warning(
                "%s: could not grade %s: %s",
                self.assignment,
                result.student,
                result.error,
            )
            return

        cells = self._cell_names(gradebook)
        gradebook.update_or_create_student(result.student)
        options = {} if result.timestamp is None else {"timestamp": result.timestamp}
        submission = gradebook.update_or_create_submission(
            self.assignment, result.student, **options
        )
        records = {(r.notebook, r.grade_id): r for r in result.grades}
        for notebook in submission.notebooks:
            name = cells[notebook.notebook_id]
            notebook.late_submission_penalty = result.late_penalties.get(name)
            for grade in notebook.grades:
                record = records.get((name, cells[grade.cell_id]))
                if record is not None:
                    grade.auto_score = record.auto_score
                    grade.needs_manual_grade = (
                        record.needs_manual_grade or grade.manual_score is not None
                    )
            for comment in notebook.comments:
                key = (name, cells[comment.cell_id])
                if key in result.comments:
                    comment.auto_comment = result.comments[key]
        gradebook.db.commit()

        self._read_scores(gradebook, result.student, submission.id, outcome)
        logger.debug(
            "%s: merged %s (%.1f s in a worker)",
            self.assignment,
            result.student,
            result.seconds,
        )

    def _cell_names(self, gradebook: Gradebook) -> dict[str, str]:
        """Map the gradebook IDs of this assignment's notebooks and cells to names.

        Reading ``grade.name`` loads each cell from the database; one lookup per
        run keeps the merge of a submission to a few queries.
        """
        if self._names is None:
            assignment = gradebook.find_assignment(self.assignment)
            self._names = {}
            for notebook in assignment.notebooks:
                self._names[notebook.id] = notebook.name
                for cell in [*notebook.grade_cells, *notebook.solution_cells]:
                    self._names[cell.id] = cell.name
                for cell in notebook.task_cells:
                    self._names[cell.id] = cell.name
        return self._names

    def _read_scores(
        self,
        gradebook: Gradebook,
        student: str,
        submission_id: str,
        outcome: Outcome,
    ) -> None:
        """Read the stored points of one submission into ``outcome``."""
        cells = self._cell_names(gradebook)
        rows = (
            gradebook.db.query(
                SubmittedNotebook.notebook_id,
                Grade.cell_id,
                Grade.score,
                Grade.auto_score,
                Grade.manual_score,
                Grade.max_score,
            )
            .join(SubmittedNotebook, Grade.notebook_id == SubmittedNotebook.id)
            .filter(SubmittedNotebook.assignment_id == submission_id)
            .all()
        )
        points: dict[str, float | None] = {}
        for notebook_id, cell_id, score, auto, manual, _ in rows:
            column = self.columns.get((cells[notebook_id], cells[cell_id]))
            if column is not None:
                graded = auto is not None or manual is not None
                points[column] = float(score) if graded else None
        outcome.cells[student] = {
            column: points.get(column) for column in self.columns.values()
        }
        outcome.scores[student] = float(sum(row[2] for row in rows))
        outcome.max_score = float(sum(row[5] for row in rows))


def protected_paths(course: WorkingCourse, extra: list[Path]) -> list[Path]:
    """Folders a trainee's kernel must not open: course, build, gradebooks, Git."""
    paths = [course.build_dir, course.source_root, *extra]
    for folder in [course.source_root.resolve(), *course.source_root.resolve().parents]:
        if (folder / ".git").exists():
            paths.append(folder / ".git")
            break
    return [path.resolve() for path in paths]


_PROBED_LIMITS: dict[str, dict[str, str]] = {}


def log_unapplied_limits(settings: dict) -> None:
    """Warn, once per process, about each limit this machine cannot apply."""
    key = json.dumps(
        {name: settings.get(name) for name in ("memory", "file_size", "network")}
    )
    if key in _PROBED_LIMITS:
        return
    _PROBED_LIMITS[key] = probe_limits(settings)
    for name, state in _PROBED_LIMITS[key].items():
        if state.startswith("applied") and "but" not in state:
            logger.debug("The %s limit applies to grading kernels.", name)
        elif state not in ("not set", "allowed"):
            logger.warning(
                "The %s limit cannot be applied to grading kernels here: %s",
                name.replace("_", " "),
                state,
            )


def graded_cells(source: Path) -> dict[tuple[str, str], str]:
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


def off(progress: bool | None) -> bool | None:
    """Translate ``progress`` to tqdm's ``disable``, where None means "not a tty"."""
    return None if progress is None else not progress
