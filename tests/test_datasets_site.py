"""Tests for the second hospital, site B: generator, fault counts and stage 1 on it."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medkit import datasets, digitize
from medkit._hospital_site import format_site_dates
from medkit._hospital_truth import to_day
from medkit.digitize import IdFormat, TableSpec
from medkit.exceptions import DatasetParameterError, UnknownValueError

TRADITIONAL = {
    "心內科": "心内科",
    "呼吸內科": "呼吸内科",
    "內分泌科": "内分泌科",
    "急診科": "急诊科",
    "神經內科": "神经内科",
    "腎內科": "肾内科",
}


def site_specs() -> dict[str, TableSpec]:
    """Return the hospital default specs adapted to site B's exports."""
    missing = (*digitize.MISSING_TOKENS, "n/a", "不详")
    patient_id = IdFormat(prefix="B", digits=6)
    visit_id = IdFormat(prefix="ZY", digits=8, pad=False)
    patients = replace(
        digitize.PATIENTS,
        ids={"patient_id": patient_id},
        spellings={
            "sex": {**digitize.PATIENTS.spellings["sex"], "男性": "M", "女性": "F"}
        },
        missing_tokens=missing,
        dayfirst=False,
    )
    visits = replace(
        digitize.VISITS,
        ids={"visit_id": visit_id, "patient_id": patient_id},
        spellings={
            "department": {**digitize.VISITS.spellings["department"], **TRADITIONAL}
        },
        missing_tokens=missing,
        dayfirst=False,
    )
    units = digitize.LABS.units
    units = replace(
        units,
        factors={**units.factors, "NA": {"mmol/L": 1.0, "mEq/L": 1.0}},
        spellings={**units.spellings, "mEq/L": "mEq/L"},
    )
    labs = replace(
        digitize.LABS,
        ids={"lab_id": digitize.LABS.ids["lab_id"], "visit_id": visit_id},
        units=units,
        missing_tokens=missing,
        dayfirst=False,
    )
    return {"patients": patients, "visits": visits, "labs": labs}


@pytest.fixture(scope="module")
def site_data() -> datasets.SiteData:
    return datasets.generate_site()


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("site_b")
    datasets.write_site(directory)
    return directory


