"""The client of a site service: uploads, paged queries, statistics and model files."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import os
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from medkit._service_schema import RECORD_FIELDS
from medkit.exceptions import (
    ModelFileError,
    RecordFormatError,
    ServiceError,
    ServiceSettingError,
)

logger = logging.getLogger("medkit.network")

RETRY_STATUSES = frozenset({502, 503, 504})
"""Statuses retried with backoff: a proxy or the service is briefly unavailable."""

# Failures before any response arrived. Every request of this client can be
# sent again safely: reads change nothing, PUT replaces a model with the same
# bytes, and the service stores each record_id once.
_RETRY_ERRORS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
)
_MAX_BACKOFF_SECONDS = 8.0


@dataclass
class UploadResult:
    """Counts of one upload over all its batches, and the batch IDs in order."""

    stored: int = 0
    existing: int = 0
    batch_ids: list[str] = field(default_factory=list)

    @property
    def batches(self) -> int:
        return len(self.batch_ids)


class SiteClient:
    """A client of one site service, with timeouts and retries.

    Requests that fail to connect, lose their connection before a response,
    or get 502, 503 or 504 are sent again up to ``retries`` times, after
    ``backoff``, twice that, four times that and so on (at most 8 s). A 4xx
    response is never retried. Every failure raises :class:`ServiceError` with
    the HTTP status and the reason that the service sent.

    Parameters
    ----------
    base_url : str
        The site's address with its scheme, such as ``http://127.0.0.1:8000``.
    token : str
        The site's bearer token: its write token, or a read-only token that
        it gave this site.
    timeout : float, default=10.0
        Seconds to wait to connect, and for each read or write.
    retries : int, default=3
        Further attempts after a failed one; 0 sends each request once.
    backoff : float, default=0.5
        Seconds before the first retry.
    transport : httpx.BaseTransport, optional
        The httpx transport, for example ``httpx.MockTransport`` in tests.

    Raises
    ------
    ServiceSettingError
        If ``base_url`` is not an http:// or https:// address, or ``token``
        is empty or contains whitespace.

    Examples
    --------
    >>> with start_site("A") as site:  # doctest: +SKIP
    ...     client = site.client()
    ...     client.upload(records)
    ...     client.stats("department")
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if retries < 0:
            raise ServiceSettingError(
                f"retries is {retries}; expected 0 or more.",
                name="retries",
                value=retries,
            )
        self.base_url = _check_base_url(base_url)
        _check_client_token(token)
        self.retries = retries
        self.backoff = backoff
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout),
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"SiteClient({self.base_url!r})"

    def __enter__(self) -> SiteClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client's connections."""
        self._http.close()

    # Requests -----------------------------------------------------------------

    def health(self) -> dict:
        """Return the site's health: ``{"status": "ok", "site": ..., "records": n}``."""
        return self._request("GET", "/health").json()

    def upload(
        self,
        records: pd.DataFrame | Iterable[Mapping],
        batch_size: int = 500,
        *,
        in_flight: int = 2,
    ) -> UploadResult:
        """Send shared records in batches of ``batch_size``, each stored atomically.

        Missing values (NaN, None, NaT, pandas.NA) are sent as null, dates and
        timestamps as ISO 8601 text, and NumPy numbers as JSON numbers. Sending
        the same records again stores nothing new, so a failed upload can be
        repeated as a whole.

        Parameters
        ----------
        records : pandas.DataFrame or iterable of dict
            Shared records, such as from :func:`medkit.privacy.shared_records`.
        batch_size : int, default=500
            Records per request.
        in_flight : int, default=2
            Batches sent before the first of them is acknowledged. With 2, the
            client encodes the next batch while the site stores one; 1 sends
            one batch at a time.

        Returns
        -------
        UploadResult
            Records stored, records that were already stored, and batch IDs in
            the order of the batches.

        Raises
        ------
        RecordFormatError
            If a value cannot be sent as JSON, such as an infinite number.
        ServiceError
            If the site rejects a batch. No further batch is sent then. The
            batches before it are stored, and up to ``in_flight - 1`` batches
            after it may be stored too.
        """
        for name, value in (("batch_size", batch_size), ("in_flight", in_flight)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ServiceSettingError(
                    f"{name} is {value!r}; expected a positive integer.",
                    name=name,
                    value=value,
                )
        rows = to_json_records(records)
        result = UploadResult()
        with ThreadPoolExecutor(in_flight, thread_name_prefix="medkit-upload") as pool:
            sent: deque[Future] = deque()
            for start in range(0, len(rows), batch_size):
                body = _dumps({"records": rows[start : start + batch_size]})
                sent.append(pool.submit(self._post_batch, body))
                if len(sent) >= in_flight:
                    _add_receipt(result, sent.popleft())
            while sent:
                _add_receipt(result, sent.popleft())
        logger.info(
            "Uploaded %d records to %s in %d batches: %d new, %d already stored",
            len(rows),
            self.base_url,
            result.batches,
            result.stored,
            result.existing,
        )
        return result

    def _post_batch(self, body: bytes) -> dict:
        response = self._request(
            "POST",
            "/records",
            content=body,
            headers={"content-type": "application/json"},
        )
        return response.json()

    def records(
        self, page: int = 1, page_size: int | None = None, **filters: str
    ) -> dict:
        """Return one page of records as the site sends it.

        Parameters
        ----------
        page : int, default=1
        page_size : int, optional
            The site's default (100 unless configured) when omitted.
        **filters : str
            Equality filters on ``site``, ``sex``, ``age_band``,
            ``admit_month``, ``department`` or ``icd10``.

        Returns
        -------
        dict
            ``{"page": ..., "page_size": ..., "total": ..., "records": [...]}``.
        """
        params: dict[str, Any] = {"page": page, **filters}
        if page_size is not None:
            params["page_size"] = page_size
        return self._request("GET", "/records", params=params).json()

    def record(self, record_id: str) -> dict:
        """Return one record by its ``record_id``."""
        return self._request("GET", f"/records/{record_id}").json()

    def all_records(self, page_size: int = 1000, **filters: str) -> pd.DataFrame:
        """Return every record that matches ``filters``, fetched page by page.

        The columns are the shared-record fields in order, even when no record
        matches. ``page_size`` must not exceed the site's maximum (1000 unless
        configured).
        """
        pages = []
        page = 1
        while True:
            answer = self.records(page=page, page_size=page_size, **filters)
            pages.extend(answer["records"])
            if not answer["records"] or page * page_size >= answer["total"]:
                break
            page += 1
        frame = pd.DataFrame.from_records(pages, columns=list(RECORD_FIELDS))
        for column in ("length_of_stay", "systolic_bp", "heart_rate", "readmit_30d"):
            frame[column] = frame[column].astype("Int64")
        return frame

    def stats(self, group_by: str | Sequence[str] = ()) -> pd.DataFrame:
        """Return record counts and 30-day readmission rates per group.

        Groups with fewer records than the site's minimum cell size (5 by
        default) are left out; ``frame.attrs["suppressed"]`` counts them and
        ``frame.attrs["min_cell"]`` is that size.

        Parameters
        ----------
        group_by : str or sequence of str
            One field, comma-separated fields, or a list of at most 3 fields.
        """
        fields = [group_by] if isinstance(group_by, str) else list(group_by)
        answer = self._request(
            "GET", "/stats", params={"group_by": ",".join(fields)}
        ).json()
        columns = [*answer["group_by"], "n", "readmit_rate"]
        frame = pd.DataFrame.from_records(answer["rows"], columns=columns)
        frame["n"] = frame["n"].astype("int64")
        frame["readmit_rate"] = frame["readmit_rate"].astype("float64")
        frame.attrs["suppressed"] = answer["suppressed"]
        frame.attrs["min_cell"] = answer["min_cell"]
        return frame

    def upload_model(self, name: str, path: str | Path) -> dict:
        """Send a model file written by :func:`medkit.intelligence.save_model`.

        Returns
        -------
        dict
            ``{"name", "bytes", "sha256", "uploaded_at"}`` as the site stored it.

        Raises
        ------
        ModelFileError
            If ``path`` is missing or cannot be read.
        ServiceError
            If the site rejects the file, for example because the token is
            read-only or the file is not a medkit model.
        """
        content = _read_model_file(path)
        info = self._request(
            "PUT",
            f"/models/{name}",
            content=content,
            headers={"content-type": "application/octet-stream"},
        ).json()
        logger.info(
            "Uploaded model %s (%d bytes) to %s", name, len(content), self.base_url
        )
        return info

    def download_model(self, name: str, path: str | Path) -> Path:
        """Write the site's model file ``name`` to ``path`` and return the path.

        The bytes are checked against the SHA-256 that the site sends, and
        written to a temporary file that replaces ``path`` only when complete.

        Raises
        ------
        ServiceError
            If the site has no such model (status 404) or the bytes differ from
            their SHA-256.
        """
        path = Path(path)
        response = self._request("GET", f"/models/{name}")
        expected = response.headers.get("x-model-sha256")
        actual = hashlib.sha256(response.content).hexdigest()
        if expected is not None and expected != actual:
            raise ServiceError(
                f"Model {name!r} from {self.base_url} arrived with SHA-256 {actual}, "
                f"but the site sent {expected}; download it again.",
                status=response.status_code,
                method="GET",
                url=str(response.url),
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        partial.write_bytes(response.content)
        os.replace(partial, path)
        logger.info("Downloaded model %s to %s", name, path)
        return path

    def models(self) -> list[dict]:
        """List the site's model files: name, bytes, SHA-256 and upload time."""
        return self._request("GET", "/models").json()

    # Transport ----------------------------------------------------------------

    def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        url = f"{self.base_url}{path}"
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._http.request(method, path, **options)
            except _RETRY_ERRORS as error:
                if last:
                    raise _unreachable(method, url, attempt + 1, error) from error
                self._wait(attempt, f"{type(error).__name__}: {error}", method, url)
                continue
            except httpx.TimeoutException as error:
                raise ServiceError(
                    f"{method} {url} timed out ({type(error).__name__}). Check "
                    "that the site is running, or raise the client's timeout.",
                    method=method,
                    url=url,
                ) from error
            if response.status_code in RETRY_STATUSES and not last:
                self._wait(attempt, f"status {response.status_code}", method, url)
                continue
            if response.is_error:
                raise _rejected(method, url, response)
            return response
        raise AssertionError("unreachable")

    def _wait(self, attempt: int, problem: str, method: str, url: str) -> None:
        delay = min(self.backoff * 2**attempt, _MAX_BACKOFF_SECONDS)
        logger.warning(
            "%s %s failed (%s); retry %d of %d in %.1f s",
            method,
            url,
            problem,
            attempt + 1,
            self.retries,
            delay,
        )
        time.sleep(delay)


def _check_base_url(base_url: object) -> str:
    problem = None
    if not isinstance(base_url, str) or not base_url.strip():
        problem = "is empty"
    else:
        try:
            url = httpx.URL(base_url.strip())
        except httpx.InvalidURL as error:
            problem = f"is not a URL ({error})"
        else:
            if url.scheme not in ("http", "https") or not url.host:
                problem = "has no http:// or https:// scheme and host"
    if problem:
        raise ServiceSettingError(
            f"Site address {base_url!r} {problem}; give the address the site "
            "printed, such as 'http://127.0.0.1:8000'.",
            name="base_url",
            value=base_url,
        )
    return base_url.strip().rstrip("/")


def _check_client_token(token: object) -> None:
    if not isinstance(token, str) or not token.strip():
        raise ServiceSettingError(
            "The token is empty; give the token that the site printed or gave you "
            "(site.token, or a read-only token).",
            name="token",
        )
    if any(character.isspace() for character in token):
        raise ServiceSettingError(
            "The token contains whitespace, which no site token has; check that "
            "it was copied whole, without spaces or line breaks.",
            name="token",
        )


def _read_model_file(path: str | Path) -> bytes:
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(
            f"Model file {str(path)!r} not found; save the model first with "
            "medkit.intelligence.save_model, or check the path.",
            path=path,
        ) from None
    except OSError as error:
        raise ModelFileError(
            f"Cannot read model file {str(path)!r}: {error.strerror or error}. "
            "Give the path of a .skops file.",
            path=path,
        ) from None


def _add_receipt(result: UploadResult, sent: Future) -> None:
    # Raises the batch's ServiceError, if any. Leaving the executor's block then
    # waits for the batches still in flight, and sends no more.
    receipt = sent.result()
    result.stored += receipt["stored"]
    result.existing += receipt["existing"]
    result.batch_ids.append(receipt["batch_id"])


def _unreachable(
    method: str, url: str, attempts: int, error: Exception
) -> ServiceError:
    return ServiceError(
        f"{method} {url} failed after {attempts} attempts ({type(error).__name__}: "
        f"{error}). Check that the site is running and the address is right.",
        method=method,
        url=url,
    )


def _rejected(method: str, url: str, response: httpx.Response) -> ServiceError:
    try:
        reason = str(response.json()["detail"])
    except (ValueError, KeyError, TypeError):
        reason = response.text[:500] or response.reason_phrase
    return ServiceError(
        f"{method} {url} failed with status {response.status_code}: {reason}",
        status=response.status_code,
        reason=reason,
        method=method,
        url=url,
    )


# JSON conversion ---------------------------------------------------------------


def to_json_records(records: pd.DataFrame | Iterable[Mapping]) -> list[dict]:
    """Convert a frame or dicts to records that strict JSON can carry.

    Missing values become None, dates and timestamps ISO 8601 text (a date
    alone when the time is midnight), and NumPy scalars Python numbers.

    Raises
    ------
    RecordFormatError
        If a value is an infinite number, or is of a type JSON cannot carry.
    """
    if isinstance(records, pd.DataFrame):
        names = [str(column) for column in records.columns]
        columns = [_column_values(records[column], str(column)) for column in records]
        return [
            dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)
        ]
    if isinstance(records, Mapping | str | bytes):
        raise RecordFormatError(
            f"Expected a DataFrame or a list of records (dicts), got "
            f"{type(records).__name__}."
        )
    rows = []
    for position, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise RecordFormatError(
                f"Record {position} is a {type(record).__name__}, not a dict.",
                rows=[position],
            )
        rows.append(
            {
                str(key): _json_value(value, str(key), position)
                for key, value in record.items()
            }
        )
    return rows


def _column_values(series: pd.Series, name: str) -> list:
    if pd.api.types.is_datetime64_any_dtype(series):
        present = series.dropna()
        with_time = bool((present != present.dt.normalize()).any())
        return [None if pd.isna(v) else _iso(v, with_time) for v in series]
    if pd.api.types.is_float_dtype(series):
        numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
        infinite = np.flatnonzero(np.isinf(numbers))
        if infinite.size:
            raise RecordFormatError(
                f"Column {name!r} has infinite values in {infinite.size} rows "
                f"(positions {infinite[:10].tolist()}); JSON cannot carry them. "
                "Replace them with a finite value or a missing value.",
                column=name,
                rows=infinite[:10].tolist(),
            )
    values = series.astype(object).where(series.notna(), None).tolist()
    if series.dtype == object:
        # Only object columns can hold values that JSON cannot carry as they are.
        return [_json_value(value, name, row) for row, value in enumerate(values)]
    return values


def _json_value(value: Any, name: str, position: int) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return None
        if math.isinf(number):
            raise RecordFormatError(
                f"Record {position} has an infinite value in {name!r}; JSON cannot "
                "carry it. Replace it with a finite value or None.",
                column=name,
                rows=[position],
            )
        return number
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp | dt.datetime):
        stamp = pd.Timestamp(value)
        return _iso(stamp, with_time=stamp != stamp.normalize())
    if isinstance(value, dt.date):
        return value.isoformat()
    raise RecordFormatError(
        f"Record {position} has a {type(value).__name__} in {name!r}, which JSON "
        "cannot carry; convert it to text or a number.",
        column=name,
        rows=[position],
    )


def _iso(value: pd.Timestamp, with_time: bool) -> str:
    if with_time:
        return value.isoformat()
    return value.strftime("%Y-%m-%d")


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, allow_nan=False).encode("utf-8")
