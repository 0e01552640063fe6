"""The recommender of the personalization lesson, driven without a browser."""

from __future__ import annotations

import pandas as pd
import pytest

from medkit import personalize, widgets

NOTES = pd.Series(
    {
        "000001": "Fever and productive cough. h/o asthma.",
        "000002": "Fever, cough & SOB. History of asthma.",
        "000003": "Knee pain and stiffness.",
        "000004": "因咳嗽、发热入院。",
        "000005": "发热三天，伴咳嗽。",
    }
)
RECEIVED = pd.DataFrame(
    {
        "patient_id": ["000001", "000002", "000002", "000003", "000005"],
        "service_code": ["S012", "S012", "S011", "S015", "S012"],
    }
)
CATALOGUE = pd.DataFrame(
    {
        "service_code": ["S011", "S012", "S015"],
        "name_en": ["Smoking cessation counselling", "Vaccination", "Physiotherapy"],
    }
)


@pytest.fixture(scope="module")
def vectors() -> personalize.NoteVectors:
    return personalize.vectorize_notes(NOTES)


@pytest.mark.parametrize(
    ("text", "terms", "expected"),
    [
        ("Pain, painful knee", ["pain"], "<mark>Pain</mark>, painful knee"),
        ("因咳嗽发热", ["咳嗽", "嗽发", "发热"], "因<mark>咳嗽发热</mark>"),
        ("a <b> fever", ["fever"], "a &lt;b&gt; <mark>fever</mark>"),
        ("no match", [], "no match"),
    ],
    ids=["whole_words_any_case", "bigrams_merge", "escapes_html", "no_terms"],
)
def test_highlight_terms_cases(text: str, terms: list[str], expected: str) -> None:
    assert widgets.highlight_terms(text, terms) == expected


def test_recommendation_view_lists_neighbours_and_services(vectors) -> None:
    html = widgets.recommendation_view(
        vectors, RECEIVED, "000001", catalogue=CATALOGUE, k=2
    )

    assert "<h4>Patient 000001</h4>" in html
    assert "<h4>Similar patients: 1 with similarity above 0.10</h4>" in html
    assert "<td>000002</td>" in html
    # The abbreviation SOB is written out, and shared terms are marked.
    assert "shortness of breath" in html
    assert "<mark>asthma</mark>" in html
    assert "<td>S011</td><td>Smoking cessation counselling</td>" in html
    assert "Services received: S012" in html


def test_recommendation_view_no_neighbour(vectors) -> None:
    html = widgets.recommendation_view(vectors, RECEIVED, "000003", k=2)

    assert "<h4>Similar patients: 0 with" in html
    assert "No patient is similar enough. Lower the minimum similarity." in html
    assert "No service to recommend." in html


def test_recommendation_view_patient_without_services(vectors) -> None:
    html = widgets.recommendation_view(vectors, RECEIVED, "000004", k=2)

    assert "Services received: none yet" in html
    assert "<mark>咳嗽</mark>" in html
    assert "<td>S012</td>" in html


def test_recommender_controls_update_view(vectors) -> None:
    view = widgets.recommender(vectors, RECEIVED, CATALOGUE, k=2)
    controls, html = view.children
    patient, k, minimum = controls.children

    assert patient.value == "000001"
    first = html.value
    patient.value = "000004"
    assert "<h4>Patient 000004</h4>" in html.value
    assert html.value != first

    minimum.value = 0.9
    assert "<h4>Similar patients: 0 with similarity above 0.90</h4>" in html.value
    minimum.value = 0.0
    k.value = 1
    assert "<h4>Similar patients: 1 with similarity above 0.00</h4>" in html.value
    assert k.max == 4


def test_recommender_offers_patients_with_text() -> None:
    notes = pd.concat([NOTES, pd.Series({"000006": "  "})])
    vectors = personalize.vectorize_notes(notes)

    view = widgets.recommender(vectors, RECEIVED)

    patient = view.children[0].children[0]
    assert "000006" not in patient.options
    assert len(patient.options) == 5
