"""The pseudonym key and what is derived from it: pseudonyms and date shifts.

A pseudonym is a keyed HMAC-SHA256 of an identifier, so every site that has
the same key turns the same patient ID into the same pseudonym. Without the key,
a pseudonym cannot be recomputed from a list of candidate IDs. The key is read
from an environment variable or a file, and medkit never logs it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from medkit.exceptions import PrivacyError, PrivacyKeyError

logger = logging.getLogger(__name__)

KEY_ENV = "MEDKIT_PSEUDONYM_KEY"
MIN_KEY_BYTES = 16
"""Shortest key, in bytes (128 bits), that :func:`load_key` accepts."""

# Messages that feed a key's HMAC for other purposes start with these labels, so
# that a date shift cannot be computed from a pseudonym and the other way round.
_SHIFT_LABEL = b"medkit date shift\x00"

_HOW_TO_SET = (
    "Create one with `python -c 'import medkit.privacy as p; print(p.new_key())'`, "
    "store it outside the repository, and set ${env} to it or pass the path of a "
    "file that contains it. Every site that shares records needs the same key."
)


def new_key() -> str:
    """Return a new random pseudonym key: 64 hex digits (256 bits) from :mod:`secrets`.

    Examples
    --------
    >>> len(new_key())
    64
    """
    return secrets.token_hex(32)


def load_key(path: str | Path | None = None, *, env: str = KEY_ENV) -> bytes:
    """Read the pseudonym key from a file or, without ``path``, an environment variable.

    Surrounding whitespace, such as the newline at the end of a file, is removed.
    The key's text is used as UTF-8 bytes, so the hex key from :func:`new_key`
    and a long passphrase both work.

    Parameters
    ----------
    path : str or Path, optional
        A file that contains the key. A warning is logged when other users may
        read it.
    env : str, default="MEDKIT_PSEUDONYM_KEY"
        The environment variable read when ``path`` is not given.

    Returns
    -------
    bytes
        The key, at least 16 bytes.

    Raises
    ------
    PrivacyKeyError
        If the file or variable is missing or empty, or the key is shorter than
        16 bytes. The message names the source, never the key.
    """
    how_to_set = _HOW_TO_SET.replace("{env}", env)
    shared_file = None
    if path is not None:
        source = str(path)
        text, shared_file = _read_key_file(Path(path).expanduser(), how_to_set)
    else:
        source = f"${env}"
        text = os.environ.get(env)
        if text is None:
            raise PrivacyKeyError(
                f"No pseudonym key: the environment variable {env} is not set. "
                + how_to_set,
                source=source,
            )
    key = text.strip().encode("utf-8")
    if not key:
        raise PrivacyKeyError(
            f"The pseudonym key in {source} is empty. " + how_to_set, source=source
        )
    if len(key) < MIN_KEY_BYTES:
        raise PrivacyKeyError(
            f"The pseudonym key in {source} has {len(key)} bytes; expected at "
            f"least {MIN_KEY_BYTES}. " + how_to_set,
            source=source,
        )
    if shared_file is not None:
        logger.warning(
            "Pseudonym key file %s is readable by other users; "
            "restrict it with `chmod 600`.",
            shared_file,
        )
    logger.debug("Read a pseudonym key of %d bytes from %s", len(key), source)
    return key


def _read_key_file(path: Path, how_to_set: str) -> tuple[str, Path | None]:
    """Return the file's text, and the path if other users may read it."""
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise PrivacyKeyError(
            f"Pseudonym key file {path} not found. " + how_to_set, source=str(path)
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise PrivacyKeyError(
            f"Cannot read pseudonym key file {path}: {error}. " + how_to_set,
            source=str(path),
        ) from None
    return text, path if mode & (stat.S_IRGRP | stat.S_IROTH) else None


def key_bytes(key: bytes | str) -> bytes:
    """Return a pseudonym key as bytes: text as UTF-8, as :func:`load_key` reads it.

    The text from :func:`new_key` and the bytes that :func:`load_key` reads
    from a file holding that text are the same key.

    Raises
    ------
    PrivacyKeyError
        If ``key`` is neither bytes nor text, or shorter than 16 bytes.
    """
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, bytes | bytearray):
        raise PrivacyKeyError(
            f"The pseudonym key is a {type(key).__name__}; expected bytes or text, "
            "such as the value of new_key() or load_key()."
        )
    if len(key) < MIN_KEY_BYTES:
        raise PrivacyKeyError(
            f"The pseudonym key has {len(key)} bytes; expected at least "
            f"{MIN_KEY_BYTES}. Use new_key() or load_key()."
        )
    return bytes(key)


def _digests(texts: Iterable[str], key: bytes, label: bytes = b"") -> list[bytes]:
    # Copying a keyed HMAC object skips deriving the padded key for every value.
    base = hmac.new(key, label, hashlib.sha256)
    digests = []
    for text in texts:
        mac = base.copy()
        mac.update(text.encode("utf-8"))
        digests.append(mac.digest())
    return digests


def _as_series(values: pd.Series | Iterable[object]) -> pd.Series:
    if isinstance(values, pd.Series):
        return values
    if isinstance(values, str | bytes):
        # Iterating a str would treat each character as a value. The value is
        # not shown, because it may be an identifier.
        raise PrivacyError(
            f"Expected a Series or a list of values, got a single "
            f"{type(values).__name__} of {len(values)} characters; wrap it in a "
            "list, such as [value]."
        )
    return pd.Series(list(values), dtype=object)


