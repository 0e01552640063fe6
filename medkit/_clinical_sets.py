"""Clinical prediction data: hospital visits and the sets scikit-learn ships."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from medkit._clinical_data import ClinicalData, quoted
from medkit.exceptions import ModelInputError

logger = logging.getLogger(__name__)

OUTCOME = "readmit_30d"
"""Readmission within 30 days of discharge, 1 or 0."""

PATIENT = "patient_id"

NUMERIC = (
    "age",
    "length_of_stay",
    "prior_visits",
    "systolic_bp",
    "heart_rate",
    "glucose",
    "creatinine",
    "sodium",
)
"""Numeric features of a visit, in the units of :data:`FEATURE_UNITS`."""

CATEGORICAL = ("sex", "department", "icd10")
"""Categorical features of a visit."""

SUBGROUPS = ("sex", "age_band")
"""Columns whose levels get their own metrics in an evaluation."""

AGE_BANDS = (18, 45, 65, 80)
"""Lower bounds in years of the age bands: 18-44, 45-64, 65-79 and 80+."""

FEATURE_UNITS = {
    "age": "years",
    "length_of_stay": "days",
    "systolic_bp": "mmHg",
    "heart_rate": "beats/min",
    "glucose": "mmol/L",
    "creatinine": "µmol/L",
    "sodium": "mmol/L",
}

FEATURE_LABELS = {
    "age": "age",
    "length_of_stay": "length of stay",
    "prior_visits": "earlier stays",
    "systolic_bp": "systolic blood pressure",
    "heart_rate": "heart rate",
    "glucose": "glucose",
    "creatinine": "creatinine",
    "sodium": "sodium",
    "sex": "sex",
    "department": "department",
    "icd10": "diagnosis (ICD-10)",
}

LAB_FEATURES = {"GLU": "glucose", "CREA": "creatinine", "NA": "sodium"}
"""Lab test code mapped to the feature column that contains its result."""

# The columns of each stage 1 table that visit_features reads.
_SOURCE_COLUMNS = {
    "patients": ["patient_id", "sex"],
    "visits": [
        "visit_id",
        "patient_id",
        "admit_date",
        "discharge_date",
        "department",
        "icd10",
        "age",
        "systolic_bp",
        "heart_rate",
        OUTCOME,
    ],
    "labs": ["visit_id", "test", "value", "taken_date"],
}


def visit_features(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Build one row of readmission features per hospital visit.

    Works on the tables that :func:`medkit.digitize.load_tables` reads from the
    stage 1 database, and on the answer key frames of
    :func:`medkit.datasets.load_answer_key` (dates as ISO text).

    Parameters
    ----------
    tables : mapping of str to pandas.DataFrame
        The clean ``patients``, ``visits`` and ``labs`` tables.

    Returns
    -------
    pandas.DataFrame
        One row per visit, in the order of ``visits``: ``visit_id``,
        ``patient_id``, ``admit_date``, ``sex``, ``age`` (years), ``age_band``
        (``18-44``, ``45-64``, ``65-79``, ``80+``), ``department``, ``icd10``,
        ``length_of_stay`` (discharge minus admission, days), ``prior_visits``
        (the patient's earlier stays in the table), ``systolic_bp`` (mmHg),
        ``heart_rate`` (beats/min), ``glucose`` (mmol/L), ``creatinine``
        (µmol/L), ``sodium`` (mmol/L) and ``readmit_30d``. A lab feature is the
        stay's earliest result of that test, missing if it has none. Age, vital
        signs and the outcome are nullable ``Int64`` and ``admit_date`` is
        ``datetime64[ns]``, so both sources give the same dtypes.

    Raises
    ------
    ModelInputError
        If a table or one of the columns used is absent.
    """
    patients, visits, labs = (_table(tables, name) for name in _SOURCE_COLUMNS)
    features = visits[["visit_id", "patient_id"]].copy()
    admit = pd.to_datetime(visits["admit_date"], format="ISO8601")
    discharge = pd.to_datetime(visits["discharge_date"], format="ISO8601")

    # The patient's sex, and the visit's columns as recorded.
    sex = patients.drop_duplicates("patient_id").set_index("patient_id")["sex"]
    features["admit_date"] = admit.astype("datetime64[ns]")
    features["sex"] = visits["patient_id"].map(sex)
    features["age"] = visits["age"].astype("Int64")
    features["age_band"] = age_band(visits["age"])
    for column in ("department", "icd10"):
        features[column] = visits[column]

    # Stay length and the patient's earlier stays, ordered by admission date.
    features["length_of_stay"] = (discharge - admit).dt.days
    order = pd.DataFrame(
        {
            "patient_id": visits["patient_id"],
            "admit": admit,
            "visit": visits["visit_id"],
        }
    ).sort_values(["patient_id", "admit", "visit"])
    features["prior_visits"] = (
        order.groupby("patient_id").cumcount().reindex(visits.index)
    )
    for column in ("systolic_bp", "heart_rate"):
        features[column] = visits[column].astype("Int64")

    # The earliest result of each test in the stay.
    results = _lab_results(labs)
    for column in LAB_FEATURES.values():
        features[column] = visits["visit_id"].map(results[column])
    features[OUTCOME] = visits[OUTCOME].astype("Int64")
    logger.debug("Built features for %d visits", len(features))
    return features.reset_index(drop=True)


