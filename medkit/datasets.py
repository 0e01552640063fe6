"""Deterministic synthetic hospital: raw exports with faults, and their answer key.

:func:`generate` draws a fictional hospital (patients, visits, lab results,
clinical notes, services) from a seed, writes it as raw exports with the faults
real exports have, and derives the answer key of Stage 1 from the faults it
injected. :func:`write_datasets` stores the files that the course ships in
``datasets/``, and :func:`check_datasets` proves that they still match the code.
Every name, identifier and note is synthetic, and no record describes a real person.

Examples
--------
>>> from medkit.datasets import generate
>>> data = generate(n_patients=200, seed=1)
>>> data.answer_key["patients"].shape[0]
200
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medkit import _hospital_site as site
from medkit import _hospital_templates as tpl
from medkit._hospital_export import (
    export_labs,
    export_patients,
    export_visits,
    lab_text,
    patient_text,
    reserved_counts,
    visit_text,
)
from medkit._hospital_faults import ExportedTable, format_dates, format_ids
from medkit._hospital_readme import render_readme
from medkit._hospital_site_readme import render_site_readme
from medkit._hospital_truth import Truth, make_truth
from medkit.exceptions import DatasetMismatchError, DatasetParameterError

__all__ = [
    "ANSWER_KEY_FILES",
    "DEFAULT_PATIENTS",
    "DEFAULT_SEED",
    "RAW_ENCODINGS",
    "SITE_B_ENCODINGS",
    "SITE_B_PATIENTS",
    "SITE_B_SEED",
    "HospitalData",
    "SiteData",
    "check_datasets",
    "data_dir",
    "generate",
    "generate_site",
    "load_answer_key",
    "load_raw",
    "raw_path",
    "write_datasets",
    "write_site",
]

logger = logging.getLogger(__name__)

DEFAULT_PATIENTS = 2000
DEFAULT_SEED = 2026
MIN_PATIENTS = 100
MAX_PATIENTS = 600_000
# Text encoding of each raw export. "utf-8-sig" writes a byte order mark.
RAW_ENCODINGS = {
    "patients": "utf-8-sig",
    "visits": "gb18030",
    "labs": "utf-8",
    "notes": "utf-8",
    "services": "utf-8",
    "patient_services": "utf-8",
}
SITE_B_PATIENTS = 1000
SITE_B_SEED = 2027
SITE_B_ENCODINGS = dict(site.ENCODINGS)
"""Text encoding of each raw export of the second hospital, site B."""
ANSWER_KEY_FILES = ("patients", "visits", "labs", "quarantine", "duplicates", "faults")
_INTEGER_COLUMNS = {
    "visits": ("age", "readmit_30d"),
    "quarantine": ("row",),
    "duplicates": ("row", "duplicate_of"),
    "faults": ("count",),
}
_NULLABLE_INTEGER_COLUMNS = {"visits": ("systolic_bp", "heart_rate")}
_FLOAT_COLUMNS = {"labs": ("value",)}


@dataclass(frozen=True)
class HospitalData:
    """A generated hospital: raw exports, answer key and the faults injected.

    Attributes
    ----------
    n_patients : int
        Number of patients in the clean ``patients`` table.
    seed : int
        Seed of :func:`numpy.random.default_rng` that drew everything.
    raw : dict of str to DataFrame
        Raw exports keyed by file stem (see ``RAW_ENCODINGS``), every cell text.
    answer_key : dict of str to DataFrame
        What Stage 1 must produce, keyed by the names in ``ANSWER_KEY_FILES``:
        the clean ``patients``, ``visits`` and ``labs`` in raw-file order, the
        ``quarantine`` and ``duplicates`` lists and the ``faults`` table.
    """

    n_patients: int
    seed: int
    raw: dict[str, pd.DataFrame] = field(repr=False)
    answer_key: dict[str, pd.DataFrame] = field(repr=False)

    @property
    def faults(self) -> pd.DataFrame:
        """Every injected fault: table, column, fault, count and outcome."""
        return self.answer_key["faults"]

    def files(self) -> dict[str, bytes]:
        """Render every shipped file as bytes, keyed by path relative to ``datasets/``.

        CSV files end lines with ``"\\n"``. The raw files use ``RAW_ENCODINGS``
        and everything else UTF-8.
        """
        return _render_files(self, RAW_ENCODINGS, render_readme(self))


@dataclass(frozen=True)
class SiteData(HospitalData):
    """The second hospital, site B, made by :func:`generate_site`.

    It has the attributes of :class:`HospitalData`. Its raw exports follow site
    B's conventions (see :func:`generate_site`) and use ``SITE_B_ENCODINGS``.
    """

    def files(self) -> dict[str, bytes]:
        """Render every file of the site as bytes, keyed by relative path.

        The layout is that of ``datasets/``: ``raw/``, ``answer_key/`` and a
        ``README.md`` that describes how site B differs from the first hospital.
        """
        return _render_files(self, SITE_B_ENCODINGS, render_site_readme(self))


def _render_files(
    data: HospitalData, encodings: dict[str, str], readme: str
) -> dict[str, bytes]:
    files = {
        f"raw/{name}.csv": _csv_bytes(frame, encodings[name])
        for name, frame in data.raw.items()
    }
    for name in ANSWER_KEY_FILES:
        files[f"answer_key/{name}.csv"] = _csv_bytes(data.answer_key[name], "utf-8")
    files["README.md"] = readme.encode("utf-8")
    return files


def _csv_bytes(frame: pd.DataFrame, encoding: str) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue().encode(encoding)


def generate(
    n_patients: int = DEFAULT_PATIENTS, seed: int = DEFAULT_SEED
) -> HospitalData:
    """Generate the synthetic hospital for ``n_patients`` patients.

    The same arguments always give the same tables, and so the same file bytes.
    Each patient has about three visits, and each visit has a glucose result
    and often creatinine and sodium. Fault counts scale with ``n_patients``.

    Parameters
    ----------
    n_patients : int, default=2000
        Patients in the clean table, between 100 and 600,000. Quarantined
        patient rows come on top.
    seed : int, default=2026
        Seed of the random generator.

    Returns
    -------
    HospitalData
        Raw exports, answer key and fault table.

    Raises
    ------
    DatasetParameterError
        If ``n_patients`` is out of range or ``seed`` is negative.

    Examples
    --------
    >>> data = generate(n_patients=100, seed=3)
    >>> sorted(data.raw)
    ['labs', 'notes', 'patient_services', 'patients', 'services', 'visits']
    """
    _check_parameters(n_patients, seed)
    rng = np.random.default_rng(seed)
    reserved = reserved_counts(n_patients)
    truth = make_truth(
        rng,
        n_patients,
        extra_patients=reserved["patients"],
        reserved_visits=reserved["visits"],
        reserved_labs=reserved["labs"],
    )
    clean_patients = patient_text(truth.patients)
    clean_visits = visit_text(truth)
    clean_labs = lab_text(truth.labs)
    patients = export_patients(rng, truth, clean_patients, n_patients)
    visits = export_visits(rng, truth, clean_visits, n_patients)
    labs, lab_values = export_labs(rng, truth, clean_labs, n_patients)
    exports = {"patients": patients, "visits": visits, "labs": labs}
    clean = {"patients": clean_patients, "visits": clean_visits, "labs": clean_labs}
    answer_key = _answer_key(truth, exports, clean, lab_values)
    raw = {name: export.raw for name, export in exports.items()}
    raw.update(_plain_tables(truth))
    logger.info(
        "Generated %s patients, %s visits and %s lab results (seed %s)",
        n_patients,
        len(answer_key["visits"]),
        len(answer_key["labs"]),
        seed,
    )
    return HospitalData(
        n_patients=n_patients, seed=seed, raw=raw, answer_key=answer_key
    )


def generate_site(
    n_patients: int = SITE_B_PATIENTS, seed: int = SITE_B_SEED
) -> SiteData:
    """Generate the second hospital, site B, for ``n_patients`` patients.

    Site B's patients, stays, lab results, notes and services come from the
    same clinical model as :func:`generate`, with its own seed, so a model or
    a recommender built at one hospital can be tried at the other. Its exports
    follow another system's conventions, which the default specs of
    :mod:`medkit.digitize` do not describe:

    - patient IDs ``B`` and 6 digits (``B000123``), stay IDs ``ZY`` and 8
      digits (``ZY00000042``), lab IDs as at the first hospital;
    - slash dates month first (``03/07/1956`` is 7 March), and ISO dates
      without leading zeros (``1956-3-7``);
    - missing values written ``""``, ``NULL``, ``n/a`` or ``不详``;
    - sex also written ``男性`` or ``女性``;
    - departments also in traditional characters (``心內科``) or surrounded by
      full-width spaces;
    - sodium also in mEq/L;
    - stays exported twice with another heart rate, under the same
      ``visit_id`` (the later row is quarantined by the ``ids`` rule).

    ``patients.csv`` is GB18030, ``visits.csv`` UTF-8 and ``labs.csv`` UTF-8
    with a byte order mark. The answer key gives the same clean schema as the
    first hospital's, with departments in simplified characters.

    Parameters
    ----------
    n_patients : int, default=1000
        Patients in the clean table, between 100 and 600,000.
    seed : int, default=2027
        Seed of the random generator.

    Returns
    -------
    SiteData
        Raw exports, answer key and fault table of site B.

    Raises
    ------
    DatasetParameterError
        If ``n_patients`` is out of range or ``seed`` is negative.

    Examples
    --------
    >>> data = generate_site(n_patients=200)
    >>> data.answer_key["patients"]["patient_id"].iloc[0][:1]
    'B'
    """
    _check_parameters(n_patients, seed)
    rng = np.random.default_rng(seed)
    reserved = site.reserved_counts(n_patients)
    truth = make_truth(
        rng,
        n_patients,
        extra_patients=reserved["patients"],
        reserved_visits=reserved["visits"],
        reserved_labs=reserved["labs"],
    )
    clean_patients, clean_visits, clean_labs = site.site_texts(truth)
    patients = site.export_patients(rng, truth, clean_patients, n_patients)
    visits = site.export_visits(rng, truth, clean_visits, n_patients)
    labs, lab_values = site.export_labs(rng, truth, clean_labs, n_patients)
    exports = {"patients": patients, "visits": visits, "labs": labs}
    clean = {"patients": clean_patients, "visits": clean_visits, "labs": clean_labs}
    answer_key = _answer_key(truth, exports, clean, lab_values)
    raw = {name: export.raw for name, export in exports.items()}
    raw.update(
        _plain_tables(
            truth,
            patient_prefix=site.PATIENT_PREFIX,
            visit_prefix=site.VISIT_PREFIX,
            visit_digits=site.VISIT_DIGITS,
        )
    )
    logger.info(
        "Generated site B: %s patients, %s visits and %s lab results (seed %s)",
        n_patients,
        len(answer_key["visits"]),
        len(answer_key["labs"]),
        seed,
    )
    return SiteData(n_patients=n_patients, seed=seed, raw=raw, answer_key=answer_key)


def _check_parameters(n_patients: int, seed: int) -> None:
    if not MIN_PATIENTS <= n_patients <= MAX_PATIENTS:
        raise DatasetParameterError(
            f"n_patients must be between {MIN_PATIENTS} and {MAX_PATIENTS}, so that "
            f"every fault occurs and patient IDs fit in 6 digits. Got {n_patients}."
        )
    if seed < 0:
        raise DatasetParameterError(
            f"seed must be 0 or a positive integer. Got {seed}."
        )


def _answer_key(
    truth: Truth,
    exports: dict[str, ExportedTable],
    clean: dict[str, dict[str, np.ndarray]],
    lab_values: np.ndarray,
) -> dict[str, pd.DataFrame]:
    # Numbers in the answer key come from the truth, not from their text.
    clean_visits = clean["visits"]
    for column in ("age", "systolic_bp", "heart_rate", "readmit_30d"):
        clean_visits[column] = truth.visits[column].array
    clean["labs"]["value"] = lab_values
    answer_key = {
        name: _take(clean[name], exports[name].clean_rows)
        for name in ("patients", "visits", "labs")
    }
    answer_key.update(_answer_lists(exports))
    return {name: _typed(frame, name) for name, frame in answer_key.items()}


def _take(columns: dict[str, np.ndarray], rows: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({name: values[rows] for name, values in columns.items()})


def _answer_lists(exports: dict[str, ExportedTable]) -> dict[str, pd.DataFrame]:
    parts = exports.values()
    return {
        "quarantine": pd.concat([e.quarantine for e in parts], ignore_index=True),
        "duplicates": pd.concat([e.duplicates for e in parts], ignore_index=True),
        "faults": pd.concat([e.faults for e in parts], ignore_index=True),
    }


def _plain_tables(
    truth: Truth,
    *,
    patient_prefix: str = "",
    visit_prefix: str = "V",
    visit_digits: int = 7,
) -> dict[str, pd.DataFrame]:
    # Notes, the service catalogue and services received are exported without faults.
    notes = truth.notes
    services = pd.DataFrame(
        list(tpl.SERVICES), columns=["service_code", "name_en", "name_zh", "category"]
    )
    received = truth.patient_services
    return {
        "notes": pd.DataFrame(
            {
                "note_id": format_ids("N", notes["number"], 7),
                "patient_id": format_ids(patient_prefix, notes["patient_id"], 6),
                "visit_id": format_ids(visit_prefix, notes["visit"], visit_digits),
                "language": notes["language"].to_numpy(object),
                "text": notes["text"].to_numpy(object),
            }
        ),
        "services": services,
        "patient_services": pd.DataFrame(
            {
                "patient_id": format_ids(patient_prefix, received["patient_id"], 6),
                "service_code": received["service_code"].to_numpy(object),
                "received_date": format_dates(received["received_day"]),
            }
        ),
    }


def _typed(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    # The one place that fixes answer-key dtypes, for generate() and the loader.
    frame = frame.reset_index(drop=True)
    numeric = {
        **{c: "int64" for c in _INTEGER_COLUMNS.get(name, ())},
        **{c: "Int64" for c in _NULLABLE_INTEGER_COLUMNS.get(name, ())},
        **{c: "float64" for c in _FLOAT_COLUMNS.get(name, ())},
    }
    columns = {}
    for column in frame.columns:
        values = frame[column]
        if column in numeric and values.dtype == numeric[column]:
            columns[column] = values
        elif column in numeric:
            columns[column] = pd.to_numeric(values).astype(numeric[column])
        else:
            # mask keeps missing values missing: pandas 2 turns them into "nan".
            columns[column] = values.astype("str").mask(values.isna())
    return pd.DataFrame(columns)


def data_dir() -> Path:
    """Return the datasets folder: ``$MEDKIT_DATA_DIR`` if set, else ``datasets/``.

    The default is the ``datasets/`` folder of the repository that contains medkit.
    """
    override = os.environ.get("MEDKIT_DATA_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "datasets"


def raw_path(name: str, directory: str | Path | None = None) -> Path:
    """Return the path of a raw export, e.g. ``raw_path("visits")``.

    Parameters
    ----------
    name : str
        File stem from ``RAW_ENCODINGS``, with or without ``.csv``.
    directory : str or Path, optional
        Datasets folder, by default :func:`data_dir`.

    Raises
    ------
    ValueError
        If ``name`` is not a raw export.
    """
    stem = name.removesuffix(".csv")
    if stem not in RAW_ENCODINGS:
        raise ValueError(
            f"Unknown raw file {name!r}. Expected one of {', '.join(RAW_ENCODINGS)}."
        )
    return Path(directory or data_dir()) / "raw" / f"{stem}.csv"


def load_raw(
    name: str, directory: str | Path | None = None, *, encoding: str | None = None
) -> pd.DataFrame:
    """Read a raw export as text, every cell a string, in its own encoding.

    Nothing is treated as missing, so ``"NA"`` (the sodium test code) and
    ``"007"`` stay as written. Use :mod:`medkit.digitize` to clean the data.

    Parameters
    ----------
    name : str
        File stem from ``RAW_ENCODINGS``, with or without ``.csv``.
    directory : str or Path, optional
        Datasets folder, by default :func:`data_dir`.
    encoding : str, optional
        Text encoding, by default the first hospital's ``RAW_ENCODINGS``. Pass
        ``SITE_B_ENCODINGS[name]`` for a file of site B.
    """
    path = raw_path(name, directory)
    return pd.read_csv(
        path,
        dtype=str,
        keep_default_na=False,
        encoding=encoding or RAW_ENCODINGS[path.stem],
    )


def load_answer_key(name: str, directory: str | Path | None = None) -> pd.DataFrame:
    """Read one answer-key table, with IDs and codes as text.

    Parameters
    ----------
    name : str
        One of ``ANSWER_KEY_FILES``, with or without ``.csv``.
    directory : str or Path, optional
        Datasets folder, by default :func:`data_dir`.

    Returns
    -------
    DataFrame
        Text columns as ``str`` with missing values as NaN, so ``"000123"`` and
        the sodium code ``"NA"`` keep their text. ``age``, ``readmit_30d`` and
        the ``row`` columns of the lists are ``int64``. ``systolic_bp`` (mmHg)
        and ``heart_rate`` (beats per minute) are nullable ``Int64``. Lab
        ``value`` is ``float64`` in the canonical unit. Dates are ISO text
        (YYYY-MM-DD).

    Raises
    ------
    ValueError
        If ``name`` is not an answer-key table.
    """
    stem = name.removesuffix(".csv")
    if stem not in ANSWER_KEY_FILES:
        expected = ", ".join(ANSWER_KEY_FILES)
        raise ValueError(f"Unknown answer key {name!r}. Expected one of {expected}.")
    path = Path(directory or data_dir()) / "answer_key" / f"{stem}.csv"
    frame = pd.read_csv(
        path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8"
    )
    return _typed(frame, stem)


def write_datasets(
    directory: str | Path | None = None,
    n_patients: int = DEFAULT_PATIENTS,
    seed: int = DEFAULT_SEED,
) -> list[Path]:
    """Generate the hospital and write its raw files, answer key and README.

    Parameters
    ----------
    directory : str or Path, optional
        Folder to write into, by default :func:`data_dir`. ``raw/`` and
        ``answer_key/`` are created inside it. Other files are left alone.
    n_patients : int, default=2000
        Patients in the clean table.
    seed : int, default=2026
        Seed of the random generator.

    Returns
    -------
    list of Path
        The files written.
    """
    root = Path(directory or data_dir())
    return _write_files(root, generate(n_patients, seed).files())


def write_site(
    directory: str | Path,
    n_patients: int = SITE_B_PATIENTS,
    seed: int = SITE_B_SEED,
) -> list[Path]:
    """Generate the second hospital, site B, and write its files to ``directory``.

    The layout is that of ``datasets/``: ``raw/`` with site B's exports,
    ``answer_key/`` and a ``README.md`` that lists how site B differs from the
    first hospital and every fault with its count. At the default size it is
    quick enough for a lesson to write it to a temporary folder at run time.

    Parameters
    ----------
    directory : str or Path
        Folder to write into. ``raw/`` and ``answer_key/`` are created inside
        it. There is no default, so that the shipped ``datasets/`` is not
        overwritten by mistake.
    n_patients : int, default=1000
        Patients in the clean table.
    seed : int, default=2027
        Seed of the random generator.

    Returns
    -------
    list of Path
        The files written.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> [path.name for path in write_site(folder, 200)][:3]
    ['patients.csv', 'visits.csv', 'labs.csv']
    """
    return _write_files(Path(directory), generate_site(n_patients, seed).files())


def _write_files(root: Path, files: dict[str, bytes]) -> list[Path]:
    written = []
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.append(path)
    logger.info("Wrote %s dataset files to %s", len(written), root)
    return written


def check_datasets(
    directory: str | Path | None = None,
    n_patients: int = DEFAULT_PATIENTS,
    seed: int = DEFAULT_SEED,
) -> list[Path]:
    """Check that the dataset files equal, byte for byte, what the generator makes.

    Parameters
    ----------
    directory : str or Path, optional
        Folder to check, by default :func:`data_dir`.
    n_patients : int, default=2000
        Patients the files were built with.
    seed : int, default=2026
        Seed the files were built with.

    Returns
    -------
    list of Path
        The files checked.

    Raises
    ------
    DatasetMismatchError
        If a file is missing or its bytes differ. The message names each file.
    """
    root = Path(directory or data_dir())
    checked, problems = [], []
    for relative, expected in generate(n_patients, seed).files().items():
        path = root / relative
        checked.append(path)
        if not path.is_file():
            problems.append(f"{relative} (missing)")
        elif path.read_bytes() != expected:
            problems.append(f"{relative} (differs)")
    if problems:
        command = "medkit datasets build"
        if n_patients != DEFAULT_PATIENTS:
            command += f" --patients {n_patients}"
        if seed != DEFAULT_SEED:
            command += f" --seed {seed}"
        command += f" --out {root}"
        raise DatasetMismatchError(
            f"Dataset files in {root} do not match the generator (n_patients="
            f"{n_patients}, seed={seed}): {', '.join(problems)}. Rebuild them with "
            f"`{command}`."
        )
    logger.info("Checked %s dataset files in %s", len(checked), root)
    return checked
