"""Tests of medkit.privacy: keys, pseudonyms, generalisation, k-anonymity, scanner."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re

import nbformat
import numpy as np
import pandas as pd
import pytest

from medkit import datasets, privacy
from medkit._privacy_kanon import DEFAULT_GENERALIZERS
from medkit._privacy_patterns import mask, national_id_is_valid
from medkit.exceptions import (
    IdentifierFoundError,
    MedkitError,
    MissingColumnError,
    PrivacyError,
    PrivacyKeyError,
)

KEY = b"a test key that is long enough"
OTHER_KEY = b"another test key, also long enough"
QUASI = ["sex", "age_band", "postcode_prefix"]


def hmac_hex(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


@pytest.fixture
def patients() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": ["000001", "000002"],
            "name": ["王伟", "Mary Smith"],
            "sex": ["M", None],
            "birth_date": ["1960-02-10", "1934-07-01"],
            "phone": ["13812345678", None],
            "national_id": ["994097195603011927", "99010119800101105X"],
            "postcode": ["012345", "730945"],
            "address": ["青禾市东城区人民路1号", "12 Oak Road, Eastbrook"],
        },
        dtype="str",
    )


@pytest.fixture
def visits() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "visit_id": ["V0000001", "V0000002", "V0000003"],
            "patient_id": ["000001", "000002", "000001"],
            "admit_date": ["2024-01-30", "2024-03-01", "2024-12-31"],
            "discharge_date": ["2024-02-02", "2024-03-01", "2025-01-05"],
            "department": ["心内科", "骨科", "心内科"],
            "icd10": ["I10", "S72.0", "I50.0"],
            "age": pd.array([64, 90, 65], dtype="int64"),
            "systolic_bp": pd.array([150, None, 130], dtype="Int64"),
            "heart_rate": pd.array([80, None, 95], dtype="Int64"),
            "readmit_30d": pd.array([0, 1, 1], dtype="int64"),
        }
    )


# Keys -------------------------------------------------------------------------


def test_new_key_is_64_hex_digits() -> None:
    key = privacy.new_key()
    assert len(key) == 64
    assert int(key, 16) >= 0
    assert privacy.new_key() != key


def test_load_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDKIT_PSEUDONYM_KEY", "  0123456789abcdef0123\n")
    assert privacy.load_key() == b"0123456789abcdef0123"


def test_load_key_from_other_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SITE_KEY", "0123456789abcdef")
    assert privacy.load_key(env="SITE_KEY") == b"0123456789abcdef"


def test_load_key_from_file(tmp_path) -> None:
    path = tmp_path / "key"
    path.write_text("0123456789abcdef0123456789abcdef\n", encoding="utf-8")
    path.chmod(0o600)
    assert privacy.load_key(path) == b"0123456789abcdef0123456789abcdef"


def test_load_key_unset_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDKIT_PSEUDONYM_KEY", raising=False)
    with pytest.raises(
        PrivacyKeyError, match="MEDKIT_PSEUDONYM_KEY is not set"
    ) as info:
        privacy.load_key()
    assert "new_key()" in str(info.value)
    assert info.value.source == "$MEDKIT_PSEUDONYM_KEY"


def test_load_key_missing_file(tmp_path) -> None:
    with pytest.raises(PrivacyKeyError, match="key file .*nokey not found"):
        privacy.load_key(tmp_path / "nokey")


@pytest.mark.parametrize("text", ["", "   \n"], ids=["empty", "blank"])
def test_load_key_empty(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv("MEDKIT_PSEUDONYM_KEY", text)
    with pytest.raises(PrivacyKeyError, match="is empty"):
        privacy.load_key()


def test_load_key_short_key_not_in_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDKIT_PSEUDONYM_KEY", "s3cr3t-word")
    with pytest.raises(
        PrivacyKeyError, match="has 11 bytes; expected at least 16"
    ) as info:
        privacy.load_key()
    assert "s3cr3t" not in str(info.value)


def test_load_key_never_logged(monkeypatch, caplog) -> None:
    monkeypatch.setenv("MEDKIT_PSEUDONYM_KEY", "very-secret-key-text-0001")
    with caplog.at_level(logging.DEBUG, logger="medkit"):
        privacy.load_key()
    assert "very-secret" not in caplog.text
    assert "25 bytes" in caplog.text


def test_load_key_warns_on_readable_file(tmp_path, caplog) -> None:
    path = tmp_path / "key"
    path.write_text("0123456789abcdef0123456789abcdef", encoding="utf-8")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="medkit"):
        privacy.load_key(path)
    assert "readable by other users" in caplog.text


def test_errors_are_medkit_errors() -> None:
    assert issubclass(PrivacyKeyError, PrivacyError)
    assert issubclass(IdentifierFoundError, PrivacyError)
    assert issubclass(PrivacyError, MedkitError)
    assert issubclass(PrivacyError, ValueError)


# Pseudonyms and date shifts -----------------------------------------------------


def test_pseudonymize_is_keyed_hmac() -> None:
    result = privacy.pseudonymize(["000123", "000124"], KEY)
    assert result.tolist() == [
        "P" + hmac_hex(KEY, "000123")[:12],
        "P" + hmac_hex(KEY, "000124")[:12],
    ]


def test_pseudonymize_prefix_and_length() -> None:
    result = privacy.pseudonymize(["V0000001"], KEY, prefix="R", length=20)
    assert result.tolist() == ["R" + hmac_hex(KEY, "V0000001")[:20]]


def test_pseudonymize_same_key_same_value() -> None:
    ids = pd.Series(["000001", "000002", "000001"], index=[7, 8, 9])
    first = privacy.pseudonymize(ids, KEY)
    second = privacy.pseudonymize(ids.iloc[::-1], KEY)
    assert first[7] == first[9]
    assert first.to_dict() == second.to_dict()
    assert first.index.tolist() == [7, 8, 9]


def test_pseudonymize_other_key_other_value() -> None:
    first = privacy.pseudonymize(["000001"], KEY)
    second = privacy.pseudonymize(["000001"], OTHER_KEY)
    assert first[0] != second[0]


def test_pseudonymize_missing_stays_missing() -> None:
    result = privacy.pseudonymize(["000001", None, np.nan], KEY)
    assert result.isna().tolist() == [False, True, True]


@pytest.mark.parametrize("length", [7, 65])
def test_pseudonymize_length_out_of_range(length: int) -> None:
    with pytest.raises(PrivacyError, match=f"length {length} is out of range"):
        privacy.pseudonymize(["1"], KEY, length=length)


@pytest.mark.parametrize(
    "key, size",
    [(b"", 0), (b"abc", 3), ("short text key", 14)],
    ids=["empty", "3-bytes", "str"],
)
def test_pseudonymize_short_key(key: bytes | str, size: int) -> None:
    expected = f"The pseudonym key has {size} bytes; expected at least 16."
    with pytest.raises(PrivacyKeyError, match=re.escape(expected)):
        privacy.pseudonymize(["1"], key)
    with pytest.raises(PrivacyKeyError, match=re.escape(expected)):
        privacy.shift_dates(["2024-01-01"], ["1"], key)


def test_pseudonymize_new_key_text_equals_loaded_bytes(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = privacy.new_key()
    (tmp_path / "key").write_text(key + "\n", encoding="utf-8")
    (tmp_path / "key").chmod(0o600)
    loaded = privacy.load_key(tmp_path / "key")

    assert loaded == key.encode("ascii")
    from_text = privacy.pseudonymize(["000123"], key)
    assert from_text.tolist() == privacy.pseudonymize(["000123"], loaded).tolist()
    assert from_text[0] == "P" + hmac_hex(loaded, "000123")[:12]


def test_pseudonymize_bare_string_rejected() -> None:
    with pytest.raises(PrivacyError) as raised:
        privacy.pseudonymize("000123", KEY)

    assert str(raised.value) == (
        "Expected a Series or a list of values, got a single str of 6 characters; "
        "wrap it in a list, such as [value]."
    )
    assert "000123" not in str(raised.value)


def test_load_key_short_key_raises_before_permission_warning(tmp_path, caplog) -> None:
    path = tmp_path / "key"
    path.write_text("0123456789", encoding="utf-8")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="medkit"):
        with pytest.raises(PrivacyKeyError, match="has 10 bytes; expected at least 16"):
            privacy.load_key(path)
    assert caplog.text == ""


def test_pseudonymize_collision_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "medkit._privacy_keys._digests",
        lambda texts, key, label=b"": [b"\x01" * 32 for _ in texts],
    )
    with pytest.raises(PrivacyError, match="same 12-digit pseudonym"):
        privacy.pseudonymize(["1", "2"], KEY)


def _expected_shift(key: bytes, patient_id: str, max_days: int) -> int:
    mac = hmac.new(key, b"medkit date shift\x00" + patient_id.encode(), "sha256")
    shift = int.from_bytes(mac.digest()[:8], "big") % (2 * max_days) - max_days
    return shift + 1 if shift >= 0 else shift


def test_shift_dates_per_patient() -> None:
    dates = ["2020-01-01", "2020-01-11", "2020-06-30"]
    result = privacy.shift_dates(dates, ["A", "A", "B"], KEY)
    shifted = pd.to_datetime(result)
    original = pd.to_datetime(pd.Series(dates))
    offsets = (shifted - original).dt.days.tolist()
    assert offsets == [
        _expected_shift(KEY, "A", 180),
        _expected_shift(KEY, "A", 180),
        _expected_shift(KEY, "B", 180),
    ]
    assert (shifted[1] - shifted[0]).days == 10


def test_shift_dates_within_range_never_zero() -> None:
    ids = [f"{i:06d}" for i in range(500)]
    result = privacy.shift_dates(["2020-03-01"] * 500, ids, KEY, max_days=3)
    offsets = (pd.to_datetime(result) - pd.Timestamp("2020-03-01")).dt.days
    assert sorted(offsets.unique().tolist()) == [-3, -2, -1, 1, 2, 3]


def test_shift_dates_missing_stays_missing() -> None:
    result = privacy.shift_dates(["2020-01-01", None], ["A", "A"], KEY)
    assert result.isna().tolist() == [False, True]


def test_shift_dates_length_mismatch() -> None:
    with pytest.raises(PrivacyError, match="2 dates and 1 IDs"):
        privacy.shift_dates(["2020-01-01", "2020-01-02"], ["A"], KEY)


def test_shift_dates_unreadable_date() -> None:
    with pytest.raises(PrivacyError, match="Cannot read dates"):
        privacy.shift_dates(["2020-13-45"], ["A"], KEY)


# Generalisation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "band"),
    [(0, "0-9"), (9, "0-9"), (10, "10-19"), (64.9, "60-69"), (89, "80-89"),
     (90, "90+"), (104, "90+")],
    ids=["zero", "nine", "ten", "fraction", "eighty-nine", "ninety", "over-top"],
)  # fmt: skip
def test_age_band_default(age: float, band: str) -> None:
    assert privacy.age_band([age]).tolist() == [band]


def test_age_band_top_between_bands() -> None:
    result = privacy.age_band([79, 80, 84, 85, 99], width=10, top=85)
    assert result.tolist() == ["70-79", "80-84", "80-84", "85+", "85+"]


def test_age_band_width_five() -> None:
    assert privacy.age_band([23, 25], width=5).tolist() == ["20-24", "25-29"]


def test_age_band_missing_and_index() -> None:
    ages = pd.Series([61, None], index=["a", "b"], dtype="Int64")
    result = privacy.age_band(ages)
    assert result.index.tolist() == ["a", "b"]
    assert result["a"] == "60-69"
    assert pd.isna(result["b"])


@pytest.mark.parametrize("age", [-1, "old"], ids=["negative", "text"])
def test_age_band_invalid_age(age: object) -> None:
    with pytest.raises(PrivacyError, match="at position 1 is not a non-negative"):
        privacy.age_band(pd.Series([50, age], dtype=object))


@pytest.mark.parametrize(
    "ages, shown",
    [([-1], "-1"), (np.array([-1.5]), "-1.5"), (pd.Series([30, -2.0]), "-2")],
    ids=["int", "float", "series"],
)
def test_age_band_negative_age_message(ages: object, shown: str) -> None:
    with pytest.raises(PrivacyError) as raised:
        privacy.age_band(ages)
    assert str(raised.value).startswith(f"Age {shown} at position ")


def test_to_month_no_warning_and_iso_only() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = privacy.to_month(["2024-03-07", "2024-03-07 08:30", None])
    assert result.tolist()[:2] == ["2024-03", "2024-03"]
    with pytest.raises(PrivacyError, match="Write dates as ISO text"):
        privacy.to_month(["07/03/2024"])


def test_to_month() -> None:
    result = privacy.to_month(["2024-03-07", "2019-12-31", None])
    assert result.tolist()[:2] == ["2024-03", "2019-12"]
    assert pd.isna(result[2])


def test_postcode_prefix() -> None:
    result = privacy.postcode_prefix(["012345", " 730945", None])
    assert result.tolist()[:2] == ["012", "730"]
    assert pd.isna(result[2])
    assert privacy.postcode_prefix(["012345"], digits=2).tolist() == ["01"]


def test_postcode_prefix_numbers_rejected() -> None:
    with pytest.raises(PrivacyError, match="read them as text"):
        privacy.postcode_prefix(pd.Series([12345, 730945]))


@pytest.mark.parametrize("code", ["73", "AB1234"], ids=["short", "letters"])
def test_postcode_prefix_invalid_code(code: str) -> None:
    with pytest.raises(PrivacyError, match=f"Postcode '{code}' at index 1"):
        privacy.postcode_prefix(["012345", code])


def test_widen_bands_levels() -> None:
    first, second = DEFAULT_GENERALIZERS["age_band"]
    bands = pd.Series(["0-9", "60-69", "70-79", "80-89", "90+", None], dtype="str")
    wider = first(bands)
    assert wider.tolist()[:5] == ["0-19", "60-79", "60-79", "80+", "80+"]
    assert pd.isna(wider[5])
    assert second(wider).tolist()[:5] == ["0-39", "40-79", "40-79", "80+", "80+"]


def test_month_levels() -> None:
    quarter, year = DEFAULT_GENERALIZERS["admit_month"]
    months = pd.Series(["2019-03", "2019-04", "2020-12"], dtype="str")
    assert quarter(months).tolist() == ["2019-Q1", "2019-Q2", "2020-Q4"]
    assert year(quarter(months)).tolist() == ["2019", "2019", "2020"]


def test_postcode_levels() -> None:
    shorten = DEFAULT_GENERALIZERS["postcode_prefix"][0]
    codes = pd.Series(["730", "7", None], dtype="str")
    result = shorten(codes)
    assert result.tolist()[:2] == ["73", "*"]
    assert pd.isna(result[2])


# deidentify and shared records -----------------------------------------------


def test_deidentify_patients(patients: pd.DataFrame) -> None:
    result = privacy.deidentify(patients, "patients", KEY)
    assert result.columns.tolist() == [
        "patient_id",
        "sex",
        "birth_month",
        "postcode_prefix",
    ]
    assert result["patient_id"].tolist() == [
        "P" + hmac_hex(KEY, "000001")[:12],
        "P" + hmac_hex(KEY, "000002")[:12],
    ]
    assert result["birth_month"].tolist() == ["1960-02", "1934-07"]
    assert result["postcode_prefix"].tolist() == ["012", "730"]


def test_deidentify_visits_by_month(visits: pd.DataFrame) -> None:
    result = privacy.deidentify(visits, "visits", KEY)
    assert result.columns.tolist() == [
        "visit_id", "patient_id", "admit_month", "discharge_month", "department",
        "icd10", "age_band", "systolic_bp", "heart_rate", "readmit_30d",
    ]  # fmt: skip
    assert result["visit_id"][0] == "R" + hmac_hex(KEY, "V0000001")[:12]
    assert result["discharge_month"].tolist() == ["2024-02", "2024-03", "2025-01"]
    assert result["age_band"].tolist() == ["60-69", "90+", "60-69"]


def test_deidentify_visits_shift_keeps_stays(visits: pd.DataFrame) -> None:
    result = privacy.deidentify(visits, "visits", KEY, dates="shift")
    stays = pd.to_datetime(result["discharge_date"]) - pd.to_datetime(
        result["admit_date"]
    )
    assert stays.dt.days.tolist() == [3, 0, 5]
    shift = _expected_shift(KEY, "000001", 180)
    expected = pd.Timestamp("2024-01-30") + pd.Timedelta(days=shift)
    assert result["admit_date"][0] == expected.strftime("%Y-%m-%d")


def test_deidentify_shift_needs_patient_id(visits: pd.DataFrame) -> None:
    labs = pd.DataFrame({"lab_id": ["L1"], "taken_date": ["2024-01-01"]})
    with pytest.raises(MissingColumnError, match="'patient_id' is missing"):
        privacy.deidentify(labs, "labs", KEY, dates="shift")


def test_deidentify_unknown_column(visits: pd.DataFrame) -> None:
    frame = visits.assign(ward_phone="123")
    with pytest.raises(PrivacyError, match=r"\['ward_phone'\] of table 'visits'"):
        privacy.deidentify(frame, "visits", KEY)


def test_deidentify_roles_override(visits: pd.DataFrame) -> None:
    frame = visits.assign(ward_phone="123")
    result = privacy.deidentify(frame, "visits", KEY, roles={"ward_phone": "direct"})
    assert "ward_phone" not in result.columns


def test_deidentify_unknown_table(patients: pd.DataFrame) -> None:
    with pytest.raises(PrivacyError, match="Unknown table 'people'"):
        privacy.deidentify(patients, "people", KEY)


def test_roles_cover_answer_key_columns() -> None:
    for table in ("patients", "visits", "labs"):
        columns = datasets.load_answer_key(table).columns.tolist()
        assert columns == list(privacy.ROLES[table])
    direct = [c for c, role in privacy.ROLES["patients"].items() if role == "direct"]
    assert direct == ["name", "phone", "national_id", "address"]


def test_shared_records_hand_computed(patients, visits) -> None:
    result = privacy.shared_records(patients, visits, KEY, "north")
    expected = pd.DataFrame(
        {
            "record_id": ["R" + hmac_hex(KEY, v)[:12] for v in visits["visit_id"]],
            "patient_pseudonym": [
                "P" + hmac_hex(KEY, p)[:12] for p in visits["patient_id"]
            ],
            "site": ["north"] * 3,
            "sex": ["M", None, "M"],
            "age_band": ["60-69", "90+", "60-69"],
            "admit_month": ["2024-01", "2024-03", "2024-12"],
            "length_of_stay": pd.array([3, 0, 5], dtype="int64"),
            "postcode_prefix": ["012", "730", "012"],
            "department": ["心内科", "骨科", "心内科"],
            "icd10": ["I10", "S72.0", "I50.0"],
            "systolic_bp": pd.array([150, None, 130], dtype="Int64"),
            "heart_rate": pd.array([80, None, 95], dtype="Int64"),
            "readmit_30d": pd.array([0, 1, 1], dtype="int64"),
        }
    ).astype(dict(privacy.SHARED_DTYPES))
    pd.testing.assert_frame_equal(result, expected)
    assert tuple(result.columns) == privacy.SHARED_COLUMNS


def test_shared_records_same_key_other_site(patients, visits) -> None:
    north = privacy.shared_records(patients, visits, KEY, "north")
    south = privacy.shared_records(patients, visits, KEY, "south")
    other = privacy.shared_records(patients, visits, OTHER_KEY, "north")
    assert north["patient_pseudonym"].tolist() == south["patient_pseudonym"].tolist()
    assert north["patient_pseudonym"][0] != other["patient_pseudonym"][0]


def test_shared_records_unknown_patient(patients, visits) -> None:
    with pytest.raises(PrivacyError, match="1 visits refer .* visit 'V0000002'"):
        privacy.shared_records(patients.iloc[:1], visits, KEY, "north")


def test_shared_records_repeated_patient(patients, visits) -> None:
    doubled = pd.concat([patients, patients.iloc[:1]])
    with pytest.raises(PrivacyError, match="1 patient IDs appear more than once"):
        privacy.shared_records(doubled, visits, KEY, "north")


def test_shared_records_discharge_before_admission(patients, visits) -> None:
    visits.loc[2, "discharge_date"] = "2024-12-01"
    with pytest.raises(PrivacyError, match="'V0000003' is discharged before"):
        privacy.shared_records(patients, visits, KEY, "north")


def test_shared_records_unknown_sex(patients, visits) -> None:
    patients.loc[0, "sex"] = "male"
    with pytest.raises(PrivacyError, match="Sex 'male' is not 'M', 'F' or missing"):
        privacy.shared_records(patients, visits, KEY, "north")


def test_shared_records_missing_column(patients, visits) -> None:
    with pytest.raises(MissingColumnError, match="'icd10' is missing from visits"):
        privacy.shared_records(patients, visits.drop(columns="icd10"), KEY, "north")


@pytest.mark.parametrize("site", ["", "  ", None], ids=["empty", "blank", "none"])
def test_shared_records_empty_site(patients, visits, site) -> None:
    with pytest.raises(PrivacyError, match="Site name .* is empty"):
        privacy.shared_records(patients, visits, KEY, site)


@pytest.fixture(scope="module")
def shipped() -> pd.DataFrame:
    return privacy.shared_records(
        datasets.load_answer_key("patients"),
        datasets.load_answer_key("visits"),
        KEY,
        "north",
    )


def test_shared_records_shipped_dataset(shipped: pd.DataFrame) -> None:
    patients = datasets.load_answer_key("patients")
    visits = datasets.load_answer_key("visits")
    assert len(shipped) == 6113
    again = privacy.shared_records(patients, visits, KEY, "north")
    pd.testing.assert_frame_equal(again, shipped)
    assert shipped["patient_pseudonym"].nunique() == 2000
    assert shipped["record_id"].nunique() == 6113
    report = privacy.scan(
        shipped, known_ids=patients["patient_id"], known_names=patients["name"]
    )
    assert report.ok


# k-anonymity --------------------------------------------------------------------


@pytest.fixture
def small() -> pd.DataFrame:
    """Classes (F,60-69,100) x3, (M,60-69,100) x2 and (M,70-79,200) x1."""
    return pd.DataFrame(
        {
            "sex": ["F", "F", "F", "M", "M", "M"],
            "age_band": ["60-69"] * 5 + ["70-79"],
            "postcode_prefix": ["100"] * 5 + ["200"],
        },
        dtype="str",
    )


def test_k_anonymity_smallest_class(small: pd.DataFrame) -> None:
    assert privacy.k_anonymity(small, QUASI) == 1
    assert privacy.k_anonymity(small.iloc[:5], QUASI) == 2
    assert privacy.k_anonymity(small, ["age_band"]) == 1
    assert privacy.k_anonymity(small, ["sex"]) == 3


def test_k_anonymity_empty_frame(small: pd.DataFrame) -> None:
    assert privacy.k_anonymity(small.iloc[:0], QUASI) == 0
    report = privacy.reidentification_risk(small.iloc[:0], QUASI)
    assert report == privacy.RiskReport(0, 0, 0, 0.0, 0.0, 0, 5)


def test_k_anonymity_missing_is_a_value() -> None:
    frame = pd.DataFrame({"sex": ["F", None, None, "F"]}, dtype="str")
    assert privacy.k_anonymity(frame, ["sex"]) == 2


def test_k_anonymity_counts_subjects() -> None:
    frame = pd.DataFrame(
        {"sex": ["F", "F", "F", "M", "M"], "patient": ["a", "a", "a", "b", "c"]}
    )
    assert privacy.k_anonymity(frame, ["sex"]) == 2
    assert privacy.k_anonymity(frame, ["sex"], subject="patient") == 1


def test_k_anonymity_missing_column(small: pd.DataFrame) -> None:
    with pytest.raises(MissingColumnError, match="'age' is missing"):
        privacy.k_anonymity(small, ["sex", "age"])


def test_reidentification_risk_hand_computed(small: pd.DataFrame) -> None:
    report = privacy.reidentification_risk(small, QUASI, k=3)
    assert report.records == 6
    assert report.classes == 3
    assert report.k_min == 1
    assert report.max_risk == 1.0
    assert report.mean_risk == pytest.approx(0.5)
    assert report.records_below_k == 3


def test_reidentification_risk_subject_mean() -> None:
    # Class F: 1 patient in 3 records; class M: 2 patients in 2 records.
    frame = pd.DataFrame(
        {"sex": ["F", "F", "F", "M", "M"], "patient": ["a", "a", "a", "b", "c"]}
    )
    report = privacy.reidentification_risk(frame, ["sex"], k=2, subject="patient")
    assert report.k_min == 1
    assert report.mean_risk == pytest.approx((3 * 1 + 2 * 0.5) / 5)
    assert report.records_below_k == 3


def test_enforce_k_anonymity_suppresses_only(small: pd.DataFrame) -> None:
    result = privacy.enforce_k_anonymity(small, QUASI, k=2, max_suppressed=0.2)
    assert result.steps == []
    assert result.frame.index.tolist() == [0, 1, 2, 3, 4]
    assert result.suppressed.index.tolist() == [5]
    assert result.suppressed["reason"].tolist() == [
        "class sex=M, age_band=70-79, postcode_prefix=200 has 1 records, fewer than k=2"
    ]
    assert result.before.k_min == 1
    assert result.after.k_min == 2
    assert result.after.classes == 2
    assert result.after.mean_risk == pytest.approx(2 / 5)


def test_enforce_k_anonymity_generalises_widest_column() -> None:
    frame = pd.DataFrame(
        {
            "sex": ["F", "F", "F", "M", "M", "M"],
            "postcode_prefix": ["101", "102", "103", "101", "104", "105"],
        },
        dtype="str",
    )
    result = privacy.enforce_k_anonymity(
        frame, ["sex", "postcode_prefix"], k=3, max_suppressed=0
    )
    assert result.steps == ["postcode_prefix: level 1 (shorten), 5 -> 1 values"]
    assert result.frame["postcode_prefix"].tolist() == ["10"] * 6
    assert result.suppressed.empty
    assert result.before.records_below_k == 6
    assert result.after.k_min == 3


def test_enforce_k_anonymity_suppresses_column(small: pd.DataFrame) -> None:
    # Sex has no levels, so Datafly's first step replaces it with "*".
    result = privacy.enforce_k_anonymity(small.iloc[:5], QUASI, k=5, max_suppressed=0)
    assert result.steps == ["sex: suppressed the column (2 values -> '*')"]
    assert result.frame["sex"].tolist() == ["*"] * 5
    assert result.after.k_min == 5


def test_enforce_k_anonymity_custom_generalizer(small: pd.DataFrame) -> None:
    def any_band(values: pd.Series) -> pd.Series:
        return values.str.slice(0, 1) + "x"

    result = privacy.enforce_k_anonymity(
        small.iloc[:5].assign(age_band=["60-69", "70-79"] * 2 + ["60-69"]),
        ["age_band"],
        k=5,
        generalizers={"age_band": [any_band]},
        max_suppressed=0,
    )
    assert result.steps == [
        "age_band: level 1 (any_band), 2 -> 2 values",
        "age_band: suppressed the column (2 values -> '*')",
    ]


def test_enforce_k_anonymity_too_few_records(small: pd.DataFrame) -> None:
    with pytest.raises(PrivacyError, match="has 6 records but k is 7"):
        privacy.enforce_k_anonymity(small, QUASI, k=7)


def test_enforce_k_anonymity_too_few_people() -> None:
    frame = pd.DataFrame({"sex": ["F", "F", "M"], "patient": ["a", "a", "b"]})
    with pytest.raises(PrivacyError, match="has 2 people but k is 3"):
        privacy.enforce_k_anonymity(frame, ["sex"], k=3, subject="patient")


@pytest.mark.parametrize("k", [0, 2.5], ids=["zero", "fraction"])
def test_enforce_k_anonymity_invalid_k(small: pd.DataFrame, k: object) -> None:
    with pytest.raises(PrivacyError, match="expected a whole number"):
        privacy.enforce_k_anonymity(small, QUASI, k=k)


def test_enforce_k_anonymity_invalid_share(small: pd.DataFrame) -> None:
    with pytest.raises(PrivacyError, match="max_suppressed is 1.5"):
        privacy.enforce_k_anonymity(small, QUASI, max_suppressed=1.5)


def test_enforce_k_anonymity_shipped_dataset(shipped: pd.DataFrame) -> None:
    result = privacy.enforce_k_anonymity(shipped, QUASI, k=5)
    assert result.before.records == 6113
    assert result.before.classes == 2032
    assert result.before.records_below_k == 3459
    assert result.steps == [
        "postcode_prefix: level 1 (shorten), 792 -> 90 values",
        "postcode_prefix: level 2 (shorten), 90 -> 9 values",
    ]
    assert len(result.suppressed) == 65
    assert len(result.frame) == 6113 - 65
    assert result.after.k_min >= 5
    assert privacy.k_anonymity(result.frame, QUASI) >= 5
    assert result.after.classes == 145


def test_enforce_k_anonymity_shipped_by_patient(shipped: pd.DataFrame) -> None:
    result = privacy.enforce_k_anonymity(
        shipped, QUASI, k=5, subject="patient_pseudonym"
    )
    assert len(result.suppressed) == 305
    assert privacy.k_anonymity(result.frame, QUASI, subject="patient_pseudonym") >= 5


# Scanner ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("13812345678", "138****5678"),
        ("tel 138 1234 5678.", "138****5678"),
        ("138-1234-5678", "138****5678"),
        ("+86 139 1234 5678", "139****5678"),
        ("+8615912345678", "159****5678"),
        ("(+86)13712345678", "137****5678"),
        ("电话13812345678。", "138****5678"),
        ("office 010-87654321", "010****4321"),
        ("(0755) 8765432", "075****5432"),
    ],
    ids=["plain", "spaces", "hyphens", "country-code", "country-code-joined",
         "bracketed-code", "after-chinese", "landline", "bracketed-area"],
)  # fmt: skip
def test_scan_finds_phone(text: str, masked: str) -> None:
    report = privacy.scan(text)
    assert [(f.kind, f.value_masked) for f in report.findings] == [("phone", masked)]


@pytest.mark.parametrize(
    "text",
    ["213812345678", "P13812345678a", "12345678901", "138123456789", "2019-01-01",
     "I50.0 on 2024-03-07, BP 140/90", "glucose 13.8 mmol/L"],
    ids=["twelve-digits", "inside-pseudonym", "starts-12", "too-long", "date",
         "clinical", "decimal"],
)  # fmt: skip
def test_scan_ignores_other_numbers(text: str) -> None:
    assert privacy.scan(text).ok


@pytest.mark.parametrize(
    "text",
    ["994097195603011927", "ID: 99010119800101105X", "994097 19560301 1927"],
    ids=["digits", "check-x", "spaced"],
)
def test_scan_finds_national_id(text: str) -> None:
    report = privacy.scan(text)
    assert [f.kind for f in report.findings] == ["national_id"]
    assert report.findings[0].value_masked.startswith("99")


def test_scan_national_id_wrong_check_digit() -> None:
    assert national_id_is_valid("994097195603011927")
    assert not national_id_is_valid("994097195603011928")
    assert privacy.scan("994097195603011928").ok


def test_scan_finds_email() -> None:
    report = privacy.scan("write to john.smith@example.org today")
    assert [(f.kind, f.value_masked) for f in report.findings] == [
        ("email", "j***@example.org")
    ]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Seen by Dr Smith today", "S****"),
        ("Mrs. Jane Doe was admitted", "J*** D**"),
        ("Name: Mary Jones", "M*** J****"),
        ("姓名：王小明", "王**"),
        ("李先生诉胸痛", "李**"),
    ],
    ids=["title", "title-full-name", "label", "chinese-label", "honorific"],
)
def test_scan_finds_name_pattern(text: str, masked: str) -> None:
    report = privacy.scan(text)
    assert [(f.kind, f.value_masked) for f in report.findings] == [("name", masked)]


@pytest.mark.parametrize(
    "text",
    ["DR. review at follow-up", "MS flare", "Drug review", "Mr", "主任医师查房",
     "cold intolerance"],
    ids=["upper-dr", "upper-ms", "drug", "title-alone", "chinese-title", "words"],
)  # fmt: skip
def test_scan_ignores_name_lookalikes(text: str) -> None:
    assert privacy.scan(text).ok


@pytest.mark.parametrize(
    "text",
    ["住址：青禾市东城区人民路12号", "lives at 12 Oak Road, Eastbrook"],
    ids=["chinese", "english"],
)
def test_scan_finds_address(text: str) -> None:
    assert [f.kind for f in privacy.scan(text).findings] == ["address"]


def test_scan_known_names() -> None:
    text = "Discussed with MARY  smith. 患者王伟入院。 Smithers is fine."
    report = privacy.scan(text, known_names=["Mary Smith", "王伟", "x"])
    assert [(f.kind, f.value_masked) for f in report.findings] == [
        ("name", "M*** s****"),
        ("name", "王*"),
    ]


def test_scan_known_ids_whole_tokens() -> None:
    text = "patient 000123 and 0001234, visit V0000001; ward AB-12 bed"
    report = privacy.scan(text, known_ids=["000123", "V0000001", "AB-12", None])
    assert [f.value_masked for f in report.findings] == [
        "****23",
        "******01",
        "***12",
    ]
    assert report.counts == {"patient_id": 3}


def test_scan_frame_locations() -> None:
    frame = pd.DataFrame(
        {"note": ["fine", "call 13812345678"], "bp": [120, 13912345678]},
        index=[10, 11],
    )
    report = privacy.scan(frame)
    assert [(f.location, f.row, f.column) for f in report.findings] == [
        ("row 11, column 'note'", 11, "note"),
        ("row 11, column 'bp'", 11, "bp"),
    ]


def test_scan_frame_identifier_columns(patients: pd.DataFrame) -> None:
    report = privacy.scan(patients[["patient_id", "name", "phone"]])
    assert [(f.kind, f.location, f.count) for f in report.findings] == [
        ("name", "column 'name'", 2),
        ("phone", "column 'phone'", 1),
    ]
    assert report.findings[0].value_masked == "王*"


def test_scan_frame_header_spellings() -> None:
    frame = pd.DataFrame({"Phone Number": ["x"], "E-mail": ["y"], "姓名": ["z"]})
    assert [f.kind for f in privacy.scan(frame).findings] == ["phone", "email", "name"]


def test_scan_frame_repeated_column_names() -> None:
    frame = pd.DataFrame([["fine", "13812345678"]], columns=["note", "note"])
    assert [f.location for f in privacy.scan(frame).findings] == [
        "row 0, column 'note'"
    ]


def test_scan_empty_identifier_column_is_clean() -> None:
    assert privacy.scan(pd.DataFrame({"name": [None, None]})).ok


def test_scan_records_and_mapping() -> None:
    body = {
        "records": [
            {"record_id": "R1", "text": "ok"},
            {"record_id": "R2", "text": "call 13812345678"},
        ],
        "site": "north",
    }
    report = privacy.scan(body)
    assert [f.location for f in report.findings] == [
        "field 'records', record 1, field 'text'"
    ]


def test_scan_list_of_texts() -> None:
    report = privacy.scan(["fine", "Dr Smith\nrings 13812345678"])
    assert [f.location for f in report.findings] == [
        "item 1, line 1",
        "item 1, line 2",
    ]


def test_scan_series_and_numbers() -> None:
    assert not privacy.scan(pd.Series([13812345678])).ok
    assert privacy.scan(pd.Series([1.5, np.nan])).ok


def test_scan_rejects_other_types() -> None:
    with pytest.raises(PrivacyError, match="Cannot scan a bytes"):
        privacy.scan(b"13812345678")


def test_scan_report_limit_and_counts() -> None:
    text = " ".join(f"1381234567{i}" for i in range(5))
    report = privacy.scan(text, limit=2)
    assert len(report.findings) == 2
    assert report.counts == {"phone": 5}
    assert report.total == 5
    assert report.truncated == 3
    assert "... and 3 more" in str(report)


def test_scan_report_truth_and_frame() -> None:
    clean = privacy.scan("nothing here")
    assert not clean
    assert clean.ok
    assert clean.summary() == "no identifiers found"
    assert clean.to_frame().columns.tolist() == [
        "kind", "location", "value_masked", "rule", "count", "column", "row", "cell",
    ]  # fmt: skip
    found = privacy.scan("13812345678 and a@b.org")
    assert found
    assert found.summary() == "1 email, 1 phone"
    assert found.to_frame()["kind"].tolist() == ["phone", "email"]


def test_scan_report_never_shows_values() -> None:
    report = privacy.scan(
        "13812345678 994097195603011927 john@example.org Dr Smith",
        known_ids=["000123"],
    )
    shown = str(report) + report.to_frame().to_string()
    for value in ("13812345678", "994097195603011927", "john@", "Smith"):
        assert value not in shown


def test_require_no_identifiers() -> None:
    assert privacy.require_no_identifiers("fine").ok
    with pytest.raises(IdentifierFoundError, match="Found 1 phone") as info:
        privacy.require_no_identifiers({"text": "13812345678"})
    assert info.value.report.counts == {"phone": 1}
    assert "13812345678" not in str(info.value)


@pytest.mark.parametrize(
    ("kind", "value", "masked"),
    [("phone", "+86 138 1234 5678", "138****5678"), ("name", "王伟", "王*"),
     ("patient_id", "000123", "****23"), ("address", "12 Oak Road", "12********")],
    ids=["phone", "name", "patient-id", "address"],
)  # fmt: skip
def test_mask(kind: str, value: str, masked: str) -> None:
    assert mask(kind, value) == masked


def test_scan_shipped_notes_clean() -> None:
    notes = datasets.load_raw("notes")
    patients = datasets.load_answer_key("patients")
    report = privacy.scan(
        notes["text"],
        known_ids=patients["patient_id"],
        known_names=patients["name"],
    )
    assert report.ok


def test_scan_shipped_notes_id_column() -> None:
    notes = datasets.load_raw("notes")
    patients = datasets.load_answer_key("patients")
    report = privacy.scan(notes, known_ids=patients["patient_id"])
    assert report.counts == {"patient_id": 2000}
    assert {f.column for f in report.findings} == {"patient_id"}


def test_scan_shipped_patients() -> None:
    patients = datasets.load_answer_key("patients")
    report = privacy.scan(patients)
    assert report.counts == {"name": 1, "phone": 1, "national_id": 1, "address": 1}
    assert [f.count for f in report.findings] == [
        patients[c].notna().sum() for c in ("name", "phone", "national_id", "address")
    ]


# Notebooks ----------------------------------------------------------------------


def test_scan_notebook_output(tmp_path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# Ward list"),
        nbformat.v4.new_code_cell("import pandas as pd"),
        nbformat.v4.new_code_cell(
            "print(phone)",
            outputs=[
                nbformat.v4.new_output(
                    "stream", name="stdout", text="first line\nphone 13812345678\n"
                )
            ],
        ),
        nbformat.v4.new_code_cell(
            "contact = 'nurse@example.org'",
            outputs=[
                nbformat.v4.new_output(
                    "execute_result",
                    data={"text/plain": "'Dr Smith'", "image/png": "iVBORw0KGgo="},
                    execution_count=1,
                )
            ],
        ),
    ]
    path = tmp_path / "trainee.ipynb"
    nbformat.write(notebook, path)

    report = privacy.scan_notebook(path)
    assert [(f.kind, f.cell, f.location) for f in report.findings] == [
        ("phone", 2, "cell 2, output 0, line 2"),
        ("email", 3, "cell 3, source, line 1"),
        ("name", 3, "cell 3, output 0, line 1"),
    ]
    assert report.findings[0].value_masked == "138****5678"


def test_scan_notebook_error_output_and_known_ids(tmp_path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "lookup('000123')",
            outputs=[
                nbformat.v4.new_output(
                    "error",
                    ename="KeyError",
                    evalue="'000124'",
                    traceback=["KeyError: '000124'"],
                )
            ],
        )
    ]
    path = tmp_path / "errors.ipynb"
    nbformat.write(notebook, path)
    report = privacy.scan_notebook(path, known_ids=["000123", "000124"])
    assert [f.location for f in report.findings] == [
        "cell 0, source, line 1",
        "cell 0, output 0, line 1",
        "cell 0, output 0, line 1",
    ]


def test_scan_notebook_missing_file(tmp_path) -> None:
    with pytest.raises(PrivacyError, match="missing.ipynb not found"):
        privacy.scan_notebook(tmp_path / "missing.ipynb")


def test_scan_notebook_not_a_notebook(tmp_path) -> None:
    path = tmp_path / "bad.ipynb"
    path.write_text("not json", encoding="utf-8")
    with pytest.raises(PrivacyError, match="Cannot read notebook .*bad.ipynb"):
        privacy.scan_notebook(path)
