"""The site service: a FastAPI application sharing one site's de-identified records."""

# Route signatures use closure values such as max_page_size, so annotations
# must be evaluated when the routes are defined, not postponed as text.
import contextlib
import logging
import re
import tempfile
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

import medkit
from medkit import privacy
from medkit._service_docs import add_docs
from medkit._service_guard import PUBLIC_PATHS, SiteGuard, set_rejection_reason
from medkit._service_schema import (
    FILTER_FIELDS,
    GROUP_FIELDS,
    MAX_GROUP_FIELDS,
    Health,
    ModelInfo,
    Problem,
    RecordBatch,
    RecordPage,
    SharedRecord,
    Stats,
    StrictJSONRoute,
    UploadReceipt,
    counted,
    describe_validation_error,
)
from medkit._service_store import RecordConflict, SiteStore
from medkit._specs import DEPARTMENTS
from medkit.exceptions import ModelFileError, ServiceSettingError

logger = logging.getLogger("medkit.network")

MIN_TOKEN_LENGTH = 16
MIN_CELL = 5
"""Cells of ``GET /stats`` with fewer different patients than this are suppressed."""

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Site and model names: letters, digits, '_', '.' and '-', at most 64 characters."""

_MAX_LISTED = 10


class Rejection(Exception):
    """A request that the service rejects, with a reason and optional details."""

    def __init__(self, status: int, detail: str, log: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.log = log
        self.extra = extra


def create_app(
    site: str,
    *,
    token: str,
    read_tokens: Iterable[str] = (),
    accept_sites: Iterable[str] = (),
    departments: Iterable[str] | None = None,
    db_url: str = "sqlite://",
    max_body_bytes: int = 5_000_000,
    max_model_bytes: int = 20_000_000,
    default_page_size: int = 100,
    max_page_size: int = 1000,
    min_cell: int = MIN_CELL,
) -> FastAPI:
    """Build the web service of one site.

    The service stores the site's own shared records (see
    :data:`medkit.network.RECORD_FIELDS`) and model files, and responds
    to queries about them. Every path except ``/health``, ``/docs``,
    ``/redoc`` and ``/openapi.json`` requires the header ``Authorization:
    Bearer <token>``: without it the service responds with 401, with an
    unknown token 403. The write token may do everything; a read-only token
    (``read_tokens``, for partner sites) may only send GET requests and gets
    403 on ``POST /records`` and ``PUT /models/{name}``.

    The service speaks plain HTTP, so a token crosses the network in clear
    text. Keep the default address 127.0.0.1, or put the service behind a
    TLS proxy (HTTPS) before binding beyond the loopback address.

    Endpoints:

    * ``GET /health``: ``{"status": "ok", "site": ..., "records": n}``.
    * ``POST /records``: body ``{"records": [...]}``. The service scans the
      records with :func:`medkit.privacy.scan`, and also rejects any text
      with a run of 15 to 18 digits, which may be an ID number. It rejects
      the whole upload with 422 if it finds an identifier, a field outside
      the shared record, an invalid value, a department outside
      ``departments`` or a ``site`` that is neither ``site`` nor in
      ``accept_sites``. It rejects it with 409 if a stored record has the
      same ``record_id`` and other values. Otherwise it stores them in one
      transaction and returns ``{"stored": n, "existing": m, "batch_id": ...}``,
      where ``existing`` counts the records sent that were not stored because
      the same record was stored before or repeated in the batch.
    * ``GET /records?page=1&page_size=100&department=...``: one page of records
      ordered by ``record_id``, filtered by equality on ``site``, ``sex``,
      ``age_band``, ``admit_month``, ``department`` and ``icd10``. A page
      size above ``max_page_size`` or an unknown query parameter gets 422.
    * ``GET /records/{record_id}``: one record, or 404.
    * ``GET /stats?group_by=department,icd10``: the number of records and the
      30-day readmission rate per group. Groups of fewer than ``min_cell``
      different patients are left out and counted in ``suppressed``. When
      that leaves out exactly one group, the next smallest group is left out
      too, because the total would otherwise give its count away.
    * ``PUT /models/{name}`` with the bytes of a skops model file,
      ``GET /models/{name}`` and ``GET /models``.

    Bodies larger than ``max_body_bytes`` (``max_model_bytes`` for model
    files) get 413. JSON bodies may not contain NaN or Infinity.

    Parameters
    ----------
    site : str
        The site's name: letters, digits, '_', '.' and '-'.
    token : str
        The site's write token, at least 16 characters without spaces; for
        example from :func:`medkit.network.new_token`.
    read_tokens : iterable of str, default=()
        Read-only tokens to give partner sites, each as long as ``token``
        must be and different from it.
    accept_sites : iterable of str, default=()
        Other sites whose records this service also stores, such as a
        coordinating site that pools partners' uploads. By default it
        stores only records whose ``site`` is ``site``.
    departments : iterable of str, optional
        The departments that a record may name. By default the departments
        of the course's hospitals (``medkit.digitize.DEPARTMENTS``), which
        site B also uses once its traditional characters are cleaned.
    db_url : str, default="sqlite://"
        A SQLAlchemy database URL. The default keeps the records in memory
        until the site stops; ``sqlite:///path/site.db`` keeps them in a file.
    max_body_bytes : int, default=5_000_000
        The largest request body accepted, in bytes.
    max_model_bytes : int, default=20_000_000
        The largest model file accepted, in bytes.
    default_page_size, max_page_size : int, default=100, 1000
        Records per page of ``GET /records`` when none is requested, and the
        maximum that a request may ask for.
    min_cell : int, default=5
        Groups of ``GET /stats`` with fewer different patients are suppressed.

    Returns
    -------
    fastapi.FastAPI
        Serve it with uvicorn, or use :func:`medkit.network.start_site`.

    Raises
    ------
    ServiceSettingError
        If a setting is invalid, such as a token shorter than 16 characters,
        or the database URL cannot be opened.
    """
    read_tokens = _check_tokens(token, read_tokens)
    accepted = _check_sites(site, accept_sites)
    allowed_departments = _check_departments(departments)
    _check_settings(
        site,
        max_body_bytes=max_body_bytes,
        max_model_bytes=max_model_bytes,
        default_page_size=default_page_size,
        max_page_size=max_page_size,
        min_cell=min_cell,
    )
    store = SiteStore(db_url)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        logger.info("Site %s started with database %s", site, store.url)
        yield
        store.close()
        logger.info("Site %s stopped", site)

    app = FastAPI(
        title=f"medkit site {site}",
        version=medkit.__version__,
        description="Shares one site's de-identified inpatient stays, aggregate "
        "statistics and model files. Send 'Authorization: Bearer <token>'.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    add_docs(app, f"medkit site {site}")
    app.router.route_class = StrictJSONRoute
    app.state.site = site
    app.state.store = store
    checks = RecordChecks(site, accepted, allowed_departments)
    _add_error_handlers(app)
    _add_record_routes(app, store, checks, default_page_size, max_page_size)
    _add_stats_route(app, store, min_cell)
    _add_model_routes(app, store)
    _document_bearer_auth(app)

    def body_limit(method: str, path: str) -> int:
        if method == "PUT" and path.startswith("/models/"):
            return max_model_bytes
        return max_body_bytes

    app.add_middleware(
        SiteGuard, token=token, read_tokens=read_tokens, body_limit=body_limit
    )
    return app


def _check_settings(site: str, **sizes: int) -> None:
    check_site_name(site)
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ServiceSettingError(
                f"{name} is {value!r}; expected a positive integer.",
                name=name,
                value=value,
            )
    if sizes["default_page_size"] > sizes["max_page_size"]:
        raise ServiceSettingError(
            f"default_page_size {sizes['default_page_size']} is larger than "
            f"max_page_size {sizes['max_page_size']}; lower it or raise "
            "max_page_size.",
            name="default_page_size",
            value=sizes["default_page_size"],
        )


def check_site_name(site: str, setting: str = "site") -> None:
    """Raise ServiceSettingError unless ``site`` is a valid site name."""
    if not isinstance(site, str) or not re.fullmatch(NAME_PATTERN, site):
        raise ServiceSettingError(
            f"Site name {site!r} is invalid; use 1 to 64 letters, digits, '_', '.' "
            "or '-', starting with a letter or digit.",
            name=setting,
            value=site,
        )


def check_token(token: object, setting: str = "token") -> str:
    """Return ``token`` if a service can use it, or raise ServiceSettingError.

    A token is at least 16 characters long and has no whitespace, because a
    client sends it in a header that cannot carry leading or trailing spaces.
    """
    if not isinstance(token, str) or not token.strip():
        raise ServiceSettingError(
            f"The {setting} is empty or blank; use one of at least "
            f"{MIN_TOKEN_LENGTH} characters, for example from "
            "medkit.network.new_token().",
            name=setting,
        )
    if any(character.isspace() for character in token):
        raise ServiceSettingError(
            f"The {setting} contains whitespace, which a client cannot send in "
            "the Authorization header; use one from medkit.network.new_token().",
            name=setting,
        )
    if len(token) < MIN_TOKEN_LENGTH:
        raise ServiceSettingError(
            f"The {setting} has {len(token)} characters; use at least "
            f"{MIN_TOKEN_LENGTH}, for example from medkit.network.new_token().",
            name=setting,
        )
    return token


def _check_tokens(token: str, read_tokens: Iterable[str]) -> list[str]:
    check_token(token)
    if isinstance(read_tokens, str):
        read_tokens = [read_tokens]
    reads = [check_token(read, "read-only token") for read in read_tokens]
    if token in reads:
        raise ServiceSettingError(
            "A read-only token is the same as the write token, so it could write; "
            "make a separate one with medkit.network.new_token().",
            name="read_tokens",
        )
    return reads


def _check_sites(site: str, accept_sites: Iterable[str]) -> frozenset[str]:
    if isinstance(accept_sites, str):
        accept_sites = [accept_sites]
    accepted = set(accept_sites)
    for other in accepted:
        check_site_name(other, "accept_sites")
    return frozenset({site, *accepted})


def _check_departments(departments: Iterable[str] | None) -> frozenset[str]:
    if departments is None:
        return frozenset(DEPARTMENTS)
    if isinstance(departments, str):
        departments = [departments]
    allowed = frozenset(departments)
    bad = [d for d in allowed if not isinstance(d, str) or not d.strip()]
    if not allowed or bad:
        raise ServiceSettingError(
            f"departments is {sorted(map(repr, allowed))}; give at least one "
            "department name, each a non-empty text.",
            name="departments",
        )
    return allowed


# Errors ------------------------------------------------------------------------


def _add_error_handlers(app: FastAPI) -> None:
    async def rejection(request: Request, error: Rejection) -> JSONResponse:
        set_rejection_reason(request.scope, error.log)
        return JSONResponse(
            {"detail": error.detail, **error.extra}, status_code=error.status
        )

    async def invalid_request(
        request: Request, error: RequestValidationError
    ) -> JSONResponse:
        detail, errors = describe_validation_error(error)
        set_rejection_reason(
            request.scope, counted(len(error.errors()), "validation error")
        )
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    async def http_error(
        request: Request, error: StarletteHTTPException
    ) -> JSONResponse:
        set_rejection_reason(request.scope, str(error.detail).split(". ")[0])
        return JSONResponse(
            {"detail": error.detail},
            status_code=error.status_code,
            headers=error.headers,
        )

    app.add_exception_handler(Rejection, rejection)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)


# Records -----------------------------------------------------------------------


# A resident ID number has 18 characters (17 digits and a check digit that may
# be X) and the older form 15 digits. Any such run is rejected, whether or not
# its check digit is valid, because a mistyped ID still identifies a person.
_ID_NUMBER_LIKE = re.compile(r"(?<![0-9])[0-9]{14,17}[0-9Xx](?![0-9])")
# Pseudonyms are hexadecimal digits, which can contain long runs of 0-9.
_PSEUDONYM_FIELDS = frozenset({"record_id", "patient_pseudonym"})


async def _scan_upload(request: Request) -> None:
    """Reject an upload that contains direct identifiers, before storing anything.

    It scans the records as sent, before validation, so an identifier in a
    field outside the shared record is reported as an identifier.
    """
    try:
        payload = await request.json()
    except ValueError:
        return  # not JSON, such as a body sent as text/plain; validation rejects it
    records = payload.get("records") if isinstance(payload, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        return  # validation rejects the body with a message about its shape
    report = await run_in_threadpool(privacy.scan, records)
    numbers = _id_number_like(records)
    if report or numbers:
        raise _identifiers_found(report, numbers)


def _id_number_like(records: list[dict]) -> list[str]:
    """Return the places of text values that contain a run of 15 to 18 digits."""
    places = []
    for position, record in enumerate(records):
        for field, value in record.items():
            if field in _PSEUDONYM_FIELDS or not isinstance(value, str):
                continue
            if _ID_NUMBER_LIKE.search(value):
                places.append(f"record {position}, field {field!r}")
    return places


def _identifiers_found(report: privacy.ScanReport, numbers: list[str]) -> Rejection:
    findings = report.findings
    listed = [f"{finding.kind} at {finding.location}" for finding in findings]
    listed += [f"possible ID number at {place}" for place in numbers]
    total = report.total + len(numbers)
    shown = "; ".join(listed[:_MAX_LISTED])
    if total > _MAX_LISTED:
        shown += f"; and {total - _MAX_LISTED} more"
    return Rejection(
        422,
        f"Upload rejected: {counted(total, 'direct identifier')} found ({shown}). "
        "Nothing was stored. De-identify the records first, for example with "
        "medkit.privacy.shared_records.",
        log=f"direct identifiers found ({report.summary()}"
        + (f"; {counted(len(numbers), 'possible ID number')})" if numbers else ")"),
        findings=[
            {
                "kind": finding.kind,
                "location": str(finding.location),
                "value_masked": finding.value_masked,
            }
            for finding in findings[:_MAX_LISTED]
        ]
        + [
            {"kind": "national_id", "location": place, "value_masked": "*" * 18}
            for place in numbers[: max(0, _MAX_LISTED - len(findings))]
        ],
    )


class RecordChecks:
    """The checks of a record that depend on the site: its site and department."""

    def __init__(
        self, site: str, accepted_sites: frozenset[str], departments: frozenset[str]
    ) -> None:
        self.site = site
        self.accepted_sites = accepted_sites
        self.departments = departments

    def check(self, records: list[dict]) -> None:
        """Raise a 422 Rejection listing the records from another site or department."""
        problems = []
        for position, record in enumerate(records):
            if record["site"] not in self.accepted_sites:
                problems.append(
                    f"records[{position}].site: this service stores the records of "
                    f"site {self.site!r}"
                    + (
                        f" and {', '.join(sorted(self.accepted_sites - {self.site}))}"
                        if len(self.accepted_sites) > 1
                        else ""
                    )
                    + f", not {record['site']!r}; send them to that site's service"
                )
            if record["department"] not in self.departments:
                problems.append(
                    f"records[{position}].department: not a department of this "
                    f"site; expected one of {', '.join(sorted(self.departments))}"
                )
        if problems:
            shown = "; ".join(problems[:_MAX_LISTED])
            if len(problems) > _MAX_LISTED:
                shown += f"; and {len(problems) - _MAX_LISTED} more"
            raise Rejection(
                422,
                f"Request rejected with {counted(len(problems), 'validation error')}: "
                f"{shown}. Nothing was stored.",
                log=f"{counted(len(problems), 'record')} from another site or "
                "department",
            )


def _unique_records(batch: RecordBatch) -> list[dict]:
    """Return the batch's records once each; conflicting duplicates are a 422."""
    first: dict[str, tuple[int, dict]] = {}
    conflicts: dict[str, list[int]] = {}
    for position, record in enumerate(batch.records):
        seen = first.get(record["record_id"])
        if seen is None:
            first[record["record_id"]] = (position, record)
        elif seen[1] != record:
            conflicts.setdefault(record["record_id"], [seen[0]]).append(position)
    if conflicts:
        listed = "; ".join(
            f"{record_id} at records{positions}"
            for record_id, positions in list(conflicts.items())[:_MAX_LISTED]
        )
        raise Rejection(
            422,
            f"Upload rejected: {counted(len(conflicts), 'record_id value')} "
            f"{'appears' if len(conflicts) == 1 else 'appear'} more than once with "
            f"different values ({listed}). Nothing was stored. Send each record "
            "once.",
            log=f"{len(conflicts)} conflicting duplicate record_id values in a batch",
            record_ids=list(conflicts)[:_MAX_LISTED],
        )
    return [record for _, record in first.values()]


