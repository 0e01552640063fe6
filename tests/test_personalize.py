"""Tests of medkit.personalize: tokens, vectors, neighbours, recommendations."""

from __future__ import annotations

import logging
import math
import subprocess
import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity
from sklearn.preprocessing import normalize

from medkit import datasets
from medkit._neighbors import top_k
from medkit._recommend import _reason
from medkit._text import counted
from medkit.exceptions import (
    MedkitError,
    MissingColumnError,
    NeighborCountError,
    NoteTextError,
    PersonalizeError,
    UnknownPatientError,
    UnknownServiceError,
)
from medkit.personalize import (
    NEIGHBOR_COLUMNS,
    NoteVectors,
    evaluate,
    expand_abbreviations,
    nearest_neighbors,
    plot_score_distributions,
    plot_similarity_heatmap,
    recommend,
    shared_terms,
    similarity_matrix,
    tokenize,
    vectorize_notes,
)

matplotlib.use("Agg")

# With n notes, TfidfVectorizer's smoothed IDF of a term in df of them is
# 1 + ln((1 + n) / (1 + df)). Each term below occurs once per note, so its
# sublinear term frequency is 1 and its weight is its IDF.
IDF_3_OF_2 = 1 + math.log(4 / 3)
IDF_3_OF_1 = 1 + math.log(4 / 2)

CATALOGUE = pd.DataFrame(
    {
        "service_code": [f"S{i}" for i in range(1, 7)],
        "name_en": ["one", "two", "three", "four", "five", "six"],
    }
)


def notes_of(*texts: str) -> pd.DataFrame:
    """Notes of patients P1, P2, ... with the given texts."""
    return pd.DataFrame(
        {
            "patient_id": [f"P{i}" for i in range(1, len(texts) + 1)],
            "text": list(texts),
        }
    )


