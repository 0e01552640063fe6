"""Tests of medkit.intelligence: features, splits, models, metrics, explanations."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder

from medkit import digitize, intelligence
from medkit.exceptions import (
    FeatureMismatchError,
    ModelFileError,
    ModelInputError,
    ModelSettingError,
    NoFeaturesError,
    NonFiniteValueError,
    OutcomeError,
    UnknownCategoryWarning,
)
from medkit.intelligence import (
    ClinicalData,
    ConfusionCounts,
    auroc,
    auroc_ci,
    brier_score,
    calibration_table,
    clinical_data,
    clinical_metrics,
    confusion_at,
    subgroup_metrics,
    threshold_for_sensitivity,
)

matplotlib.use("Agg")

# Ten patients: four with the event. Hand-computed at threshold 0.5: the flagged
# are 0.9 and 0.8 (events) and 0.7 and 0.6 (no event).
Y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
P = np.array([0.9, 0.8, 0.4, 0.2, 0.7, 0.3, 0.1, 0.1, 0.05, 0.6])

PATIENTS = pd.DataFrame(
    {"patient_id": ["000001", "000002", "000003"], "sex": ["F", "M", None]}
)
VISITS = pd.DataFrame(
    {
        "visit_id": ["V0000001", "V0000002", "V0000003", "V0000004", "V0000005"],
        "patient_id": ["000001", "000002", "000001", "000003", "000001"],
        "admit_date": [
            "2024-01-01",
            "2024-01-03",
            "2024-01-20",
            "2024-02-01",
            "2023-12-01",
        ],
        "discharge_date": [
            "2024-01-05",
            "2024-01-04",
            "2024-01-30",
            "2024-02-03",
            "2023-12-02",
        ],
        "department": ["心内科", "内分泌科", "心内科", "骨科", "心内科"],
        "icd10": ["I50.0", "E11.9", "I50.0", "S72.0", "I10"],
        "age": [70, 44, 70, 81, 69],
        "systolic_bp": pd.array([130, None, 140, 120, 150], dtype="Int64"),
        "heart_rate": pd.array([80, 90, None, 70, 75], dtype="Int64"),
        "readmit_30d": [1, 0, 0, 0, 1],
    }
)
LABS = pd.DataFrame(
    {
        "lab_id": ["L00000001", "L00000002", "L00000003", "L00000004", "L00000005"],
        "visit_id": ["V0000001", "V0000001", "V0000001", "V0000002", "V0000003"],
        "test": ["GLU", "GLU", "CREA", "NA", "GLU"],
        "value": [9.0, 7.5, 120.0, 140.0, 5.5],
        "unit": ["mmol/L", "mmol/L", "µmol/L", "mmol/L", "mmol/L"],
        "taken_date": [
            "2024-01-03",
            "2024-01-01",
            "2024-01-02",
            "2024-01-03",
            "2024-01-20",
        ],
    }
)


@pytest.fixture(scope="module")
def readmission() -> ClinicalData:
    return intelligence.answer_key_readmission()


@pytest.fixture(scope="module")
def split(readmission: ClinicalData) -> tuple[ClinicalData, ClinicalData]:
    return intelligence.split_by_patient(readmission)


@pytest.fixture(scope="module")
def logistic(split) -> intelligence.ClinicalModel:
    return intelligence.fit_model(split[0], "logistic")


# visit_features and the loaders


def test_visit_features_hand_made_hospital() -> None:
    features = intelligence.visit_features(
        {"patients": PATIENTS, "visits": VISITS, "labs": LABS}
    )

    assert features["visit_id"].tolist() == VISITS["visit_id"].tolist()
    assert features["length_of_stay"].tolist() == [4, 1, 10, 2, 1]
    assert features["prior_visits"].tolist() == [1, 0, 2, 0, 0]
    assert features["sex"].tolist()[:3] == ["F", "M", "F"]
    assert pd.isna(features.loc[3, "sex"])
    assert features["age_band"].tolist() == ["65-79", "18-44", "65-79", "80+", "65-79"]
    # The earliest glucose of the first stay is 7.5, taken before the 9.0.
    assert features.loc[0, "glucose"] == 7.5
    assert pd.isna(features.loc[1, "glucose"])
    assert features.loc[2, "glucose"] == 5.5
    assert features.loc[0, "creatinine"] == 120.0
    assert features.loc[1, "sodium"] == 140.0
    assert features[["glucose", "creatinine", "sodium"]].iloc[3].isna().all()
    assert features["readmit_30d"].tolist() == [1, 0, 0, 0, 1]


def test_visit_features_missing_column_raises() -> None:
    visits = VISITS.drop(columns="discharge_date")

    with pytest.raises(ModelInputError, match="no column 'discharge_date'"):
        intelligence.visit_features(
            {"patients": PATIENTS, "visits": visits, "labs": LABS}
        )


def test_age_band_bounds() -> None:
    bands = intelligence.age_band(pd.Series([17, 18, 44, 45, 64, 65, 79, 80, None]))

    assert bands.tolist()[1:8] == [
        "18-44",
        "18-44",
        "45-64",
        "45-64",
        "65-79",
        "65-79",
        "80+",
    ]
    assert pd.isna(bands.iloc[0])
    assert pd.isna(bands.iloc[8])


def test_answer_key_readmission_shape(readmission: ClinicalData) -> None:
    assert len(readmission) == 6113
    assert readmission.frame["patient_id"].nunique() == 2000
    assert int(readmission.y.sum()) == 1070
    assert readmission.group == "patient_id"
    assert readmission.features == [*intelligence.NUMERIC, *intelligence.CATEGORICAL]
    assert readmission.subgroups == ("sex", "age_band")


def test_answer_key_features_follow_documented_model(
    readmission: ClinicalData,
) -> None:
    # datasets/README.md: log-odds change 0.35 per 10 years of age, 0.12 per day
    # of stay and 0.3 per earlier stay (up to 5). Refitting that model on the
    # features recovers each within 0.05 only if the features are built as
    # documented.
    frame = readmission.frame
    inputs = pd.DataFrame(
        {
            "age": (frame["age"].astype(float) - 65) / 10,
            "stay": frame["length_of_stay"] - 5,
            "glucose": frame["glucose"] - 6,
            "prior": np.minimum(frame["prior_visits"], 5),
        }
    )
    diagnoses = pd.get_dummies(frame["icd10"]).drop(columns="G40.9").astype(float)
    inputs = pd.concat([inputs, diagnoses], axis=1)
    fitted = LogisticRegression(C=1e6, max_iter=5000).fit(inputs, readmission.y)
    coefficients = dict(zip(inputs.columns, fitted.coef_[0], strict=True))

    assert coefficients["age"] == pytest.approx(0.35, abs=0.05)
    assert coefficients["stay"] == pytest.approx(0.12, abs=0.05)
    assert coefficients["prior"] == pytest.approx(0.30, abs=0.05)


def test_load_readmission_equals_answer_key(
    tmp_path: Path, readmission: ClinicalData
) -> None:
    url = f"sqlite:///{tmp_path / 'medkit.db'}"
    digitize.digitize_hospital(url=url, progress=False)

    from_database = intelligence.load_readmission(url)

    pd.testing.assert_frame_equal(from_database.frame, readmission.frame)


def test_load_breast_cancer_outcome_is_malignant() -> None:
    data = intelligence.load_breast_cancer()

    assert len(data) == 569
    assert int(data.y.sum()) == 212
    assert len(data.numeric) == 30
    assert data.group is None


def test_load_diabetes_cutoff() -> None:
    data = intelligence.load_diabetes()

    assert len(data) == 442
    assert int(data.y.sum()) == 121
    assert data.categorical == ("sex",)
    assert set(data.frame["sex"]) == {"1", "2"}
    assert int(intelligence.load_diabetes(cutoff=140.5).y.sum()) == 221


def test_clinical_data_infers_features() -> None:
    frame = pd.DataFrame(
        {
            "visit_id": ["V1", "V2", "V3", "V4"],
            "age": [70, 55, 81, 64],
            "sex": ["F", "M", "F", "M"],
            "admitted": pd.to_datetime(["2024-01-01"] * 4),
            "empty": [None] * 4,
            "died": [1, 0, 1, 0],
        }
    )

    data = clinical_data(frame, "died")

    assert data.numeric == ("age",)
    assert data.categorical == ("sex",)


def test_clinical_data_model_input_dtypes(readmission: ClinicalData) -> None:
    inputs = readmission.X

    assert list(inputs.columns) == readmission.features
    assert (inputs[list(intelligence.NUMERIC)].dtypes == "float64").all()
    assert all(inputs[column].dtype == object for column in intelligence.CATEGORICAL)
    assert inputs["systolic_bp"].isna().sum() == 192
    assert inputs["sex"].isna().sum() == 101


# Splits


def test_split_by_patient_sizes(split) -> None:
    train, test = split

    assert (len(train), len(test)) == (4582, 1531)
    assert (int(train.y.sum()), int(test.y.sum())) == (801, 269)
    assert train.frame["patient_id"].nunique() == 1502
    assert test.frame["patient_id"].nunique() == 498


def test_split_by_patient_no_shared_patient(split, readmission) -> None:
    train, test = split

    assert intelligence.shared_patients(train, test) == []
    visits = set(train.frame["visit_id"]) | set(test.frame["visit_id"])
    assert visits == set(readmission.frame["visit_id"])


def test_split_by_patient_stratified(split, readmission) -> None:
    rate = readmission.y.mean()

    for part in split:
        assert part.y.mean() == pytest.approx(rate, abs=0.01)


def test_split_by_patient_seed_repeats(readmission, split) -> None:
    again, _ = intelligence.split_by_patient(readmission)
    other, _ = intelligence.split_by_patient(readmission, seed=7)

    assert again.frame["visit_id"].tolist() == split[0].frame["visit_id"].tolist()
    assert set(other.frame["visit_id"]) != set(split[0].frame["visit_id"])


def test_split_by_patient_without_group_exact_size() -> None:
    train, test = intelligence.split_by_patient(intelligence.load_breast_cancer())

    assert (len(train), len(test)) == (426, 143)
    assert int(test.y.sum()) == 53


@pytest.mark.parametrize(
    "test_size", [0, -0.1, 0.6, 1.0], ids=["zero", "negative", "above_half", "one"]
)
def test_split_by_patient_bad_size_raises(readmission, test_size: float) -> None:
    with pytest.raises(ModelSettingError, match="test_size must be a share") as info:
        intelligence.split_by_patient(readmission, test_size)

    assert info.value.name == "test_size"
    assert info.value.value == test_size
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("test_size", "test_rows"),
    [(0.1, 612), (0.25, 1531), (0.3, 1831), (0.4, 2446), (0.5, 3057)],
    ids=["tenth", "quarter", "three_tenths", "two_fifths", "half"],
)
def test_split_by_patient_share_near_request(
    readmission, test_size: float, test_rows: int
) -> None:
    train, test = intelligence.split_by_patient(readmission, test_size)

    assert len(test) == test_rows
    assert len(train) + len(test) == 6113
    assert abs(len(test) / 6113 - test_size) < 0.005
    assert intelligence.shared_patients(train, test) == []


@pytest.mark.parametrize(
    ("test_size", "fraction"),
    [(0.25, (1, 4)), (0.4, (2, 5)), (0.33, (1, 3)), (0.45, (9, 20)), (0.5, (1, 2))],
    ids=["quarter", "two_fifths", "third", "nine_twentieths", "half"],
)
def test_fold_fraction_nearest(test_size: float, fraction: tuple[int, int]) -> None:
    from medkit._models import _fold_fraction

    assert _fold_fraction(test_size, 20) == fraction


def test_split_by_patient_few_patients_warns(caplog) -> None:
    # Three patients of 1, 1 and 4 rows cannot give a test share near 0.4.
    frame = pd.DataFrame(
        {
            "patient_id": ["a", "b", "c", "c", "c", "c"],
            "age": [30.0, 40.0, 50.0, 60.0, 70.0, 80.0],
            "event": [0, 1, 0, 1, 0, 1],
        }
    )
    data = intelligence.clinical_data(
        frame, "event", numeric=["age"], group="patient_id"
    )

    with caplog.at_level("WARNING", logger="medkit._models"):
        train, test = intelligence.split_by_patient(data, 0.4)

    assert len(train) + len(test) == 6
    assert abs(len(test) / 6 - 0.4) > 0.05
    assert "not the requested 0.4" in caplog.text


def test_patient_folds_disjoint_patients(readmission: ClinicalData) -> None:
    folds = intelligence.patient_folds(readmission)
    patients = readmission.frame["patient_id"].to_numpy()

    assert [len(test) for _, test in folds] == [1226, 1220, 1223, 1222, 1222]
    assert [int(readmission.y[test].sum()) for _, test in folds] == [
        216,
        213,
        214,
        213,
        214,
    ]
    for train, test in folds:
        assert not set(patients[train]) & set(patients[test])
    every_test_row = np.sort(np.concatenate([test for _, test in folds]))
    assert every_test_row.tolist() == list(range(len(readmission)))


def test_shared_patients_row_split_leaks(readmission: ClinicalData) -> None:
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(len(readmission))
    train, test = readmission.take(shuffled[:4500]), readmission.take(shuffled[4500:])

    shared = intelligence.shared_patients(train, test)

    assert len(shared) > 500
    assert intelligence.shared_patients(["a", "b"], ["b", "c"]) == ["b"]


# Pipelines and models


def test_make_pipeline_steps() -> None:
    pipeline = intelligence.make_pipeline("forest", ["age"], ["sex"], max_depth=4)

    preprocess, model = pipeline["preprocess"], pipeline["model"]
    steps = {name: step for name, step, _ in preprocess.transformers}
    numeric, categorical = steps["numeric"], steps["categorical"]
    assert [name for name, _ in numeric.steps] == ["impute", "scale"]
    encoder = categorical["one_hot"]
    assert isinstance(encoder, OneHotEncoder)
    assert encoder.handle_unknown == "ignore"
    assert model.max_depth == 4
    assert model.random_state == 2026


def test_make_pipeline_unknown_model_raises() -> None:
    with pytest.raises(ModelSettingError, match="Unknown model 'svm'"):
        intelligence.make_pipeline("svm", ["age"])


def test_fit_model_preprocessing_training_only(split, logistic) -> None:
    train, _ = split
    numeric = logistic.pipeline["preprocess"].named_transformers_["numeric"]
    training_inputs = train.X[list(intelligence.NUMERIC)]

    medians = training_inputs.median().to_numpy()
    imputed = training_inputs.fillna(training_inputs.median())
    np.testing.assert_allclose(numeric["impute"].statistics_, medians)
    np.testing.assert_allclose(numeric["scale"].mean_, imputed.mean().to_numpy())


def test_fit_model_records_training(split, logistic) -> None:
    assert logistic.training["rows"] == 4582
    assert logistic.training["events"] == 801
    assert logistic.training["patients"] == 1502
    assert logistic.reference["age"] == float(split[0].frame["age"].median())
    assert logistic.reference["department"] == "心内科"
    assert "I50.0" in logistic.categories["icd10"]


@pytest.mark.parametrize("model", ["logistic", "forest", "boosting"])
def test_fit_model_beats_majority_baseline(split, model: str) -> None:
    train, test = split

    fitted = intelligence.fit_model(train, model, max_depth=4, n_estimators=30)

    assert auroc(test.y, fitted.predict_proba(test)) > 0.74


def test_fit_model_majority_predicts_base_rate(split) -> None:
    train, test = split

    fitted = intelligence.fit_model(train, "majority")

    proba = fitted.predict_proba(test)
    assert np.allclose(proba, 801 / 4582)
    assert fitted.predict(test).sum() == 0


def test_predict_threshold(split, logistic) -> None:
    _, test = split
    proba = logistic.predict_proba(test)

    flagged = logistic.predict(test, threshold=0.2)

    assert flagged.tolist() == (proba >= 0.2).astype(int).tolist()


def test_compare_models_lists_baseline_first(split) -> None:
    train, test = split

    table = intelligence.compare_models(train, test, ["logistic"])

    assert table.index.tolist() == ["majority", "logistic"]
    assert table.loc["majority", "auroc"] == 0.5
    assert table.loc["majority", "accuracy"] == pytest.approx(1 - 269 / 1531)
    assert table.loc["majority", "sensitivity"] == 0.0
    assert table.loc["logistic", "auroc"] > 0.75


def test_cross_validate_model_folds(readmission: ClinicalData) -> None:
    scores = intelligence.cross_validate_model(readmission, "logistic")

    assert scores.index.tolist() == [1, 2, 3, 4, 5]
    assert scores["test_rows"].tolist() == [1226, 1220, 1223, 1222, 1222]
    assert (scores["train_rows"] + scores["test_rows"] == 6113).all()
    assert scores["auroc"].between(0.75, 0.85).all()
    assert scores["brier"].between(0.10, 0.14).all()


def test_out_of_fold_proba_every_row(readmission: ClinicalData) -> None:
    proba = intelligence.out_of_fold_proba(readmission)

    assert proba.shape == (6113,)
    assert auroc(readmission.y, proba) > 0.75


# Metrics


def test_confusion_at_hand_counts() -> None:
    counts = confusion_at(Y, P, 0.5)

    assert counts == ConfusionCounts(tp=2, fp=2, tn=4, fn=2)
    assert counts.sensitivity == 0.5
    assert counts.specificity == pytest.approx(4 / 6)
    assert counts.ppv == 0.5
    assert counts.npv == pytest.approx(4 / 6)
    assert counts.accuracy == 0.6
    assert counts.balanced_accuracy == pytest.approx((0.5 + 4 / 6) / 2)
    assert counts.to_frame().to_numpy().tolist() == [[4, 2], [2, 2]]


def test_confusion_at_threshold_is_inclusive() -> None:
    counts = confusion_at([1, 0], [0.5, 0.5], 0.5)

    assert (counts.tp, counts.fp) == (1, 1)


def test_confusion_counts_zero_denominator_nan() -> None:
    counts = ConfusionCounts(tp=0, fp=0, tn=5, fn=3)

    assert math.isnan(counts.ppv)
    assert counts.sensitivity == 0.0
    assert counts.npv == 5 / 8


def test_auroc_hand_pairs() -> None:
    # 19 of the 24 pairs of an event and a non-event are ordered correctly.
    assert auroc(Y, P) == pytest.approx(19 / 24)
    # A tie counts one half: (0.5 + 1 + 1 + 1) / 4.
    assert auroc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.8]) == 0.875


@pytest.mark.parametrize(
    ("y_true", "only"), [([1, 1], 1), ([0, 0, 0], 0)], ids=["all_events", "none"]
)
def test_auroc_one_class_raises(y_true: list[int], only: int) -> None:
    proba = [0.2] * len(y_true)

    with pytest.raises(OutcomeError, match=f"in all\\) has outcome {only}") as info:
        auroc(y_true, proba)

    assert info.value.value == only


def test_clinical_metrics_one_class_auroc_nan() -> None:
    assert math.isnan(clinical_metrics([1, 1], [0.2, 0.3])["auroc"])


def test_brier_score_hand_sum() -> None:
    assert brier_score(Y, P) == pytest.approx(2.0125 / 10)


def test_clinical_metrics_values() -> None:
    metrics = clinical_metrics(Y, P, 0.5)

    assert metrics["rows"] == 10
    assert metrics["events"] == 4
    assert metrics["auroc"] == pytest.approx(19 / 24)
    assert metrics["sensitivity"] == 0.5
    assert metrics["ppv"] == 0.5
    assert (metrics["tp"], metrics["fp"], metrics["tn"], metrics["fn"]) == (2, 2, 4, 2)


def test_clinical_metrics_bad_inputs_raise() -> None:
    with pytest.raises(ModelInputError, match="same length"):
        clinical_metrics([0, 1], [0.5])
    with pytest.raises(ModelInputError, match="must be 0 or 1"):
        clinical_metrics([0, 2], [0.5, 0.4])
    with pytest.raises(ModelInputError, match="finite"):
        clinical_metrics([0, 1], [0.5, np.nan])


@pytest.mark.parametrize(
    ("target", "expected"),
    [(0.5, 0.8), (0.75, 0.4), (0.76, 0.2), (1.0, 0.2), (0.01, 0.9)],
    ids=["half", "three_quarters", "just_above", "all", "tiny"],
)
def test_threshold_for_sensitivity_hand(target: float, expected: float) -> None:
    threshold = threshold_for_sensitivity(Y, P, target)

    assert threshold == expected
    assert confusion_at(Y, P, threshold).sensitivity >= target


def test_threshold_for_sensitivity_highest(split, logistic) -> None:
    _, test = split
    proba = logistic.predict_proba(test)

    threshold = threshold_for_sensitivity(test.y, proba, 0.8)

    assert confusion_at(test.y, proba, threshold).sensitivity >= 0.8
    above = np.nextafter(threshold, 1)
    assert confusion_at(test.y, proba, above).sensitivity < 0.8


@pytest.mark.parametrize(
    "target", [0, -0.5, 1.2], ids=["zero", "negative", "above_one"]
)
def test_threshold_for_sensitivity_bad_target_raises(target: float) -> None:
    with pytest.raises(ModelSettingError, match="target must be a sensitivity") as info:
        threshold_for_sensitivity(Y, P, target)

    assert info.value.name == "target"
    assert info.value.value == target
    assert f"got {target!r}" in str(info.value)


def test_threshold_for_sensitivity_no_events_raises() -> None:
    with pytest.raises(OutcomeError, match="None of the 2 rows has the event"):
        threshold_for_sensitivity([0, 0], [0.1, 0.2], 0.5)


def test_auroc_ci_matches_weighted_loop() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60)
    scores = np.round(rng.random(60) + 0.3 * y, 2)
    groups = np.repeat(np.arange(20), 3)

    interval = auroc_ci(y, scores, groups=groups, n_boot=50, seed=11)

    # The same draws, scored one replicate at a time by scikit-learn.
    replay = np.random.default_rng(11)
    drawn = replay.multinomial(20, np.full(20, 1 / 20), size=50)
    replicates = [
        roc_auc_score(y, scores, sample_weight=counts[groups]) for counts in drawn
    ]
    low, high = np.quantile(replicates, [0.025, 0.975])
    assert interval.estimate == pytest.approx(roc_auc_score(y, scores))
    assert interval.low == pytest.approx(low)
    assert interval.high == pytest.approx(high)
    assert interval.n_boot == 50


def test_auroc_ci_contains_estimate(split, logistic) -> None:
    _, test = split

    interval = auroc_ci(test.y, logistic.predict_proba(test), groups=test.groups)

    assert interval.low < interval.estimate < interval.high
    assert interval.high - interval.low < 0.1


def test_calibration_table_uniform_bins() -> None:
    table = calibration_table(
        [0, 0, 1, 1], [0.1, 0.15, 0.8, 0.9], 2, strategy="uniform"
    )

    assert table["rows"].tolist() == [2, 2]
    assert table["mean_predicted"].tolist() == pytest.approx([0.125, 0.85])
    assert table["observed_rate"].tolist() == [0.0, 1.0]
    assert table["low"].tolist() == [0.0, 0.5]


def test_calibration_table_quantile_rows(split, logistic) -> None:
    _, test = split

    table = calibration_table(test.y, logistic.predict_proba(test))

    assert len(table) == 10
    assert table["rows"].sum() == 1531
    assert table["rows"].between(152, 155).all()


def test_subgroup_metrics_hand_levels() -> None:
    sex = pd.Series(["F", "F", "M", "M", "F", "F", "M", "M", None, "F"], name="sex")

    table = subgroup_metrics(Y, P, sex, 0.5)

    assert table.index.tolist() == [("sex", "F"), ("sex", "M"), ("sex", "missing")]
    # F: events 0.9, 0.8 (both flagged); non-events 0.7 (flagged), 0.3, 0.6 (flagged).
    assert table.loc[("sex", "F"), "rows"] == 5
    assert table.loc[("sex", "F"), "sensitivity"] == 1.0
    assert table.loc[("sex", "F"), "specificity"] == pytest.approx(1 / 3)
    assert table.loc[("sex", "M"), "sensitivity"] == 0.0
    assert math.isnan(table.loc[("sex", "missing"), "auroc"])


def test_evaluate_on_held_out(split, logistic) -> None:
    _, test = split

    evaluation = intelligence.evaluate(logistic, test, threshold=0.2, n_boot=200)

    assert evaluation.threshold == 0.2
    assert evaluation.metrics["rows"] == 1531
    counts = evaluation.confusion
    assert counts.tp + counts.fn == 269
    assert evaluation.metrics["sensitivity"] == counts.sensitivity
    assert evaluation.auroc.estimate == evaluation.metrics["auroc"]
    assert set(evaluation.subgroups.index.get_level_values(0)) == {"sex", "age_band"}
    assert evaluation.subgroups.loc["age_band", "rows"].sum() == 1531
    assert evaluation.summary().loc["auroc", "low"] == evaluation.auroc.low


def test_plots_return_figures(split, logistic) -> None:
    _, test = split
    proba = logistic.predict_proba(test)

    roc = intelligence.plot_roc(test.y, proba, threshold=0.2)
    calibration = intelligence.plot_calibration(test.y, proba)
    matrix = intelligence.plot_confusion(confusion_at(test.y, proba, 0.2))

    assert roc.axes[0].get_title() == "ROC curve"
    assert len(roc.axes[0].lines) == 3
    assert calibration.axes[0].get_xlabel() == "mean predicted risk"
    texts = [text.get_text() for text in matrix.axes[0].texts]
    counts = confusion_at(test.y, proba, 0.2)
    assert texts == [
        f"TN\n{counts.tn}",
        f"FP\n{counts.fp}",
        f"FN\n{counts.fn}",
        f"TP\n{counts.tp}",
    ]


# Explanations


def test_permutation_importances_rank(split, logistic) -> None:
    _, test = split

    table = intelligence.permutation_importances(logistic, test, n_repeats=3)

    assert sorted(table.index) == sorted(logistic.features)
    # The documented model's strongest terms: age, diagnosis, stay, earlier stays.
    top = {"age", "icd10", "length_of_stay", "prior_visits"}
    assert set(table.index[:4]) == top
    assert (table.loc[list(top), "importance"] > 0.02).all()
    assert table.loc["sodium", "importance"] < 0.005


def test_explain_prediction_changes(split, logistic) -> None:
    _, test = split
    row = test.frame.iloc[0]

    explanation = intelligence.explain_prediction(logistic, row)

    patient = row.to_frame().T
    assert explanation.probability == pytest.approx(
        logistic.predict_proba(patient.infer_objects())[0]
    )
    typical_age = patient.copy()
    typical_age["age"] = logistic.reference["age"]
    expected = (
        explanation.probability - logistic.predict_proba(typical_age.infer_objects())[0]
    )
    assert explanation.contributions.loc["age", "change"] == pytest.approx(expected)
    assert explanation.contributions.loc["sex", "typical"] == "F"


def test_explain_prediction_text(split, logistic) -> None:
    _, test = split
    proba = logistic.predict_proba(test)
    row = test.frame.iloc[int(proba.argmax())]

    text = str(intelligence.explain_prediction(logistic, row))

    assert text.startswith(
        f"Predicted risk of readmission within 30 days: {proba.max():.0%}"
    )
    assert "Values that raise the risk most:" in text
    assert "percentage points" in text


def test_explain_prediction_lowest_risk_visit(split, logistic) -> None:
    # Lesson 02, Exercise 3: creatinine is measured and sodium is missing.
    _, test = split
    lowest = test.frame.iloc[int(logistic.predict_proba(test).argmin())]

    table = intelligence.explain_prediction(logistic, lowest).contributions

    assert lowest["visit_id"] == "V0001612"
    assert lowest["creatinine"] == 110.0
    assert math.isnan(lowest["sodium"])
    assert table.loc["sodium", "change"] == 0.0
    assert table.loc["sodium", "typical"] == 139.0
    assert table.index[:2].tolist() == ["age", "icd10"]


def test_explain_prediction_two_rows_raises(split, logistic) -> None:
    _, test = split

    with pytest.raises(ModelInputError, match="one row at a time, but got 2 rows"):
        intelligence.explain_prediction(logistic, test.frame.iloc[:2])


# Model files and cards


@pytest.mark.parametrize("model", ["majority", "logistic", "forest", "boosting"])
def test_save_load_same_predictions(tmp_path: Path, split, model: str) -> None:
    train, test = split
    fitted = intelligence.fit_model(train, model, max_depth=3, n_estimators=10)
    fitted.threshold = 0.25
    path = tmp_path / "model.skops"

    digest = intelligence.save_model(fitted, path)
    loaded = intelligence.load_model(path, sha256=digest)

    assert digest == intelligence.file_sha256(path)
    assert loaded.threshold == 0.25
    assert loaded.kind == model
    assert loaded.categories == fitted.categories
    np.testing.assert_array_equal(
        loaded.predict_proba(test), fitted.predict_proba(test)
    )


def test_save_model_file_has_no_pickle(tmp_path: Path, logistic) -> None:
    import zipfile

    path = tmp_path / "model.skops"
    intelligence.save_model(logistic, path)

    names = zipfile.ZipFile(path).namelist()
    assert "schema.json" in names
    assert all(name == "schema.json" or name.endswith(".npy") for name in names)


def test_model_card_sections(split, logistic) -> None:
    _, test = split
    evaluation = intelligence.evaluate(logistic, test, n_boot=100)

    card = intelligence.model_card(logistic, evaluation, sha256="ab" * 32)

    for heading in [
        "# Model card: readmission within 30 days (logistic regression)",
        "## Intended use",
        "## Data",
        "## Performance on held-out rows",
        "### Calibration",
        "### Subgroups",
        "## Limits",
        "## File",
    ]:
        assert heading in card
    assert f"| AUROC | {evaluation.auroc.estimate:.3f} (95% CI" in card
    assert "| sex | missing | 17 | 2 |" in card
    assert "Subgroup sex = missing has fewer than 10 events" in card
    assert "Training: 4582 rows, 801 with the event, 1502 patients." in card


def test_model_card_lists_low_sensitivity_subgroups(split, logistic) -> None:
    from dataclasses import replace

    _, test = split
    threshold = threshold_for_sensitivity(test.y, logistic.predict_proba(test), 0.8)
    evaluation = intelligence.evaluate(
        replace(logistic, threshold=threshold), test, n_boot=10
    )
    sensitivity = evaluation.subgroups["sensitivity"]
    assert evaluation.metrics["sensitivity"] == pytest.approx(216 / 269)
    assert sensitivity[("age_band", "18-44")] == pytest.approx(1 / 13)

    card = intelligence.model_card(logistic, evaluation)
    limits = card.split("## Limits")[1]

    assert (
        f"- Subgroup age_band = 18-44 has sensitivity 0.077 (1 of 13 events "
        f"flagged), against 0.803 overall at threshold {threshold:.3f}" in limits
    )
    # 45-64 (0.705) is within 0.2 of 0.803, and the others are above it.
    assert limits.count("has sensitivity") == 1


def test_model_card_low_sensitivity_computed(split, logistic) -> None:
    from dataclasses import replace

    _, test = split
    threshold = threshold_for_sensitivity(test.y, logistic.predict_proba(test), 0.8)
    evaluation = intelligence.evaluate(
        replace(logistic, threshold=threshold), test, n_boot=10
    )
    subgroups = evaluation.subgroups.copy()
    # Overall sensitivity is 0.803: 0.5 is 0.303 below it, 0.7 only 0.103.
    subgroups.loc[("sex", "M"), "sensitivity"] = 0.5
    subgroups.loc[("sex", "F"), "sensitivity"] = 0.7

    card = intelligence.model_card(logistic, replace(evaluation, subgroups=subgroups))

    assert (
        "Subgroup sex = M has sensitivity 0.500 (66 of 133 events flagged), "
        "against 0.803 overall" in card
    )
    assert "Subgroup sex = F has sensitivity" not in card
    assert "Subgroup age_band = 18-44 has sensitivity 0.077" in card


def test_model_card_without_evaluation(logistic) -> None:
    card = intelligence.model_card(logistic, intended_use="Teaching only.")

    assert "Not evaluated on held-out rows." in card
    assert "Teaching only." in card
    assert "## File" not in card


def test_train_readmission_model_writes_files(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'medkit.db'}"
    digitize.digitize_hospital(url=url, progress=False)

    report = intelligence.train_readmission_model(
        url, tmp_path / "models", n_boot=100, progress=False
    )

    assert report.model_path == tmp_path / "models" / "readmission.skops"
    assert report.sha256 in report.card_path.read_text(encoding="utf-8")
    loaded = intelligence.load_model(report.model_path, sha256=report.sha256)
    assert loaded.threshold == report.model.threshold
    # The threshold comes from training rows, so the test sensitivity is near 0.8.
    assert report.evaluation.metrics["sensitivity"] == pytest.approx(0.8, abs=0.06)


# Bad inputs: each raises a MedkitError subclass whose message gives the fix


def small_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": ["p1", "p1", "p2", "p3", "p4", "p5"],
            "age": [70.0, 71.0, 55.0, 81.0, 64.0, 40.0],
            "sex": ["F", "F", "M", "F", "M", None],
            "readmit_30d": [1, 0, 0, 1, 0, 0],
        }
    )


def test_bad_outcome_one_class_raises(readmission: ClinicalData) -> None:
    frame = readmission.frame.assign(readmit_30d=0)
    data = intelligence.readmission_data(frame)

    with pytest.raises(OutcomeError, match=r"only one class \(0\)") as caught:
        intelligence.fit_model(data)
    assert caught.value.column == "readmit_30d"
    with pytest.raises(OutcomeError, match="only one class"):
        intelligence.split_by_patient(data)


def test_bad_outcome_missing_values_raises() -> None:
    frame = small_frame()
    frame["readmit_30d"] = pd.array([1, None, 0, 1, None, 0], dtype="Int64")

    with pytest.raises(OutcomeError, match=r"missing in 2 rows \(positions 1, 4\)"):
        clinical_data(frame, "readmit_30d", group="patient_id")


def test_bad_outcome_not_binary_raises() -> None:
    frame = small_frame().assign(readmit_30d=["yes", "no", "no", "yes", "no", "no"])

    with pytest.raises(OutcomeError, match="such as 'yes', in 6 rows") as caught:
        clinical_data(frame, "readmit_30d")
    assert caught.value.rows == [0, 1, 2, 3, 4, 5]
    assert caught.value.value == "yes"


def test_bad_outcome_column_absent_raises() -> None:
    with pytest.raises(OutcomeError, match="Outcome column 'died' not found"):
        clinical_data(small_frame(), "died")


def test_bad_features_none_usable_raises() -> None:
    frame = small_frame()[["patient_id", "readmit_30d"]].assign(
        note=["a", "b", "c", "d", "e", "f"], empty=np.nan
    )

    with pytest.raises(NoFeaturesError, match="No usable feature"):
        clinical_data(frame, "readmit_30d", group="patient_id")


def test_bad_features_all_empty_raises() -> None:
    frame = small_frame().assign(age=np.nan, sex=None)

    with pytest.raises(NoFeaturesError, match="Every feature column"):
        clinical_data(frame, "readmit_30d", numeric=["age"], categorical=["sex"])


def test_bad_features_empty_list_raises() -> None:
    with pytest.raises(NoFeaturesError, match="No feature columns are listed"):
        ClinicalData(small_frame(), "readmit_30d")


def test_bad_features_text_as_numeric_raises() -> None:
    frame = small_frame().assign(age=["70", "71", "55", "81", "64", "40"])

    with pytest.raises(ModelInputError, match="every value reads as a number"):
        clinical_data(frame, "readmit_30d", numeric=["age"])


def test_bad_features_text_value_named() -> None:
    frame = small_frame().assign(age=[70, 71, "unknown", 81, "n/a", 40])

    with pytest.raises(ModelInputError) as caught:
        clinical_data(frame, "readmit_30d", numeric=["age"])

    message = str(caught.value)
    assert message.startswith(
        "Numeric feature 'age' has 'unknown', which is not a number, at position 2, "
        "and non-numbers in 2 rows (positions 2, 4)."
    )
    assert caught.value.value == "unknown"
    assert caught.value.rows == [2, 4]


@pytest.mark.parametrize(
    "value", [np.inf, -np.inf], ids=["positive_infinity", "negative_infinity"]
)
def test_bad_features_infinite_raises(value: float) -> None:
    frame = small_frame()
    frame.loc[2, "age"] = value

    with pytest.raises(
        NonFiniteValueError, match=r"infinite values in 1 row \(position 2\)\. "
    ) as caught:
        clinical_data(frame, "readmit_30d", numeric=["age"])
    assert caught.value.column == "age"
    assert caught.value.rows == [2]


def test_bad_predict_infinite_raises(split, logistic) -> None:
    _, test = split
    frame = test.frame.copy()
    frame.loc[5, "glucose"] = np.inf

    with pytest.raises(NonFiniteValueError, match="'glucose' has infinite values"):
        logistic.predict_proba(frame)


def test_bad_predict_missing_columns_raises(split, logistic) -> None:
    _, test = split
    frame = test.frame.drop(columns=["glucose", "icd10"])

    with pytest.raises(
        FeatureMismatchError, match="^Columns 'glucose', 'icd10' are missing"
    ):
        logistic.predict_proba(frame)


def test_bad_predict_one_missing_column_raises(split, logistic) -> None:
    _, test = split
    frame = test.frame.drop(columns=["glucose"])

    with pytest.raises(FeatureMismatchError, match="^Column 'glucose' is missing, "):
        logistic.predict_proba(frame)


def test_bad_features_one_absent_column_raises() -> None:
    with pytest.raises(FeatureMismatchError, match="^Feature column 'glucose' not"):
        clinical_data(small_frame(), "readmit_30d", numeric=["glucose"])


def test_bad_predict_extra_columns_ignored(split, logistic) -> None:
    _, test = split
    frame = test.frame.assign(note="free text")

    proba = logistic.predict_proba(frame)

    np.testing.assert_array_equal(proba, logistic.predict_proba(test))


def test_bad_predict_text_column_raises(split, logistic) -> None:
    _, test = split
    frame = test.frame.assign(age=test.frame["age"].astype(str))

    with pytest.raises(ModelInputError, match="Numeric feature 'age'"):
        logistic.predict_proba(frame)


def test_bad_predict_unknown_category_warns(split, logistic) -> None:
    _, test = split
    frame = test.frame.head(4).copy()
    frame.loc[[1, 3], "icd10"] = "Z99.9"
    frame.loc[2, "department"] = "儿科"

    with pytest.warns(UnknownCategoryWarning) as caught:
        proba = logistic.predict_proba(frame)

    messages = [str(warning.message) for warning in caught]
    assert any("'icd10'" in m and "'Z99.9'" in m and "2 rows" in m for m in messages)
    assert any("'department'" in m and "'儿科'" in m for m in messages)
    assert proba.shape == (4,)
    assert np.isfinite(proba).all()


def test_bad_model_file_random_bytes_raises(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    path.write_bytes(b"not a zip file at all")

    with pytest.raises(ModelFileError, match="is not a skops file") as caught:
        intelligence.load_model(path)
    assert caught.value.path == path


def test_bad_model_file_absent_raises(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"absent.skops not found\. Check"):
        intelligence.load_model(tmp_path / "absent.skops")


def test_bad_model_file_plain_estimator_raises(tmp_path: Path) -> None:
    import skops.io as sio

    path = tmp_path / "model.skops"
    sio.dump(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), path)

    with pytest.raises(ModelFileError, match="not a medkit model"):
        intelligence.load_model(path)


def test_bad_model_file_untrusted_type_raises(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.neighbors import KNeighborsClassifier

    neighbours = KNeighborsClassifier(algorithm="kd_tree").fit([[0.0], [1.0]], [0, 1])
    path = tmp_path / "model.skops"
    sio.dump({"format": "medkit-clinical-model", "pipeline": neighbours}, path)

    with pytest.raises(ModelFileError, match="KDTree"):
        intelligence.load_model(path)


def rewrite_member(path: Path, change) -> None:
    """Rewrite a skops file with ``change(name, data) -> data`` applied to members."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, change(name, data))


