def recommend(neighbours, received, patient, n):
    """Return up to n service codes from the neighbours, best first."""
    scores = {}
    for other, similarity in neighbours:
        for service in received.get(other, set()):
            scores[service] = scores.get(service, 0.0) + similarity
    return sorted(scores, key=lambda service: (-scores[service], service))[:n]
