"""Tests for medkit.datasets: determinism, fault bookkeeping, files and loaders."""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from medkit import datasets
from medkit.datasets import (
    DEFAULT_PATIENTS,
    RAW_ENCODINGS,
    check_datasets,
    data_dir,
    generate,
    load_answer_key,
    load_raw,
    raw_path,
    write_datasets,
)
from medkit.exceptions import DatasetMismatchError, DatasetParameterError

MISSING = ["", "NA", "N/A", "NULL", "-", "未知"]
DAY_FIRST = r"^\d{2}/\d{2}/\d{4}$"
CHINESE_DATE = r"^\d{4}年\d{1,2}月\d{1,2}日$"


@pytest.fixture(scope="module")
def default_data() -> datasets.HospitalData:
    return generate()


@pytest.fixture(scope="module")
def raw_files(default_data: datasets.HospitalData) -> dict[str, pd.DataFrame]:
    """Raw files of the default build, parsed back from their bytes as text."""
    files = default_data.files()
    return {
        name: pd.read_csv(
            io.BytesIO(files[f"raw/{name}.csv"]),
            dtype=str,
            keep_default_na=False,
            encoding=encoding,
        )
        for name, encoding in RAW_ENCODINGS.items()
    }


def _fault_count(
    data: datasets.HospitalData, table: str, column: str, fault: str
) -> int:
    faults = data.faults
    match = faults[
        (faults["table"] == table)
        & (faults["column"] == column)
        & (faults["fault"] == fault)
    ]
    assert len(match) == 1, f"expected one fault row for {table}.{column} {fault!r}"
    return int(match["count"].iloc[0])


# Determinism -------------------------------------------------------------------


def test_generate_same_seed_identical_bytes() -> None:
    first = generate(n_patients=300, seed=5).files()
    second = generate(n_patients=300, seed=5).files()
    assert first.keys() == second.keys()
    for name in first:
        assert first[name] == second[name], name


def test_generate_other_seed_differs() -> None:
    first = generate(n_patients=300, seed=5).files()
    second = generate(n_patients=300, seed=6).files()
    for name in RAW_ENCODINGS:
        if name == "services":
            continue  # the catalogue is fixed and does not depend on the seed
        assert first[f"raw/{name}.csv"] != second[f"raw/{name}.csv"], name


@pytest.mark.parametrize("n_patients", [99, 600_001], ids=["too_few", "too_many"])
def test_generate_rejects_out_of_range(n_patients: int) -> None:
    with pytest.raises(
        DatasetParameterError, match=f"between 100 and 600000.*Got {n_patients}"
    ):
        generate(n_patients=n_patients)


def test_generate_rejects_negative_seed() -> None:
    with pytest.raises(DatasetParameterError, match="seed must be 0 or a positive"):
        generate(n_patients=100, seed=-1)


def test_generate_clean_patient_count(default_data: datasets.HospitalData) -> None:
    assert len(default_data.answer_key["patients"]) == DEFAULT_PATIENTS
    assert default_data.n_patients == DEFAULT_PATIENTS


def test_generate_file_list(default_data: datasets.HospitalData) -> None:
    assert sorted(default_data.files()) == [
        "README.md",
        "answer_key/duplicates.csv",
        "answer_key/faults.csv",
        "answer_key/labs.csv",
        "answer_key/patients.csv",
        "answer_key/quarantine.csv",
        "answer_key/visits.csv",
        "raw/labs.csv",
        "raw/notes.csv",
        "raw/patient_services.csv",
        "raw/patients.csv",
        "raw/services.csv",
        "raw/visits.csv",
    ]


# Invariant and fault counts, counted from the files ----------------------------


