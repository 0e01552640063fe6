"""Model files in the skops format, checked on load, and model cards in Markdown."""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
import skops.io as sio

import medkit
from medkit._clinical_sets import FEATURE_UNITS
from medkit._evaluation import Evaluation
from medkit._explain import OUTCOME_LABELS
from medkit._models import MISSING_CATEGORY, ClinicalModel
from medkit.exceptions import ModelFileError

logger = logging.getLogger(__name__)

FORMAT = "medkit-clinical-model"
FORMAT_VERSION = 2

TRUSTED_TYPES = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)
"""Types that skops does not trust by default but medkit's pipelines contain.

Loading refuses a file with any other such type, because skops would have to
construct it, and constructing an unknown type can run code.
"""

MODEL_NAMES = {
    "majority": "majority-class baseline",
    "logistic": "logistic regression",
    "forest": "random forest",
    "boosting": "gradient boosting (histogram-based)",
}

# Predictions on the check rows must match to this absolute tolerance on load.
_CHECK_TOLERANCE = 1e-9

# The model card lists a subgroup whose sensitivity is lower than the overall
# sensitivity by more than this, at the evaluation's threshold.
SENSITIVITY_GAP = 0.2


def file_sha256(path: str | Path) -> str:
    """Return the SHA-256 of a file as 64 hexadecimal digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_model(model: ClinicalModel, path: str | Path) -> str:
    """Write a fitted model to a skops file, and return the file's SHA-256.

    skops stores the pipeline's parameters and arrays without pickle, so loading
    a file constructs only the types that :data:`TRUSTED_TYPES` and skops allow.
    The file also stores check rows made from the typical training values
    (never a patient's record), their predicted probabilities and the SHA-256
    of the model's settings (threshold, features, categories, training counts),
    which :func:`load_model` recomputes. These checks are stored inside the file,
    so anyone who edits the file can update them too. Only the returned SHA-256,
    kept apart from the file, proves that the file is unchanged.

    Parameters
    ----------
    model : ClinicalModel
    path : str or Path
        The file to write, conventionally ending ``.skops``. Its folder is
        created if needed.

    Returns
    -------
    str
        The SHA-256 of the written file. Record it, for example in the model
        card, and pass it to :func:`load_model` to detect any change.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = _check_rows(model)
    spec = {
        "kind": model.kind,
        "outcome": model.outcome,
        "numeric": list(model.numeric),
        "categorical": list(model.categorical),
        "categories": {key: list(value) for key, value in model.categories.items()},
        "reference": dict(model.reference),
        "threshold": model.threshold,
        "params": dict(model.params),
        "training": dict(model.training),
        "sklearn_version": sklearn.__version__,
        "medkit_version": medkit.__version__,
    }
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pipeline": model.pipeline,
        "spec": spec,
        "check": {
            "rows": {column: rows[column].tolist() for column in rows.columns},
            "proba": model.pipeline.predict_proba(rows)[:, 1].tolist(),
            "spec_sha256": _spec_sha256(spec),
        },
    }
    sio.dump(payload, path)
    digest = file_sha256(path)
    logger.info("Wrote model file %s", path)
    return digest


