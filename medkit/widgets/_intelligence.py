"""Widgets of the intelligence lesson: the model lab and its parts."""

from __future__ import annotations

import html
import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from medkit.datasets import DEFAULT_SEED

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from medkit.intelligence import ClinicalData

logger = logging.getLogger(__name__)

LAB_MODELS = (
    ("logistic regression", "logistic"),
    ("random forest", "forest"),
    ("gradient boosting", "boosting"),
    ("majority baseline", "majority"),
)
"""Model choices of the lab: label and :func:`medkit.intelligence.fit_model` kind."""

TREE_MODELS = ("forest", "boosting")


def fit_lab_model(
    train: ClinicalData,
    test: ClinicalData,
    model: str = "logistic",
    max_depth: int | None = None,
    n_estimators: int = 100,
    *,
    seed: int = DEFAULT_SEED,
) -> np.ndarray:
    """Fit one model of the lab on training rows and predict the test rows.

    Parameters
    ----------
    train, test : medkit.intelligence.ClinicalData
        Training rows and held-out rows.
    model : str, default="logistic"
        A kind from :data:`LAB_MODELS`.
    max_depth : int, optional
        Tree depth; ignored unless ``model`` is ``forest`` or ``boosting``.
    n_estimators : int, default=100
        Trees; ignored unless ``model`` is ``forest`` or ``boosting``.
    seed : int, default=2026

    Returns
    -------
    numpy.ndarray of shape (len(test),)
        The predicted probability of the outcome for each test row.
    """
    from medkit import intelligence

    fitted = intelligence.fit_model(
        train, model, max_depth=max_depth, n_estimators=n_estimators, seed=seed
    )
    return fitted.predict_proba(test)


def describe_threshold(y_true: np.ndarray, proba: np.ndarray, threshold: float) -> str:
    """Render the metrics at a threshold as an HTML line for the lab.

    Returns
    -------
    str
        Sensitivity, specificity, PPV, NPV, flagged patients and AUROC.
    """
    from medkit import intelligence

    metrics = intelligence.clinical_metrics(y_true, proba, threshold)
    flagged = metrics["tp"] + metrics["fp"]
    parts = [
        f"<b>sensitivity</b> {metrics['sensitivity']:.2f}",
        f"<b>specificity</b> {metrics['specificity']:.2f}",
        f"<b>PPV</b> {_rate(metrics['ppv'])}",
        f"<b>NPV</b> {_rate(metrics['npv'])}",
        f"flagged {flagged} of {metrics['rows']}",
        f"AUROC {metrics['auroc']:.3f}",
    ]
    return f"<p>{html.escape(f'threshold {threshold:.2f}')}: {' · '.join(parts)}</p>"


def _rate(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.2f}"


def plot_lab(y_true: np.ndarray, proba: np.ndarray, threshold: float) -> Figure:
    """Draw the ROC curve with the operating point, beside the confusion matrix.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from medkit import intelligence

    figure, (roc_ax, matrix_ax) = plt.subplots(1, 2, figsize=(8.4, 3.8))
    intelligence.plot_roc(y_true, proba, threshold=threshold, ax=roc_ax)
    counts = intelligence.confusion_at(y_true, proba, threshold)
    intelligence.plot_confusion(counts, ax=matrix_ax)
    figure.tight_layout()
    return figure


class ModelLab:
    """A widget to fit models and move the decision threshold on held-out rows.

    Choose a model, the depth and number of trees, and the threshold. The ROC
    curve with the operating point, the confusion matrix, sensitivity and
    specificity then follow the choice. Each model setting is fitted once and
    its test probabilities are kept, so moving the threshold only recomputes
    the metrics.

    Parameters
    ----------
    train, test : medkit.intelligence.ClinicalData
        Training rows and held-out rows.
    seed : int, default=2026
    depth : int, default=6
        Starting tree depth.
    trees : int, default=100
        Starting number of trees.

    Attributes
    ----------
    fits : int
        Models fitted so far.
    widget : ipywidgets.VBox
        The controls, the metrics line and the figure.
    """

    def __init__(
        self,
        train: ClinicalData,
        test: ClinicalData,
        *,
        seed: int = DEFAULT_SEED,
        depth: int = 6,
        trees: int = 100,
    ) -> None:
        import ipywidgets as widgets

        self.train, self.test, self.seed = train, test, seed
        self.fits = 0
        self._probabilities: dict[tuple, np.ndarray] = {}
        self.model = widgets.Dropdown(options=LAB_MODELS, description="Model:")
        self.depth = widgets.IntSlider(
            value=depth, min=1, max=12, description="Depth:", continuous_update=False
        )
        self.trees = widgets.IntSlider(
            value=trees,
            min=10,
            max=300,
            step=10,
            description="Trees:",
            continuous_update=False,
        )
        self.threshold = widgets.FloatSlider(
            value=0.5, min=0.01, max=0.99, step=0.01, description="Threshold:"
        )
        self.summary = widgets.HTML()
        self.output = widgets.Output()
        for control in (self.model, self.depth, self.trees):
            control.observe(self.on_model_change, names="value")
        self.threshold.observe(self.on_threshold_change, names="value")
        self.on_model_change()
        controls = widgets.HBox(
            [
                widgets.VBox([self.model, self.threshold]),
                widgets.VBox([self.depth, self.trees]),
            ]
        )
        self.widget = widgets.VBox([controls, self.summary, self.output])

    def _setting(self) -> tuple:
        if self.model.value in TREE_MODELS:
            return (self.model.value, self.depth.value, self.trees.value)
        return (self.model.value, None, None)

    @property
    def probabilities(self) -> np.ndarray:
        """Test probabilities of the chosen model setting, fitted on first use."""
        setting = self._setting()
        if setting not in self._probabilities:
            model, depth, trees = setting
            self._probabilities[setting] = fit_lab_model(
                self.train,
                self.test,
                model,
                depth,
                trees if trees is not None else 100,
                seed=self.seed,
            )
            self.fits += 1
            logger.debug("Model lab fitted %s", setting)
        return self._probabilities[setting]

    def on_model_change(self, _change: object = None) -> None:
        """Fit the chosen setting if it is new, then redraw."""
        is_tree = self.model.value in TREE_MODELS
        self.depth.disabled = self.trees.disabled = not is_tree
        self.on_threshold_change()

    def on_threshold_change(self, _change: object = None) -> None:
        """Recompute the metrics and figure at the threshold, without refitting."""
        import matplotlib.pyplot as plt
        from IPython.display import display

        y_true, proba = self.test.y, self.probabilities
        self.summary.value = describe_threshold(y_true, proba, self.threshold.value)
        self.output.clear_output(wait=True)
        with self.output:
            figure = plot_lab(y_true, proba, self.threshold.value)
            display(figure)
            plt.close(figure)

    def metrics(self) -> pd.Series:
        """Return the metrics of the chosen setting at the chosen threshold."""
        from medkit import intelligence

        return intelligence.clinical_metrics(
            self.test.y, self.probabilities, self.threshold.value
        )

    def _repr_mimebundle_(self, **kwargs: object) -> dict:
        return self.widget._repr_mimebundle_(**kwargs)


def model_lab(
    train: ClinicalData,
    test: ClinicalData,
    *,
    seed: int = DEFAULT_SEED,
    depth: int = 6,
    trees: int = 100,
) -> ModelLab:
    """Build the model lab for training and held-out rows; see :class:`ModelLab`.

    Returns
    -------
    ModelLab
        Displays as its widget in a notebook.
    """
    return ModelLab(train, test, seed=seed, depth=depth, trees=trees)
