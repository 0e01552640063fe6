"""Cleaning one table: run the rules in order and account for every row."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medkit import _rules, _value_rules
from medkit._reading import _missing_column_error
from medkit._specs import HOSPITAL, TableSpec
from medkit._work import Coded, Work

logger = logging.getLogger(__name__)

TEXT_DTYPE = pd.Series(["text"]).dtype
"""The dtype pandas gives text: ``str`` from pandas 3, ``object`` before."""

QUARANTINE_COLUMNS = ["table", "row", "rule", "column", "reason", "record"]
DUPLICATE_COLUMNS = ["table", "row", "duplicate_of"]
LOG_COLUMNS = ["rule", "column", "action", "rows_changed", "example_rows"]

_STEPS: tuple[tuple[str, Callable[[Work], None]], ...] = (
    ("whitespace", _rules.apply_whitespace),
    ("missing", _rules.apply_missing),
    ("duplicates", _rules.apply_duplicates),
    ("ids", _rules.apply_ids),
    ("categories", _rules.apply_categories),
    ("dates", _value_rules.apply_dates),
    ("units", _value_rules.apply_units),
    ("ranges", _value_rules.apply_ranges),
    ("required", _value_rules.apply_required),
)


@dataclass(frozen=True)
class CleanResult:
    """The outcome of cleaning one table.

    Attributes
    ----------
    table : str
        Table name.
    frame : pandas.DataFrame
        Clean rows in file order, typed by the spec: text as ``str``, integers as
        ``Int64``, numbers as ``float64`` and dates as ``datetime64[ns]``. The
        index is each row's position in the raw file, so index ``i`` came from
        spreadsheet row ``i + 2``.
    quarantine : pandas.DataFrame
        Rows that failed a rule: ``table``, ``row`` (spreadsheet row), ``rule``,
        ``column``, ``reason`` and ``record``, the raw values as a JSON object.
    duplicates : pandas.DataFrame
        Rows removed as repeats: ``table``, ``row`` and ``duplicate_of``, the
        earlier row that was kept.
    log : pandas.DataFrame
        One line per rule, column and action that changed rows: ``rule``,
        ``column``, ``action`` (``rewritten``, ``set missing``, ``removed`` or
        ``quarantined``), ``rows_changed`` and ``example_rows`` (up to three
        spreadsheet rows).
    rows_read : int
        Records in the raw table.
    """

    table: str
    frame: pd.DataFrame
    quarantine: pd.DataFrame
    duplicates: pd.DataFrame
    log: pd.DataFrame
    rows_read: int

    @property
    def counts(self) -> dict[str, int]:
        """Rows read, clean, quarantined and removed as duplicates."""
        return {
            "read": self.rows_read,
            "clean": len(self.frame),
            "quarantined": len(self.quarantine),
            "duplicates": len(self.duplicates),
        }


def clean(
    frame: pd.DataFrame,
    spec: TableSpec | str,
    *,
    references: Mapping[str, CleanResult | pd.Series | Collection[str]] | None = None,
    path: str | Path | None = None,
) -> CleanResult:
    """Clean a raw table with named rules and account for every row.

    The rules run in this order: whitespace, missing, duplicates, ids,
    categories, dates, units, ranges, required and, when ``references`` is
    given, references. Each row ends up in exactly one of ``frame``,
    ``quarantine`` or ``duplicates``. The input frame is not modified.

    Parameters
    ----------
    frame : pandas.DataFrame
        The raw table with text columns, as :func:`read_table` returns it.
        Columns may also be pandas categoricals of text, which take less memory
        for large tables.
    spec : TableSpec or str
        The table's rules, or the name of a hospital default: ``"patients"``,
        ``"visits"`` or ``"labs"``.
    references : mapping, optional
        Foreign keys to check, from a column to the valid keys: a
        :class:`CleanResult` of the parent table (its column of the same name),
        a Series, or any collection of IDs. Rows whose key is not among them are
        quarantined by the ``references`` rule.
    path : str or Path, optional
        The raw file, named in errors. Defaults to ``frame.attrs["path"]``.

    Returns
    -------
    CleanResult
        The clean frame, quarantine, duplicates and rule log.

    Raises
    ------
    UnknownValueError
        If a value fits no rule: a category spelling, ID, code, date or number
        of a shape that the spec does not describe. The message names the file,
        column, row and value, and how to extend the spec.
    MissingColumnError
        If a column of the spec is not in ``frame``.
    RuntimeError
        If the rows do not add up, which would be a bug in a rule.

    Examples
    --------
    >>> raw = pd.DataFrame({"lab_id": ["L00000001"], "visit_id": ["V0000001"],
    ...     "test": ["GLU"], "value": ["180"], "unit": ["mg/dl"],
    ...     "taken_date": ["05/01/2024"]})
    >>> result = clean(raw, "labs")
    >>> result.frame[["value", "unit"]].to_numpy().tolist()
    [[9.99, 'mmol/L']]
    """
    spec = HOSPITAL[spec] if isinstance(spec, str) else spec
    source = path or frame.attrs.get("path")
    path = Path(source) if source else None
    missing = [column for column in spec.columns if column not in frame.columns]
    if missing:
        raise _missing_column_error(path, missing, list(frame), spec)

    work = Work(spec, path, frame, _code_columns(frame, spec))
    # When the caller passed a temporary frame, ``work`` now holds the only
    # reference, and _result can release the raw columns one by one.
    del frame
    for name, step in _STEPS:
        step(work)
        logger.debug(
            "%s: rule %s applied, %d rows left", spec.name, name, work.alive.sum()
        )
    if references:
        _value_rules.apply_references(work, _resolve_references(references))

    result = _result(work)
    _check_counts(result)
    _log_outcome(result)
    return result


def _code_columns(frame: pd.DataFrame, spec: TableSpec) -> dict[str, Coded]:
    columns = {}
    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            columns[column] = Coded.from_categorical(values.array)
        elif spec.kinds.get(column) == "id":
            columns[column] = Coded.identity(values.to_numpy(dtype=object))
        else:
            columns[column] = Coded.factorize(values.to_numpy(dtype=object))
    return columns


def _resolve_references(
    references: Mapping[str, CleanResult | pd.Series | Collection[str]],
) -> dict[str, tuple[str, Collection[str]]]:
    resolved = {}
    for column, parent in references.items():
        if isinstance(parent, CleanResult):
            resolved[column] = (parent.table, parent.frame[column].dropna())
        elif isinstance(parent, pd.Series) and parent.name is not None:
            resolved[column] = (f"the values of {parent.name}", parent.dropna())
        else:
            resolved[column] = ("the reference values", parent)
    return resolved


def _result(work: Work) -> CleanResult:
    spec = work.spec
    quarantine = _quarantine_frame(work)
    rows_read = len(work.raw)
    work.raw = None
    keep = np.flatnonzero(work.alive)
    data = {}
    # Each column's working state is released once its output is built, which
    # keeps the peak memory of large tables down.
    for column in [*spec.columns, *(c for c in work.columns if c not in spec.kinds)]:
        kind = spec.kinds.get(column, "text")
        coded = work.columns.pop(column)
        typed = work.typed.pop(column, None)
        if typed is None:
            data[column] = pd.array(coded.values(keep), dtype=TEXT_DTYPE)
        elif kind == "integer":
            data[column] = pd.array(typed[keep], dtype="Int64")
        else:
            data[column] = typed[keep]
        del coded, typed
    frame = pd.DataFrame(data, index=keep, copy=False)
    frame.attrs["table"] = spec.name

    duplicates = work.duplicates
    if duplicates is None:
        duplicates = pd.DataFrame({"row": [], "duplicate_of": []}, dtype="int64")
    duplicates.insert(0, "table", spec.name)
    return CleanResult(
        table=spec.name,
        frame=frame,
        quarantine=quarantine,
        duplicates=duplicates[DUPLICATE_COLUMNS].reset_index(drop=True),
        log=pd.DataFrame(work.log, columns=LOG_COLUMNS),
        rows_read=rows_read,
    )


def _quarantine_frame(work: Work) -> pd.DataFrame:
    if not work.quarantined:
        empty = pd.DataFrame(columns=QUARANTINE_COLUMNS)
        return empty.astype({"row": "int64"})
    quarantine = pd.concat(work.quarantined, ignore_index=True)
    quarantine = quarantine.sort_values("row", kind="stable", ignore_index=True)
    raw = work.raw.iloc[quarantine["row"].to_numpy() - 2]
    raw = raw.astype(object).where(raw.notna(), None)
    records = [
        json.dumps(record, ensure_ascii=False) for record in raw.to_dict("records")
    ]
    quarantine.insert(0, "table", work.spec.name)
    quarantine["record"] = records
    return quarantine[QUARANTINE_COLUMNS]


def _check_counts(result: CleanResult) -> None:
    counts = result.counts
    accounted = counts["clean"] + counts["quarantined"] + counts["duplicates"]
    if accounted != counts["read"]:
        raise RuntimeError(
            f"Cleaning {result.table} lost track of rows: {counts['read']} read but "
            f"{counts['clean']} clean + {counts['quarantined']} quarantined + "
            f"{counts['duplicates']} duplicates = {accounted}. A cleaning rule "
            "dropped or repeated rows."
        )


def _log_outcome(result: CleanResult) -> None:
    if len(result.duplicates):
        logger.warning(
            "%s: removed %d duplicate rows", result.table, len(result.duplicates)
        )
    for (rule, column), rows in (
        result.quarantine.groupby(["rule", "column"]).size().items()
    ):
        logger.warning(
            "%s: quarantined %d rows under rule %s (column %s)",
            result.table,
            rows,
            rule,
            column,
        )
    logger.info("%s: %s", result.table, result.counts)
