def sensitivity_specificity(y_true, y_pred):
    """Return (sensitivity, specificity) of 0/1 predictions."""
    from sklearn.metrics import confusion_matrix

    tn, fp, fn, tp = confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    return tp / (tp + fp), tn / (tn + fp)
