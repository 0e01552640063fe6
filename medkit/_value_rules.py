"""Cleaning rules on values: dates, units, ranges, required and references.

These rules parse text into dates and numbers (kept in ``Work.typed``) and
quarantine rows whose value is impossible, out of range or missing.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import date

import numpy as np
import pandas as pd

from medkit._work import Coded, Work

_DATE_SHAPES = (
    re.compile(r"(?P<year>[0-9]{4})-(?P<month>[0-9]{1,2})-(?P<day>[0-9]{1,2})"),
    re.compile(r"(?P<first>[0-9]{1,2})/(?P<second>[0-9]{1,2})/(?P<year>[0-9]{4})"),
    re.compile(r"(?P<year>[0-9]{4})年(?P<month>[0-9]{1,2})月(?P<day>[0-9]{1,2})日"),
)
# Years that datetime64[ns] can represent in full.
_FIRST_YEAR, _LAST_YEAR = 1678, 2261
_NAT = np.datetime64("NaT", "ns")


def _parse_date(text: str, dayfirst: bool) -> tuple[bool, date | None]:
    """Return whether a text has a known date shape, and its date if it is real."""
    for pattern in _DATE_SHAPES:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        parts = match.groupdict()
        if "first" not in parts:
            day, month = parts["day"], parts["month"]
        elif dayfirst:
            day, month = parts["first"], parts["second"]
        else:
            day, month = parts["second"], parts["first"]
        year = int(parts["year"])
        if not _FIRST_YEAR <= year <= _LAST_YEAR:
            return True, None
        try:
            return True, date(year, int(month), int(day))
        except ValueError:
            return True, None
    return False, None


def _parse_dates(uniques: np.ndarray, dayfirst: bool) -> tuple[np.ndarray, np.ndarray]:
    """Parse distinct date texts into dates, and flag the texts of a known shape.

    A text of a known shape that names no real day, such as 31/02/1970, or a
    year outside 1678-2261, gets NaT.
    """
    parsed = [_parse_date(text, dayfirst) for text in uniques]
    shaped = np.array([known for known, _ in parsed], dtype=bool)
    days = [_NAT if day is None else np.datetime64(day, "D") for _, day in parsed]
    return np.array(days, dtype="datetime64[ns]").reshape(len(parsed)), shaped


def _per_row(coded: Coded, per_unique: np.ndarray, missing: object) -> np.ndarray:
    values = np.append(per_unique, np.array([missing], dtype=per_unique.dtype))
    return values[coded.codes]


def apply_dates(work: Work) -> None:
    """Parse dates, then quarantine impossible dates and reversed date pairs.

    Accepted forms are ISO (2024-01-05), slash (05/01/2024, day first unless
    ``spec.dayfirst`` is False) and Chinese (2024年1月5日).
    """
    order = "DD/MM/YYYY" if work.spec.dayfirst else "MM/DD/YYYY"
    for column in work.spec.columns_of("date"):
        coded = work.columns[column]
        dates, shaped = _parse_dates(coded.uniques, work.spec.dayfirst)
        work.reject_unknown(
            column,
            coded.rows_where(~shaped),
            f"Write dates as YYYY-MM-DD, {order} or YYYY年M月D日, or add the value "
            "to the spec's missing_tokens.",
        )
        impossible = np.isnat(dates)
        work.quarantine(
            "dates",
            column,
            coded.rows_where(impossible),
            lambda rows, c=coded, name=column: [
                f"{name} {value!r} is not a valid date" for value in c.values(rows)
            ],
        )
        iso = np.datetime_as_string(dates, unit="D").astype(object)
        work.record("dates", column, coded.rows_where(iso != coded.uniques))
        work.typed[column] = _per_row(coded, dates, _NAT)

    for earlier, later in work.spec.date_order:
        before, after = work.typed[earlier], work.typed[later]
        work.quarantine(
            "dates",
            later,
            after < before,
            lambda rows, a=earlier, b=later, first=before, second=after: [
                f"{b} {_iso(second[row])} is before {a} {_iso(first[row])}"
                for row in rows
            ],
        )


def _iso(value: np.datetime64) -> str:
    return str(value.astype("datetime64[D]"))


def _parse_numbers(work: Work, column: str, whole: bool) -> np.ndarray:
    coded = work.columns[column]
    numbers = pd.to_numeric(pd.Series(coded.uniques, dtype=object), errors="coerce")
    numbers = numbers.to_numpy(dtype=float)
    invalid = np.isnan(numbers)
    expected = "a number"
    if whole:
        invalid |= np.isfinite(numbers) & (numbers != np.round(numbers))
        expected = "a whole number"
    work.reject_unknown(
        column,
        coded.rows_where(invalid),
        f"Expected {expected}; correct the value in the file, or add it to the "
        "spec's missing_tokens.",
    )
    return _per_row(coded, numbers, np.nan)


def apply_units(work: Work) -> None:
    """Convert measurements to the canonical unit of their test.

    Rows whose unit is unknown, or not accepted for their test, are quarantined.
    Converted values are rounded to ``decimals`` places with :func:`numpy.round`.
    """
    rule = work.spec.units
    if rule is None:
        return
    tests, units = work.columns[rule.by], work.columns[rule.unit]
    spelled = units.map(lambda value: rule.spellings.get(value.casefold()))
    factor_table = np.full((len(tests.uniques) + 1, len(units.uniques) + 1), np.nan)
    for i, test in enumerate(tests.uniques):
        accepted = rule.factors.get(test, {})
        for j, unit in enumerate(spelled):
            factor_table[i, j] = accepted.get(unit, np.nan)
    factors = factor_table[tests.codes, units.codes]

    unknown = np.isnan(factors) & (tests.codes >= 0) & (units.codes >= 0)
    work.quarantine(
        "units",
        rule.unit,
        unknown,
        lambda rows: [
            f"unit {unit!r} is not accepted for {test}; expected "
            f"{' or '.join(rule.factors.get(test, {})) or 'no unit'}"
            for test, unit in zip(tests.values(rows), units.values(rows), strict=True)
        ],
    )

    numbers = _parse_numbers(work, rule.value, whole=False)
    work.typed[rule.value] = np.round(numbers * factors, rule.decimals)
    work.record("units", rule.value, (factors != 1) & ~np.isnan(factors))

    canonical = tests.map(lambda test: rule.canonical.get(test))
    rows_with_unit = units.codes >= 0
    respelled = units.values() != _per_row(tests, canonical, None)
    work.record("units", rule.unit, rows_with_unit & respelled)
    work.columns[rule.unit] = Coded(
        np.where(rows_with_unit, tests.codes, -1), canonical.astype(object)
    )


def apply_ranges(work: Work) -> None:
    """Parse numbers and quarantine values outside their plausible range."""
    spec = work.spec
    for column in spec.columns_of("integer") + spec.columns_of("number"):
        if column not in work.typed:
            whole = spec.kinds[column] == "integer"
            work.typed[column] = _parse_numbers(work, column, whole)

    for column, (low, high) in spec.ranges.items():
        numbers = work.typed[column]
        work.quarantine(
            "ranges",
            column,
            (numbers < low) | (numbers > high),
            lambda rows, c=column, lo=low, hi=high: [
                f"{c} {_number(work.typed[c][row])} is outside {lo}-{hi}"
                for row in rows
            ],
        )

    rule = spec.units
    if rule is None:
        return
    tests = work.columns[rule.by]
    bounds = tests.map(lambda test: rule.ranges.get(test, (-np.inf, np.inf)))
    low = _per_row(tests, np.array([b[0] for b in bounds], dtype=float), -np.inf)
    high = _per_row(tests, np.array([b[1] for b in bounds], dtype=float), np.inf)
    numbers = work.typed[rule.value]
    work.quarantine(
        "ranges",
        rule.value,
        (numbers < low) | (numbers > high),
        lambda rows: [
            f"{rule.value} {_number(numbers[row])} {rule.canonical[test]} is outside "
            f"{_number(low[row])}-{_number(high[row])} for {test}"
            for row, test in zip(rows, tests.values(rows), strict=True)
        ],
    )


def _number(value: float) -> str:
    return f"{value:g}"


def apply_required(work: Work) -> None:
    """Quarantine rows without a value in a required column."""
    for column in work.spec.required:
        if column in work.typed:
            missing = pd.isna(work.typed[column])
        else:
            missing = work.columns[column].codes < 0
        work.quarantine(
            "required",
            column,
            missing,
            lambda rows, c=column: [f"{c} is missing"] * len(rows),
        )


def apply_references(
    work: Work, references: Mapping[str, tuple[str, Collection[str]]]
) -> None:
    """Quarantine rows whose foreign key is not among the parent's keys.

    ``references`` maps a column to the parent's name and its valid keys.
    Missing keys are left to the required rule.
    """
    for column, (parent, keys) in references.items():
        coded = work.columns[column]
        known = pd.Series(coded.uniques, dtype=object).isin(pd.Index(keys)).to_numpy()
        unknown = coded.rows_where(~known)
        work.quarantine(
            "references",
            column,
            unknown,
            lambda rows, c=column, p=parent, v=coded: [
                f"{c} {value} is not in {p}" for value in v.values(rows)
            ],
        )
