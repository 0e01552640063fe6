"""Note vectors and the exact nearest-neighbour search of stage 4.

See :mod:`medkit.personalize` for the tokens, their limits and the whole pipeline.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from medkit._neighbors import top_k
from medkit._text import counted, tokenize
from medkit.exceptions import (
    MissingColumnError,
    NeighborCountError,
    NoteTextError,
    PersonalizeError,
    UnknownPatientError,
)

logger = logging.getLogger(__name__)

NEIGHBOR_COLUMNS = ["patient_id", "rank", "neighbor_id", "similarity"]
# Largest group for which similarity_matrix builds a dense matrix.
MAX_MATRIX_PATIENTS = 500


@dataclass(frozen=True)
class NoteVectors:
    """TF-IDF vectors of the patients' notes, one row per patient.

    Attributes
    ----------
    patient_ids : pandas.Index
        Patient IDs as text, in the order of the rows.
    matrix : scipy.sparse.csr_matrix, shape (n_patients, n_terms)
        Rows of unit length, or all zero for a patient whose notes have no usable
        text. The cosine similarity of two patients is the dot product of rows.
    terms : numpy.ndarray of str, shape (n_terms,)
        The token of each column.
    texts : pandas.Series
        Each patient's notes as one text, indexed by patient ID.
    vectorizer : sklearn.feature_extraction.text.TfidfVectorizer
        The fitted vectorizer, whose ``transform`` vectorizes new notes.
    """

    patient_ids: pd.Index
    matrix: sp.csr_matrix
    terms: np.ndarray
    texts: pd.Series
    vectorizer: TfidfVectorizer

    def __len__(self) -> int:
        return len(self.patient_ids)

    @property
    def blank(self) -> pd.Index:
        """Patients whose notes have no usable text, so they have no neighbours."""
        return self.patient_ids[self.matrix.getnnz(axis=1) == 0]

    def position(self, patient_id: str) -> int:
        """Return the row of a patient.

        Raises
        ------
        UnknownPatientError
            If the patient has no note.
        """
        position = self.patient_ids.get_indexer([str(patient_id)])[0]
        if position < 0:
            raise _unknown_patient(patient_id, self.patient_ids)
        return int(position)


def vectorize_notes(
    notes: pd.DataFrame | pd.Series,
    *,
    id_column: str = "patient_id",
    text_column: str = "text",
) -> NoteVectors:
    """Vectorize clinical notes in English and Chinese with TF-IDF, one row per patient.

    A patient's notes are joined into one text. Tokens come from :func:`tokenize`
    (words for English, character bigrams for Chinese, abbreviations expanded,
    stop words removed). :mod:`medkit.personalize` explains the choice and its
    limits.

    Parameters
    ----------
    notes : DataFrame or Series
        A table with a patient ID and a text column, such as
        ``medkit.datasets.load_raw("notes")``, or a Series of texts indexed by
        patient ID. Missing texts count as empty.
    id_column : str, default="patient_id"
        Column of patient IDs, read as text.
    text_column : str, default="text"
        Column of note texts.

    Returns
    -------
    NoteVectors
        The vectors, terms and texts, in order of each patient's first note.

    Raises
    ------
    MissingColumnError
        If ``notes`` lacks ``id_column`` or ``text_column``.
    NoteTextError
        If there are no notes, or none has usable text: all are empty, blank or
        made only of stop words. A patient whose notes alone are unusable gets
        an all-zero row, a logged warning, and never any neighbour.

    Examples
    --------
    >>> notes = pd.DataFrame(
    ...     {"patient_id": ["1", "2"], "text": ["因咳嗽、发热入院", "发热，咳嗽，头痛"]}
    ... )
    >>> vectors = vectorize_notes(notes)
    >>> list(vectors.terms)
    ['发热', '咳嗽', '头痛']
    """
    texts = _texts_by_patient(notes, id_column, text_column)
    if texts.empty:
        raise NoteTextError(
            "No notes given. Pass a table with one row per note and the columns "
            f"{id_column!r} and {text_column!r}."
        )
    if not any(tokenize(text) for text in texts):
        raise NoteTextError(
            f"None of the notes of {counted(len(texts), 'patient')} has usable "
            "text: each is "
            "empty, blank or made only of stop words such as 'patient' or '患者'. "
            f"Check that {text_column!r} is the column with the note text."
        )

    vectorizer = TfidfVectorizer(analyzer=tokenize, sublinear_tf=True, dtype=np.float64)
    matrix = sp.csr_matrix(vectorizer.fit_transform(texts.to_list()))
    vectors = NoteVectors(
        patient_ids=pd.Index(texts.index, name="patient_id"),
        matrix=matrix,
        terms=vectorizer.get_feature_names_out(),
        texts=texts,
        vectorizer=vectorizer,
    )
    if len(vectors.blank):
        logger.warning(
            "%d of %d patients %s notes without usable text, so they get no "
            "neighbours and are nobody's neighbour",
            len(vectors.blank),
            len(vectors),
            "has" if len(vectors.blank) == 1 else "have",
        )
    logger.info("Vectorized the notes of %d patients into %d terms", *matrix.shape)
    return vectors


def nearest_neighbors(
    vectors: NoteVectors,
    patient_ids: str | Iterable[str] | None = None,
    *,
    k: int = 10,
    min_similarity: float = 0.0,
    chunk_size: int = 512,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Find the k most similar other patients by cosine similarity of their notes.

    The search is exact and runs a chunk of patients at a time. It scores only
    the patients that could enter a chunk's top k, in blocks of at most 2**22
    similarities (32 MiB), and never builds an N x N matrix. A patient is never its
    own neighbour. Ties go to the patient that comes first in ``vectors``.

    Parameters
    ----------
    vectors : NoteVectors
        From :func:`vectorize_notes`.
    patient_ids : str, int or iterable of str, optional
        The patients to find neighbours for, or one patient. All patients by
        default. A number is looked up as text, such as 9 as "9".
    k : int, default=10
        Neighbours per patient, from 1 to the number of other patients.
    min_similarity : float, default=0.0
        Keep only neighbours whose similarity is above this, from 0 to 1. A
        patient may therefore get fewer than k neighbours, or none.
    chunk_size : int, default=512
        Patients searched together. Larger chunks use more memory.
    progress : bool, optional
        Show a progress bar. By default it is shown for searches of more than
        20 chunks (10,240 patients with the default ``chunk_size``).

    Returns
    -------
    DataFrame
        Columns ``patient_id``, ``rank`` (1 is the most similar),
        ``neighbor_id`` and ``similarity`` (cosine, 0 to 1), in the order of
        ``patient_ids``, then by rank.

    Raises
    ------
    UnknownPatientError
        If a patient ID has no note.
    NeighborCountError
        If there is only one patient, or ``k`` is below 1 or larger than the
        number of other patients.
    PersonalizeError
        If ``patient_ids`` is neither an ID nor an iterable of IDs,
        ``min_similarity`` is outside [0, 1) or ``chunk_size`` is below 1.

    Examples
    --------
    >>> notes = pd.Series(
    ...     ["cough and fever", "fever and cough", "knee pain"], index=["1", "2", "3"]
    ... )
    >>> nearest_neighbors(vectorize_notes(notes), "1", k=2)
      patient_id  rank neighbor_id  similarity
    0          1     1           2         1.0
    """
    # An unknown patient is the likelier mistake, so it is reported before k.
    rows = rows_of(vectors, patient_ids)
    check_search(vectors, k, min_similarity, chunk_size)
    indices, similarities = top_k(
        vectors.matrix,
        k,
        queries=rows,
        min_similarity=min_similarity,
        chunk_size=chunk_size,
        progress=progress,
    )
    return neighbor_frame(vectors, rows, indices, similarities)