@pytest.mark.parametrize(
    ("table", "raw", "clean", "quarantined", "duplicates"),
    [
        ("patients", 2036, 2000, 6, 30),
        ("visits", 6149, 6113, 16, 20),
        ("labs", 13124, 13086, 18, 20),
    ],
)
def test_files_row_invariant(
    default_data: datasets.HospitalData,
    raw_files: dict[str, pd.DataFrame],
    table: str,
    raw: int,
    clean: int,
    quarantined: int,
    duplicates: int,
) -> None:
    files = default_data.files()
    answer = pd.read_csv(io.BytesIO(files[f"answer_key/{table}.csv"]), dtype=str)
    quarantine = pd.read_csv(io.BytesIO(files["answer_key/quarantine.csv"]))
    duplicate_rows = pd.read_csv(io.BytesIO(files["answer_key/duplicates.csv"]))

    assert len(raw_files[table]) == raw
    assert len(answer) == clean
    assert (quarantine["table"] == table).sum() == quarantined
    assert (duplicate_rows["table"] == table).sum() == duplicates
    assert raw == clean + quarantined + duplicates


def test_files_quarantine_and_duplicates_disjoint(
    default_data: datasets.HospitalData,
) -> None:
    quarantine = default_data.answer_key["quarantine"]
    duplicates = default_data.answer_key["duplicates"]
    merged = quarantine.merge(duplicates, on=["table", "row"])
    assert merged.empty
    assert (duplicates["duplicate_of"] < duplicates["row"]).all()
    assert not duplicates["duplicate_of"].isin(duplicates["row"]).any()


def test_files_quarantine_does_not_cascade(
    default_data: datasets.HospitalData, raw_files: dict[str, pd.DataFrame]
) -> None:
    quarantine = default_data.answer_key["quarantine"]

    def quarantined(table: str, column: str) -> set[str]:
        rows = quarantine.loc[quarantine["table"] == table, "row"] - 2
        return set(raw_files[table][column].iloc[rows].str.strip().str.upper())

    visit_patients = set(raw_files["visits"]["patient_id"].str.strip().str.zfill(6))
    lab_visits = set(raw_files["labs"]["visit_id"])
    assert len(quarantined("patients", "patient_id")) == 6
    assert quarantined("patients", "patient_id").isdisjoint(visit_patients)
    assert len(quarantined("visits", "visit_id")) == 16
    assert quarantined("visits", "visit_id").isdisjoint(lab_visits)


SEX_SPELLINGS = ["m", "male", "Male", "男", "f", "female", "FEMALE", "女"]


@pytest.mark.parametrize("spelling", SEX_SPELLINGS)
def test_faults_sex_spelling_counted(
    default_data: datasets.HospitalData,
    raw_files: dict[str, pd.DataFrame],
    spelling: str,
) -> None:
    expected = _fault_count(default_data, "patients", "sex", f'spelled "{spelling}"')
    assert (raw_files["patients"]["sex"] == spelling).sum() == expected


def test_faults_sex_male_chinese_exact(default_data: datasets.HospitalData) -> None:
    assert _fault_count(default_data, "patients", "sex", 'spelled "男"') == 31


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("patients", "sex"),
        ("patients", "phone"),
        ("patients", "address"),
        ("visits", "systolic_bp"),
        ("visits", "heart_rate"),
        ("labs", "value"),
    ],
)
def test_faults_missing_tokens_counted(
    default_data: datasets.HospitalData,
    raw_files: dict[str, pd.DataFrame],
    table: str,
    column: str,
) -> None:
    fault = 'missing written as "", NA, N/A, NULL, - or 未知'
    expected = _fault_count(default_data, table, column, fault)
    assert raw_files[table][column].isin(MISSING).sum() == expected


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("patients", "birth_date"),
        ("visits", "admit_date"),
        ("visits", "discharge_date"),
        ("labs", "taken_date"),
    ],
)
def test_faults_date_formats_counted(
    default_data: datasets.HospitalData,
    raw_files: dict[str, pd.DataFrame],
    table: str,
    column: str,
) -> None:
    values = raw_files[table][column]
    day_first = _fault_count(default_data, table, column, "day-first date DD/MM/YYYY")
    if table == "patients":
        # Impossible birth dates are written day-first too.
        day_first += _fault_count(
            default_data, table, column, "impossible date such as 31/02/1970"
        )
    chinese = _fault_count(default_data, table, column, "Chinese date YYYY年M月D日")
    assert values.str.match(DAY_FIRST).sum() == day_first
    assert values.str.match(CHINESE_DATE).sum() == chinese


