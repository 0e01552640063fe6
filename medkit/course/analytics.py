"""Item analysis of an autograded assignment: which questions and objectives to reteach.

The statistics are those of classical test theory, computed from one row per
trainee and graded cell (a *tidy* score table with the columns ``student``,
``item``, ``objective``, ``score`` and ``max_score``):

difficulty
    The mean fraction of an item's marks that the trainees earned, from 0 (no
    one earned a mark) to 1 (everyone earned every mark). Low values are hard
    items.
discrimination
    The corrected item-total correlation: the Pearson correlation between the
    item's points and each trainee's total over the *other* items. Trainees
    who do well overall should do well on a good item, so values near 0 or
    below it mark an item that measures something else, or is marked wrongly.
Cronbach's alpha
    ``k / (k - 1) * (1 - sum of item variances / variance of the totals)`` over
    the ``k`` items, in points: how consistently the items measure one skill.
mastery
    A trainee's fraction of the marks of the items tagged with one learning
    objective (``objective:<slug>`` in the graded cell's metadata tags).

Items that await manual grading in any submission are left out of every
statistic until they are graded, and listed as pending.

Examples
--------
>>> from medkit.course.analytics import item_analysis, write_report
>>> analysis = item_analysis("build/nbgrader/gradebook.db", "ps1_digitization")
... # doctest: +SKIP
>>> write_report(analysis)  # doctest: +SKIP
PosixPath('build/report/ps1_digitization/index.html')
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medkit.course._gradebook import (
    SCORE_COLUMNS,
    graded_items,
    load_course_config,
    read_gradebook,
    source_notebooks,
)
from medkit.course._paths import BUILD_DIR
from medkit.exceptions import GradingError

__all__ = [
    "SCORE_COLUMNS",
    "ItemAnalysis",
    "analyse_scores",
    "cronbach_alpha",
    "graded_items",
    "item_analysis",
    "item_statistics",
    "load_course_config",
    "objective_mastery",
    "objective_summary",
    "read_gradebook",
    "reteach_items",
    "score_matrix",
    "source_notebooks",
    "trainee_scores",
    "write_report",
]

logger = logging.getLogger(__name__)

MIN_DIFFICULTY = 0.5
MIN_DISCRIMINATION = 0.2
MASTERY_LEVEL = 0.8


@dataclass(frozen=True)
class ItemAnalysis:
    """Item, objective and trainee statistics of one assignment.

    Attributes
    ----------
    assignment : str
        The assignment ID.
    scores : DataFrame
        The tidy score table it was computed from (:data:`SCORE_COLUMNS`); a
        missing ``score`` is a cell awaiting manual grading.
    items : DataFrame
        One row per item, in notebook order: ``objective``, ``max_score``,
        ``graded`` and ``pending`` (submissions graded and awaiting manual
        grading), ``mean_score``, ``difficulty`` and ``discrimination``.
    trainees : DataFrame
        One row per trainee: ``score``, ``max_score`` and ``fraction`` over the
        graded items, then the mastery of each objective.
    objectives : DataFrame
        One row per objective: ``items``, ``max_score``, ``mastery`` (mean over
        trainees) and ``mastered`` (share of trainees at ``mastery_level`` or
        above).
    alpha : float
        Cronbach's alpha of the graded items; NaN with fewer than two items or
        trainees, or when every trainee has the same total.
    reteach : DataFrame
        The items to teach again, with the ``reason``; see :func:`reteach_items`.
    min_difficulty, min_discrimination, mastery_level : float
        The thresholds that ``reteach`` and ``objectives`` used.
    """

    assignment: str
    scores: pd.DataFrame
    items: pd.DataFrame
    trainees: pd.DataFrame
    objectives: pd.DataFrame
    alpha: float
    reteach: pd.DataFrame
    min_difficulty: float = MIN_DIFFICULTY
    min_discrimination: float = MIN_DISCRIMINATION
    mastery_level: float = MASTERY_LEVEL

    @property
    def n_trainees(self) -> int:
        """The number of trainees with a submission."""
        return len(self.trainees)

    @property
    def pending_items(self) -> list[str]:
        """The items that await manual grading in at least one submission."""
        return self.items.index[self.items["pending"] > 0].tolist()


# Statistics of a tidy score table ---------------------------------------------


def score_matrix(scores: pd.DataFrame) -> pd.DataFrame:
    """Pivot a tidy score table to one row per trainee and one column per item.

    Parameters
    ----------
    scores : DataFrame
        The tidy score table (:data:`SCORE_COLUMNS`).

    Returns
    -------
    DataFrame
        Points, shape (trainees, items); students sorted, items in the order of
        their first row. NaN marks a cell awaiting manual grading.

    Raises
    ------
    GradingError
        If a column is missing, a trainee has two rows for one item, an item
        has several maximum scores or objectives, a maximum is not positive or
        a score lies outside 0 to its maximum.
    """
    _validate_scores(scores)
    items = pd.unique(scores["item"])
    matrix = scores.pivot(index="student", columns="item", values="score")
    matrix = matrix.reindex(columns=items).sort_index().astype(float)
    matrix.columns.name = "item"
    return matrix


def item_statistics(scores: pd.DataFrame) -> pd.DataFrame:
    """Compute each item's difficulty and corrected item-total correlation.

    Parameters
    ----------
    scores : DataFrame
        The tidy score table (:data:`SCORE_COLUMNS`).

    Returns
    -------
    DataFrame
        Indexed by item, in the order of the table: ``objective``,
        ``max_score``, ``graded``, ``pending``, ``mean_score`` (points),
        ``difficulty`` (mean fraction of marks, 0 to 1) and ``discrimination``
        (Pearson correlation of the item with the total of the other graded
        items). Items awaiting manual grading in any submission get NaN
        statistics. The discrimination is also NaN when the item, or the total
        of the other items, is the same for every trainee.
    """
    matrix = score_matrix(scores)
    info = scores.drop_duplicates("item").set_index("item")
    complete = _complete_items(matrix)
    totals = matrix[complete].sum(axis=1)

    rows = []
    for item in matrix.columns:
        points = matrix[item]
        maximum = float(info.loc[item, "max_score"])
        row = {
            "objective": info.loc[item, "objective"],
            "max_score": maximum,
            "graded": int(points.notna().sum()),
            "pending": int(points.isna().sum()),
            "mean_score": np.nan,
            "difficulty": np.nan,
            "discrimination": np.nan,
        }
        if item in complete:
            row["mean_score"] = float(points.mean())
            row["difficulty"] = float(points.mean()) / maximum
            row["discrimination"] = _pearson(points, totals - points)
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index(matrix.columns, name="item"))


def cronbach_alpha(scores: pd.DataFrame) -> float:
    """Compute Cronbach's alpha of the graded items, in points.

    ``alpha = k / (k - 1) * (1 - sum(item variances) / variance(totals))`` with
    sample variances (the ``n - 1`` divisor cancels out).

    Parameters
    ----------
    scores : DataFrame
        The tidy score table (:data:`SCORE_COLUMNS`). Items awaiting manual
        grading in any submission are left out.

    Returns
    -------
    float
        Alpha, at most 1 and negative when the items disagree; NaN with fewer
        than two items or trainees, or when every trainee has the same total.
    """
    matrix = score_matrix(scores)
    matrix = matrix[_complete_items(matrix)]
    n_trainees, n_items = matrix.shape
    if n_items < 2 or n_trainees < 2:
        return float("nan")
    total_variance = float(matrix.sum(axis=1).var(ddof=1))
    if total_variance == 0:
        return float("nan")
    item_variance = float(matrix.var(ddof=1).sum())
    return n_items / (n_items - 1) * (1 - item_variance / total_variance)


def trainee_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Total each trainee's points over the graded items.

    Parameters
    ----------
    scores : DataFrame
        The tidy score table (:data:`SCORE_COLUMNS`).

    Returns
    -------
    DataFrame
        Indexed by student (sorted): ``score``, ``max_score`` and ``fraction``,
        over the items that no submission awaits manual grading for.
    """
    matrix = score_matrix(scores)
    complete = _complete_items(matrix)
    maxima = scores.drop_duplicates("item").set_index("item")["max_score"]
    total = matrix[complete].sum(axis=1)
    maximum = float(maxima[complete].sum())
    fraction = total / maximum if maximum else total * np.nan
    return pd.DataFrame(
        {"score": total, "max_score": maximum, "fraction": fraction},
        index=matrix.index,
    )


