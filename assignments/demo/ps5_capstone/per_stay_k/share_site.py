def share_site(patients, visits, key):
    """Return site B's shared records, 5-anonymous on QUASI counted in stays."""
    shared = privacy.shared_records(patients, visits, key, site="site_b")
    widen = privacy.DEFAULT_GENERALIZERS["age_band"][0]
    coarse = shared.assign(
        age_band=widen(shared["age_band"]),
        postcode_prefix=shared["postcode_prefix"].str[:1],
    )
    result = privacy.enforce_k_anonymity(coarse, QUASI, k=5, max_suppressed=1.0)
    return result.frame
