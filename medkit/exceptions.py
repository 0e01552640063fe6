"""Exceptions raised by medkit.

Every error medkit raises on purpose is a :class:`MedkitError`. Subclasses also
inherit the built-in exception they refine, so ``except ValueError`` still works.
Each carries the offending file, column, row and value where they are known.
"""

from __future__ import annotations

from pathlib import Path


class MedkitError(Exception):
    """Base class of the errors medkit raises on purpose."""


class DataFileError(MedkitError, ValueError):
    """A raw data file that cannot be read as a table.

    Parameters
    ----------
    message : str
        What failed and what to do next.
    path : str or Path, optional
        The file that failed.
    column : str, optional
        The column that failed.
    row : int, optional
        The row that failed, counted as a spreadsheet does: the header is row 1
        and the first record is row 2.
    value : object, optional
        The offending value.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        column: str | None = None,
        row: int | None = None,
        value: object = None,
    ) -> None:
        super().__init__(message)
        self.path = None if path is None else Path(path)
        self.column = column
        self.row = row
        self.value = value


class EmptyFileError(DataFileError):
    """A file with no bytes, or with a header and no records."""


class EncodingError(DataFileError, UnicodeError):
    """A file whose bytes fit none of the supported text encodings."""


class DelimiterError(DataFileError):
    """A file whose delimiter is not the expected one."""


class MissingColumnError(DataFileError, KeyError):
    """A required column that is absent from a file."""

    def __str__(self) -> str:
        # KeyError quotes its message; show it as plain text instead.
        return str(self.args[0])


class DuplicateColumnError(DataFileError):
    """A header that names the same column twice."""


class UnknownValueError(DataFileError):
    """A value that fits none of the configured cleaning rules."""


class DatasetMismatchError(MedkitError, ValueError):
    """Shipped dataset files that differ from what the generator makes."""


class NotebookError(MedkitError, RuntimeError):
    """A lesson or assignment notebook that is malformed or fails to run."""


class GradingError(MedkitError, RuntimeError):
    """An nbgrader step that failed, or grades that differ from the expected."""