@pytest.fixture(scope="module")
def site_report(
    site_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> digitize.HospitalReport:
    database = tmp_path_factory.mktemp("db") / "site_b.db"
    return digitize.digitize_hospital(
        site_dir / "raw", f"sqlite:///{database}", specs=site_specs(), progress=False
    )


def fault_count(
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


def clean_as_answer_key(frame: pd.DataFrame) -> pd.DataFrame:
    """Write dates as ISO text, as the answer key stores them."""
    frame = frame.reset_index(drop=True)
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            frame[column] = frame[column].dt.strftime("%Y-%m-%d").astype("str")
    return frame


# The generator ----------------------------------------------------------------


def test_generate_site_same_seed_identical_bytes() -> None:
    first = datasets.generate_site(n_patients=200, seed=5).files()
    second = datasets.generate_site(n_patients=200, seed=5).files()
    assert first.keys() == second.keys()
    for name in first:
        assert first[name] == second[name], name


def test_generate_site_differs_from_first_hospital() -> None:
    first = datasets.generate(n_patients=200, seed=5).files()
    site = datasets.generate_site(n_patients=200, seed=5).files()
    for name in ("patients", "visits", "labs", "notes", "patient_services"):
        assert first[f"raw/{name}.csv"] != site[f"raw/{name}.csv"], name


@pytest.mark.parametrize("n_patients", [99, 600_001], ids=["too_few", "too_many"])
def test_generate_site_rejects_out_of_range(n_patients: int) -> None:
    with pytest.raises(DatasetParameterError, match=f"Got {n_patients}"):
        datasets.generate_site(n_patients=n_patients)


def test_generate_site_rejects_negative_seed() -> None:
    with pytest.raises(DatasetParameterError, match="seed must be 0 or a positive"):
        datasets.generate_site(n_patients=100, seed=-1)


def test_format_site_dates_styles() -> None:
    day = np.array([to_day("1956-03-07"), to_day("2021-11-25")])

    assert format_site_dates(day, "month_first").tolist() == [
        "03/07/1956",
        "11/25/2021",
    ]
    assert format_site_dates(day, "iso_unpadded").tolist() == ["1956-3-7", "2021-11-25"]
    assert format_site_dates(day, "chinese").tolist() == [
        "1956年3月7日",
        "2021年11月25日",
    ]


def test_write_site_files_and_encodings(site_dir: Path) -> None:
    written = sorted(
        str(path.relative_to(site_dir))
        for path in site_dir.rglob("*")
        if path.is_file()
    )

    assert written == [
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
    for name, encoding in datasets.SITE_B_ENCODINGS.items():
        if name in ("patients", "visits", "labs"):
            detected = digitize.detect_encoding(site_dir / "raw" / f"{name}.csv")
            assert detected == encoding, name


def test_load_raw_site_encoding(site_dir: Path) -> None:
    patients = datasets.load_raw(
        "patients", site_dir, encoding=datasets.SITE_B_ENCODINGS["patients"]
    )

    assert len(patients) == 1018
    assert patients["patient_id"].str.strip().str.upper().str[0].eq("B").all()


def test_write_site_leaves_shipped_datasets(site_dir: Path) -> None:
    assert len(datasets.check_datasets()) == 13


# Exact counts -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "raw", "clean", "quarantined", "duplicates"),
    [
        ("patients", 1018, 1000, 3, 15),
        ("visits", 3035, 3016, 9, 10),
        ("labs", 6487, 6468, 9, 10),
    ],
)
def test_generate_site_row_counts(
    site_data: datasets.SiteData,
    table: str,
    raw: int,
    clean: int,
    quarantined: int,
    duplicates: int,
) -> None:
    key = site_data.answer_key

    assert len(site_data.raw[table]) == raw
    assert len(key[table]) == clean
    assert (key["quarantine"]["table"] == table).sum() == quarantined
    assert (key["duplicates"]["table"] == table).sum() == duplicates
    assert raw == clean + quarantined + duplicates


@pytest.mark.parametrize(
    ("table", "column", "fault", "count"),
    [
        ("patients", "birth_date", "impossible date such as 02/30/1970", 3),
        ("patients", "birth_date", "month-first date MM/DD/YYYY", 252),
        (
            "patients",
            "birth_date",
            "ISO date without leading zeros, such as 2021-3-7",
            80,
        ),
        ("patients", "sex", 'spelled "男性"', 20),
        ("patients", "sex", 'spelled "女性"', 20),
        ("patients", "sex", 'missing written as "", NULL, n/a or 不详', 19),
        ("patients", "phone", 'missing written as "", NULL, n/a or 不详', 37),
        ("patients", "patient_id", "lower case", 20),
        ("patients", "patient_id", "space after the prefix", 10),
        ("patients", "name", "surrounding full-width spaces (U+3000)", 10),
        ("visits", "heart_rate", "impossible heart rate 0", 2),
        (
            "visits",
            "visit_id",
            "repeats an earlier stay's visit_id with another heart_rate",
            3,
        ),
        ("visits", "department", 'written in traditional characters "心內科"', 25),
        ("visits", "department", 'written in traditional characters "腎內科"', 25),
        ("visits", "department", "surrounding full-width spaces (U+3000)", 30),
        ("visits", "admit_date", "month-first date MM/DD/YYYY", 301),
        ("visits", "discharge_date", "month-first date MM/DD/YYYY", 300),
        ("visits", "systolic_bp", 'missing written as "", NULL, n/a or 不详', 96),
        ("labs", "unit", 'NA in "mEq/L"', 150),
        ("labs", "unit", 'GLU in "mg/dL"', 40),
        ("labs", "value", "NA without its decimal point, such as 1400", 2),
        ("labs", "value", 'missing written as "", NULL, n/a or 不详', 3),
        ("labs", "taken_date", "month-first date MM/DD/YYYY", 300),
    ],
    ids=lambda value: value if isinstance(value, int) else None,
)
def test_generate_site_fault_counts(
    site_data: datasets.SiteData, table: str, column: str, fault: str, count: int
) -> None:
    assert fault_count(site_data, table, column, fault) == count


def test_generate_site_faults_match_raw_text(site_data: datasets.SiteData) -> None:
    patients, visits, labs = (
        site_data.raw[name] for name in ("patients", "visits", "labs")
    )

    # A duplicate of a faulty record carries its fault, so rows in the raw files
    # count the fault once per record.
    assert patients["sex"].isin(["男性"]).sum() == fault_count(
        site_data, "patients", "sex", 'spelled "男性"'
    )
    assert visits["department"].eq("急診科").sum() == 25
    assert visits["department"].str.contains("\u3000").sum() == 30
    assert labs["unit"].eq("mEq/L").sum() == 150
    month_first = visits["admit_date"].str.fullmatch(r"\d{2}/\d{2}/\d{4}").sum()
    assert month_first == 301
    assert visits["heart_rate"].eq("0").sum() == 2


def test_generate_site_ids_and_departments(site_data: datasets.SiteData) -> None:
    key = site_data.answer_key

    assert key["patients"]["patient_id"].str.fullmatch(r"B\d{6}").all()
    assert key["visits"]["visit_id"].str.fullmatch(r"ZY\d{8}").all()
    assert key["visits"]["patient_id"].isin(key["patients"]["patient_id"]).all()
    assert set(key["visits"]["department"]) == set(
        digitize.VISITS.spellings["department"]
    )
    notes = site_data.raw["notes"]
    assert notes["visit_id"].isin(key["visits"]["visit_id"]).all()


def test_site_readme_lists_every_fault(site_data: datasets.SiteData) -> None:
    readme = site_data.files()["README.md"].decode("utf-8")

    assert "`n_patients=1000`, `seed=2027`" in readme
    for row in site_data.faults.itertuples(index=False):
        fault = row.fault.replace("|", "\\|")
        assert f"| {row.table} | {row.column} | {fault} | {row.count} |" in readme
    assert "| visits | 3035 | 3016 | 9 | 10 |" in readme


# Stage 1 on site B ----------------------------------------------------------------


def test_digitize_site_default_specs_raise(site_dir: Path) -> None:
    raw = digitize.read_table(site_dir / "raw" / "patients.csv")

    with pytest.raises(UnknownValueError, match=r"column 'patient_id' has value 'B0"):
        digitize.clean(raw, "patients")


@pytest.mark.parametrize(
    ("table", "change", "message"),
    [
        (
            "patients",
            {"spellings": digitize.PATIENTS.spellings},
            r"column 'sex' has value '女性' in row 29, .*rows with such values: 40",
        ),
        (
            "visits",
            {"spellings": digitize.VISITS.spellings},
            r"column 'department' has value '呼吸內科' in row 16, .*such values: 150",
        ),
        (
            "visits",
            {"missing_tokens": digitize.MISSING_TOKENS},
            r"column 'systolic_bp' has value 'n/a' in row 6, .*such values: 46",
        ),
    ],
    ids=["sex", "department", "missing"],
)
def test_digitize_site_unadapted_rule_raises(
    site_dir: Path, table: str, change: dict, message: str
) -> None:
    spec = replace(site_specs()[table], **change)
    raw = digitize.read_table(site_dir / "raw" / f"{table}.csv")

    with pytest.raises(UnknownValueError, match=message):
        digitize.clean(raw, spec)


def test_digitize_site_day_first_quarantines(site_dir: Path) -> None:
    spec = replace(site_specs()["visits"], dayfirst=True)
    raw = digitize.read_table(site_dir / "raw" / "visits.csv")

    result = digitize.clean(raw, spec)

    # Month-first dates with a day above 12 are impossible when read day first,
    # and others turn into a discharge before the admission.
    dates = result.quarantine[result.quarantine["rule"] == "dates"]
    reversed_stays = dates["reason"].str.contains("is before")
    assert len(dates) == 428
    assert reversed_stays.sum() == 88
    # Besides dates: 2 heart rates of 0 and 3 repeated stays.
    assert result.counts["quarantined"] == 428 + 5


def test_digitize_site_counts_invariant(site_report: digitize.HospitalReport) -> None:
    counts = site_report.counts

    assert counts["read"].tolist() == [1018, 3035, 6487]
    assert counts["stored"].tolist() == [1000, 3016, 6468]
    assert counts["quarantined"].tolist() == [3, 9, 9]
    assert counts["duplicates"].tolist() == [15, 10, 10]
    accounted = counts["stored"] + counts["quarantined"] + counts["duplicates"]
    assert (counts["read"] == accounted).all()
    assert counts["encoding"].tolist() == ["gb18030", "utf-8", "utf-8-sig"]


def test_digitize_site_matches_answer_key(
    site_report: digitize.HospitalReport, site_dir: Path
) -> None:
    for name in ("patients", "visits", "labs"):
        expected = datasets.load_answer_key(name, site_dir)
        actual = clean_as_answer_key(site_report.results[name].frame)
        pd.testing.assert_frame_equal(actual, expected, check_dtype=False)
        for column in expected.columns:
            assert actual[column].isna().tolist() == expected[column].isna().tolist()


def test_digitize_site_quarantine_and_duplicates(
    site_report: digitize.HospitalReport, site_dir: Path
) -> None:
    quarantine = site_report.quarantine[["table", "row", "rule"]]
    pd.testing.assert_frame_equal(
        quarantine, datasets.load_answer_key("quarantine", site_dir), check_dtype=False
    )
    pd.testing.assert_frame_equal(
        site_report.duplicates,
        datasets.load_answer_key("duplicates", site_dir),
        check_dtype=False,
    )
    repeated = site_report.quarantine[site_report.quarantine["rule"] == "ids"]
    assert repeated["column"].tolist() == ["visit_id"] * 3


@pytest.mark.parametrize(
    ("n_patients", "seed"), [(100, 1), (2500, 9)], ids=["small_seed1", "mid_seed9"]
)
def test_digitize_site_generated_sizes_match(
    tmp_path: Path, n_patients: int, seed: int
) -> None:
    datasets.write_site(tmp_path, n_patients=n_patients, seed=seed)

    report = digitize.digitize_hospital(
        tmp_path / "raw",
        f"sqlite:///{tmp_path / 'site.db'}",
        specs=site_specs(),
        progress=False,
    )

    for name in ("patients", "visits", "labs"):
        expected = datasets.load_answer_key(name, tmp_path)
        actual = clean_as_answer_key(report.results[name].frame)
        pd.testing.assert_frame_equal(actual, expected, check_dtype=False)
    quarantine = report.quarantine[["table", "row", "rule"]]
    pd.testing.assert_frame_equal(
        quarantine, datasets.load_answer_key("quarantine", tmp_path), check_dtype=False
    )
    faults = datasets.load_answer_key("faults", tmp_path)
    quarantined = faults[faults["outcome"].str.startswith("quarantined")]
    assert quarantined["count"].sum() == len(report.quarantine)


def test_answer_key_site_csv_round_trip(site_data: datasets.SiteData) -> None:
    files = site_data.files()
    visits = pd.read_csv(io.BytesIO(files["answer_key/visits.csv"]), dtype=str)

    assert len(visits) == 3016
    assert (
        visits["visit_id"].map(lambda v: re.fullmatch(r"ZY\d{8}", v) is not None).all()
    )
