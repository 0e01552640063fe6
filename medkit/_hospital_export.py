"""Raw exports of the synthetic hospital, with the faults real exports have.

Each ``export_*`` function writes the clean truth as text, adds quarantined rows
and fixable faults, and returns an :class:`ExportedTable` whose bookkeeping records
what a correct cleaner must produce. Fault counts are given per 1,000 patients.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medkit._hospital_faults import (
    MISSING_FAULT,
    MISSING_TOKENS,
    ExportedTable,
    RawTable,
    format_dates,
    format_ids,
    format_integers,
    pad_spaces,
    scaled,
)
from medkit._hospital_truth import DX_CODES, DX_DEPARTMENTS, Truth, ymd

DATE_FAULTS = {
    "day_first": ("day-first date DD/MM/YYYY", "converted to ISO"),
    "chinese": ("Chinese date YYYY年M月D日", "converted to ISO"),
}
SEX_SPELLINGS = {"M": ("m", "male", "Male", "男"), "F": ("f", "female", "FEMALE", "女")}
IMPOSSIBLE_BIRTH_PER_1000 = 3
VISIT_QUARANTINE_PER_1000 = {
    "age": 2,
    "systolic_bp": 2,
    "discharge_date": 2,
    "patient_id": 2,
}
LAB_QUARANTINE_PER_1000 = {
    "unit": 2,
    "value range": 2,
    "value missing": 3,
    "visit_id": 2,
}
# Unit conversion to the canonical unit: canonical = round(raw * factor, 2).
GLUCOSE_MG_DL_FACTOR = 1 / 18.016
CREATININE_MG_DL_FACTOR = 88.42
CANONICAL_UNITS = {"GLU": "mmol/L", "CREA": "µmol/L", "NA": "mmol/L"}
_GLUCOSE_TEXT = np.array([f"{tenths / 10:.1f}" for tenths in range(401)], dtype=object)


def reserved_counts(n_patients: int) -> dict[str, int]:
    """Return how many quarantined rows each table gets for ``n_patients``."""
    return {
        "patients": scaled(IMPOSSIBLE_BIRTH_PER_1000, n_patients),
        "visits": sum(
            scaled(r, n_patients) for r in VISIT_QUARANTINE_PER_1000.values()
        ),
        "labs": sum(scaled(r, n_patients) for r in LAB_QUARANTINE_PER_1000.values()),
    }


def _reformat_dates(
    rng: np.random.Generator,
    table: RawTable,
    column: str,
    days: np.ndarray,
    n_patients: int,
    per_1000: dict[str, float],
) -> None:
    for style, rate in per_1000.items():
        rows = table.choose(rng, scaled(rate, n_patients), column)
        fault, outcome = DATE_FAULTS[style]
        table.change(rows, column, format_dates(days[rows], style), fault, outcome)


def patient_text(patients: pd.DataFrame) -> dict[str, np.ndarray]:
    """Write patient records as clean text columns, ``None`` where missing."""
    return {
        "patient_id": format_ids("", patients["id"], 6),
        "name": patients["name"].to_numpy(object),
        "sex": patients["sex"].to_numpy(object),
        "birth_date": format_dates(patients["birth_day"]),
        "phone": patients["phone"].to_numpy(object),
        "national_id": patients["national_id"].to_numpy(object),
        "postcode": patients["postcode"].to_numpy(object),
        "address": patients["address"].to_numpy(object),
    }


def _impossible_dates(rng: np.random.Generator, birth_day: np.ndarray) -> np.ndarray:
    # Day 30 or 31 of February, or day 31 of a 30-day month, in the year of birth.
    year = ymd(birth_day)[0]
    options = [(30, 2), (31, 2), (31, 4), (31, 6), (31, 9), (31, 11)]
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
    """Write patients.csv with duplicates, spellings, date formats and bad dates.

    ``clean`` is :func:`patient_text` of the truth patients.
    """
    extra = patient_text(truth.extra_patients)
    extra["birth_date"] = _impossible_dates(rng, truth.extra_patients["birth_day"])
    ids = np.concatenate([truth.patients["id"], truth.extra_patients["id"]])
    order = np.argsort(ids, kind="stable")
    rules = np.full(len(truth.extra_patients), "dates", dtype=object)
    table = _raw_table(clean, extra, rules, order)
    table.record(
        "birth_date",
        "impossible date such as 31/02/1970",
        "quarantined (dates)",
        np.flatnonzero(table.truth_row < 0),
    )

    for column in ("sex", "phone", "address"):
        table.write_missing(rng, column)
    for canonical, spellings in SEX_SPELLINGS.items():
        for spelling in spellings:
            rows = table.choose(
                rng, scaled(15, n_patients), "sex", table.columns["sex"] == canonical
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
        rng, table, "birth_date", days, n_patients, {"day_first": 250, "chinese": 100}
    )
    rows = table.choose(rng, scaled(10, n_patients), "patient_id")
    table.change(
        rows,
        "patient_id",
        pad_spaces(rng, table.columns["patient_id"][rows]),
        "surrounding spaces",
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


def _alter_near_duplicates(
    rng: np.random.Generator, copies: dict[str, np.ndarray]
) -> dict[tuple[str, str, str], np.ndarray]:
    # English names change case or get a doubled space. Chinese names have no case,
    # so those copies (and some English ones) get spaces around patient_id.
    names = copies["name"]
    has_space = np.array([" " in name for name in names])
    variants = (str.upper, str.lower, lambda name: name.replace(" ", "  ", 1))
    picks = rng.integers(0, len(variants), len(names))
    altered = [variants[p](name) for name, p in zip(names, picks, strict=True)]
    names[has_space] = np.array(altered, dtype=object)[has_space]
    spaced = ~has_space | (rng.random(len(names)) < 0.3)
    copies["patient_id"][spaced] = pad_spaces(rng, copies["patient_id"][spaced])
    return {("patient_id", "surrounding spaces", "stripped"): spaced}


def visit_text(truth: Truth) -> dict[str, np.ndarray]:
    """Write clean visits as text columns, ``None`` where missing."""
    visits = truth.visits
    dx = visits["dx"].to_numpy()
    return {
        "visit_id": format_ids("V", visits["number"], 7),
        "patient_id": format_ids("", visits["patient_id"], 6),
        "admit_date": format_dates(visits["admit_day"]),
        "discharge_date": format_dates(visits["discharge_day"]),
        "department": DX_DEPARTMENTS[dx],
        "icd10": DX_CODES[dx],
        "age": format_integers(visits["age"]),
        "systolic_bp": _nullable_text(visits["systolic_bp"]),
        "heart_rate": _nullable_text(visits["heart_rate"]),
        "readmit_30d": format_integers(visits["readmit_30d"]),
    }


def _nullable_text(values: pd.Series) -> np.ndarray:
    text = format_integers(values.fillna(0).to_numpy(np.int64))
    text[values.isna().to_numpy()] = None
    return text


def _raw_table(
    clean: dict[str, np.ndarray],
    bad: dict[str, np.ndarray],
    rules: np.ndarray,
    order: np.ndarray,
) -> RawTable:
    # Clean rows first, then quarantined rows, all put in ``order``.
    count = len(next(iter(clean.values())))
    return RawTable(
        {name: np.concatenate([clean[name], bad[name]])[order] for name in clean},
        np.r_[np.arange(count), np.full(len(rules), -1)][order],
        np.r_[np.full(count, "", dtype=object), rules][order],
    )


def _bad_rows(
    rng: np.random.Generator,
    clean: dict[str, np.ndarray],
    numbers: np.ndarray,
    reserved: np.ndarray,
    rates: dict[str, float],
    n_patients: int,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    # Copy the clean row numbered just below each reserved number. Return the
    # copies, the fault kind of each, their sources and the order of all rows.
    kinds = np.repeat(list(rates), [scaled(r, n_patients) for r in rates.values()])
    kinds = rng.permutation(kinds).astype(object)
    sources = np.searchsorted(numbers, reserved) - 1
    bad = {name: values[sources].copy() for name, values in clean.items()}
    order = np.argsort(np.concatenate([numbers, reserved]), kind="stable")
    return bad, kinds, sources, order


def export_visits(
    rng: np.random.Generator,
    truth: Truth,
    clean: dict[str, np.ndarray],
    n_patients: int,
) -> ExportedTable:
    """Write visits.csv with ID, code, date and range faults and bad references.

    ``clean`` is :func:`visit_text` of the truth.
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
    bad["visit_id"] = format_ids("V", truth.reserved_visits, 7)
    rows = kinds == "age"
    bad["age"][rows] = "999"
    rows = kinds == "systolic_bp"
    bad["systolic_bp"][rows] = ["-" + (v or "120") for v in bad["systolic_bp"][rows]]
    rows = kinds == "discharge_date"
    admit = truth.visits["admit_day"].to_numpy()[sources]
    bad["discharge_date"][rows] = format_dates(
        admit[rows] - rng.integers(1, 8, rows.sum())
    )
    rows = kinds == "patient_id"
    free = rng.choice(truth.free_ids, rows.sum(), replace=False)
    bad["patient_id"][rows] = format_ids("", free, 6)

    rule_of = {
        "age": "ranges",
        "systolic_bp": "ranges",
        "discharge_date": "dates",
        "patient_id": "references",
    }
    rules = np.array([rule_of[k] for k in kinds], dtype=object)
    table = _raw_table(clean, bad, rules, order)
    kind_in_order = np.r_[np.full(len(numbers), "", dtype=object), kinds][order]
    for kind, column, fault in (
        ("age", "age", "impossible age 999"),
        ("systolic_bp", "systolic_bp", "negative value"),
        ("discharge_date", "discharge_date", "before admit_date"),
        ("patient_id", "patient_id", "not in the clean patients"),
    ):
        table.record(
            column,
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
        table.write_missing(rng, column)

    short_id = np.array([text.startswith("0") for text in columns["patient_id"]])
    rows = table.choose(rng, scaled(50, n_patients), "patient_id", short_id)
    table.change(
        rows,
        "patient_id",
        [text.lstrip("0") for text in columns["patient_id"][rows]],
        "leading zeros lost",
        "zero-padded to 6 digits",
    )
    for column, per_1000 in (("visit_id", 10), ("icd10", 30)):
        rows = table.choose(rng, scaled(per_1000, n_patients), column)
        table.change(
            rows,
            column,
            [t.lower() for t in columns[column][rows]],
            "lower case",
            "upper-cased",
        )
    for column, per_1000 in (("visit_id", 10), ("icd10", 20), ("department", 20)):
        rows = table.choose(rng, scaled(per_1000, n_patients), column)
        table.change(
            rows,
            column,
            pad_spaces(rng, columns[column][rows]),
            "surrounding spaces",
            "stripped",
        )

    for column in ("admit_date", "discharge_date"):
        days = table.from_truth(truth.visits[column.replace("date", "day")].to_numpy())
        _reformat_dates(
            rng, table, column, days, n_patients, {"day_first": 300, "chinese": 150}
        )


def lab_value_text(labs: pd.DataFrame) -> np.ndarray:
    """Write lab values in their canonical unit: glucose to 0.1, others whole."""
    value = labs["value"].to_numpy()
    text = format_integers(np.round(value).astype(np.int64))
    glucose = (labs["test"] == "GLU").to_numpy()
    text[glucose] = _GLUCOSE_TEXT[np.round(value[glucose] * 10).astype(np.int64)]
    return text


def lab_text(labs: pd.DataFrame) -> dict[str, np.ndarray]:
    """Write clean lab results as text columns, values in the canonical unit."""
    return {
        "lab_id": format_ids("L", labs["number"], 8),
        "visit_id": format_ids("V", labs["visit"], 7),
        "test": labs["test"].to_numpy(object),
        "value": lab_value_text(labs),
        "unit": labs["test"].map(CANONICAL_UNITS).to_numpy(object),
        "taken_date": format_dates(labs["taken_day"]),
    }


def export_labs(
    rng: np.random.Generator,
    truth: Truth,
    clean: dict[str, np.ndarray],
    n_patients: int,
) -> tuple[ExportedTable, np.ndarray]:
    """Write labs.csv with unit, date, range and reference faults.

    ``clean`` is :func:`lab_text` of the truth labs. Returns the export and the
    clean value of every truth lab, which differs from the drawn value where the
    export wrote it in mg/dL and it was converted back.
    """
    labs = truth.labs
    numbers = labs["number"].to_numpy()
    bad, kinds, _, order = _bad_rows(
        rng, clean, numbers, truth.reserved_labs, LAB_QUARANTINE_PER_1000, n_patients
    )
    bad["lab_id"] = format_ids("L", truth.reserved_labs, 8)
    glucose_kinds = np.isin(kinds, ["unit", "value range"])
    bad["test"][glucose_kinds] = "GLU"
    bad["unit"][glucose_kinds] = np.where(
        kinds[glucose_kinds] == "unit", "mmol/mol", "mmol/L"
    )
    # HbA1c-like numbers in mmol/mol, and glucose in mg/dL wrongly labelled mmol/L.
    bad["value"][glucose_kinds] = np.where(
        kinds[glucose_kinds] == "unit",
        rng.integers(30, 90, glucose_kinds.sum()),
        rng.integers(70, 250, glucose_kinds.sum()),
    ).astype(str)
    rows = kinds == "value missing"
    bad["value"][rows] = np.array(MISSING_TOKENS, dtype=object)[
        rng.integers(0, len(MISSING_TOKENS), rows.sum())
    ]
    rows = kinds == "visit_id"
    last_visit = len(truth.visits) + len(truth.reserved_visits)
    bad["visit_id"][rows] = format_ids(
        "V", last_visit + rng.integers(1, 500, rows.sum()), 7
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
        ("value range", "value", "GLU in mg/dL labelled mmol/L"),
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
    days = table.from_truth(labs["taken_day"].to_numpy())
    _reformat_dates(
        rng, table, "taken_date", days, n_patients, {"day_first": 300, "chinese": 150}
    )
    table.duplicate(rng, scaled(10, n_patients), "exact duplicate row")
    return table.finish(rng, "labs"), values


def _add_unit_faults(
    rng: np.random.Generator, table: RawTable, values: np.ndarray, n_patients: int
) -> None:
    test = table.columns["test"]
    for test_code, spelling in (
        ("GLU", "mmol/l"),
        ("CREA", "umol/L"),
        ("NA", "mmol/l"),
    ):
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
        for spelling in ("mg/dL", "mg/dl", "MG/DL"):
            rows = table.choose(rng, scaled(15, n_patients), "unit", test == test_code)
            truth_rows = table.truth_row[rows]
            raw_text, canonical = _to_mg_dl(values[truth_rows], test_code, factor)
            values[truth_rows] = canonical
            table.columns["value"][rows] = raw_text
            table.change(
                rows,
                "unit",
                spelling,
                f'{test_code} in "{spelling}"',
                f"converted to {CANONICAL_UNITS[test_code]} (x {factor_text})",
            )


def _to_mg_dl(
    canonical: np.ndarray, test_code: str, factor: float
) -> tuple[np.ndarray, np.ndarray]:
    # Glucose in mg/dL is written whole and creatinine to 0.01. A raw number whose
    # conversion lies within 1e-6 of a rounding tie is moved one step up, so that
    # round(raw * factor, 2) does not depend on how a cleaner does the arithmetic.
    decimals = 0 if test_code == "GLU" else 2
    steps = np.round(canonical / factor * 10**decimals).astype(np.int64)
    while True:
        raw = steps / 10**decimals
        scaled_value = raw * factor * 100
        tie = np.abs(scaled_value - np.floor(scaled_value) - 0.5) < 1e-6
        if not tie.any():
            break
        steps[tie] += 1
    text = np.array([f"{v:.{decimals}f}" for v in raw], dtype=object)
    return text, np.round(raw * factor, 2)
