"""Bad raw files: each raises a DataFileError subclass whose message gives the fix.

Every test also checks that the raw file is byte-identical afterwards.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from medkit._reading import read_categorical
from medkit.digitize import LABS, PATIENTS, VISITS, clean, digitize_hospital, read_table
from medkit.exceptions import (
    DataFileError,
    DelimiterError,
    DuplicateColumnError,
    EmptyFileError,
    EncodingError,
    MissingColumnError,
    UnknownValueError,
)

PATIENT_HEADER = "patient_id,name,sex,birth_date,phone,national_id,postcode,address"
PATIENT_ROW = "000001,Zhang Wei,M,1956-03-07,138,110101195603070011,010010,1 Oak Road"
VISIT_HEADER = (
    "visit_id,patient_id,admit_date,discharge_date,department,icd10,age,"
    "systolic_bp,heart_rate,readmit_30d"
)
VISIT_ROW = "V0000001,000001,2024-01-05,2024-01-10,心内科,I10,67,130,80,0"


def write(tmp_path: Path, content: bytes | str, name: str = "patients.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def raises_from_file(
    path: Path, exception: type[Exception], match: str, run
) -> Exception:
    """Run ``run``, check the exception and that the file did not change."""
    before = path.read_bytes()
    with pytest.raises(exception, match=match) as caught:
        run()
    assert path.read_bytes() == before
    assert caught.value.path == path
    assert str(path) in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    "content",
    [b"", b"   \n\n", b"\xef\xbb\xbf"],
    ids=["no_bytes", "blank_lines", "byte_order_mark_only"],
)
def test_read_empty_file(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path, content)
    error = raises_from_file(
        path,
        EmptyFileError,
        "is empty. Export the table again with a header row",
        lambda: read_table(path, PATIENTS),
    )
    assert error.row == 1


def test_read_header_only(tmp_path: Path) -> None:
    path = write(tmp_path, PATIENT_HEADER + "\n")
    error = raises_from_file(
        path,
        EmptyFileError,
        "has a header but no records. Export the table again",
        lambda: read_table(path, PATIENTS),
    )
    assert error.row == 2


def test_read_unknown_encoding(tmp_path: Path) -> None:
    # "Café" in Latin-1: byte 0xE9 is valid in neither UTF-8 nor GB18030 here.
    text = (
        f"{PATIENT_HEADER}\n{PATIENT_ROW}\n{PATIENT_ROW.replace('Zhang Wei', 'Café')}\n"
    )
    path = write(tmp_path, text.encode("latin-1"))
    error = raises_from_file(
        path,
        EncodingError,
        r"is not valid utf-8 or gb18030 text: byte 0xe9 in row 3 cannot be decoded\. "
        r".*[Rr]e-save the file as UTF-8, or pass",
        lambda: read_table(path, PATIENTS),
    )
    assert isinstance(error, UnicodeError)
    assert error.row == 3
    assert error.value == b"\xe9"
    frame = read_table(path, PATIENTS, encoding="latin-1")
    assert frame.loc[1, "name"] == "Café"


def test_read_wrong_explicit_encoding(tmp_path: Path) -> None:
    path = write(tmp_path, f"{VISIT_HEADER}\n{VISIT_ROW}\n".encode("gb18030"))
    raises_from_file(
        path,
        EncodingError,
        "is not valid utf-8 text: byte 0x",
        lambda: read_table(path, VISITS, encoding="utf-8"),
    )


@pytest.mark.parametrize(
    ("delimiter", "name"),
    [(";", "';'"), ("\t", "tab"), ("|", "'|'")],
    ids=["semicolon", "tab", "pipe"],
)
def test_read_wrong_delimiter(tmp_path: Path, delimiter: str, name: str) -> None:
    text = f"{PATIENT_HEADER}\n{PATIENT_ROW}\n".replace(",", delimiter)
    path = write(tmp_path, text)
    error = raises_from_file(
        path,
        DelimiterError,
        f"is separated by {re.escape(name)}, not ','. Export the file as "
        f"comma-separated values, or pass delimiter={re.escape(repr(delimiter))}",
        lambda: read_table(path, PATIENTS),
    )
    assert error.row == 1
    assert read_table(path, PATIENTS, delimiter=delimiter).loc[0, "name"] == "Zhang Wei"


def test_read_single_column_header(tmp_path: Path) -> None:
    path = write(tmp_path, PATIENT_HEADER.replace(",", " ") + "\n" + "x\n")
    raises_from_file(
        path,
        DelimiterError,
        "the header has one column, 'patient_id name",
        lambda: read_table(path, PATIENTS),
    )


def test_read_missing_required_column(tmp_path: Path) -> None:
    header = PATIENT_HEADER.replace("birth_date", "Birth_Date")
    path = write(tmp_path, f"{header}\n{PATIENT_ROW}\n")
    error = raises_from_file(
        path,
        MissingColumnError,
        r"has no column 'birth_date', which the patients spec requires\. The header "
        r"\(row 1\) has .*Birth_Date.*\. Rename 'Birth_Date' to 'birth_date' if it "
        r"is that column\. Otherwise add the column to the file",
        lambda: read_table(path, PATIENTS),
    )
    assert isinstance(error, KeyError)
    assert error.column == "birth_date"
    assert error.row == 1
    assert not str(error).startswith("'")


def test_read_missing_columns_listed(tmp_path: Path) -> None:
    path = write(tmp_path, "lab_id,visit_id,test\nL00000001,V0000001,GLU\n", "labs.csv")
    raises_from_file(
        path,
        MissingColumnError,
        "has no column 'value' \\(also missing: unit, taken_date\\)",
        lambda: read_table(path, LABS),
    )


def test_clean_frame_without_required_column() -> None:
    frame = pd.DataFrame({"lab_id": ["L00000001"], "visit_id": ["V0000001"]})
    with pytest.raises(
        MissingColumnError, match="The frame has no column 'test'"
    ) as caught:
        clean(frame, LABS)
    assert caught.value.column == "test"
    assert caught.value.path is None


def test_read_duplicate_header(tmp_path: Path) -> None:
    header = PATIENT_HEADER.replace("postcode", "phone")
    path = write(tmp_path, f"{header}\n{PATIENT_ROW}\n")
    error = raises_from_file(
        path,
        DuplicateColumnError,
        r"column 'phone' appears twice in the header \(row 1, columns 5 and 7\)\. "
        "Rename or remove one of them.",
        lambda: read_table(path, PATIENTS),
    )
    assert error.column == "phone"


def test_read_row_with_extra_field(tmp_path: Path) -> None:
    path = write(tmp_path, f"{PATIENT_HEADER}\n{PATIENT_ROW}\n{PATIENT_ROW},extra\n")
    error = raises_from_file(
        path,
        DataFileError,
        "row 3 has 9 fields but the header has 8. Quote values that contain",
        lambda: read_table(path, PATIENTS),
    )
    assert error.row == 3


def test_read_first_row_with_extra_field(tmp_path: Path) -> None:
    path = write(tmp_path, f"{PATIENT_HEADER}\n{PATIENT_ROW},extra\n{PATIENT_ROW}\n")
    raises_from_file(
        path,
        DataFileError,
        "row 2 has more fields than the header's 8",
        lambda: read_table(path, PATIENTS),
    )


@pytest.mark.parametrize(
    "content",
    [
        b"",
        f"{PATIENT_HEADER}\n".encode(),
        f"{PATIENT_HEADER}\n{PATIENT_ROW.replace('Zhang', 'Café')}\n".encode("latin-1"),
        f"{PATIENT_HEADER}\n{PATIENT_ROW}\n".replace(",", ";").encode(),
        f"{PATIENT_HEADER.replace('sex', 'Sex')}\n{PATIENT_ROW}\n".encode(),
        f"{PATIENT_HEADER},sex\n{PATIENT_ROW},M\n".encode(),
        f"{PATIENT_HEADER}\n{PATIENT_ROW}\n{PATIENT_ROW},extra\n".encode(),
        f"{PATIENT_HEADER}\n{PATIENT_ROW},extra\n".encode(),
    ],
    ids=[
        "empty",
        "header_only",
        "latin1",
        "semicolons",
        "missing_column",
        "duplicate_column",
        "extra_field",
        "first_row_extra_field",
    ],
)
def test_read_categorical_raises_like_read_table(
    tmp_path: Path, content: bytes
) -> None:
    path = write(tmp_path, content)
    with pytest.raises(DataFileError) as expected:
        read_table(path, PATIENTS)
    with pytest.raises(type(expected.value)) as caught:
        read_categorical(path, PATIENTS)
    assert str(caught.value) == str(expected.value)
    assert caught.value.row == expected.value.row
    assert caught.value.column == expected.value.column


@pytest.mark.parametrize(
    ("column", "value", "fix"),
    [
        (
            "sex",
            "X",
            "Add it to the spellings of 'sex' in the spec, or to the spec's "
            "missing_tokens.",
        ),
        (
            "birth_date",
            "next week",
            "Write dates as YYYY-MM-DD, DD/MM/YYYY or "
            "YYYY年M月D日, or add the value to the spec's missing_tokens.",
        ),
        (
            "patient_id",
            "P12",
            "Expected 6 digits; correct the ID in the file, or "
            "change the format of 'patient_id' in the spec's ids.",
        ),
    ],
    ids=["category", "date", "id"],
)
def test_clean_patient_value_fits_no_rule(
    tmp_path: Path, column: str, value: str, fix: str
) -> None:
    position = PATIENT_HEADER.split(",").index(column)
    fields = PATIENT_ROW.replace("000001", "000002").split(",")
    fields[position] = value
    path = write(tmp_path, f"{PATIENT_HEADER}\n{PATIENT_ROW}\n{','.join(fields)}\n")
    error = raises_from_file(
        path,
        UnknownValueError,
        f"column '{column}' has value '{value}' in row 3, which fits no rule of the "
        f"patients spec \\(rows with such values: 1; values: '{value}'\\). "
        f"{re.escape(fix)}",
        lambda: clean(read_table(path, PATIENTS), PATIENTS),
    )
    assert (error.column, error.row, error.value) == (column, 3, value)


@pytest.mark.parametrize(
    ("column", "value", "fix"),
    [
        ("age", "sixty", "Expected a whole number"),
        ("age", "67.5", "Expected a whole number"),
        ("icd10", "E11-9", "Correct the code in the file, or change the pattern"),
        ("visit_id", "X0000002", "Expected 'V' followed by 7 digits"),
        ("department", "眼科", "Add it to the spellings of 'department'"),
    ],
    ids=["age_text", "age_fraction", "icd10", "visit_id", "department"],
)
def test_clean_visit_value_fits_no_rule(
    tmp_path: Path, column: str, value: str, fix: str
) -> None:
    position = VISIT_HEADER.split(",").index(column)
    fields = VISIT_ROW.split(",")
    fields[position] = value
    first = VISIT_ROW.replace("V0000001", "V0000009")
    text = f"{VISIT_HEADER}\n{first}\n{','.join(fields)}\n"
    path = write(tmp_path, text.encode("gb18030"), "visits.csv")
    error = raises_from_file(
        path,
        UnknownValueError,
        f"column '{column}' has value '{value}' in row 3.*{fix}",
        lambda: clean(read_table(path, VISITS), VISITS),
    )
    assert error.row == 3


def test_digitize_hospital_writes_nothing_on_error(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    write(raw, f"{PATIENT_HEADER}\n{PATIENT_ROW}\n")
    write(raw, f"{VISIT_HEADER}\n{VISIT_ROW}\n".encode("gb18030"), "visits.csv")
    labs = write(raw, "lab_id;visit_id;test;value;unit;taken_date\n", "labs.csv")
    database = tmp_path / "medkit.db"
    raises_from_file(
        labs,
        DelimiterError,
        "is separated by ';'",
        lambda: digitize_hospital(raw, f"sqlite:///{database}", progress=False),
    )
    assert not database.exists()


BAD_PATIENT_FILES = {
    "empty_file": b"",
    "header_only": PATIENT_HEADER.encode() + b"\n",
    "latin_1_bytes": (PATIENT_HEADER + "\n" + PATIENT_ROW + ",Caf\xe9\n").encode(
        "latin-1"
    ),
    "wrong_delimiter": (
        PATIENT_HEADER.replace(",", ";") + "\n" + PATIENT_ROW.replace(",", ";") + "\n"
    ).encode(),
    "missing_column": (
        PATIENT_HEADER.replace(",sex", "") + "\n" + PATIENT_ROW.replace(",M", "") + "\n"
    ).encode(),
    "duplicate_header": (
        PATIENT_HEADER.replace("phone", "name") + "\n" + PATIENT_ROW + "\n"
    ).encode(),
    "unknown_sex_spelling": (
        PATIENT_HEADER + "\n" + PATIENT_ROW.replace(",M,", ",X,") + "\n"
    ).encode(),
}


@pytest.mark.parametrize("case", list(BAD_PATIENT_FILES), ids=list(BAD_PATIENT_FILES))
def test_cli_digitize_bad_file_one_line(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from medkit import datasets
    from medkit.cli import main

    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("visits", "labs"):
        (raw / f"{name}.csv").write_bytes(datasets.raw_path(name).read_bytes())
    patients = write(raw, BAD_PATIENT_FILES[case])
    before = patients.read_bytes()
    database = tmp_path / "out.db"

    status = main(["digitize", "--raw", str(raw), "--db", f"sqlite:///{database}"])

    captured = capsys.readouterr()
    assert status == 1
    assert captured.out == ""
    assert captured.err.startswith("medkit: error: ")
    assert captured.err.count("\n") == 1
    assert "patients.csv" in captured.err
    assert "Traceback" not in captured.err
    assert patients.read_bytes() == before
    assert not database.exists()


def test_read_latin_1_not_taken_for_gb18030(tmp_path: Path) -> None:
    row = PATIENT_ROW.replace("Zhang Wei", "Anna Müller")
    path = write(tmp_path, (PATIENT_HEADER + "\n" + row + "\n").encode("latin-1"))

    error = raises_from_file(
        path,
        EncodingError,
        r"0xfc6c in row 2 into rare characters \('黮'\).*Re-save the file as UTF-8",
        lambda: read_table(path, PATIENTS),
    )
    assert error.row == 2


def test_read_gb18030_with_one_rare_character(tmp_path: Path) -> None:
    rows = [VISIT_ROW.replace("V0000001", f"V{n:07d}") for n in range(1, 201)]
    rows[5] = rows[5].replace("心内科", "心内科黮")
    path = write(
        tmp_path,
        (VISIT_HEADER + "\n" + "\n".join(rows) + "\n").encode("gb18030"),
        name="visits.csv",
    )

    frame = read_table(path, VISITS)

    assert frame.attrs["encoding"] == "gb18030"
    assert frame.loc[5, "department"] == "心内科黮"
