"""k-anonymity: measure it, estimate re-identification risk, and enforce it.

Records that share every quasi-identifier value form an equivalence class. A
table is k-anonymous when every class contains at least k records (or, with
``subject``, k different people), so an attacker who knows a person's
quasi-identifiers can narrow them down to no fewer than k records.

:func:`enforce_k_anonymity` follows the Datafly heuristic. While more records
sit in classes smaller than k than may be suppressed, it generalises the
quasi-identifier with the most distinct values by one level. Then it suppresses
the records still in small classes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medkit._privacy_records import age_band
from medkit.exceptions import MissingColumnError, PrivacyError

logger = logging.getLogger(__name__)

Generalizer = Callable[[pd.Series], pd.Series]
SUPPRESSED_VALUE = "*"
"""The value of a quasi-identifier generalised all the way (its column suppressed)."""


@dataclass(frozen=True)
class RiskReport:
    """Re-identification risk of a table under the prosecutor model.

    Attributes
    ----------
    records : int
        Rows of the table.
    classes : int
        Equivalence classes: distinct combinations of quasi-identifier values.
    k_min : int
        Size of the smallest class (0 for an empty table).
    max_risk : float
        ``1 / k_min``: the chance of picking out a record of the smallest class.
    mean_risk : float
        Mean of ``1 / class size`` over records, which is ``classes / records``
        when classes are counted in records.
    records_below_k : int
        Records in classes smaller than ``k``.
    k : int
        The k the table was checked against.
    """

    records: int
    classes: int
    k_min: int
    max_risk: float
    mean_risk: float
    records_below_k: int
    k: int = 5

    def __str__(self) -> str:
        return (
            f"{self.records} records in {self.classes} classes, smallest {self.k_min}; "
            f"max risk {self.max_risk:.3f}, mean risk {self.mean_risk:.3f}; "
            f"{self.records_below_k} records in classes below k={self.k}"
        )


@dataclass
class KAnonymityResult:
    """A k-anonymous table and how it was made.

    Attributes
    ----------
    frame : DataFrame
        The generalised table without the suppressed records, index kept.
    suppressed : DataFrame
        The removed records as they were given, index kept, with a ``reason``
        column naming the class they were in.
    steps : list of str
        Generalisations applied, in order.
    before, after : RiskReport
        Risk of the given table and of ``frame``.
    """

    frame: pd.DataFrame
    suppressed: pd.DataFrame
    steps: list[str] = field(default_factory=list)
    before: RiskReport | None = None
    after: RiskReport | None = None


def _check_columns(
    frame: pd.DataFrame, quasi_identifiers: Sequence[str], subject: str | None
) -> list[str]:
    if isinstance(quasi_identifiers, str):
        quasi_identifiers = [quasi_identifiers]
    columns = list(quasi_identifiers)
    if not columns:
        raise PrivacyError("No quasi-identifiers given; name at least one column.")
    for column in [*columns, *([subject] if subject else [])]:
        if column not in frame.columns:
            raise MissingColumnError(
                f"Quasi-identifier column {column!r} is missing; the table has "
                f"{', '.join(map(str, frame.columns))}.",
                column=column,
            )
    return columns


def _class_codes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Number the equivalence class of each row; missing values form their own."""
    codes = frame.groupby(columns, dropna=False, sort=False).ngroup()
    return codes.to_numpy()


def class_sizes(
    frame: pd.DataFrame, quasi_identifiers: Sequence[str], subject: str | None = None
) -> np.ndarray:
    """Return the size of each row's equivalence class, in records or subjects."""
    columns = _check_columns(frame, quasi_identifiers, subject)
    if frame.empty:
        return np.zeros(0, dtype=np.int64)
    codes = _class_codes(frame, columns)
    if subject is None:
        return np.bincount(codes)[codes]
    # Distinct subjects per class: count each (class, subject) pair once.
    subject_codes = pd.factorize(frame[subject], use_na_sentinel=False)[0]
    pairs = pd.DataFrame({"c": codes, "s": subject_codes}).drop_duplicates()
    return np.bincount(pairs["c"].to_numpy(), minlength=codes.max() + 1)[codes]


def k_anonymity(
    frame: pd.DataFrame, quasi_identifiers: Sequence[str], *, subject: str | None = None
) -> int:
    """Return k: the size of the smallest equivalence class (0 for an empty table).

    Parameters
    ----------
    frame : DataFrame
        The records.
    quasi_identifiers : sequence of str
        Columns an attacker may know, such as ``["sex", "age_band",
        "postcode_prefix"]``. Missing values count as a value of their own.
    subject : str, optional
        Column that identifies the person, such as "patient_pseudonym". With it,
        a class's size is the number of different people in it, because five
        stays of one patient do not hide that patient.

    Raises
    ------
    MissingColumnError
        If a column is absent.

    Examples
    --------
    >>> frame = pd.DataFrame({"sex": ["F", "F", "M"], "age_band": ["60-69"] * 3})
    >>> k_anonymity(frame, ["sex", "age_band"])
    1
    """
    sizes = class_sizes(frame, quasi_identifiers, subject)
    return int(sizes.min()) if len(sizes) else 0


