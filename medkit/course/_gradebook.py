"""Read the graded cells of an assignment from its source notebooks and gradebook.

The source notebooks give each graded cell's points and learning objective, an
``objective:<slug>`` tag in the cell's metadata. nbgrader's gradebook gives every
submission's points per cell. Both are only read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.exc import SQLAlchemyError
from traitlets.config import Config
from traitlets.config.loader import ConfigFileNotFound, PyFileConfigLoader

from medkit.course._paths import PROJECT_DIR, display_path
from medkit.exceptions import GradingError

logger = logging.getLogger(__name__)

SCORE_COLUMNS = ["student", "item", "objective", "score", "max_score"]
"""Columns of the tidy score table: one row per trainee and graded cell."""
OBJECTIVE_TAG = "objective:"
UNTAGGED = "untagged"
"""Objective of a graded cell that has no ``objective:<slug>`` tag."""
COURSE_DIR = PROJECT_DIR / "assignments"
CONFIG_FILE = "nbgrader_config.py"


def graded_items(assignment: str, course_dir: str | Path | None = None) -> pd.DataFrame:
    """List the graded cells of an assignment's source notebooks.

    Parameters
    ----------
    assignment : str
        The assignment ID, a folder of the course's ``source/``.
    course_dir : str or Path, default=``assignments/`` of the project
        The nbgrader course root.

    Returns
    -------
    DataFrame
        One row per graded cell in notebook order: ``item`` (the ``grade_id``,
        written ``notebook:grade_id`` when the assignment has several
        notebooks), ``notebook``, ``grade_id``, ``objective`` (from the
        ``objective:<slug>`` tag, or ``"untagged"``), ``max_score`` and
        ``cell_type``.

    Raises
    ------
    GradingError
        If the assignment has no source notebook, or a graded cell has several
        objective tags.
    """
    notebooks = source_notebooks(assignment, course_dir)
    rows = []
    for path in notebooks:
        for cell in nbformat.read(path, as_version=4).cells:
            nbgrader = cell.get("metadata", {}).get("nbgrader", {})
            if not nbgrader.get("grade"):
                continue
            grade_id = nbgrader["grade_id"]
            item = grade_id if len(notebooks) == 1 else f"{path.stem}:{grade_id}"
            rows.append(
                {
                    "item": item,
                    "notebook": path.stem,
                    "grade_id": grade_id,
                    "objective": _objective(cell, grade_id, path),
                    "max_score": float(nbgrader.get("points", 0)),
                    "cell_type": cell.cell_type,
                }
            )
    untagged = [row["item"] for row in rows if row["objective"] == UNTAGGED]
    if untagged:
        logger.warning(
            "%s: graded cells without an objective tag: %s",
            assignment,
            ", ".join(untagged),
        )
    columns = ["item", "notebook", "grade_id", "objective", "max_score", "cell_type"]
    return pd.DataFrame(rows, columns=columns)


def source_notebooks(
    assignment: str, course_dir: str | Path | None = None
) -> list[Path]:
    """Return the instructor notebooks of an assignment, sorted by name.

    Parameters
    ----------
    assignment : str
        The assignment ID.
    course_dir : str or Path, default=``assignments/`` of the project
        The nbgrader course root; its ``nbgrader_config.py`` may rename
        ``source/``.

    Returns
    -------
    list of Path

    Raises
    ------
    GradingError
        If the assignment's source folder contains no notebook.
    """
    course_dir = COURSE_DIR if course_dir is None else Path(course_dir)
    config = load_course_config(course_dir)
    source = course_dir / config.CourseDirectory.get("source_directory", "source")
    notebooks = sorted((source / assignment).glob("*.ipynb"))
    if not notebooks:
        raise GradingError(
            f"No source notebook of '{assignment}' found in "
            f"{display_path(source / assignment)}; pass the course folder that "
            f"contains source/{assignment}/."
        )
    return notebooks


def load_course_config(course_dir: Path) -> Config:
    """Load a course's ``nbgrader_config.py``, or an empty config without one."""
    if not (course_dir / CONFIG_FILE).is_file():
        return Config()
    try:
        return PyFileConfigLoader(CONFIG_FILE, path=str(course_dir)).load_config()
    except (ConfigFileNotFound, SyntaxError, NameError) as error:
        raise GradingError(
            f"Cannot load {display_path(course_dir / CONFIG_FILE)}: {error}"
        ) from error


