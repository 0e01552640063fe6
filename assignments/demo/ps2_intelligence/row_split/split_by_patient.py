def split_by_patient(frame, test_size=0.25, seed=0):
    """Split rows into (train, test) at random, stratified by outcome."""
    from sklearn.model_selection import train_test_split

    return train_test_split(
        frame, test_size=test_size, stratify=frame[OUTCOME], random_state=seed
    )
