"""Patterns of direct identifiers in text, and how a found value is masked.

Each pattern is a compiled regular expression with the kind of identifier it
finds. Numbers must stand alone: a digit or ASCII letter right before or after a
match rules it out, so "13812345678" inside a longer number or a hex pseudonym
is not a phone number. Chinese characters count as separators, so
"电话13812345678" is found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_EDGE_BEFORE = r"(?<![0-9A-Za-z])"
_EDGE_AFTER = r"(?![0-9A-Za-z])"

# Common Chinese family names, for "王先生"-style mentions in notes.
CHINESE_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚"
    "邵万钱严覃武戴莫孔向汤"
)
ENGLISH_TITLES = ("Mr", "Mrs", "Ms", "Miss", "Mx", "Dr", "Prof")
"""Titles before a surname that the pattern "title and surname" finds."""
STREET_KINDS = (
    "Road", "Street", "Lane", "Avenue", "Close", "Drive", "Way", "Court", "Place",
    "Crescent", "Terrace", "Rd", "St", "Ave",
)  # fmt: skip

# Weights and check characters of ISO 7064 MOD 11-2, as resident IDs use them.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


@dataclass(frozen=True)
class Pattern:
    """A regular expression that finds one kind of identifier.

    ``rule`` names the pattern in findings. When the expression has a group
    whose name starts with "value", only that group is the identifier (the rest
    is context such as a title or a label). A text that contains none of the
    ``required`` substrings is skipped without running the expression.
    """

    kind: str
    rule: str
    regex: re.Pattern[str]
    required: tuple[str, ...] = ()


_SURNAME = f"[{CHINESE_SURNAMES}]"
_HAN = r"[\u3400-\u9fff]"
_LATIN_WORD = r"[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?"
# A title that follows no letter, longest first: "M(?<![A-Za-z]M)rs|...".
_TITLE = "(?:{})".format(
    "|".join(
        f"{title[0]}(?<![A-Za-z]{title[0]}){title[1:]}"
        for title in sorted(ENGLISH_TITLES, key=len, reverse=True)
    )
)

# Python's regex engine jumps straight to a literal first character, but tries
# every position when a pattern starts with an assertion. So each pattern below
# starts with a character and checks what comes before it with a lookbehind
# that includes that character: "1(?<![0-9A-Za-z]1)" is a 1 that no digit or
# letter precedes.
PATTERNS: tuple[Pattern, ...] = (
    Pattern(
        "phone",
        "mobile number",
        # Preceded by a separator, or by the country code +86 or 0086.
        re.compile(
            r"1(?:(?<![0-9A-Za-z]1)|(?<=[+0]861))[3-9][0-9](?:[ -]?[0-9]{4}){2}"
            + _EDGE_AFTER
        ),
    ),
    Pattern(
        "phone",
        "landline number",
        re.compile(r"0(?<![0-9A-Za-z]0)[1-9][0-9]{1,2}-[2-9][0-9]{6,7}" + _EDGE_AFTER),
        required=("-",),
    ),
    Pattern(
        "phone",
        "landline number",
        re.compile(r"\(0[1-9][0-9]{1,2}\) ?[2-9][0-9]{6,7}" + _EDGE_AFTER),
        required=("(",),
    ),
    Pattern(
        "national_id",
        "resident ID number",
        re.compile(
            r"[1-9](?<![0-9A-Za-z][1-9])[0-9]{5} ?(?:18|19|20)[0-9]{2}"
            r"(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01]) ?[0-9]{3}[0-9Xx]"
            + _EDGE_AFTER
        ),
    ),
    Pattern(
        "email",
        "e-mail address",
        re.compile(
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+"
            r"(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![A-Za-z])"
        ),
        required=("@",),
    ),
    Pattern(
        "address",
        "street and number",
        re.compile(_HAN + r"{1,6}(?:路|街|大道|巷|胡同)[0-9]{1,5}号"),
        required=("号",),
    ),
    Pattern(
        "address",
        "number and street",
        re.compile(
            r"[0-9](?<![0-9A-Za-z][0-9])[0-9]{0,4}[A-Za-z]?,? (?:[A-Z][a-z]+ ){1,3}"
            + f"(?:{'|'.join(STREET_KINDS)})"
            + r"\b"
        ),
    ),
    Pattern(
        "name",
        "title and surname",
        re.compile(_TITLE + rf"\.? +(?P<value>{_LATIN_WORD}(?: {_LATIN_WORD})?)"),
    ),
    Pattern(
        "name",
        "name label",
        re.compile(
            r"[Nn](?<![A-Za-z][Nn])ame *[:：] *"
            rf"(?P<value>{_LATIN_WORD}(?: +{_LATIN_WORD}){{0,3}}|{_HAN}{{2,5}})"
        ),
    ),
    Pattern(
        "name",
        "name label",
        re.compile(rf"姓名 *[:：]? *(?P<value>{_HAN}{{2,4}})"),
        required=("姓名",),
    ),
    Pattern(
        "name",
        "surname and honorific",
        re.compile(rf"{_SURNAME}{_HAN}{{0,2}}(?:先生|女士|小姐)"),
        required=("先生", "女士", "小姐"),
    ),
)
"""The identifier patterns that :func:`medkit.privacy.scan` applies to all text."""


def national_id_is_valid(text: str) -> bool:
    """Return True when an 18-character resident ID has the right check character.

    The check character is ISO 7064 MOD 11-2 over the first 17 digits. Spaces
    are ignored.

    Examples
    --------
    >>> national_id_is_valid("994097195603011927")
    True
    >>> national_id_is_valid("994097195603011928")
    False
    """
    compact = text.replace(" ", "").upper()
    if len(compact) != 18 or not compact[:17].isdigit():
        return False
    total = sum(
        int(digit) * weight
        for digit, weight in zip(compact[:17], _ID_WEIGHTS, strict=True)
    )
    return _ID_CHECK[total % 11] == compact[17]


def trie_regex(words: Iterable[str], *, latin: bool) -> re.Pattern[str] | None:
    """Compile one regular expression that matches any of ``words``, longest first.

    Alternatives are nested by common prefix, so matching costs about the length
    of a word, whatever the number of words. A plain alternation of thousands of
    names would be tried name by name at every position. A space in a word matches any
    run of whitespace. With ``latin``, a match must not touch other ASCII
    letters; the words and the text should then both be lower case, because
    ``re.IGNORECASE`` makes matching several times slower.
    """
    trie: dict[str, dict] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    if not trie:
        return None
    body = _trie_body(trie)
    if latin:
        return re.compile(rf"(?<![A-Za-z]){body}(?![A-Za-z])")
    return re.compile(body)


def _trie_body(node: dict[str, dict]) -> str:
    branches = []
    for char, child in sorted(node.items()):
        if not char:
            continue
        atom = r"\s+" if char == " " else re.escape(char)
        branches.append(atom + _trie_body(child))
    if not branches:
        return ""
    optional = "" in node
    if len(branches) == 1 and not optional:
        return branches[0]
    return "(?:" + "|".join(branches) + ")" + ("?" if optional else "")


def mask(kind: str, value: str) -> str:
    """Hide most of a found value so that a report can be shared.

    Examples
    --------
    >>> mask("phone", "138-1234-5678")
    '138****5678'
    >>> mask("name", "John Smith")
    'J*** S****'
    >>> mask("email", "john.smith@example.org")
    'j***@example.org'
    """
    value = str(value).strip()
    if kind == "phone":
        digits = re.sub(r"[^0-9]", "", value)
        if len(digits) == 13 and digits.startswith("86"):
            digits = digits[2:]
        return digits[:3] + "*" * max(len(digits) - 7, 1) + digits[-4:]
    if kind == "national_id":
        compact = value.replace(" ", "")
        return compact[:2] + "*" * (len(compact) - 4) + compact[-2:]
    if kind == "email":
        local, _, domain = value.partition("@")
        return local[:1] + "***@" + domain
    if kind == "name":
        return " ".join(word[:1] + "*" * (len(word) - 1) for word in value.split())
    if kind == "patient_id":
        return "*" * max(len(value) - 2, 1) + value[-2:]
    return value[:2] + "*" * min(max(len(value) - 2, 1), 8)