def read_gradebook(
    gradebook: str | Path,
    assignment: str,
    *,
    course_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Read every graded cell of an assignment's submissions from a gradebook.

    The gradebook is opened read-only, so a report never changes grades.

    Parameters
    ----------
    gradebook : str or Path
        nbgrader's SQLite gradebook file, or an SQLAlchemy URL such as
        ``sqlite:///gradebook.db``.
    assignment : str
        The assignment ID.
    course_dir : str or Path, default=``assignments/`` of the project
        The course root whose source notebooks carry the objective tags.

    Returns
    -------
    DataFrame
        The tidy score table (:data:`SCORE_COLUMNS`), students sorted and items
        in notebook order. ``score`` is NaN for a cell that awaits manual
        grading, that is, with neither an automatic nor a manual score.

    Raises
    ------
    GradingError
        If the gradebook is not found or is not an nbgrader gradebook, the
        assignment is not in it or has no submission, or its source notebook
        is not found.
    """
    items = graded_items(assignment, course_dir)
    several_notebooks = items["notebook"].nunique() > 1
    rows = []
    with _open_gradebook(gradebook) as book:
        try:
            book.find_assignment(assignment)
        except MissingEntry:
            known = ", ".join(a.name for a in book.assignments) or "none"
            raise GradingError(
                f"Assignment '{assignment}' is not in the gradebook "
                f"{_shown(gradebook)}; it has {known}."
            ) from None
        for submission in book.assignment_submissions(assignment):
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    pending = grade.auto_score is None and grade.manual_score is None
                    item = grade.name
                    if several_notebooks:
                        item = f"{notebook.name}:{grade.name}"
                    rows.append(
                        {
                            "student": submission.student.id,
                            "item": item,
                            "score": np.nan if pending else float(grade.score),
                            "max_score": float(grade.max_score),
                        }
                    )
    if not rows:
        raise GradingError(
            f"The gradebook {_shown(gradebook)} has no graded submission of "
            f"'{assignment}'; autograde the submissions first."
        )
    return _tidy(pd.DataFrame(rows), items)


def _objective(cell: nbformat.NotebookNode, grade_id: str, path: Path) -> str:
    tags = cell.get("metadata", {}).get("tags", [])
    objectives = [
        tag[len(OBJECTIVE_TAG) :] for tag in tags if tag.startswith(OBJECTIVE_TAG)
    ]
    if len(objectives) > 1:
        raise GradingError(
            f"Graded cell '{grade_id}' in {display_path(path)} has "
            f"{len(objectives)} objective tags ({', '.join(objectives)}); tag each "
            f"graded cell with the one objective it checks."
        )
    return objectives[0] if objectives else UNTAGGED


def _tidy(grades: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Add the objectives; sort by student, then items in notebook order."""
    order = {item: position for position, item in enumerate(items["item"])}
    unknown = sorted(set(grades["item"]) - set(order))
    if unknown:
        logger.warning(
            "Gradebook items not in the source notebook, tagged %s: %s",
            UNTAGGED,
            ", ".join(unknown),
        )
    objectives = dict(zip(items["item"], items["objective"], strict=True))
    grades = grades.assign(
        objective=grades["item"].map(objectives).fillna(UNTAGGED),
        position=grades["item"].map(order).fillna(len(order)),
    )
    grades = grades.sort_values(["student", "position", "item"], kind="stable")
    return grades[SCORE_COLUMNS].reset_index(drop=True)


@contextmanager
def _open_gradebook(gradebook: str | Path) -> Iterator[Gradebook]:
    """Open an nbgrader gradebook read-only, with errors that name the file."""
    url = _read_only_url(gradebook)
    try:
        # An empty course_id makes Gradebook add no course row to the database.
        book = Gradebook(url, course_id="")
    except SQLAlchemyError as error:
        raise GradingError(
            f"{_shown(gradebook)} is not an nbgrader gradebook that can be read "
            f"({type(error).__name__}); pass the gradebook.db that nbgrader "
            f"autograde wrote."
        ) from error
    try:
        yield book
    finally:
        book.close()


def _read_only_url(gradebook: str | Path) -> str:
    if isinstance(gradebook, str) and "://" in gradebook:
        return gradebook
    path = Path(gradebook)
    if not path.is_file():
        raise GradingError(
            f"Gradebook {display_path(path)} not found; grade the submissions "
            f"first (medkit grade) or pass the gradebook.db to read."
        )
    # SQLite's read-only mode rejects every write, including the tables that
    # Gradebook would create in a database that is not a gradebook.
    return f"sqlite:///file:{path.resolve()}?mode=ro&uri=true"


def _shown(gradebook: str | Path) -> str:
    if isinstance(gradebook, str) and "://" in gradebook:
        return gradebook
    return display_path(Path(gradebook))