def _add_record_routes(
    app: FastAPI,
    store: SiteStore,
    checks: RecordChecks,
    default_page_size: int,
    max_page_size: int,
) -> None:
    site = checks.site

    @app.get("/health", response_model=Health, tags=["service"])
    def health() -> JSONResponse:
        """Report that the site is up, and how many records it stores."""
        records = store.count_records()
        return JSONResponse({"status": "ok", "site": site, "records": records})

    @app.post(
        "/records",
        response_model=UploadReceipt,
        dependencies=[Depends(_scan_upload)],
        responses={409: {"model": Problem}, 413: {"model": Problem}},
        tags=["records"],
    )
    def upload_records(batch: RecordBatch) -> JSONResponse:
        """Store a batch of shared records in one transaction."""
        checks.check(batch.records)
        records = _unique_records(batch)
        repeated = len(batch.records) - len(records)
        try:
            result = store.add_records(records)
        except RecordConflict as conflict:
            ids = conflict.record_ids
            stored = "is" if len(ids) == 1 else "are"
            raise Rejection(
                409,
                f"Upload rejected: {counted(len(ids), 'record')} {stored} already "
                f"stored with other values ({', '.join(ids[:_MAX_LISTED])}). "
                "Nothing was stored. A "
                "stored record is never changed; check the records' pseudonym key.",
                log=f"{counted(len(ids), 'record')} conflicting with stored records",
                record_ids=ids[:_MAX_LISTED],
            ) from None
        logger.info(
            "Site %s stored batch %s: %d new records, %d already stored",
            site,
            result.batch_id,
            result.stored,
            result.existing + repeated,
        )
        return JSONResponse(
            {
                "stored": result.stored,
                "existing": result.existing + repeated,
                "batch_id": result.batch_id,
            }
        )

    @app.get("/records", response_model=RecordPage, tags=["records"])
    def page_records(
        request: Request,
        page: Annotated[int, Query(ge=1, le=10_000_000)] = 1,
        page_size: Annotated[int, Query(ge=1, le=max_page_size)] = default_page_size,
        site: str | None = None,
        sex: str | None = None,
        age_band: str | None = None,
        admit_month: str | None = None,
        department: str | None = None,
        icd10: str | None = None,
    ) -> JSONResponse:
        """Return one page of records, ordered by record_id and filtered by equality."""
        _check_query_names(request, {"page", "page_size", *FILTER_FIELDS})
        requested = {
            "site": site,
            "sex": sex,
            "age_band": age_band,
            "admit_month": admit_month,
            "department": department,
            "icd10": icd10,
        }
        filters = {name: requested[name] for name in FILTER_FIELDS if requested[name]}
        total, records = store.page_records(filters, page, page_size)
        return JSONResponse(
            {"page": page, "page_size": page_size, "total": total, "records": records}
        )

    @app.get(
        "/records/{record_id}",
        response_model=SharedRecord,
        responses={404: {"model": Problem}},
        tags=["records"],
    )
    async def get_record(record_id: str) -> JSONResponse:
        """Return one record by its record_id."""
        if store.reads_never_wait:
            # A primary-key lookup takes microseconds, less than handing it to
            # a worker thread, so it runs on the event loop.
            record = store.get_record(record_id)
        else:
            record = await run_in_threadpool(store.get_record, record_id)
        if record is None:
            raise StarletteHTTPException(
                404, f"No record with record_id {record_id!r} at site {site}."
            )
        return JSONResponse(record)


