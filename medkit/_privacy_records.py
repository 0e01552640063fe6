"""Column roles, generalisation of quasi-identifiers, and the shared record.

Every column of the hospital tables has a role. Direct identifiers are dropped,
keys are pseudonymised, quasi-identifiers are generalised, and sensitive and
other columns are kept. :func:`shared_records` builds the one record per stay
that sites exchange.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Literal

import numpy as np
import pandas as pd

from medkit._privacy_keys import (
    _as_series,
    _to_datetime,
    key_bytes,
    pseudonymize,
    shift_dates,
)
from medkit.exceptions import MissingColumnError, PrivacyError

logger = logging.getLogger(__name__)

ROLE_NAMES = ("direct", "key", "quasi", "sensitive", "other")


def _roles(**columns: str) -> Mapping[str, str]:
    return MappingProxyType(columns)


ROLES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "patients": _roles(
            patient_id="key",
            name="direct",
            sex="quasi",
            birth_date="quasi",
            phone="direct",
            national_id="direct",
            postcode="quasi",
            address="direct",
        ),
        "visits": _roles(
            visit_id="key",
            patient_id="key",
            admit_date="quasi",
            discharge_date="quasi",
            department="sensitive",
            icd10="sensitive",
            age="quasi",
            systolic_bp="sensitive",
            heart_rate="sensitive",
            readmit_30d="sensitive",
        ),
        "labs": _roles(
            lab_id="key",
            visit_id="key",
            test="sensitive",
            value="sensitive",
            unit="other",
            taken_date="quasi",
        ),
        # Free text may name people; scan it with medkit.privacy.scan before sharing.
        "notes": _roles(
            note_id="key",
            patient_id="key",
            visit_id="key",
            language="other",
            text="sensitive",
        ),
        "patient_services": _roles(
            patient_id="key", service_code="sensitive", received_date="quasi"
        ),
        "services": _roles(
            service_code="other", name_en="other", name_zh="other", category="other"
        ),
        "shared": _roles(
            record_id="key",
            patient_pseudonym="key",
            site="other",
            sex="quasi",
            age_band="quasi",
            admit_month="quasi",
            length_of_stay="quasi",
            postcode_prefix="quasi",
            department="sensitive",
            icd10="sensitive",
            systolic_bp="sensitive",
            heart_rate="sensitive",
            readmit_30d="sensitive",
        ),
    }
)
"""Role of every column of each table: table -> column -> role.

Roles and what :func:`deidentify` does with them:

