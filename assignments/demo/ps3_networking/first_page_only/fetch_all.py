def fetch_all(url, token, page_size=100, **filters):
    """Return the records of GET /records that match the filters, as a DataFrame."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    params = {"page_size": page_size, **filters}
    response = httpx.get(f"{url}/records", params=params, headers=headers, timeout=10)
    response.raise_for_status()
    return pd.DataFrame(response.json()["records"])