def _check_query_names(request: Request, allowed: set[str]) -> None:
    # FastAPI ignores unknown query parameters, so a misspelt filter such as
    # "dept" would return every record instead of failing.
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise Rejection(
            422,
            f"Unknown query parameter {', '.join(map(repr, unknown))}; use "
            f"{', '.join(sorted(allowed))}.",
            log="unknown query parameter",
        )
    # FastAPI keeps the last of repeated parameters, so "sex=F&sex=M" would
    # silently return the men only.
    names = [name for name, _ in request.query_params.multi_items()]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise Rejection(
            422,
            f"Query parameter {', '.join(map(repr, repeated))} is given more than "
            "once; give each filter once (a filter matches one value).",
            log="repeated query parameter",
        )


# Statistics --------------------------------------------------------------------


def _add_stats_route(app: FastAPI, store: SiteStore, min_cell: int) -> None:
    @app.get("/stats", response_model=Stats, tags=["statistics"])
    def stats(
        request: Request,
        group_by: Annotated[
            str,
            Query(
                description="Comma-separated fields, at most 3, from: "
                + ", ".join(GROUP_FIELDS)
            ),
        ] = "",
    ) -> JSONResponse:
        """Count records and readmission rates per group, leaving out small groups."""
        _check_query_names(request, {"group_by"})
        fields = _group_fields(group_by)
        rows, suppressed = suppress_small_cells(store.group_counts(fields), min_cell)
        for row in rows:
            row["readmit_rate"] = round(float(row["readmit_rate"]), 4)
        return JSONResponse(
            {
                "group_by": fields,
                "min_cell": min_cell,
                "rows": rows,
                "suppressed": suppressed,
            }
        )


