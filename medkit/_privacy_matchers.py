"""Find identifiers in many texts at once: the patterns plus known names and IDs.

The texts of a column are joined into one string, separated by NUL characters
that no pattern matches, and each pattern runs once over that string in C. Only
the matches are handled in Python, and each is traced back to its text by the
offsets where the texts start.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

from medkit._privacy_patterns import (
    PATTERNS,
    Pattern,
    national_id_is_valid,
    trie_regex,
)

logger = logging.getLogger(__name__)

_SEPARATOR = "\x00"

Match = tuple[int, int, str, str, str]
"""A match: position of the text, offset in it, kind, rule and matched value."""


class Matchers:
    """The patterns of one scan: the fixed ones plus the known names and IDs."""

    def __init__(self, known_ids: Iterable[object], known_names: Iterable[object]):
        self.patterns: list[Pattern] = list(PATTERNS)

        # Names with Latin letters are matched on lower-cased text.
        names = _clean_names(known_names)
        latin = [n for n in names if _LATIN.search(n)]
        self.latin_names = trie_regex(latin, latin=True)
        self.other_names = trie_regex(
            [n for n in names if not _LATIN.search(n)], latin=False
        )

        # IDs that are a run of letters, digits, then letters or digits (such
        # as "000123" or "V0000001") are found by pulling the tokens that start
        # with each letter run out of the text and looking them up in a set.
        # Any other IDs go into one regular expression.
        ids = {str(value).strip() for value in known_ids if not is_missing(value)}
        ids.discard("")
        groups: dict[str, set[str]] = {}
        odd = []
        for value in ids:
            match = _ID_SHAPE.fullmatch(value)
            if match:
                groups.setdefault(match.group(1), set()).add(value)
            else:
                odd.append(value)
        if len(groups) > _MAX_ID_GROUPS:
            odd += [value for values in groups.values() for value in values]
            groups = {}
        self.id_tokens = [
            (_id_token_regex(letters), values)
            for letters, values in sorted(groups.items())
        ]
        self.odd_ids = None
        if odd:
            body = "|".join(map(re.escape, sorted(odd, key=len, reverse=True)))
            self.odd_ids = re.compile(rf"(?<![A-Za-z0-9])(?:{body})(?![A-Za-z0-9])")


_Locate = Callable[[int], tuple[int, int]]
_LATIN = re.compile("[A-Za-z]")
_NUMBER_KINDS = ("phone", "national_id")
_ID_SHAPE = re.compile(r"([A-Za-z]*)[0-9][A-Za-z0-9]*")
_MAX_ID_GROUPS = 20


def _id_token_regex(letters: str) -> re.Pattern[str]:
    """Match whole tokens of ``letters`` followed by a digit, then letters or digits."""
    if letters:
        start = re.escape(letters) + rf"(?<![A-Za-z0-9]{re.escape(letters)})[0-9]"
    else:
        start = r"[0-9](?<![A-Za-z0-9][0-9])"
    return re.compile(start + r"[A-Za-z0-9]*(?![A-Za-z0-9])")


def is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _clean_names(names: Iterable[object]) -> list[str]:
    cleaned = set()
    short = 0
    for value in names:
        if is_missing(value):
            continue
        name = " ".join(str(value).split()).lower()
        if len(name) < 2:
            short += 1
            continue
        cleaned.add(name)
    if short:
        logger.warning("Ignored %d known names shorter than 2 characters", short)
    return sorted(cleaned)


def _match_value(match: re.Match[str]) -> tuple[str, int]:
    for name, value in match.groupdict().items():
        if value is not None:
            return value, match.start(name)
    return match.group(), match.start()


def find_in_texts(
    texts: Sequence[str], matchers: Matchers, *, numbers: bool = False
) -> Iterator[Match]:
    """Yield (position in texts, offset in text, kind, rule, value) of each match.

    With ``numbers``, the texts are written numbers, so only the patterns of
    phone numbers, resident IDs and known IDs run.
    """
    if not len(texts):
        return
    joined = _SEPARATOR.join(texts)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])

    def locate(offset: int) -> tuple[int, int]:
        position = int(np.searchsorted(starts, offset, side="right") - 1)
        return position, offset - int(starts[position])

    # Report a value that two rules find (a title and a known name) once, and
    # sort the matches into reading order.
    found = {}
    for match in _find_all(joined, matchers, locate, numbers):
        found.setdefault(match[:3], match)
    yield from sorted(found.values(), key=lambda match: match[:2])


def _find_all(joined: str, matchers: Matchers, locate: _Locate, numbers: bool):
    for pattern in matchers.patterns:
        if numbers and pattern.kind not in _NUMBER_KINDS:
            continue
        if pattern.required and not any(text in joined for text in pattern.required):
            continue
        for match in pattern.regex.finditer(joined):
            value, offset = _match_value(match)
            if pattern.kind == "national_id" and not national_id_is_valid(value):
                continue
            yield (*locate(offset), pattern.kind, pattern.rule, value)

    yield from _find_known_ids(joined, matchers, locate)
    if not numbers:
        yield from _find_known_names(joined, matchers, locate)


def _find_known_ids(joined: str, matchers: Matchers, locate: _Locate):
    if matchers.odd_ids is not None:
        for match in matchers.odd_ids.finditer(joined):
            yield (*locate(match.start()), "patient_id", "known ID", match.group())
    for regex, values in matchers.id_tokens:
        if values.isdisjoint(regex.findall(joined)):
            continue
        for match in regex.finditer(joined):
            if match.group() in values:
                yield (*locate(match.start()), "patient_id", "known ID", match.group())


def _find_known_names(joined: str, matchers: Matchers, locate: _Locate):
    searches = [(matchers.other_names, joined)]
    if matchers.latin_names is not None:
        lowered = joined.lower()
        if len(lowered) == len(joined):
            searches.append((matchers.latin_names, lowered))
        else:
            # A few characters change length when lower-cased (such as "İ"), so
            # match case-insensitively to keep the offsets right.
            pattern = matchers.latin_names.pattern
            searches.append((re.compile(pattern, re.IGNORECASE), joined))
    for regex, text in searches:
        if regex is None:
            continue
        for match in regex.finditer(text):
            value = joined[match.start() : match.end()]
            yield (*locate(match.start()), "name", "known name", value)
