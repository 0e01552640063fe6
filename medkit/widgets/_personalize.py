"""Widgets of the personalization lesson: the recommender and its parts."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

import pandas as pd

_LATIN_TERM = re.compile(r"[a-z0-9]+")


def highlight_terms(text: str, terms: Iterable[str]) -> str:
    """Render a note as HTML with every occurrence of the given terms marked.

    English terms match whole words in any case. Chinese terms, which are
    character bigrams, match anywhere, and overlapping matches merge into one
    mark. The text is HTML-escaped.

    Parameters
    ----------
    text : str
        The note, with abbreviations already written out if the terms came from
        :func:`medkit.personalize.tokenize`.
    terms : iterable of str
        Tokens to mark, such as those of :func:`medkit.personalize.shared_terms`.

    Returns
    -------
    str
        HTML in which each match is wrapped in ``<mark>``.

    Examples
    --------
    >>> highlight_terms("Fever and cough; 咳嗽三天", ["fever", "咳嗽"])
    '<mark>Fever</mark> and cough; <mark>咳嗽</mark>三天'
    """
    spans = []
    for term in set(terms):
        if _LATIN_TERM.fullmatch(term):
            pattern = rf"(?<![a-z0-9]){re.escape(term)}(?![a-z0-9])"
            found = re.finditer(pattern, text, flags=re.IGNORECASE)
        else:
            found = re.finditer(re.escape(term), text)
        spans.extend(match.span() for match in found)

    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])

    parts, last = [], 0
    for start, end in merged:
        parts.append(html.escape(text[last:start]))
        parts.append(f"<mark>{html.escape(text[start:end])}</mark>")
        last = end
    parts.append(html.escape(text[last:]))
    return "".join(parts)


def recommendation_view(
    vectors,
    received: pd.DataFrame,
    patient_id: str,
    *,
    catalogue: pd.DataFrame | None = None,
    k: int = 10,
    min_similarity: float = 0.1,
    top_n: int = 5,
) -> str:
    """Render a patient's neighbours and recommendations as HTML.

    The view shows the patient's note, a table of neighbours whose notes mark
    the terms shared with the patient, and the recommended services with their
    scores and reasons. Notes are shown with abbreviations written out, so that
    every shared term can be marked.

    Parameters
    ----------
    vectors : medkit.personalize.NoteVectors
        From :func:`medkit.personalize.vectorize_notes`.
    received : DataFrame
        Services received, with ``patient_id`` and ``service_code``.
    patient_id : str
        The patient to show.
    catalogue : DataFrame, optional
        The service catalogue, for service names.
    k : int, default=10
        Neighbours to find.
    min_similarity : float, default=0.1
        Neighbours must be more similar than this.
    top_n : int, default=5
        Maximum number of services recommended.

    Returns
    -------
    str
        HTML for an ``ipywidgets.HTML``.

    Raises
    ------
    UnknownPatientError, NeighborCountError
        As :func:`medkit.personalize.recommend` raises them.
    """
    from medkit import personalize

    neighbors = personalize.nearest_neighbors(
        vectors, patient_id, k=k, min_similarity=min_similarity
    )
    recommendations = personalize.recommend(
        vectors,
        received,
        patient_id,
        catalogue=catalogue,
        k=k,
        min_similarity=min_similarity,
        top_n=top_n,
    )
    had = received.loc[received["patient_id"] == patient_id, "service_code"]
    note = personalize.expand_abbreviations(vectors.texts[patient_id])

    shared_all: set[str] = set()
    rows = []
    for neighbor in neighbors.itertuples():
        terms = personalize.shared_terms(
            vectors, patient_id, neighbor.neighbor_id, top=None
        )
        shared_all.update(terms["term"])
        other = personalize.expand_abbreviations(vectors.texts[neighbor.neighbor_id])
        rows.append(
            f"<tr><td>{neighbor.rank}</td><td>{html.escape(neighbor.neighbor_id)}</td>"
            f"<td>{neighbor.similarity:.2f}</td>"
            f"<td>{highlight_terms(other, terms['term'])}</td></tr>"
        )

    parts = [
        f"<h4>Patient {html.escape(patient_id)}</h4>",
        f"<p>{highlight_terms(note, shared_all)}</p>",
        "<p>Services received: "
        + (html.escape(", ".join(sorted(had))) if len(had) else "none yet")
        + "</p>",
        f"<h4>Similar patients: {len(neighbors)} with similarity above "
        f"{min_similarity:.2f}</h4>",
    ]
    if rows:
        parts.append(
            "<table><tr><th>rank</th><th>patient</th><th>similarity</th>"
            "<th>note, shared terms marked</th></tr>" + "".join(rows) + "</table>"
        )
    else:
        parts.append(
            "<p>No patient is similar enough. Lower the minimum similarity.</p>"
        )
    parts.append("<h4>Recommended services</h4>")
    parts.append(_recommendation_table(recommendations))
    return "\n".join(parts)


def _recommendation_table(recommendations: pd.DataFrame) -> str:
    if recommendations.empty:
        return "<p>No service to recommend.</p>"
    rows = []
    for item in recommendations.to_dict("records"):
        name = item.get("name_en", "")
        rows.append(
            f"<tr><td>{item['rank']}</td><td>{html.escape(item['service_code'])}</td>"
            f"<td>{html.escape(str(name))}</td><td>{item['score']:.2f}</td>"
            f"<td>{html.escape(item['reason'])}</td></tr>"
        )
    return (
        "<table><tr><th>rank</th><th>code</th><th>service</th><th>score</th>"
        "<th>why</th></tr>" + "".join(rows) + "</table>"
    )


def recommender(
    vectors,
    received: pd.DataFrame,
    catalogue: pd.DataFrame | None = None,
    *,
    patient_ids: Iterable[str] | None = None,
    k: int = 10,
    min_similarity: float = 0.1,
):
    """Build a widget that recommends services to a chosen patient.

    Choose a patient, the number of neighbours k and the minimum similarity.
    The view shows the neighbours with their shared terms marked, and the
    recommended services with their reasons. The notes are vectorized before
    the call, so each change only queries the vectors.

    Parameters
    ----------
    vectors : medkit.personalize.NoteVectors
        From :func:`medkit.personalize.vectorize_notes`.
    received : DataFrame
        Services received, with ``patient_id`` and ``service_code``.
    catalogue : DataFrame, optional
        The service catalogue, for service names.
    patient_ids : iterable of str, optional
        Patients to offer in the list. All patients with usable notes by default.
    k : int, default=10
        Initial number of neighbours, from 1 to 30.
    min_similarity : float, default=0.1
        Initial minimum similarity.

    Returns
    -------
    ipywidgets.VBox
        Controls on top, the view below.
    """
    import ipywidgets as widgets

    if patient_ids is None:
        patient_ids = vectors.patient_ids.difference(vectors.blank, sort=False)
    options = list(patient_ids)
    patient = widgets.Dropdown(options=options, description="Patient:")
    neighbours = widgets.IntSlider(
        value=k, min=1, max=min(30, len(vectors) - 1), description="k:"
    )
    minimum = widgets.FloatSlider(
        value=min_similarity,
        min=0.0,
        max=0.95,
        step=0.05,
        description="Min. similarity:",
        style={"description_width": "initial"},
    )
    view = widgets.HTML()

    def refresh(_change: object = None) -> None:
        view.value = recommendation_view(
            vectors,
            received,
            patient.value,
            catalogue=catalogue,
            k=neighbours.value,
            min_similarity=minimum.value,
        )

    for control in (patient, neighbours, minimum):
        control.observe(refresh, names="value")
    refresh()
    return widgets.VBox([widgets.HBox([patient, neighbours, minimum]), view])
