def top_k(similarity, i, k):
    """Return the indices of the k patients most similar to patient i."""
    order = sorted(range(len(similarity)), key=lambda j: (-similarity[i][j], j))
    return order[:k]
