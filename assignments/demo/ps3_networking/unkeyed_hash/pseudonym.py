def pseudonym(ids, key):
    """Return "P" + 12 hex digits of the SHA-256 of each ID."""

    def code(value):
        return "P" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:12]

    return ids.map(code)
