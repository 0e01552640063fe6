"""Admission notes and services received, keyed to each patient's main diagnosis."""

from __future__ import annotations

import numpy as np
import pandas as pd

from medkit import _hospital_phrases as phrases
from medkit import _hospital_templates as tpl

DX_CODES = np.array([d.icd10 for d in tpl.DIAGNOSES], dtype=object)
NOTE_TEMPLATE_EN = (
    "{age}-year-old {person} admitted with {first} and {second}. History of "
    "{history}. On examination, {finding}. Assessment: {diagnosis}. Plan: {plan}."
)
NOTE_TEMPLATE_ZH = (
    "患者，{sex}{age}岁，因{first}、{second}入院。既往{history}。查体：{finding}。"
    "诊断：{diagnosis}。计划：{plan}。"
)


def note_visits(patients: pd.DataFrame, visits: pd.DataFrame) -> np.ndarray:
    """Return, in patient order, the row of the visit each patient's note is for.

    That is the patient's last visit for their main diagnosis, or their last
    visit if none is for it.
    """
    patient = visits["patient"].to_numpy()
    is_primary = visits["dx"].to_numpy() == patients["primary_dx"].to_numpy()[patient]
    order = np.lexsort((visits["admit_day"], is_primary, patient))
    last = np.r_[patient[order][1:] != patient[order][:-1], True]
    return order[last]


def _fill(template: str, **columns: np.ndarray) -> np.ndarray:
    names = list(columns)
    rows = zip(*columns.values(), strict=True)
    return np.array(
        [template.format(**dict(zip(names, row, strict=True))) for row in rows],
        dtype=object,
    )


def _choose_phrases(
    rng: np.random.Generator,
    dx: np.ndarray,
    options_by_dx: list[tuple[str, ...]],
    offset: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    # Draw one phrase per row from the row's diagnosis list. Return it and its index.
    # With ``offset``, draw a phrase other than the one at that index.
    lengths = np.array([len(options) for options in options_by_dx])
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    flat = np.array([p for options in options_by_dx for p in options], dtype=object)
    index = (rng.random(len(dx)) * lengths[dx]).astype(np.int64)
    if offset is not None:
        index = offset + 1 + (rng.random(len(dx)) * (lengths[dx] - 1)).astype(np.int64)
        index %= lengths[dx]
    return flat[starts[dx] + index], index


def abbreviate(text: str) -> str:
    """Replace the clinical phrases of ABBREVIATIONS by their abbreviations."""
    for phrase, short in phrases.ABBREVIATIONS:
        text = text.replace(phrase, short)
    return text


def _note_parts(
    rng: np.random.Generator, dx: np.ndarray, language: dict[str, dict[str, tuple]]
) -> dict[str, np.ndarray]:
    tables = {
        part: [language[code][part] for code in DX_CODES]
        for part in ("symptoms", "history", "finding", "plan")
    }
    first, first_index = _choose_phrases(rng, dx, tables["symptoms"])
    second, _ = _choose_phrases(rng, dx, tables["symptoms"], offset=first_index)
    parts = {"first": first, "second": second}
    for part in ("history", "finding", "plan"):
        parts[part] = _choose_phrases(rng, dx, tables[part])[0]
    return parts


def make_notes(
    rng: np.random.Generator,
    patients: pd.DataFrame,
    visits: pd.DataFrame,
    note_rows: np.ndarray,
) -> pd.DataFrame:
    """Write one admission note per patient for the visits at ``note_rows``.

    Most patients with Chinese names get a Chinese note, others an English one,
    and 40% of English notes use the abbreviations of ABBREVIATIONS.
    """
    chosen = visits.iloc[note_rows]
    patient = chosen["patient"].to_numpy()
    dx = chosen["dx"].to_numpy()
    count = len(chosen)
    english = patients["english"].to_numpy()[patient]
    sex = patients["sex"].to_numpy()[patient]
    age = chosen["age"].to_numpy().astype(str).astype(object)

    chinese = np.where(english, rng.random(count) < 0.05, rng.random(count) < 0.85)
    short = rng.random(count) < 0.4
    english_parts = _note_parts(rng, dx, phrases.NOTE_PHRASES_EN)
    chinese_parts = _note_parts(rng, dx, phrases.NOTE_PHRASES_ZH)
    names_en = np.array([d.name_en for d in tpl.DIAGNOSES], dtype=object)[dx]
    names_zh = np.array([d.name_zh for d in tpl.DIAGNOSES], dtype=object)[dx]

    person = np.select([sex == "M", sex == "F"], ["man", "woman"], "patient")
    text_en = _fill(
        NOTE_TEMPLATE_EN, age=age, person=person, diagnosis=names_en, **english_parts
    )
    short &= ~chinese
    text_en[short] = [abbreviate(text) for text in text_en[short]]
    sex_zh = np.select([sex == "M", sex == "F"], ["男，", "女，"], "")
    text_zh = _fill(
        NOTE_TEMPLATE_ZH, age=age, sex=sex_zh, diagnosis=names_zh, **chinese_parts
    )
    # Rows are in patient order because note_rows is sorted by patient.
    return pd.DataFrame(
        {
            "number": np.arange(1, count + 1),
            "patient_id": chosen["patient_id"].to_numpy(),
            "visit": chosen["number"].to_numpy(),
            "language": np.where(chinese, "zh", "en").astype(object),
            "text": np.where(chinese, text_zh, text_en),
        }
    )


def make_patient_services(
    rng: np.random.Generator, visits: pd.DataFrame, note_rows: np.ndarray
) -> pd.DataFrame:
    """Draw the services each patient received, given the diagnosis of their note.

    Each service is received with its probability in SERVICE_PROBABILITIES or
    GENERAL_SERVICE_PROBABILITIES, 0 to 60 days after discharge.
    """
    chosen = visits.iloc[note_rows]
    codes = [code for code, *_ in tpl.SERVICES]
    probability = np.zeros((len(tpl.DIAGNOSES), len(codes)))
    for row, code in enumerate(DX_CODES):
        for service, chance in tpl.SERVICE_PROBABILITIES[code].items():
            probability[row, codes.index(service)] = chance
        for service, chance in tpl.GENERAL_SERVICE_PROBABILITIES.items():
            probability[row, codes.index(service)] = max(
                chance, probability[row, codes.index(service)]
            )

    received = rng.random((len(chosen), len(codes))) < probability[chosen["dx"]]
    patient_row, service = np.nonzero(received)
    discharge = chosen["discharge_day"].to_numpy()[patient_row]
    return pd.DataFrame(
        {
            "patient_id": chosen["patient_id"].to_numpy()[patient_row],
            "service_code": np.array(codes, dtype=object)[service],
            "received_day": discharge + rng.integers(0, 61, len(patient_row)),
        }
    )