def reidentification_risk(
    frame: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    k: int = 5,
    *,
    subject: str | None = None,
) -> RiskReport:
    """Measure the re-identification risk of a table (prosecutor model).

    Parameters
    ----------
    frame : DataFrame
        The records.
    quasi_identifiers : sequence of str
        Columns an attacker may know.
    k : int, default=5
        Classes smaller than ``k`` are counted in ``records_below_k``.
    subject : str, optional
        Column that identifies the person; see :func:`k_anonymity`.

    Returns
    -------
    RiskReport
        An empty table has ``k_min`` 0 and risks 0.

    Examples
    --------
    >>> frame = pd.DataFrame({"sex": ["F", "F", "M"]})
    >>> report = reidentification_risk(frame, ["sex"], k=2)
    >>> report.classes, report.max_risk, report.records_below_k
    (2, 1.0, 1)
    """
    _check_k(k)
    sizes = class_sizes(frame, quasi_identifiers, subject)
    if not len(sizes):
        return RiskReport(0, 0, 0, 0.0, 0.0, 0, k)
    columns = _check_columns(frame, quasi_identifiers, subject)
    classes = int(_class_codes(frame, columns).max()) + 1
    k_min = int(sizes.min())
    return RiskReport(
        records=len(sizes),
        classes=classes,
        k_min=k_min,
        max_risk=1.0 / k_min,
        mean_risk=float(np.mean(1.0 / sizes)),
        records_below_k=int((sizes < k).sum()),
        k=k,
    )


def _check_k(k: int) -> None:
    if not isinstance(k, int | np.integer) or k < 1:
        raise PrivacyError(f"k is {k!r}; expected a whole number of at least 1.")


