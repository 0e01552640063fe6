"""Figures of stage 4: a similarity heatmap and the distributions of scores."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from medkit._fonts import use_cjk_fallback

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from medkit.personalize import Evaluation, NoteVectors


def plot_similarity_heatmap(
    vectors: NoteVectors,
    patient_ids: Iterable[str],
    *,
    labels: Mapping[str, str] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Draw the cosine similarities of a small group of patients as a heatmap.

    Parameters
    ----------
    vectors : NoteVectors
        From :func:`medkit.personalize.vectorize_notes`.
    patient_ids : iterable of str
        The group, at most 500 patients. 10 to 30 read best.
    labels : mapping of str to str, optional
        Text added to each patient ID on the axes, such as a diagnosis code.
    ax : matplotlib Axes, optional
        Where to draw. A new figure is made when omitted.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from medkit._note_vectors import similarity_matrix

    # Labels may be Chinese (diagnoses, departments), which matplotlib's default
    # font, DejaVu Sans, lacks.
    use_cjk_fallback()
    matrix = similarity_matrix(vectors, list(patient_ids))
    names = [
        f"{pid} {labels[pid]}" if labels and pid in labels else pid
        for pid in matrix.index
    ]
    if ax is None:
        size = 2.5 + 0.3 * len(names)
        _, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(matrix.to_numpy(), vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_title("Cosine similarity of the notes")
    ax.figure.colorbar(image, ax=ax, label="cosine similarity")
    ax.figure.tight_layout()
    return ax.figure


def plot_score_distributions(evaluation: Evaluation, *, axes=None) -> Figure:
    """Draw how similar the neighbours are, and the scores of hits and misses.

    The left panel shows the similarity of each patient's first and last (k-th)
    neighbour. The right panel shows the scores of the recommended services,
    split into the hidden services that were found (hits) and all others.

    Parameters
    ----------
    evaluation : Evaluation
        From :func:`medkit.personalize.evaluate`.
    axes : pair of matplotlib Axes, optional
        Where to draw. A new figure with two panels is made when omitted.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    use_cjk_fallback()
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    left, right = axes
    bins = np.linspace(0, 1, 21)

    neighbors = evaluation.neighbors
    for rank, name in ((1, "1st neighbour"), (evaluation.k, f"{evaluation.k}th")):
        values = neighbors.loc[neighbors["rank"] == rank, "similarity"]
        left.hist(values, bins=bins, alpha=0.6, label=f"{name} ({len(values)})")
    left.set_xlabel("cosine similarity")
    left.set_ylabel("patients")
    left.set_title("How similar are the neighbours?")
    left.legend()

    listed = evaluation.recommendations
    for hit, name in ((True, "hidden service (hit)"), (False, "other services")):
        values = listed.loc[listed["hit"] == hit, "score"]
        right.hist(values, bins=bins, alpha=0.6, density=True, label=f"{name}")
    right.set_xlabel("recommendation score")
    right.set_ylabel("density")
    right.set_title(f"Scores of the top {evaluation.top_n}")
    right.legend()
    right.figure.tight_layout()
    return right.figure