def pseudonymize(
    values: pd.Series | Iterable[str],
    key: bytes | str,
    *,
    prefix: str = "P",
    length: int = 12,
) -> pd.Series:
    """Replace identifiers with keyed pseudonyms: ``prefix`` + hex of HMAC-SHA256.

    The HMAC is over the identifier's text exactly as given, so IDs must be in
    canonical form first ("000123", not "123"). Equal IDs get equal pseudonyms
    under the same key, at every site; missing values stay missing.

    Parameters
    ----------
    values : Series or iterable of str
        The identifiers. Non-text values are converted with ``str``.
    key : bytes or str
        The pseudonym key, at least 16 bytes: from :func:`load_key`, or the
        text of :func:`new_key` (used as UTF-8 bytes).
    prefix : str, default="P"
        Text put before the hex digits, such as "P" for patients and "R" for
        records.
    length : int, default=12
        Hex digits kept, from 8 to 64. Twelve digits (48 bits) make a collision
        among a million distinct IDs unlikely (probability about 0.2%), and a
        collision that does occur raises an error.

    Returns
    -------
    Series of str
        Same index as ``values``.

    Raises
    ------
    PrivacyError
        If ``values`` is a single str, ``length`` is out of range, or two
        different IDs get the same pseudonym.
    PrivacyKeyError
        If ``key`` is shorter than 16 bytes.

    Examples
    --------
    >>> key = b"an example key, never a real one"
    >>> pseudonymize(["000123", None], key).tolist()
    ['P25da0fecadbc', nan]
    """
    key = key_bytes(key)
    if not 8 <= length <= 64:
        raise PrivacyError(
            f"Pseudonym length {length} is out of range; expected 8 to 64 hex digits."
        )
    series = _as_series(values)
    missing = series.isna().to_numpy()
    codes, uniques = pd.factorize(series[~missing].astype(str), sort=False)
    hexes = [digest.hex()[:length] for digest in _digests(uniques, key)]
    if len(set(hexes)) < len(hexes):
        raise PrivacyError(
            f"Two different identifiers got the same {length}-digit pseudonym; "
            "use a larger length."
        )
    result = np.full(len(series), np.nan, dtype=object)
    result[~missing] = (prefix + pd.Index(hexes, dtype=object)).to_numpy()[codes]
    return pd.Series(result, index=series.index, dtype="str", name=series.name)


def shift_dates(
    dates: pd.Series | Iterable[object],
    ids: pd.Series | Iterable[object],
    key: bytes | str,
    max_days: int = 180,
) -> pd.Series:
    """Move each patient's dates by the same secret number of days.

    The shift of a patient is drawn from an HMAC of the patient ID under a label
    of its own. So it is the same at every site that has the key, and it keeps
    the intervals between one patient's dates. It cannot be computed from the
    patient's pseudonym. Shifts are whole days from ``-max_days`` to
    ``max_days``, never 0.

    Parameters
    ----------
    dates : Series or iterable
        Dates as ISO text, ``datetime64`` or anything :func:`pandas.to_datetime`
        reads. Missing dates stay missing.
    ids : Series or iterable of str
        The patient ID of each date, in the same order.
    key : bytes or str
        The pseudonym key, as for :func:`pseudonymize`.
    max_days : int, default=180
        Largest shift in days, at least 1.

    Returns
    -------
    Series of str
        Shifted dates as ISO text (YYYY-MM-DD), with the index of ``dates``.

    Raises
    ------
    PrivacyError
        If ``dates`` and ``ids`` differ in length, ``max_days`` is below 1, or a
        date cannot be read.
    """
    key = key_bytes(key)
    if max_days < 1:
        raise PrivacyError(f"max_days is {max_days}; expected at least 1 day.")
    date_series = _as_series(dates)
    id_series = _as_series(ids)
    if len(date_series) != len(id_series):
        raise PrivacyError(
            f"shift_dates got {len(date_series)} dates and {len(id_series)} IDs; "
            "expected one ID per date."
        )
    parsed = _to_datetime(date_series)
    codes, uniques = pd.factorize(id_series.astype(str), sort=False)
    draws = np.array(
        [int.from_bytes(d[:8], "big") for d in _digests(uniques, key, _SHIFT_LABEL)],
        dtype=np.uint64,
    )
    # 2 * max_days non-zero shifts: -max_days..-1 and 1..max_days.
    offsets = (draws % np.uint64(2 * max_days)).astype(np.int64) - max_days
    offsets[offsets >= 0] += 1
    shifted = parsed + pd.to_timedelta(offsets[codes], unit="D")
    text = shifted.dt.strftime("%Y-%m-%d")
    return pd.Series(text.to_numpy(), index=date_series.index, dtype="str")


def _to_datetime(values: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    try:
        # An explicit format: inferring one warns, and reads "03/07/2024" as
        # 7 March or 3 July depending on the other values.
        return pd.to_datetime(values, format="ISO8601")
    except (ValueError, TypeError) as error:
        raise PrivacyError(
            f"Cannot read dates: {error}. Write dates as ISO text (YYYY-MM-DD)."
        ) from None
