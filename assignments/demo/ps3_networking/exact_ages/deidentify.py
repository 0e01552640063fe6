def deidentify(stays, key):
    """Return the stays without names, phone numbers, national IDs or addresses."""
    shared = stays.drop(columns=["name", "phone", "national_id", "address", "visit_id"])
    shared["patient_pseudonym"] = pseudonym(shared.pop("patient_id"), key)
    days = pd.to_datetime(stays["discharge_date"]) - pd.to_datetime(stays["admit_date"])
    shared["length_of_stay"] = days.dt.days
    return shared
