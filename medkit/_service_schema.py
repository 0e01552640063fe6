"""The shared record that sites exchange, and strict JSON for the site service."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from typing_extensions import TypedDict

RECORD_FIELDS = (
    "record_id",
    "patient_pseudonym",
    "site",
    "sex",
    "age_band",
    "admit_month",
    "length_of_stay",
    "postcode_prefix",
    "department",
    "icd10",
    "systolic_bp",
    "heart_rate",
    "readmit_30d",
)
"""Fields of the shared record, one de-identified inpatient stay, in order."""

FILTER_FIELDS = ("site", "sex", "age_band", "admit_month", "department", "icd10")
"""Fields that ``GET /records`` filters on, each by equality."""

GROUP_FIELDS = (
    "site",
    "sex",
    "age_band",
    "admit_month",
    "postcode_prefix",
    "department",
    "icd10",
    "readmit_30d",
)
"""Fields that ``GET /stats`` can group by. Pseudonyms and measurements are not."""

MAX_GROUP_FIELDS = 3

NULLABLE_FIELDS = frozenset({"sex", "systolic_bp", "heart_rate"})
"""Fields that may be null when the value is unknown."""

DIRECT_IDENTIFIER_FIELDS = frozenset(
    {"name", "phone", "national_id", "address", "patient_id", "visit_id", "email"}
)
"""Field names that carry a direct identifier or an unpseudonymised key."""

# Pseudonyms are a one-letter prefix and the hexadecimal digits of an HMAC, as
# medkit.privacy.pseudonymize makes them. A raw ID such as "000123" fails.
_RECORD_ID = r"^R[0-9a-fA-F]{8,64}$"
_PATIENT_PSEUDONYM = r"^P[0-9a-fA-F]{8,64}$"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ICD10 = r"^[A-Z]\d{2}(\.[0-9A-Z]{1,4})?$"

SUPPRESSED = "*"
"""A quasi-identifier that medkit.privacy.enforce_k_anonymity suppressed."""

MIN_BAND_YEARS = 5
MAX_AGE = 120
ADMIT_YEARS = (1980, 2100)
"""First and last year of an admission that a record may carry."""

_BAND = re.compile(r"(\d{1,3})-(\d{1,3})")
_OPEN_BAND = re.compile(r"(\d{1,3})\+")
_PERIOD = re.compile(r"(\d{4})(?:-(0[1-9]|1[0-2])|-Q([1-4]))?")


def check_age_band(value: str) -> str:
    """Accept the age bands of medkit.privacy: "60-69", "60-79", "90+" or "*".

    A closed band "lo-hi" starts at a multiple of 5 and spans at least 5
    years. An open band "N+" starts at a multiple of 5. Narrower bands, such
    as "37-37", would carry the exact age.
    """
    if value == SUPPRESSED:
        return value
    closed, opened = _BAND.fullmatch(value), _OPEN_BAND.fullmatch(value)
    if closed:
        low, high = int(closed[1]), int(closed[2])
        if low % 5 == 0 and high - low + 1 >= MIN_BAND_YEARS and high <= MAX_AGE:
            return value
    elif opened and int(opened[1]) % 5 == 0 and int(opened[1]) <= MAX_AGE:
        return value
    raise ValueError(
        "expected an age band such as '60-69' (starting at a multiple of 5 and "
        f"spanning at least {MIN_BAND_YEARS} years, up to {MAX_AGE}), an open top "
        "band such as '90+', or '*' (medkit.privacy.age_band)"
    )


def check_admit_month(value: str) -> str:
    """Accept the admission periods of medkit.privacy: "2024-03", "2024-Q1", "2024"."""
    if value == SUPPRESSED:
        return value
    period = _PERIOD.fullmatch(value)
    if period and ADMIT_YEARS[0] <= int(period[1]) <= ADMIT_YEARS[1]:
        return value
    raise ValueError(
        "expected a month 'YYYY-MM', a quarter 'YYYY-Qn', a year 'YYYY' or '*', "
        f"with the year from {ADMIT_YEARS[0]} to {ADMIT_YEARS[1]} "
        "(medkit.privacy.to_month)"
    )


def check_postcode_prefix(value: str) -> str:
    """Accept 1 to 3 leading postcode digits, or "*"."""
    if value == SUPPRESSED or (value.isascii() and value.isdigit() and len(value) <= 3):
        return value
    raise ValueError(
        "expected the first 1 to 3 digits of the postcode, or '*' "
        "(medkit.privacy.postcode_prefix)"
    )


def _reject_text_and_booleans(value: object) -> object:
    # JSON numbers such as 80.0 are kept, because pandas stores an integer
    # column with missing values as floats; pydantic rejects 80.5 afterwards.
    if isinstance(value, str | bool):
        raise ValueError(f"expected a whole number, not {type(value).__name__}")
    return value


StrictCount = Annotated[int, BeforeValidator(_reject_text_and_booleans)]
"""A whole number: the text "120" and the booleans true and false are rejected."""

ShortText = Annotated[str, Field(min_length=1, max_length=100)]


class SharedRecord(TypedDict):
    """One de-identified inpatient stay, as sites exchange it.

    A TypedDict rather than a model, so that validating a batch returns the
    dicts that storage takes, in less than half the time that building and
    dumping models took (1.0 against 2.4 ms per 500 records). The Python
    checks of bands, periods, prefixes and whole numbers add about 2 ms per
    500 records (measured on the 2-core development machine), a fifth of the
    time that the identifier scan of the same batch takes.

    Quasi-identifiers take exactly the values that medkit.privacy produces,
    including the coarser levels and the "*" of
    :func:`medkit.privacy.enforce_k_anonymity`.
    """

    record_id: Annotated[
        str, Field(pattern=_RECORD_ID, description="Pseudonym of the visit ID.")
    ]
    patient_pseudonym: Annotated[
        str,
        Field(
            pattern=_PATIENT_PSEUDONYM,
            description="Pseudonym of the patient ID; the same key gives the "
            "same pseudonym at every site.",
        ),
    ]
    site: Annotated[str, Field(pattern=_NAME, description="The sending site.")]
    sex: Literal["M", "F", "*"] | None
    age_band: Annotated[
        str,
        AfterValidator(check_age_band),
        Field(examples=["60-69", "60-79", "90+", "*"]),
    ]
    admit_month: Annotated[
        str,
        AfterValidator(check_admit_month),
        Field(examples=["2024-03", "2024-Q1", "2024", "*"]),
    ]
    length_of_stay: Annotated[StrictCount, Field(ge=0, le=3650, description="Days.")]
    postcode_prefix: Annotated[
        str,
        AfterValidator(check_postcode_prefix),
        Field(
            description="The first 1 to 3 digits of the postcode, or '*'.",
            examples=["730", "7", "*"],
        ),
    ]
    department: Annotated[
        ShortText,
        Field(description="One of the departments that the site accepts."),
    ]
    icd10: Annotated[str, Field(pattern=_ICD10, examples=["I50.0"])]
    systolic_bp: Annotated[StrictCount | None, Field(ge=0, le=400, description="mmHg.")]
    heart_rate: Annotated[
        StrictCount | None, Field(ge=0, le=400, description="Beats/min.")
    ]
    readmit_30d: Annotated[StrictCount, Field(ge=0, le=1, description="0 or 1.")]


# Pydantic reads a TypedDict's settings from this attribute.
SharedRecord.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]


class RecordBatch(BaseModel):
    """The body of ``POST /records``."""

    model_config = ConfigDict(extra="forbid")

    records: Annotated[list[SharedRecord], Field(min_length=1)]


class UploadReceipt(BaseModel):
    stored: int = Field(description="Records stored by this request.")
    existing: int = Field(
        description="Records sent but not stored again: the same record was "
        "stored before or repeated in this batch."
    )
    batch_id: str


class RecordPage(BaseModel):
    page: int
    page_size: int
    total: int
    records: list[SharedRecord]


class Health(BaseModel):
    status: Literal["ok"]
    site: str
    records: int


class Stats(BaseModel):
    group_by: list[str]
    min_cell: int
    rows: list[dict[str, Any]]
    suppressed: int = Field(
        description="Cells left out because they have fewer than min_cell "
        "different patients, plus one more when only one was left out."
    )


class ModelInfo(BaseModel):
    name: str
    bytes: int
    sha256: str
    uploaded_at: str


class Problem(BaseModel):
    detail: str


def counted(number: int, singular: str) -> str:
    """Return a count and its noun, such as "1 record" or "3 records"."""
    return f"{number} {singular if number == 1 else singular + 's'}"


# Strict JSON -------------------------------------------------------------------


class _NonStandardConstant(ValueError):
    def __init__(self, constant: str) -> None:
        super().__init__(constant)
        self.constant = constant


def _reject_constant(constant: str) -> None:
    raise _NonStandardConstant(constant)


def loads_strict(body: bytes) -> Any:
    """Parse JSON text, rejecting the NaN, Infinity and -Infinity that Python allows.

    Raises
    ------
    fastapi.HTTPException
        With status 422 when the body contains one of those constants.
    json.JSONDecodeError
        When the body is not JSON.
    """
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except _NonStandardConstant as error:
        raise HTTPException(
            status_code=422,
            detail=f"Request body contains {error.constant}, which is not valid "
            "JSON. Send null for a missing value and finite numbers otherwise.",
        ) from None


class StrictJSONRequest(Request):
    """A request whose JSON body may not contain NaN or Infinity."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_strict(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """A FastAPI route that parses request bodies with :func:`loads_strict`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler


