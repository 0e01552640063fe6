"""Tests for medkit.network: the site service, its storage, the client and the CLI."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import sqlite3
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.preprocessing import FunctionTransformer

from medkit import datasets, intelligence, network, privacy
from medkit._service import suppress_small_cells
from medkit.cli import main
from medkit.exceptions import (
    ModelFileError,
    RecordFormatError,
    ServiceError,
    ServiceSettingError,
)

TOKEN = "test-token-0123456789abcdef"
AUTH = {"authorization": f"Bearer {TOKEN}"}
KEY = b"network tests pseudonym key, not a real one"


def make_records(count: int, start: int = 0, site: str = "A") -> list[dict]:
    """Return ``count`` valid shared records with pseudonyms made from a number."""
    departments = ["心内科", "呼吸内科", "骨科", "急诊科"]
    codes = ["I50.0", "J44.1", "S72.0"]
    records = []
    for number in range(start, start + count):
        digest = hashlib.sha256(f"record {number}".encode()).hexdigest()
        records.append(
            {
                "record_id": f"R{digest[:16]}",
                "patient_pseudonym": f"P{digest[16:28]}",
                "site": site,
                "sex": "MF"[number % 2],
                "age_band": ["50-59", "60-69", "70-79"][number % 3],
                "admit_month": f"2024-{number % 12 + 1:02d}",
                "length_of_stay": number % 10 + 1,
                "postcode_prefix": f"{100 + number % 5}",
                "department": departments[number % 4],
                "icd10": codes[number % 3],
                "systolic_bp": None if number % 7 == 0 else 110 + number % 40,
                "heart_rate": 60 + number % 40,
                "readmit_30d": int(number % 4 == 0),
            }
        )
    return records


class AppClient:
    """Send requests to an ASGI application in this process, one event loop each."""

    def __init__(self, app) -> None:
        self.app = app

    def request(self, method: str, path: str, **options) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://127.0.0.1"
            ) as client:
                return await client.request(method, path, **options)

        return asyncio.run(send())

    def get(self, path: str, **options) -> httpx.Response:
        return self.request("GET", path, **options)

    def post(self, path: str, **options) -> httpx.Response:
        return self.request("POST", path, **options)

    def put(self, path: str, **options) -> httpx.Response:
        return self.request("PUT", path, **options)


def upload(client: AppClient, records: list[dict]) -> httpx.Response:
    return client.post("/records", json={"records": records}, headers=AUTH)


def stored_count(client: AppClient) -> int:
    return client.get("/health").json()["records"]


@pytest.fixture
def app():
    return network.create_app("A", token=TOKEN)


@pytest.fixture
def client(app) -> AppClient:
    return AppClient(app)


@pytest.fixture(scope="module")
def shared() -> pd.DataFrame:
    patients = datasets.load_answer_key("patients")
    visits = datasets.load_answer_key("visits")
    return privacy.shared_records(patients, visits, KEY, "A")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    data = intelligence.load_breast_cancer()
    path = tmp_path_factory.mktemp("model") / "cancer.skops"
    intelligence.save_model(intelligence.fit_model(data, "logistic"), path)
    return path


@pytest.fixture(scope="module")
def site():
    with network.start_site("A", token=TOKEN, max_page_size=500) as running:
        yield running


@pytest.fixture(scope="module")
def loaded_site(site, shared) -> tuple[network.RunningSite, network.UploadResult]:
    """Return the running site after uploading the answer key, and the upload result."""
    return site, site.client().upload(shared, batch_size=1000)


# create_app settings


def test_create_app_short_token_raises() -> None:
    with pytest.raises(ServiceSettingError, match="token has 5 characters"):
        network.create_app("A", token="short")


@pytest.mark.parametrize("name", ["", "../etc", "site A", "-A"], ids=str)
def test_create_app_invalid_site_raises(name: str) -> None:
    with pytest.raises(ServiceSettingError, match="Site name"):
        network.create_app(name, token=TOKEN)


def test_create_app_page_sizes_raise() -> None:
    with pytest.raises(ServiceSettingError, match="default_page_size 200 is larger"):
        network.create_app("A", token=TOKEN, default_page_size=200, max_page_size=100)


def test_create_app_zero_body_limit_raises() -> None:
    with pytest.raises(ServiceSettingError, match="max_body_bytes is 0"):
        network.create_app("A", token=TOKEN, max_body_bytes=0)


# Authentication and health


def test_health_without_token_200(client: AppClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "site": "A", "records": 0}


@pytest.mark.parametrize(
    "path", ["/records", "/records/R0123456789ab", "/stats", "/models"]
)
def test_endpoint_without_token_401(client: AppClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="medkit"'
    assert response.json()["detail"].startswith("Missing bearer token.")


def test_endpoint_wrong_token_403(client: AppClient) -> None:
    response = client.get("/records", headers={"authorization": "Bearer " + "x" * 26})
    assert response.status_code == 403
    assert response.json()["detail"].startswith("Invalid bearer token.")


def test_endpoint_basic_scheme_401(client: AppClient) -> None:
    response = client.get("/records", headers={"authorization": f"Basic {TOKEN}"})
    assert response.status_code == 401


def test_upload_without_token_rejected_before_body(client: AppClient) -> None:
    # Invalid JSON gets 401, not 422: the token is checked before the body is read.
    response = client.post("/records", content=b"{not json")
    assert response.status_code == 401


def test_docs_served_without_token(client: AppClient) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"] == {
        "bearer": {"type": "http", "scheme": "bearer"}
    }
    assert schema["paths"]["/records"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in schema["paths"]["/health"]["get"]
    assert set(schema["paths"]) == {
        "/health",
        "/records",
        "/records/{record_id}",
        "/stats",
        "/models/{name}",
        "/models",
    }


# Uploads


def test_upload_stores_records(client: AppClient) -> None:
    response = upload(client, make_records(3))
    assert response.status_code == 200
    body = response.json()
    assert body["stored"] == 3
    assert body["existing"] == 0
    assert len(body["batch_id"]) == 32
    assert stored_count(client) == 3


def test_upload_retry_stores_nothing_new(client: AppClient) -> None:
    upload(client, make_records(3))
    again = upload(client, make_records(4)).json()
    assert again["stored"] == 1
    assert again["existing"] == 3
    assert stored_count(client) == 4


def test_upload_identical_duplicate_in_batch_stored_once(client: AppClient) -> None:
    records = make_records(2)
    body = upload(client, [*records, records[0]]).json()
    assert body["stored"] == 2
    assert body["existing"] == 1
    assert stored_count(client) == 2


def test_upload_conflicting_duplicate_in_batch_422(client: AppClient) -> None:
    records = make_records(3)
    changed = {**records[1], "readmit_30d": 1 - records[1]["readmit_30d"]}
    response = upload(client, [*records, changed])
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert f"{records[1]['record_id']} at records[1, 3]" in detail
    assert "Nothing was stored." in detail
    assert response.json()["record_ids"] == [records[1]["record_id"]]
    assert stored_count(client) == 0


def test_upload_conflict_with_stored_record_409(client: AppClient) -> None:
    records = make_records(3)
    upload(client, records[:1])
    changed = {**records[0], "length_of_stay": 99}
    response = upload(client, [records[1], records[2], changed])
    assert response.status_code == 409
    assert records[0]["record_id"] in response.json()["detail"]
    assert stored_count(client) == 1


def test_upload_extra_field_422(client: AppClient) -> None:
    record = {**make_records(1)[0], "ward": "7B"}
    response = upload(client, [record])
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "Request rejected with 1 validation error: records[0].ward: field 'ward' "
        "is not part of the shared record; remove it. Nothing was stored."
    )
    assert stored_count(client) == 0


def test_upload_name_field_422(client: AppClient) -> None:
    record = {**make_records(1)[0], "name": "张伟"}
    response = upload(client, [record])
    assert response.status_code == 422
    body = response.json()
    (finding,) = body["findings"]
    assert finding["kind"] == "name"
    assert "'name'" in finding["location"]
    assert finding["value_masked"] == "张*"
    assert body["detail"].startswith(
        f"Upload rejected: 1 direct identifier found (name at {finding['location']})."
    )
    assert "Nothing was stored." in body["detail"]
    assert "张伟" not in response.text
    assert stored_count(client) == 0


def test_upload_phone_in_text_field_422(client: AppClient) -> None:
    records = make_records(3)
    records[2]["department"] = "心内科 13812345678"
    response = upload(client, records)
    assert response.status_code == 422
    body = response.json()
    (finding,) = body["findings"]
    assert finding["kind"] == "phone"
    assert "2" in finding["location"]
    assert "'department'" in finding["location"]
    assert finding["value_masked"] == "138****5678"
    assert f"phone at {finding['location']}" in body["detail"]
    assert "13812345678" not in response.text
    assert stored_count(client) == 0


def test_upload_raw_ids_422(client: AppClient) -> None:
    record = {
        **make_records(1)[0],
        "record_id": "V0000001",
        "patient_pseudonym": "000263",
    }
    response = upload(client, [record])
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [error["loc"] for error in errors] == [
        "records[0].record_id",
        "records[0].patient_pseudonym",
    ]
    assert errors[1]["message"] == (
        "not a pseudonym: expected 'P' and hexadecimal digits, as "
        "medkit.privacy.pseudonymize makes them"
    )
    assert "000263" not in response.text


def test_upload_full_postcode_422(client: AppClient) -> None:
    record = {**make_records(1)[0], "postcode_prefix": "730945"}
    response = upload(client, [record])
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "loc": "records[0].postcode_prefix",
            "message": "expected the first 1 to 3 digits of the postcode, or '*' "
            "(medkit.privacy.postcode_prefix)",
        }
    ]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_upload_non_finite_constant_422(client: AppClient, constant: str) -> None:
    text = json.dumps({"records": make_records(1)}).replace(
        '"heart_rate": 60', f'"heart_rate": {constant}'
    )
    response = client.post(
        "/records",
        content=text,
        headers={**AUTH, "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"] == (
        f"Request body contains {constant}, which is not valid JSON. Send null for "
        "a missing value and finite numbers otherwise."
    )
    assert stored_count(client) == 0


def test_upload_invalid_json_422(client: AppClient) -> None:
    response = client.post(
        "/records",
        content=b'{"records": [',
        headers={**AUTH, "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("Request body is not valid JSON (")


def test_upload_text_plain_body_422(client: AppClient) -> None:
    response = client.post(
        "/records",
        content=b"not json",
        headers={**AUTH, "content-type": "text/plain"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == "body"
    assert stored_count(client) == 0


def test_upload_missing_field_422(client: AppClient) -> None:
    record = make_records(1)[0]
    del record["sex"]
    response = upload(client, [record])
    assert response.json()["errors"] == [
        {
            "loc": "records[0].sex",
            "message": "required field is missing; send null if the value is unknown",
        }
    ]


def test_upload_empty_batch_422(client: AppClient) -> None:
    response = upload(client, [])
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == "records"


def test_upload_null_sex_and_bp_stored(client: AppClient) -> None:
    record = {**make_records(1)[0], "sex": None, "systolic_bp": None}
    assert upload(client, [record]).status_code == 200
    stored = client.get(f"/records/{record['record_id']}", headers=AUTH).json()
    assert stored == record


def test_upload_body_over_limit_413() -> None:
    client = AppClient(network.create_app("A", token=TOKEN, max_body_bytes=2000))
    response = upload(client, make_records(10))
    assert response.status_code == 413
    assert "larger than this site's limit of 2,000 bytes" in response.json()["detail"]
    assert stored_count(client) == 0


def test_upload_chunked_body_over_limit_413() -> None:
    client = AppClient(network.create_app("A", token=TOKEN, max_body_bytes=2000))
    body = json.dumps({"records": make_records(10)}).encode()

    async def chunks():
        for start in range(0, len(body), 500):
            yield body[start : start + 500]

    response = client.post(
        "/records",
        content=chunks(),
        headers={**AUTH, "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert stored_count(client) == 0


# Queries


def test_records_default_page(client: AppClient) -> None:
    records = make_records(150)
    upload(client, records)
    page = client.get("/records", headers=AUTH).json()
    assert page["page"] == 1
    assert page["page_size"] == 100
    assert page["total"] == 150
    ordered = sorted(record["record_id"] for record in records)
    assert [record["record_id"] for record in page["records"]] == ordered[:100]


def test_records_second_page(client: AppClient) -> None:
    records = make_records(150)
    upload(client, records)
    page = client.get("/records?page=2&page_size=100", headers=AUTH).json()
    ordered = sorted(record["record_id"] for record in records)
    assert [record["record_id"] for record in page["records"]] == ordered[100:]


def test_records_page_size_over_max_422(client: AppClient) -> None:
    response = client.get("/records?page_size=1001", headers=AUTH)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "loc": "query parameter page_size",
            "message": "Input should be less than or equal to 1000",
        }
    ]


def test_records_filters(client: AppClient) -> None:
    records = make_records(24)
    upload(client, records)
    page = client.get(
        "/records?department=骨科&sex=M&page_size=50", headers=AUTH
    ).json()
    expected = sorted(
        r["record_id"] for r in records if r["department"] == "骨科" and r["sex"] == "M"
    )
    assert page["total"] == len(expected) == 6
    assert [r["record_id"] for r in page["records"]] == expected


def test_records_unknown_filter_422(client: AppClient) -> None:
    upload(client, make_records(3))
    response = client.get("/records?dept=骨科", headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "Unknown query parameter 'dept'; use admit_month, age_band, department, "
        "icd10, page, page_size, sex, site."
    )


def test_record_by_id_404(client: AppClient) -> None:
    response = client.get("/records/R0000aaaa1111", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["detail"] == (
        "No record with record_id 'R0000aaaa1111' at site A."
    )


def stays_by_department(plan: list[tuple[str, int, int, int]]) -> list[dict]:
    """Make records from (department, stays, patients, readmitted) rows."""
    records, number = [], 0
    for department, stays, patients, readmitted in plan:
        for index in range(stays):
            record = make_records(1, start=number)[0]
            record["department"] = department
            record["patient_pseudonym"] = f"P{number - index + index % patients:012x}"
            record["readmit_30d"] = int(index < readmitted)
            records.append(record)
            number += 1
    return records


def test_stats_suppresses_small_cells(client: AppClient) -> None:
    # 急诊科 has 4 patients, fewer than 5, so it is suppressed. As the only
    # suppressed cell, its count would be the total minus the rest, so the next
    # smallest, 骨科 with 5 patients, is suppressed too.
    plan = [
        ("心内科", 7, 7, 3),
        ("呼吸内科", 6, 6, 1),
        ("骨科", 5, 5, 1),
        ("急诊科", 4, 4, 2),
    ]
    upload(client, stays_by_department(plan))
    body = client.get("/stats?group_by=department", headers=AUTH).json()
    assert body == {
        "group_by": ["department"],
        "min_cell": 5,
        "rows": [
            {"department": "呼吸内科", "n": 6, "readmit_rate": 0.1667},
            {"department": "心内科", "n": 7, "readmit_rate": 0.4286},
        ],
        "suppressed": 2,
    }


def test_stats_counts_patients_not_stays(client: AppClient) -> None:
    # 骨科 has 6 stays of one patient: suppressed although 6 >= 5. With 急诊科
    # (4 patients) two cells are suppressed, so no secondary suppression.
    plan = [
        ("心内科", 7, 7, 3),
        ("呼吸内科", 6, 6, 1),
        ("骨科", 6, 1, 0),
        ("急诊科", 4, 4, 2),
    ]
    upload(client, stays_by_department(plan))
    body = client.get("/stats?group_by=department", headers=AUTH).json()
    assert body["rows"] == [
        {"department": "呼吸内科", "n": 6, "readmit_rate": 0.1667},
        {"department": "心内科", "n": 7, "readmit_rate": 0.4286},
    ]
    assert body["suppressed"] == 2


@pytest.mark.parametrize(
    "patients, kept, suppressed",
    [
        ([9, 7, 5, 4], [9, 7], 2),
        ([9, 7, 3, 4], [9, 7], 2),
        ([9, 7, 6, 5], [9, 7, 6, 5], 0),
        ([4, 9], [], 2),
        ([4], [], 1),
        ([9], [9], 0),
    ],
    ids=["one-small", "two-small", "none-small", "one-left", "only-cell", "one-cell"],
)
def test_suppress_small_cells_secondary(
    patients: list[int], kept: list[int], suppressed: int
) -> None:
    cells = [
        {"g": i, "n": count + 1, "patients": count} for i, count in enumerate(patients)
    ]
    rows, count = suppress_small_cells(cells, 5)
    assert [row["n"] - 1 for row in rows] == kept
    assert count == suppressed
    assert all("patients" not in row for row in rows)


def test_stats_without_group_is_total(client: AppClient) -> None:
    upload(client, make_records(8))
    body = client.get("/stats", headers=AUTH).json()
    # Records 0 and 4 are readmitted (number % 4 == 0).
    assert body["rows"] == [{"n": 8, "readmit_rate": 0.25}]
    assert body["suppressed"] == 0


@pytest.mark.parametrize(
    ("group_by", "message"),
    [
        ("record_id", "Cannot group by 'record_id'"),
        ("sex,sex", "group_by lists 'sex' more than once; give each field once."),
        ("sex,site,icd10,department", "group_by lists 4 fields"),
    ],
    ids=["pseudonym", "repeated", "four"],
)
def test_stats_invalid_group_by_422(client: AppClient, group_by: str, message: str):
    response = client.get(f"/stats?group_by={group_by}", headers=AUTH)
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_stats_answer_key_equals_pandas(client: AppClient, shared) -> None:
    frame = shared.astype(object).where(shared.notna(), None)
    upload(client, frame.to_dict("records"))
    body = client.get("/stats?group_by=department,sex", headers=AUTH).json()
    groups = shared.groupby(["department", "sex"], dropna=False)
    expected = groups["readmit_30d"].agg(["size", "mean"])
    expected["patients"] = groups["patient_pseudonym"].nunique()
    expected = expected.reset_index()
    small = expected["patients"] < 5
    assert small.sum() >= 2  # so no secondary suppression applies
    kept = expected[~small]
    assert len(body["rows"]) == len(kept)
    assert body["suppressed"] == small.sum()
    got = {
        (r["department"], r["sex"]): (r["n"], r["readmit_rate"]) for r in body["rows"]
    }
    for row in kept.itertuples():
        sex = None if pd.isna(row.sex) else row.sex
        assert got[(row.department, sex)] == (row.size, round(row.mean, 4))


# Models


def test_model_upload_download_roundtrip(client: AppClient, model_file) -> None:
    content = model_file.read_bytes()
    response = client.put("/models/cancer", content=content, headers=AUTH)
    assert response.status_code == 200
    info = response.json()
    assert info["name"] == "cancer"
    assert info["bytes"] == len(content)
    assert info["sha256"] == hashlib.sha256(content).hexdigest()
    download = client.get("/models/cancer", headers=AUTH)
    assert download.content == content
    assert download.headers["x-model-sha256"] == info["sha256"]
    listed = client.get("/models", headers=AUTH).json()
    assert [m["name"] for m in listed] == ["cancer"]


def test_model_not_skops_422(client: AppClient) -> None:
    response = client.put("/models/bad", content=b"not a zip file", headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("Model file 'bad' is not a skops file")
    assert client.get("/models", headers=AUTH).json() == []


def test_model_untrusted_type_422(client: AppClient, tmp_path: Path) -> None:
    path = tmp_path / "evil.skops"
    sio.dump({"step": FunctionTransformer(func=print)}, path)
    response = client.put("/models/evil", content=path.read_bytes(), headers=AUTH)
    assert response.status_code == 422
    assert (
        "types that medkit does not trust: builtins.print" in response.json()["detail"]
    )
    assert client.get("/models", headers=AUTH).json() == []


def test_model_over_limit_413(model_file) -> None:
    app = network.create_app("A", token=TOKEN, max_model_bytes=1000)
    client = AppClient(app)
    response = client.put(
        "/models/cancer", content=model_file.read_bytes(), headers=AUTH
    )
    assert response.status_code == 413
    assert response.json()["detail"] == (
        f"Model file of {model_file.stat().st_size:,} bytes is too large: this site "
        "accepts model files of at most 1,000 bytes. Send a smaller model, or ask "
        "the site to raise max_model_bytes."
    )


def test_model_invalid_name_422(client: AppClient) -> None:
    response = client.put("/models/.hidden", content=b"x", headers=AUTH)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == "path parameter name"


def test_model_missing_404(client: AppClient) -> None:
    response = client.get("/models/none", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["detail"] == "No model named 'none' at this site."


# Storage


def test_store_sqlite_file_wal_and_batches(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    client = AppClient(network.create_app("A", token=TOKEN, db_url=f"sqlite:///{path}"))
    assert path.stat().st_mode & 0o777 == 0o600
    upload(client, make_records(5))
    upload(client, make_records(7))
    with sqlite3.connect(path) as connection:
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
        batches = connection.execute(
            "SELECT stored, existing FROM batches ORDER BY received_at, stored"
        ).fetchall()
        count = connection.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    assert mode == "wal"
    assert sorted(batches) == [(2, 5), (5, 0)]
    assert count == 7


def test_store_reopened_file_keeps_records(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    upload(AppClient(network.create_app("A", token=TOKEN, db_url=url)), make_records(4))
    reopened = AppClient(network.create_app("A", token=TOKEN, db_url=url))
    assert stored_count(reopened) == 4


# Client conversions


def test_to_json_records_missing_and_dates() -> None:
    frame = pd.DataFrame(
        {
            "when": pd.to_datetime(["2024-03-01", None]),
            "stamp": pd.to_datetime(["2024-03-01 08:30", "2024-03-02 00:00"]),
            "bp": pd.array([120, None], dtype="Int64"),
            "rate": [np.nan, 1.5],
            "text": ["a", None],
        }
    )
    assert network.to_json_records(frame) == [
        {
            "when": "2024-03-01",
            "stamp": "2024-03-01T08:30:00",
            "bp": 120,
            "rate": None,
            "text": "a",
        },
        {
            "when": None,
            "stamp": "2024-03-02T00:00:00",
            "bp": None,
            "rate": 1.5,
            "text": None,
        },
    ]


def test_to_json_records_dicts_convert_scalars() -> None:
    rows = [{"a": np.int64(3), "b": float("nan"), "c": pd.Timestamp("2024-01-05")}]
    assert network.to_json_records(rows) == [{"a": 3, "b": None, "c": "2024-01-05"}]


def test_to_json_records_infinite_raises() -> None:
    frame = pd.DataFrame({"rate": [1.0, np.inf, -np.inf]})
    with pytest.raises(
        RecordFormatError, match=r"'rate' has infinite values in 2 rows"
    ):
        network.to_json_records(frame)


def test_to_json_records_object_raises() -> None:
    with pytest.raises(RecordFormatError, match="Record 0 has a set in 'tags'"):
        network.to_json_records([{"tags": {"a"}}])


# Client retries


def mock_client(statuses: list[int], calls: list[str], **options) -> network.SiteClient:
    """Return a client whose transport responds with the given statuses in turn."""

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        status = statuses[min(len(calls), len(statuses)) - 1]
        return httpx.Response(status, json={"detail": f"status {status}"})

    return network.SiteClient(
        "http://127.0.0.1:9", TOKEN, transport=httpx.MockTransport(handler), **options
    )


def test_client_retries_503_then_succeeds() -> None:
    calls: list[str] = []
    client = mock_client([503, 502, 200], calls, backoff=0)
    assert client.health() == {"detail": "status 200"}
    assert calls == ["GET", "GET", "GET"]


def test_client_never_retries_4xx() -> None:
    calls: list[str] = []
    client = mock_client([422, 200], calls, backoff=0)
    with pytest.raises(
        ServiceError, match="failed with status 422: status 422"
    ) as error:
        client.health()
    assert calls == ["GET"]
    assert error.value.status == 422
    assert error.value.reason == "status 422"


def test_client_gives_up_after_retries() -> None:
    calls: list[str] = []
    client = mock_client([504], calls, backoff=0, retries=2)
    with pytest.raises(ServiceError) as error:
        client.health()
    assert calls == ["GET", "GET", "GET"]
    assert error.value.status == 504


def test_client_retries_connect_error() -> None:
    attempts = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(request.url.path)
        raise httpx.ConnectError("connection refused", request=request)

    client = network.SiteClient(
        "http://127.0.0.1:9", TOKEN, transport=httpx.MockTransport(refuse), backoff=0
    )
    with pytest.raises(ServiceError, match="failed after 4 attempts") as error:
        client.records()
    assert attempts == ["/records"] * 4
    assert error.value.status is None


def test_client_download_checks_sha256(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"abc", headers={"x-model-sha256": "0" * 64})

    client = network.SiteClient(
        "http://127.0.0.1:9", TOKEN, transport=httpx.MockTransport(handler)
    )
    with pytest.raises(ServiceError, match="arrived with SHA-256"):
        client.download_model("m", tmp_path / "m.skops")
    assert not (tmp_path / "m.skops").exists()


def receipt_transport(fail_at: int, posts: list[int]) -> httpx.MockTransport:
    """Return a transport that stores every batch but rejects the ``fail_at``-th."""

    def handler(request: httpx.Request) -> httpx.Response:
        records = json.loads(request.content)["records"]
        posts.append(len(records))
        if len(posts) == fail_at:
            return httpx.Response(422, json={"detail": "rejected batch"})
        # The batch ID is the batch's first record_id, so the order is known.
        receipt = {
            "stored": len(records),
            "existing": 0,
            "batch_id": records[0]["record_id"],
        }
        return httpx.Response(200, json=receipt)

    return httpx.MockTransport(handler)


def test_client_upload_stops_after_rejected_batch() -> None:
    posts: list[int] = []
    client = network.SiteClient(
        "http://127.0.0.1:9", TOKEN, transport=receipt_transport(3, posts)
    )
    with pytest.raises(ServiceError, match="rejected batch"):
        client.upload(make_records(10), batch_size=2, in_flight=1)
    assert posts == [2, 2, 2]


def test_client_upload_batches_in_order() -> None:
    posts: list[int] = []
    client = network.SiteClient(
        "http://127.0.0.1:9", TOKEN, transport=receipt_transport(0, posts)
    )
    records = make_records(10)
    result = client.upload(records, batch_size=3, in_flight=3)
    firsts = [records[start]["record_id"] for start in (0, 3, 6, 9)]
    assert result.batch_ids == firsts
    assert sorted(posts) == [1, 3, 3, 3]
    assert result.stored == 10
    assert result.batches == 4


def test_client_invalid_batch_size_raises() -> None:
    client = network.SiteClient("http://127.0.0.1:9", TOKEN)
    with pytest.raises(ServiceSettingError, match="batch_size is 0"):
        client.upload(make_records(1), batch_size=0)


# A running site


def test_start_site_url_has_real_port(site) -> None:
    assert site.url.startswith("http://127.0.0.1:")
    assert int(site.url.rsplit(":", 1)[1]) > 0
    assert site.client().health()["site"] == "A"


def test_running_site_client_reused(site) -> None:
    assert site.client() is site.client()
    with site.client(timeout=5.0) as other:
        assert other is not site.client()
        assert other.health()["status"] == "ok"


def test_client_upload_answer_key_roundtrip(loaded_site, shared) -> None:
    site, result = loaded_site
    client = site.client()
    assert (result.stored, result.existing, result.batches) == (6113, 0, 7)
    again = client.upload(shared, batch_size=1000)
    assert (again.stored, again.existing) == (0, 6113)
    back = client.all_records(page_size=500)
    expected = shared.sort_values("record_id", ignore_index=True)
    pd.testing.assert_frame_equal(back, expected, check_dtype=False)


def test_client_stats_frame(loaded_site, shared) -> None:
    stats = loaded_site[0].client().stats(["department"])
    expected = shared.groupby("department")["readmit_30d"].agg(["size", "mean"])
    assert list(stats.columns) == ["department", "n", "readmit_rate"]
    assert stats.set_index("department")["n"].to_dict() == expected["size"].to_dict()
    assert stats.attrs == {"suppressed": 0, "min_cell": 5}


def test_client_model_roundtrip(site, model_file, tmp_path: Path) -> None:
    client = site.client()
    info = client.upload_model("cancer", model_file)
    path = client.download_model("cancer", tmp_path / "copy" / "cancer.skops")
    assert path.read_bytes() == model_file.read_bytes()
    assert info["sha256"] == intelligence.file_sha256(path)
    assert [m["name"] for m in client.models()] == ["cancer"]


def test_client_rejection_raises_service_error(site) -> None:
    with pytest.raises(ServiceError, match="status 422") as error:
        site.client().records(page_size=501)
    assert error.value.status == 422
    assert "page_size" in error.value.reason


def test_start_site_two_sites_separate() -> None:
    with network.start_site("A") as site_a, network.start_site("B") as site_b:
        assert site_a.url != site_b.url
        site_a.client().upload(make_records(3, site="A"))
        assert site_a.client().health()["records"] == 3
        assert site_b.client().health()["records"] == 0
        with pytest.raises(ServiceError) as error:
            network.SiteClient(site_b.url, site_a.token).records()
        assert error.value.status == 403
    assert not site_a.running


# medkit serve


@pytest.fixture
def restore_log_level():
    # medkit serve logs at INFO by default, so it lowers the package logger's level.
    logger = logging.getLogger("medkit")
    level = logger.level
    yield
    logger.setLevel(level)


@pytest.mark.usefixtures("restore_log_level")
def test_serve_command_reads_token_from_environment(monkeypatch, capsys) -> None:
    calls = []
    monkeypatch.setenv("MEDKIT_TOKEN", TOKEN)
    monkeypatch.setattr(network, "serve", lambda *a, **k: calls.append((a, k)))
    assert main(["serve", "--site", "A", "--port", "0", "--db", "sqlite://"]) == 0
    ((args, options),) = calls
    assert args == ("A",)
    assert options["token"] == TOKEN
    assert options["db_url"] == "sqlite://"
    assert options["host"] == "127.0.0.1"
    assert options["port"] == 0
    assert TOKEN not in capsys.readouterr().out


@pytest.mark.usefixtures("restore_log_level")
def test_serve_command_generates_token(monkeypatch, capsys) -> None:
    calls = []
    monkeypatch.delenv("MEDKIT_TOKEN", raising=False)

    def fake_serve(*args, **options) -> None:
        calls.append(options)
        options["on_start"]("http://127.0.0.1:8000")

    monkeypatch.setattr(network, "serve", fake_serve)
    assert main(["serve", "--site", "B"]) == 0
    token = calls[0]["token"]
    assert len(token) == 43
    assert f"Token (set MEDKIT_TOKEN to choose one): {token}" in capsys.readouterr().out
    assert calls[0]["db_url"].endswith("sites/B.db")
    assert calls[0]["port"] == 8000


@pytest.mark.usefixtures("restore_log_level")
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--port", "70000"],
            "Port 70000 is invalid; use a number from 1 to 65535, or 0 to pick a "
            "free port.",
        ),
        (
            ["--db", "notaurl"],
            "Database URL 'notaurl' is not a SQLAlchemy URL; use one such as "
            "'sqlite:///build/sites/A.db' or "
            "'postgresql+psycopg://user@host/database'.",
        ),
        (
            # The driver is psycopg2 before SQLAlchemy 2.1 and psycopg after it.
            ["--db", "postgresql://u@127.0.0.1:1/x"],
            "which is not installed; install it (pip install {driver}) or use a "
            "SQLite URL such as 'sqlite:///build/sites/A.db'.",
        ),
        (
            ["--db", "sqlite:////nonexistent/dir/x.db"],
            "The folder '/nonexistent/dir' of the database file does not exist; "
            "create it first or give another path.",
        ),
    ],
    ids=["port-range", "not-a-url", "missing-driver", "missing-folder"],
)
def test_serve_command_setting_errors_one_line(
    monkeypatch, capsys, arguments: list[str], message: str
) -> None:
    monkeypatch.setenv("MEDKIT_TOKEN", TOKEN)
    assert main(["serve", "--site", "A", *arguments]) != 0
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    if "{driver}" in message:
        driver = line.split("needs the Python driver '")[1].split("'")[0]
        assert driver in ("psycopg", "psycopg2")
        message = message.format(driver=driver)
    assert line.endswith(message)
    assert not Path("/nonexistent").exists()


@pytest.mark.usefixtures("restore_log_level")
def test_serve_command_port_in_use(monkeypatch, capsys) -> None:
    monkeypatch.setenv("MEDKIT_TOKEN", TOKEN)
    with network.start_site("A") as running:
        port = int(running.url.rsplit(":", 1)[1])
        code = main(["serve", "--site", "A", "--port", str(port), "--db", "sqlite://"])
    assert code != 0
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            f"Port {port} on 127.0.0.1 is already in use, probably by another site "
            "service. Stop that service, or choose another port (--port, or 0 to pick "
            "a free one)."
        )
    )


@pytest.mark.usefixtures("restore_log_level")
@pytest.mark.parametrize("token", ["   ", "\t"], ids=["spaces", "tab"])
def test_serve_command_blank_token_rejected(monkeypatch, capsys, token: str) -> None:
    monkeypatch.setenv("MEDKIT_TOKEN", token)
    assert main(["serve", "--site", "A", "--db", "sqlite://", "--port", "0"]) != 0
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            "The token is empty or blank; use one of at least 16 characters, for "
            "example from medkit.network.new_token()."
        )
    )


@pytest.mark.usefixtures("restore_log_level")
def test_serve_command_invalid_site_prints_no_token(monkeypatch, capsys) -> None:
    monkeypatch.delenv("MEDKIT_TOKEN", raising=False)
    assert main(["serve", "--site", "bad name", "--db", "sqlite://"]) != 0
    captured = capsys.readouterr()
    assert "Token" not in captured.out
    assert captured.err.strip().endswith(
        "Site name 'bad name' is invalid; use 1 to 64 letters, digits, '_', '.' or "
        "'-', starting with a letter or digit."
    )


@pytest.mark.usefixtures("restore_log_level")
def test_serve_command_read_tokens_from_environment(monkeypatch) -> None:
    calls = []
    reader = "r" * 20
    monkeypatch.setenv("MEDKIT_TOKEN", TOKEN)
    monkeypatch.setenv("MEDKIT_READ_TOKENS", f" {reader} , ,{reader}2")
    monkeypatch.setattr(network, "serve", lambda *a, **k: calls.append(k))
    assert main(["serve", "--site", "A", "--db", "sqlite://"]) == 0
    assert calls[0]["read_tokens"] == [reader, f"{reader}2"]


def test_store_default_file_mode_and_no_folder_created(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "a.db"
    with pytest.raises(ServiceSettingError) as raised:
        network.create_app("A", token=TOKEN, db_url=f"sqlite:///{missing}")
    assert raised.value.name == "db_url"
    assert not missing.parent.exists()


# Generalised records, scopes, sites and departments


def test_upload_k_anonymous_records_stored(client: AppClient, shared) -> None:
    quasi = ["sex", "age_band", "postcode_prefix", "admit_month"]
    result = privacy.enforce_k_anonymity(
        shared, quasi, k=5, subject="patient_pseudonym"
    )
    frame = result.frame.astype(object).where(result.frame.notna(), None)
    response = upload(client, frame.to_dict("records"))
    assert response.status_code == 200
    assert response.json()["stored"] == 6031
    assert stored_count(client) == 6031
    assert sorted(set(result.frame["age_band"])) == ["20-39", "40-59", "60-79", "80+"]
    assert set(result.frame["postcode_prefix"]) == {"*"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("age_band", "60-79"),
        ("age_band", "40-79"),
        ("age_band", "80+"),
        ("age_band", "35-39"),
        ("age_band", "*"),
        ("admit_month", "2019"),
        ("admit_month", "2019-Q4"),
        ("admit_month", "*"),
        ("postcode_prefix", "73"),
        ("postcode_prefix", "7"),
        ("postcode_prefix", "*"),
        ("sex", "*"),
        ("heart_rate", 80.0),
    ],
)
def test_upload_generalised_value_accepted(client: AppClient, field, value) -> None:
    response = upload(client, [{**make_records(1)[0], field: value}])
    assert response.status_code == 200
    assert response.json()["stored"] == 1


AGE_BAND_MESSAGE = (
    "expected an age band such as '60-69' (starting at a multiple of 5 and spanning "
    "at least 5 years, up to 120), an open top band such as '90+', or '*' "
    "(medkit.privacy.age_band)"
)
MONTH_MESSAGE = (
    "expected a month 'YYYY-MM', a quarter 'YYYY-Qn', a year 'YYYY' or '*', with "
    "the year from 1980 to 2100 (medkit.privacy.to_month)"
)
POSTCODE_MESSAGE = (
    "expected the first 1 to 3 digits of the postcode, or '*' "
    "(medkit.privacy.postcode_prefix)"
)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("age_band", "37-37", AGE_BAND_MESSAGE),
        ("age_band", "90-10", AGE_BAND_MESSAGE),
        ("age_band", "35-35", AGE_BAND_MESSAGE),
        ("age_band", "37+", AGE_BAND_MESSAGE),
        ("admit_month", "1900-01", MONTH_MESSAGE),
        ("admit_month", "2024-13", MONTH_MESSAGE),
        ("admit_month", "2024-03-07", MONTH_MESSAGE),
        ("postcode_prefix", "", POSTCODE_MESSAGE),
        ("postcode_prefix", "7309", POSTCODE_MESSAGE),
        ("length_of_stay", "120", "expected a whole number, not str"),
        ("readmit_30d", True, "expected a whole number, not bool"),
        (
            "heart_rate",
            80.5,
            "Input should be a valid integer, got a number with a fractional part",
        ),
        ("icd10", "heart failure", "expected an ICD-10 code such as 'I50' or 'I50.0'"),
    ],
)
def test_upload_value_rejected(client: AppClient, field, value, message) -> None:
    response = upload(client, [{**make_records(1)[0], field: value}])
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"loc": f"records[0].{field}", "message": message}
    ]
    assert stored_count(client) == 0


@pytest.mark.parametrize(
    ("field", "message"),
    [
        (
            "record_id",
            "required field is missing; every shared record has it "
            "(medkit.privacy.shared_records builds them)",
        ),
        ("systolic_bp", "required field is missing; send null if the value is unknown"),
    ],
)
def test_upload_missing_field_message(client: AppClient, field, message) -> None:
    record = make_records(1)[0]
    del record[field]
    response = upload(client, [record])
    assert response.json()["errors"] == [
        {"loc": f"records[0].{field}", "message": message}
    ]
    assert response.json()["detail"].startswith(
        "Request rejected with 1 validation error: "
    )


@pytest.mark.parametrize(
    "department",
    ["John Smith", "张伟", "cardiology"],
    ids=["latin", "chinese", "other"],
)
def test_upload_unknown_department_422(client: AppClient, department: str) -> None:
    response = upload(
        client, [*make_records(1), {**make_records(1, 1)[0], "department": department}]
    )
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "Request rejected with 1 validation error: records[1].department: not a "
        "department of this site; expected one of 内分泌科, 呼吸内科, 心内科, 急诊科, "
        "神经内科, 肾内科, 骨科. Nothing was stored."
    )
    assert stored_count(client) == 0


def test_upload_configured_departments() -> None:
    client = AppClient(
        network.create_app("A", token=TOKEN, departments=["cardiology", "心内科"])
    )
    records = make_records(2)
    records[0]["department"] = "cardiology"
    records[1]["department"] = "心内科"
    assert upload(client, records).json()["stored"] == 2
    assert upload(client, make_records(1, 5)).status_code == 422  # 呼吸内科


@pytest.mark.parametrize(
    "value",
    [
        "110101199003077777",
        "11010119900307777X",
        "110101900307777",
        "ID 110101199003077772",
    ],
    ids=["18-bad-check", "18-x", "15-digits", "in-text"],
)
def test_upload_id_number_like_text_422(client: AppClient, value: str) -> None:
    response = upload(client, [{**make_records(1)[0], "department": value}])
    assert response.status_code == 422
    assert response.json()["detail"].startswith(
        "Upload rejected: 1 direct identifier found (possible ID number at record 0, "
        "field 'department'). Nothing was stored."
    )
    assert value not in response.text
    assert stored_count(client) == 0


def test_upload_other_site_rejected(client: AppClient) -> None:
    response = upload(client, make_records(2, site="B"))
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "Request rejected with 2 validation errors: records[0].site: this service "
        "stores the records of site 'A', not 'B'; send them to that site's service; "
        "records[1].site: this service stores the records of site 'A', not 'B'; send "
        "them to that site's service. Nothing was stored."
    )


def test_upload_accept_sites_stores_partner_records() -> None:
    client = AppClient(network.create_app("A", token=TOKEN, accept_sites=["B"]))
    assert upload(client, make_records(2, site="B")).json()["stored"] == 2
    response = upload(client, make_records(1, 5, site="C"))
    assert response.status_code == 422
    assert "stores the records of site 'A' and B, not 'C'" in response.json()["detail"]


READER = "read-only-token-of-site-b"


@pytest.fixture
def scoped() -> AppClient:
    return AppClient(network.create_app("A", token=TOKEN, read_tokens=[READER]))


def test_read_token_reads(scoped: AppClient, model_file) -> None:
    upload(scoped, make_records(6))
    scoped.put("/models/cancer", content=model_file.read_bytes(), headers=AUTH)
    read = {"authorization": f"Bearer {READER}"}
    assert scoped.get("/records", headers=read).json()["total"] == 6
    assert scoped.get("/stats?group_by=sex", headers=read).status_code == 200
    assert [m["name"] for m in scoped.get("/models", headers=read).json()] == ["cancer"]
    assert scoped.get("/models/cancer", headers=read).content == model_file.read_bytes()


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/records"), ("PUT", "/models/cancer")]
)
def test_read_token_cannot_write(scoped: AppClient, method: str, path: str) -> None:
    read = {"authorization": f"Bearer {READER}"}
    body = json.dumps({"records": make_records(1)}).encode()
    response = scoped.request(method, path, content=body, headers=read)
    assert response.status_code == 403
    assert response.json()["detail"] == (
        "This token is read-only: it may send GET requests (records, statistics, "
        f"models) but not {method} {path}. Only the site itself, with its write "
        "token, stores records and models."
    )
    assert stored_count(scoped) == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"read_tokens": [TOKEN]}, "A read-only token is the same as the write token"),
        ({"read_tokens": ["short"]}, "The read-only token has 5 characters"),
        ({"token": " " * 20}, "The token is empty or blank"),
        ({"token": "a token with spaces inside"}, "The token contains whitespace"),
        ({"accept_sites": ["bad name"]}, "Site name 'bad name' is invalid"),
        ({"departments": []}, "give at least one department name"),
    ],
    ids=["same-token", "short-read", "blank", "spaces", "bad-site", "no-departments"],
)
def test_create_app_scope_settings_raise(options: dict, message: str) -> None:
    with pytest.raises(ServiceSettingError, match=re.escape(message)):
        network.create_app("A", **{"token": TOKEN, **options})


def test_basic_scheme_401_message(client: AppClient) -> None:
    response = client.get("/records", headers={"authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401
    assert response.json()["detail"] == (
        "The Authorization header uses the 'Basic' scheme; this site accepts only "
        "'Authorization: Bearer <token>'."
    )


@pytest.mark.parametrize(
    "query", ["/records?sex=F&sex=M", "/stats?group_by=sex&group_by=site"]
)
def test_repeated_query_parameter_422(client: AppClient, query: str) -> None:
    response = client.get(query, headers=AUTH)
    assert response.status_code == 422
    name = query.split("?")[1].split("=")[0]
    assert response.json()["detail"] == (
        f"Query parameter '{name}' is given more than once; give each filter once "
        "(a filter matches one value)."
    )


def test_docs_assets_local(client: AppClient) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        urls = re.findall(r"""(?:src|href)=["']([^"']+)""", html)
        assert urls, page
        assert all(url.startswith("/docs/static/") for url in urls), urls
        assert "http" not in html.replace("http-equiv", "")
    script = client.get("/docs/static/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.text
    assert client.get("/docs/static/redoc.standalone.js").status_code == 200
    assert client.get("/docs/static/swagger-ui.css").status_code == 200
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")


def test_client_setting_errors() -> None:
    with pytest.raises(ServiceSettingError, match="^The token is empty"):
        network.SiteClient("http://127.0.0.1:8000", "")
    with pytest.raises(ServiceSettingError) as raised:
        network.SiteClient("127.0.0.1:1", TOKEN)
    assert str(raised.value) == (
        "Site address '127.0.0.1:1' has no http:// or https:// scheme and host; give "
        "the address the site printed, such as 'http://127.0.0.1:8000'."
    )


def test_client_upload_model_missing_file(tmp_path: Path) -> None:
    client = network.SiteClient("http://127.0.0.1:8000", TOKEN, retries=0)
    missing = tmp_path / "none.skops"
    with pytest.raises(ModelFileError) as raised:
        client.upload_model("x", missing)
    assert str(raised.value) == (
        f"Model file '{missing}' not found; save the model first with "
        "medkit.intelligence.save_model, or check the path."
    )
    assert raised.value.path == missing
