"""Autograde each single-cell variant of an assignment once, to predict any mix.

A *variant* of an answer cell is the text a submission holds in it: the model
solution (``solution``), a typical mistake's version from the demo folder
(``<mistake>``, see :mod:`medkit.course.demos`) or the stub of the student
version (``blank``). :func:`measure_variants` grades the model solution with one
answer cell replaced at a time; :meth:`VariantTable.predict` then gives the
points of any combination: on each graded cell, the smallest of the points that
its variants earn alone. That rule is exact when every test cell earns all of
its points or none, as nbgrader grades a test that raises or passes, and no
wrong answer can make another one's test pass.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import platform
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import nbformat
import pandas as pd
from nbgrader.preprocessors import ClearSolutions

from medkit.course._gradebook import (
    COURSE_DIR,
    graded_items,
    load_course_config,
    read_gradebook,
    source_notebooks,
)
from medkit.course._paths import BUILD_DIR, display_path
from medkit.course.demos import (
    ANSWER_CELL_TYPES,
    BLANK,
    EXPECTED_FILE,
    SOLUTION,
    DemoSubmission,
    find_demos,
    load_expected,
    write_submission,
)
from medkit.exceptions import GradingError

logger = logging.getLogger(__name__)

DEMO_DIR = "demo"
VARIANT_SEPARATOR = "__"
"""Joins answer cell and variant in the student IDs of :func:`measure_variants`."""
VARIANTS_CACHE = BUILD_DIR / "cohort" / "variants"


@dataclass(frozen=True)
class VariantTable:
    """The autograded points of every single-cell variant of an assignment.

    Attributes
    ----------
    assignment : str
        The assignment ID.
    max_scores : dict of str to float
        Points available per graded item, in notebook order.
    solution : dict of str to float or None
        Points of the model solution per item; None for an item awaiting
        manual grading.
    variants : dict of str to dict of str to dict
        ``variants[answer][variant][item]``: the points of each item when only
        the answer cell ``answer`` takes ``variant``.
    fingerprint : str
        SHA-256 of the course files and library versions it was measured with.
    """

    assignment: str
    max_scores: dict[str, float]
    solution: dict[str, float | None]
    variants: dict[str, dict[str, dict[str, float | None]]]
    fingerprint: str = ""

    def predict(self, choices: Mapping[str, str]) -> dict[str, float | None]:
        """Return the points of each item for one variant per answer cell.

        Parameters
        ----------
        choices : mapping of str to str
            Variant by answer cell ``grade_id``; cells left out keep the
            solution.

        Returns
        -------
        dict of str to float or None
            Points per item: the smallest of the points that each chosen
            variant earns alone, or None when no chosen variant gives the item
            an automatic score (an answer awaiting manual grading).

        Raises
        ------
        GradingError
            If a cell or variant was not measured.
        """
        outcomes = [self.solution]
        for answer, variant in choices.items():
            if variant == SOLUTION:
                continue
            try:
                outcomes.append(self.variants[answer][variant])
            except KeyError:
                raise GradingError(
                    f"No measured variant '{variant}' of answer cell '{answer}' in "
                    f"{self.assignment}; measure the variants again."
                ) from None
        points = {}
        for item in self.max_scores:
            known = [outcome[item] for outcome in outcomes if outcome[item] is not None]
            points[item] = min(known) if known else None
        return points

    def to_json(self) -> str:
        """Serialize the table, for :meth:`from_json`."""
        return json.dumps(
            {
                "assignment": self.assignment,
                "fingerprint": self.fingerprint,
                "max_scores": self.max_scores,
                "solution": self.solution,
                "variants": self.variants,
            },
            indent=1,
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> VariantTable:
        """Read a table written by :meth:`to_json`."""
        data = json.loads(text)
        return cls(
            data["assignment"],
            data["max_scores"],
            data["solution"],
            data["variants"],
            data["fingerprint"],
        )


def measure_variants(
    assignment: str,
    *,
    course_dir: str | Path | None = None,
    work_dir: str | Path | None = None,
    jobs: int | None = None,
) -> VariantTable:
    """Autograde every single-cell variant of an assignment once.

    One submission per variant: the model solution, and the solution with one
    answer cell replaced by each of its mistakes and by its stub. They are
    graded together with :func:`medkit.course.grading.grade_cohort`.

    Parameters
    ----------
    assignment : str
        The assignment ID.
    course_dir : str or Path, default=``assignments/`` of the project
        The nbgrader course root, with the demo folders in ``demo/``.
    work_dir : str or Path, optional
        Where to write and grade the submissions; a temporary folder, deleted
        afterwards, by default.
    jobs : int, optional
        Parallel grading processes; by default grade_cohort's.

    Returns
    -------
    VariantTable

    Raises
    ------
    GradingError
        If a variant cannot be graded.
    """
    from medkit.course.grading import grade_cohort

    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="medkit-variants-") as folder:
            return measure_variants(
                assignment, course_dir=course_dir, work_dir=folder, jobs=jobs
            )

    course = AssignmentFiles(assignment, course_dir)
    work_dir = Path(work_dir)
    submitted = work_dir / "submitted"
    stubs = course.write_stubs(work_dir / "stubs")
    singles: dict[str, tuple[str | None, str]] = {SOLUTION: (None, SOLUTION)}
    course.write(DemoSubmission(SOLUTION), submitted / SOLUTION / assignment)
    for answer in course.answers:
        for variant, path in [
            *sorted(course.mistakes.get(answer, {}).items()),
            (BLANK, stubs[answer]),
        ]:
            student = f"{answer}{VARIANT_SEPARATOR}{variant}"
            singles[student] = (answer, variant)
            course.write(
                DemoSubmission(student, {answer: path}),
                submitted / student / assignment,
            )

    report = grade_cohort(
        assignment,
        submitted,
        course_dir=course.course_dir,
        build_dir=work_dir / "build",
        jobs=jobs,
        feedback=False,
        progress=False,
    )
    if report.failed:
        raise GradingError(
            f"Variants of {assignment} could not be graded: {report.failed}."
        )
    scores = read_gradebook(report.gradebook, assignment, course_dir=course.course_dir)
    table = _variant_table(course, scores, singles)
    _check_demos(table, course)
    logger.info("Measured %d variants of %s", len(singles), assignment)
    return table


def load_variants(
    assignment: str,
    *,
    course_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    jobs: int | None = None,
) -> VariantTable:
    """Return the variant table of an assignment, measuring it when not cached.

    Parameters
    ----------
    assignment : str
        The assignment ID.
    course_dir : str or Path, default=``assignments/`` of the project
        The nbgrader course root.
    cache_dir : str or Path, default=``build/cohort/variants/`` of the project
        Where ``<assignment>.json`` is kept. A cached table is used only while
        the assignment's source and demo files, the nbgrader configuration and
        the versions of Python, nbgrader, pandas and NumPy are unchanged.
    jobs : int, optional
        Parallel grading processes when measuring.

    Returns
    -------
    VariantTable
    """
    course = AssignmentFiles(assignment, course_dir)
    cache_dir = VARIANTS_CACHE if cache_dir is None else Path(cache_dir)
    path = cache_dir / f"{assignment}.json"
    fingerprint = course.fingerprint()
    if path.is_file():
        try:
            cached = VariantTable.from_json(path.read_text(encoding="utf-8"))
        except (ValueError, KeyError, TypeError):
            cached = None
        if cached is not None and cached.fingerprint == fingerprint:
            logger.info("Read the variants of %s from %s", assignment, path)
            return cached

    table = measure_variants(assignment, course_dir=course.course_dir, jobs=jobs)
    table = VariantTable(
        table.assignment, table.max_scores, table.solution, table.variants, fingerprint
    )
    cache_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(table.to_json() + "\n", encoding="utf-8")
    logger.info("Wrote the variants of %s to %s", assignment, path)
    return table


class AssignmentFiles:
    """An assignment's source notebooks, answer cells, mistakes and stubs."""

    def __init__(self, assignment: str, course_dir: str | Path | None) -> None:
        self.assignment = assignment
        self.course_dir = COURSE_DIR if course_dir is None else Path(course_dir)
        self.notebooks = source_notebooks(assignment, self.course_dir)
        self.source_dir = self.notebooks[0].parent
        self.demo_dir = self.course_dir / DEMO_DIR / assignment
        self.config = load_course_config(self.course_dir)
        self.items = graded_items(assignment, self.course_dir)
        self.answers = self._answer_cells()

        self.mistakes: dict[str, dict[str, Path]] = {}
        for demo in find_demos(self.demo_dir):
            for answer, path in demo.answers.items():
                if answer not in self.answers:
                    raise GradingError(
                        f"Demo file {display_path(path)} names no answer cell; the "
                        f"answer cells' grade_ids are {', '.join(self.answers)}."
                    )
                self.mistakes.setdefault(answer, {})[demo.name] = path

    def _answer_cells(self) -> dict[str, tuple[str, str]]:
        """Map each answer cell's grade_id, in notebook order, to its type and stub."""
        stubs = {}
        for path in self.notebooks:
            nb = nbformat.read(path, as_version=4)
            ClearSolutions(config=self.config).preprocess(nb, {})
            for cell in nb.cells:
                nbgrader = cell.get("metadata", {}).get("nbgrader", {})
                if nbgrader.get("solution"):
                    stubs[nbgrader["grade_id"]] = (cell.cell_type, cell.source)
        return stubs

    def variants(self, answer: str) -> list[str]:
        """List the solution, the cell's mistakes by name, then the blank stub."""
        return [SOLUTION, *sorted(self.mistakes.get(answer, {})), BLANK]

    def write_stubs(self, folder: Path) -> dict[str, Path]:
        """Write each answer cell's stub as ``<grade_id>.py`` or ``.md``."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for answer, (cell_type, source) in self.answers.items():
            suffix = next(
                s for s, kind in ANSWER_CELL_TYPES.items() if kind == cell_type
            )
            paths[answer] = folder / f"{answer}{suffix}"
            paths[answer].write_text(source + "\n", encoding="utf-8")
        return paths

    def write(self, submission: DemoSubmission, target: Path) -> None:
        # Every submission starts from the model solution, so the release
        # folder that write_submission uses only for "blank" is never read.
        write_submission(submission, self.source_dir, self.source_dir, target)

    def fingerprint(self) -> str:
        """Hash the files and library versions that the graded points depend on."""
        digest = hashlib.sha256()
        files = [self.course_dir / "nbgrader_config.py"]
        for folder in (self.source_dir, self.demo_dir):
            if folder.is_dir():
                files.extend(sorted(p for p in folder.rglob("*") if p.is_file()))
        for path in files:
            if path.is_file():
                digest.update(str(path.relative_to(self.course_dir)).encode())
                digest.update(path.read_bytes())
        versions = [platform.python_version()]
        versions += [version(name) for name in ("nbgrader", "pandas", "numpy")]
        digest.update(" ".join(versions).encode())
        return digest.hexdigest()


def _variant_table(
    course: AssignmentFiles,
    scores: pd.DataFrame,
    singles: dict[str, tuple[str | None, str]],
) -> VariantTable:
    """Build the table from the graded single-cell variants."""
    points = {
        student: {
            item: (None if math.isnan(score) else score)
            for item, score in zip(group["item"], group["score"], strict=True)
        }
        for student, group in scores.groupby("student", sort=False)
    }
    missing = sorted(set(singles) - set(points))
    if missing:
        raise GradingError(
            f"The gradebook has no grades of the variants {', '.join(missing)} of "
            f"{course.assignment}."
        )
    max_scores = dict(zip(course.items["item"], course.items["max_score"], strict=True))
    variants: dict[str, dict[str, dict[str, float | None]]] = {}
    for student, (answer, variant) in singles.items():
        if answer is not None:
            variants.setdefault(answer, {})[variant] = points[student]
    return VariantTable(course.assignment, max_scores, points[SOLUTION], variants)


def _check_demos(table: VariantTable, course: AssignmentFiles) -> None:
    """Raise unless the table predicts the designed score of every demo submission.

    A mistake folder may replace several answer cells at once, so this checks the
    smallest-points rule on real combinations against ``expected.json``.
    """
    demos = find_demos(course.demo_dir)
    if not (course.demo_dir / EXPECTED_FILE).is_file():
        return
    expected = load_expected(course.demo_dir, [demo.name for demo in demos])
    for demo in demos:
        if demo.name == BLANK:
            choices = dict.fromkeys(course.answers, BLANK)
        else:
            choices = dict.fromkeys(demo.answers, demo.name)
        points = table.predict(choices)
        predicted = sum(value for value in points.values() if value is not None)
        if not math.isclose(predicted, expected[demo.name], abs_tol=1e-6):
            raise GradingError(
                f"The single-cell variants of {course.assignment} predict "
                f"{predicted:g} points for the demo submission '{demo.name}', but "
                f"{EXPECTED_FILE} gives {expected[demo.name]:g}: either a test cell "
                f"scores several replaced answers together differently from the "
                f"smallest of their points alone, or the expected score is out of "
                f"date."
            )
