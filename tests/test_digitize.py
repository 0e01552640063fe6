"""Tests of medkit.digitize: read, profile, clean, encode, store, digitize_hospital."""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import replace
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from medkit import datasets
from medkit._reading import read_categorical
from medkit.digitize import (
    HOSPITAL,
    LABS,
    PATIENTS,
    VISITS,
    CleanResult,
    Codebook,
    IdFormat,
    TableSpec,
    clean,
    detect_encoding,
    digitize_hospital,
    encode,
    load_tables,
    one_hot,
    plot_profile,
    profile,
    read_table,
    store,
)
from medkit.exceptions import UnknownValueError

matplotlib.use("Agg")

PATIENTS_CSV = """\
patient_id,name,sex,birth_date,phone,national_id,postcode,address
000001,Zhang Wei,m,1956-03-07,13800000001,110101195603070011,010010,1 Oak Road
000002,Li Na,female,07/03/1960,NA,110101196003070022,020020,未知
000002,LI  NA,female,07/03/1960,NA,110101196003070022,020020,未知
 000003 ,Wang Fang,女,1970年3月7日,-,110101197003070033,030030,
000004,Bad Date,M,31/02/1970,,110101197002310044,040040,4 Mill Lane
000001,Zhang Wei,m,1956-03-07,13800000001,110101195603070011,010010,1 Oak Road
"""

VISITS_CSV = """\
visit_id,patient_id,admit_date,discharge_date,department,icd10,age,systolic_bp,heart_rate,readmit_30d
V0000001,1,2024-01-05,10/01/2024, 心内科 ,i10,67,130,80,0
v0000002,000002,2024-02-01,2024-02-03,内分泌科,e11.9,63,NA,-,1
V0000002,000002,2024-02-01,2024-02-03,内分泌科,e11.9,63,NA,-,1
V0000003,000003,2024-03-01,2024-02-27,骨科,S72.0,54,120,70,0
V0000004,000009,2024-03-01,2024-03-03,骨科,S72.0,54,120,70,0
V0000005,000003,2024-03-01,2024-03-03,骨科,S72.0,999,120,70,0
V0000006,000003,2024年4月1日,2024-04-02,骨科, M17.1,70,-125,70,0
"""

LABS_CSV = """\
lab_id,visit_id,test,value,unit,taken_date
L00000001,V0000001,GLU,180,mg/dl,2024-01-05
L00000002,V0000001,NA,140,mmol/l,2024-01-05
L00000003,V0000001,CREA,1.2,MG/DL,05/01/2024
L00000004,V0000001,GLU,48,mmol/mol,2024-01-05
L00000005,V0000001,GLU,180,mmol/L,2024-01-05
L00000006,V0000001,GLU,NA,mmol/L,2024-01-05
L00000007,V0000004,GLU,5.5,mmol/L,2024-01-05
L00000008,V0000002,CREA,85,µmol/L,2024-02-02
"""


def write(directory: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = directory / name
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "raw"
    directory.mkdir()
    write(directory, "patients.csv", PATIENTS_CSV, "utf-8-sig")
    write(directory, "visits.csv", VISITS_CSV, "gb18030")
    write(directory, "labs.csv", LABS_CSV)
    return directory


@pytest.fixture
def patients(raw_dir: Path) -> CleanResult:
    return clean(read_table(raw_dir / "patients.csv", PATIENTS), PATIENTS)


@pytest.fixture
def visits(raw_dir: Path, patients: CleanResult) -> CleanResult:
    raw = read_table(raw_dir / "visits.csv", VISITS)
    return clean(raw, VISITS, references={"patient_id": patients})


@pytest.fixture
def labs(raw_dir: Path, visits: CleanResult) -> CleanResult:
    raw = read_table(raw_dir / "labs.csv", LABS)
    return clean(raw, LABS, references={"visit_id": visits})


def rows_of(result: CleanResult, rule: str) -> list[int]:
    return result.quarantine.loc[result.quarantine["rule"] == rule, "row"].tolist()


# read_table and detect_encoding


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gb18030", "gb18030")],
    ids=["utf8", "utf8_bom", "gb18030"],
)
def test_read_table_detects_encoding(
    tmp_path: Path, encoding: str, expected: str
) -> None:
    path = write(tmp_path, "visits.csv", VISITS_CSV, encoding)
    frame = read_table(path, VISITS)
    assert frame.attrs["encoding"] == expected
    assert detect_encoding(path) == expected
    assert frame.loc[0, "department"] == " 心内科 "
    assert list(frame.columns) == VISITS.columns


