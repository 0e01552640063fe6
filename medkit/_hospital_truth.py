"""Clean synthetic hospital records, drawn before any export fault is added.

Dates are held as integer days since 1970-01-01 and identifiers as integers, so
that every step is a numpy operation over whole columns. The exporter in
:mod:`medkit._hospital_export` turns them into text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from medkit import _hospital_templates as tpl
from medkit._hospital_notes import make_notes, make_patient_services, note_visits

FIRST_ADMISSION = "2019-01-01"
LAST_FIRST_ADMISSION = "2024-06-30"
# Planned returns stop at this date, but readmissions may fall up to 30 days later.
LAST_RETURN = "2025-12-31"
MAX_VISITS = 30
RETURN_PROBABILITY = 0.64
MAX_PATIENT_ID = 999_999

DX_CODES = np.array([d.icd10 for d in tpl.DIAGNOSES], dtype=object)
DX_DEPARTMENTS = np.array([d.department for d in tpl.DIAGNOSES], dtype=object)
_PREVALENCE = np.array([d.prevalence for d in tpl.DIAGNOSES])
_TYPICAL_AGE = np.array([d.typical_age for d in tpl.DIAGNOSES])
_MEAN_STAY = np.array([d.mean_stay for d in tpl.DIAGNOSES])
_GLUCOSE = np.array([(d.glucose_mean, d.glucose_sd) for d in tpl.DIAGNOSES])
_CREATININE = np.array([(d.creatinine_mean, d.creatinine_sd) for d in tpl.DIAGNOSES])
_SYSTOLIC = np.array([d.systolic_bp for d in tpl.DIAGNOSES])
_HEART_RATE = np.array([d.heart_rate for d in tpl.DIAGNOSES])
_READMIT_TERM = np.array([d.readmit_logit for d in tpl.DIAGNOSES])


def to_day(iso_date: str) -> int:
    """Return the number of days from 1970-01-01 to an ISO date."""
    return int(np.datetime64(iso_date, "D").astype(np.int64))


@dataclass
class Truth:
    """The clean hospital, one frame per table, with integer keys and days.

    ``extra_patients`` are people with valid records whose birth dates the export
    corrupts, so that they are quarantined. They have no visits. ``free_ids``
    are patient numbers not assigned to any patient.
    """

    patients: pd.DataFrame
    extra_patients: pd.DataFrame
    free_ids: np.ndarray
    visits: pd.DataFrame
    reserved_visits: np.ndarray
    labs: pd.DataFrame
    reserved_labs: np.ndarray
    notes: pd.DataFrame
    patient_services: pd.DataFrame


def make_truth(
    rng: np.random.Generator,
    n_patients: int,
    *,
    extra_patients: int,
    reserved_visits: int,
    reserved_labs: int,
) -> Truth:
    """Draw a clean hospital of ``n_patients`` people and their records.

    ``reserved_visits`` and ``reserved_labs`` visit and lab numbers are left
    unused between the clean ones, for the rows that the export corrupts.
    """
    ids, free_ids = _draw_patient_ids(rng, n_patients + extra_patients)
    everyone = _make_patients(rng, ids)
    is_extra = np.zeros(len(ids), dtype=bool)
    is_extra[rng.choice(len(ids), extra_patients, replace=False)] = True
    patients = everyone[~is_extra].reset_index(drop=True)

    visits = _make_visits(rng, patients)
    visit_numbers, spare_visits = _numbers_with_gaps(rng, len(visits), reserved_visits)
    visits.insert(0, "number", visit_numbers)

    labs = _make_labs(rng, visits)
    lab_numbers, spare_labs = _numbers_with_gaps(rng, len(labs), reserved_labs)
    labs.insert(0, "number", lab_numbers)

    noted = note_visits(patients, visits)
    return Truth(
        patients=patients,
        extra_patients=everyone[is_extra].reset_index(drop=True),
        free_ids=free_ids,
        visits=visits,
        reserved_visits=spare_visits,
        labs=labs,
        reserved_labs=spare_labs,
        notes=make_notes(rng, patients, visits, noted),
        patient_services=make_patient_services(rng, visits, noted),
    )


def _draw_patient_ids(
    rng: np.random.Generator, count: int
) -> tuple[np.ndarray, np.ndarray]:
    # About one number in three stays unused, so IDs have gaps like a real register.
    space = min(MAX_PATIENT_ID, count + count // 2 + 10)
    if count > space * 0.9:
        raise ValueError(
            f"Cannot draw {count} six-digit patient IDs. Use fewer patients."
        )
    ids = np.sort(rng.choice(space, count, replace=False) + 1)
    free = np.setdiff1d(np.arange(1, space + 1), ids)
    return ids, free


def _numbers_with_gaps(
    rng: np.random.Generator, used: int, reserved: int
) -> tuple[np.ndarray, np.ndarray]:
    # Split 1..used+reserved, in order, into used numbers and ``reserved`` numbers.
    # Number 1 is always used.
    numbers = np.arange(1, used + reserved + 1)
    is_reserved = np.zeros(len(numbers), dtype=bool)
    is_reserved[1 + rng.choice(len(numbers) - 1, reserved, replace=False)] = True
    return numbers[~is_reserved], numbers[is_reserved]


def _pick(rng: np.random.Generator, choices: tuple[str, ...], size: int) -> np.ndarray:
    return np.array(choices, dtype=object)[rng.integers(0, len(choices), size)]


def _make_patients(rng: np.random.Generator, ids: np.ndarray) -> pd.DataFrame:
    count = len(ids)
    english = rng.random(count) < 0.3
    male = rng.random(count) < 0.5
    sex = np.where(male, "M", "F").astype(object)
    sex[rng.random(count) < 0.02] = None

    # Age on 2024-07-01 between 25 and 95, so every admission is of an adult.
    age = np.clip(rng.normal(60, 17, count), 25, 95)
    birth_day = to_day("2024-07-01") - np.round(age * 365.25).astype(np.int64)

    phone = (
        (
            rng.choice([13, 15, 17, 18, 19], count) * 10**9
            + rng.integers(0, 10**9, count)
        )
        .astype(str)
        .astype(object)
    )
    phone[rng.random(count) < 0.04] = None

    address = np.where(
        english & (rng.random(count) < 0.7),
        _english_addresses(rng, count),
        _chinese_addresses(rng, count),
    )
    address[rng.random(count) < 0.03] = None

    return pd.DataFrame(
        {
            "id": ids,
            "name": np.where(
                english, _english_names(rng, male), _chinese_names(rng, count)
            ),
            "sex": sex,
            "birth_day": birth_day,
            "phone": phone,
            "national_id": _national_ids(rng, birth_day, male),
            "postcode": [f"{code:06d}" for code in rng.integers(0, 900_000, count)],
            "address": address,
            "english": english,
            "primary_dx": _draw_diagnoses(rng, age),
        }
    )


def _chinese_names(rng: np.random.Generator, count: int) -> np.ndarray:
    second = np.where(rng.random(count) < 0.7, _pick(rng, tpl.CHINESE_GIVEN, count), "")
    return (
        _pick(rng, tpl.CHINESE_SURNAMES, count)
        + _pick(rng, tpl.CHINESE_GIVEN, count)
        + second
    )


def _english_names(rng: np.random.Generator, male: np.ndarray) -> np.ndarray:
    count = len(male)
    first = np.where(
        male,
        _pick(rng, tpl.ENGLISH_FIRST_MALE, count),
        _pick(rng, tpl.ENGLISH_FIRST_FEMALE, count),
    )
    return first + " " + _pick(rng, tpl.ENGLISH_LAST, count)


def _chinese_addresses(rng: np.random.Generator, count: int) -> np.ndarray:
    number = rng.integers(1, 300, count).astype(str).astype(object)
    return (
        _pick(rng, tpl.CHINESE_CITIES, count)
        + _pick(rng, tpl.CHINESE_DISTRICTS, count)
        + _pick(rng, tpl.CHINESE_ROADS, count)
        + number
        + "号"
    )


def _english_addresses(rng: np.random.Generator, count: int) -> np.ndarray:
    number = rng.integers(1, 300, count).astype(str).astype(object)
    return (
        number
        + " "
        + _pick(rng, tpl.ENGLISH_STREETS, count)
        + " "
        + _pick(rng, tpl.ENGLISH_STREET_KINDS, count)
        + ", "
        + _pick(rng, tpl.ENGLISH_TOWNS, count)
    )


def _national_ids(
    rng: np.random.Generator, birth_day: np.ndarray, male: np.ndarray
) -> np.ndarray:
    # Layout of a resident ID (6-digit region, birth date, 3-digit sequence whose
    # last digit is odd for men, ISO 7064 MOD 11-2 check character). The region
    # code starts with 99, which no real region uses, so no ID can be real.
    year, month, day = ymd(birth_day)
    region = 990_000 + rng.integers(101, 10_000, len(male))
    sequence = rng.integers(0, 500, len(male)) * 2 + male
    body = (region * 10**8 + year * 10**4 + month * 100 + day) * 1000 + sequence
    weights = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
    digits = body[:, None] // 10 ** np.arange(16, -1, -1) % 10
    check = np.array(list("10X98765432"), dtype=object)[(digits @ weights) % 11]
    return body.astype(str).astype(object) + check


def ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split days since 1970-01-01 into year, month and day arrays."""
    dates = np.asarray(days).astype("datetime64[D]")
    months = dates.astype("datetime64[M]")
    year = months.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (dates - months).astype(np.int64) + 1
    return year, month, day


