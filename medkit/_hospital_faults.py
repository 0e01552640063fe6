"""Bookkeeping for export faults: which raw rows carry which fault, and why.

A :class:`RawTable` contains the text columns of one raw export while faults are
added. Every change goes through :meth:`RawTable.record`, so the fault counts,
the quarantine list and the duplicate list are all read from what was injected.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medkit._hospital_truth import to_day, ymd

MISSING_TOKENS = ("", "NA", "N/A", "NULL", "-", "未知")
MISSING_FAULT = 'missing written as "", NA, N/A, NULL, - or 未知'
SPACE_PATTERNS = (" {}", "{} ", "  {}", "{}  ", " {} ")
_FIRST_DAY = to_day("1900-01-01")
_LAST_DAY = to_day("2030-12-31")


def scaled(per_1000: float, n_patients: int) -> int:
    """Return a fault count for ``n_patients``: ``per_1000`` per 1,000, at least 1."""
    return max(1, round(per_1000 * n_patients / 1000))


@functools.cache
def _date_tables() -> dict[str, np.ndarray]:
    days = np.arange(_FIRST_DAY, _LAST_DAY + 1)
    year, month, day = (part.tolist() for part in ymd(days))
    parts = list(zip(year, month, day, strict=True))
    return {
        "iso": np.datetime_as_string(days.astype("datetime64[D]")).astype(object),
        "day_first": np.array([f"{d:02d}/{m:02d}/{y}" for y, m, d in parts], object),
        "chinese": np.array([f"{y}年{m}月{d}日" for y, m, d in parts], object),
    }


def format_dates(days: np.ndarray, style: str = "iso") -> np.ndarray:
    """Write days since 1970-01-01 as text: ``iso``, ``day_first`` or ``chinese``.

    Day-first dates read DD/MM/YYYY and Chinese dates read YYYY年M月D日.
    """
    days = np.asarray(days, dtype=np.int64)
    if len(days) and (days.min() < _FIRST_DAY or days.max() > _LAST_DAY):
        raise ValueError("Dates must lie between 1900-01-01 and 2030-12-31.")
    return _date_tables()[style][days - _FIRST_DAY]


def format_ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """Write numbers as zero-padded text IDs, e.g. ``V0000042``."""
    template = prefix + f"{{:0{width}d}}"
    return np.array(list(map(template.format, np.asarray(numbers).tolist())), object)


def format_integers(numbers: np.ndarray) -> np.ndarray:
    """Write integers as text."""
    return np.array(list(map(str, np.asarray(numbers).tolist())), dtype=object)


def pad_spaces(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    """Surround each value with spaces in one of SPACE_PATTERNS."""
    patterns = rng.integers(0, len(SPACE_PATTERNS), len(values))
    return np.array(
        [SPACE_PATTERNS[p].format(v) for p, v in zip(patterns, values, strict=True)],
        dtype=object,
    )


@dataclass
class Fault:
    """One kind of fault in one column, and the raw rows that carry it."""

    column: str
    fault: str
    outcome: str
    mask: np.ndarray


@dataclass
class ExportedTable:
    """A finished raw export and what a correct cleaner must make of it.

    ``clean_rows`` indexes the truth table, in raw-file order, for the rows that
    survive cleaning. Rows in ``quarantine`` and ``duplicates`` are counted as
    a spreadsheet does: the header is row 1 and the first record is row 2.
    """

    raw: pd.DataFrame
    clean_rows: np.ndarray
    quarantine: pd.DataFrame
    duplicates: pd.DataFrame
    faults: pd.DataFrame


class RawTable:
    """Text columns of one raw export while its faults are injected.

    Parameters
    ----------
    columns : dict of str to ndarray
        Text of every row, clean records and quarantined rows alike, with
        ``None`` where a value is missing.
    truth_row : ndarray of int
        Index into the truth table for clean records, -1 for quarantined rows.
    rule : ndarray of object
        Quarantine rule of each row, ``""`` for clean records.
    """

    def __init__(
        self, columns: dict[str, np.ndarray], truth_row: np.ndarray, rule: np.ndarray
    ) -> None:
        self.columns = {
            name: np.asarray(v, dtype=object) for name, v in columns.items()
        }
        self.truth_row = np.asarray(truth_row)
        self.rule = np.asarray(rule, dtype=object)
        self.faults: list[Fault] = []
        self.duplicate_of = np.full(len(self.truth_row), -1)
        self._used: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.truth_row)

    def from_truth(self, values: np.ndarray) -> np.ndarray:
        """Return ``values`` of the truth table per row, 0 for quarantined rows."""
        known = self.truth_row >= 0
        result = np.zeros(len(self), dtype=values.dtype)
        result[known] = values[self.truth_row[known]]
        return result

    def record(self, column: str, fault: str, outcome: str, rows: np.ndarray) -> None:
        """Add a fault carried by ``rows``, or add rows to a fault already recorded."""
        for known in self.faults:
            if (known.column, known.fault) == (column, fault):
                known.mask[rows] = True
                return
        mask = np.zeros(len(self), dtype=bool)
        mask[rows] = True
        self.faults.append(Fault(column, fault, outcome, mask))

    def choose(
        self,
        rng: np.random.Generator,
        count: int,
        column: str,
        where: np.ndarray | None = None,
    ) -> np.ndarray:
        """Pick up to ``count`` clean records whose ``column`` has no fault yet."""
        free = (self.truth_row >= 0) & (self.duplicate_of < 0)
        free &= ~self._used.setdefault(column, np.zeros(len(self), dtype=bool))
        if where is not None:
            free &= where
        candidates = np.flatnonzero(free)
        rows = np.sort(
            rng.choice(candidates, min(count, len(candidates)), replace=False)
        )
        self._used[column][rows] = True
        return rows

    def change(
        self,
        rows: np.ndarray,
        column: str,
        values: np.ndarray,
        fault: str,
        outcome: str,
    ) -> None:
        """Overwrite ``column`` in ``rows`` and record the fault."""
        self.columns[column][rows] = values
        self.record(column, fault, outcome, rows)

    def write_missing(self, rng: np.random.Generator, column: str) -> None:
        """Write each missing value of ``column`` as one of MISSING_TOKENS."""
        rows = np.flatnonzero(pd.isna(self.columns[column]))
        tokens = np.array(MISSING_TOKENS, dtype=object)
        values = tokens[rng.integers(0, len(tokens), len(rows))]
        self.change(rows, column, values, MISSING_FAULT, "set to missing")

    def duplicate(
        self,
        rng: np.random.Generator,
        count: int,
        fault: str,
        alter: Callable[[np.random.Generator, dict[str, np.ndarray]], dict]
        | None = None,
    ) -> None:
        """Append copies of ``count`` clean records, each placed after its source.

        ``alter`` may change the copies' columns in place (to make near
        duplicates) and returns ``{(column, fault, outcome): mask}`` for faults
        the change adds. Copies inherit every fault of their source.
        """
        sources = self.choose(rng, count, "duplicate source")
        copies = {name: values[sources].copy() for name, values in self.columns.items()}
        added = alter(rng, copies) if alter is not None else {}
        start = len(self)

        for name, values in copies.items():
            self.columns[name] = np.concatenate([self.columns[name], values])
        self.truth_row = np.concatenate([self.truth_row, self.truth_row[sources]])
        self.rule = np.concatenate([self.rule, self.rule[sources]])
        self.duplicate_of = np.concatenate([self.duplicate_of, sources])
        for known in self.faults:
            known.mask = np.concatenate([known.mask, known.mask[sources]])
        for name in self._used:
            self._used[name] = np.concatenate(
                [self._used[name], self._used[name][sources]]
            )

        copy_rows = np.arange(start, len(self))
        self.record("*", fault, "removed (duplicates)", copy_rows)
        for (column, kind, outcome), mask in added.items():
            self.record(column, kind, outcome, copy_rows[mask])

    def finish(self, rng: np.random.Generator, table: str) -> ExportedTable:
        """Move each copy to a random place after its source and collect the result."""
        is_copy = self.duplicate_of >= 0
        original_count = int((~is_copy).sum())
        key = np.arange(len(self), dtype=float)
        sources = self.duplicate_of[is_copy]
        key[is_copy] = rng.uniform(sources + 0.5, original_count)
        order = np.argsort(key, kind="stable")
        position = np.empty(len(self), dtype=np.int64)
        position[order] = np.arange(len(self))
        spreadsheet_row = position + 2

        raw = pd.DataFrame(
            {name: values[order] for name, values in self.columns.items()}
        )
        rule = self.rule[order]
        copy_in_order = is_copy[order]
        quarantined = (rule != "") & ~copy_in_order
        clean = (rule == "") & ~copy_in_order
        copy_rows = np.flatnonzero(is_copy)
        duplicates = pd.DataFrame(
            {
                "table": table,
                "row": spreadsheet_row[copy_rows],
                "duplicate_of": spreadsheet_row[self.duplicate_of[copy_rows]],
            }
        ).sort_values("row", ignore_index=True)
        faults = pd.DataFrame(
            {
                "table": table,
                "column": [f.column for f in self.faults],
                "fault": [f.fault for f in self.faults],
                "count": [int(f.mask.sum()) for f in self.faults],
                "outcome": [f.outcome for f in self.faults],
            }
        )
        return ExportedTable(
            raw=raw,
            clean_rows=self.truth_row[order][clean],
            quarantine=pd.DataFrame(
                {
                    "table": table,
                    "row": np.flatnonzero(quarantined) + 2,
                    "rule": rule[quarantined],
                }
            ),
            duplicates=duplicates,
            faults=faults[faults["count"] > 0].reset_index(drop=True),
        )