def _spec_sha256(spec: dict) -> str:
    text = json.dumps(spec, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_rows(model: ClinicalModel) -> pd.DataFrame:
    """Return synthetic rows that vary one feature at a time from the typical row.

    Each numeric feature takes a low, a high and a missing value, and each
    categorical feature takes every known category and a missing value, while
    the other features keep their typical values. So every coefficient of a
    linear model, one per scaled column and one-hot column, changes at least one
    check prediction.
    """
    typical = {column: model.reference[column] for column in model.features}
    records = [dict(typical)]
    for column in model.numeric:
        value = float(typical[column])
        step = max(abs(value), 1.0) * 0.5
        for changed in (value - step, value + step, np.nan):
            records.append({**typical, column: changed})
    for column in model.categorical:
        known = list(model.categories[column]) or [MISSING_CATEGORY]
        for changed in [*known, np.nan]:
            records.append({**typical, column: changed})
    frame = pd.DataFrame.from_records(records, columns=list(model.features))
    for column in model.numeric:
        frame[column] = frame[column].astype(np.float64)
    for column in model.categorical:
        frame[column] = frame[column].astype(object)
    return frame


def load_model(path: str | Path, *, sha256: str | None = None) -> ClinicalModel:
    """Read a model file written by :func:`save_model`, and check it.

    The checks run in this order. The file must have ``sha256``, if given. It
    must be a skops file with no type outside the trusted ones, and contain a
    medkit model. Its settings (threshold, features, categories, training
    counts) must have the SHA-256 recorded at save time. Last, the model must
    predict the stored check rows, which vary every feature and category, as
    when it was saved.

    Without ``sha256`` these checks catch a file damaged or edited in one
    place, such as a threshold or a coefficient. They cannot prove the file
    unchanged, because every value they compare is stored inside the file and
    can be edited along with it. Only the SHA-256 from :func:`save_model`, kept
    apart from the file and passed as ``sha256``, proves that.

    Parameters
    ----------
    path : str or Path
    sha256 : str, optional
        The SHA-256 that :func:`save_model` returned.

    Returns
    -------
    ClinicalModel

    Raises
    ------
    ModelFileError
        If the file is absent or a folder, differs from ``sha256``, is not a
        skops file, contains an untrusted type, is not a medkit model, has
        settings that differ from those recorded at save time, or predicts its
        check rows differently.
    """
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(
            f"Model path {path} is a folder, not a file. Pass the path of the "
            ".skops file that save_model wrote.",
            path=path,
        )
    if not path.is_file():
        raise ModelFileError(
            f"Model file {path} not found. Check the path, or save the model "
            "first with medkit.intelligence.save_model.",
            path=path,
        )
    actual = file_sha256(path) if sha256 is not None else None
    if sha256 is not None and actual != sha256.lower():
        raise ModelFileError(
            f"Model file {path} has SHA-256 {actual}, not {sha256}, so it was "
            "changed after it was saved. Get the file again from its source.",
            path=path,
        )
    payload = _read_payload(path)
    spec = payload["spec"]
    _verify_spec(spec, payload["check"], path)
    model = ClinicalModel(
        pipeline=payload["pipeline"],
        kind=spec["kind"],
        outcome=spec["outcome"],
        numeric=tuple(spec["numeric"]),
        categorical=tuple(spec["categorical"]),
        categories={key: tuple(value) for key, value in spec["categories"].items()},
        reference=dict(spec["reference"]),
        threshold=float(spec["threshold"]),
        params=dict(spec["params"]),
        training=dict(spec["training"]),
    )
    _verify_predictions(model, payload["check"], path)
    logger.info("Read model file %s", path)
    return model


def _read_payload(path: Path) -> dict:
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise ModelFileError(
            f"Model file {path} is not a skops file ({error}). Save models with "
            "medkit.intelligence.save_model.",
            path=path,
        ) from error
    unknown = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if unknown:
        raise ModelFileError(
            f"Model file {path} contains types that medkit does not trust: "
            f"{', '.join(unknown)}. It is not a medkit model or was changed, so do "
            "not load it.",
            path=path,
        )
    try:
        payload = sio.load(path, trusted=list(untrusted))
    except Exception as error:  # skops raises many kinds on a corrupt file
        raise ModelFileError(
            f"Model file {path} cannot be read by skops ({type(error).__name__}: "
            f"{error}). It was damaged or changed, so get it again from its source.",
            path=path,
        ) from error
    if not (
        isinstance(payload, dict)
        and payload.get("format") == FORMAT
        and {"pipeline", "spec", "check"} <= payload.keys()
    ):
        raise ModelFileError(
            f"Model file {path} is a skops file but not a medkit model. Save models "
            "with medkit.intelligence.save_model.",
            path=path,
        )
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"Model file {path} has format version {version}, but this medkit "
            f"reads version {FORMAT_VERSION}. Save the model again.",
            path=path,
        )
    return payload


def _verify_spec(spec: dict, check: dict, path: Path) -> None:
    recorded = check.get("spec_sha256")
    if recorded != _spec_sha256(spec):
        raise ModelFileError(
            f"Model file {path} has settings (threshold {spec.get('threshold')}, "
            "features, categories or training counts) that differ from those "
            "recorded when it was saved, so it was changed. Get it again from its "
            "source.",
            path=path,
        )


