"""Pipelines, fitted clinical models and splits that keep each patient on one side."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    StratifiedGroupKFold,
    StratifiedKFold,
    cross_val_predict,
    cross_validate,
    train_test_split,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from medkit._clinical_data import (
    ClinicalData,
    check_both_classes,
    check_numeric,
    count_rows,
    model_input,
    name_columns,
    quoted,
)
from medkit.datasets import DEFAULT_SEED
from medkit.exceptions import (
    FeatureMismatchError,
    ModelInputError,
    ModelSettingError,
    UnknownCategoryWarning,
)

logger = logging.getLogger(__name__)

MODELS = ("majority", "logistic", "forest", "boosting")
"""Model kinds: majority-class baseline, logistic regression, random forest and
gradient boosting."""

MISSING_CATEGORY = "missing"
"""The category a missing categorical value is imputed as."""


def make_pipeline(
    model: str = "logistic",
    numeric: Sequence[str] = (),
    categorical: Sequence[str] = (),
    *,
    max_depth: int | None = None,
    n_estimators: int = 100,
    seed: int = DEFAULT_SEED,
    n_jobs: int | None = None,
) -> Pipeline:
    """Build an unfitted pipeline: impute, scale, one-hot encode, then classify.

    Numeric features are imputed with the training median and scaled to zero mean
    and unit variance. Categorical features are imputed as ``"missing"`` and
    one-hot encoded. A category that training never saw is encoded as all zeros
    instead of raising. Every step learns from the rows the pipeline is fitted
    on, so fitting it on training rows keeps the test rows out of it.

    Parameters
    ----------
    model : {"majority", "logistic", "forest", "boosting"}, default="logistic"
        ``majority`` predicts the base rate for everyone (scikit-learn's
        ``DummyClassifier(strategy="prior")``). ``logistic`` is a logistic
        regression, ``forest`` a random forest with leaves of at least 5 rows,
        and ``boosting`` histogram gradient boosting.
    numeric, categorical : sequence of str, default=()
        Feature columns.
    max_depth : int, optional
        Maximum depth of each tree (forest and boosting). None grows trees until
        their leaves are small.
    n_estimators : int, default=100
        Trees of a forest, or boosting iterations.
    seed : int, default=2026
        Seed of the model's random steps.
    n_jobs : int, optional
        Processes that fit the trees of a forest in parallel; -1 uses every core.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Steps ``preprocess`` (a ColumnTransformer) and ``model``.

    Raises
    ------
    ValueError
        If ``model`` is not one of :data:`MODELS`.
    """
    transformers = []
    if numeric:
        steps = [
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
        ]
        transformers.append(("numeric", Pipeline(steps), list(numeric)))
    if categorical:
        steps = [
            (
                "impute",
                SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY),
            ),
            ("one_hot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
        transformers.append(("categorical", Pipeline(steps), list(categorical)))
    preprocess = ColumnTransformer(transformers, verbose_feature_names_out=False)
    estimator = _estimator(model, max_depth, n_estimators, seed, n_jobs)
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def _estimator(
    model: str, max_depth: int | None, n_estimators: int, seed: int, n_jobs: int | None
) -> object:
    if model == "majority":
        return DummyClassifier(strategy="prior")
    if model == "logistic":
        return LogisticRegression(max_iter=1000)
    if model == "forest":
        return RandomForestClassifier(
            n_estimators=n_estimators,
            max_depth=max_depth,
            min_samples_leaf=5,
            random_state=seed,
            n_jobs=n_jobs,
        )
    if model == "boosting":
        return HistGradientBoostingClassifier(
            max_iter=n_estimators,
            max_depth=max_depth,
            early_stopping=False,
            random_state=seed,
        )
    raise ModelSettingError(
        f"Unknown model {model!r}. Expected one of {', '.join(MODELS)}.",
        name="model",
        value=model,
    )


@dataclass
class ClinicalModel:
    """A fitted pipeline with what it needs to check its inputs and explain itself.

    Attributes
    ----------
    pipeline : sklearn.pipeline.Pipeline
        The fitted pipeline from :func:`make_pipeline`.
    kind : str
        One of :data:`MODELS`.
    outcome : str
        The outcome column it predicts.
    numeric, categorical : tuple of str
        The features it was trained on.
    categories : dict of str to tuple of str
        The categories each categorical feature had in training.
    reference : dict of str to float or str
        A typical value of each feature in training: the median of a numeric
        feature, the most common category of a categorical one.
    threshold : float, default=0.5
        Predicted probabilities at or above it count as positive.
    params : dict
        ``max_depth``, ``n_estimators`` and ``seed``.
    training : dict
        What it was trained on: data ``name``, ``description``, ``rows``,
        ``events`` and ``patients``.
    """

    pipeline: Pipeline
    kind: str
    outcome: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    categories: dict[str, tuple[str, ...]]
    reference: dict[str, float | str]
    threshold: float = 0.5
    params: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        """Numeric then categorical features."""
        return [*self.numeric, *self.categorical]

    def check_input(self, data: ClinicalData | pd.DataFrame) -> pd.DataFrame:
        """Check rows to predict for and return them as the pipeline takes them.

        Columns other than the features are ignored. Categories that training
        never saw are reported with an :class:`UnknownCategoryWarning`, and the
        rows still get a prediction from their other features.

        Raises
        ------
        FeatureMismatchError
            If a feature column is absent.
        NonFiniteValueError
            If a numeric feature has infinite values.
        ModelInputError
            If a numeric feature is not numeric.
        """
        frame = data.frame if isinstance(data, ClinicalData) else data
        absent = [column for column in self.features if column not in frame.columns]
        if absent:
            raise FeatureMismatchError(
                f"{name_columns(absent)} {'is' if len(absent) == 1 else 'are'} "
                f"missing, but the model was trained on {quoted(self.features)}. "
                "Build the rows the same way as the training rows.",
                column=absent[0],
            )
        for column in self.numeric:
            check_numeric(frame[column], column)
        inputs = model_input(frame, self.numeric, self.categorical)
        self._warn_unknown(inputs)
        return inputs

    def _warn_unknown(self, inputs: pd.DataFrame) -> None:
        for column in self.categorical:
            values = inputs[column]
            known = set(self.categories[column])
            unknown = values.notna() & ~values.isin(known)
            if not unknown.any():
                continue
            names = sorted(set(values[unknown]))
            listed = ", ".join(map(repr, names[:10])) + (
                ", ..." if len(names) > 10 else ""
            )
            warnings.warn(
                f"Feature {column!r} has categories never seen in training, in "
                f"{count_rows(int(unknown.sum()))}: {listed}. They are "
                "encoded as all zeros, so those predictions rest on the other "
                "features. Retrain with data that includes them.",
                UnknownCategoryWarning,
                stacklevel=4,
            )

    def predict_proba(self, data: ClinicalData | pd.DataFrame) -> np.ndarray:
        """Return the predicted probability of the outcome for each row.

        Parameters
        ----------
        data : ClinicalData or pandas.DataFrame
            Rows with the model's feature columns.

        Returns
        -------
        numpy.ndarray of shape (n_rows,)
        """
        return self.pipeline.predict_proba(self.check_input(data))[:, 1]

    def predict(
        self, data: ClinicalData | pd.DataFrame, threshold: float | None = None
    ) -> np.ndarray:
        """Return 1 where the probability is at or above the threshold, else 0.

        ``threshold`` defaults to the model's :attr:`threshold`.
        """
        threshold = self.threshold if threshold is None else threshold
        return (self.predict_proba(data) >= threshold).astype(np.int64)


def fit_model(
    train: ClinicalData,
    model: str = "logistic",
    *,
    max_depth: int | None = None,
    n_estimators: int = 100,
    threshold: float = 0.5,
    seed: int = DEFAULT_SEED,
    n_jobs: int | None = None,
) -> ClinicalModel:
    """Fit a pipeline from :func:`make_pipeline` on training rows.

    Parameters
    ----------
    train : ClinicalData
        The training rows only.
    model : {"majority", "logistic", "forest", "boosting"}, default="logistic"
    max_depth, n_estimators, seed, n_jobs
        As for :func:`make_pipeline`.
    threshold : float, default=0.5
        The probability at or above which the model predicts the event.

    Returns
    -------
    ClinicalModel

    Raises
    ------
    OutcomeError
        If the training outcome has only one class.

    Examples
    --------
    >>> train, test = split_by_patient(answer_key_readmission())  # doctest: +SKIP
    >>> model = fit_model(train, "logistic")  # doctest: +SKIP
    >>> model.predict_proba(test)[:3]  # doctest: +SKIP
    """
    check_both_classes(train.y, train.outcome, "the training rows")
    pipeline = make_pipeline(
        model,
        train.numeric,
        train.categorical,
        max_depth=max_depth,
        n_estimators=n_estimators,
        seed=seed,
        n_jobs=n_jobs,
    )
    inputs = train.X
    pipeline.fit(inputs, train.y)
    groups = train.groups
    logger.info("Fitted %s model on %d rows", model, len(train))
    return ClinicalModel(
        pipeline=pipeline,
        kind=model,
        outcome=train.outcome,
        numeric=train.numeric,
        categorical=train.categorical,
        categories={
            column: tuple(sorted(inputs[column].dropna().unique()))
            for column in train.categorical
        },
        reference=_reference_values(inputs, train.numeric, train.categorical),
        threshold=float(threshold),
        params={"max_depth": max_depth, "n_estimators": n_estimators, "seed": seed},
        training={
            "name": train.name,
            "description": train.description,
            "rows": len(train),
            "events": int(train.y.sum()),
            "patients": None if groups is None else int(pd.Series(groups).nunique()),
        },
    )


def _reference_values(
    inputs: pd.DataFrame, numeric: Iterable[str], categorical: Iterable[str]
) -> dict[str, float | str]:
    reference: dict[str, float | str] = {}
    for column in numeric:
        reference[column] = float(inputs[column].median())
    for column in categorical:
        counts = inputs[column].value_counts()
        reference[column] = str(counts.index[0]) if len(counts) else MISSING_CATEGORY
    return reference


def _folds(data: ClinicalData, n_splits: int, seed: int) -> list[tuple]:
    check_both_classes(data.y, data.outcome)
    if data.group is None:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        return list(splitter.split(data.frame, data.y))
    patients = pd.Series(data.groups).nunique()
    if patients < n_splits:
        raise ModelSettingError(
            f"{n_splits} folds need at least {n_splits} patients, but the data has "
            f"{patients}. Use fewer folds.",
            name="n_splits",
            value=n_splits,
        )
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(data.frame, data.y, data.groups))


def patient_folds(
    data: ClinicalData, n_splits: int = 5, *, seed: int = DEFAULT_SEED
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split rows into cross-validation folds, stratified and grouped by patient.

    Each fold's test rows have about the outcome rate of the whole data, and no
    patient has rows on both sides of any fold. Without a group column, every
    row is its own patient (stratified k-fold).

    Parameters
    ----------
    data : ClinicalData
    n_splits : int, default=5
    seed : int, default=2026
        Seed of the shuffle, so the same seed gives the same folds.

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        Training and test positions (from 0) of each fold.

    Raises
    ------
    OutcomeError
        If the outcome has only one class.
    """
    return _folds(data, n_splits, seed)


