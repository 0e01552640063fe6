def recommend_top3(patient_id):
    """Return the three services most common among the patient's neighbours."""
    neighbours = personalize.nearest_neighbors(vectors, patient_id, k=10)
    theirs = received[received["patient_id"].isin(neighbours["neighbor_id"])]
    return theirs["service_code"].value_counts().index[:3].tolist()
