"""Reading raw CSV exports as text, with checks that name the file and the fix."""

from __future__ import annotations

import csv
import difflib
import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import is_string_dtype

from medkit._encodings import _candidate_encodings, _encoding_error
from medkit._specs import TableSpec
from medkit._work import factorize
from medkit.exceptions import (
    DataFileError,
    DelimiterError,
    DuplicateColumnError,
    EmptyFileError,
    MissingColumnError,
)

logger = logging.getLogger(__name__)

_OTHER_DELIMITERS = (";", "\t", "|")
_DELIMITER_NAMES = {";": "';'", "\t": "tab", "|": "'|'", ",": "','"}
# Kinds of columns that read_categorical has pandas parse as categoricals.
# pandas 3.1 turns categories that all look like numbers into numbers, which
# loses leading zeros, so integer, number and ID columns are parsed as text and
# factorized after.
_PARSED_AS_CATEGORY = frozenset({"category", "code", "date"})


def read_table(
    path: str | Path,
    spec: TableSpec | None = None,
    *,
    encoding: str | None = None,
    delimiter: str = ",",
) -> pd.DataFrame:
    """Read a raw CSV export with every column as text.

    No value is converted or treated as missing, so IDs and codes keep their
    leading zeros and ``NA`` (sodium) stays a lab test code. Missing-value
    tokens are handled later by :func:`medkit.digitize.clean`. The file is only
    read, never modified.

    Parameters
    ----------
    path : str or Path
        The CSV file.
    spec : TableSpec, optional
        Rules of the table. When given, every column in ``spec.kinds`` must be
        in the header.
    encoding : str, optional
        Text encoding. By default it is detected: UTF-8 (with or without a byte
        order mark) or GB18030.
    delimiter : str, default=","
        Field delimiter.

    Returns
    -------
    pandas.DataFrame
        One row per record in file order, every column text. Index position
        ``i`` is spreadsheet row ``i + 2``, because the header is row 1.
        ``frame.attrs`` has ``"path"``, ``"encoding"`` and ``"table"``.

    Raises
    ------
    EmptyFileError
        If the file has no bytes, or a header but no records.
    EncodingError
        If the bytes fit none of the supported encodings.
    DelimiterError
        If the header contains another delimiter, or has one column while the
        spec expects several.
    DuplicateColumnError
        If the header names a column twice.
    MissingColumnError
        If a column of ``spec`` is absent from the header.
    DataFileError
        If a record has more fields than the header.

    Examples
    --------
    >>> frame = read_table("datasets/raw/patients.csv", PATIENTS)  # doctest: +SKIP
    >>> frame.attrs["encoding"]  # doctest: +SKIP
    'utf-8-sig'
    """
    return _read(Path(path), spec, encoding, delimiter, categorical=False)


def read_categorical(
    path: str | Path,
    spec: TableSpec,
    *,
    encoding: str | None = None,
    delimiter: str = ",",
) -> pd.DataFrame:
    """Read a raw CSV export like :func:`read_table`, in less memory.

    Columns whose values repeat are returned as pandas categoricals of the same
    text, which store each distinct text once: every column of ``spec`` except
    its key and its ``text`` columns. The key, the text columns and columns not
    in ``spec`` stay text. :func:`medkit.digitize.clean` gives the same result
    for this frame as for the one from :func:`read_table`. Encoding detection,
    ``attrs``, index and errors are those of :func:`read_table`.
    """
    return _read(Path(path), spec, encoding, delimiter, categorical=True)


def _read(
    path: Path,
    spec: TableSpec | None,
    encoding: str | None,
    delimiter: str,
    categorical: bool,
) -> pd.DataFrame:
    candidates = [encoding] if encoding else _candidate_encodings(path)
    for position, candidate in enumerate(candidates):
        try:
            frame = _read_text(path, spec, candidate, delimiter, categorical)
        except UnicodeDecodeError:
            if encoding or position == len(candidates) - 1:
                raise _encoding_error(path, encoding) from None
            continue
        break

    frame.attrs.update(
        path=str(path),
        encoding=candidate,
        table=spec.name if spec is not None else path.stem,
    )
    logger.info(
        "Read %s: %d rows, %d columns, encoding %s",
        path,
        len(frame),
        frame.shape[1],
        candidate,
    )
    return frame


