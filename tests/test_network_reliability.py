"""Reliability of the site service on a real uvicorn server bound to 127.0.0.1.

Each test starts its own server, in a thread or as a ``medkit serve`` process,
and stops it: rejected requests store nothing, concurrent uploads store each
record once, and a server killed during uploads keeps every acknowledged batch.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from test_network import TOKEN, make_records

from medkit import network
from medkit.exceptions import ServiceError

MEDKIT_SCRIPT = Path(sys.executable).parent / "medkit"
BODY_LIMIT = 50_000


@pytest.fixture
def site(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with network.start_site(
        "A", token=TOKEN, db_url=url, max_body_bytes=BODY_LIMIT
    ) as running:
        yield running


def json_body(records: list[dict]) -> bytes:
    return json.dumps({"records": records}, ensure_ascii=False).encode("utf-8")


def with_field(field: str, value: object) -> list[dict]:
    records = make_records(3)
    records[1][field] = value
    return records


JSON = {"content-type": "application/json"}
GOOD = {**JSON, "authorization": f"Bearer {TOKEN}"}

REJECTED = [
    ("no_token", JSON, json_body(make_records(3)), 401, "Missing bearer token."),
    (
        "wrong_token",
        {**JSON, "authorization": "Bearer " + "0" * len(TOKEN)},
        json_body(make_records(3)),
        403,
        "Invalid bearer token.",
    ),
    (
        "oversized",
        GOOD,
        json_body(make_records(400)),
        413,
        "larger than this site's limit of 50,000 bytes",
    ),
    ("invalid_json", GOOD, b'{"records": [{"record_id": ', 422, "not valid JSON"),
    (
        "nan",
        GOOD,
        json_body(make_records(2)).replace(b'"heart_rate": 61', b'"heart_rate": NaN'),
        422,
        "contains NaN, which is not valid JSON",
    ),
    (
        "name_field",
        GOOD,
        json_body(with_field("name", "Alice Smith")),
        422,
        "1 direct identifier found (name at record 1, field 'name')",
    ),
    (
        "phone_in_text",
        GOOD,
        json_body(with_field("department", "cardiology, call 139-1234-5678")),
        422,
        "1 direct identifier found (phone at record 1, field 'department')",
    ),
]


@pytest.mark.parametrize(
    ("headers", "body", "status", "message"),
    [case[1:] for case in REJECTED],
    ids=[case[0] for case in REJECTED],
)
def test_rejected_upload_stores_nothing(
    site, headers: dict, body: bytes, status: int, message: str
) -> None:
    response = httpx.post(f"{site.url}/records", content=body, headers=headers)
    assert response.status_code == status
    assert message in response.json()["detail"]
    assert site.client().health()["records"] == 0


def test_rejected_chunked_upload_413(site) -> None:
    body = json_body(make_records(400))

    def chunks():
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    response = httpx.post(f"{site.url}/records", content=chunks(), headers=GOOD)
    assert response.status_code == 413
    assert site.client().health()["records"] == 0


def test_rejection_logged_without_token_or_values(site, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="medkit.network")
    records = with_field("department", "call 13912345678")
    httpx.post(f"{site.url}/records", content=json_body(records), headers=GOOD)
    httpx.get(f"{site.url}/records", headers={"authorization": "Bearer wrong"})
    lines = [r.getMessage() for r in caplog.records if r.name == "medkit.network"]
    assert len(lines) == 2
    assert lines[0].startswith("Rejected POST /records from 127.0.0.1:")
    assert lines[0].endswith("with status 422: direct identifiers found (1 phone)")
    assert lines[1].endswith("with status 403: Invalid bearer token")
    assert "13912345678" not in caplog.text
    assert TOKEN not in caplog.text


def test_client_upload_over_limit_raises(site) -> None:
    with pytest.raises(ServiceError, match="status 413") as error:
        site.client().upload(make_records(400), batch_size=400)
    assert error.value.status == 413
    assert site.client().health()["records"] == 0


@pytest.mark.slow
def test_concurrent_uploads_store_each_record_once(site, tmp_path: Path) -> None:
    # 50 clients each send their own 200 records in 2 batches, then the first
    # 50 records of the next client, which that client may be sending too.
    clients, per_client, overlap = 50, 200, 50
    barrier = threading.Barrier(clients)
    results: list[network.UploadResult] = []
    errors: list[Exception] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        own = make_records(per_client, start=index * per_client)
        following = (index + 1) % clients
        shared = make_records(overlap, start=following * per_client)
        try:
            with site.client(timeout=30.0) as client:
                barrier.wait()
                result = client.upload(own, batch_size=100)
                repeated = client.upload(shared)
            result.stored += repeated.stored
            result.existing += repeated.existing
            result.batch_ids += repeated.batch_ids
            with lock:
                results.append(result)
        except Exception as error:  # reported by the assertion below
            with lock:
                errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sum(result.stored for result in results) == clients * per_client
    assert sum(result.existing for result in results) == clients * overlap
    assert site.client().health()["records"] == 10_000
    with sqlite3.connect(tmp_path / "a.db") as connection:
        count, distinct = connection.execute(
            "SELECT COUNT(*), COUNT(DISTINCT record_id) FROM records"
        ).fetchone()
        batches, batch_stored = connection.execute(
            "SELECT COUNT(*), SUM(stored) FROM batches"
        ).fetchone()
    assert (count, distinct) == (10_000, 10_000)
    assert (batches, batch_stored) == (clients * 3, 10_000)


def start_serve(db: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """Start ``medkit serve`` on a free port and return the process and its URL."""
    env = {**os.environ, "MEDKIT_TOKEN": TOKEN}
    command = [str(MEDKIT_SCRIPT), "serve", "--site", "A", "--port", "0"]
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [*command, "--db", f"sqlite:///{db}"],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith("Site A serving on "):
                url = line.split()[4]
                if process.poll() is None and _healthy(url):
                    return process, url
        if process.poll() is not None:
            raise AssertionError(f"medkit serve ended:\n{log.read_text()}")
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"medkit serve did not start:\n{log.read_text()}")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.slow
def test_sigkill_keeps_acknowledged_batches(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    process, url = start_serve(db, tmp_path / "first.log")
    batch_size, uploaders = 100, 4
    sent: list[list[str]] = []
    acknowledged: list[list[str]] = []
    lock = threading.Lock()

    def upload_until_failure(index: int) -> None:
        client = network.SiteClient(url, TOKEN, retries=0, timeout=10.0)
        for number in range(1000):
            start = (index * 1000 + number) * batch_size
            records = make_records(batch_size, start=start)
            ids = [record["record_id"] for record in records]
            with lock:
                sent.append(ids)
            try:
                client.upload(records, batch_size=batch_size)
            except ServiceError:
                return
            with lock:
                acknowledged.append(ids)

    threads = [
        threading.Thread(target=upload_until_failure, args=(i,))
        for i in range(uploaders)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    for thread in threads:
        thread.join()
    assert len(acknowledged) >= 20

    process, url = start_serve(db, tmp_path / "second.log")
    try:
        stored = set(network.SiteClient(url, TOKEN).all_records()["record_id"])
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    for ids in acknowledged:
        assert stored.issuperset(ids)
    for ids in sent:
        present = len(stored.intersection(ids))
        assert present in (0, batch_size)
    assert len(stored) % batch_size == 0
    with sqlite3.connect(db) as connection:
        recorded = connection.execute("SELECT SUM(stored) FROM batches").fetchone()[0]
    assert recorded == len(stored)