def split_by_patient(
    data: ClinicalData, test_size: float = 0.25, *, seed: int = DEFAULT_SEED
) -> tuple[ClinicalData, ClinicalData]:
    """Hold out test rows, stratified by outcome, with no patient on both sides.

    With a group column, the rows are cut into n folds of :func:`patient_folds`
    and the first m folds are the test part. The fraction m / n, with n at most
    20, is the one nearest ``test_size``: 0.25 gives 1 of 4 folds and 0.4 gives
    2 of 5.
    Whole patients move, so the test share of rows is close to ``test_size``
    but not exact, and a warning is logged if it differs by more than 0.05.
    Without a group column, it is a stratified random split of exactly
    ``test_size``.

    Parameters
    ----------
    data : ClinicalData
    test_size : float, default=0.25
        Share of rows to hold out, above 0 and at most 0.5.
    seed : int, default=2026

    Returns
    -------
    (ClinicalData, ClinicalData)
        Training rows and test rows.

    Raises
    ------
    ModelSettingError
        If ``test_size`` is not above 0 and at most 0.5, or the data has too few
        patients for the folds it needs.
    OutcomeError
        If the outcome has only one class.
    """
    if not 0 < test_size <= 0.5:
        raise ModelSettingError(
            f"test_size must be a share of rows above 0 and at most 0.5, but got "
            f"{test_size!r}. Pass, for example, 0.25 to hold out a quarter.",
            name="test_size",
            value=test_size,
        )
    if data.group is None:
        check_both_classes(data.y, data.outcome)
        train, test = train_test_split(
            np.arange(len(data)),
            test_size=test_size,
            stratify=data.y,
            random_state=seed,
        )
        return data.take(np.sort(train)), data.take(np.sort(test))

    patients = pd.Series(data.groups).nunique()
    test_folds, n_folds = _fold_fraction(test_size, max(2, min(_MAX_FOLDS, patients)))
    folds = _folds(data, n_folds, seed)
    test = np.sort(np.concatenate([fold[1] for fold in folds[:test_folds]]))
    train = np.setdiff1d(np.arange(len(data)), test)
    share = len(test) / len(data)
    if abs(share - test_size) > _SHARE_TOLERANCE:
        logger.warning(
            "split_by_patient holds out %.3f of the rows, not the requested %s, "
            "because whole patients move and there are %s of them.",
            share,
            test_size,
            patients,
        )
    return data.take(train), data.take(test)


