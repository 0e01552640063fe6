"""Integer codes for categorical columns, with a codebook that decodes them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medkit._work import factorize
from medkit.exceptions import UnknownValueError

CODEBOOK_COLUMNS = ["table", "column", "code", "label"]
TEXT_DTYPE = pd.Series(["text"]).dtype


@dataclass(frozen=True)
class Codebook:
    """The code of every label of every encoded column.

    Attributes
    ----------
    entries : pandas.DataFrame
        One row per label: ``table``, ``column``, ``code`` (int, from 0 in label
        order) and ``label``. Missing values have no code and are encoded as
        ``<NA>``.

    Examples
    --------
    >>> frame = pd.DataFrame({"sex": ["F", "M", None, "F"]})
    >>> codes, codebook = encode(frame, ["sex"], table="patients")
    >>> codes["sex"].tolist()
    [0, 1, <NA>, 0]
    >>> codebook.decode(codes)["sex"].tolist()
    ['F', 'M', nan, 'F']
    """

    entries: pd.DataFrame

    def __post_init__(self) -> None:
        missing = [c for c in CODEBOOK_COLUMNS if c not in self.entries.columns]
        if missing:
            raise ValueError(
                f"Codebook entries must have the columns "
                f"{', '.join(CODEBOOK_COLUMNS)}, but {', '.join(missing)} are missing."
            )
        entries = self.entries[CODEBOOK_COLUMNS].astype(
            {
                "table": TEXT_DTYPE,
                "column": TEXT_DTYPE,
                "code": "int64",
                "label": TEXT_DTYPE,
            }
        )
        object.__setattr__(self, "entries", entries.reset_index(drop=True))

    @classmethod
    def concat(cls, codebooks: Iterable[Codebook]) -> Codebook:
        """Join codebooks of different tables or columns into one."""
        frames = [codebook.entries for codebook in codebooks]
        if not frames:
            return cls(pd.DataFrame(columns=CODEBOOK_COLUMNS))
        return cls(pd.concat(frames, ignore_index=True))

    def labels(self, column: str, table: str | None = None) -> list[str]:
        """Return the labels of ``column`` in code order."""
        entries = self._entries(column, table)
        if entries.empty:
            raise KeyError(f"The codebook has no column {column!r}.")
        return entries.sort_values("code")["label"].tolist()

    def decode(self, frame: pd.DataFrame, table: str | None = None) -> pd.DataFrame:
        """Replace codes by labels in every encoded column of ``frame``.

        Parameters
        ----------
        frame : pandas.DataFrame
            A frame from :func:`encode`, or one read back from the database.
        table : str, optional
            Table whose entries to use. It is needed only when several tables
            encode a column of the same name.

        Returns
        -------
        pandas.DataFrame
            A copy with text labels, missing where the code is missing.

        Raises
        ------
        UnknownValueError
            If a code is not in the codebook.
        """
        decoded = frame.copy()
        for column in self._columns(table):
            if column not in frame.columns:
                continue
            entries = self._entries(column, table)
            lookup = pd.Series(
                entries["label"].to_numpy(dtype=object), index=entries["code"]
            )
            codes = frame[column]
            labels = codes.map(lookup)
            unknown = codes.notna() & labels.isna()
            if unknown.any():
                raise UnknownValueError(
                    f"Column {column!r} has code {codes[unknown].iloc[0]} that is not "
                    "in the codebook. Decode with the codebook that encoded it.",
                    column=column,
                    value=codes[unknown].iloc[0],
                )
            values = labels.to_numpy(dtype=object)
            values[codes.isna().to_numpy()] = np.nan
            decoded[column] = pd.array(values, dtype=TEXT_DTYPE)
        return decoded

    def _entries(self, column: str, table: str | None) -> pd.DataFrame:
        mask = self.entries["column"] == column
        if table is not None:
            mask &= self.entries["table"] == table
        return self.entries[mask]

    def _columns(self, table: str | None) -> list[str]:
        entries = self.entries
        if table is not None:
            entries = entries[entries["table"] == table]
        return list(dict.fromkeys(entries["column"]))


def encode(
    frame: pd.DataFrame,
    columns: Sequence[str],
    *,
    table: str | None = None,
    labels: Mapping[str, Sequence[str]] | None = None,
) -> tuple[pd.DataFrame, Codebook]:
    """Replace categorical columns by integer codes and return the codebook.

    Parameters
    ----------
    frame : pandas.DataFrame
        A clean table.
    columns : sequence of str
        Columns to encode.
    table : str, optional
        Table name in the codebook. Defaults to ``frame.attrs["table"]``, else
        ``"table"``.
    labels : mapping of str to sequence of str, optional
        Fixed label order for some columns, so that codes stay the same across
        data sets. Other columns use their sorted distinct values.

    Returns
    -------
    codes : pandas.DataFrame
        A copy of ``frame`` with each encoded column as ``Int64`` codes, ``<NA>``
        where missing.
    codebook : Codebook
        The code of every label; ``codebook.decode(codes)`` restores ``frame``.

    Raises
    ------
    UnknownValueError
        If a column has a value that is not among its fixed ``labels``.
    """
    table = table or frame.attrs.get("table") or "table"
    labels = labels or {}
    # A shallow copy: copy-on-write keeps ``frame`` unchanged when columns of
    # ``codes`` are replaced.
    codes = frame.copy(deep=False)
    entries = []
    for column in columns:
        found = _Found(frame[column])
        order = list(labels.get(column) or found.sorted())
        positions = found.positions(
            order, column, "Add it to labels, or encode without fixed labels."
        )
        column_codes = pd.arrays.IntegerArray(positions, mask=positions < 0)
        # Setting a Series, not an array, stops pandas from copying the codes.
        codes[column] = pd.Series(column_codes, index=codes.index, copy=False)
        entries.append(
            pd.DataFrame(
                {
                    "table": table,
                    "column": column,
                    "code": range(len(order)),
                    "label": order,
                }
            )
        )
    return codes, Codebook.concat(Codebook(entry) for entry in entries)


def one_hot(
    frame: pd.DataFrame,
    columns: Sequence[str],
    *,
    codebook: Codebook | None = None,
    table: str | None = None,
) -> pd.DataFrame:
    """Replace categorical columns by one 0/1 column per label, for models.

    Parameters
    ----------
    frame : pandas.DataFrame
        A table with labels (not codes) in ``columns``.
    columns : sequence of str
        Columns to expand.
    codebook : Codebook, optional
        Fixes the labels and their order, so that training and test frames get
        the same columns. Without it, each column's sorted distinct values are
        used.
    table : str, optional
        Table whose codebook entries to use.

    Returns
    -------
    pandas.DataFrame
        ``frame`` with each column replaced, in place, by ``uint8`` columns named
        ``"<column>=<label>"``. A missing value is 0 in every column.

    Raises
    ------
    UnknownValueError
        If a value is not among the codebook's labels.
    """
    parts = []
    for column in frame.columns:
        if column not in columns:
            parts.append(frame[[column]])
            continue
        found = _Found(frame[column])
        if codebook is not None:
            order = codebook.labels(column, table)
        else:
            order = found.sorted()
        positions = found.positions(
            order,
            column,
            "Build the codebook from data that contains it, or call one_hot "
            "without a codebook.",
        )
        indicators = positions[:, None] == np.arange(len(order))
        parts.append(
            pd.DataFrame(
                indicators.astype(np.uint8),
                index=frame.index,
                columns=[f"{column}={label}" for label in order],
            )
        )
    return pd.concat(parts, axis=1)


class _Found:
    """The distinct values of a column, found in one pass over its rows."""

    def __init__(self, values: pd.Series) -> None:
        # Codes index the distinct values in order of first appearance, -1 where
        # a value is missing.
        self.codes, self.uniques = factorize(values.to_numpy(dtype=object))

    def sorted(self) -> list:
        """Return the distinct values in sorted order."""
        return sorted(self.uniques)

    def positions(self, order: Sequence[str], column: str, fix: str) -> np.ndarray:
        """Return each row's position in ``order``, -1 where missing."""
        found = pd.Index(order, dtype=object).get_indexer(self.uniques)
        unlisted = np.flatnonzero(found < 0)
        if len(unlisted):
            # The first distinct value not in ``order`` is the first such row's.
            value = self.uniques[unlisted[0]]
            raise UnknownValueError(
                f"Column {column!r} has value {value!r}, which is not among its "
                f"labels {', '.join(map(repr, order))}. {fix}",
                column=column,
                value=value,
            )
        return np.append(found, -1)[self.codes]
