"""Reading raw CSV exports as text, with checks that name the file and the fix."""

from __future__ import annotations

import codecs
import csv
import difflib
import logging
import re
import warnings
from pathlib import Path

import pandas as pd

from medkit._specs import TableSpec
from medkit.exceptions import (
    DataFileError,
    DelimiterError,
    DuplicateColumnError,
    EmptyFileError,
    EncodingError,
    MissingColumnError,
)

logger = logging.getLogger(__name__)

ENCODINGS = ("utf-8", "utf-8-sig", "gb18030")
"""Text encodings that :func:`read_table` detects on its own."""

_SAMPLE_BYTES = 1 << 16
_OTHER_DELIMITERS = (";", "\t", "|")
_DELIMITER_NAMES = {";": "';'", "\t": "tab", "|": "'|'", ",": "','"}


def detect_encoding(path: str | Path) -> str:
    """Detect the text encoding of a file by decoding all of its bytes.

    Parameters
    ----------
    path : str or Path
        The file to check. It is only read.

    Returns
    -------
    str
        ``"utf-8-sig"`` when the file starts with a UTF-8 byte order mark,
        otherwise ``"utf-8"`` or ``"gb18030"``, whichever decodes every byte.
        Plain ASCII files are reported as ``"utf-8"``.

    Raises
    ------
    EmptyFileError
        If the file has no bytes.
    EncodingError
        If no supported encoding decodes the file. The message names the first
        undecodable byte, its row, and the encoding that charset-normalizer
        guesses.
    """
    path = Path(path)
    for encoding in _candidate_encodings(path):
        if _decodes(path, encoding):
            return encoding
    raise _encoding_error(path)


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
    path = Path(path)
    candidates = [encoding] if encoding else _candidate_encodings(path)
    for position, candidate in enumerate(candidates):
        try:
            frame = _read_text(path, spec, candidate, delimiter)
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
    path: Path, spec: TableSpec | None, encoding: str, delimiter: str
) -> pd.DataFrame:
    header = _read_header(path, encoding, delimiter)
    _check_header(path, header, spec, delimiter)
    with warnings.catch_warnings():
        # With index_col=False, pandas drops the extra field of a first record
        # that is one field longer than the header and only warns. A lost field
        # must stop the read, so the warning becomes an error.
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            frame = pd.read_csv(
                path,
                sep=delimiter,
                header=0,
                names=header,
                index_col=False,
                dtype=str,
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

    frame = _drop_trailing_blank_rows(frame)
    if frame.empty:
        raise EmptyFileError(
            f"{path} has a header but no records. Export the table again with "
            "its records.",
            path=path,
            row=2,
        )
    return frame


def _candidate_encodings(path: Path) -> list[str]:
    with path.open("rb") as file:
        sample = file.read(_SAMPLE_BYTES)
    if not sample.strip(codecs.BOM_UTF8 + b" \t\r\n"):
        raise EmptyFileError(
            f"{path} is empty. Export the table again with a header row and at "
            "least one record.",
            path=path,
            row=1,
        )
    if sample.startswith(codecs.BOM_UTF8):
        return ["utf-8-sig"]

    # The sample may end inside a multibyte character, so decode it incrementally.
    fitting = []
    for encoding in ("utf-8", "gb18030"):
        try:
            codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
        except UnicodeDecodeError:
            continue
        fitting.append(encoding)
    if not fitting:
        raise _encoding_error(path)
    return fitting


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with path.open("rb") as file:
            while chunk := file.read(1 << 20):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _encoding_error(path: Path, encoding: str | None = None) -> EncodingError:
    tried = [encoding] if encoding else ["utf-8", "gb18030"]
    data = path.read_bytes()
    try:
        data.decode(tried[0])
        start = 0
    except UnicodeDecodeError as error:
        start = error.start
    row = data.count(b"\n", 0, start) + 1
    byte = data[start : start + 1]
    guess = _guess_encoding(data)
    if guess and guess.lower().replace("_", "-") not in tried:
        fix = (
            f"The bytes look like {guess}: re-save the file as UTF-8, or pass "
            f"encoding={guess!r} to read_table."
        )
    else:
        fix = "Re-save the file as UTF-8, or pass its encoding to read_table."
    return EncodingError(
        f"{path} is not valid {' or '.join(tried)} text: byte 0x{byte.hex()} in "
        f"row {row} cannot be decoded. {fix}",
        path=path,
        row=row,
        value=byte,
    )


def _guess_encoding(data: bytes) -> str | None:
    from charset_normalizer import from_bytes

    match = from_bytes(data[: 1 << 20]).best()
    return None if match is None else match.encoding


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
    end = len(frame)
    columns = [frame[name].to_numpy(dtype=object) for name in frame.columns]
    while end and all(values[end - 1] == "" for values in columns):
        end -= 1
    if end < len(frame):
        logger.debug("Ignored %d blank lines at the end of the file", len(frame) - end)
        frame = frame.iloc[:end]
    return frame
