"""Tables a clinical prediction model learns from: features, outcome and patients."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from medkit.exceptions import (
    FeatureMismatchError,
    ModelInputError,
    NoFeaturesError,
    NonFiniteValueError,
    OutcomeError,
)

logger = logging.getLogger(__name__)

# A text column with more distinct values than this is taken for an identifier or
# free text when features are inferred, not for a category.
_MAX_LEVELS = 50


@dataclass(frozen=True)
class ClinicalData:
    """A table for a binary clinical prediction: features, outcome and patients.

    Creating one checks the table, so every model and metric in
    :mod:`medkit.intelligence` can rely on it.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per case (a visit, a patient), with a fresh index. It may hold
        more columns than the features, such as IDs and dates.
    outcome : str
        The outcome column: 1 for the event (readmitted, malignant), 0 otherwise.
    numeric : tuple of str
        Numeric features, imputed and scaled by the model's pipeline.
    categorical : tuple of str
        Categorical features, one-hot encoded by the model's pipeline.
    group : str or None
        The column naming the patient of each row. Rows of one patient are never
        split between training and test. None when every row is its own patient.
    subgroups : tuple of str
        Columns whose levels get their own metrics, such as sex and age band.
    name : str
        A short name for model cards and plots.
    description : str
        Where the data comes from and what the outcome means.

    Raises
    ------
    OutcomeError
        If the outcome column is absent, has missing values, or has values other
        than 0 and 1.
    NoFeaturesError
        If no feature is listed.
    FeatureMismatchError
        If a listed feature, group or subgroup column is not in the frame.
    NonFiniteValueError
        If a numeric feature has infinite values.
    ModelInputError
        If a numeric feature is not numeric, a feature has no values at all, or
        the group column has missing values.
    """

    frame: pd.DataFrame
    outcome: str
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    group: str | None = None
    subgroups: tuple[str, ...] = ()
    name: str = ""
    description: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        for name in ("numeric", "categorical", "subgroups"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "frame", self.frame.reset_index(drop=True))
        check_outcome(self.frame, self.outcome)
        _check_features(self.frame, self.numeric, self.categorical)
        _check_extra_columns(self.frame, self.group, self.subgroups)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def features(self) -> list[str]:
        """Numeric then categorical features, the columns a model reads."""
        return [*self.numeric, *self.categorical]

    @property
    def X(self) -> pd.DataFrame:  # noqa: N802 (scikit-learn's name for inputs)
        """The features as a model takes them: floats, and text with NaN for missing."""
        return model_input(self.frame, self.numeric, self.categorical)

    @property
    def y(self) -> np.ndarray:
        """The outcome as an int array of 0 and 1."""
        return self.frame[self.outcome].to_numpy(dtype=np.int64)

    @property
    def groups(self) -> np.ndarray | None:
        """The patient of each row, or None when rows are independent."""
        if self.group is None:
            return None
        return self.frame[self.group].to_numpy(dtype=object)

    def take(self, positions: Sequence[int] | np.ndarray) -> ClinicalData:
        """Return the rows at ``positions`` (from 0) as a new ClinicalData."""
        return replace(self, frame=self.frame.iloc[np.asarray(positions)])


def check_outcome(frame: pd.DataFrame, outcome: str) -> None:
    """Raise OutcomeError unless ``outcome`` is a column of 0 and 1 with no gaps."""
    if outcome not in frame.columns:
        raise OutcomeError(
            f"Outcome column {outcome!r} not found. The table has "
            f"{quoted(frame.columns)}. Name the outcome column.",
            column=outcome,
        )
    values = frame[outcome]
    missing = np.flatnonzero(values.isna().to_numpy())
    if len(missing):
        raise OutcomeError(
            f"Outcome {outcome!r} is missing in {rows_at(missing)}. A model cannot "
            "learn from an unknown outcome: drop those rows or complete them from "
            "the records.",
            column=outcome,
            rows=missing[:10].tolist(),
        )
    numbers = pd.to_numeric(values, errors="coerce")
    invalid = np.flatnonzero(~numbers.isin([0, 1]).to_numpy())
    if len(invalid):
        value = values.iloc[invalid[0]]
        raise OutcomeError(
            f"Outcome {outcome!r} has values other than 0 and 1, such as {value!r}, "
            f"in {rows_at(invalid)}. "
            "Recode it as 1 for the event and 0 otherwise, for example with "
            "(frame[column] == 'yes').astype(int).",
            column=outcome,
            rows=invalid[:10].tolist(),
            value=value,
        )


def check_both_classes(y: np.ndarray, outcome: str, where: str = "the data") -> None:
    """Raise OutcomeError unless ``y`` has both 0 and 1."""
    classes = np.unique(y)
    if len(classes) < 2:
        only = classes[0] if len(classes) else "nothing"
        raise OutcomeError(
            f"Outcome {outcome!r} has only one class ({only}) in {where} of "
            f"{count_rows(len(y))}. A model needs cases with and without the event, "
            "so use more rows or a longer period.",
            column=outcome,
            value=only,
        )


def _check_features(
    frame: pd.DataFrame, numeric: tuple[str, ...], categorical: tuple[str, ...]
) -> None:
    features = [*numeric, *categorical]
    if not features:
        raise NoFeaturesError(
            "No feature columns are listed, so there is nothing to predict from. "
            "List numeric and categorical features, or use clinical_data() to "
            "find them."
        )
    absent = [column for column in features if column not in frame.columns]
    if absent:
        raise FeatureMismatchError(
            f"{name_columns(absent, 'Feature column')} not found. The table has "
            f"{quoted(frame.columns)}.",
            column=absent[0],
        )
    empty = [column for column in features if frame[column].isna().all()]
    if len(empty) == len(features):
        raise NoFeaturesError(
            f"Every feature column ({quoted(features)}) has no values, so no "
            "feature is usable. Check that the table was loaded and joined.",
            column=empty[0],
        )
    if empty:
        raise ModelInputError(
            f"Feature {empty[0]!r} has no values in any row, so remove it from the "
            "features.",
            column=empty[0],
        )
    for column in numeric:
        check_numeric(frame[column], column)


def check_numeric(values: pd.Series, column: str) -> None:
    """Raise unless ``values`` is a numeric column without infinite values."""
    is_bool = pd.api.types.is_bool_dtype(values)
    if not (pd.api.types.is_numeric_dtype(values) or is_bool):
        _raise_not_numeric(values, column)
    if is_bool:
        return
    array = values.to_numpy(dtype=np.float64, na_value=np.nan)
    infinite = np.flatnonzero(np.isinf(array))
    if len(infinite):
        raise NonFiniteValueError(
            f"Feature {column!r} has infinite values in {rows_at(infinite)}. "
            "Replace each with the measured value, or with NaN, which the "
            "pipeline imputes.",
            column=column,
            rows=infinite[:10].tolist(),
            value=float(array[infinite[0]]),
        )


def _raise_not_numeric(values: pd.Series, column: str) -> None:
    numbers = pd.to_numeric(values, errors="coerce")
    bad = np.flatnonzero((numbers.isna() & values.notna()).to_numpy())
    if not len(bad):
        raise ModelInputError(
            f"Numeric feature {column!r} has dtype {values.dtype}, though every "
            "value reads as a number. Convert it with pd.to_numeric.",
            column=column,
        )
    value = values.iloc[bad[0]]
    raise ModelInputError(
        f"Numeric feature {column!r} has {value!r}, which is not a number, at "
        f"position {bad[0]}, and non-numbers in {rows_at(bad)}. Correct or blank "
        "those values, then convert the column with pd.to_numeric, or list it as "
        "a categorical feature.",
        column=column,
        rows=bad[:10].tolist(),
        value=value,
    )


def _check_extra_columns(
    frame: pd.DataFrame, group: str | None, subgroups: tuple[str, ...]
) -> None:
    listed = ([group] if group else []) + list(subgroups)
    absent = [column for column in listed if column not in frame.columns]
    if absent:
        raise FeatureMismatchError(
            f"{name_columns(absent)} not found. The table has {quoted(frame.columns)}.",
            column=absent[0],
        )
    if group is not None:
        missing = np.flatnonzero(frame[group].isna().to_numpy())
        if len(missing):
            raise ModelInputError(
                f"Patient column {group!r} is missing in {rows_at(missing)}. Every "
                "row needs its patient, so that no patient ends up in both training "
                "and test rows.",
                column=group,
                rows=missing[:10].tolist(),
            )


def model_input(
    frame: pd.DataFrame, numeric: Iterable[str], categorical: Iterable[str]
) -> pd.DataFrame:
    """Return the features as a scikit-learn pipeline takes them.

    Numeric columns become float64 with NaN for missing values. Categorical
    columns become object columns of text with NaN for missing values, so that
    the encoder receives one type whatever the source dtype was.
    """
    columns: dict[str, pd.Series] = {}
    for column in numeric:
        array = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
        columns[column] = pd.Series(array, index=frame.index)
    for column in categorical:
        values = frame[column]
        text = values.astype(str).to_numpy(dtype=object)
        text[values.isna().to_numpy()] = np.nan
        columns[column] = pd.Series(text, index=frame.index, dtype=object)
    return pd.DataFrame(columns, index=frame.index)


def clinical_data(
    frame: pd.DataFrame,
    outcome: str,
    *,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    group: str | None = None,
    subgroups: Sequence[str] = (),
    name: str = "",
    description: str = "",
) -> ClinicalData:
    """Check a table and describe it for modelling, finding its features if needed.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per case.
    outcome : str
        The outcome column, 1 for the event and 0 otherwise.
    numeric, categorical : sequence of str, optional
        Feature columns. When both are omitted, numeric columns become numeric
        features, and text or categorical columns with at most 50 distinct
        values become categorical features. The outcome, group and subgroup
        columns, columns without any value, and text columns whose values are
        all different (identifiers) are left out.
    group : str, optional
        The column naming each row's patient.
    subgroups : sequence of str, default=()
        Columns whose levels get their own metrics.
    name, description : str, default=""
        A short name, and where the data comes from.

    Returns
    -------
    ClinicalData

    Raises
    ------
    OutcomeError, NoFeaturesError, FeatureMismatchError, NonFiniteValueError
        As :class:`ClinicalData` does.

    Examples
    --------
    >>> frame = pd.DataFrame({"age": [70, 55, 81, 64], "sex": ["F", "M", "F", "M"],
    ...                       "died": [1, 0, 1, 0]})
    >>> data = clinical_data(frame, "died")
    >>> data.numeric, data.categorical
    (('age',), ('sex',))
    """
    check_outcome(frame, outcome)
    if numeric is None and categorical is None:
        numeric, categorical = _infer_features(frame, [outcome, group, *subgroups])
    return ClinicalData(
        frame=frame,
        outcome=outcome,
        numeric=tuple(numeric or ()),
        categorical=tuple(categorical or ()),
        group=group,
        subgroups=tuple(subgroups),
        name=name,
        description=description,
    )


def _infer_features(
    frame: pd.DataFrame, reserved: list[str | None]
) -> tuple[list[str], list[str]]:
    numeric, categorical = [], []
    for column in frame.columns:
        values = frame[column]
        if column in reserved or values.isna().all():
            continue
        if pd.api.types.is_bool_dtype(values):
            categorical.append(column)
        elif pd.api.types.is_numeric_dtype(values):
            numeric.append(column)
        elif pd.api.types.is_datetime64_any_dtype(values):
            logger.debug("Not a feature: date column %s", column)
        else:
            levels = values.nunique()
            if levels <= _MAX_LEVELS and levels < values.notna().sum():
                categorical.append(column)
            else:
                logger.debug("Not a feature: %s has %d distinct values", column, levels)
    if not numeric and not categorical:
        raise NoFeaturesError(
            f"No usable feature among the columns {quoted(frame.columns)}: each "
            "is the outcome, the patient, empty, a date, or text with a different "
            "value in every row. Add feature columns, or list them explicitly."
        )
    return numeric, categorical


def count_rows(count: int) -> str:
    """Return "1 row" or "<count> rows", for messages."""
    return "1 row" if count == 1 else f"{count} rows"


def rows_at(positions: np.ndarray) -> str:
    """Return "1 row (position 5)" or "3 rows (positions 1, 4, 9)", for messages.

    At most the first ten positions are listed.
    """
    listed = ", ".join(str(position) for position in positions[:10])
    listed += ", ..." if len(positions) > 10 else ""
    noun = "position" if len(positions) == 1 else "positions"
    return f"{count_rows(len(positions))} ({noun} {listed})"


def name_columns(columns: Sequence[object], noun: str = "Column") -> str:
    """Return "Column 'a'" or "Columns 'a', 'b'", for messages."""
    return f"{noun}{'' if len(columns) == 1 else 's'} {quoted(columns)}"


def quoted(columns: Iterable[object]) -> str:
    """Return the names quoted and joined by commas, for messages."""
    return ", ".join(repr(str(column)) for column in columns)
