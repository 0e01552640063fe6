def tokenize_zh(text):
    """Return the tokens of scikit-learn's default pattern: runs of word characters."""
    import re

    return re.findall(r"(?u)\b\w\w+\b", text)
