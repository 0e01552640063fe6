"""Stage 4, personalization: vectorize -> nearest neighbours -> recommend -> evaluate.

A patient's free-text notes are turned into a TF-IDF vector, similar patients are
found by cosine similarity, and the services that similar patients received are
recommended, each with its reasons. Each step is a function a lesson can call:

* :func:`vectorize_notes` turns notes in English and Chinese into
  :class:`NoteVectors`, one L2-normalised row per patient.
* :func:`nearest_neighbors` finds the top-k most similar other patients, exactly,
  in chunks, without ever building an N x N matrix. :func:`similarity_matrix`
  and :func:`shared_terms` explain a small group or a pair.
* :func:`recommend` lists services that a patient's neighbours received and the
  patient did not, scored, with the neighbours and shared terms behind each.
* :func:`evaluate` hides one received service per patient and measures hit
  rate, precision and catalogue coverage against the most popular services.
* :func:`plot_similarity_heatmap` and :func:`plot_score_distributions` draw them.

Tokens
------
scikit-learn's default token pattern keeps runs of two or more word characters,
so a Chinese clause without spaces ("因咳嗽、发热入院") becomes a few whole-clause
tokens, and two notes about cough and fever share none of them. :func:`tokenize`
splits English into words and Chinese into overlapping character bigrams, which
needs no dictionary. Before that it expands common abbreviations (ABBREVIATIONS_EN,
ABBREVIATIONS_ZH) and removes template and demographic words (STOP_WORDS_EN,
STOP_WORDS_ZH). Term weights are TF-IDF with sublinear term frequency
(1 + log tf) and smoothed IDF, and each row is scaled to unit length.

Limits of these tokens:

* Negation is lost: "no fever" and "fever" share the token "fever", and English
  negations such as "no" are stop words.
* There is no stemming or synonym list: "crackle" and "crackles", or "咳痰" and
  "咳嗽", share nothing. Bigrams that span two words ("痰增") are noise, which IDF
  only damps.
* English and Chinese notes share only Latin tokens such as "ct" or "tsh", so a
  patient's neighbours are nearly always found among notes in the same language.
* Abbreviations are expanded without context, so "stage IV" becomes "stage
  intravenous". Age and sex are dropped on purpose: a service that depends on
  them needs a separate check.
"""

from __future__ import annotations

from medkit._note_vectors import (
    MAX_MATRIX_PATIENTS,
    NEIGHBOR_COLUMNS,
    NoteVectors,
    nearest_neighbors,
    shared_terms,
    similarity_matrix,
    vectorize_notes,
)
from medkit._personalize_plots import plot_score_distributions, plot_similarity_heatmap
from medkit._recommend import Evaluation, evaluate, recommend
from medkit._text import (
    ABBREVIATIONS_EN,
    ABBREVIATIONS_ZH,
    STOP_WORDS_EN,
    STOP_WORDS_ZH,
    expand_abbreviations,
    tokenize,
)

__all__ = [
    "ABBREVIATIONS_EN",
    "ABBREVIATIONS_ZH",
    "MAX_MATRIX_PATIENTS",
    "NEIGHBOR_COLUMNS",
    "STOP_WORDS_EN",
    "STOP_WORDS_ZH",
    "Evaluation",
    "NoteVectors",
    "evaluate",
    "expand_abbreviations",
    "nearest_neighbors",
    "plot_score_distributions",
    "plot_similarity_heatmap",
    "recommend",
    "shared_terms",
    "similarity_matrix",
    "tokenize",
    "vectorize_notes",
]