# Validation messages -------------------------------------------------------------

_MAX_LISTED_ERRORS = 10


def describe_validation_error(error: RequestValidationError) -> tuple[str, list]:
    """Return one sentence about a rejected request, and its errors one by one.

    Values are never quoted, because a rejected record can contain an
    identifier. Each error names its place, such as ``records[3].sex``.
    """
    errors = error.errors()
    items = [
        {"loc": _location(item["loc"]), "message": _message(item)}
        for item in errors[:_MAX_LISTED_ERRORS]
    ]
    if any(item.get("type") == "json_invalid" for item in errors):
        reason = errors[0].get("ctx", {}).get("error", "invalid JSON")
        detail = (
            f"Request body is not valid JSON ({reason} at byte "
            f"{errors[0]['loc'][-1]}). Send a JSON object; nothing was stored."
        )
        return detail, items
    listed = "; ".join(f"{item['loc']}: {item['message']}" for item in items)
    more = len(errors) - len(items)
    if more:
        listed += f"; and {more} more"
    noun = "error" if len(errors) == 1 else "errors"
    detail = f"Request rejected with {len(errors)} validation {noun}: {listed}."
    if items and items[0]["loc"].startswith("records"):
        detail += " Nothing was stored."
    return detail, items


def _location(loc: tuple) -> str:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path"):
        kind = parts.pop(0)
        if kind != "body" and parts:
            return f"{kind} parameter {parts[0]}"
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "body"


