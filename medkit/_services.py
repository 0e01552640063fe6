"""Services received per patient as a sparse matrix, and scores from neighbours."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp

from medkit._text import counted
from medkit.exceptions import MissingColumnError, UnknownServiceError

logger = logging.getLogger(__name__)

RECEIVED_COLUMNS = ("patient_id", "service_code")
CATALOGUE_COLUMNS = ("service_code",)


def service_codes(received: pd.DataFrame, catalogue: pd.DataFrame | None) -> pd.Index:
    """Return the sorted service codes: the catalogue's, or those received.

    Raises
    ------
    MissingColumnError
        If a table lacks a required column.
    UnknownServiceError
        If ``received`` contains codes that are not in the catalogue.
    """
    _require_columns(received, RECEIVED_COLUMNS, "received services")
    if catalogue is None:
        return pd.Index(sorted(set(received["service_code"].astype(str))))

    _require_columns(catalogue, CATALOGUE_COLUMNS, "service catalogue")
    codes = pd.Index(sorted(set(catalogue["service_code"].astype(str))))
    written = received["service_code"].astype(str)
    unknown = ~written.isin(codes)
    if unknown.any():
        names = sorted(set(written[unknown]))
        # Spreadsheet rows: the header is row 1 and the first record row 2.
        rows = [int(position) + 2 for position in np.flatnonzero(unknown)[:10]]
        n_unknown = int(unknown.sum())
        have_codes = "has a code that is" if n_unknown == 1 else "have codes that are"
        listed_codes = _first_ten([repr(code) for code in names], len(names))
        listed_rows = _first_ten([str(row) for row in rows], n_unknown)
        raise UnknownServiceError(
            f"{counted(n_unknown, 'received service')} {have_codes} not in the "
            f"catalogue of {counted(len(codes), 'service')}: {listed_codes} "
            f"({'row' if n_unknown == 1 else 'rows'} {listed_rows}). Correct the "
            "codes or add them to the catalogue (services.csv).",
            codes=names,
            rows=rows,
        )
    return codes


def service_matrix(
    received: pd.DataFrame, codes: pd.Index, patient_ids: pd.Index
) -> sp.csr_matrix:
    """Return a 0/1 matrix of services received, shape (patients, services).

    Rows follow ``patient_ids`` and columns follow ``codes``. Rows of patients
    without a note are left out, and a service received twice counts once.
    """
    patient = patient_ids.get_indexer(received["patient_id"].astype(str))
    service = codes.get_indexer(received["service_code"].astype(str))
    known = (patient >= 0) & (service >= 0)
    if not known.all():
        logger.warning(
            "Ignored %s of patients without a note",
            counted(int((~known).sum()), "received service"),
        )
    matrix = sp.csr_matrix(
        (np.ones(int(known.sum())), (patient[known], service[known])),
        shape=(len(patient_ids), len(codes)),
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    matrix.sort_indices()
    return matrix


def neighbor_scores(
    indices: np.ndarray, similarities: np.ndarray, services: sp.csr_matrix
) -> np.ndarray:
    """Score each service by the similarity-weighted share of neighbours who had it.

    Parameters
    ----------
    indices, similarities : ndarray, shape (n_queries, k)
        Neighbours as ``top_k`` returns them, -1 where there is none.
    services : scipy.sparse.csr_matrix, shape (n_patients, n_services)
        Services received, 0 or 1.

    Returns
    -------
    ndarray, shape (n_queries, n_services)
        Scores from 0 to 1, and 0 for a query without neighbours.
    """
    present = indices >= 0
    query = np.repeat(np.arange(len(indices)), present.sum(axis=1))
    weights = sp.csr_matrix(
        (similarities[present], (query, indices[present])),
        shape=(len(indices), services.shape[0]),
    )
    totals = similarities.sum(axis=1, where=present)
    scores = np.asarray((weights @ services).todense())
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(totals[:, None] > 0, scores / totals[:, None], 0.0)
    return scores


def top_services(
    scores: np.ndarray, received: sp.csr_matrix, top_n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pick the top_n services by score that each patient has not received.

    Only scores above 0 count. Ties go to the service that comes first in the
    columns (the lower code).

    Returns
    -------
    columns : ndarray of int64, shape (n_queries, top_n)
        Service columns, best first. -1 where fewer services qualify.
    chosen : ndarray of float64, shape (n_queries, top_n)
        Their scores, and 0.0 where ``columns`` is -1.
    """
    scores = np.where(received.toarray() > 0, -np.inf, scores)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top_n]
    chosen = np.take_along_axis(scores, order, axis=1)
    columns = np.where(chosen > 0, order, -1)
    return columns, np.where(chosen > 0, chosen, 0.0)


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise MissingColumnError(
            f"The {name} table has no column {missing[0]!r}. Expected the columns "
            f"{', '.join(columns)}, as in datasets/raw/ (found "
            f"{', '.join(map(str, frame.columns)) or 'none'}).",
            column=missing[0],
        )


def _first_ten(values: list[str], total: int) -> str:
    """Join the first 10 values and append how many of ``total`` are left out."""
    text = ", ".join(values[:10])
    if total > 10:
        text += f" and {total - 10} more"
    return text