def suppress_small_cells(cells: list[dict], min_cell: int) -> tuple[list[dict], int]:
    """Leave out the groups of fewer than ``min_cell`` patients, and one more if needed.

    Primary suppression leaves out every group whose ``patients`` (different
    patient pseudonyms) is below ``min_cell``, because five stays of one
    patient hide nobody. When that leaves out exactly one group, its count
    would be the total (from ``/health``) minus the groups shown, so the next
    smallest group, by patients and then stays, is left out too (secondary
    suppression).

    NOTE: Differencing across requests remains possible. A suppressed group of
    ``group_by=department,sex`` can be recovered from the shown groups and the
    ``group_by=department`` row of its department. Only aggregates computed by
    a trusted party, or noise (differential privacy), close that gap.

    Parameters
    ----------
    cells : list of dict
        Groups with ``n`` (stays) and ``patients``, in display order.
    min_cell : int
        Smallest number of patients that a shown group may have.

    Returns
    -------
    rows : list of dict
        The groups shown, in the given order, without ``patients``.
    suppressed : int
        The number of groups left out.
    """
    hidden = {i for i, cell in enumerate(cells) if cell["patients"] < min_cell}
    if len(hidden) == 1 and len(cells) > 1:
        shown = [i for i in range(len(cells)) if i not in hidden]
        smallest = min(shown, key=lambda i: (cells[i]["patients"], cells[i]["n"], i))
        hidden.add(smallest)
    rows = [
        {name: value for name, value in cell.items() if name != "patients"}
        for i, cell in enumerate(cells)
        if i not in hidden
    ]
    return rows, len(hidden)


