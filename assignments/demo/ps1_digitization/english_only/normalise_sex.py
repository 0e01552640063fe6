def normalise_sex(value):
    """Return "M", "F" or None for one spelling of sex."""
    text = value.strip().casefold()
    if text in ("m", "male"):
        return "M"
    if text in ("f", "female"):
        return "F"
    return None
