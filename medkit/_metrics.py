"""Clinical metrics of predicted probabilities: the numbers clinicians read."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from medkit.datasets import DEFAULT_SEED
from medkit.exceptions import ModelInputError, ModelSettingError, OutcomeError

# Bootstrap replicates weighted at once, which bounds memory to this times the rows.
_REPLICATES_PER_BATCH = 100


@dataclass(frozen=True)
class ConfusionCounts:
    """Counts of a confusion matrix at one threshold, and the rates made from them.

    A rate whose denominator is 0 is NaN, for example the PPV when no row is
    predicted positive.

    Attributes
    ----------
    tp, fp, tn, fn : int
        True positives, false positives, true negatives and false negatives.

    Examples
    --------
    >>> counts = ConfusionCounts(tp=8, fp=12, tn=68, fn=2)
    >>> counts.sensitivity, counts.specificity, counts.ppv
    (0.8, 0.85, 0.4)
    """

    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def sensitivity(self) -> float:
        """TP / (TP + FN): the share of patients with the event that are flagged."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def specificity(self) -> float:
        """TN / (TN + FP): the share of patients without the event left unflagged."""
        return _ratio(self.tn, self.tn + self.fp)

    @property
    def ppv(self) -> float:
        """TP / (TP + FP): positive predictive value, true flags among all flags."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def npv(self) -> float:
        """TN / (TN + FN): negative predictive value."""
        return _ratio(self.tn, self.tn + self.fn)

    @property
    def accuracy(self) -> float:
        """(TP + TN) / all rows."""
        return _ratio(self.tp + self.tn, self.tp + self.fp + self.tn + self.fn)

    @property
    def balanced_accuracy(self) -> float:
        """The mean of sensitivity and specificity."""
        return (self.sensitivity + self.specificity) / 2

    def to_frame(self) -> pd.DataFrame:
        """Return the 2 x 2 matrix: actual classes as rows, predictions as columns."""
        return pd.DataFrame(
            [[self.tn, self.fp], [self.fn, self.tp]],
            index=pd.Index(["no event", "event"], name="actual"),
            columns=pd.Index(["predicted no", "predicted yes"], name="prediction"),
        )


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else math.nan


def check_scores(y_true: ArrayLike, proba: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Return outcomes and scores as arrays, or raise ModelInputError if invalid."""
    y = np.asarray(y_true)
    scores = np.asarray(proba, dtype=np.float64)
    if y.ndim != 1 or scores.shape != y.shape:
        raise ModelInputError(
            f"Outcomes and probabilities must be 1-D and of the same length. Got "
            f"shapes {y.shape} and {scores.shape}."
        )
    if not np.isin(y, [0, 1]).all():
        value = y[~np.isin(y, [0, 1])][0]
        raise ModelInputError(
            f"Outcomes must be 0 or 1, but {value!r} was found. Recode the outcome "
            "as 1 for the event and 0 otherwise.",
            value=value,
        )
    if not np.isfinite(scores).all():
        raise ModelInputError(
            "Probabilities must be finite numbers, but NaN or infinity was found.",
            rows=np.flatnonzero(~np.isfinite(scores))[:10].tolist(),
        )
    return y.astype(np.int64), scores


def confusion_at(
    y_true: ArrayLike, proba: ArrayLike, threshold: float = 0.5
) -> ConfusionCounts:
    """Count the confusion matrix, flagging probabilities at or above ``threshold``.

    Parameters
    ----------
    y_true : array-like of shape (n_rows,)
        Outcomes, 0 or 1.
    proba : array-like of shape (n_rows,)
        Predicted probabilities (or any risk score).
    threshold : float, default=0.5

    Returns
    -------
    ConfusionCounts
    """
    y, scores = check_scores(y_true, proba)
    flagged = scores >= threshold
    return ConfusionCounts(
        tp=int((flagged & (y == 1)).sum()),
        fp=int((flagged & (y == 0)).sum()),
        tn=int((~flagged & (y == 0)).sum()),
        fn=int((~flagged & (y == 1)).sum()),
    )