def objective_mastery(scores: pd.DataFrame) -> pd.DataFrame:
    """Compute each trainee's fraction of the marks of each learning objective.

    Parameters
    ----------
    scores : DataFrame
        The tidy score table (:data:`SCORE_COLUMNS`). Items awaiting manual
        grading in any submission are left out.

    Returns
    -------
    DataFrame
        Shape (trainees, objectives), values from 0 to 1; objectives in the
        order of their first item. An objective whose items all await manual
        grading has no column.
    """
    matrix = score_matrix(scores)
    complete = _complete_items(matrix)
    info = scores.drop_duplicates("item").set_index("item").loc[complete]
    columns = {}
    for objective in pd.unique(info["objective"]):
        items = info.index[info["objective"] == objective]
        maximum = float(info.loc[items, "max_score"].sum())
        columns[objective] = matrix[items].sum(axis=1) / maximum
    mastery = pd.DataFrame(columns, index=matrix.index)
    mastery.columns.name = "objective"
    return mastery


def objective_summary(
    scores: pd.DataFrame, mastery_level: float = MASTERY_LEVEL
) -> pd.DataFrame:
    """Summarise the mastery of each learning objective over the trainees.

    Parameters
    ----------
    scores : DataFrame
        The tidy score table (:data:`SCORE_COLUMNS`).
    mastery_level : float, default=0.8
        The fraction of an objective's marks at which a trainee counts as
        having mastered it.

    Returns
    -------
    DataFrame
        Indexed by objective: ``items`` (graded items tagged with it),
        ``max_score``, ``mastery`` (mean fraction of its marks) and
        ``mastered`` (share of trainees at ``mastery_level`` or above).
    """
    mastery = objective_mastery(scores)
    info = scores.drop_duplicates("item")
    info = info[info["item"].isin(_complete_items(score_matrix(scores)))]
    grouped = info.groupby("objective", sort=False)["max_score"]
    summary = pd.DataFrame(
        {
            "items": grouped.size(),
            "max_score": grouped.sum(),
            "mastery": mastery.mean(),
            "mastered": (mastery >= mastery_level - 1e-12).mean(),
        }
    ).reindex(mastery.columns)
    summary.index.name = "objective"
    return summary


