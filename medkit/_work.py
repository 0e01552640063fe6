"""The state of one table while the cleaning rules run.

Each text column is held factorized: an integer code per row (-1 for missing)
and the distinct values that the codes index. Rules that rewrite or parse text
work on the distinct values, which are few for dates, categories and numbers,
and then index back, so no rule loops over rows in Python. ID columns are nearly
all distinct, so they skip factorizing and hold one code per row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medkit._specs import TableSpec
from medkit.exceptions import UnknownValueError

EXAMPLE_ROWS = 3
"""Number of example rows that the log and error messages name."""

CODE_DTYPE = np.int32
"""Widest integer type of the codes, which limits a table to 2,147,483,647 rows.

Columns with fewer distinct values get int8 or int16 codes, as pandas
categoricals do."""

_TABLE_SIZE_HINT = 1024


def factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Factorize like :func:`pandas.factorize`, with a hash table that grows as needed.

    pandas sizes the table for one entry per row by default. For a million rows
    with 340,000 distinct IDs, that takes about 30 MB more at its peak (measured
    with pandas 3.1).
    """
    return pd.factorize(values, size_hint=_TABLE_SIZE_HINT)


@dataclass
class Coded:
    """A text column as one code per row and the distinct values the codes index.

    ``codes[i]`` is -1 where row ``i`` is missing. ``codes`` may be a read-only
    view of the input frame, so rules replace it rather than write into it.
    ``owned`` is False while ``uniques`` may share memory with the input frame,
    which must not change.
    """

    codes: np.ndarray
    uniques: np.ndarray
    owned: bool = False

    @classmethod
    def factorize(cls, values: np.ndarray) -> Coded:
        """Code a column with few distinct values."""
        codes, uniques = factorize(values)
        uniques = [value if isinstance(value, str) else str(value) for value in uniques]
        return cls(_narrow(codes, len(uniques)), np.array(uniques, dtype=object))

    @classmethod
    def from_categorical(cls, values: pd.Categorical) -> Coded:
        """Code a categorical column by its own codes and categories."""
        uniques = values.categories.to_numpy(dtype=object)
        if not pd.api.types.is_string_dtype(values.categories):
            uniques = np.array([str(value) for value in uniques], dtype=object)
        return cls(values.codes, uniques)

    @classmethod
    def identity(cls, values: np.ndarray) -> Coded:
        """Code a column whose values are nearly all distinct, one code per row.

        Missing values become empty text with code -1, so every distinct value is
        text.
        """
        codes = np.arange(len(values), dtype=CODE_DTYPE)
        if pd.api.types.infer_dtype(values, skipna=False) != "string":
            missing = pd.isna(values)
            codes[missing] = -1
            values = np.where(missing, "", values.astype(str)).astype(object)
        return cls(codes, values)

    def values(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Return the value of each row (or of ``rows``), NaN where missing."""
        codes = self.codes if rows is None else self.codes[rows]
        if codes.min(initial=0) >= 0:
            return self.uniques.take(codes)
        # Code -1 takes the last value, which is the NaN appended here.
        return np.append(self.uniques, np.nan).take(codes)

    def rows_where(self, unique_mask: np.ndarray) -> np.ndarray:
        """Return a row mask, True where the row's distinct value is flagged."""
        flagged = np.append(np.asarray(unique_mask, dtype=bool), False)
        return flagged[self.codes]

    def map(
        self, function: Callable[[str], object], subset: np.ndarray | None = None
    ) -> np.ndarray:
        """Apply ``function`` to each distinct value, or to those at ``subset``."""
        uniques = self.uniques if subset is None else self.uniques[subset]
        return np.array([function(value) for value in uniques], dtype=object)


@dataclass
class Work:
    """One table while the rules run: its columns, the rows still in, and results.

    A row leaves ``alive`` when it is quarantined or removed as a duplicate, and
    later rules neither change nor count it. ``typed`` contains the columns parsed
    into dates or numbers, one value per row. ``id_numbers`` contains, for each ID
    column, the number of each distinct value written in canonical form, until
    the ids rule has run. ``raw`` is the input frame until the result is built,
    then None, so that its columns can be freed.
    """

    spec: TableSpec
    path: Path | None
    raw: pd.DataFrame | None
    columns: dict[str, Coded]
    typed: dict[str, np.ndarray] = field(default_factory=dict)
    id_numbers: dict[str, np.ndarray] = field(default_factory=dict)
    quarantined: list[pd.DataFrame] = field(default_factory=list)
    duplicates: pd.DataFrame | None = None
    log: list[dict] = field(default_factory=list)
    alive: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.alive = np.ones(len(self.raw), dtype=bool)

    def record(
        self, rule: str, column: str, rows: np.ndarray, action: str = "rewritten"
    ) -> None:
        """Log that ``rule`` changed the alive rows flagged in ``rows``.

        ``action`` is ``"rewritten"``, ``"set missing"``, ``"removed"`` or
        ``"quarantined"``.
        """
        positions = np.flatnonzero(rows & self.alive)
        if len(positions):
            self.log.append(
                {
                    "rule": rule,
                    "column": column,
                    "action": action,
                    "rows_changed": len(positions),
                    "example_rows": tuple(
                        int(row) + 2 for row in positions[:EXAMPLE_ROWS]
                    ),
                }
            )

    def rewrite(
        self,
        rule: str,
        column: str,
        new_values: np.ndarray,
        subset: np.ndarray | None = None,
    ) -> None:
        """Replace the distinct values of ``column`` and log the rows that changed.

        ``new_values`` replaces all distinct values, or only those at ``subset``.
        """
        coded = self.columns[column]
        old_values = coded.uniques if subset is None else coded.uniques[subset]
        changed = np.asarray(old_values != new_values, dtype=bool)
        if subset is not None:
            flagged = np.zeros(len(coded.uniques), dtype=bool)
            flagged[subset[changed]] = True
            changed = flagged
        if changed.any():
            self.record(rule, column, coded.rows_where(changed))
        if subset is None:
            coded.uniques, coded.owned = new_values, True
        else:
            # The distinct values of an ID column may be the caller's frame data.
            if not coded.owned:
                coded.uniques, coded.owned = coded.uniques.copy(), True
            coded.uniques[subset] = new_values

    def quarantine(
        self,
        rule: str,
        column: str,
        rows: np.ndarray,
        reasons: Callable[[np.ndarray], list[str]],
    ) -> None:
        """Move the alive rows flagged in ``rows`` to the quarantine.

        ``reasons`` receives the positions of the rows and returns one reason
        for each, so reasons are written only for the rows that need one.
        """
        positions = np.flatnonzero(rows & self.alive)
        if not len(positions):
            return
        self.record(rule, column, rows, "quarantined")
        self.alive[positions] = False
        self.quarantined.append(
            pd.DataFrame(
                {
                    "row": positions + 2,
                    "rule": rule,
                    "column": column,
                    "reason": reasons(positions),
                }
            )
        )

    def reject_unknown(self, column: str, rows: np.ndarray, fix: str) -> None:
        """Raise UnknownValueError if an alive row is flagged in ``rows``."""
        positions = np.flatnonzero(rows & self.alive)
        if not len(positions):
            return
        values = self.columns[column].values(positions)
        distinct = list(dict.fromkeys(values.tolist()))
        listed = ", ".join(repr(value) for value in distinct[:EXAMPLE_ROWS])
        more = " and others" if len(distinct) > EXAMPLE_ROWS else ""
        where = "" if self.path is None else f"{self.path}: "
        row = int(positions[0]) + 2
        raise UnknownValueError(
            f"{where}column {column!r} has value {values[0]!r} in row {row}, which "
            f"fits no rule of the {self.spec.name} spec (rows with such values: "
            f"{len(positions)}; values: {listed}{more}). {fix}",
            path=self.path,
            column=column,
            row=row,
            value=values[0],
        )


def _narrow(codes: np.ndarray, n_uniques: int) -> np.ndarray:
    """Return the codes in the smallest integer type that can store them and -1."""
    for dtype in (np.int8, np.int16):
        if n_uniques <= np.iinfo(dtype).max:
            return codes.astype(dtype)
    return codes.astype(CODE_DTYPE)