def received_of(*rows: tuple[str, str, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["patient_id", "service_code", "received_date"])


@pytest.fixture
def three() -> NoteVectors:
    """Two notes about fever and cough and one about knee pain."""
    return vectorize_notes(notes_of("fever cough", "fever cough rash", "knee pain"))


@pytest.fixture(scope="module")
def hospital() -> tuple[NoteVectors, pd.DataFrame, pd.DataFrame]:
    """Vectors, services received and catalogue of the shipped dataset."""
    vectors = vectorize_notes(datasets.load_raw("notes"))
    return vectors, datasets.load_raw("patient_services"), datasets.load_raw("services")


def brute_force(matrix: sp.csr_matrix, k: int, min_similarity: float = 0.0):
    """Top-k by a dense all-pairs matrix: most similar first, ties to lower rows."""
    similarity = cosine_similarity(matrix)
    np.fill_diagonal(similarity, -np.inf)
    n_rows = similarity.shape[0]
    indices = np.full((n_rows, k), -1)
    for row in range(n_rows):
        rounded = np.round(similarity[row], 9)
        order = np.lexsort((np.arange(n_rows), -rounded))[:k]
        order = order[similarity[row, order] > min_similarity]
        indices[row, : len(order)] = order
    return indices


# tokenize and expand_abbreviations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SOB and HTN", "shortness of breath and hypertension"),
        ("h/o DM, f/u in clinic", "history of diabetes mellitus, follow-up in clinic"),
        ("T2DM on metformin", "type 2 diabetes mellitus on metformin"),
        ("HR 96, sleeps 8 hr", "heart rate 96, sleeps 8 hr"),
        ("SOBER", "SOBER"),
        ("慢阻肺，房颤", "慢性阻塞性肺疾病,心房颤动"),
        ("心房颤动", "心房颤动"),
        ("ＣＴ", "CT"),
    ],
    ids=[
        "words",
        "slash_forms",
        "longest_first",
        "case_sensitive",
        "whole_words_only",
        "chinese",
        "chinese_full_form_kept",
        "full_width",
    ],
)
def test_expand_abbreviations_cases(text: str, expected: str) -> None:
    assert expand_abbreviations(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("患者因咳嗽、发热入院", ["咳嗽", "发热"]),
        ("发热三天", ["发热", "热三", "三天"]),
        ("痛", ["痛"]),
        ("68-year-old woman with SOB", ["shortness", "breath"]),
        ("Patient admitted. 患者，男，68岁，入院", []),
        ("TSH升高，FT4降低", ["tsh", "升高", "ft4", "降低"]),
        ("HbA1c 9.1%, BP 150/90", ["hba1c", "blood", "pressure"]),
        ("", []),
    ],
    ids=[
        "chinese_stop_words",
        "chinese_bigrams",
        "single_character",
        "english",
        "only_stop_words",
        "latin_inside_chinese",
        "numbers_dropped",
        "empty",
    ],
)
def test_tokenize_cases(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


def test_tokenize_makes_chinese_notes_similar() -> None:
    notes = ["因咳嗽、发热入院", "发热三天，伴咳嗽"]

    default = TfidfVectorizer().fit_transform(notes)
    ours = vectorize_notes(pd.Series(notes, index=["a", "b"]))

    # Two shared terms with IDF 1 and three unshared with IDF 1 + ln(3/2).
    unshared = 1 + math.log(3 / 2)
    expected = 2 / (math.sqrt(2) * math.sqrt(2 + 3 * unshared**2))
    assert cosine_similarity(default)[0, 1] == 0.0
    assert similarity_matrix(ours, ["a", "b"]).loc["a", "b"] == pytest.approx(
        expected, abs=1e-12
    )
    assert expected == pytest.approx(0.502329, abs=1e-6)


# vectorize_notes


def test_vectorize_notes_hand_computed_weights(three: NoteVectors) -> None:
    assert list(three.patient_ids) == ["P1", "P2", "P3"]
    assert list(three.terms) == ["cough", "fever", "knee", "pain", "rash"]

    row = three.matrix[1].toarray().ravel()
    norm = math.sqrt(2 * IDF_3_OF_2**2 + IDF_3_OF_1**2)
    assert row == pytest.approx(
        [IDF_3_OF_2 / norm, IDF_3_OF_2 / norm, 0, 0, IDF_3_OF_1 / norm], abs=1e-12
    )


def test_vectorize_notes_joins_notes_of_a_patient() -> None:
    notes = pd.DataFrame(
        {"patient_id": ["7", "8", "7"], "text": ["fever", "knee pain", "cough"]}
    )

    vectors = vectorize_notes(notes)

    assert list(vectors.patient_ids) == ["7", "8"]
    assert vectors.texts["7"] == "fever\ncough"


def test_vectorize_notes_series_input() -> None:
    vectors = vectorize_notes(pd.Series(["fever", None], index=["1", "2"]))

    assert list(vectors.blank) == ["2"]


# nearest_neighbors, similarity_matrix, shared_terms


def test_similarity_matrix_hand_computed(three: NoteVectors) -> None:
    matrix = similarity_matrix(three, ["P1", "P2", "P3"])

    # P1 = (w, w), P2 = (w, w, v): cosine = 2w^2 / (sqrt(2) w sqrt(2w^2 + v^2)).
    expected = math.sqrt(2) * IDF_3_OF_2 / math.sqrt(2 * IDF_3_OF_2**2 + IDF_3_OF_1**2)
    assert matrix.loc["P1", "P2"] == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.732360, abs=1e-6)
    assert matrix.loc["P1", "P3"] == 0.0
    assert matrix.loc["P2", "P3"] == 0.0
    assert np.diag(matrix) == pytest.approx([1.0, 1.0, 1.0])


def test_nearest_neighbors_hand_computed(three: NoteVectors) -> None:
    neighbors = nearest_neighbors(three, k=2)

    assert list(neighbors.columns) == NEIGHBOR_COLUMNS
    assert neighbors[["patient_id", "rank", "neighbor_id"]].values.tolist() == [
        ["P1", 1, "P2"],
        ["P2", 1, "P1"],
    ]
    assert neighbors["similarity"].tolist() == pytest.approx([0.732360] * 2, abs=1e-6)


def test_nearest_neighbors_ties_to_first_patient() -> None:
    vectors = vectorize_notes(notes_of("fever", "fever", "fever", "fever"))

    neighbors = nearest_neighbors(vectors, "P3", k=3)

    assert neighbors["neighbor_id"].tolist() == ["P1", "P2", "P4"]
    assert neighbors["similarity"].tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_nearest_neighbors_never_self(hospital) -> None:
    vectors, _, _ = hospital

    neighbors = nearest_neighbors(vectors, k=10)

    assert len(neighbors) == 10 * len(vectors)
    assert not (neighbors["patient_id"] == neighbors["neighbor_id"]).any()
    assert neighbors.groupby("patient_id")["rank"].max().eq(10).all()