def test_read_table_keeps_text(tmp_path: Path) -> None:
    frame = read_table(write(tmp_path, "labs.csv", LABS_CSV), LABS)
    assert frame.loc[1, "test"] == "NA"
    assert frame.loc[5, "value"] == "NA"
    assert frame.attrs["table"] == "labs"
    assert frame.attrs["path"] == str(tmp_path / "labs.csv")
    patients = read_table(write(tmp_path, "p.csv", PATIENTS_CSV))
    assert patients.loc[0, "postcode"] == "010010"
    assert patients.loc[3, "patient_id"] == " 000003 "
    assert patients.loc[3, "address"] == ""


def test_read_table_ignores_trailing_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "labs.csv", LABS_CSV + "\n\n")
    assert len(read_table(path, LABS)) == 8


def test_read_table_keeps_extra_columns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = LABS_CSV.splitlines()
    text = "\n".join([lines[0] + ",comment", *(line + ",x" for line in lines[1:])])
    with caplog.at_level(logging.WARNING, logger="medkit"):
        raw = read_table(write(tmp_path, "labs.csv", text + "\n"), LABS)
    assert "columns not in the labs spec, kept as text: 1" in caplog.text
    result = clean(raw, LABS)
    assert result.frame.columns.tolist() == [*LABS.columns, "comment"]
    assert result.frame["comment"].tolist() == ["x"] * 5


def test_read_table_ascii_is_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", "a,b\n1,2\n")
    assert detect_encoding(path) == "utf-8"
    assert read_table(path).to_dict("list") == {"a": ["1"], "b": ["2"]}


@pytest.mark.parametrize("spec", [PATIENTS, VISITS, LABS], ids=lambda s: s.name)
def test_read_categorical_cleans_like_read_table(
    raw_dir: Path, spec: TableSpec
) -> None:
    path = raw_dir / f"{spec.name}.csv"
    expected = clean(read_table(path, spec), spec)
    actual = clean(read_categorical(path, spec), spec)
    pd.testing.assert_frame_equal(actual.frame, expected.frame)
    pd.testing.assert_frame_equal(actual.quarantine, expected.quarantine)
    pd.testing.assert_frame_equal(actual.duplicates, expected.duplicates)
    pd.testing.assert_frame_equal(actual.log, expected.log)
    assert actual.rows_read == expected.rows_read


