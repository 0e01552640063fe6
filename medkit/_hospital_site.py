"""The second synthetic hospital, site B: the same clinical model, other exports.

Site B draws its patients, stays, lab results and notes from the clinical model
of :mod:`medkit._hospital_truth` with a seed of its own, and exports them as a
different hospital information system would. Its conventions break the first
hospital's cleaning specs, so a trainee has to adapt them:

* patient IDs carry the prefix ``B`` (``B000123``), and stay IDs the prefix
  ``ZY`` and 8 digits (``ZY00000042``);
* slash dates put the month first (``03/07/1956`` is 7 March), and some ISO
  dates drop their leading zeros (``1956-3-7``);
* missing values are written ``NULL``, ``n/a`` or ``不详`` (unspecified), or
  left empty;
* sex is also written ``男性`` and ``女性``;
* departments are also written in traditional characters (``心內科``) or
  surrounded by full-width spaces (U+3000);
* sodium is also reported in mEq/L, a unit the first hospital never used;
* a stay exported twice with different values repeats its ``visit_id``.

The bookkeeping is the first hospital's (:class:`RawTable`), so the answer key,
quarantine, duplicates and fault table of site B are exact in the same way.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from medkit._hospital_export import (
    CANONICAL_UNITS,
    CREATININE_MG_DL_FACTOR,
    GLUCOSE_MG_DL_FACTOR,
    _alter_near_duplicates,
    _bad_rows,
    _raw_table,
    _to_mg_dl,
    lab_text,
    patient_text,
    visit_text,
)
from medkit._hospital_faults import (
    ExportedTable,
    RawTable,
    format_dates,
    format_ids,
    pad_spaces,
    scaled,
)
from medkit._hospital_truth import Truth, to_day, ymd

PATIENT_PREFIX = "B"
PATIENT_DIGITS = 6
VISIT_PREFIX = "ZY"
VISIT_DIGITS = 8
LAB_PREFIX = "L"
LAB_DIGITS = 8

ENCODINGS = {
    "patients": "gb18030",
    "visits": "utf-8",
    "labs": "utf-8-sig",
    "notes": "utf-8",
    "services": "utf-8",
    "patient_services": "utf-8",
}
"""Text encoding of each raw export of site B. "utf-8-sig" writes a byte order mark."""

MISSING_TOKENS = ("", "NULL", "n/a", "不详")
"""Spellings of a missing value at site B. ``不详`` means unspecified."""
MISSING_FAULT = 'missing written as "", NULL, n/a or 不详'
SEX_SPELLINGS = {"M": ("男性", "m", "Male"), "F": ("女性", "f", "Female")}
TRADITIONAL_DEPARTMENTS = {
    "心内科": "心內科",
    "呼吸内科": "呼吸內科",
    "内分泌科": "內分泌科",
    "急诊科": "急診科",
    "神经内科": "神經內科",
    "肾内科": "腎內科",
}
"""Each department that traditional characters write differently, and that spelling."""
SODIUM_UNIT = "mEq/L"
"""Sodium carries one charge, so 1 mEq/L is 1 mmol/L."""
FULL_WIDTH_SPACE = "\u3000"

DATE_FAULTS = {
    "month_first": ("month-first date MM/DD/YYYY", "converted to ISO"),
    "chinese": ("Chinese date YYYY年M月D日", "converted to ISO"),
    "iso_unpadded": (
        "ISO date without leading zeros, such as 2021-3-7",
        "converted to ISO",
    ),
}
PATIENT_QUARANTINE_PER_1000 = 3
VISIT_QUARANTINE_PER_1000 = {
    "heart_rate": 2,
    "discharge_date": 2,
    "patient_id": 2,
    "visit_id": 3,
}
LAB_QUARANTINE_PER_1000 = {
    "unit": 2,
    "value range": 2,
    "value missing": 3,
    "visit_id": 2,
}
_FIRST_DAY = to_day("1900-01-01")
_LAST_DAY = to_day("2030-12-31")


def reserved_counts(n_patients: int) -> dict[str, int]:
    """Return how many quarantined rows each table of site B gets."""
    return {
        "patients": scaled(PATIENT_QUARANTINE_PER_1000, n_patients),
        "visits": sum(
            scaled(r, n_patients) for r in VISIT_QUARANTINE_PER_1000.values()
        ),
        "labs": sum(scaled(r, n_patients) for r in LAB_QUARANTINE_PER_1000.values()),
    }


@functools.cache
def _date_tables() -> dict[str, np.ndarray]:
    days = np.arange(_FIRST_DAY, _LAST_DAY + 1)
    year, month, day = (part.tolist() for part in ymd(days))
    parts = list(zip(year, month, day, strict=True))
    return {
        "month_first": np.array([f"{m:02d}/{d:02d}/{y}" for y, m, d in parts], object),
        "iso_unpadded": np.array([f"{y}-{m}-{d}" for y, m, d in parts], object),
    }


def format_site_dates(days: np.ndarray, style: str) -> np.ndarray:
    """Write days since 1970-01-01 as site B does in ``style``.

    ``month_first`` writes MM/DD/YYYY, ``iso_unpadded`` YYYY-M-D, and the
    styles of :func:`medkit._hospital_faults.format_dates` are passed on.
    """
    days = np.asarray(days, dtype=np.int64)
    if style not in ("month_first", "iso_unpadded"):
        return format_dates(days, style)
    if len(days) and (days.min() < _FIRST_DAY or days.max() > _LAST_DAY):
        raise ValueError("Dates must lie between 1900-01-01 and 2030-12-31.")
    return _date_tables()[style][days - _FIRST_DAY]


def site_texts(
    truth: Truth,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Write the clean patients, visits and labs as text with site B's IDs."""
    patients = _patient_text(truth.patients)
    visits = visit_text(truth)
    visits["visit_id"] = format_ids(VISIT_PREFIX, truth.visits["number"], VISIT_DIGITS)
    visits["patient_id"] = format_ids(
        PATIENT_PREFIX, truth.visits["patient_id"], PATIENT_DIGITS
    )
    labs = lab_text(truth.labs)
    labs["lab_id"] = format_ids(LAB_PREFIX, truth.labs["number"], LAB_DIGITS)
    labs["visit_id"] = format_ids(VISIT_PREFIX, truth.labs["visit"], VISIT_DIGITS)
    return patients, visits, labs


