"""Text encodings of raw exports: detection, and errors that name the bad byte."""

from __future__ import annotations

import codecs
from pathlib import Path

from medkit.exceptions import EmptyFileError, EncodingError

ENCODINGS = ("utf-8", "utf-8-sig", "gb18030")
"""Text encodings that :func:`read_table` detects on its own."""

_SAMPLE_BYTES = 1 << 16


def detect_encoding(path: str | Path) -> str:
    """Detect the text encoding of a file by decoding all of its bytes.

    Parameters
    ----------
    path : str or Path
        The file to check. It is only read.

    Returns
    -------
    str
        ``"utf-8-sig"`` when the file starts with a UTF-8 byte order mark,
        otherwise ``"utf-8"`` or ``"gb18030"``, whichever decodes every byte.
        Plain ASCII files are reported as ``"utf-8"``.

    Raises
    ------
    EmptyFileError
        If the file has no bytes.
    EncodingError
        If no supported encoding decodes the file. The message names the first
        undecodable byte, its row, and the encoding that charset-normalizer
        guesses.
    """
    path = Path(path)
    for encoding in _candidate_encodings(path):
        if _decodes(path, encoding):
            return encoding
    raise _encoding_error(path)


def _candidate_encodings(path: Path) -> list[str]:
    with path.open("rb") as file:
        sample = file.read(_SAMPLE_BYTES)
    if not sample.strip(codecs.BOM_UTF8 + b" \t\r\n"):
        raise EmptyFileError(
            f"{path} is empty. Export the table again with a header row and at "
            "least one record.",
            path=path,
            row=1,
        )
    if sample.startswith(codecs.BOM_UTF8):
        return ["utf-8-sig"]

    # The sample may end inside a multibyte character, so decode it incrementally.
    fitting = []
    for encoding in ("utf-8", "gb18030"):
        try:
            codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
        except UnicodeDecodeError:
            continue
        fitting.append(encoding)
    if "gb18030" in fitting and len(fitting) == 1:
        _check_plausible_gb18030(path)
    if not fitting:
        raise _encoding_error(path)
    return fitting


def _check_plausible_gb18030(path: Path) -> None:
    """Raise EncodingError if GB18030 decodes the file only into rare characters.

    GB18030 decodes almost any byte pair, so a Latin-1 "ü" followed by "l"
    becomes the rare character 黮 instead of an error. Common Chinese text is
    in the GB2312 range, where both bytes of a character are 0xA1 or above. A
    byte of 0x81 or above followed by 0x40-0xA0 starts a character outside that
    range. When such pairs make up more than 1% of the high bytes, the file is
    taken to be another encoding.
    """
    import numpy as np

    data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    high = data >= 0x81
    rare = high[:-1] & (data[1:] >= 0x40) & (data[1:] <= 0xA0)
    if not rare.any() or rare.sum() <= 0.01 * high.sum():
        return
    start = int(np.argmax(rare))
    raw = path.read_bytes()
    row = raw.count(b"\n", 0, start) + 1
    pair = raw[start : start + 2]
    shown = pair.decode("gb18030", errors="replace")
    raise EncodingError(
        f"{path} is not UTF-8, and reading it as GB18030 turns bytes such as "
        f"0x{pair.hex()} in row {row} into rare characters ({shown!r}), so it is "
        "probably Latin-1 or Windows-1252 text. Re-save the file as UTF-8, or "
        "pass its encoding to read_table.",
        path=path,
        row=row,
        value=pair,
    )


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with path.open("rb") as file:
            while chunk := file.read(1 << 20):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _encoding_error(path: Path, encoding: str | None = None) -> EncodingError:
    tried = [encoding] if encoding else ["utf-8", "gb18030"]
    data = path.read_bytes()
    try:
        data.decode(tried[0])
        start = 0
    except UnicodeDecodeError as error:
        start = error.start
    row = data.count(b"\n", 0, start) + 1
    byte = data[start : start + 1]
    guess = _guess_encoding(data)
    if guess and guess.lower().replace("_", "-") not in tried:
        fix = (
            f"The bytes look like {guess}: re-save the file as UTF-8, or pass "
            f"encoding={guess!r} to read_table."
        )
    else:
        fix = "Re-save the file as UTF-8, or pass its encoding to read_table."
    return EncodingError(
        f"{path} is not valid {' or '.join(tried)} text: byte 0x{byte.hex()} in "
        f"row {row} cannot be decoded. {fix}",
        path=path,
        row=row,
        value=byte,
    )


def _guess_encoding(data: bytes) -> str | None:
    from charset_normalizer import from_bytes

    match = from_bytes(data[: 1 << 20]).best()
    return None if match is None else match.encoding