def age_on(birth_day: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Return whole years of age on ``day`` for people born on ``birth_day``."""
    birth_year, birth_month, birth_dom = ymd(birth_day)
    year, month, dom = ymd(day)
    before_birthday = month * 100 + dom < birth_month * 100 + birth_dom
    return year - birth_year - before_birthday


def _draw_diagnoses(rng: np.random.Generator, age: np.ndarray) -> np.ndarray:
    # Each diagnosis is likelier near its typical age (Gaussian weight, SD 20 years).
    weight = _PREVALENCE * np.exp(-0.5 * ((age[:, None] - _TYPICAL_AGE) / 20) ** 2)
    cumulative = np.cumsum(weight / weight.sum(axis=1, keepdims=True), axis=1)
    draw = rng.random(len(age))[:, None]
    return np.minimum((cumulative < draw).sum(axis=1), len(_PREVALENCE) - 1)


def readmission_probability(
    age: np.ndarray,
    dx: np.ndarray,
    stay: np.ndarray,
    glucose: np.ndarray,
    prior_visits: np.ndarray,
) -> np.ndarray:
    """Return the model probability of readmission within 30 days of discharge.

    ``age`` is in years, ``dx`` indexes DIAGNOSES, ``stay`` is in days and
    ``glucose`` in mmol/L.
    """
    log_odds = (
        tpl.READMIT_INTERCEPT
        + tpl.READMIT_AGE_PER_10_YEARS * (age - 65) / 10
        + _READMIT_TERM[dx]
        + tpl.READMIT_STAY_PER_DAY * (stay - 5)
        + tpl.READMIT_GLUCOSE_PER_MMOL * (glucose - 6)
        + tpl.READMIT_PRIOR_PER_VISIT * np.minimum(prior_visits, tpl.READMIT_PRIOR_CAP)
    )
    return 1 / (1 + np.exp(-log_odds))


def _make_visits(rng: np.random.Generator, patients: pd.DataFrame) -> pd.DataFrame:
    birth = patients["birth_day"].to_numpy()
    primary = patients["primary_dx"].to_numpy()
    start, stop = to_day(FIRST_ADMISSION), to_day(LAST_FIRST_ADMISSION)
    active = np.arange(len(patients))
    admit = rng.integers(start, stop + 1, len(active))
    parts = []

    # One pass per visit number: every patient still returning gets one more visit.
    for prior in range(MAX_VISITS):
        count = len(active)
        age = age_on(birth[active], admit)
        other = _draw_diagnoses(rng, age.astype(float))
        dx = np.where(rng.random(count) < 0.7, primary[active], other)
        stay = 1 + rng.poisson(_MEAN_STAY[dx] - 1)
        glucose = np.clip(rng.normal(_GLUCOSE[dx, 0], _GLUCOSE[dx, 1]), 2.8, 30)
        glucose_tenths = np.round(glucose * 10).astype(np.int64)
        chance = readmission_probability(age, dx, stay, glucose_tenths / 10, prior)
        readmit = rng.random(count) < chance
        parts.append(
            pd.DataFrame(
                {
                    "patient": active,
                    "admit_day": admit,
                    "discharge_day": admit + stay,
                    "dx": dx,
                    "age": age,
                    "systolic_bp": _vital(rng, _SYSTOLIC[dx], 16, 85, 230),
                    "heart_rate": _vital(rng, _HEART_RATE[dx], 12, 40, 170),
                    "readmit_30d": readmit.astype(np.int64),
                    "glucose_tenths": glucose_tenths,
                }
            )
        )

        # A readmission starts 1-30 days after discharge, and other returns later.
        gap = np.where(
            readmit, rng.integers(1, 31, count), rng.integers(31, 541, count)
        )
        next_admit = admit + stay + gap
        returns = readmit | (
            (rng.random(count) < RETURN_PROBABILITY)
            & (next_admit <= to_day(LAST_RETURN))
        )
        active, admit = active[returns], next_admit[returns]
        if not len(active):
            break

    # NOTE: a readmission on a patient's 30th visit is recorded in readmit_30d,
    # but the visit it leads to is not drawn.
    visits = pd.concat(parts, ignore_index=True)
    visits["patient_id"] = patients["id"].to_numpy()[visits["patient"]]
    order = np.lexsort((visits["patient_id"], visits["admit_day"]))
    return visits.iloc[order].reset_index(drop=True)


def _vital(
    rng: np.random.Generator, mean: np.ndarray, sd: float, low: int, high: int
) -> pd.Series:
    values = np.clip(np.round(rng.normal(mean, sd)), low, high).astype(np.int64)
    missing = rng.random(len(mean)) < 0.03
    return pd.Series(pd.array(values, dtype="Int64")).mask(missing)


def _make_labs(rng: np.random.Generator, visits: pd.DataFrame) -> pd.DataFrame:
    dx = visits["dx"].to_numpy()
    admit = visits["admit_day"].to_numpy()
    stay = visits["discharge_day"].to_numpy() - admit
    count = len(visits)

    def taken(rows: np.ndarray) -> np.ndarray:
        return admit[rows] + (rng.random(len(rows)) * (stay[rows] + 1)).astype(np.int64)

    # Every visit has glucose drawn at admission, and some have creatinine and sodium.
    glucose_rows = np.arange(count)
    kidney_or_heart = np.isin(DX_CODES[dx], ["N18.3", "I50.0"])
    creatinine_rows = np.flatnonzero(
        rng.random(count) < np.where(kidney_or_heart, 0.95, 0.6)
    )
    sodium_rows = np.flatnonzero(rng.random(count) < 0.5)
    creatinine_dx = dx[creatinine_rows]
    creatinine = rng.normal(
        _CREATININE[creatinine_dx, 0], _CREATININE[creatinine_dx, 1]
    )
    creatinine = np.clip(np.round(creatinine), 40, 900)
    sodium_mean = np.where(DX_CODES[dx[sodium_rows]] == "I50.0", 134.0, 139.0)
    sodium = np.clip(np.round(rng.normal(sodium_mean, 3.5)), 120, 158)

    labs = pd.DataFrame(
        {
            "visit_row": np.concatenate([glucose_rows, creatinine_rows, sodium_rows]),
            "test": np.repeat(
                np.array(["GLU", "CREA", "NA"], dtype=object),
                [count, len(creatinine_rows), len(sodium_rows)],
            ),
            "test_rank": np.repeat(
                [0, 1, 2], [count, len(creatinine_rows), len(sodium_rows)]
            ),
            "value": np.concatenate(
                [visits["glucose_tenths"].to_numpy() / 10, creatinine, sodium]
            ),
            "taken_day": np.concatenate(
                [admit, taken(creatinine_rows), taken(sodium_rows)]
            ),
        }
    )
    labs = labs.iloc[np.lexsort((labs["test_rank"], labs["visit_row"]))]
    labs = labs.reset_index(drop=True)
    labs["visit"] = visits["number"].to_numpy()[labs["visit_row"]]
    return labs.drop(columns="test_rank")
