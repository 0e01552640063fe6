"""Scan tables, records, text and notebooks for direct identifiers.

The scanner looks for names, phone numbers, resident ID numbers, e-mail
addresses, street addresses and known patient IDs. Columns are scanned whole,
one pattern at a time over all their cells (see :mod:`medkit._privacy_matchers`),
so scanning costs a few C-level passes per column, not a Python call per cell.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medkit._privacy_matchers import Matchers, find_in_texts, is_missing
from medkit._privacy_patterns import mask
from medkit.exceptions import IdentifierFoundError, PrivacyError

logger = logging.getLogger(__name__)

KINDS = ("name", "phone", "national_id", "patient_id", "email", "address")
"""Kinds of identifier that the scanner reports."""

DEFAULT_LIMIT = 1000

# Column names (lower case, runs of other characters as "_") that mark a column
# as an identifier, whatever its values look like.
HEADER_KINDS: Mapping[str, str] = {
    **dict.fromkeys(
        "name full_name patient_name first_name last_name given_name family_name "
        "surname 姓名 名字 患者姓名".split(),
        "name",
    ),
    **dict.fromkeys(
        "phone phone_number telephone tel mobile mobile_phone mobile_number "
        "contact_phone 电话 手机 手机号 联系电话".split(),
        "phone",
    ),
    **dict.fromkeys(
        "national_id id_card id_card_number id_number resident_id ssn "
        "身份证 身份证号 身份证号码".split(),
        "national_id",
    ),
    **dict.fromkeys(
        "address home_address street_address addr street 地址 住址 家庭住址".split(),
        "address",
    ),
    **dict.fromkeys("email e_mail email_address 邮箱 电子邮箱".split(), "email"),
}


@dataclass(frozen=True)
class Finding:
    """One identifier found by :func:`scan`, with its value masked.

    Attributes
    ----------
    kind : str
        One of ``KINDS``.
    location : str
        Where it was found, such as "row 3, column 'text'" or "cell 2, output 0".
    value_masked : str
        The value with most characters replaced by "*".
    rule : str
        What found it: a pattern, "column name", "known name" or "known ID".
    count : int
        Values it stands for: 1, or the filled cells of a column found by name.
    column, row, cell : optional
        Column name, row index label, and notebook cell index (from 0).
    """

    kind: str
    location: str
    value_masked: str
    rule: str = ""
    count: int = 1
    column: str | None = None
    row: object = None
    cell: int | None = None


@dataclass
class ScanReport:
    """Findings of :func:`scan`: true when anything was found.

    ``counts`` is the number of findings of each kind, including those past the
    ``limit`` that ``findings`` keeps. ``truncated`` is how many were left out
    of ``findings``.
    """

    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    truncated: int = 0
    limit: int = DEFAULT_LIMIT

    def __bool__(self) -> bool:
        return bool(self.counts)

    @property
    def ok(self) -> bool:
        """True when nothing was found."""
        return not self.counts

    @property
    def total(self) -> int:
        """Number of findings, including those left out of ``findings``."""
        return sum(self.counts.values())

    def add(self, finding: Finding) -> None:
        """Count a finding and keep it unless ``limit`` findings are kept already."""
        self.counts[finding.kind] = self.counts.get(finding.kind, 0) + 1
        if len(self.findings) < self.limit:
            self.findings.append(finding)
        else:
            self.truncated += 1

    def summary(self) -> str:
        """Describe the counts in one line, such as "2 phone, 1 name"."""
        if self.ok:
            return "no identifiers found"
        return ", ".join(
            f"{count} {kind}" for kind, count in sorted(self.counts.items())
        )

    def to_frame(self) -> pd.DataFrame:
        """Return the kept findings as a table, one row per finding."""
        columns = list(Finding.__dataclass_fields__)
        rows = [asdict(f) for f in self.findings]
        frame = pd.DataFrame(rows, columns=columns, dtype=object)
        return frame.astype({"count": "int64"})

    def __str__(self) -> str:
        lines = [f"ScanReport: {self.summary()}"]
        lines += [
            f"  {f.kind}: {f.value_masked} at {f.location}" for f in self.findings
        ]
        if self.truncated:
            lines.append(f"  ... and {self.truncated} more")
        return "\n".join(lines)


def _column_texts(values: pd.Series) -> pd.Series:
    """Return the filled cells of a column as text; numbers without exponent."""
    present = values.dropna()
    if pd.api.types.is_bool_dtype(present) or pd.api.types.is_datetime64_any_dtype(
        present
    ):
        return present.iloc[:0].astype(str)
    if pd.api.types.is_float_dtype(present):
        whole = np.isfinite(present) & (present == np.floor(present))
        text = present.astype(str)
        text[whole] = present[whole].astype("int64").astype(str)
        return text
    return present.astype(str)


def scan_frame(
    frame: pd.DataFrame,
    matchers: Matchers,
    report: ScanReport,
    *,
    prefix: str = "",
    row_word: str | None = "row",
    column_word: str = "column",
) -> None:
    """Add the identifiers found in a table's column names and cells to ``report``.

    Locations read "{prefix}{row_word} {label}, {column_word} {name!r}"; without
    ``row_word`` (a single record) the row part is left out.
    """
    for position, column in enumerate(frame.columns):
        # By position, because a table may repeat a column name.
        values = frame.iloc[:, position]
        texts = _column_texts(values)
        place = f"{prefix}{column_word} {column!r}"
        header = HEADER_KINDS.get(_header_key(column))
        if header is not None:
            # A column named for an identifier is reported once, as a whole.
            # In a list of records, where the field may be in a few records
            # only, the location names the first of them.
            if len(texts):
                first = _plain(texts.index[0]) if row_word == "record" else None
                location = place
                if first is not None:
                    location = f"{prefix}record {first}, {column_word} {column!r}"
                    if len(texts) > 1:
                        more = len(texts) - 1
                        noun = "record" if more == 1 else "records"
                        location += f" and {more} more {noun}"
                report.add(
                    Finding(
                        header,
                        location,
                        mask(header, texts.iloc[0]),
                        rule="column name",
                        count=len(texts),
                        column=str(column),
                        row=first,
                    )
                )
            continue
        labels = texts.index
        numbers = pd.api.types.is_numeric_dtype(values)
        found = find_in_texts(texts.tolist(), matchers, numbers=numbers)
        for position, _, kind, rule, value in found:
            row = _plain(labels[position])
            location = place
            if row_word:
                shown = row if isinstance(row, int) else repr(row)
                location = f"{prefix}{row_word} {shown}, {column_word} {column!r}"
            report.add(
                Finding(
                    kind,
                    location,
                    mask(kind, value),
                    rule=rule,
                    column=str(column),
                    row=row if row_word else None,
                )
            )


def _plain(label: object) -> object:
    """Return a numpy number as the Python number, so locations read "row 3"."""
    return label.item() if isinstance(label, np.generic) else label


def _header_key(column: object) -> str:
    return re.sub(r"[^0-9a-z\u3400-\u9fff]+", "_", str(column).strip().lower()).strip(
        "_"
    )


def scan_text(
    text: str,
    matchers: Matchers,
    report: ScanReport,
    where: str = "text",
    cell: int | None = None,
) -> None:
    """Add the identifiers found in one text to ``report``, located by line."""
    for _, offset, kind, rule, value in find_in_texts([text], matchers):
        line = text.count("\n", 0, offset) + 1
        report.add(
            Finding(
                kind, f"{where}, line {line}", mask(kind, value), rule=rule, cell=cell
            )
        )


def scan_object(
    obj: object, matchers: Matchers, report: ScanReport, prefix: str = ""
) -> None:
    """Scan a table, text, mapping or list, field names included."""
    if isinstance(obj, pd.DataFrame):
        scan_frame(obj, matchers, report, prefix=prefix)
    elif isinstance(obj, pd.Series):
        frame = obj.to_frame(name="value" if obj.name is None else obj.name)
        scan_frame(frame, matchers, report, prefix=prefix)
    elif isinstance(obj, str):
        scan_text(obj, matchers, report, prefix.rstrip(", ") or "text")
    elif isinstance(obj, Mapping):
        _scan_mapping(obj, matchers, report, prefix)
    elif isinstance(obj, list | tuple | set | frozenset | np.ndarray):
        items = list(obj)
        if items and all(isinstance(item, Mapping) for item in items):
            # A list of flat records is scanned as a table, column by column.
            frame = pd.DataFrame.from_records(items)
            scan_frame(
                frame,
                matchers,
                report,
                prefix=prefix,
                row_word="record",
                column_word="field",
            )
        else:
            for position, item in enumerate(items):
                scan_object(item, matchers, report, f"{prefix}item {position}, ")
    elif isinstance(obj, bool) or obj is None or is_missing(obj):
        return
    elif isinstance(obj, int | float | np.number):
        scan_text(str(obj), matchers, report, prefix.rstrip(", ") or "value")
    else:
        raise PrivacyError(
            f"Cannot scan a {type(obj).__name__}; pass a DataFrame, a str, or a "
            "list or dict of records."
        )


def _scan_mapping(
    obj: Mapping, matchers: Matchers, report: ScanReport, prefix: str
) -> None:
    flat = {}
    for key, value in obj.items():
        if isinstance(value, Mapping | list | tuple | pd.DataFrame | pd.Series):
            # Nested values: check the field's name, then scan what it contains.
            header = HEADER_KINDS.get(_header_key(key))
            if header is not None and len(value):
                report.add(
                    Finding(
                        header,
                        f"{prefix}field {key!r}",
                        "***",
                        rule="column name",
                        column=str(key),
                    )
                )
            scan_object(value, matchers, report, f"{prefix}field {key!r}, ")
        else:
            flat[key] = [value]
    if flat:
        frame = pd.DataFrame(flat, dtype=object)
        scan_frame(frame, matchers, report, prefix=prefix, row_word=None,
                   column_word="field")  # fmt: skip


def scan_cells(
    cells: Sequence[Mapping], matchers: Matchers, report: ScanReport
) -> None:
    """Scan the sources and text outputs of notebook cells."""
    for index, cell in enumerate(cells):
        scan_text(_as_text(cell.get("source", "")), matchers, report,
                  f"cell {index}, source", cell=index)  # fmt: skip
        for number, output in enumerate(cell.get("outputs", ())):
            for text in _output_texts(output):
                scan_text(text, matchers, report, f"cell {index}, output {number}",
                          cell=index)  # fmt: skip


def _as_text(value: object) -> str:
    if isinstance(value, list):
        return "".join(map(str, value))
    return str(value)


def _output_texts(output: Mapping) -> list[str]:
    kind = output.get("output_type")
    if kind == "stream":
        return [_as_text(output.get("text", ""))]
    if kind == "error":
        return [
            _as_text(output.get("evalue", "")),
            "\n".join(output.get("traceback", [])),
        ]
    data = output.get("data", {})
    return [
        _as_text(value)
        for mime, value in data.items()
        if mime.startswith("text/") or mime in ("application/json",)
    ]


def read_notebook_cells(path: Path) -> list[Mapping]:
    """Read the cells of a notebook file, for :func:`scan_cells`."""
    import nbformat

    try:
        notebook = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    except FileNotFoundError:
        raise PrivacyError(f"Notebook {path} not found.") from None
    except (OSError, ValueError) as error:
        raise PrivacyError(
            f"Cannot read notebook {path}: {error}. Expected a Jupyter .ipynb file."
        ) from None
    return list(notebook.get("cells", []))


def scan(
    obj: object,
    *,
    known_ids: Iterable[object] = (),
    known_names: Iterable[object] = (),
    limit: int = DEFAULT_LIMIT,
) -> ScanReport:
    """Find direct identifiers in a table, a text, or a list or dict of records.

    The patterns (``PATTERNS``) find:

    * mobile numbers: 1[3-9] and 9 more digits, also written with spaces,
      hyphens or +86;
    * landline numbers with an area code, such as "010-12345678";
    * resident ID numbers: 18 characters with a valid ISO 7064 MOD 11-2 check
      character;
    * e-mail addresses and street addresses ("和平路184号", "12 Oak Road");
    * names after an English title ("Dr Smith") or a label ("Name: ...",
      "姓名：..."), and before 先生, 女士 or 小姐.

    A column or field whose name marks it as an identifier (``HEADER_KINDS``,
    such as "name" or "phone") is reported once as a whole. ``known_ids`` and
    ``known_names`` are found wherever they occur.

    Parameters
    ----------
    obj : DataFrame, Series, str, list or dict
        What to scan. A list of dicts is scanned as a table of records; a dict
        is scanned field by field, and its lists of records as tables.
    known_ids : iterable of str, optional
        Patient IDs (or other IDs) to find as whole tokens, such as the site's
        ``patients["patient_id"]``.
    known_names : iterable of str, optional
        Names to find: Latin names as whole words in any case and spacing,
        Chinese names anywhere. Names shorter than 2 characters are ignored.
    limit : int, default=1000
        Findings kept in the report; ``counts`` still counts all of them.

    Returns
    -------
    ScanReport
        True when anything was found; ``report.ok`` when nothing was.

    Raises
    ------
    PrivacyError
        If ``obj`` is of a type that cannot be scanned.

    Examples
    --------
    >>> scan("Call 138 1234 5678 after discharge.").findings[0].value_masked
    '138****5678'
    """
    matchers = Matchers(known_ids, known_names)
    report = ScanReport(limit=limit)
    scan_object(obj, matchers, report)
    logger.debug("Scan found %s", report.summary())
    return report


def scan_notebook(
    path: str | Path,
    *,
    known_ids: Iterable[object] = (),
    known_names: Iterable[object] = (),
    limit: int = DEFAULT_LIMIT,
) -> ScanReport:
    """Find direct identifiers in the sources and text outputs of a notebook.

    Code and markdown sources, printed streams, text, HTML and JSON results, and
    error messages are scanned with the rules of :func:`scan`. Each finding
    carries the index of its cell (from 0) in ``cell``, and a location such as
    "cell 4, output 0, line 2".

    Parameters
    ----------
    path : str or Path
        A Jupyter notebook (.ipynb).
    known_ids, known_names, limit
        As for :func:`scan`.

    Raises
    ------
    PrivacyError
        If the file is missing or not a notebook.
    """
    path = Path(path)
    matchers = Matchers(known_ids, known_names)
    report = ScanReport(limit=limit)
    cells = read_notebook_cells(path)
    scan_cells(cells, matchers, report)
    logger.info("Scanned %d cells of %s: %s", len(cells), path, report.summary())
    return report


def require_no_identifiers(
    obj: object,
    *,
    known_ids: Iterable[object] = (),
    known_names: Iterable[object] = (),
) -> ScanReport:
    """Scan ``obj`` like :func:`scan` and raise if anything is found.

    Returns
    -------
    ScanReport
        The empty report.

    Raises
    ------
    IdentifierFoundError
        If an identifier is found; the error carries the report.
    """
    report = scan(obj, known_ids=known_ids, known_names=known_names)
    if report:
        first = report.findings[0]
        raise IdentifierFoundError(
            f"Found {report.summary()}, such as {first.kind} {first.value_masked!r} "
            f"at {first.location}. Remove or de-identify them "
            "(medkit.privacy.deidentify, shared_records) before sharing.",
            report=report,
        )
    return report
