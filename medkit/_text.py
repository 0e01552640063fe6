"""Tokens of clinical notes written in English, Chinese or both.

English is split into words. Chinese has no spaces between words, so each run of
Chinese characters is split into overlapping character bigrams ("咳嗽发热" gives
"咳嗽", "嗽发", "发热"), and a run of one character is kept as it is. Bigrams need
no dictionary and catch most two-character medical words. Before splitting,
common clinical abbreviations are expanded ("SOB" to "shortness of breath"), and
words that every note contains are dropped.
"""

from __future__ import annotations

import re
import unicodedata

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

# Expansions of abbreviations in English notes. Matching is case-sensitive and on
# whole words, so "HR" (heart rate) is expanded but "hr" (hours) is not.
ABBREVIATIONS_EN: dict[str, str] = {
    "AF": "atrial fibrillation",
    "BG": "blood glucose",
    "BID": "twice daily",
    "BP": "blood pressure",
    "CHF": "congestive heart failure",
    "CKD": "chronic kidney disease",
    "COPD": "chronic obstructive pulmonary disease",
    "CP": "chest pain",
    "CXR": "chest X-ray",
    "DM": "diabetes mellitus",
    "ECG": "electrocardiogram",
    "EKG": "electrocardiogram",
    "HR": "heart rate",
    "HTN": "hypertension",
    "IV": "intravenous",
    "MI": "myocardial infarction",
    "PRN": "as needed",
    "SOB": "shortness of breath",
    "T2DM": "type 2 diabetes mellitus",
    "c/o": "complains of",
    "f/u": "follow-up",
    "h/o": "history of",
}

# Expansions of short forms in Chinese notes, matched anywhere in the text.
ABBREVIATIONS_ZH: dict[str, str] = {
    "慢阻肺": "慢性阻塞性肺疾病",
    "房颤": "心房颤动",
    "心衰": "心力衰竭",
    "甲功": "甲状腺功能",
    "冠脉": "冠状动脉",
}

# Words of the note template and of demographics, which every note contains and
# which carry no information about the clinical picture. scikit-learn's English
# list is added to these.
CLINICAL_STOP_WORDS_EN = frozenset(
    {
        "admission",
        "admitted",
        "assessment",
        "complains",
        "day",
        "days",
        "examination",
        "female",
        "history",
        "male",
        "man",
        "old",
        "patient",
        "patients",
        "plan",
        "presented",
        "presents",
        "pt",
        "woman",
        "year",
        "years",
        "yo",
    }
)
STOP_WORDS_EN = frozenset(ENGLISH_STOP_WORDS) | CLINICAL_STOP_WORDS_EN

# Chinese template words, removed before the bigrams are made so that no bigram
# spans one of them.
STOP_WORDS_ZH = (
    "患者",
    "入院",
    "既往",
    "查体",
    "诊断",
    "计划",
    "主诉",
    "岁",
    "男",
    "女",
    "因",
)

_CJK = "\u3400-\u4dbf\u4e00-\u9fff"
# A lower-case word of at least two letters or digits that starts with a letter,
# or a run of Chinese characters. Numbers alone are not tokens.
_TOKEN = re.compile(rf"[a-z][a-z0-9]+|[{_CJK}]+")
_ABBREVIATION_EN = re.compile(
    r"(?<![\w/])("
    + "|".join(re.escape(short) for short in sorted(ABBREVIATIONS_EN, key=len)[::-1])
    + r")(?![\w/])"
)
# The full forms come first in the alternation, so a short form inside its own
# full form ("房颤" inside "心房颤动") is left alone.
_ABBREVIATION_ZH = re.compile(
    "|".join(
        re.escape(text)
        for text in sorted(
            [*ABBREVIATIONS_ZH.values(), *ABBREVIATIONS_ZH], key=len, reverse=True
        )
    )
)
_STOP_ZH = re.compile("|".join(re.escape(word) for word in STOP_WORDS_ZH))


def expand_abbreviations(text: str) -> str:
    """Write out the abbreviations of ABBREVIATIONS_EN and ABBREVIATIONS_ZH.

    Parameters
    ----------
    text : str
        A clinical note.

    Returns
    -------
    str
        The note with each abbreviation written out, after Unicode NFKC
        normalisation (full-width letters become ASCII).

    Examples
    --------
    >>> expand_abbreviations("h/o HTN, SOB on exertion; 慢阻肺")
    'history of hypertension, shortness of breath on exertion; 慢性阻塞性肺疾病'
    """
    text = unicodedata.normalize("NFKC", text)
    text = _ABBREVIATION_EN.sub(lambda match: ABBREVIATIONS_EN[match.group(1)], text)
    return _ABBREVIATION_ZH.sub(
        lambda match: ABBREVIATIONS_ZH.get(match.group(0), match.group(0)), text
    )


def tokenize(text: str) -> list[str]:
    """Split a clinical note in English, Chinese or both into TF-IDF tokens.

    The note is normalised (NFKC), its abbreviations are expanded, and it is
    lower-cased. English words of two or more characters are tokens unless they
    are in STOP_WORDS_EN. Chinese template words (STOP_WORDS_ZH) are removed,
    and each remaining run of Chinese characters gives its character bigrams, or
    itself when it is one character long. Numbers, punctuation and single
    Latin letters are dropped.

    Parameters
    ----------
    text : str
        A clinical note.

    Returns
    -------
    list of str
        The tokens in the order they occur, with repeats.

    Examples
    --------
    >>> tokenize("患者因咳嗽、发热入院")
    ['咳嗽', '发热']
    >>> tokenize("68-year-old man with SOB")
    ['shortness', 'breath']
    """
    text = expand_abbreviations(text).lower()
    text = _STOP_ZH.sub(" ", text)
    tokens = []
    for run in _TOKEN.findall(text):
        if run[0].isascii():
            if run not in STOP_WORDS_EN:
                tokens.append(run)
        elif len(run) == 1:
            tokens.append(run)
        else:
            tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
    return tokens


def counted(number: int, singular: str, plural: str | None = None) -> str:
    """Return a count and its noun, such as "1 patient" or "3 patients"."""
    noun = singular if number == 1 else (plural or f"{singular}s")
    return f"{number} {noun}"
