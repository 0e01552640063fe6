"""Stage 2, intelligence: split -> pipeline -> validate -> evaluate -> explain -> save.

A clinical prediction model is built from the clean stage 1 tables without
leaking test information into training, and evaluated the way clinicians read
a test. Each step is a function that a lesson can call on its own:

* :func:`load_readmission` builds one row of features per visit from the stage
  1 database (:func:`visit_features`), and :func:`answer_key_readmission` from
  the shipped answer key. :func:`load_breast_cancer` and :func:`load_diabetes`
  wrap the data sets that ship with scikit-learn. All return a checked
  :class:`ClinicalData`.
* :func:`split_by_patient` and :func:`patient_folds` split rows stratified by
  outcome with no patient on both sides.
* :func:`make_pipeline` imputes, scales and one-hot encodes inside a
  scikit-learn Pipeline, and :func:`fit_model` fits it on training rows only,
  as a majority-class baseline, logistic regression, random forest or gradient
  boosting. :func:`cross_validate_model` and :func:`compare_models` compare them.
* :func:`evaluate` reports AUROC with a bootstrap confidence interval,
  sensitivity, specificity, PPV, NPV, balanced accuracy, the confusion matrix,
  the Brier score, calibration and the same metrics per subgroup.
  :func:`threshold_for_sensitivity` picks a threshold for a target sensitivity.
* :func:`permutation_importances` and :func:`explain_prediction` explain the
  model and one patient's risk in words.
* :func:`save_model` and :func:`load_model` write and check skops files (never
  pickle), and :func:`model_card` describes the model in Markdown.

:func:`train_readmission_model` runs all steps on the stage 1 database and
writes the model file and its card.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import sqlalchemy as sa
from tqdm.auto import tqdm

from medkit._clinical_data import ClinicalData, clinical_data
from medkit._clinical_sets import (
    AGE_BANDS,
    CATEGORICAL,
    FEATURE_LABELS,
    FEATURE_UNITS,
    NUMERIC,
    OUTCOME,
    SUBGROUPS,
    age_band,
    answer_key_readmission,
    load_breast_cancer,
    load_diabetes,
    load_readmission,
    readmission_data,
    visit_features,
)
from medkit._evaluation import (
    Evaluation,
    compare_models,
    evaluate,
    plot_calibration,
    plot_confusion,
    plot_roc,
)
from medkit._explain import Explanation, explain_prediction, permutation_importances
from medkit._metrics import (
    AurocInterval,
    ConfusionCounts,
    auroc,
    auroc_ci,
    brier_score,
    calibration_table,
    clinical_metrics,
    confusion_at,
    subgroup_metrics,
    threshold_for_sensitivity,
)
from medkit._model_files import (
    TRUSTED_TYPES,
    file_sha256,
    load_model,
    model_card,
    save_model,
)
from medkit._models import (
    MODELS,
    ClinicalModel,
    cross_validate_model,
    fit_model,
    make_pipeline,
    out_of_fold_proba,
    patient_folds,
    shared_patients,
    split_by_patient,
)
from medkit.datasets import DEFAULT_SEED

__all__ = [
    "AGE_BANDS",
    "CATEGORICAL",
    "FEATURE_LABELS",
    "FEATURE_UNITS",
    "MODELS",
    "NUMERIC",
    "OUTCOME",
    "SUBGROUPS",
    "TRUSTED_TYPES",
    "AurocInterval",
    "ClinicalData",
    "ClinicalModel",
    "ConfusionCounts",
    "Evaluation",
    "Explanation",
    "ModelReport",
    "age_band",
    "answer_key_readmission",
    "auroc",
    "auroc_ci",
    "brier_score",
    "calibration_table",
    "clinical_data",
    "clinical_metrics",
    "compare_models",
    "confusion_at",
    "cross_validate_model",
    "evaluate",
    "explain_prediction",
    "file_sha256",
    "fit_model",
    "load_breast_cancer",
    "load_diabetes",
    "load_model",
    "load_readmission",
    "make_pipeline",
    "model_card",
    "out_of_fold_proba",
    "patient_folds",
    "permutation_importances",
    "plot_calibration",
    "plot_confusion",
    "plot_roc",
    "readmission_data",
    "save_model",
    "shared_patients",
    "split_by_patient",
    "subgroup_metrics",
    "threshold_for_sensitivity",
    "train_readmission_model",
    "visit_features",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = Path("build") / "models"
"""Folder ``build/models``, relative to the working directory."""


@dataclass(frozen=True)
class ModelReport:
    """The outcome of :func:`train_readmission_model`.

    Attributes
    ----------
    model : ClinicalModel
        The fitted model, with the chosen threshold.
    evaluation : Evaluation
        Its performance on the held-out patients.
    model_path, card_path : Path
        The skops file and the Markdown model card written.
    sha256 : str
        The SHA-256 of the model file, also given in the card.
    """

    model: ClinicalModel
    evaluation: Evaluation
    model_path: Path
    card_path: Path
    sha256: str


def train_readmission_model(
    url: str | sa.Engine | None = None,
    out_dir: str | Path = DEFAULT_MODEL_DIR,
    *,
    model: str = "logistic",
    target_sensitivity: float = 0.8,
    test_size: float = 0.25,
    n_boot: int = 1000,
    seed: int = DEFAULT_SEED,
    progress: bool = True,
) -> ModelReport:
    """Train, evaluate and save the 30-day readmission model from the stage 1 database.

    The visits are split by patient. The threshold is the highest one that
    reaches ``target_sensitivity`` on out-of-fold predictions of the training
    rows, so the test rows play no part in choosing it. The model is then fitted
    on all training rows, evaluated on the test rows, and written to
    ``<out_dir>/readmission.skops`` with its card ``readmission.md``.

    Parameters
    ----------
    url : str or sqlalchemy.Engine, optional
        The stage 1 database, ``sqlite:///build/medkit.db`` by default.
    out_dir : str or Path, default="build/models"
    model : {"logistic", "forest", "boosting", "majority"}, default="logistic"
    target_sensitivity : float, default=0.8
    test_size : float, default=0.25
    n_boot : int, default=1000
        Bootstrap replicates of the AUROC interval.
    seed : int, default=2026
    progress : bool, default=True
        Show a progress bar.

    Returns
    -------
    ModelReport
    """
    with tqdm(total=5, desc="train", unit="step", disable=not progress) as bar:
        bar.set_postfix_str("load")
        data = load_readmission(url)
        train, test = split_by_patient(data, test_size, seed=seed)
        bar.update()

        bar.set_postfix_str("threshold")
        training_proba = out_of_fold_proba(train, model, seed=seed)
        threshold = threshold_for_sensitivity(
            train.y, training_proba, target_sensitivity
        )
        bar.update()

        bar.set_postfix_str("fit")
        fitted = replace(fit_model(train, model, seed=seed), threshold=threshold)
        bar.update()

        bar.set_postfix_str("evaluate")
        evaluation = evaluate(fitted, test, n_boot=n_boot, seed=seed)
        bar.update()

        bar.set_postfix_str("save")
        out_dir = Path(out_dir)
        model_path = out_dir / "readmission.skops"
        sha256 = save_model(fitted, model_path)
        card = model_card(
            fitted,
            evaluation,
            sha256=sha256,
            limits=[
                "The threshold was chosen for a sensitivity of "
                f"{target_sensitivity:.0%} on out-of-fold predictions of the "
                "training patients."
            ],
        )
        card_path = out_dir / "readmission.md"
        card_path.write_text(card, encoding="utf-8")
        logger.info("Wrote model card %s", card_path)
        bar.update()
    return ModelReport(fitted, evaluation, model_path, card_path, sha256)