def test_nearest_neighbors_equals_brute_force(hospital) -> None:
    vectors, _, _ = hospital
    sample = vectors.matrix[:600]

    expected = brute_force(sample, k=8)
    for chunk_size in (1, 37, 512):
        found, _ = top_k(sample, 8, chunk_size=chunk_size)
        assert (found == expected).all(), f"chunk_size={chunk_size}"
    found, _ = top_k(sample, 8, max_block=50)
    assert (found == expected).all(), "max_block=50"


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_top_k_random_matrices_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    matrix = sp.random(120, 15, density=0.15, random_state=rng, format="csr")
    # Rounded weights make many exact ties.
    matrix.data = np.round(matrix.data, 1) + 0.1
    matrix = normalize(matrix)

    for min_similarity in (0.0, 0.5):
        found, similarity = top_k(
            matrix, 6, min_similarity=min_similarity, chunk_size=16
        )
        assert (found == brute_force(matrix, 6, min_similarity)).all()
        assert (similarity[found < 0] == 0).all()


def test_nearest_neighbors_min_similarity(hospital) -> None:
    vectors, _, _ = hospital

    all_ten = nearest_neighbors(vectors, ["000003", "000004"], k=10)
    close = nearest_neighbors(vectors, ["000003", "000004"], k=10, min_similarity=0.95)

    assert (close["similarity"] > 0.95).all()
    expected = all_ten[all_ten["similarity"] > 0.95].reset_index(drop=True)
    pd.testing.assert_frame_equal(close, expected)


def test_nearest_neighbors_keeps_requested_order(hospital) -> None:
    vectors, _, _ = hospital

    neighbors = nearest_neighbors(vectors, ["000010", "000003"], k=2)

    assert neighbors["patient_id"].tolist() == ["000010", "000010", "000003", "000003"]


def test_shared_terms_add_up_to_similarity(three: NoteVectors) -> None:
    terms = shared_terms(three, "P1", "P2", top=None)

    assert terms["term"].tolist() == ["cough", "fever"]
    assert terms["contribution"].iloc[0] == terms["contribution"].iloc[1]
    assert terms["contribution"].sum() == pytest.approx(
        similarity_matrix(three, ["P1", "P2"]).loc["P1", "P2"], abs=1e-12
    )
    assert shared_terms(three, "P1", "P3").empty


# recommend


@pytest.fixture
def clinic() -> tuple[NoteVectors, pd.DataFrame]:
    """P1 and P3 have the same note; P2 adds a term; P4 is unrelated."""
    vectors = vectorize_notes(
        notes_of("fever cough", "fever cough rash", "fever cough", "knee pain")
    )
    received = received_of(
        ("P1", "S3", "2024-01-01"),
        ("P2", "S1", "2024-01-01"),
        ("P2", "S2", "2024-01-02"),
        ("P3", "S1", "2024-01-01"),
        ("P3", "S3", "2024-01-01"),
        ("P4", "S4", "2024-01-01"),
    )
    return vectors, received


def test_recommend_hand_computed_scores(clinic) -> None:
    vectors, received = clinic

    result = recommend(vectors, received, "P1", catalogue=CATALOGUE, k=2)

    # Neighbours P3 (1.0) and P2. S1: both; S2: P2 only; S3 is P1's own. Of the
    # 4 notes, 3 contain fever and cough and 1 rash.
    fever, rash = 1 + math.log(5 / 4), 1 + math.log(5 / 2)
    similarity = math.sqrt(2) * fever / math.sqrt(2 * fever**2 + rash**2)
    assert similarity == pytest.approx(0.670061, abs=1e-6)
    assert result["service_code"].tolist() == ["S1", "S2"]
    assert result["score"].tolist() == pytest.approx(
        [1.0, similarity / (1 + similarity)], abs=1e-12
    )
    assert result["name_en"].tolist() == ["one", "two"]
    assert result["neighbor_ids"].tolist() == [["P3", "P2"], ["P2"]]
    assert result["shared_terms"].iloc[0] == ["cough", "fever"]
    assert result["reason"].iloc[1] == (
        "Received by 1 of 2 similar patients (similarity 0.67). "
        "Shared terms: cough, fever."
    )


