"""Exact top-k cosine neighbours of sparse, L2-normalised rows, in chunks.

Query rows are processed a chunk at a time, so memory stays bounded by the chunk,
never by N x N. Most of the N rows cannot be among a query's top k, and a bound
proves which ones, so only the others are scored:

1. Similarities between the rows of a chunk give each row a threshold t, the
   k-th best similarity it already has (or ``min_similarity`` if higher).
2. Each row's terms are taken from the rarest up, until the weight left over has
   a norm below t. By the Cauchy-Schwarz inequality, a row that shares none of
   those prefix terms has a similarity below t (its own norm is at most 1), so it
   cannot enter the top k.
3. For a small group of rows of the chunk at a time, the rows that share a
   prefix term with any of them are scored exactly, with a dense product over
   the group's terms.

The result equals a brute-force search. Ordering queries by their heaviest term
makes the rows of a chunk alike, which keeps thresholds high and candidate sets
small.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

# Similarities are ranked after rounding to this grid (about 1e-9), so that two
# routes to the same cosine that differ in the last bits tie, and ties go to
# the lower row number.
_RANK_SCALE = float(1 << 30)
# Slack for rounding when the bound is compared with the threshold. It only
# makes candidate sets larger, never the result different.
_TOLERANCE = 1e-9
# More chunks than this show a progress bar unless the caller decides.
PROGRESS_CHUNKS = 20
# Rows of a chunk whose candidates are scored together. The union of the
# candidates of 64 alike rows is a few times smaller than that of 512.
_GROUP_SIZE = 64


def top_k(
    matrix: sp.csr_matrix,
    k: int,
    *,
    queries: np.ndarray | None = None,
    min_similarity: float = 0.0,
    chunk_size: int = 512,
    max_block: int = 1 << 22,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Find the k rows most similar to each query row, never the row itself.

    Parameters
    ----------
    matrix : scipy.sparse.csr_matrix, shape (n_rows, n_terms)
        Non-negative rows with an L2 norm of 1 or 0.
    k : int
        Neighbours per query, at least 1.
    queries : ndarray of int, optional
        Row numbers to search for. All rows by default.
    min_similarity : float, default=0.0
        Neighbours must have a cosine similarity above this.
    chunk_size : int, default=512
        Query rows whose similarities to each other set the thresholds.
    max_block : int, default=4,194,304
        Maximum entries of one dense block of similarities, and of one dense
        slab of candidate rows (32 MiB each in float64).
    progress : bool, optional
        Show a progress bar over the chunks. By default it is shown when there
        are more than PROGRESS_CHUNKS (20) chunks.

    Returns
    -------
    indices : ndarray of int64, shape (n_queries, k)
        Row numbers of the neighbours, most similar first, ties to the lower row
        number. -1 where a query has fewer than k neighbours.
    similarities : ndarray of float64, shape (n_queries, k)
        Their cosine similarities, and 0.0 where ``indices`` is -1.
    """
    search = _Search(sp.csr_matrix(matrix, dtype=np.float64), k, min_similarity)
    queries = np.arange(search.n_rows) if queries is None else np.asarray(queries)
    indices = np.full((len(queries), k), -1, dtype=np.int64)
    similarities = np.zeros((len(queries), k))

    # Alike queries in one chunk share candidates: order them by heaviest term.
    order = np.lexsort((queries, _heaviest_terms(search.matrix)[queries]))
    starts = range(0, len(queries), chunk_size)
    if progress is None:
        progress = len(starts) > PROGRESS_CHUNKS
    # The dense products have 64 rows, too few for BLAS threads to pay off. On 2
    # busy cores, BLAS threads took two to three times the CPU time of one thread
    # in the 100,000-note search of bench/personalize.py.
    with threadpool_limits(limits=1, user_api="blas"):
        for start in tqdm(
            starts, desc="neighbours", unit="chunk", disable=not progress
        ):
            positions = order[start : start + chunk_size]
            found, scores = search.chunk(queries[positions], max_block)
            indices[positions] = found
            similarities[positions] = scores
    return indices, similarities


