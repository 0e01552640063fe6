"""Fast checks of ID columns, whose values are nearly all distinct.

Factorizing an ID column saves nothing, and calling Python per value is the
slowest step of cleaning a large table. Most IDs are already written in
canonical form, so the ID rules find those with numpy and call Python only for
the rest.
"""

from __future__ import annotations

import numpy as np

from medkit._specs import IdFormat

NOT_CANONICAL = -1
"""The number :func:`id_numbers` gives to an ID not in canonical form."""


def id_numbers(values: np.ndarray, id_format: IdFormat) -> np.ndarray:
    """Return the number of each ID written in canonical form, -1 for the others.

    The canonical form is the prefix followed by exactly ``digits`` ASCII
    digits, such as ``V0000123`` (number 123). Two canonical IDs are equal
    exactly when their numbers are.

    Parameters
    ----------
    values : numpy.ndarray of str
        The IDs as written.
    id_format : IdFormat
        Prefix and number of digits; at most 18 digits, so numbers fit int64.

    Returns
    -------
    numpy.ndarray of int64
        One number per value.
    """
    prefix = id_format.prefix
    width = len(prefix) + id_format.digits
    numbers = np.full(len(values), NOT_CANONICAL, dtype=np.int64)
    lengths = np.fromiter(map(len, values), dtype=np.intp, count=len(values))
    candidates = np.flatnonzero(lengths == width)
    if not len(candidates):
        return numbers

    # Values of equal length, joined and encoded, form a matrix with one code
    # point per cell: one byte each for ASCII text, four otherwise.
    joined = "".join(values[candidates])
    if joined.isascii() and prefix.isascii():
        chars = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
    else:
        chars = np.frombuffer(joined.encode("utf-32-le"), dtype="<u4")
    chars = chars.reshape(len(candidates), width)
    expected = np.array([ord(letter) for letter in prefix], dtype=chars.dtype)
    valid = (chars[:, : len(prefix)] == expected).all(axis=1)
    number = np.zeros(len(candidates), dtype=np.int64)
    zero = chars.dtype.type(ord("0"))
    for position in range(len(prefix), width):
        # Code points below "0" wrap around to large unsigned numbers.
        digit = chars[:, position] - zero
        valid &= digit < 10
        number *= 10
        number += digit
    numbers[candidates[valid]] = number[valid]
    return numbers


def normalize_id(value: str, id_format: IdFormat) -> str:
    """Upper-case an ID, remove spaces inside it and zero-pad its number.

    The number is padded only if ``id_format.pad`` is set. A value that cannot
    be put in canonical form is returned upper-cased without spaces.
    """
    compact = "".join(value.split()).upper()
    if not compact.startswith(id_format.prefix):
        return compact
    number = compact[len(id_format.prefix) :]
    if id_format.pad and number.isascii() and number.isdigit():
        number = number.zfill(id_format.digits)
    return id_format.prefix + number
