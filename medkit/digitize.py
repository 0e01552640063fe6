"""Stage 1, digitization: read -> profile -> clean -> encode -> store.

Raw hospital exports become a clean database without losing a record. Each
step is a function that a lesson can call on its own:

* :func:`read_table` reads a CSV export with every column as text and detects
  its encoding (UTF-8, UTF-8 with a byte order mark, or GB18030).
* :func:`profile` counts missing, invalid and outlying values per column, and
  :func:`plot_profile` draws them.
* :func:`clean` applies named rules configured by a :class:`TableSpec`. Every
  record ends up clean, quarantined with a reason, or removed as a duplicate of
  an earlier row.
* :func:`encode` turns categorical columns into integer codes with a
  :class:`Codebook` that decodes them exactly; :func:`one_hot` expands them for
  models.
* :func:`store` writes tables to any SQLAlchemy database in one transaction.

:func:`digitize_hospital` runs all steps on the patients, visits and labs
exports and checks the foreign keys between them.

NOTE: A table is read and cleaned whole in memory. For the visits export,
``bench/digitize.py`` measures a peak of about five times the file's size, above
its target of four. The clean frame alone takes about 2.6 times, because its
million IDs are Python strings.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from tqdm.auto import tqdm

from medkit._cleaning import (
    DUPLICATE_COLUMNS,
    QUARANTINE_COLUMNS,
    CleanResult,
    clean,
)
from medkit._codebook import Codebook, encode, one_hot
from medkit._encodings import ENCODINGS, detect_encoding
from medkit._profiling import plot_profile, profile
from medkit._reading import read_categorical, read_table
from medkit._specs import (
    HOSPITAL,
    KINDS,
    LABS,
    MISSING_TOKENS,
    PATIENTS,
    REFERENCES,
    RULES,
    VISITS,
    IdFormat,
    TableSpec,
    UnitRule,
)
from medkit._storage import DEFAULT_URL, load_tables, store

__all__ = [
    "DEFAULT_URL",
    "ENCODINGS",
    "HOSPITAL",
    "KINDS",
    "LABS",
    "MISSING_TOKENS",
    "PATIENTS",
    "RULES",
    "VISITS",
    "CleanResult",
    "Codebook",
    "HospitalReport",
    "IdFormat",
    "TableSpec",
    "UnitRule",
    "clean",
    "detect_encoding",
    "digitize_hospital",
    "encode",
    "load_tables",
    "one_hot",
    "plot_profile",
    "profile",
    "read_table",
    "store",
]

logger = logging.getLogger(__name__)

COUNT_COLUMNS = ["read", "stored", "quarantined", "duplicates"]


@dataclass(frozen=True)
class HospitalReport:
    """The outcome of :func:`digitize_hospital`.

    Attributes
    ----------
    counts : pandas.DataFrame
        One row per table, indexed by name: ``file``, ``encoding``, ``read``,
        ``stored``, ``quarantined`` and ``duplicates``. For every table,
        read = stored + quarantined + duplicates.
    results : dict of str to CleanResult
        The clean frames, quarantine, duplicates and rule log of each table.
    codebook : Codebook
        Codes of the categorical columns of all tables.
    quarantine : pandas.DataFrame
        Quarantined rows of all tables, in table order, then row order.
    duplicates : pandas.DataFrame
        Removed duplicate rows of all tables.
    url : str
        The database written, with any password hidden.
    """

    counts: pd.DataFrame
    results: dict[str, CleanResult]
    codebook: Codebook
    quarantine: pd.DataFrame
    duplicates: pd.DataFrame
    url: str


def digitize_hospital(
    raw_dir: str | Path | None = None,
    url: str | sa.Engine = DEFAULT_URL,
    *,
    specs: Mapping[str, TableSpec] | None = None,
    progress: bool = True,
) -> HospitalReport:
    """Read, clean, check, encode and store the hospital's exports.

    Each table is read from ``<raw_dir>/<name>.csv`` and cleaned by its spec.
    Visits whose patient is not among the clean patients, and labs whose visit
    is not among the clean visits, are quarantined by the ``references`` rule.
    The database then gets, in one transaction, the encoded ``patients``,
    ``visits`` and ``labs`` tables, the ``codebook``, the ``quarantine``, the
    ``duplicates`` and a ``load_summary`` with the counts. Running twice on the
    same files gives the same database.

    Parameters
    ----------
    raw_dir : str or Path, optional
        Folder with ``patients.csv``, ``visits.csv`` and ``labs.csv``. Defaults
        to ``raw/`` in :func:`medkit.datasets.data_dir`.
    url : str or sqlalchemy.Engine, default=DEFAULT_URL
        The database to write, ``sqlite:///build/medkit.db`` by default.
    specs : mapping of str to TableSpec, optional
        Rules per table, in load order; parents must come before children.
        Defaults to :data:`HOSPITAL`.
    progress : bool, default=True
        Show a progress bar.

    Returns
    -------
    HospitalReport
        Counts per table, the clean results, codebook, quarantine and
        duplicates.

    Raises
    ------
    DataFileError
        If a file cannot be read as a table, or a value fits no rule. The
        subclass and its message name the file, column, row, value and the fix.
        Nothing is written to the database then.
    """
    specs = dict(specs or HOSPITAL)
    raw_dir = Path(raw_dir) if raw_dir is not None else _default_raw_dir()
    results: dict[str, CleanResult] = {}
    encoded: dict[str, pd.DataFrame] = {}
    codebooks: list[Codebook] = []
    encodings: dict[str, str] = {}

    with tqdm(
        total=2 * len(specs) + 1, desc="digitize", unit="step", disable=not progress
    ) as bar:
        for name, spec in specs.items():
            bar.set_postfix_str(f"read {name}")
            raw = [read_categorical(raw_dir / f"{name}.csv", spec)]
            encodings[name] = raw[0].attrs["encoding"]
            bar.update()

            bar.set_postfix_str(f"clean {name}")
            references = _references(name, results)
            # Passing the only reference lets clean free the raw table early.
            results[name] = clean(raw.pop(), spec, references=references)
            encoded[name], codebook = encode(
                results[name].frame, list(spec.categorical), table=name
            )
            codebooks.append(codebook)
            bar.update()

        bar.set_postfix_str("store")
        report = _report(raw_dir, url, specs, results, codebooks, encodings)
        store(
            {
                **encoded,
                "codebook": report.codebook.entries,
                "quarantine": report.quarantine,
                "duplicates": report.duplicates,
                "load_summary": report.counts.reset_index(),
            },
            url,
            keys={name: spec.key for name, spec in specs.items() if spec.key},
        )
        bar.update()
    return report


def _default_raw_dir() -> Path:
    from medkit.datasets import data_dir

    return Path(data_dir()) / "raw"


def _references(
    name: str, results: Mapping[str, CleanResult]
) -> dict[str, CleanResult]:
    if name not in REFERENCES:
        return {}
    column, parent = REFERENCES[name]
    return {column: results[parent]} if parent in results else {}


def _report(
    raw_dir: Path,
    url: str | sa.Engine,
    specs: Mapping[str, TableSpec],
    results: Mapping[str, CleanResult],
    codebooks: list[Codebook],
    encodings: Mapping[str, str],
) -> HospitalReport:
    rows = []
    for name in specs:
        counts = results[name].counts
        rows.append(
            {
                "table": name,
                "file": f"{name}.csv",
                "encoding": encodings[name],
                "read": counts["read"],
                "stored": counts["clean"],
                "quarantined": counts["quarantined"],
                "duplicates": counts["duplicates"],
            }
        )
    counts = pd.DataFrame(rows).set_index("table")
    unaccounted = counts["read"] - counts[COUNT_COLUMNS[1:]].sum(axis=1)
    if unaccounted.any():
        raise RuntimeError(
            "Rows read minus rows stored, quarantined and removed as duplicates "
            f"should be 0 for every table, but are {unaccounted.to_dict()}. A "
            "cleaning rule lost or repeated rows."
        )

    quarantine = [results[name].quarantine for name in specs]
    duplicates = [results[name].duplicates for name in specs]
    engine_url = url.url if isinstance(url, sa.Engine) else sa.make_url(url)
    logger.info("Digitized %d tables from %s", len(specs), raw_dir)
    return HospitalReport(
        counts=counts,
        results=dict(results),
        codebook=Codebook.concat(codebooks),
        quarantine=_concat(quarantine, QUARANTINE_COLUMNS),
        duplicates=_concat(duplicates, DUPLICATE_COLUMNS),
        url=engine_url.render_as_string(hide_password=True),
    )


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [frame for frame in frames if len(frame)]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]