def test_read_categorical_column_types(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", PATIENTS_CSV + "\n")
    frame = read_categorical(path, PATIENTS)
    text = read_table(path, PATIENTS)
    categorical = [c for c in frame if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    assert categorical == ["sex", "birth_date"]
    assert frame.attrs == text.attrs
    assert frame.index.equals(text.index)
    assert frame.astype(object).equals(text.astype(object))


def test_read_categorical_keeps_number_like_text(tmp_path: Path) -> None:
    spec = TableSpec(
        name="wards",
        kinds={"ward_id": "id", "ward": "category", "beds": "integer"},
        key="ward_id",
        ids={"ward_id": IdFormat(prefix="W", digits=2)},
        spellings={"ward": {"01": "01", "1": "1", "007": "007"}},
    )
    text = "ward_id,ward,beds\nW01,01,007\nW02,1,7\nW03,007,7.0\n"
    frame = read_categorical(write(tmp_path, "wards.csv", text), spec)
    assert frame["ward"].astype(object).tolist() == ["01", "1", "007"]
    assert frame["beds"].astype(object).tolist() == ["007", "7", "7.0"]
    assert (
        frame["ward_id"].dtype == read_table(tmp_path / "wards.csv").dtypes["ward_id"]
    )


# clean: rule by rule


def test_clean_whitespace_and_missing(patients: CleanResult) -> None:
    frame = patients.frame
    assert frame.loc[3, "patient_id"] == "000003"
    assert frame.loc[1, "name"] == "Li Na"
    assert pd.isna(frame.loc[1, "phone"])
    assert pd.isna(frame.loc[1, "address"])
    assert pd.isna(frame.loc[3, "phone"])
    assert pd.isna(frame.loc[3, "address"])
    assert frame.loc[0, "phone"] == "13800000001"


def test_clean_duplicates_ignore_case_and_spaces(patients: CleanResult) -> None:
    duplicates = patients.duplicates
    assert duplicates.columns.tolist() == ["table", "row", "duplicate_of"]
    assert duplicates["row"].tolist() == [4, 7]
    assert duplicates["duplicate_of"].tolist() == [3, 2]
    assert (duplicates["table"] == "patients").all()


def test_clean_categories_map_spellings(patients: CleanResult) -> None:
    assert patients.frame["sex"].tolist() == ["M", "F", "F"]


def test_clean_dates_parse_three_forms(patients: CleanResult) -> None:
    births = patients.frame["birth_date"].dt.strftime("%Y-%m-%d").tolist()
    assert births == ["1956-03-07", "1960-03-07", "1970-03-07"]
    assert patients.frame["birth_date"].dtype == "datetime64[ns]"


def test_clean_dates_monthfirst(tmp_path: Path) -> None:
    raw = read_table(write(tmp_path, "p.csv", PATIENTS_CSV), PATIENTS)
    result = clean(raw, replace(PATIENTS, dayfirst=False))
    births = result.frame["birth_date"].dt.strftime("%Y-%m-%d").tolist()
    assert births == ["1956-03-07", "1960-07-03", "1970-03-07"]
    assert rows_of(result, "dates") == [6]


def test_clean_quarantines_impossible_date(patients: CleanResult) -> None:
    quarantine = patients.quarantine
    assert quarantine["row"].tolist() == [6]
    assert quarantine["rule"].tolist() == ["dates"]
    assert quarantine["column"].tolist() == ["birth_date"]
    assert quarantine["reason"].tolist() == [
        "birth_date '31/02/1970' is not a valid date"
    ]
    record = json.loads(quarantine["record"].iloc[0])
    assert record["birth_date"] == "31/02/1970"
    assert record["name"] == "Bad Date"
    assert record["phone"] == ""


def test_clean_visits_ids_codes_numbers(visits: CleanResult) -> None:
    frame = visits.frame
    assert frame["visit_id"].tolist() == ["V0000001", "V0000002"]
    assert frame["patient_id"].tolist() == ["000001", "000002"]
    assert frame["department"].tolist() == ["心内科", "内分泌科"]
    assert frame["icd10"].tolist() == ["I10", "E11.9"]
    assert frame["age"].tolist() == [67, 63]
    assert frame["systolic_bp"].isna().tolist() == [False, True]
    assert frame["systolic_bp"].iloc[0] == 130
    assert frame["heart_rate"].isna().tolist() == [False, True]
    assert frame["heart_rate"].iloc[0] == 80
    assert frame["readmit_30d"].dtype == "Int64"
    discharge = frame["discharge_date"].dt.strftime("%Y-%m-%d").tolist()
    assert discharge == ["2024-01-10", "2024-02-03"]


def test_clean_visits_quarantine_rules(visits: CleanResult) -> None:
    quarantine = visits.quarantine
    assert quarantine["row"].tolist() == [5, 6, 7, 8]
    assert quarantine["rule"].tolist() == ["dates", "references", "ranges", "ranges"]
    assert quarantine["reason"].tolist() == [
        "discharge_date 2024-02-27 is before admit_date 2024-03-01",
        "patient_id 000009 is not in patients",
        "age 999 is outside 0-120",
        "systolic_bp -125 is outside 50-260",
    ]
    assert visits.duplicates["row"].tolist() == [4]
    assert visits.duplicates["duplicate_of"].tolist() == [3]


def test_clean_labs_convert_units(labs: CleanResult) -> None:
    frame = labs.frame
    assert frame["lab_id"].tolist() == [
        "L00000001",
        "L00000002",
        "L00000003",
        "L00000008",
    ]
    # 180 mg/dL / 18.016 = 9.991 mmol/L; 1.2 mg/dL * 88.42 = 106.104 µmol/L.
    assert frame["value"].tolist() == [9.99, 140.0, 106.1, 85.0]
    assert frame["unit"].tolist() == ["mmol/L", "mmol/L", "µmol/L", "µmol/L"]
    assert frame["test"].tolist() == ["GLU", "NA", "CREA", "CREA"]


def test_clean_labs_quarantine_rules(labs: CleanResult) -> None:
    quarantine = labs.quarantine
    assert quarantine["row"].tolist() == [5, 6, 7, 8]
    assert quarantine["rule"].tolist() == ["units", "ranges", "required", "references"]
    assert quarantine["reason"].tolist() == [
        "unit 'mmol/mol' is not accepted for GLU; expected mmol/L or mg/dL",
        "value 180 mmol/L is outside 1-40 for GLU",
        "value is missing",
        "visit_id V0000004 is not in visits",
    ]


def test_clean_log_lists_changes(labs: CleanResult) -> None:
    log = labs.log
    assert log.columns.tolist() == [
        "rule",
        "column",
        "action",
        "rows_changed",
        "example_rows",
    ]
    converted = log[(log["rule"] == "units") & (log["column"] == "value")]
    assert converted["rows_changed"].tolist() == [2]
    assert converted["example_rows"].tolist() == [(2, 4)]
    respelled = log[(log["rule"] == "units") & (log["action"] == "rewritten")]
    assert respelled.set_index("column")["rows_changed"].to_dict() == {
        "value": 2,
        "unit": 3,
    }
    quarantined = log[log["action"] == "quarantined"]
    assert quarantined["rule"].tolist() == ["units", "ranges", "required", "references"]


@pytest.mark.parametrize("table", ["patients", "visits", "labs"])
def test_clean_accounts_for_every_row(
    table: str, patients: CleanResult, visits: CleanResult, labs: CleanResult
) -> None:
    result = {"patients": patients, "visits": visits, "labs": labs}[table]
    counts = result.counts
    assert (
        counts["read"] == counts["clean"] + counts["quarantined"] + counts["duplicates"]
    )
    rows = [
        *(result.frame.index + 2),
        *result.quarantine["row"],
        *result.duplicates["row"],
    ]
    assert sorted(rows) == list(range(2, result.rows_read + 2))


def test_clean_leaves_input_unchanged(raw_dir: Path) -> None:
    raw = read_table(raw_dir / "patients.csv", PATIENTS)
    before = raw.copy()
    clean(raw, "patients")
    pd.testing.assert_frame_equal(raw, before)


def test_clean_quarantines_conflicting_key(tmp_path: Path) -> None:
    text = (
        PATIENTS_CSV.splitlines()[0]
        + "\n"
        + "000001,Zhang Wei,M,1956-03-07,1,1,1,a\n"
        + "1,Other Person,F,1960-01-01,2,2,2,b\n"
    )
    result = clean(read_table(write(tmp_path, "p.csv", text)), PATIENTS)
    assert result.frame["name"].tolist() == ["Zhang Wei"]
    assert rows_of(result, "ids") == [3]
    assert result.quarantine["reason"].tolist() == [
        "patient_id 000001 repeats row 2 with other values"
    ]


def test_clean_references_accept_series(tmp_path: Path) -> None:
    raw = read_table(write(tmp_path, "v.csv", VISITS_CSV), VISITS)
    known = pd.Series(["000001", "000002", "000003", "000009"], name="patient_id")
    result = clean(raw, VISITS, references={"patient_id": known})
    assert "references" not in result.quarantine["rule"].tolist()


def test_clean_literal_column_keeps_token(tmp_path: Path) -> None:
    raw = read_table(write(tmp_path, "labs.csv", LABS_CSV), LABS)
    assert "NA" in clean(raw, LABS).frame["test"].tolist()
    without_exemption = clean(raw, replace(LABS, literal_columns=()))
    assert rows_of(without_exemption, "required") == [3, 7]
    reasons = without_exemption.quarantine.set_index("row")["reason"]
    assert reasons[3] == "test is missing"


def test_tablespec_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="kind 'textual'"):
        TableSpec(name="t", kinds={"a": "textual"})


def test_tablespec_rejects_category_without_spellings() -> None:
    with pytest.raises(ValueError, match="category column 'sex' has no entry"):
        TableSpec(name="t", kinds={"sex": "category"})


def test_tablespec_rejects_unknown_required_column() -> None:
    with pytest.raises(ValueError, match="not in kinds: age"):
        TableSpec(name="t", kinds={"a": "text"}, required=("age",))


# encode, Codebook and one_hot


def test_encode_codes_and_codebook(patients: CleanResult) -> None:
    codes, codebook = encode(patients.frame, ["sex"])
    assert codes["sex"].tolist() == [1, 0, 0]
    assert codes["sex"].dtype == "Int64"
    assert codebook.entries.to_dict("list") == {
        "table": ["patients", "patients"],
        "column": ["sex", "sex"],
        "code": [0, 1],
        "label": ["F", "M"],
    }


def test_encode_decode_round_trip(visits: CleanResult, labs: CleanResult) -> None:
    for result, spec in ((visits, VISITS), (labs, LABS)):
        codes, codebook = encode(result.frame, list(spec.categorical))
        pd.testing.assert_frame_equal(codebook.decode(codes), result.frame)


def test_encode_missing_round_trip() -> None:
    frame = pd.DataFrame({"sex": ["F", np.nan, "M"]})
    codes, codebook = encode(frame, ["sex"], table="patients")
    assert codes["sex"].isna().tolist() == [False, True, False]
    assert codes["sex"].dropna().tolist() == [0, 1]
    pd.testing.assert_frame_equal(codebook.decode(codes), frame)


def test_encode_fixed_labels() -> None:
    frame = pd.DataFrame({"sex": ["M", "M"]})
    codes, codebook = encode(frame, ["sex"], labels={"sex": ["M", "F"]})
    assert codes["sex"].tolist() == [0, 0]
    assert codebook.labels("sex") == ["M", "F"]
    with pytest.raises(UnknownValueError, match="value 'X'"):
        encode(pd.DataFrame({"sex": ["X"]}), ["sex"], labels={"sex": ["M", "F"]})


def test_codebook_decode_rejects_unknown_code() -> None:
    _, codebook = encode(pd.DataFrame({"sex": ["F", "M"]}), ["sex"])
    codes = pd.DataFrame({"sex": pd.array([0, 7], dtype="Int64")})
    with pytest.raises(UnknownValueError, match="code 7"):
        codebook.decode(codes)


def test_codebook_concat_keeps_tables(visits: CleanResult, labs: CleanResult) -> None:
    _, first = encode(visits.frame, ["department"])
    _, second = encode(labs.frame, ["test"])
    joined = Codebook.concat([first, second])
    assert joined.entries["table"].tolist() == [
        "visits",
        "visits",
        "labs",
        "labs",
        "labs",
    ]
    assert joined.labels("test", table="labs") == ["CREA", "GLU", "NA"]


def test_one_hot_columns_and_values() -> None:
    frame = pd.DataFrame({"age": [60, 70, 80], "sex": ["M", None, "F"]})
    expanded = one_hot(frame, ["sex"])
    assert expanded.columns.tolist() == ["age", "sex=F", "sex=M"]
    assert expanded["sex=F"].tolist() == [0, 0, 1]
    assert expanded["sex=M"].tolist() == [1, 0, 0]
    assert expanded["sex=M"].dtype == np.uint8


def test_one_hot_codebook_fixes_columns() -> None:
    _, codebook = encode(pd.DataFrame({"sex": ["F", "M"]}), ["sex"])
    expanded = one_hot(pd.DataFrame({"sex": ["M"]}), ["sex"], codebook=codebook)
    assert expanded.to_dict("list") == {"sex=F": [0], "sex=M": [1]}


# store and load_tables


def table_contents(path: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(path) as connection:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        return {
            name: connection.execute(f'SELECT * FROM "{name}"').fetchall()
            for name in names
        }


def test_store_writes_typed_tables(tmp_path: Path, visits: CleanResult) -> None:
    url = f"sqlite:///{tmp_path / 'out' / 'medkit.db'}"
    assert store({"visits": visits.frame}, url, keys={"visits": "visit_id"}) == [
        "visits"
    ]
    rows = table_contents(tmp_path / "out" / "medkit.db")["visits"]
    assert rows[0] == (
        "V0000001",
        "000001",
        "2024-01-05",
        "2024-01-10",
        "心内科",
        "I10",
        67,
        130,
        80,
        0,
    )
    assert rows[1][7:9] == (None, None)


def test_store_twice_gives_same_database(tmp_path: Path, raw_dir: Path) -> None:
    first, second = tmp_path / "first.db", tmp_path / "second.db"
    digitize_hospital(raw_dir, f"sqlite:///{first}", progress=False)
    digitize_hospital(raw_dir, f"sqlite:///{second}", progress=False)
    digitize_hospital(raw_dir, f"sqlite:///{second}", progress=False)
    assert table_contents(first) == table_contents(second)
    assert set(table_contents(first)) == {
        "codebook",
        "duplicates",
        "labs",
        "load_summary",
        "patients",
        "quarantine",
        "visits",
    }


def test_store_rolls_back_on_failure(tmp_path: Path, visits: CleanResult) -> None:
    path = tmp_path / "medkit.db"
    url = f"sqlite:///{path}"
    store({"visits": visits.frame}, url, keys={"visits": "visit_id"})
    before = table_contents(path)
    repeated = pd.concat([visits.frame, visits.frame])
    with pytest.raises(sa.exc.IntegrityError):
        store(
            {"other": visits.frame, "visits": repeated},
            url,
            keys={"visits": "visit_id"},
        )
    assert table_contents(path) == before


def test_store_many_rows_round_trip(tmp_path: Path) -> None:
    # 250 rows are inserted by two statements of 100 rows and 50 of one row.
    frame = pd.DataFrame(
        {
            "id": [f"R{i:03d}" for i in range(250)],
            "count": pd.array([i if i % 7 else None for i in range(250)], "Int64"),
            "value": [i / 4 for i in range(250)],
        }
    )
    path = tmp_path / "many.db"
    store({"rows": frame}, f"sqlite:///{path}", keys={"rows": "id"})
    rows = table_contents(path)["rows"]
    assert len(rows) == 250
    assert rows[0] == ("R000", None, 0.0)
    assert rows[1] == ("R001", 1, 0.25)
    assert rows[249] == ("R249", 249, 62.25)
    assert rows == list(
        zip(
            frame["id"],
            frame["count"].astype(object).where(frame["count"].notna(), None),
            frame["value"],
            strict=True,
        )
    )


def test_store_accepts_engine(visits: CleanResult) -> None:
    engine = sa.create_engine("sqlite://")
    store({"visits": visits.frame}, engine)
    with engine.connect() as connection:
        count = connection.exec_driver_sql("SELECT COUNT(*) FROM visits").scalar()
    assert count == 2


def test_load_tables_round_trip(tmp_path: Path, raw_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'medkit.db'}"
    report = digitize_hospital(raw_dir, url, progress=False)
    loaded = load_tables(url)
    for name, result in report.results.items():
        expected = result.frame.reset_index(drop=True)
        pd.testing.assert_frame_equal(loaded[name], expected, check_like=False)
    codes = load_tables(url, ["visits"], decode=False)["visits"]
    assert codes["department"].tolist() == [1, 0]


# profile and plot_profile


def test_profile_infers_integer() -> None:
    ages = ["64", "70", "66", "72", "69", "68", "71", "67", "65", "999", "x", "NA"]
    report = profile(pd.DataFrame({"age": ages}))
    assert report.columns.tolist() == [
        "type",
        "rows",
        "missing",
        "distinct",
        "invalid",
        "outliers",
    ]
    assert report.loc["age"].tolist() == ["integer", 12, 1, 11, 1, 1]


def test_profile_infers_category_and_date() -> None:
    raw = pd.DataFrame(
        {
            "sex": ["M", "F", "", "m", "F"],
            "admit": ["2024-01-05", "05/01/2024", "31/02/2024", "-", "2024-01-06"],
        }
    )
    report = profile(raw)
    assert report.loc["sex"].tolist() == ["category", 5, 1, 3, 0, 0]
    assert report.loc["admit"].tolist() == ["date", 5, 1, 4, 1, 0]


def test_profile_with_spec(raw_dir: Path) -> None:
    raw = read_table(raw_dir / "visits.csv", VISITS)
    report = profile(raw, VISITS)
    assert report.loc["age", "outliers"] == 1
    assert report.loc["systolic_bp", "outliers"] == 1
    assert report.loc["systolic_bp", "missing"] == 2
    assert report.loc["icd10", "invalid"] == 0
    assert report.loc["department", "distinct"] == 3
    assert report.loc["discharge_date", "type"] == "date"


def test_profile_clean_frame(visits: CleanResult) -> None:
    report = profile(visits.frame, VISITS)
    assert report.loc["systolic_bp"].tolist() == ["integer", 2, 1, 1, 0, 0]
    assert report.loc["admit_date", "type"] == "date"


def test_plot_profile_returns_figure(raw_dir: Path) -> None:
    report = profile(read_table(raw_dir / "labs.csv", LABS), LABS)
    figure = plot_profile(report)
    assert isinstance(figure, matplotlib.figure.Figure)
    axes = figure.axes[0]
    assert [label.get_text() for label in axes.get_yticklabels()] == LABS.columns
    assert len(axes.patches) == 3 * len(LABS.columns)


# digitize_hospital


def test_digitize_hospital_counts(tmp_path: Path, raw_dir: Path) -> None:
    report = digitize_hospital(
        raw_dir, f"sqlite:///{tmp_path / 'm.db'}", progress=False
    )
    counts = report.counts
    assert counts.index.tolist() == ["patients", "visits", "labs"]
    assert counts["encoding"].tolist() == ["utf-8-sig", "gb18030", "utf-8"]
    assert counts["read"].tolist() == [6, 7, 8]
    assert counts["stored"].tolist() == [3, 2, 4]
    assert counts["quarantined"].tolist() == [1, 4, 4]
    assert counts["duplicates"].tolist() == [2, 1, 0]
    summed = counts["stored"] + counts["quarantined"] + counts["duplicates"]
    assert (counts["read"] == summed).all()
    assert (
        report.quarantine["table"].tolist()
        == ["patients"] + ["visits"] * 4 + ["labs"] * 4
    )


def test_digitize_hospital_logs_no_values(
    tmp_path: Path, raw_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="medkit"):
        digitize_hospital(raw_dir, f"sqlite:///{tmp_path / 'm.db'}", progress=False)
    messages = [record.getMessage() for record in caplog.records]
    levels = {record.levelname for record in caplog.records}
    assert any("Read" in message and "patients.csv" in message for message in messages)
    assert "WARNING" in levels
    for value in ("Zhang", "Bad Date", "31/02/1970", "000009", "mmol/mol"):
        assert not any(value in message for message in messages), value


def test_digitize_hospital_progress_bar(
    tmp_path: Path, raw_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    digitize_hospital(raw_dir, f"sqlite:///{tmp_path / 'm.db'}", progress=True)
    assert "digitize" in capsys.readouterr().err
    digitize_hospital(raw_dir, f"sqlite:///{tmp_path / 'm.db'}", progress=False)
    assert capsys.readouterr().err == ""


# The shipped datasets and the generator's answer key


def clean_as_answer_key(frame: pd.DataFrame) -> pd.DataFrame:
    """Write dates as ISO text, as the answer key stores them."""
    frame = frame.reset_index(drop=True)
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            frame[column] = frame[column].dt.strftime("%Y-%m-%d").astype("str")
    return frame


def assert_matches_answer_key(report, answer_key) -> None:
    for name in HOSPITAL:
        expected = answer_key(name)
        actual = clean_as_answer_key(report.results[name].frame)
        pd.testing.assert_frame_equal(actual, expected, check_dtype=False)
        for column in expected.columns:
            assert actual[column].isna().tolist() == expected[column].isna().tolist()
    quarantine = report.quarantine[["table", "row", "rule"]]
    pd.testing.assert_frame_equal(
        quarantine, answer_key("quarantine"), check_dtype=False
    )
    duplicates = report.duplicates
    pd.testing.assert_frame_equal(
        duplicates, answer_key("duplicates"), check_dtype=False
    )


def test_shipped_datasets_match_answer_key(tmp_path: Path) -> None:
    directory = datasets.data_dir()
    report = digitize_hospital(
        directory / "raw", f"sqlite:///{tmp_path / 'm.db'}", progress=False
    )
    assert_matches_answer_key(report, lambda name: datasets.load_answer_key(name))


@pytest.mark.parametrize(
    ("n_patients", "seed"), [(100, 1), (3000, 7)], ids=["small_seed1", "mid_seed7"]
)
def test_generated_datasets_match_answer_key(
    tmp_path: Path, n_patients: int, seed: int
) -> None:
    datasets.write_datasets(tmp_path, n_patients=n_patients, seed=seed)
    report = digitize_hospital(
        tmp_path / "raw", f"sqlite:///{tmp_path / 'm.db'}", progress=False
    )
    assert_matches_answer_key(
        report, lambda name: datasets.load_answer_key(name, tmp_path)
    )
    faults = datasets.load_answer_key("faults", tmp_path)
    quarantined = faults[faults["outcome"].str.startswith("quarantined")]
    assert quarantined["count"].sum() == len(report.quarantine)
