def to_missing(series, tokens=MISSING):
    """Replace the missing-value spellings in tokens by 0."""
    stripped = series.str.strip()
    return stripped.mask(stripped.isin(tokens), "0")