def _group_fields(group_by: str) -> list[str]:
    fields = [field.strip() for field in group_by.split(",") if field.strip()]
    unknown = [field for field in fields if field not in GROUP_FIELDS]
    if unknown:
        raise Rejection(
            422,
            f"Cannot group by {', '.join(map(repr, unknown))}; choose from "
            f"{', '.join(GROUP_FIELDS)}.",
            log="unknown group_by field",
        )
    repeated = sorted({field for field in fields if fields.count(field) > 1})
    if repeated:
        raise Rejection(
            422,
            f"group_by lists {', '.join(map(repr, repeated))} more than once; "
            "give each field once.",
            log="duplicated group_by field",
        )
    if len(fields) > MAX_GROUP_FIELDS:
        raise Rejection(
            422,
            f"group_by lists {len(fields)} fields; give at most {MAX_GROUP_FIELDS}.",
            log="too many group_by fields",
        )
    return fields


# Models ------------------------------------------------------------------------


ModelName = Annotated[str, PathParam(pattern=NAME_PATTERN)]


def _add_model_routes(app: FastAPI, store: SiteStore) -> None:
    @app.put(
        "/models/{name}",
        response_model=ModelInfo,
        responses={413: {"model": Problem}, 422: {"model": Problem}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/octet-stream": {
                        "schema": {"type": "string", "format": "binary"}
                    }
                },
            }
        },
        tags=["models"],
    )
    async def put_model(name: ModelName, request: Request) -> JSONResponse:
        """Store a skops model file written by medkit.intelligence.save_model."""
        content = await request.body()
        await run_in_threadpool(_check_model_file, name, content)
        info = await run_in_threadpool(store.put_model, name, content)
        logger.info(
            "Stored model %s: %d bytes, SHA-256 %s", name, len(content), info["sha256"]
        )
        return JSONResponse(info)

    @app.get(
        "/models/{name}",
        response_class=Response,
        responses={
            200: {"content": {"application/octet-stream": {}}},
            404: {"model": Problem},
        },
        tags=["models"],
    )
    def get_model(name: ModelName) -> Response:
        """Return the bytes of a model file; its SHA-256 is in X-Model-SHA256."""
        found = store.get_model(name)
        if found is None:
            raise StarletteHTTPException(404, f"No model named {name!r} at this site.")
        content, sha256 = found
        return Response(
            content,
            media_type="application/octet-stream",
            headers={
                "x-model-sha256": sha256,
                "etag": f'"{sha256}"',
                "content-disposition": f'attachment; filename="{name}.skops"',
            },
        )

    @app.get("/models", response_model=list[ModelInfo], tags=["models"])
    def list_models() -> JSONResponse:
        """List the stored model files."""
        return JSONResponse(store.list_models())


def _check_model_file(name: str, content: bytes) -> None:
    """Reject bytes that medkit.intelligence.load_model does not accept."""
    if not content:
        raise Rejection(
            422,
            f"Model {name!r} has an empty body; send the bytes of a .skops file.",
            log="empty model file",
        )
    # Imported here because scikit-learn and skops take a second to import,
    # which every start of the service would otherwise pay.
    from medkit._model_files import load_model

    with tempfile.TemporaryDirectory(prefix="medkit-model-") as folder:
        path = Path(folder) / f"{name}.skops"
        path.write_bytes(content)
        try:
            load_model(path)
        except ModelFileError as error:
            detail = str(error).replace(str(path), repr(name))
            raise Rejection(422, detail, log="model file rejected") from None


def _document_bearer_auth(app: FastAPI) -> None:
    """Declare the bearer token in the OpenAPI schema, so /docs can send it."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}
            }
            for path, operations in schema["paths"].items():
                if path in PUBLIC_PATHS:
                    continue
                for operation in operations.values():
                    operation["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
