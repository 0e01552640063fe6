def parse_date(text):
    """Return the ISO form of a date."""
    return pd.to_datetime(text.strip()).date().isoformat()