def _read_text(
    path: Path,
    spec: TableSpec | None,
    encoding: str,
    delimiter: str,
    categorical: bool,
) -> pd.DataFrame:
    header = _read_header(path, encoding, delimiter)
    _check_header(path, header, spec, delimiter)
    repeating = _repeating_columns(header, spec) if categorical else {}
    frame = _parse_csv(path, header, encoding, delimiter, _dtypes(header, repeating))
    if not _categories_are_text(frame):
        frame = _parse_csv(path, header, encoding, delimiter, str)

    frame = _drop_trailing_blank_rows(frame)
    if frame.empty:
        raise EmptyFileError(
            f"{path} has a header but no records. Export the table again with "
            "its records.",
            path=path,
            row=2,
        )
    # The repeating columns that pandas parsed as text become categoricals here,
    # which frees their per-row strings.
    for name in repeating:
        values = frame[name]
        if not isinstance(values.dtype, pd.CategoricalDtype):
            codes, uniques = factorize(values.to_numpy(dtype=object))
            dtype = pd.CategoricalDtype(uniques)
            frame[name] = pd.Categorical.from_codes(codes, dtype=dtype)
    return frame


def _parse_csv(
    path: Path,
    header: list[str],
    encoding: str,
    delimiter: str,
    dtypes: type | dict[str, str],
) -> pd.DataFrame:
    with warnings.catch_warnings():
        # With index_col=False, pandas drops the extra field of a first record
        # that is one field longer than the header and only warns. A lost field
        # must stop the read, so the warning becomes an error.
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            return pd.read_csv(
                path,
                sep=delimiter,
                header=0,
                names=header,
                index_col=False,
                dtype=dtypes,
                na_filter=False,
                keep_default_na=False,
                skip_blank_lines=False,
                encoding=encoding,
                encoding_errors="strict",
            )
        except pd.errors.ParserWarning:
            raise DataFileError(
                f"{path}: row 2 has more fields than the header's {len(header)}. "
                "Quote values that contain the delimiter, or fix the header.",
                path=path,
                row=2,
            ) from None
        except pd.errors.ParserError as error:
            raise _parser_error(path, error, len(header)) from None


def _repeating_columns(header: list[str], spec: TableSpec | None) -> dict[str, str]:
    """Return the kind of each column whose values repeat, which is every column
    of ``spec`` except its key and its text columns."""
    if spec is None:
        return {}
    return {
        name: spec.kinds[name]
        for name in header
        if spec.kinds.get(name, "text") != "text" and name != spec.key
    }


def _dtypes(header: list[str], repeating: dict[str, str]) -> type | dict[str, str]:
    if not repeating:
        return str
    return {
        name: "category" if repeating.get(name) in _PARSED_AS_CATEGORY else "str"
        for name in header
    }


def _categories_are_text(frame: pd.DataFrame) -> bool:
    # pandas 3.1 turns the categories of a column into numbers or booleans when
    # they all look like them, which would lose leading zeros. Such a file is
    # then read again as text.
    for column in frame.columns:
        dtype = frame[column].dtype
        if isinstance(dtype, pd.CategoricalDtype) and not is_string_dtype(
            dtype.categories
        ):
            logger.debug(
                "Column %s got non-text categories, so reading as text", column
            )
            return False
    return True


def _read_header(path: Path, encoding: str, delimiter: str) -> list[str]:
    with path.open(encoding=encoding, errors="strict", newline="") as file:
        header = next(csv.reader(file, delimiter=delimiter), [])
    return [name.strip().lstrip("\ufeff").strip() for name in header]


