"""Profiling a table column by column: kind, missing, distinct, invalid, outliers."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from medkit._ids import NOT_CANONICAL, id_numbers, normalize_id
from medkit._rules import strip_spaces
from medkit._specs import MISSING_TOKENS, TableSpec
from medkit._value_rules import _parse_dates

PROFILE_COLUMNS = ["type", "rows", "missing", "distinct", "invalid", "outliers"]
OUTLIER_IQR = 3.0
"""Without a spec range, values beyond this many interquartile ranges outside
the quartiles count as outliers (Tukey's far-out fences)."""

_INFER_SHARE = 0.9


def profile(frame: pd.DataFrame, spec: TableSpec | None = None) -> pd.DataFrame:
    """Count missing, distinct, invalid and outlying values in each column.

    Works on raw text tables, before cleaning, and on clean typed tables.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table.
    spec : TableSpec, optional
        Column kinds, spellings, formats and ranges to check against. Without
        it, each text column's kind is inferred: ``integer``, ``number`` or
        ``date`` when at least 90% of its present values parse as such, else
        ``category`` when it has at most 20 distinct values, else ``text``.

    Returns
    -------
    pandas.DataFrame
        One row per column, indexed by column name, with these columns:

        - ``type``: the column kind, one of :data:`medkit.digitize.KINDS`, from
          the spec or inferred.
        - ``rows``: number of rows.
        - ``missing``: values that are empty, NaN or a missing token.
        - ``distinct``: distinct present values after stripping spaces.
        - ``invalid``: present values that do not parse as the kind, or do not
          fit its spellings or format.
        - ``outliers``: numbers outside the spec's range, or outside the
          far-out fences when the spec gives no range.

    Examples
    --------
    >>> from medkit.digitize import VISITS
    >>> raw = pd.DataFrame({"age": ["64", "NA", "999", "71", "x"]})
    >>> profile(raw, VISITS)  # doctest: +NORMALIZE_WHITESPACE
               type  rows  missing  distinct  invalid  outliers
    column
    age     integer     5        1         4        1         1
    """
    rows = [_profile_column(frame[column], column, spec) for column in frame.columns]
    report = pd.DataFrame(rows, index=pd.Index(frame.columns, name="column"))
    return report[PROFILE_COLUMNS]


def plot_profile(report: pd.DataFrame, *, ax: Axes | None = None) -> Figure:
    """Draw missing, invalid and outlying values per column as a share of rows.

    Parameters
    ----------
    report : pandas.DataFrame
        The output of :func:`profile`.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is made without one.

    Returns
    -------
    matplotlib.figure.Figure
        The figure with one group of horizontal bars per column, in percent.
    """
    if ax is None:
        figure = Figure(figsize=(7, 0.45 * len(report) + 1.5), layout="constrained")
        ax = figure.add_subplot()
    shares = report[["missing", "invalid", "outliers"]].div(
        report["rows"].clip(lower=1), axis=0
    )
    positions = np.arange(len(report))
    height = 0.27
    for offset, measure in enumerate(shares.columns):
        ax.barh(
            positions + (offset - 1) * height,
            100 * shares[measure],
            height,
            label=measure,
        )
    ax.set_yticks(positions, [str(name) for name in report.index])
    ax.invert_yaxis()
    ax.set_xlabel("share of rows (%)")
    ax.set_title("Data quality by column")
    ax.legend(loc="lower right")
    return ax.figure


def _profile_column(
    series: pd.Series, column: str, spec: TableSpec | None
) -> dict[str, object]:
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_datetime64_any_dtype(
        series
    ):
        return _profile_typed(series, column, spec)

    text = series.to_numpy(dtype=object)
    present = pd.notna(text)
    codes, uniques = pd.factorize(text[present])
    stripped = np.array([strip_spaces(str(value)) for value in uniques], dtype=object)
    tokens = _tokens(column, spec)
    is_token = pd.Series(stripped, dtype=object).isin(tokens).to_numpy()
    counts = np.bincount(codes, minlength=len(uniques))
    values, counts = stripped[~is_token], counts[~is_token]

    kind = spec.kinds.get(column, "text") if spec else _infer_kind(values, counts)
    invalid_mask, numbers = _check_kind(values, kind, column, spec)
    outliers = (
        _outliers(numbers, _range(column, spec), counts) if numbers is not None else 0
    )
    return {
        "type": kind,
        "rows": len(series),
        "missing": int(len(series) - counts.sum()),
        "distinct": len(pd.unique(values)),
        "invalid": int(counts[invalid_mask].sum()),
        "outliers": outliers,
    }


def _profile_typed(
    series: pd.Series, column: str, spec: TableSpec | None
) -> dict[str, object]:
    if pd.api.types.is_datetime64_any_dtype(series):
        kind, outliers = "date", 0
    else:
        numbers = series.to_numpy(dtype=float, na_value=np.nan)
        numbers = numbers[~np.isnan(numbers)]
        kind = "integer" if pd.api.types.is_integer_dtype(series) else "number"
        if spec is not None:
            kind = spec.kinds.get(column, kind)
        outliers = _outliers(numbers, _range(column, spec), np.ones(len(numbers)))
    return {
        "type": kind,
        "rows": len(series),
        "missing": int(series.isna().sum()),
        "distinct": int(series.nunique()),
        "invalid": 0,
        "outliers": outliers,
    }


def _tokens(column: str, spec: TableSpec | None) -> list[str]:
    if spec is None:
        return list(MISSING_TOKENS)
    if column in spec.literal_columns:
        return [""]
    return list(spec.missing_tokens)


def _parse_numbers(values: np.ndarray) -> np.ndarray:
    numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
    return numbers.to_numpy(dtype=float)


def _infer_kind(values: np.ndarray, counts: np.ndarray) -> str:
    total = counts.sum()
    if total == 0:
        return "text"
    numbers = _parse_numbers(values)
    parsed = ~np.isnan(numbers)
    if counts[parsed].sum() >= _INFER_SHARE * total:
        integral = numbers[parsed] == np.round(numbers[parsed])
        return "integer" if integral.all() else "number"
    _, shaped = _parse_dates(values, dayfirst=True)
    if counts[shaped].sum() >= _INFER_SHARE * total:
        return "date"
    return "category" if len(values) <= 20 else "text"


def _check_kind(
    values: np.ndarray, kind: str, column: str, spec: TableSpec | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Return which distinct values are invalid, and their numbers if numeric."""
    if kind in ("integer", "number"):
        numbers = _parse_numbers(values)
        invalid = np.isnan(numbers)
        if kind == "integer":
            invalid |= np.isfinite(numbers) & (numbers != np.round(numbers))
        numbers = numbers.copy()
        numbers[invalid] = np.nan
        return invalid, numbers
    if kind == "date":
        dates, shaped = _parse_dates(values, spec.dayfirst if spec else True)
        return ~shaped | np.isnat(dates), None
    if spec is not None and kind == "id":
        id_format = spec.ids[column]
        normalized = np.array(
            [normalize_id(v, id_format) for v in values], dtype=object
        )
        return id_numbers(normalized, id_format) == NOT_CANONICAL, None
    if spec is not None and kind == "code":
        pattern = re.compile(spec.codes[column])
        invalid = [
            pattern.fullmatch("".join(v.split()).upper()) is None for v in values
        ]
        return np.array(invalid, dtype=bool), None
    if spec is not None and kind == "category":
        spellings = spec.spellings[column]
        invalid = [value.casefold() not in spellings for value in values]
        return np.array(invalid, dtype=bool), None
    return np.zeros(len(values), dtype=bool), None


def _range(column: str, spec: TableSpec | None) -> tuple[float, float] | None:
    return None if spec is None else spec.ranges.get(column)


def _outliers(
    numbers: np.ndarray, bounds: tuple[float, float] | None, counts: np.ndarray
) -> int:
    present = ~np.isnan(numbers)
    numbers, counts = numbers[present], np.asarray(counts)[present]
    if not len(numbers):
        return 0
    if bounds is None:
        repeated = np.repeat(numbers, counts.astype(int))
        first, third = np.percentile(repeated, [25, 75])
        spread = third - first
        bounds = (first - OUTLIER_IQR * spread, third + OUTLIER_IQR * spread)
    outside = (numbers < bounds[0]) | (numbers > bounds[1])
    return int(counts[outside].sum())