* "direct" identifiers are dropped.
* "key" columns are pseudonymised.
* "quasi" identifiers are generalised, and checked for k-anonymity.
* "sensitive" values are what analyses need, and are kept.
* "other" columns are kept.
"""

# Prefix of the pseudonym of each key column. A visit's pseudonym is the shared
# record's record_id.
KEY_PREFIXES: Mapping[str, str] = MappingProxyType(
    {"patient_id": "P", "visit_id": "R", "lab_id": "L", "note_id": "N"}
)

SHARED_COLUMNS = tuple(ROLES["shared"])
"""Columns of a shared record, in order."""

SHARED_DTYPES: Mapping[str, str] = MappingProxyType(
    {
        **{column: "str" for column in SHARED_COLUMNS},
        "length_of_stay": "int64",
        "systolic_bp": "Int64",
        "heart_rate": "Int64",
        "readmit_30d": "int64",
    }
)
"""pandas dtype of each shared-record column."""


def age_band(
    ages: pd.Series | Iterable[float], width: int = 10, top: int = 90
) -> pd.Series:
    """Generalise ages in years to bands such as "60-69", with a top band "90+".

    Parameters
    ----------
    ages : Series or iterable of numbers
        Ages in whole or fractional years; missing ages stay missing.
    width : int, default=10
        Years per band, at least 1. Bands start at multiples of ``width``.
    top : int, default=90
        Lowest age of the open top band. The band below it ends at ``top - 1``.

    Returns
    -------
    Series of str

    Raises
    ------
    PrivacyError
        If an age is negative or not a number, or ``width`` or ``top`` is below 1.

    Examples
    --------
    >>> age_band([5, 64, 89, 93]).tolist()
    ['0-9', '60-69', '80-89', '90+']
    """
    if width < 1 or top < 1:
        raise PrivacyError(
            f"age_band needs width >= 1 and top >= 1; got {width}, {top}."
        )
    series = _as_series(ages)
    numbers = pd.to_numeric(series, errors="coerce").astype("float64")
    bad = numbers.isna() & series.notna() | (numbers < 0)
    if bad.any():
        where = int(np.flatnonzero(bad.to_numpy())[0])
        value = series.iloc[where]
        shown = (
            f"{value:g}" if isinstance(value, int | float | np.number) else repr(value)
        )
        raise PrivacyError(
            f"Age {shown} at position {where} is not a non-negative number of "
            "years; clean the ages first."
        )
    lower = (np.floor(numbers / width) * width).mask(numbers >= top, top)
    labels = {
        value: _band_label(int(value), width, top) for value in lower.dropna().unique()
    }
    result = lower.map(labels).astype("str").mask(lower.isna())
    result.index = series.index
    return result.rename(series.name)


def _band_label(lower: int, width: int, top: int) -> str:
    if lower >= top:
        return f"{top}+"
    return f"{lower}-{min(lower + width, top) - 1}"


def to_month(dates: pd.Series | Iterable[object]) -> pd.Series:
    """Generalise dates to their month, as "YYYY-MM" text; missing stays missing.

    Examples
    --------
    >>> to_month(["2024-03-07", None]).tolist()
    ['2024-03', nan]
    """
    series = _as_series(dates)
    parsed = _to_datetime(series)
    result = pd.Series(parsed.dt.strftime("%Y-%m").to_numpy(), dtype="str")
    result.index = series.index
    return result.rename(series.name)


def postcode_prefix(codes: pd.Series | Iterable[object], digits: int = 3) -> pd.Series:
    """Keep the first ``digits`` digits of each postcode; missing stays missing.

    Parameters
    ----------
    codes : Series or iterable of str
        Postcodes as text, so that leading zeros are kept.
    digits : int, default=3
        Digits to keep, at least 1.

    Raises
    ------
    PrivacyError
        If a postcode is not text of at least ``digits`` ASCII digits.

    Examples
    --------
    >>> postcode_prefix(["012345", "730945"]).tolist()
    ['012', '730']
    """
    if digits < 1:
        raise PrivacyError(f"postcode_prefix needs digits >= 1; got {digits}.")
    series = _as_series(codes)
    present = series.dropna()
    if pd.api.types.is_numeric_dtype(present):
        raise PrivacyError(
            "Postcodes are numbers, which lose their leading zeros; "
            "read them as text (dtype=str)."
        )
    text = present.astype("str").str.strip()
    bad = ~text.str.fullmatch(rf"[0-9]{{{digits},}}")
    if bad.any():
        raise PrivacyError(
            f"Postcode {text[bad].iloc[0]!r} at index {bad[bad].index[0]!r} is not "
            f"a code of at least {digits} digits; clean the postcodes first."
        )
    result = pd.Series(np.nan, index=series.index, dtype="str", name=series.name)
    result[text.index] = text.str.slice(0, digits)
    return result


def _require(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    for column in columns:
        if column not in frame.columns:
            raise MissingColumnError(
                f"Column {column!r} is missing from {what}; it has "
                f"{', '.join(map(str, frame.columns))}.",
                column=column,
            )


def deidentify(
    frame: pd.DataFrame,
    table: str,
    key: bytes | str,
    *,
    dates: Literal["month", "shift"] = "month",
    max_shift_days: int = 180,
    age_width: int = 10,
    postcode_digits: int = 3,
    roles: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Drop direct identifiers, pseudonymise keys and generalise quasi-identifiers.

    Columns are treated by their role in ``ROLES[table]``, updated by ``roles``:

    * direct identifiers (name, phone, national_id, address) are dropped;
    * keys are pseudonymised with :func:`pseudonymize` (prefix from
      ``KEY_PREFIXES``, "K" for other keys);
    * ``age`` becomes ``age_band``, ``postcode`` becomes ``postcode_prefix``, and
      each ``*_date`` becomes ``*_month`` ("month") or is shifted per patient
      ("shift", which needs a ``patient_id`` column);
    * other quasi-identifiers (such as ``sex``), sensitive and other columns are
      kept as they are.

    Parameters
    ----------
    frame : DataFrame
        Clean records of one table, such as ``load_answer_key("visits")``.
    table : str
        A table of ``ROLES``.
    key : bytes or str
        The pseudonym key, at least 16 bytes (see :func:`pseudonymize`).
    dates : {"month", "shift"}, default="month"
        How dates are generalised.
    max_shift_days : int, default=180
        Largest date shift, for ``dates="shift"``.
    age_width : int, default=10
        Years per age band.
    postcode_digits : int, default=3
        Postcode digits kept.
    roles : mapping of str to str, optional
        Roles of columns that ``ROLES[table]`` lacks, or that differ here.

    Returns
    -------
    DataFrame
        The de-identified table, rows in the same order.

    Raises
    ------
    PrivacyError
        If ``table`` or a role is unknown, or a column has no role: a column
        without a role may be an identifier, so it is never passed through.
    """
    key = key_bytes(key)
    if table not in ROLES:
        raise PrivacyError(
            f"Unknown table {table!r}; expected one of {', '.join(ROLES)}."
        )
    column_roles = {**ROLES[table], **(roles or {})}
    for column, role in column_roles.items():
        if role not in ROLE_NAMES:
            raise PrivacyError(
                f"Column {column!r} has role {role!r}; expected one of "
                f"{', '.join(ROLE_NAMES)}."
            )
    unknown = [c for c in frame.columns if c not in column_roles]
    if unknown:
        raise PrivacyError(
            f"Columns {unknown} of table {table!r} have no role; pass "
            "roles={column: role} to deidentify, or drop them."
        )
    if dates not in ("month", "shift"):
        raise PrivacyError(f"dates is {dates!r}; expected 'month' or 'shift'.")
    if dates == "shift":
        _require(frame, ["patient_id"], f"table {table!r} (needed to shift dates)")

    columns: dict[str, pd.Series] = {}
    for column in frame.columns:
        role = column_roles[column]
        values = frame[column]
        if role == "direct":
            continue
        if role == "key":
            prefix = KEY_PREFIXES.get(column, "K")
            columns[column] = pseudonymize(values, key, prefix=prefix)
        elif role == "quasi" and column == "age":
            columns["age_band"] = age_band(values, width=age_width)
        elif role == "quasi" and column == "postcode":
            columns["postcode_prefix"] = postcode_prefix(values, postcode_digits)
        elif role == "quasi" and column.endswith("_date") and dates == "month":
            columns[column.removesuffix("_date") + "_month"] = to_month(values)
        elif role == "quasi" and column.endswith("_date"):
            shifted = shift_dates(values, frame["patient_id"], key, max_shift_days)
            columns[column] = shifted
        else:
            columns[column] = values
    dropped = [c for c in frame.columns if column_roles[c] == "direct"]
    logger.info(
        "De-identified %d %s rows: dropped %s, pseudonymised %d key columns",
        len(frame),
        table,
        dropped or "no columns",
        sum(column_roles[c] == "key" for c in frame.columns),
    )
    return pd.DataFrame(columns, index=frame.index)


