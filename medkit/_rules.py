"""Cleaning rules on text: whitespace, missing, duplicates, ids and categories.

A rule rewrites values, raises :class:`~medkit.exceptions.UnknownValueError` for
a value whose shape no rule describes (the fix is a change to the spec), or
quarantines rows whose value has the right shape but is impossible (the fix is in
the data). The rules on dates and numbers are in :mod:`medkit._value_rules`.

ID columns keep the number of each canonical ID in ``work.id_numbers``; values
that are canonical need no rewriting, so these rules only visit the others.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from medkit._ids import NOT_CANONICAL, id_numbers, normalize_id
from medkit._work import Coded, Work

_SPACE_RUN = re.compile(r"\s{2,}")


def strip_spaces(value: str) -> str:
    """Strip spaces around a value and shorten each run of spaces inside to one."""
    stripped = value.strip()
    if "  " in stripped or "\t" in stripped or "\u3000" in stripped:
        stripped = _SPACE_RUN.sub(" ", stripped)
    return stripped


def _suspects(work: Work, column: str) -> np.ndarray | None:
    """Return the positions of distinct values that may need rewriting, None for all."""
    if column not in work.spec.ids:
        return None
    if column not in work.id_numbers:
        numbers = id_numbers(work.columns[column].uniques, work.spec.ids[column])
        work.id_numbers[column] = numbers
    return np.flatnonzero(work.id_numbers[column] == NOT_CANONICAL)


def _rewrite_ids(work: Work, rule: str, column: str, new: np.ndarray, subset) -> None:
    work.rewrite(rule, column, new, subset)
    if subset is not None:
        numbers = id_numbers(new, work.spec.ids[column])
        work.id_numbers[column][subset] = numbers


def apply_whitespace(work: Work) -> None:
    """Strip spaces around values and shorten each run of spaces inside to one."""
    for column, coded in work.columns.items():
        subset = _suspects(work, column)
        new = coded.map(strip_spaces, subset)
        _rewrite_ids(work, "whitespace", column, new, subset)


def apply_missing(work: Work) -> None:
    """Turn the spec's missing-value tokens into missing values.

    Tokens match exactly, so ``NA`` is missing but ``Na`` is kept. Columns in
    ``spec.literal_columns`` keep the tokens as values, and only an empty value
    is missing there.
    """
    for column, coded in work.columns.items():
        tokens = list(work.spec.missing_tokens)
        if column in work.spec.literal_columns:
            tokens = [""]
        subset = _suspects(work, column)
        uniques = coded.uniques if subset is None else coded.uniques[subset]
        is_token = pd.Series(uniques, dtype=object).isin(tokens).to_numpy()
        if subset is not None:
            flagged = np.zeros(len(coded.uniques), dtype=bool)
            flagged[subset[is_token]] = True
            is_token = flagged
        if not is_token.any():
            continue
        rows = coded.rows_where(is_token)
        work.record("missing", column, rows, "set missing")
        coded.codes = np.where(rows, -1, coded.codes)


def _folded(coded: Coded, rows: np.ndarray) -> np.ndarray:
    values = coded.values(rows)
    present = coded.codes[rows] >= 0
    values[present] = [value.casefold() for value in values[present]]
    values[~present] = None
    return values


def _folded_key_codes(work: Work, column: str) -> np.ndarray:
    """Return one integer per row, equal where the keys are equal ignoring case.

    A canonical ID gets its number, and so does an ID that becomes canonical
    after case folding. Other keys get codes below -1, and a missing key gets -1.
    """
    coded = work.columns[column]
    subset = _suspects(work, column)
    if subset is None:
        subset = np.arange(len(coded.uniques))
        keys = np.zeros(len(coded.uniques), dtype=np.int64)
    else:
        keys = work.id_numbers[column].copy()
    folded = np.array(
        [value.casefold() for value in coded.uniques[subset]], dtype=object
    )
    if column in work.spec.ids:
        upper = np.array([value.upper() for value in folded], dtype=object)
        numbers = id_numbers(upper, work.spec.ids[column])
    else:
        numbers = np.full(len(folded), NOT_CANONICAL, dtype=np.int64)
    text_codes, _ = pd.factorize(folded)
    keys[subset] = np.where(numbers >= 0, numbers, -2 - text_codes)
    return np.append(keys, -1)[coded.codes]


def apply_duplicates(work: Work) -> None:
    """Remove rows that repeat an earlier row, ignoring case, and keep the earliest.

    Spaces were already normalized by the whitespace rule. A row can repeat
    another only if its key repeats, so with a key column only the rows with a
    repeated key are compared in full.
    """
    rows = np.flatnonzero(work.alive)
    if work.spec.key in work.columns:
        keys = _folded_key_codes(work, work.spec.key)[rows]
        rows = rows[_repeated(keys)]

    removed = np.zeros(len(work.alive), dtype=bool)
    work.duplicates = pd.DataFrame({"row": [], "duplicate_of": []}, dtype="int64")
    if len(rows):
        candidates = pd.DataFrame(
            {column: _folded(coded, rows) for column, coded in work.columns.items()},
            index=rows,
        )
        groups = candidates.groupby(list(candidates.columns), dropna=False, sort=False)
        first = pd.Series(rows, index=rows).groupby(groups.ngroup()).transform("first")
        repeats = first[first.index != first.to_numpy()]
        work.duplicates = pd.DataFrame(
            {
                "row": repeats.index.to_numpy() + 2,
                "duplicate_of": repeats.to_numpy() + 2,
            }
        )
        removed[repeats.index.to_numpy()] = True
    work.record("duplicates", "", removed, "removed")
    work.alive &= ~removed


def apply_ids(work: Work) -> None:
    """Upper-case IDs, remove spaces inside them and zero-pad number-like IDs.

    Rows whose key repeats an earlier row with other values are quarantined.
    """
    for column, id_format in work.spec.ids.items():
        coded = work.columns[column]
        subset = _suspects(work, column)
        new = coded.map(lambda value, f=id_format: normalize_id(value, f), subset)
        _rewrite_ids(work, "ids", column, new, subset)

        invalid = work.id_numbers[column] == NOT_CANONICAL
        form = f"{id_format.digits} digits"
        if id_format.prefix:
            form = f"{id_format.prefix!r} followed by {form}"
        work.reject_unknown(
            column,
            coded.rows_where(invalid),
            f"Expected {form}; correct the ID in the file, or change the format "
            f"of {column!r} in the spec's ids.",
        )
    _quarantine_conflicting_keys(work)
    # Later rules do not use the ID numbers, and a large table's peak memory
    # is lower without them.
    work.id_numbers.clear()


def _repeated(keys: np.ndarray) -> np.ndarray:
    """Return a mask of the integer keys that occur more than once.

    Sorting needs less memory than pandas' ``duplicated``, whose hash table has
    room for every key. Keys in file order are often sorted already, which
    makes the stable sort fast.
    """
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    same = ordered[1:] == ordered[:-1]
    flagged = np.zeros(len(keys), dtype=bool)
    flagged[1:] = same
    flagged[:-1] |= same
    repeated = np.empty(len(keys), dtype=bool)
    repeated[order] = flagged
    return repeated


def _quarantine_conflicting_keys(work: Work) -> None:
    key = work.spec.key
    if key not in work.columns:
        return
    coded = work.columns[key]
    rows = np.flatnonzero(work.alive & (coded.codes >= 0))
    if key in work.id_numbers:
        keys = pd.Series(work.id_numbers[key][coded.codes[rows]], index=rows)
        repeated = keys[_repeated(keys.to_numpy())]
    else:
        keys = pd.Series(coded.uniques.take(coded.codes[rows]), index=rows)
        repeated = keys[keys.duplicated(keep=False)]
    if repeated.empty:
        return
    first = (
        pd.Series(repeated.index, index=repeated.index)
        .groupby(repeated.to_numpy())
        .transform("first")
    )
    later = first[first.index != first.to_numpy()]
    conflicting = np.zeros(len(work.alive), dtype=bool)
    conflicting[later.index.to_numpy()] = True
    work.quarantine(
        "ids",
        key,
        conflicting,
        lambda positions: [
            f"{key} {value} repeats row {later[row] + 2} with other values"
            for row, value in zip(positions, coded.values(positions), strict=True)
        ],
    )


def apply_categories(work: Work) -> None:
    """Map each spelling of a category to its label, and upper-case codes."""
    for column, spellings in work.spec.spellings.items():
        coded = work.columns[column]
        labels = coded.map(lambda value, s=spellings: s.get(value.casefold()))
        unknown = pd.isna(labels)
        work.reject_unknown(
            column,
            coded.rows_where(unknown),
            f"Add it to the spellings of {column!r} in the spec, or to the spec's "
            "missing_tokens.",
        )
        work.rewrite("categories", column, np.where(unknown, coded.uniques, labels))

    for column, pattern in work.spec.codes.items():
        coded = work.columns[column]
        work.rewrite(
            "categories", column, coded.map(lambda v: "".join(v.split()).upper())
        )
        compiled = re.compile(pattern)
        invalid = [compiled.fullmatch(value) is None for value in coded.uniques]
        work.reject_unknown(
            column,
            coded.rows_where(invalid),
            f"Correct the code in the file, or change the pattern {pattern!r} of "
            f"{column!r} in the spec's codes.",
        )