def test_recommend_excludes_received_services(hospital) -> None:
    vectors, received, catalogue = hospital

    for patient_id in ["000003", "000005", "000009", "000010"]:
        result = recommend(vectors, received, patient_id, catalogue=catalogue)
        had = set(received.loc[received["patient_id"] == patient_id, "service_code"])
        assert not had & set(result["service_code"]), patient_id
        assert result["score"].is_monotonic_decreasing


def test_recommend_patient_without_services(clinic) -> None:
    vectors, received = clinic
    received = received[received["patient_id"] != "P1"]

    result = recommend(vectors, received, "P1", k=2)

    # S1 from P3 and P2, S3 from P3 (similarity 1.0), S2 from P2 (0.67).
    assert result["service_code"].tolist() == ["S1", "S3", "S2"]


def test_recommend_no_neighbour_is_empty(clinic) -> None:
    vectors, received = clinic

    result = recommend(vectors, received, "P4", k=2)

    assert result.empty
    assert "reason" in result.columns


# evaluate


@pytest.fixture
def evaluation_case() -> tuple[NoteVectors, pd.DataFrame]:
    """Six patients; P5 has no service. The latest service of each is hidden."""
    vectors = vectorize_notes(
        notes_of(
            "fever cough", "fever cough", "knee pain", "knee pain", "rash", "knee pain"
        )
    )
    received = received_of(
        ("P1", "S1", "2024-01-01"),
        ("P2", "S1", "2024-01-01"),
        ("P2", "S2", "2024-02-01"),
        ("P3", "S3", "2024-01-01"),
        ("P4", "S4", "2024-01-01"),
        ("P4", "S3", "2024-03-01"),
        ("P6", "S3", "2024-01-01"),
        ("P6", "S5", "2024-02-01"),
    )
    return vectors, received


def test_evaluate_hand_computed(evaluation_case) -> None:
    vectors, received = evaluation_case

    result = evaluate(
        vectors, received, CATALOGUE, k=2, top_n=1, min_similarity=0.1, hide="latest"
    )

    per_patient = result.per_patient
    assert per_patient["patient_id"].tolist() == ["P1", "P2", "P3", "P4", "P6"]
    assert per_patient["hidden"].tolist() == ["S1", "S2", "S3", "S3", "S5"]
    assert per_patient["rank"].tolist() == [1, pd.NA, 1, 1, pd.NA]
    assert per_patient["baseline_rank"].tolist() == [1, pd.NA, pd.NA, pd.NA, pd.NA]
    summary = result.summary
    assert summary.loc["similar patients"].tolist() == pytest.approx([0.6, 0.6, 0.5, 5])
    assert summary.loc["most popular"].tolist() == pytest.approx([0.2, 0.2, 2 / 6, 5])
    assert result.recommendations["service_code"].tolist() == ["S1", "S3", "S3", "S4"]


def test_evaluate_random_hides_a_received_service(hospital) -> None:
    vectors, received, catalogue = hospital

    first = evaluate(vectors, received, catalogue, seed=1)
    again = evaluate(vectors, received, catalogue, seed=1)

    pd.testing.assert_frame_equal(first.per_patient, again.per_patient)
    pairs = set(zip(received["patient_id"], received["service_code"], strict=True))
    hidden = zip(
        first.per_patient["patient_id"], first.per_patient["hidden"], strict=True
    )
    assert all(pair in pairs for pair in hidden)
    with_services = received["patient_id"].nunique()
    assert first.summary.loc["similar patients", "patients"] == with_services


def test_evaluate_beats_most_popular(hospital) -> None:
    vectors, received, catalogue = hospital

    summary = evaluate(vectors, received, catalogue).summary

    ours, baseline = summary.loc["similar patients"], summary.loc["most popular"]
    assert ours["hit_rate"] > baseline["hit_rate"] + 0.3
    assert ours["precision"] == pytest.approx(ours["hit_rate"] / 5)
    assert ours["coverage"] > baseline["coverage"]


def test_evaluate_skips_patients_without_services(
    evaluation_case, caplog: pytest.LogCaptureFixture
) -> None:
    vectors, received = evaluation_case

    with caplog.at_level(logging.INFO, logger="medkit"):
        result = evaluate(vectors, received, CATALOGUE, k=2, hide="latest")

    assert "P5" not in result.per_patient["patient_id"].tolist()
    assert "Skipped 1 patient who received no service" in caplog.text