@pytest.mark.parametrize("test_code", ["GLU", "CREA"])
@pytest.mark.parametrize("spelling", ["mg/dL", "mg/dl", "MG/DL"])
def test_faults_mg_dl_rows_counted(
    default_data: datasets.HospitalData,
    raw_files: dict[str, pd.DataFrame],
    test_code: str,
    spelling: str,
) -> None:
    labs = raw_files["labs"]
    expected = _fault_count(
        default_data, "labs", "unit", f'{test_code} in "{spelling}"'
    )
    assert ((labs["test"] == test_code) & (labs["unit"] == spelling)).sum() == expected


def test_faults_mg_dl_total(raw_files: dict[str, pd.DataFrame]) -> None:
    assert raw_files["labs"]["unit"].str.lower().eq("mg/dl").sum() == 180


def test_faults_visit_rows_counted(
    default_data: datasets.HospitalData, raw_files: dict[str, pd.DataFrame]
) -> None:
    visits = raw_files["visits"]

    def count(column: str, fault: str) -> int:
        return _fault_count(default_data, "visits", column, fault)

    patient_id = visits["patient_id"].str.strip()
    assert (patient_id.str.len() < 6).sum() == count("patient_id", "leading zeros lost")
    assert (visits["age"] == "999").sum() == count("age", "impossible age 999")
    negative = visits["systolic_bp"].str.match(r"^-\d+$")
    assert negative.sum() == count("systolic_bp", "negative value")
    for column in ("visit_id", "icd10"):
        values = visits[column]
        assert (values != values.str.strip()).sum() == count(
            column, "surrounding spaces"
        )
        assert (values != values.str.upper()).sum() == count(column, "lower case")
    departments = visits["department"]
    assert (departments != departments.str.strip()).sum() == count(
        "department", "surrounding spaces"
    )


def test_faults_patient_id_spaces_counted(
    default_data: datasets.HospitalData, raw_files: dict[str, pd.DataFrame]
) -> None:
    patient_id = raw_files["patients"]["patient_id"]
    expected = _fault_count(
        default_data, "patients", "patient_id", "surrounding spaces"
    )
    assert (patient_id != patient_id.str.strip()).sum() == expected


def test_faults_lab_quarantine_counted(
    default_data: datasets.HospitalData, raw_files: dict[str, pd.DataFrame]
) -> None:
    labs = raw_files["labs"]
    unknown = _fault_count(
        default_data, "labs", "unit", 'GLU in unknown unit "mmol/mol"'
    )
    assert (labs["unit"] == "mmol/mol").sum() == unknown
    glucose_mmol = labs[(labs["test"] == "GLU") & (labs["unit"] == "mmol/L")]
    too_high = pd.to_numeric(glucose_mmol["value"], errors="coerce") > 40
    expected = _fault_count(
        default_data, "labs", "value", "GLU in mg/dL labelled mmol/L"
    )
    assert too_high.sum() == expected


def test_faults_every_count_positive(default_data: datasets.HospitalData) -> None:
    faults = default_data.faults
    assert len(faults) == 50
    assert (faults["count"] >= 1).all()


def test_faults_scale_with_patients() -> None:
    small = generate(n_patients=100, seed=1).faults
    large = generate(n_patients=4000, seed=1).faults
    key = ["table", "column", "fault"]
    merged = small.merge(large, on=key, suffixes=("_small", "_large"))
    assert len(merged) == len(small)
    assert (merged["count_large"] > merged["count_small"]).all()


def test_raw_sodium_code_survives(
    raw_files: dict[str, pd.DataFrame], default_data: datasets.HospitalData
) -> None:
    assert (raw_files["labs"]["test"] == "NA").sum() == 3035
    assert (default_data.answer_key["labs"]["test"] == "NA").sum() == 3028