def similarity_matrix(vectors: NoteVectors, patient_ids: Iterable[str]) -> pd.DataFrame:
    """Return the cosine similarities between every pair of a small group.

    Parameters
    ----------
    vectors : NoteVectors
        From :func:`vectorize_notes`.
    patient_ids : iterable of str
        At most MAX_MATRIX_PATIENTS (500) patients.

    Returns
    -------
    DataFrame
        Square, indexed and labelled by patient ID, with 1.0 on the diagonal except
        for patients without usable text, whose rows are 0.

    Raises
    ------
    UnknownPatientError
        If a patient ID has no note.
    PersonalizeError
        If the group is larger than MAX_MATRIX_PATIENTS.
    """
    rows = rows_of(vectors, patient_ids)
    if len(rows) > MAX_MATRIX_PATIENTS:
        raise PersonalizeError(
            f"A similarity matrix of {len(rows)} patients is too large to show. "
            f"Choose at most {MAX_MATRIX_PATIENTS}, or use nearest_neighbors, which "
            "never builds the full matrix."
        )
    group = vectors.matrix[rows]
    ids = vectors.patient_ids[rows]
    return pd.DataFrame((group @ group.T).toarray(), index=ids, columns=ids)


def shared_terms(
    vectors: NoteVectors, patient_id: str, other_id: str, top: int | None = 5
) -> pd.DataFrame:
    """List the terms two patients share, by how much each adds to their similarity.

    Parameters
    ----------
    vectors : NoteVectors
        From :func:`vectorize_notes`.
    patient_id, other_id : str
        The two patients.
    top : int or None, default=5
        How many terms to return, or all shared terms when None.

    Returns
    -------
    DataFrame
        Columns ``term`` and ``contribution`` (the product of the two weights),
        largest first, ties in term order. All contributions add up to the
        cosine similarity of the two patients.

    Raises
    ------
    UnknownPatientError
        If either patient has no note.
    """
    first = vectors.matrix[vectors.position(patient_id)]
    second = vectors.matrix[vectors.position(other_id)]
    product = first.multiply(second).tocsr()
    frame = pd.DataFrame(
        {"term": vectors.terms[product.indices], "contribution": product.data}
    )
    frame = frame.sort_values(
        ["contribution", "term"], ascending=[False, True], kind="stable"
    )
    return (
        frame.head(top).reset_index(drop=True) if top else frame.reset_index(drop=True)
    )


