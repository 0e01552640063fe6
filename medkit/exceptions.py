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


class DatasetParameterError(MedkitError, ValueError):
    """A size or seed that the synthetic hospital generator cannot use."""


class NotebookError(MedkitError, RuntimeError):
    """A lesson or assignment notebook that is malformed or fails to run."""


class GradingError(MedkitError, RuntimeError):
    """An nbgrader step that failed, or grades that differ from the expected."""


class GradingSettingError(GradingError, ValueError):
    """A grading limit or number of processes that is out of range.

    Parameters
    ----------
    message : str
        What failed and what to do next.
    name : str
        The setting that failed, e.g. ``"cell_timeout"``.
    value : object
        The offending value.
    """

    def __init__(self, message: str, *, name: str, value: object) -> None:
        super().__init__(message)
        self.name = name
        self.value = value


class ModelInputError(MedkitError, ValueError):
    """Data that a clinical prediction model cannot be trained on or applied to.

    Parameters
    ----------
    message : str
        What failed and what to do next.
    column : str, optional
        The column that failed.
    rows : list of int, optional
        Positions (from 0) of the offending rows, at most the first ten.
    value : object, optional
        The offending value.
    """

    def __init__(
        self,
        message: str,
        *,
        column: str | None = None,
        rows: list[int] | None = None,
        value: object = None,
    ) -> None:
        super().__init__(message)
        self.column = column
        self.rows = rows
        self.value = value


class OutcomeError(ModelInputError):
    """An outcome column that is absent, has missing values or only one class."""


class NoFeaturesError(ModelInputError):
    """A table with no column a model can use as a feature."""


class FeatureMismatchError(ModelInputError):
    """Columns at prediction time that differ from those the model was trained on."""


class NonFiniteValueError(ModelInputError):
    """A feature with infinite values, which no model can use."""


class ModelFileError(MedkitError, ValueError):
    """A model file that is not a medkit model or was changed after it was saved."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else Path(path)


class UnknownCategoryWarning(UserWarning):
    """Categories at prediction time that the model never saw in training."""


class PersonalizeError(MedkitError, ValueError):
    """Notes, services or settings that similar-patient recommendations cannot use."""


class NoteTextError(PersonalizeError):
    """Notes with no usable text: none at all, blank, or only stop words."""


class NeighborCountError(PersonalizeError):
    """A number of neighbours k that the other patients cannot supply.

    Parameters
    ----------
    message : str
        What failed and what to do next.
    k : int
        The number of neighbours requested.
    available : int
        How many other patients there are.
    """

    def __init__(self, message: str, *, k: int, available: int) -> None:
        super().__init__(message)
        self.k = k
        self.available = available


class UnknownPatientError(PersonalizeError, KeyError):
    """A patient ID that has no note."""

    def __init__(self, message: str, *, patient_id: object) -> None:
        super().__init__(message)
        self.patient_id = patient_id

    def __str__(self) -> str:
        # KeyError quotes its message; show it as plain text instead.
        return str(self.args[0])


class UnknownServiceError(PersonalizeError, KeyError):
    """Service codes that are not in the service catalogue.

    Parameters
    ----------
    message : str
        What failed and what to do next.
    codes : list of str
        The unknown codes.
    rows : list of int
        Rows that contain them, counted as a spreadsheet does (the header is
        row 1), at most the first ten.
    """

    def __init__(self, message: str, *, codes: list[str], rows: list[int]) -> None:
        super().__init__(message)
        self.codes = codes
        self.rows = rows

    def __str__(self) -> str:
        return str(self.args[0])


class ModelSettingError(MedkitError, ValueError):
    """A setting of a modelling function out of range, such as a test size or target.

    Parameters
    ----------
    message : str
        What failed and what to do next.
    name : str
        The parameter that failed.
    value : object
        The offending value.
    """

    def __init__(self, message: str, *, name: str, value: object) -> None:
        super().__init__(message)
        self.name = name
        self.value = value


class PrivacyError(MedkitError, ValueError):
    """Records or settings that de-identification cannot handle."""


class PrivacyKeyError(PrivacyError):
    """A pseudonym key that is missing, unreadable or too short.

    Parameters
    ----------
    message : str
        What failed and how to set the key.
    source : str, optional
        The environment variable or file the key was read from; never the key.
    """

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.source = source


class IdentifierFoundError(PrivacyError):
    """Data that still contains direct identifiers such as names or phone numbers.

    Parameters
    ----------
    message : str
        What was found and what to do next.
    report : medkit.privacy.ScanReport
        The scanner's findings, with values masked.
    """

    def __init__(self, message: str, *, report: object) -> None:
        super().__init__(message)
        self.report = report


class ServiceError(MedkitError, RuntimeError):
    """A request to a medkit site service that failed or was rejected.

    Parameters
    ----------
    message : str
        What failed and what to do next.
    status : int, optional
        The HTTP status code of the response; None when no response arrived,
        for example because the service could not be reached.
    reason : str, optional
        The reason that the service sent with the response.
    method : str, optional
        The HTTP method of the request.
    url : str, optional
        The URL of the request.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.method = method
        self.url = url


class ServiceSettingError(MedkitError, ValueError):
    """A setting that a medkit site service or its client cannot use.

    Parameters
    ----------
    message : str
        What failed and what to do next.
    name : str
        The setting that failed.
    value : object
        The offending value; a token is never stored here.
    """

    def __init__(self, message: str, *, name: str, value: object = None) -> None:
        super().__init__(message)
        self.name = name
        self.value = value


class RecordFormatError(MedkitError, ValueError):
    """Records that cannot be sent as strict JSON, such as infinite numbers.

    Parameters
    ----------
    message : str
        What failed and what to do next.
    column : str, optional
        The column or field that failed.
    rows : list of int, optional
        Positions (from 0) of the offending records, at most the first ten.
    """

    def __init__(
        self,
        message: str,
        *,
        column: str | None = None,
        rows: list[int] | None = None,
    ) -> None:
        super().__init__(message)
        self.column = column
        self.rows = rows


class FhirError(MedkitError, ValueError):
    """Tables that cannot be converted to valid FHIR resources."""