class _Search:
    """The matrix, its inverted index and the settings of one top-k search."""

    def __init__(self, matrix: sp.csr_matrix, k: int, min_similarity: float) -> None:
        self.matrix = matrix
        self.n_rows = matrix.shape[0]
        self.k = k
        self.min_similarity = min_similarity
        # postings[t] lists the rows that contain term t.
        self.postings = matrix.T.tocsr()
        self.frequency = np.diff(self.postings.indptr)
        # Scratch map from a term to its column in the current dense slab.
        self.column_of_term = np.full(matrix.shape[1], -1, dtype=np.int64)

    def chunk(self, rows: np.ndarray, max_block: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the top k of each row of a chunk, as ``top_k`` does."""
        # Step 1: a threshold from the similarities within the chunk. A dense
        # product is faster, unless the chunk's terms make it too large.
        chunk = self.matrix[rows]
        terms = np.unique(chunk.indices)
        if len(rows) * len(terms) <= max_block:
            dense = self.dense_rows(rows, terms)
            inner = dense @ dense.T
        else:
            inner = (chunk @ chunk.T).toarray()
        np.fill_diagonal(inner, -np.inf)
        if len(rows) > self.k:
            threshold = np.partition(inner, -self.k, axis=1)[:, -self.k]
        else:
            threshold = np.full(len(rows), -np.inf)
        threshold = np.maximum(threshold, self.min_similarity)

        # Steps 2 and 3, a group of rows at a time.
        indices = np.full((len(rows), self.k), -1, dtype=np.int64)
        similarities = np.zeros((len(rows), self.k))
        for start in range(0, len(rows), _GROUP_SIZE):
            group = slice(start, start + _GROUP_SIZE)
            indices[group], similarities[group] = self.group(
                rows[group], threshold[group], max_block
            )
        return indices, similarities

    def group(
        self, rows: np.ndarray, threshold: np.ndarray, max_block: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Score the candidates of a few alike rows and keep the top k of each."""
        group = self.matrix[rows]
        terms = np.unique(group.indices)
        dense = self.dense_rows(rows, terms)
        candidates = self.candidates(group, threshold)
        best = _Best(len(rows), self.k)
        # Both the block and the dense slab of candidates stay within max_block.
        width = max(1, max_block // max(len(rows), len(terms), 1))
        for start in range(0, len(candidates), width):
            columns = candidates[start : start + width]
            block = dense @ self.dense_rows(columns, terms).T
            _exclude_self(block, rows, columns)
            keep = block >= (threshold - _TOLERANCE)[:, None]
            keep &= block > self.min_similarity
            query, position = np.nonzero(keep)
            best.add(query, columns[position], block[query, position])
        return best.result()

    def candidates(self, group: sp.csr_matrix, threshold: np.ndarray) -> np.ndarray:
        """Return the sorted rows that share a prefix term with a row of the group."""
        owner = np.repeat(np.arange(group.shape[0]), np.diff(group.indptr))
        # Within each row, most frequent term first: the running sum of squared
        # weights is then the weight left over if the prefix stopped before a term.
        order = np.lexsort((group.indices, -self.frequency[group.indices], owner))
        owner = owner[order]
        squared = np.cumsum(group.data[order] ** 2)
        before = np.concatenate(([0.0], squared))[np.searchsorted(owner, owner)]
        left_over = squared - before
        in_prefix = left_over >= threshold[owner] ** 2 * (1 - _TOLERANCE) - _TOLERANCE
        prefix_terms = np.unique(group.indices[order][in_prefix])
        if len(prefix_terms) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.unique(_gather(self.postings, prefix_terms)[1]).astype(np.int64)

    def dense_rows(self, rows: np.ndarray, terms: np.ndarray) -> np.ndarray:
        """Return ``matrix[rows][:, terms]`` as a dense array."""
        entries, columns = _gather(self.matrix, rows)
        owner = np.repeat(np.arange(len(rows)), np.diff(self.matrix.indptr)[rows])
        self.column_of_term[terms] = np.arange(len(terms))
        position = self.column_of_term[columns]
        self.column_of_term[terms] = -1
        found = position >= 0
        dense = np.zeros((len(rows), len(terms)))
        dense[owner[found], position[found]] = self.matrix.data[entries[found]]
        return dense


def _gather(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the positions and column indices of all entries of ``rows``."""
    starts = matrix.indptr[rows]
    lengths = matrix.indptr[rows + 1] - starts
    offsets = np.cumsum(lengths) - lengths
    entries = np.arange(lengths.sum()) - np.repeat(offsets - starts, lengths)
    return entries, matrix.indices[entries]


def _heaviest_terms(matrix: sp.csr_matrix) -> np.ndarray:
    """Return the column of each row's largest weight, or -1 for an empty row."""
    lengths = np.diff(matrix.indptr)
    owner = np.repeat(np.arange(matrix.shape[0]), lengths)
    # Sorting keeps each row's entries in its own index range, largest first.
    order = np.lexsort((matrix.indices, -matrix.data, owner))
    heaviest = np.full(matrix.shape[0], -1, dtype=np.int64)
    filled = lengths > 0
    heaviest[filled] = matrix.indices[order[matrix.indptr[:-1][filled]]]
    return heaviest


def _exclude_self(block: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> None:
    # columns is sorted, so each query row is found by binary search.
    position = np.minimum(np.searchsorted(columns, rows), len(columns) - 1)
    present = columns[position] == rows
    block[np.flatnonzero(present), position[present]] = -np.inf


class _Best:
    """The k best (similarity, row) pairs per query seen so far."""

    def __init__(self, n_queries: int, k: int) -> None:
        self.k = k
        self.n_queries = n_queries
        self.query = np.zeros(0, dtype=np.int64)
        self.rank = np.zeros(0, dtype=np.int64)
        self.row = np.zeros(0, dtype=np.int64)
        self.similarity = np.zeros(0)

    def add(self, query: np.ndarray, row: np.ndarray, similarity: np.ndarray) -> None:
        query = np.concatenate((self.query, query))
        row = np.concatenate((self.row, row))
        similarity = np.concatenate((self.similarity, similarity))
        rank_key = np.rint(similarity * _RANK_SCALE)
        order = np.lexsort((row, -rank_key, query))
        query, row, similarity = query[order], row[order], similarity[order]
        rank = np.arange(len(query)) - np.searchsorted(query, query)
        within_k = rank < self.k
        self.query, self.rank = query[within_k], rank[within_k]
        self.row, self.similarity = row[within_k], similarity[within_k]

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        indices = np.full((self.n_queries, self.k), -1, dtype=np.int64)
        similarities = np.zeros((self.n_queries, self.k))
        indices[self.query, self.rank] = self.row
        similarities[self.query, self.rank] = self.similarity
        return indices, similarities