def _texts_by_patient(
    notes: pd.DataFrame | pd.Series, id_column: str, text_column: str
) -> pd.Series:
    if isinstance(notes, pd.Series):
        frame = pd.DataFrame({id_column: notes.index, text_column: notes.to_numpy()})
    else:
        frame = notes
        for column in (id_column, text_column):
            if column not in frame.columns:
                raise MissingColumnError(
                    f"The notes table has no column {column!r}. Expected the columns "
                    f"{id_column!r} and {text_column!r} (found "
                    f"{', '.join(map(str, frame.columns)) or 'none'}).",
                    column=column,
                )
    ids = frame[id_column].astype(str).to_numpy()
    texts = frame[text_column].fillna("").astype(str).to_numpy()
    joined = pd.Series(texts, index=ids).groupby(level=0, sort=False).agg("\n".join)
    joined.index.name = "patient_id"
    return joined.rename("text")


def _unknown_patient(patient_id: object, known: pd.Index) -> UnknownPatientError:
    message = f"Patient {patient_id!r} not found among the "
    message += f"{counted(len(known), 'patient')} with notes."
    padded = str(patient_id).strip().zfill(6)
    if padded != str(patient_id) and padded in known:
        message += f" Did you mean {padded!r}? Patient IDs are text with leading zeros."
    return UnknownPatientError(message, patient_id=patient_id)


def rows_of(
    vectors: NoteVectors, patient_ids: str | Iterable[str] | None
) -> np.ndarray:
    """Return the rows of the given patients, or of all when None.

    A single ID may be a string or a number. A number is looked up as text, so
    an unknown one raises UnknownPatientError with a hint about leading zeros.
    """
    if patient_ids is None:
        return np.arange(len(vectors))
    if isinstance(patient_ids, str | numbers.Number):
        patient_ids = [patient_ids]
    if not isinstance(patient_ids, Iterable):
        raise PersonalizeError(
            f"patient_ids must be a patient ID or a list of patient IDs, but got "
            f"{type(patient_ids).__name__} {patient_ids!r}."
        )
    return np.array([vectors.position(pid) for pid in patient_ids], dtype=np.int64)


def check_search(
    vectors: NoteVectors, k: int, min_similarity: float, chunk_size: int
) -> None:
    """Raise NeighborCountError or PersonalizeError for unusable search settings."""
    others = len(vectors) - 1
    if others == 0:
        raise NeighborCountError(
            f"The notes cover only one patient ({vectors.patient_ids[0]!r}), but "
            "finding similar patients needs at least two.",
            k=k,
            available=0,
        )
    if not isinstance(k, int | np.integer) or k < 1:
        raise NeighborCountError(
            f"k must be a whole number of at least 1, but got {k!r}.",
            k=k,
            available=others,
        )
    if k > others:
        raise NeighborCountError(
            f"k={k} is larger than the {counted(others, 'other patient')}. Choose k "
            f"of at most {others}.",
            k=k,
            available=others,
        )
    if not 0 <= min_similarity < 1:
        raise PersonalizeError(
            f"min_similarity must be at least 0 and below 1, but got "
            f"{min_similarity!r}."
        )
    if chunk_size < 1:
        raise PersonalizeError(
            f"chunk_size must be at least 1, but got {chunk_size!r}."
        )


def neighbor_frame(
    vectors: NoteVectors,
    rows: np.ndarray,
    indices: np.ndarray,
    similarities: np.ndarray,
) -> pd.DataFrame:
    """Turn the arrays of ``top_k`` into a table with one row per neighbour."""
    present = indices >= 0
    query, rank = np.nonzero(present)
    return pd.DataFrame(
        {
            "patient_id": vectors.patient_ids[rows[query]],
            "rank": rank + 1,
            "neighbor_id": vectors.patient_ids[indices[present]],
            "similarity": similarities[present],
        },
        columns=NEIGHBOR_COLUMNS,
    )