# Default generalisation levels, by column name. Each step takes the values of
# the level before; after the last, the column is suppressed ("*").
def _widen_bands(values: pd.Series) -> pd.Series:
    """Double the width of age bands such as "60-69"; the top band absorbs the rest.

    "60-69" and "70-79" become "60-79"; the band that reaches the old top band
    ("90+") becomes open, so "80-89" and "90+" become "80+".
    """
    text = values.astype("str")
    parts = text.str.extract(r"^(\d+)(?:-(\d+)|(\+))$")
    lower = pd.to_numeric(parts[0])
    known = lower.notna()
    if not known.any():
        return values
    width = (pd.to_numeric(parts[1]) - lower + 1).dropna()
    width = int(width.max()) if len(width) else 10
    top = lower[parts[2].notna()]
    top = int(top.min()) if len(top) else None
    new_width = 2 * width
    new_lower = (lower // new_width) * new_width
    labels = new_lower.astype("Int64").astype("str") + "-"
    labels += (new_lower + new_width - 1).astype("Int64").astype("str")
    if top is not None:
        opens = new_lower + new_width > top
        labels[opens] = new_lower[opens].astype("Int64").astype("str") + "+"
    return labels.where(known, values).astype("str").mask(values.isna())


def _shorten(values: pd.Series) -> pd.Series:
    """Drop the last character of each code, such as a postcode prefix."""
    text = values.astype("str")
    return (
        text.str.slice(0, -1)
        .where(text.str.len() > 1, SUPPRESSED_VALUE)
        .mask(values.isna())
    )


def _month_to_quarter(values: pd.Series) -> pd.Series:
    """Turn "YYYY-MM" into "YYYY-Qn"."""
    text = values.astype("str")
    parts = text.str.extract(r"^(\d{4})-(\d{2})$")
    quarter = (pd.to_numeric(parts[1]) - 1) // 3 + 1
    result = parts[0] + "-Q" + quarter.astype("Int64").astype("str")
    return result.where(parts[0].notna(), text).mask(values.isna())


def _to_year(values: pd.Series) -> pd.Series:
    """Keep the leading year of a date, month or quarter."""
    text = values.astype("str")
    year = text.str.extract(r"^(\d{4})")[0]
    return year.where(year.notna(), text).mask(values.isna())


def _bands_from_ages(values: pd.Series) -> pd.Series:
    """Turn ages in years into 10-year bands."""
    return age_band(values)


DEFAULT_GENERALIZERS: Mapping[str, Sequence[Generalizer]] = {
    "age": (_bands_from_ages, _widen_bands, _widen_bands),
    "age_band": (_widen_bands, _widen_bands),
    "postcode": (_shorten,) * 5,
    "postcode_prefix": (_shorten,) * 2,
    "admit_month": (_month_to_quarter, _to_year),
    "birth_date": (_to_year,),
    "admit_date": (_to_year,),
    "discharge_date": (_to_year,),
}
"""Generalisation levels of common quasi-identifiers, finest first.

Each function takes the values of the level before. After the last level a
column is suppressed: every value becomes "*".
"""


def enforce_k_anonymity(
    frame: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    k: int = 5,
    *,
    generalizers: Mapping[str, Sequence[Generalizer]] | None = None,
    max_suppressed: float = 0.05,
    subject: str | None = None,
) -> KAnonymityResult:
    """Generalise and suppress records until the table is k-anonymous.

    While more records than ``max_suppressed`` of the table sit in classes
    smaller than ``k``, the quasi-identifier with the most distinct values that
    can still be generalised moves up one level. Levels come from
    ``DEFAULT_GENERALIZERS``, updated by ``generalizers``, and after its last
    level a column becomes "*". Then the records still in small classes are
    suppressed.

    Parameters
    ----------
    frame : DataFrame
        The records, such as :func:`shared_records`.
    quasi_identifiers : sequence of str
        Columns an attacker may know.
    k : int, default=5
        The k to reach.
    generalizers : mapping of str to sequence of callables, optional
        Levels of a column, finest first, each a function from the values of
        the level before to coarser values. An empty sequence suppresses the
        column at its first step.
    max_suppressed : float, default=0.05
        Share of records that may be suppressed instead of generalised further.
    subject : str, optional
        Column that identifies the person; see :func:`k_anonymity`.

    Returns
    -------
    KAnonymityResult

    Raises
    ------
    PrivacyError
        If ``k`` or ``max_suppressed`` is out of range, or even with every
        quasi-identifier suppressed the table has fewer than ``k`` records (or
        subjects), so every record would have to go.

    Examples
    --------
    >>> frame = pd.DataFrame({"sex": list("FFFMM"), "age_band": ["60-69"] * 5})
    >>> result = enforce_k_anonymity(frame, ["sex", "age_band"], k=3,
    ...                              max_suppressed=0.5)
    >>> len(result.frame), len(result.suppressed), result.after.k_min
    (3, 2, 3)
    """
    _check_k(k)
    if not 0 <= max_suppressed <= 1:
        raise PrivacyError(
            f"max_suppressed is {max_suppressed!r}; expected a share from 0 to 1."
        )
    columns = _check_columns(frame, quasi_identifiers, subject)
    levels = {**DEFAULT_GENERALIZERS, **(generalizers or {})}
    before = reidentification_risk(frame, columns, k, subject=subject)
    allowed = int(np.floor(max_suppressed * len(frame)))

    # Generalise, one column by one level at a time.
    current = frame.copy()
    used = dict.fromkeys(columns, 0)
    steps: list[str] = []
    sizes = class_sizes(current, columns, subject)
    while int((sizes < k).sum()) > allowed:
        candidates = [c for c in columns if used[c] <= len(levels.get(c, ()))]
        if not candidates:
            break
        # Datafly: the column with the most distinct values; the first one on ties.
        distinct = {c: current[c].nunique(dropna=False) for c in candidates}
        column = max(candidates, key=lambda c: (distinct[c], -columns.index(c)))
        steps.append(_generalize(current, column, levels.get(column, ()), used))
        sizes = class_sizes(current, columns, subject)
        logger.debug("%s; %d records below k", steps[-1], int((sizes < k).sum()))

    # Suppress the records still in small classes.
    small = sizes < k
    if small.all() and len(frame):
        count = frame[subject].nunique() if subject else len(frame)
        unit = "people" if subject else "records"
        raise PrivacyError(
            f"The table has {count} {unit} but k is {k}, so no class can reach k; "
            "use a smaller k or more records."
        )
    suppressed = frame[small].copy()
    suppressed["reason"] = _reasons(current[small], columns, sizes[small], k, subject)
    kept = current[~small]
    after = reidentification_risk(kept, columns, k, subject=subject)
    logger.info(
        "k-anonymity %d -> %d over %s: %d steps, %d of %d records suppressed",
        before.k_min,
        after.k_min,
        columns,
        len(steps),
        len(suppressed),
        len(frame),
    )
    return KAnonymityResult(kept, suppressed, steps, before, after)


def _generalize(
    frame: pd.DataFrame,
    column: str,
    levels: Sequence[Generalizer],
    used: dict[str, int],
) -> str:
    level = used[column]
    before = frame[column].nunique(dropna=False)
    if level < len(levels):
        frame[column] = levels[level](frame[column])
    else:
        frame[column] = pd.Series(SUPPRESSED_VALUE, index=frame.index, dtype="str")
    used[column] = level + 1
    after = frame[column].nunique(dropna=False)
    if level >= len(levels):
        return f"{column}: suppressed the column ({before} values -> '*')"
    name = getattr(levels[level], "__name__", "generalizer").lstrip("_")
    return f"{column}: level {level + 1} ({name}), {before} -> {after} values"


def _reasons(
    rows: pd.DataFrame,
    columns: list[str],
    sizes: np.ndarray,
    k: int,
    subject: str | None,
) -> list[str]:
    unit = "people" if subject else "records"
    reasons = []
    for values, size in zip(rows[columns].itertuples(index=False), sizes, strict=True):
        shown = ", ".join(
            f"{c}={'missing' if pd.isna(v) else v}"
            for c, v in zip(columns, values, strict=True)
        )
        reasons.append(f"class {shown} has {size} {unit}, fewer than k={k}")
    return reasons