def _auroc_weighted(
    y: np.ndarray, scores: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Return the AUROC for each row of ``weights`` (replicates x rows).

    AUROC is the chance that a random case with the event scores above a random
    case without it, and a tie counts one half. Each row counts as often as the
    replicate drew it. Replicates without both classes give NaN.
    """
    order = np.argsort(scores, kind="stable")
    scores, y, weights = scores[order], y[order], weights[:, order]
    starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])
    positive = np.add.reduceat(weights * (y == 1), starts, axis=1)
    negative = np.add.reduceat(weights * (y == 0), starts, axis=1)
    below = np.cumsum(negative, axis=1) - negative
    pairs = positive.sum(axis=1) * negative.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((positive * (below + negative / 2)).sum(axis=1) / pairs).astype(float)


def auroc(y_true: ArrayLike, proba: ArrayLike) -> float:
    """Return the area under the ROC curve.

    Parameters
    ----------
    y_true, proba : array-like of shape (n_rows,)

    Returns
    -------
    float

    Raises
    ------
    OutcomeError
        If ``y_true`` has only one class, because the AUROC compares rows with
        and without the event.
    """
    y, scores = check_scores(y_true, proba)
    classes = np.unique(y)
    if len(classes) < 2:
        only = int(classes[0]) if len(classes) else "nothing"
        raise OutcomeError(
            f"The AUROC needs rows with and without the event, but every row "
            f"({len(y)} in all) has outcome {only}. Score a set that contains both "
            "classes.",
            value=only,
        )
    return _auroc_or_nan(y, scores)


def _auroc_or_nan(y: np.ndarray, scores: np.ndarray) -> float:
    """Return the AUROC of checked inputs, or NaN when only one class is present."""
    return float(_auroc_weighted(y, scores, np.ones((1, len(y))))[0])


class AurocInterval(NamedTuple):
    """AUROC with a percentile bootstrap confidence interval."""

    estimate: float
    low: float
    high: float
    level: float
    n_boot: int


def auroc_ci(
    y_true: ArrayLike,
    proba: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = DEFAULT_SEED,
) -> AurocInterval:
    """Return the AUROC and a percentile bootstrap confidence interval.

    Each replicate resamples rows with replacement, or whole patients when
    ``groups`` is given, because the visits of one patient are not independent.
    Replicates that contain only one class are left out.

    Parameters
    ----------
    y_true, proba : array-like of shape (n_rows,)
    groups : array-like of shape (n_rows,), optional
        The patient of each row.
    n_boot : int, default=1000
        Bootstrap replicates.
    level : float, default=0.95
        Confidence level of the interval.
    seed : int, default=2026

    Returns
    -------
    AurocInterval
        ``estimate``, ``low``, ``high``, ``level`` and ``n_boot``.
    """
    y, scores = check_scores(y_true, proba)
    if groups is None:
        codes, n_units = np.arange(len(y)), len(y)
    else:
        codes, uniques = pd.factorize(pd.Series(np.asarray(groups, dtype=object)))
        n_units = len(uniques)
    rng = np.random.default_rng(seed)
    estimates = []
    for start in range(0, n_boot, _REPLICATES_PER_BATCH):
        size = min(_REPLICATES_PER_BATCH, n_boot - start)
        drawn = rng.multinomial(n_units, np.full(n_units, 1 / n_units), size=size)
        estimates.append(_auroc_weighted(y, scores, drawn[:, codes]))
    replicates = np.concatenate(estimates) if estimates else np.array([])
    replicates = replicates[~np.isnan(replicates)]
    tail = (1 - level) / 2
    low, high = (
        np.quantile(replicates, [tail, 1 - tail]) if len(replicates) else (np.nan,) * 2
    )
    estimate = _auroc_or_nan(y, scores)
    return AurocInterval(estimate, float(low), float(high), level, n_boot)


def brier_score(y_true: ArrayLike, proba: ArrayLike) -> float:
    """Return the mean squared difference between probability and outcome."""
    y, scores = check_scores(y_true, proba)
    return float(np.mean((scores - y) ** 2))


def clinical_metrics(
    y_true: ArrayLike, proba: ArrayLike, threshold: float = 0.5
) -> pd.Series:
    """Compute the metrics of a risk model that clinicians need, at one threshold.

    Parameters
    ----------
    y_true, proba : array-like of shape (n_rows,)
    threshold : float, default=0.5

    Returns
    -------
    pandas.Series
        ``rows``, ``events``, ``auroc``, ``brier``, ``threshold``,
        ``sensitivity``, ``specificity``, ``ppv``, ``npv``,
        ``balanced_accuracy``, ``accuracy``, and the counts ``tp``, ``fp``,
        ``tn`` and ``fn``.
    """
    y, scores = check_scores(y_true, proba)
    counts = confusion_at(y, scores, threshold)
    return pd.Series(
        {
            "rows": len(y),
            "events": int(y.sum()),
            "auroc": _auroc_or_nan(y, scores),
            "brier": brier_score(y, scores),
            "threshold": float(threshold),
            "sensitivity": counts.sensitivity,
            "specificity": counts.specificity,
            "ppv": counts.ppv,
            "npv": counts.npv,
            "balanced_accuracy": counts.balanced_accuracy,
            "accuracy": counts.accuracy,
            "tp": counts.tp,
            "fp": counts.fp,
            "tn": counts.tn,
            "fn": counts.fn,
        },
        dtype=object,
    )


def threshold_for_sensitivity(
    y_true: ArrayLike, proba: ArrayLike, target: float = 0.8
) -> float:
    """Return the highest threshold whose sensitivity is at least ``target``.

    With k = ceil(target x events), the threshold is the k-th highest probability
    among the cases with the event, so at least k of them are at or above it.
    A higher threshold flags fewer patients and misses more events.

    Parameters
    ----------
    y_true, proba : array-like of shape (n_rows,)
    target : float, default=0.8
        The sensitivity to reach, above 0 and at most 1.

    Returns
    -------
    float

    Raises
    ------
    ModelSettingError
        If ``target`` is not above 0 and at most 1.
    OutcomeError
        If no row has the event.

    Examples
    --------
    >>> threshold_for_sensitivity([1, 1, 1, 1, 0], [0.9, 0.7, 0.4, 0.2, 0.5], 0.75)
    0.4
    """
    if not 0 < target <= 1:
        raise ModelSettingError(
            f"target must be a sensitivity above 0 and at most 1, but got {target!r}. "
            "Pass a share such as 0.8 for 80%.",
            name="target",
            value=target,
        )
    y, scores = check_scores(y_true, proba)
    events = np.sort(scores[y == 1])[::-1]
    if not len(events):
        raise OutcomeError(
            f"None of the {len(y)} rows has the event, so sensitivity is undefined "
            "and no threshold reaches it. Use rows that include patients with the "
            "event.",
            value=0,
        )
    # The small margin keeps 0.8 x 10 from rounding up to 9 in binary floats.
    needed = max(1, math.ceil(target * len(events) - 1e-9))
    return float(events[needed - 1])


def calibration_table(
    y_true: ArrayLike, proba: ArrayLike, n_bins: int = 10, *, strategy: str = "quantile"
) -> pd.DataFrame:
    """Compare mean predicted risk with the observed event rate in bins of risk.

    Parameters
    ----------
    y_true, proba : array-like of shape (n_rows,)
    n_bins : int, default=10
    strategy : {"quantile", "uniform"}, default="quantile"
        ``quantile`` puts about the same number of rows in each bin; ``uniform``
        cuts [0, 1] into bins of equal width. Empty bins are left out.

    Returns
    -------
    pandas.DataFrame
        One row per bin: ``low`` and ``high`` edges, ``rows``,
        ``mean_predicted`` and ``observed_rate``.
    """
    y, scores = check_scores(y_true, proba)
    if strategy == "quantile":
        edges = np.unique(np.quantile(scores, np.linspace(0, 1, n_bins + 1)))
    elif strategy == "uniform":
        edges = np.linspace(0, 1, n_bins + 1)
    else:
        raise ModelSettingError(
            f"strategy must be 'quantile' or 'uniform', but got {strategy!r}.",
            name="strategy",
            value=strategy,
        )
    bins = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, len(edges) - 2)
    table = (
        pd.DataFrame({"bin": bins, "y": y, "p": scores})
        .groupby("bin")
        .agg(
            rows=("y", "size"),
            mean_predicted=("p", "mean"),
            observed_rate=("y", "mean"),
        )
    )
    table.insert(0, "low", edges[table.index])
    table.insert(1, "high", edges[table.index + 1])
    return table.reset_index(drop=True)


def subgroup_metrics(
    y_true: ArrayLike,
    proba: ArrayLike,
    subgroups: pd.DataFrame | pd.Series,
    threshold: float = 0.5,
) -> pd.DataFrame:
    """Compute the metrics of :func:`clinical_metrics` within each subgroup.

    Parameters
    ----------
    y_true, proba : array-like of shape (n_rows,)
    subgroups : pandas.DataFrame or pandas.Series
        One column per way of grouping (sex, age band), aligned with the rows.
        A missing level is shown as ``missing``.
    threshold : float, default=0.5

    Returns
    -------
    pandas.DataFrame
        Indexed by ``subgroup`` (the column) and ``level``, with ``rows``,
        ``events``, ``auroc``, ``sensitivity``, ``specificity``, ``ppv``, ``npv``
        and ``brier``. AUROC is NaN in a level with one class.
    """
    y, scores = check_scores(y_true, proba)
    frame = subgroups.to_frame() if isinstance(subgroups, pd.Series) else subgroups
    names = ["rows", "events", "auroc", "sensitivity", "specificity", "ppv", "npv"]
    rows = []
    for column in frame.columns:
        labels = frame[column].astype(object).where(frame[column].notna(), "missing")
        labels = labels.astype(str).to_numpy()
        for level in sorted(set(labels)):
            mask = labels == level
            metrics = clinical_metrics(y[mask], scores[mask], threshold)
            rows.append(
                {"subgroup": column, "level": level}
                | {name: metrics[name] for name in [*names, "brier"]}
            )
    columns = ["subgroup", "level", *names, "brier"]
    table = pd.DataFrame(rows, columns=columns).set_index(["subgroup", "level"])
    return table.astype({"rows": "int64", "events": "int64"})