def reteach_items(
    items: pd.DataFrame,
    min_difficulty: float = MIN_DIFFICULTY,
    min_discrimination: float = MIN_DISCRIMINATION,
) -> pd.DataFrame:
    """List the items that need more teaching, or a second look at their tests.

    An item is listed when its difficulty is below ``min_difficulty``, because
    most trainees missed it, or its discrimination is below
    ``min_discrimination``, because it does not separate the trainees who do
    well overall from those who do not. A negative discrimination often means a
    wrong or misleading test.

    Parameters
    ----------
    items : DataFrame
        From :func:`item_statistics`.
    min_difficulty : float, default=0.5
        The lowest mean fraction of marks that needs no reteaching.
    min_discrimination : float, default=0.2
        The lowest corrected item-total correlation that needs no review.

    Returns
    -------
    DataFrame
        Indexed by item, hardest first: ``objective``, ``difficulty``,
        ``discrimination`` and ``reason``. Items with NaN statistics (pending,
        or the same score for everyone) are listed only for what is known.
    """
    rows = {}
    for item, row in items.iterrows():
        reasons = []
        if row["difficulty"] < min_difficulty:
            reasons.append(
                f"difficulty {row['difficulty']:.2f} below {min_difficulty:g}"
            )
        if row["discrimination"] < 0:
            reasons.append(f"negative discrimination {row['discrimination']:.2f}")
        elif row["discrimination"] < min_discrimination:
            reasons.append(
                f"discrimination {row['discrimination']:.2f} below "
                f"{min_discrimination:g}"
            )
        if reasons:
            rows[item] = {
                "objective": row["objective"],
                "difficulty": row["difficulty"],
                "discrimination": row["discrimination"],
                "reason": "; ".join(reasons),
            }
    columns = ["objective", "difficulty", "discrimination", "reason"]
    reteach = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    reteach.index.name = "item"
    return reteach.sort_values("difficulty", kind="stable")


def analyse_scores(
    scores: pd.DataFrame,
    assignment: str,
    *,
    min_difficulty: float = MIN_DIFFICULTY,
    min_discrimination: float = MIN_DISCRIMINATION,
    mastery_level: float = MASTERY_LEVEL,
) -> ItemAnalysis:
    """Compute every statistic of the report from a tidy score table.

    Parameters
    ----------
    scores : DataFrame
        The tidy score table (:data:`SCORE_COLUMNS`), one row per trainee and
        item; NaN scores await manual grading.
    assignment : str
        The assignment ID, used in the report's title and folder.
    min_difficulty, min_discrimination : float
        Thresholds of :func:`reteach_items`.
    mastery_level : float, default=0.8
        Threshold of :func:`objective_summary`.

    Returns
    -------
    ItemAnalysis
    """
    items = item_statistics(scores)
    trainees = trainee_scores(scores).join(objective_mastery(scores))
    return ItemAnalysis(
        assignment=assignment,
        scores=scores.reset_index(drop=True),
        items=items,
        trainees=trainees,
        objectives=objective_summary(scores, mastery_level),
        alpha=cronbach_alpha(scores),
        reteach=reteach_items(items, min_difficulty, min_discrimination),
        min_difficulty=min_difficulty,
        min_discrimination=min_discrimination,
        mastery_level=mastery_level,
    )


