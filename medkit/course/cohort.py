"""Synthetic cohorts of submissions whose autograded scores are known in advance.

A cohort is written in nbgrader's ``submitted/`` layout,
``<out_dir>/<student>/<assignment>/<notebook>.ipynb``. Each trainee's submission
is the model solution in which every answer cell takes one of three
*variants*:

``solution``
    The model solution, kept as it is.
``<mistake>``
    A typical mistake's version of the cell, from the demo folder
    ``assignments/demo/<assignment>/<mistake>/<grade_id>.py`` (or ``.md``).
``blank``
    The stub that the student version holds, as nbgrader's ClearSolutions
    writes it: ``raise NotImplementedError()`` or ``YOUR ANSWER HERE``.

For each answer cell the variants are dealt out in exact numbers (see
:func:`variant_counts`) and shuffled over the trainees with a seeded generator,
independently of the other cells unless ``ability`` is set (see
:func:`make_cohort`). The same arguments always write the same files.

The expected points of every graded cell come from a :class:`VariantTable`,
which autogrades each single-cell variant once. A mix of variants earns on each
graded cell the smallest of the points that its variants earn alone.

:func:`grade_demo_cohort` writes such a cohort, grades it in parallel, checks the
grades against the expected points and writes the item-analysis report; the
course build runs it on the demonstration cohort.

Examples
--------
>>> from medkit.course.cohort import make_cohort
>>> cohort = make_cohort("ps1_digitization", 24, out_dir="build/cohort/submitted")
... # doctest: +SKIP
>>> cohort.truth.groupby("item")["score"].mean()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medkit.course._paths import BUILD_DIR, display_path
from medkit.course._variants import (
    AssignmentFiles,
    VariantTable,
    load_variants,
    measure_variants,
)
from medkit.course.analytics import ItemAnalysis, item_analysis, write_report
from medkit.course.demos import BLANK, SOLUTION, DemoSubmission
from medkit.exceptions import GradingError

__all__ = [
    "DEFAULT_RATES",
    "DEFAULT_SEED",
    "DEMO_ASSIGNMENT",
    "DEMO_TRAINEES",
    "Cohort",
    "CohortResult",
    "VariantTable",
    "answer_variants",
    "grade_demo_cohort",
    "load_variants",
    "make_cohort",
    "measure_variants",
    "score_differences",
    "variant_counts",
]

logger = logging.getLogger(__name__)

MISTAKE = "mistake"
DEFAULT_RATES: dict[str, float] = {SOLUTION: 0.6, MISTAKE: 0.25, BLANK: 0.15}
"""Share of trainees per answer cell that keep the solution, make a typical
mistake (shared equally by the cell's mistakes) or leave the stub."""
DEFAULT_SEED = 2026
STUDENT_PREFIX = "trainee"
RATE_TOLERANCE = 1e-9
DEMO_ASSIGNMENT = "ps1_digitization"
DEMO_TRAINEES = 24
"""Size of the demonstration cohort that the course build grades."""
DEMO_RATES: dict[str, float] = {SOLUTION: 0.5, MISTAKE: 0.35, BLANK: 0.15}
DEMO_ABILITY = 0.85
COHORT_DIR = "cohort"


@dataclass(frozen=True)
class Cohort:
    """A synthetic cohort written in nbgrader's ``submitted/`` layout.

    Attributes
    ----------
    assignment : str
        The assignment ID.
    directory : Path
        The ``submitted/`` folder: ``<directory>/<student>/<assignment>/``.
    seed : int
        The seed the variants were shuffled with.
    rates : dict of str to float
        The rates the variants were dealt at (see :func:`variant_counts`).
    ability : float
        The weight of each trainee's overall ability in the deal, from 0
        (every cell dealt independently) to 1.
    choices : DataFrame
        Index student, one column per answer cell ``grade_id``: the variant
        each trainee's cell takes.
    truth : DataFrame
        The expected autograded points: one row per student and graded item,
        with ``student``, ``item``, ``score`` and ``max_score``, in the order of
        :func:`medkit.course.analytics.read_gradebook`. ``score`` is NaN for an
        answer that awaits manual grading.
    """

    assignment: str
    directory: Path
    seed: int
    rates: dict[str, float]
    ability: float
    choices: pd.DataFrame
    truth: pd.DataFrame

    @property
    def students(self) -> list[str]:
        """The student IDs, sorted."""
        return self.choices.index.tolist()

    def counts(self) -> pd.DataFrame:
        """Count the trainees per answer cell (rows) and variant (columns).

        Variants are ordered solution, mistakes by name, blank.
        """
        counts = self.choices.apply(pd.Series.value_counts).T.fillna(0)
        mistakes = sorted(set(counts.columns) - {SOLUTION, BLANK})
        order = [SOLUTION, *mistakes, BLANK]
        return counts.reindex(columns=order, fill_value=0).astype(int)


def answer_variants(
    assignment: str, course_dir: str | Path | None = None
) -> dict[str, list[str]]:
    """List the variants that each answer cell of an assignment can take.

    Parameters
    ----------
    assignment : str
        The assignment ID.
    course_dir : str or Path, default=``assignments/`` of the project
        The nbgrader course root, with the demo folders in ``demo/``.

    Returns
    -------
    dict of str to list of str
        By answer cell ``grade_id`` in notebook order: ``"solution"``, the
        mistakes that have a file for the cell (sorted), then ``"blank"``.

    Raises
    ------
    GradingError
        If a demo folder is invalid or a demo file names no answer cell.
    """
    course = AssignmentFiles(assignment, course_dir)
    return {answer: course.variants(answer) for answer in course.answers}


def variant_counts(
    n_trainees: int, variants: list[str], rates: Mapping[str, float]
) -> dict[str, int]:
    """Deal ``n_trainees`` out over the variants of one answer cell.

    The ``"mistake"`` rate is shared equally by the cell's mistakes, and goes to
    the solution when the cell has none. Each variant first gets the whole part
    of ``n_trainees * rate``. The trainees left over then go one each to the
    variants with the largest fractional parts (the largest remainder method),
    and a tie goes to the variant listed first in ``variants``.

    Parameters
    ----------
    n_trainees : int
        The cohort size.
    variants : list of str
        The cell's variants, as listed by :func:`answer_variants`.
    rates : mapping of str to float
        Shares of ``"solution"``, ``"mistake"`` and ``"blank"`` that sum to 1.

    Returns
    -------
    dict of str to int
        Trainees per variant, summing to ``n_trainees``.

    Examples
    --------
    >>> variant_counts(24, ["solution", "blank"], DEFAULT_RATES)
    {'solution': 20, 'blank': 4}
    """
    rates = _validate_rates(rates)
    mistakes = [variant for variant in variants if variant not in (SOLUTION, BLANK)]
    shares = {SOLUTION: rates[SOLUTION], BLANK: rates[BLANK]}
    if mistakes:
        shares.update({name: rates[MISTAKE] / len(mistakes) for name in mistakes})
    else:
        shares[SOLUTION] += rates[MISTAKE]

    exact = [n_trainees * shares[variant] for variant in variants]
    counts = [math.floor(value + RATE_TOLERANCE) for value in exact]
    remainders = [value - count for value, count in zip(exact, counts, strict=True)]
    left_over = n_trainees - sum(counts)
    by_remainder = sorted(range(len(variants)), key=lambda i: (-remainders[i], i))
    for position in by_remainder[:left_over]:
        counts[position] += 1
    return dict(zip(variants, counts, strict=True))


def make_cohort(
    assignment: str,
    n_trainees: int,
    *,
    seed: int = DEFAULT_SEED,
    rates: Mapping[str, float] | None = None,
    ability: float = 0.0,
    out_dir: str | Path,
    course_dir: str | Path | None = None,
    variants: VariantTable | None = None,
    replace: bool = False,
) -> Cohort:
    """Write a synthetic cohort of submissions and compute their expected points.

    Parameters
    ----------
    assignment : str
        The assignment ID, e.g. ``"ps1_digitization"``.
    n_trainees : int
        The number of submissions, at least 1. Student IDs are ``trainee01``,
        ``trainee02``, ... with as many digits as ``n_trainees`` needs (at
        least two).
    seed : int, default=2026
        Seed of the shuffle; the same arguments always write the same files.
    rates : mapping of str to float, default=:data:`DEFAULT_RATES`
        Shares of trainees per answer cell that keep the ``"solution"``, make a
        ``"mistake"`` or leave the ``"blank"`` stub; they must sum to 1. See
        :func:`variant_counts`.
    ability : float, default=0.0
        How much a trainee's overall ability decides which variant each of
        their cells gets, from 0 to 1. Every trainee has a standard normal
        ability ``a``. For each cell, the trainees are ranked by
        ``ability * a + sqrt(1 - ability**2) * e`` with a fresh standard normal
        ``e``. The highest ranked get the solution, the next the mistakes and
        the lowest the blank stub. At 0 each cell is dealt independently. Above
        0 the same trainees tend to answer well throughout, as in a real class,
        so the items correlate. The counts per cell do not change.
    out_dir : str or Path
        The ``submitted/`` folder to write. It must be empty or absent unless
        ``replace`` is set.
    course_dir : str or Path, default=``assignments/`` of the project
        The nbgrader course root, with the demo folders in ``demo/``.
    variants : VariantTable, optional
        The measured single-cell variants; by default :func:`load_variants`,
        which autogrades them the first time.
    replace : bool, default=False
        Delete ``out_dir`` first if it contains files.

    Returns
    -------
    Cohort

    Raises
    ------
    GradingError
        If ``n_trainees``, ``rates`` or ``ability`` are invalid, ``variants``
        belongs to another assignment, ``out_dir`` is not empty and ``replace``
        is not set, or the assignment or its demo folder is invalid.
    """
    if (
        isinstance(n_trainees, bool)
        or not isinstance(n_trainees, int)
        or n_trainees < 1
    ):
        raise GradingError(
            f"n_trainees must be a whole number of at least 1; got {n_trainees!r}."
        )
    rates = _validate_rates(DEFAULT_RATES if rates is None else rates)
    if not 0 <= ability <= 1:
        raise GradingError(f"ability must be from 0 to 1; got {ability!r}.")
    if variants is not None and variants.assignment != assignment:
        raise GradingError(
            f"The variant table is of '{variants.assignment}', not '{assignment}'; "
            f"pass the table of '{assignment}' or leave variants unset."
        )
    course = AssignmentFiles(assignment, course_dir)
    if variants is None:
        variants = load_variants(assignment, course_dir=course_dir)
    choices = _deal_variants(course, n_trainees, rates, ability, seed)
    truth = _truth(choices, variants)

    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir, replace)
    with tempfile.TemporaryDirectory(prefix="medkit-cohort-") as folder:
        stubs = course.write_stubs(Path(folder))
        for student, row in choices.iterrows():
            answers = {}
            for answer, variant in row.items():
                if variant == BLANK:
                    answers[answer] = stubs[answer]
                elif variant != SOLUTION:
                    answers[answer] = course.mistakes[answer][variant]
            target = out_dir / student / assignment
            course.write(DemoSubmission(student, answers), target)
    logger.info("Wrote %d submissions of %s to %s", n_trainees, assignment, out_dir)
    return Cohort(assignment, out_dir, seed, rates, ability, choices, truth)