# Encodings ----------------------------------------------------------------------


def test_files_visits_gb18030_not_utf8(default_data: datasets.HospitalData) -> None:
    content = default_data.files()["raw/visits.csv"]
    text = content.decode("gb18030")
    assert "心内科" in text
    with pytest.raises(UnicodeDecodeError):
        content.decode("utf-8")


def test_files_patients_utf8_bom(default_data: datasets.HospitalData) -> None:
    content = default_data.files()["raw/patients.csv"]
    assert content.startswith(b"\xef\xbb\xbfpatient_id,")
    content.decode("utf-8-sig")


@pytest.mark.parametrize(
    "name",
    [
        "raw/labs.csv",
        "raw/notes.csv",
        "answer_key/patients.csv",
        "answer_key/visits.csv",
    ],
)
def test_files_utf8_without_bom(default_data: datasets.HospitalData, name: str) -> None:
    content = default_data.files()[name]
    assert not content.startswith(b"\xef\xbb\xbf")
    content.decode("utf-8")


def test_files_line_endings(default_data: datasets.HospitalData) -> None:
    for name, content in default_data.files().items():
        assert b"\r\n" not in content, name
        assert content.endswith(b"\n"), name


# Loaders and the shipped files --------------------------------------------------


def test_check_datasets_shipped_files() -> None:
    checked = check_datasets()
    assert len(checked) == 13
    assert data_dir() / "raw" / "visits.csv" in checked


def test_check_datasets_modified_copy(tmp_path) -> None:
    copy = tmp_path / "datasets"
    shutil.copytree(data_dir(), copy)
    labs = copy / "raw" / "labs.csv"
    labs.write_bytes(labs.read_bytes().replace(b"mmol/L", b"mmol/l", 1))
    (copy / "answer_key" / "faults.csv").unlink()
    with pytest.raises(DatasetMismatchError) as error:
        check_datasets(copy)
    message = str(error.value)
    assert "raw/labs.csv (differs)" in message
    assert "answer_key/faults.csv (missing)" in message
    assert "raw/visits.csv" not in message
    assert "medkit datasets build" in message


def test_check_datasets_other_seed(tmp_path) -> None:
    write_datasets(tmp_path, n_patients=150, seed=9)
    assert len(check_datasets(tmp_path, n_patients=150, seed=9)) == 13
    with pytest.raises(DatasetMismatchError, match="--seed 10 --out"):
        check_datasets(tmp_path, n_patients=150, seed=10)


def test_write_datasets_returns_paths(tmp_path) -> None:
    written = write_datasets(tmp_path / "out", n_patients=120, seed=4)
    assert len(written) == 13
    assert all(path.is_file() for path in written)
    assert (tmp_path / "out" / "README.md") in written


@pytest.mark.parametrize("name", datasets.ANSWER_KEY_FILES)
def test_load_answer_key_matches_generate(
    default_data: datasets.HospitalData, name: str
) -> None:
    pd.testing.assert_frame_equal(load_answer_key(name), default_data.answer_key[name])


def test_load_answer_key_ids_as_text() -> None:
    patients = load_answer_key("patients")
    visits = load_answer_key("visits")
    assert patients["patient_id"].iloc[0] == "000003"
    assert patients["patient_id"].str.len().eq(6).all()
    assert patients["postcode"].str.startswith("0").sum() == 212
    assert patients["postcode"].str.len().eq(6).all()
    assert visits["patient_id"].str.startswith("00").all()
    assert visits["visit_id"].iloc[0] == "V0000001"


def test_load_answer_key_sodium_not_missing() -> None:
    labs = load_answer_key("labs.csv")
    assert labs["test"].notna().all()
    assert set(labs["test"]) == {"GLU", "CREA", "NA"}


def test_load_answer_key_unknown_name() -> None:
    with pytest.raises(ValueError, match="Unknown answer key 'notes'"):
        load_answer_key("notes")


