"""Evaluation of a fitted model on held-out rows, model comparison and plots."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.metrics import roc_curve

from medkit._clinical_data import ClinicalData
from medkit._metrics import (
    AurocInterval,
    ConfusionCounts,
    auroc,
    auroc_ci,
    calibration_table,
    check_scores,
    clinical_metrics,
    confusion_at,
    subgroup_metrics,
)
from medkit._models import ClinicalModel, fit_model
from medkit.datasets import DEFAULT_SEED

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluation:
    """A model's performance on held-out rows.

    Attributes
    ----------
    model : str
        The model kind.
    data : str
        The name of the data it was tested on.
    threshold : float
    metrics : pandas.Series
        From :func:`clinical_metrics`.
    auroc : AurocInterval
    confusion : ConfusionCounts
    calibration : pandas.DataFrame
        From :func:`calibration_table`.
    subgroups : pandas.DataFrame
        From :func:`subgroup_metrics`; empty when the data has no subgroups.
    y_true, proba : numpy.ndarray
        The outcomes and predicted probabilities it was computed from.
    """

    model: str
    data: str
    threshold: float
    metrics: pd.Series
    auroc: AurocInterval
    confusion: ConfusionCounts
    calibration: pd.DataFrame
    subgroups: pd.DataFrame
    y_true: np.ndarray = field(repr=False)
    proba: np.ndarray = field(repr=False)

    def summary(self) -> pd.DataFrame:
        """Return the main metrics as a table with one row per metric."""
        names = ["auroc", "sensitivity", "specificity", "ppv", "npv"]
        names += ["balanced_accuracy", "brier"]
        table = pd.DataFrame({"value": [float(self.metrics[name]) for name in names]})
        table.index = pd.Index(names, name="metric")
        table["low"] = np.nan
        table["high"] = np.nan
        table.loc["auroc", ["low", "high"]] = [self.auroc.low, self.auroc.high]
        return table


def evaluate(
    model: ClinicalModel,
    test: ClinicalData,
    *,
    threshold: float | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    n_bins: int = 10,
    seed: int = DEFAULT_SEED,
) -> Evaluation:
    """Evaluate a fitted model on held-out rows.

    Parameters
    ----------
    model : ClinicalModel
    test : ClinicalData
        Rows the model was not trained on.
    threshold : float, optional
        Defaults to the model's threshold.
    n_boot, level, seed
        As for :func:`auroc_ci`, which resamples patients when ``test`` has a
        group column.
    n_bins : int, default=10
        Bins of the calibration table.

    Returns
    -------
    Evaluation
    """
    threshold = model.threshold if threshold is None else threshold
    proba = model.predict_proba(test)
    y = test.y
    interval = auroc_ci(
        y, proba, groups=test.groups, n_boot=n_boot, level=level, seed=seed
    )
    subgroups = (
        subgroup_metrics(y, proba, test.frame[list(test.subgroups)], threshold)
        if test.subgroups
        else pd.DataFrame()
    )
    logger.info("Evaluated %s model on %d held-out rows", model.kind, len(test))
    return Evaluation(
        model=model.kind,
        data=test.name,
        threshold=float(threshold),
        metrics=clinical_metrics(y, proba, threshold),
        auroc=interval,
        confusion=confusion_at(y, proba, threshold),
        calibration=calibration_table(y, proba, n_bins),
        subgroups=subgroups,
        y_true=y,
        proba=proba,
    )


def compare_models(
    train: ClinicalData,
    test: ClinicalData,
    models: Sequence[str] = ("logistic", "forest", "boosting"),
    *,
    threshold: float = 0.5,
    max_depth: int | None = None,
    n_estimators: int = 100,
    seed: int = DEFAULT_SEED,
) -> pd.DataFrame:
    """Fit each model on ``train`` and compare them on ``test``.

    The majority-class baseline is always fitted and listed first, because a
    model is worth using only if it beats predicting the base rate for everyone.

    Returns
    -------
    pandas.DataFrame
        One row per model: ``auroc``, ``brier``, ``accuracy``, ``sensitivity``,
        ``specificity`` and ``balanced_accuracy`` at ``threshold``.
    """
    names = ["majority", *(model for model in models if model != "majority")]
    rows = {}
    for name in names:
        fitted = fit_model(
            train, name, max_depth=max_depth, n_estimators=n_estimators, seed=seed
        )
        metrics = clinical_metrics(test.y, fitted.predict_proba(test), threshold)
        rows[name] = metrics[
            ["auroc", "brier", "accuracy", "sensitivity", "specificity"]
            + ["balanced_accuracy"]
        ]
    table = pd.DataFrame(rows).T.astype(float)
    table.index.name = "model"
    return table


def plot_roc(
    y_true: ArrayLike,
    proba: ArrayLike,
    *,
    threshold: float | None = None,
    label: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Draw the ROC curve, with the operating point at ``threshold`` if given.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    y, scores = check_scores(y_true, proba)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4))
    false_positive, true_positive, _ = roc_curve(y, scores)
    area = auroc(y, scores)
    ax.plot(
        false_positive, true_positive, label=f"{label or 'model'} (AUROC {area:.3f})"
    )
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    if threshold is not None:
        counts = confusion_at(y, scores, threshold)
        ax.plot(
            1 - counts.specificity,
            counts.sensitivity,
            "o",
            color="black",
            label=f"threshold {threshold:.2f}",
        )
    ax.set_xlabel("1 - specificity (false positive rate)")
    ax.set_ylabel("sensitivity (true positive rate)")
    ax.set_title("ROC curve")
    ax.legend(loc="lower right", fontsize="small")
    ax.figure.tight_layout()
    return ax.figure


def plot_calibration(
    y_true: ArrayLike,
    proba: ArrayLike,
    *,
    n_bins: int = 10,
    label: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Draw observed event rate against mean predicted risk, per bin of risk.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    table = calibration_table(y_true, proba, n_bins)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4))
    top = max(table["mean_predicted"].max(), table["observed_rate"].max(), 0.05) * 1.1
    ax.plot(
        [0, top], [0, top], linestyle=":", color="grey", label="perfect calibration"
    )
    ax.plot(
        table["mean_predicted"], table["observed_rate"], "o-", label=label or "model"
    )
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("mean predicted risk")
    ax.set_ylabel("observed event rate")
    ax.set_title("Calibration")
    ax.legend(loc="upper left", fontsize="small")
    ax.figure.tight_layout()
    return ax.figure


def plot_confusion(counts: ConfusionCounts, *, ax: Axes | None = None) -> Figure:
    """Draw a confusion matrix with its counts and the rates beside it.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.6))
    matrix = counts.to_frame()
    ax.imshow(matrix.to_numpy(), cmap="Blues")
    names = [["TN", "FP"], ["FN", "TP"]]
    peak = matrix.to_numpy().max()
    for row in range(2):
        for column in range(2):
            value = matrix.iat[row, column]
            ax.text(
                column,
                row,
                f"{names[row][column]}\n{value}",
                ha="center",
                va="center",
                color="white" if value > peak / 2 else "black",
            )
    ax.set_xticks([0, 1], matrix.columns)
    ax.set_yticks([0, 1], matrix.index)
    ax.set_title(
        f"sensitivity {counts.sensitivity:.2f}, specificity {counts.specificity:.2f}",
        fontsize="medium",
    )
    ax.figure.tight_layout()
    return ax.figure