def _table(tables: Mapping[str, pd.DataFrame], name: str) -> pd.DataFrame:
    if name not in tables:
        raise ModelInputError(
            f"Table {name!r} not found among {quoted(tables)}. Pass the patients, "
            "visits and labs tables."
        )
    frame = tables[name]
    absent = [column for column in _SOURCE_COLUMNS[name] if column not in frame.columns]
    if absent:
        raise ModelInputError(
            f"Table {name!r} has no column {absent[0]!r}. It has "
            f"{quoted(frame.columns)}. Pass the clean table from stage 1.",
            column=absent[0],
        )
    return frame


def _lab_results(labs: pd.DataFrame) -> pd.DataFrame:
    taken_date = pd.to_datetime(labs["taken_date"], format="ISO8601")
    first = (
        labs.assign(taken=taken_date)
        .sort_values(["visit_id", "test", "taken"], kind="stable")
        .drop_duplicates(["visit_id", "test"])
    )
    first = first[first["test"].isin(list(LAB_FEATURES))]
    wide = first.pivot(index="visit_id", columns="test", values="value")
    wide = wide.reindex(columns=list(LAB_FEATURES)).astype("float64")
    return wide.rename(columns=LAB_FEATURES)


def age_band(age: pd.Series) -> pd.Series:
    """Return the age band of each age in years: 18-44, 45-64, 65-79 or 80+.

    Ages under 18 and missing ages get a missing band.
    """
    bounds = [*AGE_BANDS, np.inf]
    labels = [
        f"{low}-{high - 1}" for low, high in zip(AGE_BANDS, AGE_BANDS[1:], strict=False)
    ]
    labels.append(f"{AGE_BANDS[-1]}+")
    numbers = pd.to_numeric(age, errors="coerce").astype("float64")
    bands = pd.cut(numbers, bounds, right=False, labels=labels)
    return bands.astype(object).where(bands.notna(), np.nan).astype("str")


def readmission_data(
    features: pd.DataFrame, *, name: str = "readmission"
) -> ClinicalData:
    """Describe a table from :func:`visit_features` for the readmission model."""
    return ClinicalData(
        frame=features,
        outcome=OUTCOME,
        numeric=NUMERIC,
        categorical=CATEGORICAL,
        group=PATIENT,
        subgroups=SUBGROUPS,
        name=name,
        description=(
            f"{len(features)} hospital visits of {features[PATIENT].nunique()} "
            "synthetic patients from the medkit hospital generator. The outcome is "
            "readmission within 30 days of discharge."
        ),
    )