# plots


def test_plot_similarity_heatmap_shows_matrix(three: NoteVectors) -> None:
    figure = plot_similarity_heatmap(three, ["P1", "P2", "P3"], labels={"P1": "J18"})

    image = figure.axes[0].images[0].get_array()
    assert image.shape == (3, 3)
    assert image[0, 1] == pytest.approx(0.732360, abs=1e-6)
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    assert labels == ["P1 J18", "P2", "P3"]


CHINESE_HEATMAP = """
import warnings

import matplotlib
import pandas as pd

matplotlib.use("Agg")
from medkit.personalize import plot_similarity_heatmap, vectorize_notes

notes = pd.DataFrame({"patient_id": ["P1", "P2"], "text": ["发热 咳嗽", "发热"]})
vectors = vectorize_notes(notes)
with warnings.catch_warnings():
    warnings.simplefilter("error")
    figure = plot_similarity_heatmap(vectors, ["P1", "P2"], labels={"P1": "心内科"})
    figure.canvas.draw()
"""


def test_plot_similarity_heatmap_chinese_labels_no_warning() -> None:
    # A fresh interpreter, because importing medkit.widgets elsewhere in the
    # session would register the CJK font before the plot function is called.
    result = subprocess.run(
        [sys.executable, "-c", CHINESE_HEATMAP], capture_output=True, text=True
    )

    assert "medkit.widgets" not in CHINESE_HEATMAP
    assert result.returncode == 0, result.stderr


def test_plot_score_distributions_two_panels(evaluation_case) -> None:
    vectors, received = evaluation_case
    result = evaluate(vectors, received, CATALOGUE, k=2, top_n=1, hide="latest")

    figure = plot_score_distributions(result)

    assert len(figure.axes) == 2
    assert figure.axes[1].get_title() == "Scores of the top 1"


# bad input


@pytest.mark.parametrize(
    "texts",
    [["", "   "], ["\n\t", None], ["Patient admitted.", "患者，女，入院。"]],
    ids=["empty_and_spaces", "whitespace_and_missing", "only_stop_words"],
)
def test_vectorize_notes_no_usable_text(texts: list) -> None:
    notes = pd.Series(texts, index=["1", "2"])

    with pytest.raises(
        NoteTextError, match=r"None of the notes of 2 patients has usable text"
    ):
        vectorize_notes(notes)


def test_vectorize_notes_no_notes() -> None:
    with pytest.raises(NoteTextError, match="No notes given"):
        vectorize_notes(pd.DataFrame(columns=["patient_id", "text"]))


def test_vectorize_notes_missing_column() -> None:
    notes = pd.DataFrame({"patient_id": ["1"], "note": ["fever"]})

    with pytest.raises(MissingColumnError, match="no column 'text'") as caught:
        vectorize_notes(notes)

    assert caught.value.column == "text"


def test_blank_note_among_others(clinic, caplog: pytest.LogCaptureFixture) -> None:
    _, received = clinic
    notes = notes_of("fever cough", "fever cough rash", "fever cough", "knee pain", " ")
    received = pd.concat([received, received_of(("P5", "S6", "2024-01-01"))])

    with caplog.at_level(logging.WARNING, logger="medkit"):
        vectors = vectorize_notes(notes)
    neighbors = nearest_neighbors(vectors, k=4)

    assert "1 of 5 patients has notes without usable text" in caplog.text
    assert list(vectors.blank) == ["P5"]
    assert similarity_matrix(vectors, ["P1", "P5"]).loc["P1", "P5"] == 0.0
    assert "P5" not in set(neighbors["patient_id"]) | set(neighbors["neighbor_id"])
    for patient_id in ["P1", "P2", "P3", "P4"]:
        result = recommend(vectors, received, patient_id, k=4, min_similarity=0.0)
        assert "S6" not in result["service_code"].tolist()


def test_nearest_neighbors_single_patient() -> None:
    vectors = vectorize_notes(notes_of("fever"))

    with pytest.raises(
        NeighborCountError, match=r"only one patient \('P1'\), but finding similar"
    ):
        nearest_neighbors(vectors, k=1)