def test_raw_path_unknown_name() -> None:
    with pytest.raises(ValueError, match="Unknown raw file 'lab'.*labs"):
        raw_path("lab")


def test_data_dir_env_override(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MEDKIT_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    assert raw_path("visits.csv") == tmp_path / "raw" / "visits.csv"


def test_load_raw_keeps_text() -> None:
    visits = load_raw("visits")
    labs = load_raw("labs")
    assert "心内科" in set(visits["department"].str.strip())
    assert (visits["patient_id"] == "").sum() == 0
    assert (labs["test"] == "NA").sum() == 3035


# Clinical content ---------------------------------------------------------------


def test_readmission_rate_exact(default_data: datasets.HospitalData) -> None:
    rate = default_data.answer_key["visits"]["readmit_30d"].mean()
    assert rate == pytest.approx(0.17504, abs=1e-5)


def test_readmission_matches_next_admission(
    default_data: datasets.HospitalData,
) -> None:
    visits = default_data.answer_key["visits"].copy()
    visits["admit"] = pd.to_datetime(visits["admit_date"])
    visits["discharge"] = pd.to_datetime(visits["discharge_date"])
    visits = visits.sort_values(["patient_id", "admit"])
    next_admit = visits.groupby("patient_id")["admit"].shift(-1)
    gap = (next_admit - visits["discharge"]).dt.days
    within_30 = gap.between(1, 30)
    assert (within_30.astype(int) == visits["readmit_30d"]).all()


def test_readmission_learnable(default_data: datasets.HospitalData) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    visits = default_data.answer_key["visits"]
    labs = default_data.answer_key["labs"]
    glucose = labs[labs["test"] == "GLU"].set_index("visit_id")["value"]
    stay = pd.to_datetime(visits["discharge_date"]) - pd.to_datetime(
        visits["admit_date"]
    )
    features = pd.get_dummies(visits["icd10"], dtype=float).assign(
        age=visits["age"] / 10,
        stay=stay.dt.days,
        glucose=visits["visit_id"].map(glucose),
    )
    train = np.arange(len(visits)) % 2 == 0
    model = LogisticRegression(max_iter=2000).fit(
        features[train], visits["readmit_30d"][train]
    )
    scores = model.predict_proba(features[~train])[:, 1]
    assert roc_auc_score(visits["readmit_30d"][~train], scores) > 0.7


def test_notes_languages_and_abbreviations(raw_files: dict[str, pd.DataFrame]) -> None:
    notes = raw_files["notes"]
    english = notes.loc[notes["language"] == "en", "text"]
    assert set(notes["language"]) == {"en", "zh"}
    assert notes.loc[notes["language"] == "zh", "text"].str.contains("患者").all()
    assert english.str.contains(r"\bHTN\b").sum() > 0
    assert english.str.contains(r"\bSOB\b").sum() > 0
    assert english.str.contains(r"\bDM\b").sum() > 0
    assert english.str.contains("hypertension").sum() > 0


def test_notes_reference_clean_records(
    default_data: datasets.HospitalData, raw_files: dict[str, pd.DataFrame]
) -> None:
    notes = raw_files["notes"]
    visits = default_data.answer_key["visits"].set_index("visit_id")
    assert notes["patient_id"].is_unique
    assert len(notes) == DEFAULT_PATIENTS
    assert notes["visit_id"].isin(visits.index).all()
    owner = visits.loc[notes["visit_id"], "patient_id"].to_numpy()
    assert (owner == notes["patient_id"].to_numpy()).all()


def test_services_follow_diagnosis(
    default_data: datasets.HospitalData, raw_files: dict[str, pd.DataFrame]
) -> None:
    received = raw_files["patient_services"]
    notes = raw_files["notes"]
    visits = default_data.answer_key["visits"].set_index("visit_id")
    main_dx = pd.Series(
        visits.loc[notes["visit_id"], "icd10"].to_numpy(), index=notes["patient_id"]
    )
    received = received.assign(icd10=received["patient_id"].map(main_dx))
    diabetes = received[received["icd10"] == "E11.9"]["service_code"]
    others = received[received["icd10"] != "E11.9"]["service_code"]
    assert received["service_code"].isin(raw_files["services"]["service_code"]).all()
    assert diabetes.isin(["S001", "S002", "S003"]).sum() > 100
    assert others.isin(["S001", "S002", "S003"]).sum() == 0
    assert len(raw_files["services"]) == 25


def test_national_id_check_digit(raw_files: dict[str, pd.DataFrame]) -> None:
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    for national_id in raw_files["patients"]["national_id"].head(200):
        total = sum(int(d) * w for d, w in zip(national_id[:17], weights, strict=True))
        assert national_id.startswith("99")
        assert national_id[17] == "10X98765432"[total % 11]


# A reference cleaner that applies the documented rules, to prove the answer key --


def _parse_date(text: str) -> str | None:
    for pattern, order in (
        (r"^(\d{4})-(\d{2})-(\d{2})$", (1, 2, 3)),
        (r"^(\d{2})/(\d{2})/(\d{4})$", (3, 2, 1)),
        (r"^(\d{4})年(\d{1,2})月(\d{1,2})日$", (1, 2, 3)),
    ):
        match = re.match(pattern, text)
        if match:
            year, month, day = (int(match.group(i)) for i in order)
            try:
                return dt.date(year, month, day).isoformat()
            except ValueError:
                return None
    return None


def _reference_clean(raw: pd.DataFrame, table: str, missing_columns: list[str]):
    """Apply the whitespace, missing and duplicates rules to a raw table.

    Returns the kept rows, with their spreadsheet row in ``row``, and the list of
    duplicates as ``(table, row, duplicate_of)``.
    """
    frame = raw.apply(lambda column: column.str.strip())
    for column in missing_columns:
        frame[column] = frame[column].mask(frame[column].isin(MISSING))
    key = frame.fillna("").apply(
        lambda column: column.str.split().str.join(" ").str.casefold()
    )
    first = {}
    duplicates = []
    keep = []
    for index, row_key in enumerate(map(tuple, key.to_numpy())):
        if row_key in first:
            duplicates.append((table, index + 2, first[row_key] + 2))
        else:
            first[row_key] = index
            keep.append(index)
    frame = frame.iloc[keep].copy()
    frame["row"] = np.array(keep) + 2
    return frame, duplicates


def _quarantine(
    frame: pd.DataFrame, failed: pd.Series, rule: str, table: str, out: list
):
    out.extend((table, int(row), rule) for row in frame.loc[failed, "row"])
    return frame[~failed]


def test_answer_key_equals_reference_cleaner(
    raw_files: dict[str, pd.DataFrame],
) -> None:
    quarantine: list = []
    sex = {"m": "M", "male": "M", "男": "M", "f": "F", "female": "F", "女": "F"}

    patients, dup_patients = _reference_clean(
        raw_files["patients"], "patients", ["sex", "phone", "address"]
    )
    patients["patient_id"] = patients["patient_id"].str.zfill(6)
    patients["sex"] = (
        patients["sex"].str.lower().map(sex).where(patients["sex"].notna())
    )
    patients["birth_date"] = patients["birth_date"].map(_parse_date)
    patients = _quarantine(
        patients, patients["birth_date"].isna(), "dates", "patients", quarantine
    )

    visits, dup_visits = _reference_clean(
        raw_files["visits"], "visits", ["systolic_bp", "heart_rate"]
    )
    visits["visit_id"] = visits["visit_id"].str.upper()
    visits["patient_id"] = visits["patient_id"].str.zfill(6)
    visits["icd10"] = visits["icd10"].str.upper()
    for column in ("admit_date", "discharge_date"):
        visits[column] = visits[column].map(_parse_date)
    bad_dates = visits["admit_date"].isna() | visits["discharge_date"].isna()
    bad_dates |= visits["discharge_date"] < visits["admit_date"]
    visits = _quarantine(visits, bad_dates, "dates", "visits", quarantine)
    for column in ("age", "systolic_bp", "heart_rate", "readmit_30d"):
        visits[column] = pd.to_numeric(visits[column]).astype("Int64")
    out_of_range = ~visits["age"].between(0, 120)
    out_of_range |= ~visits["systolic_bp"].between(0, 300).fillna(True).astype(bool)
    visits = _quarantine(visits, out_of_range, "ranges", "visits", quarantine)
    unknown = ~visits["patient_id"].isin(patients["patient_id"])
    visits = _quarantine(visits, unknown, "references", "visits", quarantine)

    labs, dup_labs = _reference_clean(raw_files["labs"], "labs", ["value"])
    labs["taken_date"] = labs["taken_date"].map(_parse_date)
    factors = {
        ("GLU", "mmol/l"): 1.0,
        ("GLU", "mmol/L"): 1.0,
        ("GLU", "mg/dl"): 1 / 18.016,
        ("CREA", "µmol/L"): 1.0,
        ("CREA", "umol/L"): 1.0,
        ("CREA", "mg/dl"): 88.42,
        ("NA", "mmol/l"): 1.0,
        ("NA", "mmol/L"): 1.0,
    }
    unit_key = list(
        zip(
            labs["test"],
            labs["unit"].where(~labs["unit"].str.lower().eq("mg/dl"), "mg/dl"),
            strict=True,
        )
    )
    factor = pd.Series([factors.get(k, np.nan) for k in unit_key], index=labs.index)
    labs = _quarantine(labs, factor.isna(), "units", "labs", quarantine)
    labs["value"] = np.round(pd.to_numeric(labs["value"]) * factor[labs.index], 2)
    labs["unit"] = labs["test"].map({"GLU": "mmol/L", "CREA": "µmol/L", "NA": "mmol/L"})
    limits = labs["test"].map({"GLU": (1, 40), "CREA": (20, 2000), "NA": (100, 180)})
    low, high = limits.str[0], limits.str[1]
    out_of_range = (labs["value"] < low) | (labs["value"] > high)
    labs = _quarantine(labs, out_of_range, "ranges", "labs", quarantine)
    labs = _quarantine(labs, labs["value"].isna(), "required", "labs", quarantine)
    unknown = ~labs["visit_id"].isin(visits["visit_id"])
    labs = _quarantine(labs, unknown, "references", "labs", quarantine)

    for name, frame in (("patients", patients), ("visits", visits), ("labs", labs)):
        expected = load_answer_key(name)
        actual = frame.drop(columns="row").reset_index(drop=True)
        actual = actual.astype(expected.dtypes.to_dict())
        pd.testing.assert_frame_equal(actual, expected, check_exact=True)

    order = {"patients": 0, "visits": 1, "labs": 2}
    quarantine.sort(key=lambda item: (order[item[0]], item[1]))
    expected_quarantine = load_answer_key("quarantine")
    assert list(map(tuple, expected_quarantine.to_numpy().tolist())) == quarantine
    expected_duplicates = load_answer_key("duplicates")
    assert list(map(tuple, expected_duplicates.to_numpy().tolist())) == (
        dup_patients + dup_visits + dup_labs
    )


@pytest.mark.slow
def test_generate_benchmark_size() -> None:
    data = generate(n_patients=340_000)
    visits = data.answer_key["visits"]
    assert 950_000 < len(data.raw["visits"]) < 1_100_000
    assert visits["visit_id"].is_unique
    assert data.answer_key["patients"]["patient_id"].str.len().eq(6).all()
    for table in ("patients", "visits", "labs"):
        quarantined = (data.answer_key["quarantine"]["table"] == table).sum()
        duplicates = (data.answer_key["duplicates"]["table"] == table).sum()
        assert (
            len(data.raw[table])
            == len(data.answer_key[table]) + quarantined + duplicates
        )