def load_readmission(url: str | sa.Engine | None = None) -> ClinicalData:
    """Load the readmission features from the stage 1 database.

    Parameters
    ----------
    url : str or sqlalchemy.Engine, optional
        The database that :func:`medkit.digitize.digitize_hospital` wrote;
        ``sqlite:///build/medkit.db`` by default.

    Returns
    -------
    ClinicalData
        One row per visit (:func:`visit_features`), grouped by ``patient_id``,
        with subgroups ``sex`` and ``age_band``.
    """
    from medkit import digitize

    tables = digitize.load_tables(digitize.DEFAULT_URL if url is None else url)
    logger.info("Read %d visits from the stage 1 database", len(tables["visits"]))
    return readmission_data(visit_features(tables), name="readmission")


def answer_key_readmission(directory: str | Path | None = None) -> ClinicalData:
    """Load the readmission features from the answer key of the shipped datasets.

    The answer key contains the tables that stage 1 produces, so this gives the same
    rows as :func:`load_readmission` without building a database first.

    Parameters
    ----------
    directory : str or Path, optional
        The datasets folder, :func:`medkit.datasets.data_dir` by default.

    Returns
    -------
    ClinicalData
    """
    from medkit import datasets

    tables = {
        name: datasets.load_answer_key(name, directory)
        for name in ("patients", "visits", "labs")
    }
    return readmission_data(visit_features(tables), name="readmission")


def load_breast_cancer() -> ClinicalData:
    """Load scikit-learn's breast cancer set (Wisconsin diagnostic, 569 patients).

    The outcome ``malignant`` is 1 for a malignant tumour (212 patients) and 0 for
    a benign one. The 30 numeric features describe cell nuclei in a fine-needle
    aspirate image. Each row is a different patient. The data ships with
    scikit-learn, so nothing is downloaded.

    Returns
    -------
    ClinicalData
    """
    from sklearn.datasets import load_breast_cancer as sklearn_breast_cancer

    bunch = sklearn_breast_cancer(as_frame=True)
    names = [str(name) for name in bunch.feature_names]
    frame = bunch.data.set_axis(names, axis=1)
    frame["malignant"] = (bunch.target == 0).astype(np.int64)
    return ClinicalData(
        frame=frame,
        outcome="malignant",
        numeric=tuple(names),
        name="breast cancer",
        description=(
            "Wisconsin diagnostic breast cancer data shipped with scikit-learn: "
            "569 patients, 30 measurements of cell nuclei from a fine-needle "
            "aspirate. The outcome is a malignant tumour."
        ),
    )


def load_diabetes(cutoff: float = 200) -> ClinicalData:
    """Load scikit-learn's diabetes set (442 patients) with a binary outcome.

    scikit-learn gives a disease-progression score one year after baseline. The
    outcome ``progression`` is 1 when that score is above ``cutoff`` (121 of 442
    patients for the default of 200). Features are age (years), body mass index
    (``bmi``), average blood pressure (``bp``) and six serum measurements
    (``s1`` to ``s6``), unscaled, and ``sex`` (coded 1 or 2 in the source,
    treated as a category). The data ships with scikit-learn.

    Parameters
    ----------
    cutoff : float, default=200
        The progression score above which the outcome is 1.

    Returns
    -------
    ClinicalData
    """
    from sklearn.datasets import load_diabetes as sklearn_diabetes

    bunch = sklearn_diabetes(as_frame=True, scaled=False)
    names = [str(name) for name in bunch.feature_names]
    frame = bunch.data.set_axis(names, axis=1)
    frame["sex"] = frame["sex"].astype(np.int64).astype(str)
    frame["progression"] = (bunch.target > cutoff).astype(np.int64)
    return ClinicalData(
        frame=frame,
        outcome="progression",
        numeric=tuple(column for column in names if column != "sex"),
        categorical=("sex",),
        subgroups=("sex",),
        name="diabetes",
        description=(
            "Diabetes data shipped with scikit-learn (Efron et al., 2004): 442 "
            "patients, ten baseline measurements. The outcome is a disease "
            f"progression score above {cutoff:g} one year after baseline."
        ),
    )