def _message(item: dict) -> str:
    kind = item.get("type")
    field = item["loc"][-1] if item.get("loc") else None
    if kind == "extra_forbidden":
        if field in DIRECT_IDENTIFIER_FIELDS:
            return (
                f"field '{field}' is a direct identifier and not part of the "
                "shared record; remove it (medkit.privacy.shared_records builds "
                "shared records)"
            )
        return f"field '{field}' is not part of the shared record; remove it"
    if kind == "missing" and field in NULLABLE_FIELDS:
        return "required field is missing; send null if the value is unknown"
    if kind == "missing":
        return (
            "required field is missing; every shared record has it "
            "(medkit.privacy.shared_records builds them)"
        )
    if kind == "string_pattern_mismatch" and field in (
        "record_id",
        "patient_pseudonym",
    ):
        prefix = "R" if field == "record_id" else "P"
        return (
            f"not a pseudonym: expected '{prefix}' and hexadecimal digits, as "
            "medkit.privacy.pseudonymize makes them"
        )
    if kind == "string_pattern_mismatch" and field == "icd10":
        return "expected an ICD-10 code such as 'I50' or 'I50.0'"
    if kind == "value_error":
        return str(item.get("msg", "invalid value")).removeprefix("Value error, ")
    return str(item.get("msg", "invalid value"))