@pytest.mark.parametrize(
    ("k", "message"),
    [
        (3, r"k=3 is larger than the 2 other patients. Choose k of at most 2."),
        (0, r"k must be a whole number of at least 1, but got 0"),
        (1.5, r"k must be a whole number of at least 1, but got 1.5"),
    ],
    ids=["too_large", "zero", "not_whole"],
)
def test_nearest_neighbors_bad_k(three: NoteVectors, k, message: str) -> None:
    with pytest.raises(NeighborCountError, match=message) as caught:
        nearest_neighbors(three, k=k)

    assert caught.value.available == 2
    assert isinstance(caught.value, ValueError)


def test_recommend_k_too_large(clinic) -> None:
    vectors, received = clinic

    with pytest.raises(NeighborCountError, match="k=4 is larger than the 3 other"):
        recommend(vectors, received, "P1", k=4)


def test_unknown_patient_hints_leading_zeros(hospital) -> None:
    vectors, received, _ = hospital

    with pytest.raises(UnknownPatientError, match=r"Did you mean '000003'") as caught:
        recommend(vectors, received, "3")

    assert caught.value.patient_id == "3"
    assert isinstance(caught.value, KeyError)


def test_nearest_neighbors_number_id_hints_leading_zeros(hospital) -> None:
    vectors, _, _ = hospital

    with pytest.raises(UnknownPatientError, match=r"Did you mean '000009'") as caught:
        nearest_neighbors(vectors, 9, k=5)

    assert caught.value.patient_id == 9


def test_nearest_neighbors_single_id_string(three: NoteVectors) -> None:
    result = nearest_neighbors(three, "P2", k=2)

    # P3 shares no term with P2, and only similarities above 0 are kept.
    assert result["patient_id"].tolist() == ["P2"]
    assert result["neighbor_id"].tolist() == ["P1"]


def test_nearest_neighbors_patient_ids_not_iterable(three: NoteVectors) -> None:
    with pytest.raises(
        PersonalizeError, match=r"patient_ids must be a patient ID or a list"
    ):
        nearest_neighbors(three, object(), k=1)


@pytest.mark.parametrize(
    "call",
    [
        lambda v, r: recommend(v, r, "Z", catalogue=CATALOGUE),
        lambda v, r: nearest_neighbors(v, "Z"),
    ],
    ids=["recommend", "nearest_neighbors"],
)
def test_unknown_patient_before_default_k(call) -> None:
    # Five patients have 4 others, fewer than the default k=10.
    vectors = vectorize_notes(notes_of("fever", "cough", "rash", "knee", "fall"))
    received = received_of(("P1", "S1", "2024-01-01"))

    with pytest.raises(UnknownPatientError, match=r"Patient 'Z' not found among the 5"):
        call(vectors, received)


@pytest.mark.parametrize(
    "call",
    [
        lambda v: nearest_neighbors(v, "P9", k=1),
        lambda v: shared_terms(v, "P1", "P9"),
        lambda v: similarity_matrix(v, ["P1", "P9"]),
    ],
    ids=["nearest_neighbors", "shared_terms", "similarity_matrix"],
)
def test_unknown_patient_raises(three: NoteVectors, call) -> None:
    with pytest.raises(
        UnknownPatientError, match=r"Patient 'P9' not found among the 3 patients"
    ):
        call(three)


def test_services_not_in_catalogue(clinic) -> None:
    vectors, received = clinic
    received = pd.concat(
        [received, received_of(("P2", "S99", "2024-01-01"), ("P3", "X1", "2024-01-01"))]
    )

    with pytest.raises(
        UnknownServiceError,
        match=r"2 received services have codes that are not in the catalogue of 6 "
        r"services: 'S99', 'X1' \(rows 8, 9\)",
    ) as caught:
        recommend(
            vectors, received.reset_index(drop=True), "P1", catalogue=CATALOGUE, k=2
        )

    assert caught.value.codes == ["S99", "X1"]
    assert caught.value.rows == [8, 9]


def test_service_not_in_catalogue_singular(clinic) -> None:
    vectors, received = clinic
    received = pd.concat([received, received_of(("P2", "S99", "2024-01-01"))])

    with pytest.raises(
        UnknownServiceError,
        match=r"^1 received service has a code that is not in the catalogue of 6 "
        r"services: 'S99' \(row 8\)\. Correct",
    ):
        recommend(
            vectors, received.reset_index(drop=True), "P1", catalogue=CATALOGUE, k=2
        )