def _verify_predictions(model: ClinicalModel, check: dict, path: Path) -> None:
    rows = pd.DataFrame(check["rows"])
    for column in model.categorical:
        rows[column] = rows[column].astype(object).where(rows[column].notna(), np.nan)
    try:
        proba = model.pipeline.predict_proba(rows)[:, 1]
    except Exception as error:  # a changed pipeline can fail in any step
        raise ModelFileError(
            f"Model file {path} contains a pipeline that fails to predict its own "
            f"check rows ({type(error).__name__}: {error}), so it was changed. Get "
            "it again from its source.",
            path=path,
        ) from error
    expected = np.asarray(check["proba"], dtype=np.float64)
    if proba.shape != expected.shape or not np.allclose(
        proba, expected, rtol=0, atol=_CHECK_TOLERANCE
    ):
        raise ModelFileError(
            f"Model file {path} predicts its check rows differently from when it "
            "was saved, so its parameters were changed. Get it again from its "
            "source.",
            path=path,
        )


def model_card(
    model: ClinicalModel,
    evaluation: Evaluation | None = None,
    *,
    intended_use: str | None = None,
    limits: list[str] | None = None,
    sha256: str | None = None,
) -> str:
    """Write a model card in Markdown: model, intended use, data, metrics, limits.

    Parameters
    ----------
    model : ClinicalModel
    evaluation : Evaluation, optional
        Held-out performance; without it the card states that the model is not
        evaluated.
    intended_use : str, optional
        Who uses the prediction, for which decision. A default for the course's
        readmission model is used when omitted.
    limits : list of str, optional
        Known limits, added to the standard ones. With ``evaluation``, the
        standard ones include each subgroup with fewer than 10 events and each
        subgroup whose sensitivity is more than :data:`SENSITIVITY_GAP` (0.2)
        below the overall sensitivity.
    sha256 : str, optional
        The model file's SHA-256, from :func:`save_model`.

    Returns
    -------
    str
    """
    outcome = OUTCOME_LABELS.get(model.outcome, model.outcome)
    name = MODEL_NAMES.get(model.kind, model.kind)
    lines = [f"# Model card: {outcome} ({name})", ""]
    lines += _model_section(model, outcome, name)
    lines += ["## Intended use", "", intended_use or _default_use(outcome), ""]
    lines += _data_section(model, evaluation)
    if evaluation is None:
        lines += ["## Performance", "", "Not evaluated on held-out rows.", ""]
    else:
        lines += _performance_section(evaluation)
    lines += ["## Limits", ""]
    lines += [f"- {limit}" for limit in _limits(model, evaluation, limits or [])]
    lines.append("")
    if sha256:
        lines += [
            "## File",
            "",
            f"SHA-256 `{sha256}`. Check it on load with "
            "`medkit.intelligence.load_model(path, sha256=...)`.",
            "",
        ]
    return "\n".join(lines)


def _model_section(model: ClinicalModel, outcome: str, name: str) -> list[str]:
    params = model.params
    settings = ""
    if model.kind in ("forest", "boosting"):
        depth = params.get("max_depth")
        settings = (
            f" with {params.get('n_estimators')} trees, maximum depth "
            f"{'unlimited' if depth is None else depth}, seed {params.get('seed')}"
        )
    numeric = ", ".join(
        f"{column} ({FEATURE_UNITS[column]})" if column in FEATURE_UNITS else column
        for column in model.numeric
    )
    return [
        "## Model",
        "",
        f"- Kind: {name}{settings}, in a scikit-learn {sklearn.__version__} "
        "pipeline that imputes missing values (median; category `missing`), "
        "scales numeric features and one-hot encodes categories.",
        f"- Predicts: the probability of {outcome} (`{model.outcome}` = 1).",
        f"- Threshold: {model.threshold:.3f}. A probability at or above it is flagged.",
        f"- Numeric features: {numeric or 'none'}.",
        f"- Categorical features: {', '.join(model.categorical) or 'none'}.",
        "",
    ]


def _default_use(outcome: str) -> str:
    return (
        f"Rank patients by their risk of {outcome} so that staff can offer "
        "closer follow-up to those flagged. The prediction supports a "
        "clinician's decision and does not replace it. Trained for teaching in "
        "the medkit course, and not for decisions about real patients."
    )


def _data_section(model: ClinicalModel, evaluation: Evaluation | None) -> list[str]:
    training = model.training
    patients = training.get("patients")
    lines = ["## Data", ""]
    if training.get("description"):
        lines += [training["description"], ""]
    lines.append(
        f"- Training: {training.get('rows')} rows, {training.get('events')} with "
        f"the event" + (f", {patients} patients." if patients else ".")
    )
    if evaluation is not None:
        metrics = evaluation.metrics
        lines.append(
            f"- Held-out test: {metrics['rows']} rows, {metrics['events']} with the "
            "event, none from a training patient."
        )
    return lines + [""]


