"""The working copy of the nbgrader course under ``build/nbgrader/``."""

from __future__ import annotations

import fcntl
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nbgrader.converters import GenerateAssignment
from nbgrader.converters.base import BaseConverter, NbGraderException
from nbgrader.coursedir import CourseDirectory

from medkit.course._nbgrader import NbgraderLog, load_config, nbgrader_environment
from medkit.course._paths import BUILD_DIR, PROJECT_DIR, display_path
from medkit.exceptions import GradingError

logger = logging.getLogger("medkit.course.grading")

COURSE_DIR = PROJECT_DIR / "assignments"
LOCK_FILE = ".nbgrader.lock"
"""File in the build folder that a release or grading run holds locked."""
GRADEBOOK_FILE = "gradebook.db"


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
    source = course_dir / load_config(course_dir).CourseDirectory.get(
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


class WorkingCourse:
    """A working copy of an nbgrader course root under ``build/nbgrader/``."""

    def __init__(self, course_dir: str | Path | None, build_dir: str | Path | None):
        self.source_root = COURSE_DIR if course_dir is None else Path(course_dir)
        self.build_dir = BUILD_DIR if build_dir is None else Path(build_dir)
        self.root = self.build_dir / "nbgrader"
        if not self.source_root.is_dir():
            raise GradingError(
                f"Course folder {display_path(self.source_root)} not found."
            )

        self.config = load_config(self.source_root)
        self.config.CourseDirectory.root = str(self.root.resolve())
        self.config.CourseDirectory.db_url = f"sqlite:///{self.gradebook.resolve()}"
        self.coursedir = CourseDirectory(config=self.config)

    @property
    def gradebook(self) -> Path:
        """The course gradebook, ``build/nbgrader/gradebook.db``."""
        return self.root / GRADEBOOK_FILE

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

    def refresh(self, assignment: str) -> None:
        """Copy one assignment's source again, keeping the gradebook and grades.

        Without a gradebook yet, the working copy is prepared from scratch.
        """
        if not self.gradebook.is_file():
            self.prepare()
            return
        target = self.step_dir(self.coursedir.source_directory, assignment)
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(
            self.source_root / self.coursedir.source_directory / assignment,
            target,
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
        self.run(GenerateAssignment, "generate_assignment", assignment, ".")
        released = self.step_dir(self.coursedir.release_directory, assignment)
        target = self.build_dir / "release" / assignment
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(released, target)
        logger.info("Released %s to %s", assignment, target)
        return Release(
            assignment, target, sorted(p.name for p in target.glob("*.ipynb"))
        )

    def run(
        self,
        converter_class: type[BaseConverter],
        step: str,
        assignment: str,
        student: str,
    ) -> None:
        """Run one nbgrader converter, raising GradingError with its first error."""
        log = NbgraderLog()
        converter = converter_class(
            coursedir=self.coursedir, config=self.config, log=log
        )
        converter.force = True
        self.coursedir.assignment_id = assignment
        self.coursedir.student_id = student
        try:
            with nbgrader_environment():
                converter.start()
        except NbGraderException as error:
            for_student = "" if student in (".", "*") else f" for '{student}'"
            raise GradingError(
                f"nbgrader {step} of '{assignment}'{for_student} failed: "
                f"{log.summary()}"
            ) from error


@contextmanager
def exclusive(build_dir: Path) -> Iterator[None]:
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
