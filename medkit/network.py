"""Stage 3, networking: share de-identified records and models between sites.

Each site runs a small web service over HTTP with a bearer token, and other
sites call it with a client:

* :func:`create_app` builds one site's FastAPI application. It stores the
  site's shared records (one de-identified inpatient stay each, fields
  :data:`RECORD_FIELDS`) in SQLite or any SQLAlchemy database, scans every
  upload again with :func:`medkit.privacy.scan` and rejects any with a direct
  identifier, pages and filters records, reports counts and readmission rates
  per group with groups of fewer than 5 patients suppressed, and keeps skops
  model files checked like :func:`medkit.intelligence.load_model` checks them.
  The site's write token may do everything; read-only tokens for partner
  sites may only read. Its OpenAPI documentation is at ``/docs``, served
  without internet access.
* :class:`SiteClient` calls a site with timeouts and retries, and converts
  DataFrames to strict JSON (missing values as null, dates as ISO text).
* :func:`start_site` runs a site in a background thread, so that one notebook
  can run site A and site B on two loopback ports; :func:`serve` runs one in
  the foreground, as the ``medkit serve`` command does.
* :func:`to_fhir_bundle` converts clean or de-identified tables to a FHIR
  Bundle of Patient, Encounter and Observation resources.
"""

from __future__ import annotations

from medkit._client import RETRY_STATUSES, SiteClient, UploadResult, to_json_records
from medkit._fhir import to_fhir_bundle
from medkit._service import MIN_CELL, MIN_TOKEN_LENGTH, create_app
from medkit._service_run import (
    READ_TOKENS_ENV,
    TOKEN_ENV,
    RunningSite,
    new_token,
    serve,
    start_site,
)
from medkit._service_schema import (
    FILTER_FIELDS,
    GROUP_FIELDS,
    RECORD_FIELDS,
    SharedRecord,
)
from medkit._specs import DEPARTMENTS
from medkit.exceptions import RecordFormatError, ServiceError, ServiceSettingError

__all__ = [
    "DEPARTMENTS",
    "FILTER_FIELDS",
    "GROUP_FIELDS",
    "MIN_CELL",
    "MIN_TOKEN_LENGTH",
    "RECORD_FIELDS",
    "READ_TOKENS_ENV",
    "RETRY_STATUSES",
    "TOKEN_ENV",
    "RecordFormatError",
    "RunningSite",
    "ServiceError",
    "ServiceSettingError",
    "SharedRecord",
    "SiteClient",
    "UploadResult",
    "create_app",
    "new_token",
    "serve",
    "start_site",
    "to_fhir_bundle",
    "to_json_records",
]