# split_by_patient uses at most this many folds, so its share is within 1/40 of
# the request before whole patients move.
_MAX_FOLDS = 20
_SHARE_TOLERANCE = 0.05


def _fold_fraction(test_size: float, max_folds: int) -> tuple[int, int]:
    """Return (m, n) with m / n nearest ``test_size``, the smallest n on ties."""
    best = (1, 2)
    for n_folds in range(2, max_folds + 1):
        test_folds = max(1, round(test_size * n_folds))
        if abs(test_folds / n_folds - test_size) < abs(best[0] / best[1] - test_size):
            best = (test_folds, n_folds)
    return best


def shared_patients(
    train: ClinicalData | Iterable[object], test: ClinicalData | Iterable[object]
) -> list[object]:
    """Return the patients that have rows in both ``train`` and ``test``, sorted.

    Each argument is a ClinicalData with a group column, or the patient IDs of
    its rows.
    """

    def ids(part: ClinicalData | Iterable[object]) -> set[object]:
        if isinstance(part, ClinicalData):
            if part.group is None:
                raise ModelInputError(
                    "The data has no patient column, so every row is its own "
                    "patient and there is nothing to compare."
                )
            return set(part.frame[part.group])
        return set(part)

    return sorted(ids(train) & ids(test))


def cross_validate_model(
    data: ClinicalData,
    model: str = "forest",
    *,
    n_splits: int = 5,
    max_depth: int | None = None,
    n_estimators: int = 100,
    seed: int = DEFAULT_SEED,
    n_jobs: int | None = None,
) -> pd.DataFrame:
    """Cross-validate a model on folds of :func:`patient_folds`.

    The whole pipeline, preprocessing included, is fitted on each fold's
    training rows and scored on its test rows.

    Parameters
    ----------
    data : ClinicalData
    model, max_depth, n_estimators, seed, n_jobs
        As for :func:`make_pipeline`.
    n_splits : int, default=5

    Returns
    -------
    pandas.DataFrame
        One row per fold: ``train_rows``, ``test_rows``, ``auroc``, ``brier``
        and ``fit_seconds``.
    """
    folds = _folds(data, n_splits, seed)
    pipeline = make_pipeline(
        model,
        data.numeric,
        data.categorical,
        max_depth=max_depth,
        n_estimators=n_estimators,
        seed=seed,
        n_jobs=n_jobs,
    )
    scores = cross_validate(
        pipeline,
        data.X,
        data.y,
        cv=folds,
        scoring={"auroc": "roc_auc", "brier": "neg_brier_score"},
        error_score="raise",
    )
    logger.info("Cross-validated %s model on %d folds", model, n_splits)
    return pd.DataFrame(
        {
            "train_rows": [len(train) for train, _ in folds],
            "test_rows": [len(test) for _, test in folds],
            "auroc": scores["test_auroc"],
            "brier": -scores["test_brier"],
            "fit_seconds": scores["fit_time"],
        },
        index=pd.RangeIndex(1, n_splits + 1, name="fold"),
    )


def out_of_fold_proba(
    data: ClinicalData,
    model: str = "logistic",
    *,
    n_splits: int = 5,
    max_depth: int | None = None,
    n_estimators: int = 100,
    seed: int = DEFAULT_SEED,
) -> np.ndarray:
    """Predict each row with a model fitted on the folds that do not contain it.

    Use it to choose a threshold from training rows only, so that the test rows
    still measure the chosen threshold without bias.

    Returns
    -------
    numpy.ndarray of shape (n_rows,)
        The predicted probability of the outcome for each row of ``data``.
    """
    pipeline = make_pipeline(
        model,
        data.numeric,
        data.categorical,
        max_depth=max_depth,
        n_estimators=n_estimators,
        seed=seed,
    )
    folds = _folds(data, n_splits, seed)
    proba = cross_val_predict(
        pipeline, data.X, data.y, cv=folds, method="predict_proba"
    )
    return proba[:, 1]
