"""Service recommendations from similar patients, and their evaluation."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from medkit import _services
from medkit._neighbors import top_k
from medkit._note_vectors import (
    NoteVectors,
    check_search,
    neighbor_frame,
)
from medkit._text import counted
from medkit.exceptions import MissingColumnError, PersonalizeError

logger = logging.getLogger(__name__)

HIDE_CHOICES = ("random", "latest")


def recommend(
    vectors: NoteVectors,
    received: pd.DataFrame,
    patient_id: str,
    *,
    catalogue: pd.DataFrame | None = None,
    k: int = 10,
    min_similarity: float = 0.1,
    top_n: int = 5,
) -> pd.DataFrame:
    """Recommend services that similar patients received and this patient did not.

    A service's score is the similarity-weighted share of the neighbours who
    received it: the sum of their similarities divided by the sum over all
    neighbours found, from 0 to 1. Services the patient already received are
    never recommended, so a patient without any service can be offered every
    service of the neighbours. Ties go to the lower service code.

    Parameters
    ----------
    vectors : NoteVectors
        From :func:`vectorize_notes`.
    received : DataFrame
        Services received, with columns ``patient_id`` and ``service_code``, such
        as ``medkit.datasets.load_raw("patient_services")``.
    patient_id : str
        The patient to recommend for.
    catalogue : DataFrame, optional
        The service catalogue, with ``service_code`` and optionally names and
        ``category``, such as ``medkit.datasets.load_raw("services")``. When
        given, every received code must be in it, and its columns are added.
    k : int, default=10
        Neighbours to draw services from.
    min_similarity : float, default=0.1
        Neighbours must be more similar than this.
    top_n : int, default=5
        Maximum number of services to return.

    Returns
    -------
    DataFrame
        One row per service, best first: ``rank``, ``service_code``, the
        catalogue's columns, ``score``, ``neighbors`` (how many of the
        neighbours received it), ``neighbor_ids`` and ``similarities`` (those
        neighbours, most similar first), ``shared_terms`` (the terms that
        contribute most to the similarity with those neighbours) and ``reason``,
        a sentence that gives the reasons. Empty when no neighbour qualifies.

    Raises
    ------
    UnknownPatientError
        If the patient has no note.
    NeighborCountError
        If ``k`` is below 1 or larger than the number of other patients.
    UnknownServiceError
        If ``received`` contains a code that is not in ``catalogue``.
    MissingColumnError
        If ``received`` or ``catalogue`` lacks a required column.
    """
    # An unknown patient is reported before a k that is too large for the notes.
    row = vectors.position(patient_id)
    check_search(vectors, k, min_similarity, chunk_size=1)
    _check_top_n(top_n)
    codes = _services.service_codes(received, catalogue)
    services = _services.service_matrix(received, codes, vectors.patient_ids)
    indices, similarities = top_k(
        vectors.matrix, k, queries=np.array([row]), min_similarity=min_similarity
    )
    scores = _services.neighbor_scores(indices, similarities, services)
    columns, chosen = _services.top_services(scores, services[row], top_n)

    neighbors = indices[0][indices[0] >= 0]
    weights = similarities[0][: len(neighbors)]
    records = []
    for column, score in zip(columns[0], chosen[0], strict=True):
        if column < 0:
            break
        had_it = services[neighbors, column].toarray().ravel() > 0
        supporters, supporter_weights = neighbors[had_it], weights[had_it]
        terms = _top_shared_terms(vectors, row, supporters)
        records.append(
            {
                "rank": len(records) + 1,
                "service_code": codes[column],
                "score": float(score),
                "neighbors": len(supporters),
                "neighbor_ids": list(vectors.patient_ids[supporters]),
                "similarities": supporter_weights.tolist(),
                "shared_terms": terms,
                "reason": _reason(supporter_weights, len(neighbors), terms),
            }
        )
    return _recommendation_frame(records, catalogue)


@dataclass(frozen=True)
class Evaluation:
    """The outcome of :func:`evaluate`.

    Attributes
    ----------
    summary : DataFrame
        Indexed by method, ``"similar patients"`` and ``"most popular"``, with
        ``hit_rate`` (share of patients whose hidden service is in their list),
        ``precision`` (hits divided by ``top_n``, averaged over patients),
        ``coverage`` (share of the catalogue recommended to anyone) and
        ``patients`` (how many were evaluated).
    per_patient : DataFrame
        ``patient_id``, ``hidden`` (the service code hidden), ``rank`` and
        ``baseline_rank``: where the hidden service came in each method's list
        (nullable integers, missing when it was not listed).
    recommendations : DataFrame
        The similar-patient lists: ``patient_id``, ``rank``, ``service_code``,
        ``score`` and ``hit`` (whether it is the hidden service).
    neighbors : DataFrame
        The neighbours used, as :func:`nearest_neighbors` returns them.
    k : int
    min_similarity : float
    top_n : int
    """

    summary: pd.DataFrame
    per_patient: pd.DataFrame
    recommendations: pd.DataFrame
    neighbors: pd.DataFrame
    k: int
    min_similarity: float
    top_n: int


def evaluate(
    vectors: NoteVectors,
    received: pd.DataFrame,
    catalogue: pd.DataFrame,
    *,
    k: int = 10,
    min_similarity: float = 0.1,
    top_n: int = 5,
    hide: str = "random",
    seed: int = 2026,
    progress: bool | None = None,
) -> Evaluation:
    """Hide one received service per patient and check whether it is recommended.

    For each patient with a note and at least one service, one service is
    hidden: chosen at random, or the latest one received. Recommendations are
    then made from everyone's remaining services, and a hit is a hidden service
    among the patient's top_n. The baseline recommends the services that most
    patients received, in order of popularity (ties to the lower code), skipping
    those the patient has. Patients without a service are skipped, and counted
    in a log message.

    Parameters
    ----------
    vectors : NoteVectors
        From :func:`vectorize_notes`.
    received : DataFrame
        Services received, with ``patient_id`` and ``service_code``.
    catalogue : DataFrame
        The service catalogue. Coverage is a share of its services.
    k : int, default=10
        Neighbours per patient.
    min_similarity : float, default=0.1
        Neighbours must be more similar than this.
    top_n : int, default=5
        Length of each list. Hit rate and precision are "at top_n".
    hide : {"random", "latest"}, default="random"
        Which service to hide: one at random, or the one with the latest
        ``received_date`` (ISO dates, ties to the lower code). Hiding the latest
        tests whether the recommender finds the service that came next.
    seed : int, default=2026
        Seed of the random choice of the hidden services.
    progress : bool, optional
        Show a progress bar during the neighbour search, by default for more
        than 10,240 patients.

    Returns
    -------
    Evaluation

    Raises
    ------
    PersonalizeError
        If no patient with a note has received a service, ``hide`` is unknown,
        or a ``received_date`` is not an ISO date.
    NeighborCountError, UnknownServiceError, MissingColumnError
        As for :func:`recommend`.
    """
    check_search(vectors, k, min_similarity, chunk_size=1)
    _check_top_n(top_n)
    if hide not in HIDE_CHOICES:
        raise PersonalizeError(f"hide must be 'random' or 'latest', but got {hide!r}.")
    codes = _services.service_codes(received, catalogue)
    services = _services.service_matrix(received, codes, vectors.patient_ids)
    counts = np.diff(services.indptr)
    rows = np.flatnonzero(counts > 0)
    if len(rows) == 0:
        raise PersonalizeError(
            f"None of the {len(vectors)} patients with a note has received a "
            "service, so there is nothing to hide and recommend. Check that the "
            "patient IDs of the services match those of the notes."
        )
    skipped = len(vectors) - len(rows)
    if skipped:
        logger.info("Skipped %s who received no service", counted(skipped, "patient"))

    hidden = _hidden_services(
        services, rows, vectors.patient_ids[rows], received, codes, hide, seed
    )
    training = services - sp.csr_matrix(
        (np.ones(len(rows)), (rows, hidden)), shape=services.shape
    )
    training.eliminate_zeros()

    indices, similarities = top_k(
        vectors.matrix,
        k,
        queries=rows,
        min_similarity=min_similarity,
        progress=progress,
    )
    scores = _services.neighbor_scores(indices, similarities, training)
    columns, chosen = _services.top_services(scores, training[rows], top_n)
    popularity = np.asarray(training.sum(axis=0)).ravel()
    popular, _ = _services.top_services(
        np.tile(popularity + 1.0, (len(rows), 1)), training[rows], top_n
    )

    per_patient = pd.DataFrame(
        {
            "patient_id": vectors.patient_ids[rows],
            "hidden": codes[hidden],
            "rank": _rank_of(columns, hidden),
            "baseline_rank": _rank_of(popular, hidden),
        }
    )
    summary = pd.DataFrame(
        [
            _metrics(per_patient["rank"], columns, top_n, len(codes)),
            _metrics(per_patient["baseline_rank"], popular, top_n, len(codes)),
        ],
        index=pd.Index(["similar patients", "most popular"], name="method"),
    )
    return Evaluation(
        summary=summary,
        per_patient=per_patient,
        recommendations=_list_frame(vectors, rows, columns, chosen, codes, hidden),
        neighbors=neighbor_frame(vectors, rows, indices, similarities),
        k=k,
        min_similarity=min_similarity,
        top_n=top_n,
    )


def _hidden_services(
    services: sp.csr_matrix,
    rows: np.ndarray,
    patient_ids: pd.Index,
    received: pd.DataFrame,
    codes: pd.Index,
    hide: str,
    seed: int,
) -> np.ndarray:
    """Return the service column to hide for each of ``rows``.

    ``patient_ids`` are the IDs of ``rows``, each with at least one service.
    """
    if hide == "random":
        rng = np.random.default_rng(seed)
        counts = np.diff(services.indptr)[rows]
        picks = services.indptr[rows] + (rng.random(len(rows)) * counts).astype(int)
        return services.indices[picks]

    if "received_date" not in received.columns:
        raise MissingColumnError(
            "hide='latest' needs the column 'received_date' in the received "
            "services. Add it or use hide='random'.",
            column="received_date",
        )
    dates = pd.to_datetime(received["received_date"], format="ISO8601", errors="coerce")
    if dates.isna().any():
        position = int(np.flatnonzero(dates.isna())[0])
        value = received["received_date"].iloc[position]
        raise PersonalizeError(
            f"received_date {value!r} in row {position + 2} is not an ISO date "
            "(YYYY-MM-DD). Correct it or use hide='random'."
        )
    latest = pd.DataFrame(
        {
            "patient_id": received["patient_id"].astype(str).to_numpy(),
            "service_code": received["service_code"].astype(str).to_numpy(),
            "date": dates.to_numpy(),
        }
    ).sort_values(["date", "service_code"], ascending=[False, True], kind="stable")
    latest = latest.drop_duplicates("patient_id").set_index("patient_id")
    return codes.get_indexer(latest["service_code"].reindex(patient_ids))


def _check_top_n(top_n: int) -> None:
    if not isinstance(top_n, int | np.integer) or top_n < 1:
        raise PersonalizeError(
            f"top_n must be a whole number of at least 1, but got {top_n!r}."
        )


def _top_shared_terms(
    vectors: NoteVectors, row: int, supporters: np.ndarray, top: int = 5
) -> list[str]:
    # Contributions to the similarity, summed over the supporting neighbours.
    patient = vectors.matrix[row]
    summed = np.asarray(vectors.matrix[supporters].multiply(patient).sum(axis=0))
    summed = summed.ravel()
    order = np.lexsort((vectors.terms, -summed))[:top]
    return [str(vectors.terms[i]) for i in order if summed[i] > 0]


def _reason(weights: np.ndarray, n_neighbors: int, terms: list[str]) -> str:
    low, high = f"{weights.min():.2f}", f"{weights.max():.2f}"
    similarity = low if low == high else f"{low} to {high}"
    supporters = (
        "the only similar patient"
        if n_neighbors == 1
        else f"{len(weights)} of {n_neighbors} similar patients"
    )
    return (
        f"Received by {supporters} "
        f"(similarity {similarity}). Shared terms: {', '.join(terms)}."
    )


def _recommendation_frame(
    records: list[dict], catalogue: pd.DataFrame | None
) -> pd.DataFrame:
    columns = [
        "rank",
        "service_code",
        "score",
        "neighbors",
        "neighbor_ids",
        "similarities",
        "shared_terms",
        "reason",
    ]
    frame = pd.DataFrame(records, columns=columns)
    if catalogue is None:
        return frame
    extra = catalogue.drop_duplicates("service_code").astype({"service_code": str})
    extra = extra.set_index("service_code")
    details = extra.reindex(frame["service_code"]).reset_index(drop=True)
    return pd.concat(
        [frame[["rank", "service_code"]], details, frame[columns[2:]]], axis=1
    )


def _rank_of(columns: np.ndarray, hidden: np.ndarray) -> pd.Series:
    match = columns == hidden[:, None]
    rank = np.where(match.any(axis=1), match.argmax(axis=1) + 1, 0)
    return pd.Series(rank, dtype="Int64").mask(rank == 0)


def _metrics(rank: pd.Series, columns: np.ndarray, top_n: int, n_services: int) -> dict:
    hits = rank.notna().to_numpy()
    listed = np.unique(columns[columns >= 0])
    return {
        "hit_rate": float(hits.mean()),
        "precision": float(hits.mean() / top_n),
        "coverage": len(listed) / n_services,
        "patients": len(hits),
    }


def _list_frame(
    vectors: NoteVectors,
    rows: np.ndarray,
    columns: np.ndarray,
    chosen: np.ndarray,
    codes: pd.Index,
    hidden: np.ndarray,
) -> pd.DataFrame:
    present = columns >= 0
    query, rank = np.nonzero(present)
    return pd.DataFrame(
        {
            "patient_id": vectors.patient_ids[rows[query]],
            "rank": rank + 1,
            "service_code": codes[columns[present]],
            "score": chosen[present],
            "hit": columns[present] == hidden[query],
        }
    )