def _performance_section(evaluation: Evaluation) -> list[str]:
    metrics = evaluation.metrics
    interval = evaluation.auroc
    counts = evaluation.confusion
    ci = f"{interval.level:.0%} CI {interval.low:.3f}-{interval.high:.3f}"
    rows = [
        ("AUROC", f"{interval.estimate:.3f} ({ci})"),
        ("Sensitivity", f"{metrics['sensitivity']:.3f}"),
        ("Specificity", f"{metrics['specificity']:.3f}"),
        ("PPV", f"{metrics['ppv']:.3f}"),
        ("NPV", f"{metrics['npv']:.3f}"),
        ("Balanced accuracy", f"{metrics['balanced_accuracy']:.3f}"),
        ("Brier score", f"{metrics['brier']:.3f}"),
    ]
    lines = [
        "## Performance on held-out rows",
        "",
        f"At threshold {evaluation.threshold:.3f}: TP {counts.tp}, FP {counts.fp}, "
        f"TN {counts.tn}, FN {counts.fn}. The AUROC interval is a bootstrap of "
        f"{interval.n_boot} replicates.",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value} |" for name, value in rows]
    lines += ["", *_calibration_section(evaluation.calibration)]
    if not evaluation.subgroups.empty:
        lines += _subgroup_section(evaluation.subgroups)
    return lines


def _calibration_section(calibration: pd.DataFrame) -> list[str]:
    lines = [
        "### Calibration",
        "",
        "| predicted risk | rows | mean predicted | observed |",
        "|---|---|---|---|",
    ]
    for _, row in calibration.iterrows():
        lines.append(
            f"| {row['low']:.2f}-{row['high']:.2f} | {int(row['rows'])} | "
            f"{row['mean_predicted']:.3f} | {row['observed_rate']:.3f} |"
        )
    return lines + [""]


def _subgroup_section(subgroups: pd.DataFrame) -> list[str]:
    lines = [
        "### Subgroups",
        "",
        "| subgroup | level | rows | events | AUROC | sensitivity | specificity |",
        "|---|---|---|---|---|---|---|",
    ]
    for (subgroup, level), row in subgroups.iterrows():
        lines.append(
            f"| {subgroup} | {level} | {int(row['rows'])} | {int(row['events'])} | "
            f"{row['auroc']:.3f} | {row['sensitivity']:.3f} | "
            f"{row['specificity']:.3f} |"
        )
    return lines + [""]


def _limits(
    model: ClinicalModel, evaluation: Evaluation | None, extra: list[str]
) -> list[str]:
    limits = [
        "Tested on held-out patients of the hospital it was trained on. Check it "
        "on local data before use at another site.",
        "Permutation importance and per-patient explanations describe what the "
        "model uses, not what causes the outcome.",
    ]
    if evaluation is not None and not evaluation.subgroups.empty:
        small = evaluation.subgroups[evaluation.subgroups["events"] < 10]
        for subgroup, level in small.index:
            limits.append(
                f"Subgroup {subgroup} = {level} has fewer than 10 events in the "
                "test rows, so its metrics are uncertain."
            )
        limits += _low_sensitivity_limits(evaluation)
    return limits + list(extra)


def _low_sensitivity_limits(evaluation: Evaluation) -> list[str]:
    """List subgroups whose sensitivity is far below the overall sensitivity."""
    overall = float(evaluation.metrics["sensitivity"])
    subgroups = evaluation.subgroups
    low = subgroups[subgroups["sensitivity"] < overall - SENSITIVITY_GAP]
    limits = []
    for (subgroup, level), row in low.iterrows():
        events = int(row["events"])
        flagged = round(float(row["sensitivity"]) * events)
        limits.append(
            f"Subgroup {subgroup} = {level} has sensitivity "
            f"{row['sensitivity']:.3f} ({flagged} of {events} events flagged), "
            f"against {overall:.3f} overall at threshold "
            f"{evaluation.threshold:.3f}, so the model misses more of this "
            "group's events. Do not rely on a low risk for these patients "
            "without a clinical review."
        )
    return limits