def test_services_not_in_catalogue_beyond_ten(clinic) -> None:
    vectors, received = clinic
    unknown = [("P2", f"X{i:02d}", "2024-01-01") for i in range(12)]
    received = pd.concat([received, received_of(*unknown)]).reset_index(drop=True)

    with pytest.raises(
        UnknownServiceError,
        match=r"12 received services have codes that are not in the catalogue of 6 "
        r"services: 'X00', .*, 'X09' and 2 more \(rows 8, 9, .*, 17 and 2 more\)",
    ) as caught:
        recommend(vectors, received, "P1", catalogue=CATALOGUE, k=2)

    assert caught.value.rows == list(range(8, 18))


def test_messages_singular_counts() -> None:
    vectors = vectorize_notes(notes_of("fever", "fever cough"))

    with pytest.raises(
        NeighborCountError,
        match=r"k=2 is larger than the 1 other patient\. Choose k of at most 1\.",
    ):
        nearest_neighbors(vectors, k=2)
    with pytest.raises(
        UnknownPatientError, match=r"not found among the 1 patient with notes\."
    ):
        shared_terms(vectorize_notes(notes_of("fever")), "P1", "P9")
    assert _reason(np.array([0.5]), 1, ["fever"]) == (
        "Received by the only similar patient (similarity 0.50). Shared terms: fever."
    )


@pytest.mark.parametrize(
    ("number", "expected"),
    [(0, "0 patients"), (1, "1 patient"), (2, "2 patients")],
    ids=["zero", "one", "two"],
)
def test_counted_noun_agrees(number: int, expected: str) -> None:
    assert counted(number, "patient") == expected


def test_evaluate_no_patient_has_services(three: NoteVectors) -> None:
    received = received_of(("P7", "S1", "2024-01-01"))

    with pytest.raises(
        PersonalizeError, match="None of the 3 patients with a note has received"
    ):
        evaluate(three, received, CATALOGUE, k=1)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"min_similarity": 1.0}, r"min_similarity must be at least 0 and below 1"),
        ({"min_similarity": -0.1}, r"min_similarity must be at least 0 and below 1"),
        ({"top_n": 0}, r"top_n must be a whole number of at least 1, but got 0"),
        ({"hide": "first"}, r"hide must be 'random' or 'latest', but got 'first'"),
    ],
    ids=["min_similarity_one", "min_similarity_negative", "top_n_zero", "hide"],
)
def test_evaluate_bad_settings(evaluation_case, settings: dict, message: str) -> None:
    vectors, received = evaluation_case
    settings = {"k": 2, **settings}

    with pytest.raises(PersonalizeError, match=message):
        evaluate(vectors, received, CATALOGUE, **settings)


def test_evaluate_latest_needs_iso_dates(evaluation_case) -> None:
    vectors, received = evaluation_case
    received = received.copy()
    received.loc[3, "received_date"] = "31/02/2024"

    with pytest.raises(
        PersonalizeError, match=r"received_date '31/02/2024' in row 5 is not an ISO"
    ):
        evaluate(vectors, received, CATALOGUE, k=2, hide="latest")


def test_evaluate_latest_needs_dates(evaluation_case) -> None:
    vectors, received = evaluation_case

    with pytest.raises(
        MissingColumnError, match="hide='latest' needs the column 'received_date'"
    ):
        evaluate(
            vectors,
            received.drop(columns="received_date"),
            CATALOGUE,
            k=2,
            hide="latest",
        )


def test_received_missing_column(three: NoteVectors) -> None:
    received = pd.DataFrame({"patient": ["P1"], "service_code": ["S1"]})

    with pytest.raises(MissingColumnError, match="no column 'patient_id'"):
        recommend(three, received, "P1", k=1)


def test_similarity_matrix_too_large(hospital) -> None:
    vectors, _, _ = hospital

    with pytest.raises(PersonalizeError, match="too large to show. Choose at most 500"):
        similarity_matrix(vectors, vectors.patient_ids[:501])


def test_errors_are_medkit_errors() -> None:
    for error in (
        NoteTextError,
        NeighborCountError,
        UnknownPatientError,
        UnknownServiceError,
    ):
        assert issubclass(error, PersonalizeError)
        assert issubclass(error, MedkitError)
