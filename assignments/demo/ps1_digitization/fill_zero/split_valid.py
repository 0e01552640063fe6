def split_valid(frame):
    """Keep the rows with a plausible age and drop the others."""
    age = pd.to_numeric(frame["age"], errors="coerce").fillna(0)
    return frame[age.between(0, 120)].copy(), frame.iloc[0:0].copy()