def score_differences(scores: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Compare graded points with the expected ones, cell by cell.

    Parameters
    ----------
    scores : DataFrame
        Graded points with the columns ``student``, ``item`` and ``score``,
        such as :func:`medkit.course.analytics.read_gradebook` returns.
    truth : DataFrame
        Expected points with the same columns, such as :attr:`Cohort.truth`.

    Returns
    -------
    DataFrame
        The cells that differ, with ``student``, ``item``, ``score`` and
        ``expected``, empty when every cell matches. NaN on both sides (awaiting
        manual grading) counts as a match. A cell that only one side has is a
        difference, with NaN on the other side and ``missing`` naming the side.
    """
    merged = scores[["student", "item", "score"]].merge(
        truth[["student", "item", "score"]].rename(columns={"score": "expected"}),
        on=["student", "item"],
        how="outer",
        indicator=True,
    )
    both_missing = merged["score"].isna() & merged["expected"].isna()
    close = np.isclose(
        merged["score"].to_numpy(float), merged["expected"].to_numpy(float)
    )
    matches = (merged["_merge"] == "both") & (close | both_missing)
    differences = merged[~matches.to_numpy()].copy()
    differences["missing"] = differences["_merge"].map(
        {"left_only": "expected", "right_only": "score", "both": ""}
    )
    differences = differences.drop(columns="_merge").astype({"missing": str})
    return differences.sort_values(["student", "item"]).reset_index(drop=True)


@dataclass(frozen=True)
class CohortResult:
    """A synthetic cohort graded, checked and analysed.

    Attributes
    ----------
    cohort : Cohort
        The submissions and their expected points.
    grading : medkit.course.grading.CohortReport
        What :func:`medkit.course.grading.grade_cohort` returned.
    analysis : ItemAnalysis
        The item analysis of the gradebook.
    report : Path
        The report's ``index.html``.
    differences : DataFrame
        Cells whose graded points differ from the expected ones (see
        :func:`score_differences`); empty when grading is correct.
    seconds : float
        Wall-clock time of writing, grading and reporting.
    """

    cohort: Cohort
    grading: Any
    analysis: ItemAnalysis
    report: Path
    differences: pd.DataFrame
    seconds: float


def grade_demo_cohort(
    assignment: str = DEMO_ASSIGNMENT,
    n_trainees: int = DEMO_TRAINEES,
    *,
    seed: int = DEFAULT_SEED,
    rates: Mapping[str, float] | None = None,
    ability: float = DEMO_ABILITY,
    course_dir: str | Path | None = None,
    build_dir: str | Path | None = None,
    jobs: int | None = None,
    check: bool = True,
    progress: bool | None = None,
) -> CohortResult:
    """Write a synthetic cohort, grade it, check the grades and write its report.

    The submissions go to ``<build_dir>/cohort/submitted/`` and the grading to
    ``<build_dir>/cohort/`` (gradebook and grades, without feedback), both
    replaced. The report goes to ``<build_dir>/report/<assignment>/``. The
    expected points come from :func:`load_variants`, cached in
    ``<build_dir>/cohort/variants/``.

    Parameters
    ----------
    assignment : str, default="ps1_digitization"
        The assignment ID.
    n_trainees : int, default=24
        The number of submissions.
    seed : int, default=2026
        Seed of the cohort; see :func:`make_cohort`.
    rates : mapping of str to float, default=:data:`DEMO_RATES`
        See :func:`make_cohort`. Half of the trainees keep the solution of each
        cell that has a typical mistake, so the test cells that also depend on
        another answer show as hard items.
    ability : float, default=0.85
        See :func:`make_cohort`; the demonstration cohort's trainees differ in
        overall ability, so the items correlate as in a real class.
    course_dir : str or Path, default=``assignments/`` of the project
        The nbgrader course root.
    build_dir : str or Path, default=``build/`` of the project
        Where the cohort, its grades and the report are written.
    jobs : int, optional
        Parallel grading processes; by default grade_cohort's.
    check : bool, default=True
        Raise if a graded cell differs from its expected points.
    progress : bool, optional
        Show a progress bar while grading; by default only on a terminal.

    Returns
    -------
    CohortResult

    Raises
    ------
    GradingError
        If the cohort cannot be written or graded, a submission fails to grade,
        or, with ``check``, a graded cell differs from its expected points.
    """
    from medkit.course.grading import grade_cohort, gradebook_path

    start = time.perf_counter()
    build_dir = BUILD_DIR if build_dir is None else Path(build_dir)
    work = build_dir / COHORT_DIR
    variants = load_variants(
        assignment, course_dir=course_dir, cache_dir=work / "variants", jobs=jobs
    )
    cohort = make_cohort(
        assignment,
        n_trainees,
        seed=seed,
        rates=DEMO_RATES if rates is None else rates,
        ability=ability,
        out_dir=work / "submitted",
        course_dir=course_dir,
        variants=variants,
        replace=True,
    )
    # grade_cohort keeps the grades already in a gradebook, and trainees of an
    # earlier, larger cohort would stay in the report.
    gradebook_path(work).unlink(missing_ok=True)
    grading = grade_cohort(
        assignment,
        cohort.directory,
        course_dir=course_dir,
        build_dir=work,
        jobs=jobs,
        feedback=False,
        progress=progress,
    )
    if grading.failed:
        raise GradingError(
            f"{len(grading.failed)} submissions of the {assignment} cohort could not "
            f"be graded: {grading.failed}."
        )
    analysis = item_analysis(grading.gradebook, assignment, course_dir=course_dir)
    differences = score_differences(analysis.scores, cohort.truth)
    if check and not differences.empty:
        first = differences.iloc[0]
        raise GradingError(
            f"{len(differences)} graded cells of the {assignment} cohort differ from "
            f"the expected points. The first is {first['item']} of "
            f"{first['student']}: {first['score']:g} points, expected "
            f"{first['expected']:g}. The "
            f"gradebook is {display_path(Path(grading.gradebook))}."
        )
    report = write_report(analysis, build_dir / "report")
    return CohortResult(
        cohort, grading, analysis, report, differences, time.perf_counter() - start
    )


def _validate_rates(rates: Mapping[str, float]) -> dict[str, float]:
    expected = set(DEFAULT_RATES)
    unknown = sorted(set(rates) - expected)
    if unknown:
        raise GradingError(
            f"Unknown rate {', '.join(map(repr, unknown))}; give the rates of "
            f"'solution', 'mistake' and 'blank'."
        )
    values = {name: float(rates.get(name, 0.0)) for name in DEFAULT_RATES}
    negative = {name: value for name, value in values.items() if not value >= 0}
    if negative:
        name, value = next(iter(negative.items()))
        raise GradingError(
            f"The rate of '{name}' is {value:g}; rates must be 0 or more."
        )
    total = sum(values.values())
    if abs(total - 1) > RATE_TOLERANCE:
        raise GradingError(f"The rates {values} sum to {total:g}; they must sum to 1.")
    return values


def _prepare_out_dir(out_dir: Path, replace: bool) -> None:
    if out_dir.exists() and any(out_dir.iterdir()):
        if not replace:
            raise GradingError(
                f"{display_path(out_dir)} is not empty; pass an empty folder, "
                f"or replace=True to delete its contents first."
            )
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)


def _deal_variants(
    course: AssignmentFiles,
    n_trainees: int,
    rates: dict[str, float],
    ability: float,
    seed: int,
) -> pd.DataFrame:
    """Choose each trainee's variant of each answer cell, in exact numbers."""
    width = max(2, len(str(n_trainees)))
    students = [
        f"{STUDENT_PREFIX}{number:0{width}d}" for number in range(1, n_trainees + 1)
    ]
    rng = np.random.default_rng(seed)
    strength = rng.standard_normal(n_trainees)
    columns = {}
    for answer in course.answers:
        variants = course.variants(answer)
        counts = variant_counts(n_trainees, variants, rates)
        dealt = np.array([v for v in variants for _ in range(counts[v])], dtype=object)
        noise = rng.standard_normal(n_trainees)
        rank = ability * strength + math.sqrt(1 - ability**2) * noise
        # The best ranked trainee takes the first variant dealt, the solution.
        order = np.argsort(-rank, kind="stable")
        column = np.empty(n_trainees, dtype=object)
        column[order] = dealt
        columns[answer] = column
    choices = pd.DataFrame(columns, index=pd.Index(students, name="student"))
    choices.columns.name = "answer"
    return choices


def _truth(choices: pd.DataFrame, variants: VariantTable) -> pd.DataFrame:
    rows = []
    for student, row in choices.iterrows():
        for item, points in variants.predict(row.to_dict()).items():
            rows.append(
                {
                    "student": student,
                    "item": item,
                    "score": np.nan if points is None else float(points),
                    "max_score": variants.max_scores[item],
                }
            )
    return pd.DataFrame(rows, columns=["student", "item", "score", "max_score"])