def coefficient_file(path: Path) -> str:
    """Return the member of a saved logistic model that holds ``coef_``."""
    import json
    import zipfile

    schema = json.loads(zipfile.ZipFile(path).read("schema.json"))
    found = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "coef_" in node and isinstance(node["coef_"], dict):
                found.append(node["coef_"]["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return found[0]


def test_bad_model_file_changed_coefficients_raises(tmp_path: Path, logistic) -> None:
    import io

    path = tmp_path / "model.skops"
    intelligence.save_model(logistic, path)
    target = coefficient_file(path)

    def add_half(name: str, data: bytes) -> bytes:
        if name != target:
            return data
        buffer = io.BytesIO()
        np.save(buffer, np.load(io.BytesIO(data)) + 0.5)
        return buffer.getvalue()

    rewrite_member(path, add_half)

    with pytest.raises(ModelFileError, match="predicts its check rows differently"):
        intelligence.load_model(path)


def test_bad_model_file_changed_one_coefficient_raises(
    tmp_path: Path, logistic
) -> None:
    import io

    path = tmp_path / "model.skops"
    intelligence.save_model(logistic, path)
    target = coefficient_file(path)
    original = np.load(io.BytesIO(zipfile_member(path, target)))
    assert original.shape == (1, 31)

    # Each coefficient, one per scaled or one-hot column, changed on its own.
    for index in range(original.shape[1]):
        copy = tmp_path / f"model_{index}.skops"
        copy.write_bytes(path.read_bytes())

        def change_one(name: str, data: bytes, index: int = index) -> bytes:
            if name != target:
                return data
            changed = original.copy()
            changed[0, index] += 0.05
            buffer = io.BytesIO()
            np.save(buffer, changed)
            return buffer.getvalue()

        rewrite_member(copy, change_one)
        with pytest.raises(ModelFileError, match="predicts its check rows"):
            intelligence.load_model(copy)


def zipfile_member(path: Path, name: str) -> bytes:
    """Return the bytes of one member of a skops file."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return archive.read(name)


def test_bad_model_file_changed_threshold_raises(tmp_path: Path, logistic) -> None:
    from dataclasses import replace

    path = tmp_path / "model.skops"
    digest = intelligence.save_model(replace(logistic, threshold=0.2), path)

    def raise_threshold(name: str, data: bytes) -> bytes:
        if name != "schema.json":
            return data
        assert data.count(b'"content": "0.2"') == 1
        return data.replace(b'"content": "0.2"', b'"content": "0.9"')

    rewrite_member(path, raise_threshold)

    with pytest.raises(ModelFileError, match=r"settings \(threshold 0.9"):
        intelligence.load_model(path)
    with pytest.raises(ModelFileError, match="was changed after it was saved"):
        intelligence.load_model(path, sha256=digest)


def test_bad_model_file_changed_training_rows_raises(tmp_path: Path, logistic) -> None:
    path = tmp_path / "model.skops"
    intelligence.save_model(logistic, path)
    rows = str(logistic.training["rows"]).encode()

    def change_rows(name: str, data: bytes) -> bytes:
        if name != "schema.json":
            return data
        return data.replace(b'"content": "' + rows + b'"', b'"content": "99999"')

    rewrite_member(path, change_rows)

    with pytest.raises(ModelFileError, match="recorded when it was saved"):
        intelligence.load_model(path)


def test_save_load_keeps_threshold_and_settings(tmp_path: Path, logistic) -> None:
    from dataclasses import replace

    path = tmp_path / "model.skops"
    intelligence.save_model(replace(logistic, threshold=0.2), path)
    loaded = intelligence.load_model(path)

    assert loaded.threshold == 0.2
    assert loaded.training == logistic.training
    assert loaded.categories == logistic.categories


def test_bad_model_file_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="is a folder, not a file"):
        intelligence.load_model(tmp_path)


def test_bad_model_file_truncated_raises(tmp_path: Path, logistic) -> None:
    path = tmp_path / "model.skops"
    intelligence.save_model(logistic, path)
    path.write_bytes(path.read_bytes()[:-200])

    with pytest.raises(ModelFileError, match="not a skops file|cannot be read"):
        intelligence.load_model(path)


def test_sklearn_sets_run_through_same_tools() -> None:
    cancer_train, cancer_test = intelligence.split_by_patient(
        intelligence.load_breast_cancer()
    )
    diabetes_train, diabetes_test = intelligence.split_by_patient(
        intelligence.load_diabetes()
    )

    cancer = intelligence.evaluate(
        intelligence.fit_model(cancer_train), cancer_test, n_boot=100
    )
    diabetes = intelligence.evaluate(
        intelligence.fit_model(diabetes_train), diabetes_test, n_boot=100
    )

    assert cancer.auroc.estimate > 0.95
    assert cancer.subgroups.empty
    assert diabetes.auroc.estimate > 0.75
    assert diabetes.subgroups.index.tolist() == [("sex", "1"), ("sex", "2")]