def _validate_scores(scores: pd.DataFrame) -> None:
    missing = [column for column in SCORE_COLUMNS if column not in scores.columns]
    if missing:
        raise GradingError(
            f"The score table has no column {', '.join(map(repr, missing))}; "
            f"it needs the columns {', '.join(SCORE_COLUMNS)}."
        )
    if scores.empty:
        raise GradingError("The score table has no rows; grade some submissions.")
    repeated = scores[scores.duplicated(["student", "item"])]
    if not repeated.empty:
        first = repeated.iloc[0]
        raise GradingError(
            f"The score table has {len(repeated)} repeated rows, the first for "
            f"student '{first['student']}' and item '{first['item']}'; keep one "
            f"row per student and item."
        )
    per_item = scores.groupby("item", sort=False)[["max_score", "objective"]]
    for column, counts in per_item.nunique().items():
        varying = counts[counts > 1]
        if not varying.empty:
            raise GradingError(
                f"Item '{varying.index[0]}' has {varying.iloc[0]} different "
                f"values of {column}; each item needs one."
            )
    if (scores["max_score"] <= 0).any():
        item = scores.loc[scores["max_score"] <= 0, "item"].iloc[0]
        raise GradingError(
            f"Item '{item}' has a max_score of 0 or less; only items worth points "
            f"can be analysed."
        )
    outside = scores["score"].notna() & ~scores["score"].between(0, scores["max_score"])
    if outside.any():
        row = scores[outside].iloc[0]
        raise GradingError(
            f"Student '{row['student']}' has {row['score']:g} points on item "
            f"'{row['item']}', outside 0 to {row['max_score']:g}."
        )


def _complete_items(matrix: pd.DataFrame) -> list[str]:
    """Return the items that every trainee has a score for."""
    return matrix.columns[matrix.notna().all()].tolist()


def _pearson(x: pd.Series, y: pd.Series) -> float:
    """Return the Pearson correlation, or NaN when either side is constant."""
    dx = x.to_numpy(float) - x.mean()
    dy = y.to_numpy(float) - y.mean()
    denominator = float(np.sqrt((dx**2).sum() * (dy**2).sum()))
    if denominator == 0:
        return float("nan")
    return float((dx * dy).sum() / denominator)


def item_analysis(
    gradebook: str | Path,
    assignment: str,
    *,
    course_dir: str | Path | None = None,
    min_difficulty: float = MIN_DIFFICULTY,
    min_discrimination: float = MIN_DISCRIMINATION,
    mastery_level: float = MASTERY_LEVEL,
) -> ItemAnalysis:
    """Analyse the items, objectives and trainees of an assignment's gradebook.

    Parameters
    ----------
    gradebook : str or Path
        nbgrader's gradebook file or URL; see :func:`read_gradebook`.
    assignment : str
        The assignment ID.
    course_dir : str or Path, default=``assignments/`` of the project
        The course root with the source notebooks (objective tags).
    min_difficulty, min_discrimination : float
        Thresholds of :func:`reteach_items`.
    mastery_level : float, default=0.8
        Threshold of :func:`objective_summary`.

    Returns
    -------
    ItemAnalysis

    Raises
    ------
    GradingError
        See :func:`read_gradebook`.
    """
    scores = read_gradebook(gradebook, assignment, course_dir=course_dir)
    analysis = analyse_scores(
        scores,
        assignment,
        min_difficulty=min_difficulty,
        min_discrimination=min_discrimination,
        mastery_level=mastery_level,
    )
    logger.info(
        "Analysed %s: %d trainees, %d items, alpha %.3f",
        assignment,
        analysis.n_trainees,
        len(analysis.items),
        analysis.alpha,
    )
    return analysis


def write_report(analysis: ItemAnalysis, out_dir: str | Path | None = None) -> Path:
    """Write the item-analysis plots and one HTML page that shows them.

    Parameters
    ----------
    analysis : ItemAnalysis
        From :func:`item_analysis` or :func:`analyse_scores`.
    out_dir : str or Path, default=``build/report/`` of the project
        The report goes to ``<out_dir>/<assignment>/``: ``index.html``, which
        links ``totals.png``, ``items.png`` and ``objectives.png`` in the same
        folder. Files of an earlier report there are replaced.

    Returns
    -------
    Path
        The ``index.html`` file.
    """
    from medkit.course._report import write_html, write_plots

    out_dir = BUILD_DIR / "report" if out_dir is None else Path(out_dir)
    folder = out_dir / analysis.assignment
    folder.mkdir(parents=True, exist_ok=True)
    plots = write_plots(analysis, folder)
    index = write_html(analysis, plots, folder / "index.html")
    logger.info("Wrote the %s report to %s", analysis.assignment, index)
    return index