def shared_records(
    patients: pd.DataFrame, visits: pd.DataFrame, key: bytes | str, site: str
) -> pd.DataFrame:
    """Build one de-identified shared record per inpatient stay.

    Each visit is joined to its patient's sex and postcode. IDs become keyed
    pseudonyms, so two sites with the same key give a patient the same
    ``patient_pseudonym``; age, admission date and postcode are generalised.

    Parameters
    ----------
    patients : DataFrame
        Clean patients with ``patient_id``, ``sex`` ("M", "F" or missing) and
        ``postcode`` (text), such as ``load_answer_key("patients")``.
    visits : DataFrame
        Clean visits with ``visit_id``, ``patient_id``, ``admit_date``,
        ``discharge_date``, ``department``, ``icd10``, ``age`` (years),
        ``systolic_bp`` (mmHg), ``heart_rate`` (beats per minute) and
        ``readmit_30d`` (0 or 1).
    key : bytes or str
        The pseudonym key, at least 16 bytes: from :func:`load_key`, or the
        text of :func:`new_key`.
    site : str
        Name of the sending site.

    Returns
    -------
    DataFrame
        Columns ``SHARED_COLUMNS`` in that order, one row per visit in the order
        of ``visits``, with a new 0-based index. ``length_of_stay`` (days) and
        ``readmit_30d`` are int64; ``systolic_bp`` and ``heart_rate`` are
        nullable Int64; the others are text.

    Raises
    ------
    MissingColumnError
        If a required column is absent.
    PrivacyError
        If ``site`` is empty, a patient ID repeats in ``patients``, a visit's
        patient is not in ``patients``, ``sex`` has a value other than "M" or
        "F", or a stay ends before it starts.
    """
    key = key_bytes(key)
    if not isinstance(site, str) or not site.strip():
        raise PrivacyError(
            f"Site name {site!r} is empty; give the sending site's name."
        )
    _require(patients, ["patient_id", "sex", "postcode"], "patients")
    visit_columns = [
        "visit_id", "patient_id", "admit_date", "discharge_date", "department",
        "icd10", "age", "systolic_bp", "heart_rate", "readmit_30d",
    ]  # fmt: skip
    _require(visits, visit_columns, "visits")

    # Join each visit to its patient.
    people = patients[["patient_id", "sex", "postcode"]]
    repeated = people["patient_id"].duplicated()
    if repeated.any():
        raise PrivacyError(
            f"{int(repeated.sum())} patient IDs appear more than once in patients; "
            "remove duplicates first (medkit.digitize.clean)."
        )
    position = pd.Index(people["patient_id"]).get_indexer(visits["patient_id"])
    if (position < 0).any():
        orphans = visits["visit_id"][position < 0]
        raise PrivacyError(
            f"{len(orphans)} visits refer to patients not in patients, such as visit "
            f"{orphans.iloc[0]!r}; quarantine them first (rule 'references')."
        )
    sex = people["sex"].to_numpy(object)[position]
    postcode = people["postcode"].to_numpy(object)[position]
    sex_series = pd.Series(sex, dtype="str")
    unknown_sex = sex_series.notna() & ~sex_series.isin(["M", "F"])
    if unknown_sex.any():
        raise PrivacyError(
            f"Sex {sex_series[unknown_sex].iloc[0]!r} is not 'M', 'F' or missing; "
            "clean the patients first."
        )

    # Generalise dates and compute the stay.
    admit = _to_datetime(visits["admit_date"].reset_index(drop=True))
    discharge = _to_datetime(visits["discharge_date"].reset_index(drop=True))
    undated = admit.isna() | discharge.isna()
    if undated.any():
        first = visits["visit_id"].iloc[int(np.flatnonzero(undated)[0])]
        raise PrivacyError(
            f"Visit {first!r} has no admission or discharge date; "
            "quarantine it first (rule 'required')."
        )
    stay = (discharge - admit).dt.days
    if (stay < 0).any():
        first = visits["visit_id"].iloc[int(np.flatnonzero(stay < 0)[0])]
        raise PrivacyError(
            f"Visit {first!r} is discharged before it is admitted; "
            "quarantine it first (rule 'dates')."
        )

    columns = {
        "record_id": pseudonymize(visits["visit_id"], key, prefix="R"),
        "patient_pseudonym": pseudonymize(visits["patient_id"], key, prefix="P"),
        "site": pd.Series(site, index=visits.index),
        "sex": sex_series,
        "age_band": age_band(visits["age"]),
        "admit_month": admit.dt.strftime("%Y-%m"),
        "length_of_stay": stay,
        "postcode_prefix": postcode_prefix(pd.Series(postcode, dtype="str")),
        "department": visits["department"],
        "icd10": visits["icd10"],
        "systolic_bp": visits["systolic_bp"],
        "heart_rate": visits["heart_rate"],
        "readmit_30d": visits["readmit_30d"],
    }
    records = pd.DataFrame(
        {
            name: pd.Series(values.to_numpy(), dtype=SHARED_DTYPES[name])
            for name, values in columns.items()
        }
    )
    logger.info("Built %d shared records for site %s", len(records), site)
    return records
