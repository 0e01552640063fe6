"""Demonstration submissions that show how an assignment grades.

Each assignment may have a folder ``assignments/demo/<assignment>/`` with:

``expected.json``
    The designed autograded score of every demo submission, as a JSON object
    such as ``{"solution": 9, "blank": 0, "zero_fill": 6}``.
``<mistake>/<grade_id>.py`` or ``<mistake>/<grade_id>.md``
    One folder per typical mistake. Each file contains the code (``.py``) or
    Markdown (``.md``) that replaces the answer cell with that nbgrader
    ``grade_id``. Answer cells without a file keep the model solution, so a
    mistake folder contains only the answers that differ from it.

Two submissions need no folder: ``solution`` is the source notebook with its
solutions (the instructor version) and ``blank`` is the student version as
released.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from medkit.course._paths import display_path
from medkit.exceptions import GradingError

__all__ = [
    "BLANK",
    "EXPECTED_FILE",
    "SOLUTION",
    "DemoSubmission",
    "find_demos",
    "load_expected",
    "write_submission",
]

logger = logging.getLogger(__name__)

SOLUTION = "solution"
BLANK = "blank"
EXPECTED_FILE = "expected.json"
ANSWER_CELL_TYPES = {".py": "code", ".md": "markdown"}


@dataclass(frozen=True)
class DemoSubmission:
    """One demo submission of an assignment.

    Attributes
    ----------
    name : str
        The student ID it is graded under: ``"solution"``, ``"blank"`` or the
        name of its mistake folder.
    answers : dict of str to Path
        Files that replace answer cells of the student version, by ``grade_id``.
        Empty for ``solution`` and ``blank``.
    """

    name: str
    answers: dict[str, Path] = field(default_factory=dict)


def find_demos(demo_dir: str | Path) -> list[DemoSubmission]:
    """List the demo submissions of an assignment.

    Parameters
    ----------
    demo_dir : str or Path
        The assignment's demo folder, ``assignments/demo/<assignment>/``. It need
        not exist, in which case only ``solution`` and ``blank`` are returned.

    Returns
    -------
    list of DemoSubmission
        ``solution``, ``blank``, then the mistake folders by name.

    Raises
    ------
    GradingError
        If a mistake folder is named ``solution`` or ``blank``, or contains a file
        whose suffix is neither ``.py`` nor ``.md``.
    """
    demo_dir = Path(demo_dir)
    demos = [DemoSubmission(SOLUTION), DemoSubmission(BLANK)]
    if not demo_dir.is_dir():
        return demos

    for folder in sorted(path for path in demo_dir.iterdir() if path.is_dir()):
        if folder.name.startswith((".", "_")):
            continue
        if folder.name in (SOLUTION, BLANK):
            raise GradingError(
                f"Demo folder {display_path(folder)} uses the reserved name "
                f"'{folder.name}'; rename it after the mistake it shows."
            )
        answers = {}
        for path in sorted(folder.iterdir()):
            if path.suffix not in ANSWER_CELL_TYPES or not path.is_file():
                raise GradingError(
                    f"Demo file {display_path(path)} is not an answer file; name it "
                    f"<grade_id>.py for a code cell or <grade_id>.md for Markdown."
                )
            answers[path.stem] = path
        demos.append(DemoSubmission(folder.name, answers))
    return demos


def load_expected(demo_dir: str | Path, names: list[str]) -> dict[str, float]:
    """Read the designed autograded score of each demo submission.

    Parameters
    ----------
    demo_dir : str or Path
        The assignment's demo folder.
    names : list of str
        The demo submissions, as listed by :func:`find_demos`.

    Returns
    -------
    dict of str to float
        The designed score by submission name.

    Raises
    ------
    GradingError
        If ``expected.json`` is missing, is not an object of numbers, or its
        names differ from the demo submissions.
    """
    path = Path(demo_dir) / EXPECTED_FILE
    shown = display_path(path)
    if not path.is_file():
        raise GradingError(
            f"{shown} not found; write the designed score of each demo submission "
            f'there, e.g. {{"solution": 9, "blank": 0}}.'
        )
    try:
        expected = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise GradingError(f"{shown} is not valid JSON: {error}.") from error

    if not isinstance(expected, dict) or not all(
        _is_score(value) for value in expected.values()
    ):
        raise GradingError(
            f"{shown} must be a JSON object that maps each demo submission to a "
            f"number of points."
        )
    missing = [name for name in names if name not in expected]
    extra = [name for name in expected if name not in names]
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"no score for {_quoted(missing)}")
        if extra:
            problems.append(f"a score for {_quoted(extra)}, which has no demo folder")
        raise GradingError(
            f"{shown} has {' and '.join(problems)}; list exactly {_quoted(names)}."
        )
    return {name: float(expected[name]) for name in names}


def write_submission(
    demo: DemoSubmission, source_dir: Path, release_dir: Path, target_dir: Path
) -> None:
    """Write a demo submission as nbgrader expects to find it in ``submitted/``.

    Parameters
    ----------
    demo : DemoSubmission
        The submission to write.
    source_dir : Path
        The assignment's instructor version, ``source/<assignment>/``.
    release_dir : Path
        The assignment's student version, ``release/<assignment>/``.
    target_dir : Path
        ``submitted/<student>/<assignment>/``; replaced if it exists.

    Raises
    ------
    GradingError
        If an answer file names no answer cell of the student version, names
        answer cells in two notebooks, or has the wrong cell type.
    """
    if target_dir.exists():
        shutil.rmtree(target_dir)
    # A mistake is the model solution with some answers replaced; only the
    # blank submission starts from the student version.
    base = release_dir if demo.name == BLANK else source_dir
    shutil.copytree(base, target_dir)

    notebooks = {
        path: nbformat.read(path, as_version=4) for path in target_dir.glob("*.ipynb")
    }
    changed = set()
    for grade_id, answer in demo.answers.items():
        path, cell = _find_answer_cell(notebooks, grade_id, answer)
        expected_type = ANSWER_CELL_TYPES[answer.suffix]
        if cell.cell_type != expected_type:
            raise GradingError(
                f"Demo file {display_path(answer)} contains a {expected_type} answer, "
                f"but the cell '{grade_id}' is a {cell.cell_type} cell; rename it to "
                f"{grade_id}{_suffix_for(cell.cell_type)}."
            )
        cell.source = answer.read_text(encoding="utf-8").rstrip("\n")
        changed.add(path)

    for path in changed:
        nbformat.write(notebooks[path], path)
    logger.debug("Wrote demo submission %s to %s", demo.name, target_dir)


def _find_answer_cell(
    notebooks: dict[Path, nbformat.NotebookNode], grade_id: str, answer: Path
) -> tuple[Path, nbformat.NotebookNode]:
    """Find the one answer cell with ``grade_id`` among the notebooks."""
    found = []
    answer_ids = []
    for path, nb in notebooks.items():
        for cell in nb.cells:
            nbgrader = cell.get("metadata", {}).get("nbgrader", {})
            if not nbgrader.get("solution"):
                continue
            answer_ids.append(nbgrader.get("grade_id"))
            if nbgrader.get("grade_id") == grade_id:
                found.append((path, cell))

    if not found:
        raise GradingError(
            f"Demo file {display_path(answer)} names no answer cell; the answer "
            f"cells' grade_ids are {', '.join(sorted(answer_ids))}."
        )
    if len(found) > 1:
        names = ", ".join(path.name for path, _ in found)
        raise GradingError(
            f"Demo file {display_path(answer)} matches the answer cell '{grade_id}' "
            f"in several notebooks ({names}); give the cells distinct grade_ids."
        )
    return found[0]


def _suffix_for(cell_type: str) -> str:
    return next(
        suffix for suffix, kind in ANSWER_CELL_TYPES.items() if kind == cell_type
    )


def _quoted(names: list[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def _is_score(value: object) -> bool:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return is_number and math.isfinite(value)
