"""The site service: a FastAPI application sharing one site's de-identified records."""

# Route signatures use closure values such as max_page_size, so annotations
# must be evaluated when the routes are defined, not postponed as text.
import contextlib
import logging
import re
import tempfile
from collections.abc import AsyncIterator
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
    describe_validation_error,
)
from medkit._service_store import RecordConflict, SiteStore
from medkit.exceptions import ModelFileError, ServiceSettingError

logger = logging.getLogger("medkit.network")

MIN_TOKEN_LENGTH = 16
MIN_CELL = 5
"""Cells of ``GET /stats`` with fewer records than this are suppressed."""

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
    db_url: str = "sqlite://",
    max_body_bytes: int = 5_000_000,
    max_model_bytes: int = 20_000_000,
    default_page_size: int = 100,
    max_page_size: int = 1000,
    min_cell: int = MIN_CELL,
) -> FastAPI:
    """Build the web service of one site.

    The service stores shared records (see
    :data:`medkit.network.RECORD_FIELDS`) and model files, and responds
    to queries about them. Every path except ``/health``, ``/docs`` and
    ``/openapi.json`` requires the header ``Authorization: Bearer <token>``:
    without it the service responds with 401, with another token 403.

    Endpoints:

    * ``GET /health``: ``{"status": "ok", "site": ..., "records": n}``.
    * ``POST /records``: body ``{"records": [...]}``. The service scans the
      records with :func:`medkit.privacy.scan`. It rejects the whole upload
      with 422 if it finds a direct identifier, a field outside the shared
      record or an invalid value, and with 409 if a stored record has the same
      ``record_id`` and other values. Otherwise it stores them in one
      transaction and returns ``{"stored": n, "existing": m, "batch_id": ...}``,
      where ``existing`` counts the records sent that were not stored because
      the same record was stored before or repeated in the batch.
    * ``GET /records?page=1&page_size=100&department=...``: one page of records
      ordered by ``record_id``, filtered by equality on ``site``, ``sex``,
      ``age_band``, ``admit_month``, ``department`` and ``icd10``. A page
      size above ``max_page_size`` or an unknown query parameter gets 422.
    * ``GET /records/{record_id}``: one record, or 404.
    * ``GET /stats?group_by=department,icd10``: the number of records and the
      30-day readmission rate per group; groups of fewer than ``min_cell``
      records are left out and counted in ``suppressed``.
    * ``PUT /models/{name}`` with the bytes of a skops model file,
      ``GET /models/{name}`` and ``GET /models``.

    Bodies larger than ``max_body_bytes`` (``max_model_bytes`` for model
    files) get 413. JSON bodies may not contain NaN or Infinity.

    Parameters
    ----------
    site : str
        The site's name: letters, digits, '_', '.' and '-'.
    token : str
        The bearer token that clients must send, at least 16 characters; for
        example from :func:`medkit.network.new_token`.
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
        Groups of ``GET /stats`` with fewer records are suppressed.

    Returns
    -------
    fastapi.FastAPI
        Serve it with uvicorn, or use :func:`medkit.network.start_site`.

    Raises
    ------
    ServiceSettingError
        If a setting is invalid, such as a token shorter than 16 characters.
    """
    _check_settings(
        site,
        token,
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
        docs_url="/docs",
        redoc_url=None,
    )
    app.router.route_class = StrictJSONRoute
    app.state.site = site
    app.state.store = store
    _add_error_handlers(app)
    _add_record_routes(app, store, site, default_page_size, max_page_size)
    _add_stats_route(app, store, min_cell)
    _add_model_routes(app, store)
    _document_bearer_auth(app)

    def body_limit(method: str, path: str) -> int:
        if method == "PUT" and path.startswith("/models/"):
            return max_model_bytes
        return max_body_bytes

    app.add_middleware(SiteGuard, token=token, body_limit=body_limit)
    return app


def _check_settings(site: str, token: str, **sizes: int) -> None:
    if not isinstance(site, str) or not re.fullmatch(NAME_PATTERN, site):
        raise ServiceSettingError(
            f"Site name {site!r} is invalid; use 1 to 64 letters, digits, '_', '.' "
            "or '-', starting with a letter or digit.",
            name="site",
            value=site,
        )
    if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH:
        length = len(token) if isinstance(token, str) else 0
        raise ServiceSettingError(
            f"The token has {length} characters; use at least {MIN_TOKEN_LENGTH}, "
            "for example from medkit.network.new_token().",
            name="token",
        )
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
        set_rejection_reason(request.scope, f"{len(error.errors())} validation errors")
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
    if report:
        raise _identifiers_found(report)


def _identifiers_found(report: privacy.ScanReport) -> Rejection:
    findings = report.findings
    listed = "; ".join(
        f"{finding.kind} at {finding.location}" for finding in findings[:_MAX_LISTED]
    )
    if report.total > _MAX_LISTED:
        listed += f"; and {report.total - _MAX_LISTED} more"
    return Rejection(
        422,
        f"Upload rejected: {report.total} direct identifiers found ({listed}). "
        "Nothing was stored. De-identify the records first, for example with "
        "medkit.privacy.shared_records.",
        log=f"direct identifiers found ({report.summary()})",
        findings=[
            {
                "kind": finding.kind,
                "location": str(finding.location),
                "value_masked": finding.value_masked,
            }
            for finding in findings[:_MAX_LISTED]
        ],
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
            f"Upload rejected: {len(conflicts)} record_id values appear more than "
            f"once with different values ({listed}). Nothing was stored. Send each "
            "record once.",
            log=f"{len(conflicts)} conflicting duplicate record_id values in a batch",
            record_ids=list(conflicts)[:_MAX_LISTED],
        )
    return [record for _, record in first.values()]


def _add_record_routes(
    app: FastAPI,
    store: SiteStore,
    site: str,
    default_page_size: int,
    max_page_size: int,
) -> None:
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
        records = _unique_records(batch)
        repeated = len(batch.records) - len(records)
        try:
            result = store.add_records(records)
        except RecordConflict as conflict:
            ids = conflict.record_ids
            raise Rejection(
                409,
                f"Upload rejected: {len(ids)} records are already stored with other "
                f"values ({', '.join(ids[:_MAX_LISTED])}). Nothing was stored. A "
                "stored record is never changed; check the records' pseudonym key.",
                log=f"{len(ids)} records conflict with stored records",
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
        rows, suppressed = [], 0
        for row in store.group_counts(fields):
            if row["n"] < min_cell:
                suppressed += 1
                continue
            row["readmit_rate"] = round(float(row["readmit_rate"]), 4)
            rows.append(row)
        # NOTE: Suppressing only the small cells leaves their total derivable
        # when a single cell is suppressed (from /health's count, or from a
        # coarser grouping). Secondary suppression is not implemented.
        return JSONResponse(
            {
                "group_by": fields,
                "min_cell": min_cell,
                "rows": rows,
                "suppressed": suppressed,
            }
        )


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
    if len(set(fields)) != len(fields) or len(fields) > MAX_GROUP_FIELDS:
        raise Rejection(
            422,
            f"group_by lists {len(fields)} fields; give at most {MAX_GROUP_FIELDS} "
            "different fields.",
            log="invalid group_by",
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