def _patient_text(patients: pd.DataFrame) -> dict[str, np.ndarray]:
    text = patient_text(patients)
    text["patient_id"] = format_ids(PATIENT_PREFIX, patients["id"], PATIENT_DIGITS)
    return text


def _write_missing(rng: np.random.Generator, table: RawTable, column: str) -> None:
    rows = np.flatnonzero(pd.isna(table.columns[column]))
    tokens = np.array(MISSING_TOKENS, dtype=object)
    values = tokens[rng.integers(0, len(tokens), len(rows))]
    table.change(rows, column, values, MISSING_FAULT, "set to missing")


def _reformat_dates(
    rng: np.random.Generator,
    table: RawTable,
    column: str,
    days: np.ndarray,
    n_patients: int,
    per_1000: dict[str, float],
) -> None:
    for style, rate in per_1000.items():
        where = None
        if style == "iso_unpadded":
            # Only a month or day below 10 has a leading zero to drop.
            _, month, day = ymd(days)
            where = (month < 10) | (day < 10)
        rows = table.choose(rng, scaled(rate, n_patients), column, where)
        fault, outcome = DATE_FAULTS[style]
        table.change(rows, column, format_site_dates(days[rows], style), fault, outcome)


def _pad_full_width(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    # One or two full-width spaces before, after or on both sides of each value.
    before = rng.integers(0, 3, len(values))
    after = np.where(
        before == 0,
        rng.integers(1, 3, len(values)),
        rng.integers(0, 3, len(values)),
    )
    return np.array(
        [
            FULL_WIDTH_SPACE * spaces_before + value + FULL_WIDTH_SPACE * spaces_after
            for spaces_before, value, spaces_after in zip(
                before, values, after, strict=True
            )
        ],
        dtype=object,
    )


def _id_faults(
    rng: np.random.Generator,
    table: RawTable,
    column: str,
    n_patients: int,
    per_1000: dict[str, float],
) -> None:
    # Faults of a prefixed ID: "lower case", "space after the prefix" and
    # "surrounding spaces", each on its own rows.
    prefix = PATIENT_PREFIX if column == "patient_id" else VISIT_PREFIX
    values = table.columns[column]
    for fault, rate in per_1000.items():
        rows = table.choose(rng, scaled(rate, n_patients), column)
        if fault == "lower case":
            new, outcome = [v.lower() for v in values[rows]], "upper-cased"
        elif fault == "space after the prefix":
            new = [prefix + " " + v[len(prefix) :] for v in values[rows]]
            outcome = "space removed"
        elif fault == "surrounding spaces":
            new, outcome = pad_spaces(rng, values[rows]), "stripped"
        else:
            raise ValueError(f"Unknown ID fault {fault!r}.")
        table.change(rows, column, new, fault, outcome)


def _impossible_dates(rng: np.random.Generator, birth_day: np.ndarray) -> np.ndarray:
    # Month first: day 30 or 31 of February, or day 31 of a 30-day month.
    year = ymd(birth_day)[0]
    options = [(2, 30), (2, 31), (4, 31), (6, 31), (9, 31), (11, 31)]
    picks = rng.integers(0, len(options), len(year))
    return np.array(
        [
            f"{options[p][0]:02d}/{options[p][1]:02d}/{y}"
            for p, y in zip(picks, year, strict=True)
        ],
        dtype=object,
    )


def export_patients(
    rng: np.random.Generator,
    truth: Truth,
    clean: dict[str, np.ndarray],
    n_patients: int,
) -> ExportedTable:
    """Write site B's patients.csv: prefixed IDs, month-first dates, new spellings.

    ``clean`` is the patients' text from :func:`site_texts`.
    """
    extra = _patient_text(truth.extra_patients)
    extra["birth_date"] = _impossible_dates(rng, truth.extra_patients["birth_day"])
    ids = np.concatenate([truth.patients["id"], truth.extra_patients["id"]])
    order = np.argsort(ids, kind="stable")
    rules = np.full(len(truth.extra_patients), "dates", dtype=object)
    table = _raw_table(clean, extra, rules, order)
    table.record(
        "birth_date",
        "impossible date such as 02/30/1970",
        "quarantined (dates)",
        np.flatnonzero(table.truth_row < 0),
    )

    for column in ("sex", "phone", "address"):
        _write_missing(rng, table, column)
    for canonical, spellings in SEX_SPELLINGS.items():
        for spelling in spellings:
            rows = table.choose(
                rng, scaled(20, n_patients), "sex", table.columns["sex"] == canonical
            )
            table.change(
                rows,
                "sex",
                spelling,
                f'spelled "{spelling}"',
                f'mapped to "{canonical}"',
            )
    days = table.from_truth(truth.patients["birth_day"].to_numpy())
    _reformat_dates(
        rng,
        table,
        "birth_date",
        days,
        n_patients,
        {"month_first": 250, "chinese": 100, "iso_unpadded": 80},
    )
    _id_faults(
        rng,
        table,
        "patient_id",
        n_patients,
        {"lower case": 20, "space after the prefix": 10, "surrounding spaces": 10},
    )
    rows = table.choose(rng, scaled(10, n_patients), "name")
    table.change(
        rows,
        "name",
        _pad_full_width(rng, table.columns["name"][rows]),
        "surrounding full-width spaces (U+3000)",
        "stripped",
    )

    table.duplicate(rng, scaled(5, n_patients), "exact duplicate row")
    table.duplicate(
        rng,
        scaled(10, n_patients),
        "near duplicate: name or patient_id differs only in case or spaces",
        _alter_near_duplicates,
    )
    return table.finish(rng, "patients")


def export_visits(
    rng: np.random.Generator,
    truth: Truth,
    clean: dict[str, np.ndarray],
    n_patients: int,
) -> ExportedTable:
    """Write site B's visits.csv, including stays exported twice with other values.

    ``clean`` is the visits' text from :func:`site_texts`.
    """
    numbers = truth.visits["number"].to_numpy()
    bad, kinds, sources, order = _bad_rows(
        rng,
        clean,
        numbers,
        truth.reserved_visits,
        VISIT_QUARANTINE_PER_1000,
        n_patients,
    )
    # A repeated stay keeps the visit_id of the stay it repeats, just above it.
    repeated = kinds == "visit_id"
    reserved_ids = format_ids(VISIT_PREFIX, truth.reserved_visits, VISIT_DIGITS)
    bad["visit_id"] = np.where(repeated, bad["visit_id"], reserved_ids)
    bad["heart_rate"][kinds == "heart_rate"] = "0"
    rows = kinds == "discharge_date"
    admit = truth.visits["admit_day"].to_numpy()[sources]
    bad["discharge_date"][rows] = format_dates(
        admit[rows] - rng.integers(1, 8, rows.sum())
    )
    rows = kinds == "patient_id"
    free = rng.choice(truth.free_ids, rows.sum(), replace=False)
    bad["patient_id"][rows] = format_ids(PATIENT_PREFIX, free, PATIENT_DIGITS)
    # Each repeat gets a different heart rate, so that no two repeats of one
    # stay are duplicates of each other.
    heart_rate = truth.visits["heart_rate"].to_numpy()[sources]
    rows = np.flatnonzero(repeated)
    bad["heart_rate"][rows] = [
        str(90 + i) if pd.isna(heart_rate[row]) else str(int(heart_rate[row]) + 5 + i)
        for i, row in enumerate(rows)
    ]

    rule_of = {
        "heart_rate": "ranges",
        "discharge_date": "dates",
        "patient_id": "references",
        "visit_id": "ids",
    }
    rules = np.array([rule_of[k] for k in kinds], dtype=object)
    table = _raw_table(clean, bad, rules, order)
    kind_in_order = np.r_[np.full(len(numbers), "", dtype=object), kinds][order]
    for kind, fault in (
        ("heart_rate", "impossible heart rate 0"),
        ("discharge_date", "before admit_date"),
        ("patient_id", "not in the clean patients"),
        ("visit_id", "repeats an earlier stay's visit_id with another heart_rate"),
    ):
        table.record(
            kind,
            fault,
            f"quarantined ({rule_of[kind]})",
            np.flatnonzero(kind_in_order == kind),
        )

    _add_visit_fixes(rng, table, truth, n_patients)
    table.duplicate(rng, scaled(10, n_patients), "exact duplicate row")
    return table.finish(rng, "visits")


def _add_visit_fixes(
    rng: np.random.Generator, table: RawTable, truth: Truth, n_patients: int
) -> None:
    columns = table.columns
    for column in ("systolic_bp", "heart_rate"):
        _write_missing(rng, table, column)
    _id_faults(
        rng,
        table,
        "patient_id",
        n_patients,
        {"lower case": 30, "space after the prefix": 10},
    )
    _id_faults(
        rng,
        table,
        "visit_id",
        n_patients,
        {"lower case": 10, "surrounding spaces": 10},
    )
    rows = table.choose(rng, scaled(30, n_patients), "icd10")
    table.change(
        rows,
        "icd10",
        [t.lower() for t in columns["icd10"][rows]],
        "lower case",
        "upper-cased",
    )
    rows = table.choose(rng, scaled(20, n_patients), "icd10")
    table.change(
        rows,
        "icd10",
        pad_spaces(rng, columns["icd10"][rows]),
        "surrounding spaces",
        "stripped",
    )

    department = columns["department"]
    for simplified, traditional in TRADITIONAL_DEPARTMENTS.items():
        rows = table.choose(
            rng, scaled(25, n_patients), "department", department == simplified
        )
        table.change(
            rows,
            "department",
            traditional,
            f'written in traditional characters "{traditional}"',
            f'mapped to "{simplified}"',
        )
    rows = table.choose(rng, scaled(30, n_patients), "department")
    table.change(
        rows,
        "department",
        _pad_full_width(rng, department[rows]),
        "surrounding full-width spaces (U+3000)",
        "stripped",
    )

    for column in ("admit_date", "discharge_date"):
        days = table.from_truth(truth.visits[column.replace("date", "day")].to_numpy())
        _reformat_dates(
            rng,
            table,
            column,
            days,
            n_patients,
            {"month_first": 300, "chinese": 100, "iso_unpadded": 100},
        )


def export_labs(
    rng: np.random.Generator,
    truth: Truth,
    clean: dict[str, np.ndarray],
    n_patients: int,
) -> tuple[ExportedTable, np.ndarray]:
    """Write site B's labs.csv, with sodium also in mEq/L.

    ``clean`` is the labs' text from :func:`site_texts`. Returns the export and
    the clean value of every truth lab, as
    :func:`medkit._hospital_export.export_labs` does.
    """
    labs = truth.labs
    numbers = labs["number"].to_numpy()
    bad, kinds, _, order = _bad_rows(
        rng, clean, numbers, truth.reserved_labs, LAB_QUARANTINE_PER_1000, n_patients
    )
    bad["lab_id"] = format_ids(LAB_PREFIX, truth.reserved_labs, LAB_DIGITS)
    rows = kinds == "unit"
    bad["test"][rows], bad["unit"][rows] = "GLU", "mmol/mol"
    bad["value"][rows] = rng.integers(30, 90, rows.sum()).astype(str)
    # Sodium typed without its decimal point: 140.0 written as 1400.
    rows = kinds == "value range"
    bad["test"][rows], bad["unit"][rows] = "NA", "mmol/L"
    bad["value"][rows] = rng.integers(1250, 1460, rows.sum()).astype(str)
    rows = kinds == "value missing"
    bad["value"][rows] = np.array(MISSING_TOKENS, dtype=object)[
        rng.integers(0, len(MISSING_TOKENS), rows.sum())
    ]
    rows = kinds == "visit_id"
    last_visit = len(truth.visits) + len(truth.reserved_visits)
    bad["visit_id"][rows] = format_ids(
        VISIT_PREFIX, last_visit + rng.integers(1, 500, rows.sum()), VISIT_DIGITS
    )

    rule_of = {
        "unit": "units",
        "value range": "ranges",
        "value missing": "required",
        "visit_id": "references",
    }
    rules = np.array([rule_of[k] for k in kinds], dtype=object)
    table = _raw_table(clean, bad, rules, order)
    kind_in_order = np.r_[np.full(len(numbers), "", dtype=object), kinds][order]
    for kind, column, fault in (
        ("unit", "unit", 'GLU in unknown unit "mmol/mol"'),
        ("value range", "value", "NA without its decimal point, such as 1400"),
        ("value missing", "value", MISSING_FAULT),
        ("visit_id", "visit_id", "not in the clean visits"),
    ):
        table.record(
            column,
            fault,
            f"quarantined ({rule_of[kind]})",
            np.flatnonzero(kind_in_order == kind),
        )

    values = labs["value"].to_numpy().copy()
    _add_unit_faults(rng, table, values, n_patients)
    _id_faults(rng, table, "visit_id", n_patients, {"lower case": 10})
    days = table.from_truth(labs["taken_day"].to_numpy())
    _reformat_dates(
        rng,
        table,
        "taken_date",
        days,
        n_patients,
        {"month_first": 300, "chinese": 100},
    )
    table.duplicate(rng, scaled(10, n_patients), "exact duplicate row")
    return table.finish(rng, "labs"), values


def _add_unit_faults(
    rng: np.random.Generator, table: RawTable, values: np.ndarray, n_patients: int
) -> None:
    test = table.columns["test"]
    rows = table.choose(rng, scaled(150, n_patients), "unit", test == "NA")
    table.change(
        rows,
        "unit",
        SODIUM_UNIT,
        f'NA in "{SODIUM_UNIT}"',
        f"converted to {CANONICAL_UNITS['NA']} (x 1)",
    )
    for test_code, spelling in (("GLU", "MMOL/L"), ("CREA", "umol/l")):
        rows = table.choose(rng, scaled(15, n_patients), "unit", test == test_code)
        table.change(
            rows,
            "unit",
            spelling,
            f'{test_code} in "{spelling}"',
            f'respelled "{CANONICAL_UNITS[test_code]}"',
        )

    for test_code, factor, factor_text in (
        ("GLU", GLUCOSE_MG_DL_FACTOR, "1/18.016"),
        ("CREA", CREATININE_MG_DL_FACTOR, "88.42"),
    ):
        rows = table.choose(rng, scaled(40, n_patients), "unit", test == test_code)
        truth_rows = table.truth_row[rows]
        raw_text, canonical = _to_mg_dl(values[truth_rows], test_code, factor)
        values[truth_rows] = canonical
        table.columns["value"][rows] = raw_text
        table.change(
            rows,
            "unit",
            "mg/dL",
            f'{test_code} in "mg/dL"',
            f"converted to {CANONICAL_UNITS[test_code]} (x {factor_text})",
        )
