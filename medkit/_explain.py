"""Explanations of a clinical model: which features matter, and why for one patient."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

from medkit._clinical_data import ClinicalData
from medkit._clinical_sets import FEATURE_LABELS, FEATURE_UNITS
from medkit._models import ClinicalModel
from medkit.datasets import DEFAULT_SEED
from medkit.exceptions import ModelInputError

OUTCOME_LABELS = {
    "readmit_30d": "readmission within 30 days",
    "malignant": "a malignant tumour",
    "progression": "disease progression",
}
"""Outcome column to the words an explanation uses for it."""


def permutation_importances(
    model: ClinicalModel,
    test: ClinicalData,
    *,
    n_repeats: int = 5,
    seed: int = DEFAULT_SEED,
) -> pd.DataFrame:
    """Rank features by how much shuffling them lowers the AUROC on held-out rows.

    Shuffling one feature column breaks its link with the outcome while keeping
    its values. The drop in AUROC is that feature's permutation importance. It
    is measured on test rows, so it shows what the model uses on new patients,
    not what it memorised. Correlated features share their importance.

    Parameters
    ----------
    model : ClinicalModel
    test : ClinicalData
        Held-out rows.
    n_repeats : int, default=5
        Shuffles per feature.
    seed : int, default=2026

    Returns
    -------
    pandas.DataFrame
        Indexed by feature, most important first: ``importance`` (mean drop in
        AUROC) and ``std`` (its standard deviation over the shuffles).
    """
    result = permutation_importance(
        model.pipeline,
        model.check_input(test),
        test.y,
        scoring="roc_auc",
        n_repeats=n_repeats,
        random_state=seed,
    )
    table = pd.DataFrame(
        {"importance": result.importances_mean, "std": result.importances_std},
        index=pd.Index(model.features, name="feature"),
    )
    return table.sort_values("importance", ascending=False)


@dataclass(frozen=True)
class Explanation:
    """The explanation of one patient's predicted risk.

    Attributes
    ----------
    probability : float
        The patient's predicted risk.
    typical_probability : float
        The risk predicted with every feature at its typical training value.
    contributions : pandas.DataFrame
        Indexed by feature: ``value`` (the patient's), ``typical`` and
        ``change`` (the patient's risk minus the risk with only that feature
        set to typical), largest change first.
    text : str
        The explanation in words.
    """

    probability: float
    typical_probability: float
    contributions: pd.DataFrame
    text: str

    def __str__(self) -> str:
        return self.text


def explain_prediction(
    model: ClinicalModel, row: pd.Series | pd.DataFrame, *, top: int = 3
) -> Explanation:
    """Explain one prediction by setting each feature in turn to its typical value.

    For every feature, the model predicts the patient again with only that value
    replaced by the training median (numeric) or most common category. The
    difference from the patient's risk is that feature's contribution. The
    contributions do not add up to the gap from the typical risk when features
    interact, as they do in trees.

    Parameters
    ----------
    model : ClinicalModel
    row : pandas.Series or one-row pandas.DataFrame
        The patient's features, for example ``test.frame.iloc[0]``.
    top : int, default=3
        Features named in the text on each side (raising and lowering the risk).

    Returns
    -------
    Explanation
    """
    frame = _one_row(model, row)
    patient = model.check_input(frame)
    features = model.features

    # Row 0 is the patient, row 1 all typical, then one row per feature set to typical.
    variants = pd.concat([patient] * (len(features) + 2), ignore_index=True)
    for column in features:
        variants.loc[1, column] = model.reference[column]
    for offset, column in enumerate(features, start=2):
        variants.loc[offset, column] = model.reference[column]
    variants = variants.astype(patient.dtypes.to_dict())
    proba = model.pipeline.predict_proba(variants)[:, 1]

    contributions = pd.DataFrame(
        {
            "value": [patient.at[0, column] for column in features],
            "typical": [model.reference[column] for column in features],
            "change": proba[0] - proba[2:],
        },
        index=pd.Index(features, name="feature"),
    ).sort_values("change", ascending=False, key=np.abs)
    text = _describe(model, float(proba[0]), float(proba[1]), contributions, top)
    return Explanation(float(proba[0]), float(proba[1]), contributions, text)


def _one_row(model: ClinicalModel, row: pd.Series | pd.DataFrame) -> pd.DataFrame:
    frame = row.to_frame().T if isinstance(row, pd.Series) else row
    if len(frame) != 1:
        raise ModelInputError(
            f"explain_prediction explains one row at a time, but got {len(frame)} "
            "rows. Pass one row, for example frame.iloc[0].",
            value=len(frame),
        )
    frame = frame.reset_index(drop=True)

    # A row taken with .iloc contains values of mixed types, so its dtype is object.
    for column in model.numeric:
        if column in frame.columns and frame[column].dtype == object:
            values = frame[column].where(frame[column].notna(), np.nan)
            try:
                frame[column] = pd.to_numeric(values)
            except (TypeError, ValueError):
                pass  # check_input reports the column
    return frame


def _describe(
    model: ClinicalModel,
    probability: float,
    typical: float,
    contributions: pd.DataFrame,
    top: int,
) -> str:
    outcome = OUTCOME_LABELS.get(model.outcome, model.outcome)
    lines = [
        f"Predicted risk of {outcome}: {probability:.0%} "
        f"(with typical values for every feature: {typical:.0%})."
    ]
    # Changes below half a percentage point are noise for a clinical reader.
    visible = contributions[contributions["change"].abs() >= 0.005]
    for direction, part in (
        ("raise", visible[visible["change"] > 0].head(top)),
        ("lower", visible[visible["change"] < 0].head(top)),
    ):
        if part.empty:
            continue
        lines.append(f"Values that {direction} the risk most:")
        for feature, values in part.iterrows():
            lines.append(
                f"- {FEATURE_LABELS.get(feature, feature)} "
                f"{_format(feature, values['value'])} "
                f"(typical {_format(feature, values['typical'])}): "
                f"{values['change'] * 100:+.1f} percentage points"
            )
    if len(lines) == 1:
        lines.append("No single value moves the risk by half a percentage point.")
    lines.append(
        "Each change is the patient's risk minus the risk with only that value "
        "replaced by the typical one."
    )
    return "\n".join(lines)


def _format(feature: str, value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    if isinstance(value, int | float | np.number):
        number = float(value)
        text = f"{number:.0f}" if number.is_integer() else f"{number:.1f}"
        unit = FEATURE_UNITS.get(feature)
        return f"{text} {unit}" if unit else text
    return str(value)