def _check_header(
    path: Path, header: list[str], spec: TableSpec | None, delimiter: str
) -> None:
    line = delimiter.join(header)
    others = [mark for mark in _OTHER_DELIMITERS if mark != delimiter and mark in line]
    expects_several = spec is not None and len(spec.kinds) > 1
    if others or (len(header) == 1 and expects_several):
        found = max(others, key=line.count) if others else None
        raise _delimiter_error(path, line, delimiter, found)

    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if name in seen:
            raise DuplicateColumnError(
                f"{path}: column {name!r} appears twice in the header (row 1, "
                f"columns {seen[name]} and {position}). Rename or remove one of "
                "them.",
                path=path,
                column=name,
                row=1,
                value=name,
            )
        seen[name] = position

    if spec is None:
        return
    missing = [column for column in spec.columns if column not in seen]
    if missing:
        raise _missing_column_error(path, missing, header, spec)
    extra = [name for name in header if name not in spec.kinds]
    if extra:
        logger.warning(
            "%s: columns not in the %s spec, kept as text: %d",
            path,
            spec.name,
            len(extra),
        )


def _delimiter_error(
    path: Path, line: str, delimiter: str, found: str | None
) -> DelimiterError:
    expected = _DELIMITER_NAMES.get(delimiter, repr(delimiter))
    if found is None:
        message = (
            f"{path}: the header has one column, {line!r}, so its fields are not "
            f"separated by {expected}. Export the file as comma-separated values, "
            "or pass its delimiter to read_table."
        )
    else:
        message = (
            f"{path}: the header {line!r} is separated by "
            f"{_DELIMITER_NAMES[found]}, not {expected}. Export the file as "
            f"comma-separated values, or pass delimiter={found!r} to read_table."
        )
    return DelimiterError(message, path=path, row=1, value=line)


def _missing_column_error(
    path: Path | None, missing: list[str], header: list[str], spec: TableSpec
) -> MissingColumnError:
    column = missing[0]
    source = "The frame" if path is None else str(path)
    close = difflib.get_close_matches(column, header, n=1)
    hint = f" Rename {close[0]!r} to {column!r} if it is that column." if close else ""
    others = f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""
    return MissingColumnError(
        f"{source} has no column {column!r}{others}, which the {spec.name} spec "
        f"requires. The header (row 1) has {', '.join(header)}.{hint} Otherwise "
        "add the column to the file, or remove it from the spec's kinds.",
        path=path,
        column=column,
        row=1,
    )


def _parser_error(
    path: Path, error: pd.errors.ParserError, fields: int
) -> DataFileError:
    match = re.search(r"line (\d+), saw (\d+)", str(error))
    if match is None:
        return DataFileError(f"{path} cannot be parsed as CSV: {error}", path=path)
    row, seen = int(match[1]), int(match[2])
    return DataFileError(
        f"{path}: row {row} has {seen} fields but the header has {fields}. Quote "
        "values that contain the delimiter, or remove the extra fields.",
        path=path,
        row=row,
    )


def _drop_trailing_blank_rows(frame: pd.DataFrame) -> pd.DataFrame:
    # A blank line at the end of a file is not a record. Blank lines between
    # records stay, so that each index still maps to its spreadsheet row.
    if frame.empty or not (frame.iloc[-1] == "").all():
        return frame

    # Only the rows after the last non-blank value of the first column can be
    # blank lines, so only those are compared in full.
    end = _trailing_run_start((frame.iloc[:, 0] == "").to_numpy())
    blank = (frame.iloc[end:] == "").all(axis=1).to_numpy()
    end += _trailing_run_start(blank)
    if end < len(frame):
        logger.debug("Ignored %d blank lines at the end of the file", len(frame) - end)
        frame = frame.iloc[:end]
    return frame


def _trailing_run_start(flags: np.ndarray) -> int:
    """Return the position where the final run of True values starts."""
    unflagged = np.flatnonzero(~flags)
    return int(unflagged[-1]) + 1 if len(unflagged) else 0
