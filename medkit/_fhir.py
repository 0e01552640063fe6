"""Convert hospital tables to a FHIR Bundle of Patient, Encounter and Observation.

The resources follow FHIR R4B (4.3.0), the release of the R4 line that
fhir.resources 8 ships as ``fhir.resources.R4B``. The package's default models
are R5. Every element written here also exists, with the same type, in R4.

Clean tables (``patient_id``, ``visit_id``, ISO dates) work, and so do
de-identified ones (``patient_pseudonym``, ``record_id``, months), as
:func:`medkit.privacy.shared_records` and :func:`medkit.privacy.deidentify` make
them. Each field is taken from whichever of its columns the table has, and a
missing column or value leaves the FHIR element out. Partial dates such as
"2024-03" are valid FHIR dates.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType

import pandas as pd
from pydantic import ValidationError

from medkit.exceptions import FhirError, MissingColumnError

logger = logging.getLogger(__name__)

FHIR_VERSION = "4.3.0"

UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
_ID_SYSTEM = "urn:medkit:"
# Bundle entries are named by UUIDs derived from the resource type and ID, so
# the same tables always give the same bundle.
_UUID_NAMESPACE = uuid.UUID("6f0d4c36-3c55-5b8e-9d0a-6d65646b6974")

LAB_CODES: Mapping[tuple[str, str], tuple[str, str]] = MappingProxyType(
    {
        ("GLU", "mmol/L"): ("14749-6", "Glucose [Moles/volume] in Serum or Plasma"),
        ("GLU", "mg/dL"): ("2345-7", "Glucose [Mass/volume] in Serum or Plasma"),
        ("CREA", "µmol/L"): (
            "14682-9",
            "Creatinine [Moles/volume] in Serum or Plasma",
        ),
        ("CREA", "mg/dL"): ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma"),
        ("NA", "mmol/L"): ("2951-2", "Sodium [Moles/volume] in Serum or Plasma"),
    }
)
"""LOINC code and name of each lab test, by test code and unit.

LOINC codes a test's property with it, so glucose in mmol/L (moles per volume)
and glucose in mg/dL (mass per volume) have different codes.
"""

# UCUM spelling of each unit: "µ" is written "u".
UCUM_UNITS: Mapping[str, str] = MappingProxyType(
    {"mmol/L": "mmol/L", "mg/dL": "mg/dL", "µmol/L": "umol/L", "umol/L": "umol/L"}
)

VITAL_SIGNS: Mapping[str, tuple[str, str, str, str]] = MappingProxyType(
    {
        "systolic_bp": ("8480-6", "Systolic blood pressure", "mm[Hg]", "mmHg"),
        "heart_rate": ("8867-4", "Heart rate", "/min", "beats/minute"),
    }
)
"""LOINC code, name, UCUM code and unit of each vital sign column of visits."""

_GENDER = {"M": "male", "F": "female"}


def _column(frame: pd.DataFrame, *names: str) -> str | None:
    return next((name for name in names if name in frame.columns), None)


def _required(frame: pd.DataFrame, table: str, *names: str) -> str:
    column = _column(frame, *names)
    if column is None:
        raise MissingColumnError(
            f"The {table} table has none of the columns {', '.join(names)}; "
            f"it has {', '.join(map(str, frame.columns))}.",
            column=names[0],
        )
    return column


def _text(value: object) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return str(value)


def _full_url(resource_type: str, resource_id: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_UUID_NAMESPACE, f'{resource_type}/{resource_id}')}"


def _reference(resource_type: str, resource_id: str) -> dict[str, str]:
    return {"reference": _full_url(resource_type, resource_id)}


def _records(frame: pd.DataFrame) -> Iterator[dict[str, object]]:
    # Plain Python values: missing becomes None, numpy numbers become int/float.
    clean = frame.astype(object).where(frame.notna(), None)
    yield from clean.to_dict("records")


def _identifier(column: str, value: str) -> dict[str, str]:
    return {"system": _ID_SYSTEM + column, "value": value}


def _patients(patients: pd.DataFrame) -> Iterator[dict]:
    key = _required(patients, "patients", "patient_id", "patient_pseudonym")
    birth = _column(patients, "birth_date", "birth_month")
    for row in _records(patients):
        patient_id = str(row[key])
        resource: dict[str, object] = {
            "resourceType": "Patient",
            "id": patient_id,
            "identifier": [_identifier(key, patient_id)],
            "gender": _GENDER.get(_text(row.get("sex")) or "", "unknown"),
        }
        national_id = _text(row.get("national_id"))
        if national_id:
            resource["identifier"].append(
                {
                    "type": {"coding": [{"system": _IDENTIFIER_TYPE, "code": "NI"}]},
                    "system": _ID_SYSTEM + "national_id",
                    "value": national_id,
                }
            )
        name = _text(row.get("name"))
        if name:
            resource["name"] = [{"text": name}]
        phone = _text(row.get("phone"))
        if phone:
            resource["telecom"] = [{"system": "phone", "value": phone, "use": "mobile"}]
        if birth and _text(row[birth]):
            resource["birthDate"] = _text(row[birth])
        address = {
            field: value
            for field, value in (
                ("text", _text(row.get("address"))),
                ("postalCode", _text(row.get("postcode"))),
            )
            if value
        }
        if address:
            resource["address"] = [address]
        yield resource


def _patients_from_visits(visits: pd.DataFrame, key: str) -> pd.DataFrame:
    """One row per patient of the visits, with the first sex recorded for them."""
    people = visits[[key]].drop_duplicates()
    if "sex" in visits.columns:
        known = visits[[key, "sex"]].dropna().drop_duplicates(key)
        people["sex"] = people[key].map(known.set_index(key)["sex"])
    return people


def _encounter(row: dict, visit_key: str, patient_key: str) -> dict:
    visit_id = str(row[visit_key])
    resource: dict[str, object] = {
        "resourceType": "Encounter",
        "id": visit_id,
        "identifier": [_identifier(visit_key, visit_id)],
        "status": "finished",
        "class": {"system": _ACT_CODE, "code": "IMP", "display": "inpatient encounter"},
        "subject": _reference("Patient", str(row[patient_key])),
    }
    period = {
        field: value
        for field, value in (
            ("start", _text(row.get("admit_date")) or _text(row.get("admit_month"))),
            (
                "end",
                _text(row.get("discharge_date")) or _text(row.get("discharge_month")),
            ),
        )
        if value
    }
    if period:
        resource["period"] = period
    stay = row.get("length_of_stay")
    if stay is not None:
        resource["length"] = {
            "value": int(stay),
            "unit": "days",
            "system": UCUM,
            "code": "d",
        }
    department = _text(row.get("department"))
    if department:
        resource["serviceType"] = {"text": department}
    icd10 = _text(row.get("icd10"))
    if icd10:
        resource["reasonCode"] = [{"coding": [{"system": ICD10, "code": icd10}]}]
    return resource


def _vital_signs(row: dict, visit_key: str, patient_key: str) -> Iterator[dict]:
    visit_id = str(row[visit_key])
    when = _text(row.get("admit_date")) or _text(row.get("admit_month"))
    for column, (code, name, ucum, unit) in VITAL_SIGNS.items():
        value = row.get(column)
        if value is None:
            continue
        resource = {
            "resourceType": "Observation",
            "id": f"{visit_id}-{column.replace('_', '-')}",
            "status": "final",
            "category": [_category("vital-signs", "Vital Signs")],
            "code": {"coding": [{"system": LOINC, "code": code, "display": name}]},
            "subject": _reference("Patient", str(row[patient_key])),
            "encounter": _reference("Encounter", visit_id),
            "valueQuantity": {
                "value": value,
                "unit": unit,
                "system": UCUM,
                "code": ucum,
            },
        }
        if when:
            resource["effectiveDateTime"] = when
        yield resource


def _category(code: str, display: str) -> dict:
    return {"coding": [{"system": _CATEGORY, "code": code, "display": display}]}


def _lab_observations(
    labs: pd.DataFrame, patient_of_visit: Mapping[str, str]
) -> Iterator[dict]:
    key = _required(labs, "labs", "lab_id")
    for column in ("visit_id", "test", "value", "unit"):
        _required(labs, "labs", column)
    taken = _column(labs, "taken_date", "taken_month")
    for row in _records(labs):
        test, unit = str(row["test"]), str(row["unit"])
        if (test, unit) not in LAB_CODES:
            known = ", ".join(f"{t} in {u}" for t, u in LAB_CODES)
            raise FhirError(
                f"Lab {row[key]!r} is test {test!r} in {unit!r}, which has no LOINC "
                f"code here; expected one of {known}. Convert it to a canonical unit "
                "first (medkit.digitize.clean)."
            )
        visit_id = str(row["visit_id"])
        if visit_id not in patient_of_visit:
            raise FhirError(
                f"Lab {row[key]!r} belongs to visit {visit_id!r}, which is not in "
                "visits; pass the visits of every lab."
            )
        code, name = LAB_CODES[(test, unit)]
        resource = {
            "resourceType": "Observation",
            "id": str(row[key]),
            "identifier": [_identifier(key, str(row[key]))],
            "status": "final",
            "category": [_category("laboratory", "Laboratory")],
            "code": {"coding": [{"system": LOINC, "code": code, "display": name}]},
            "subject": _reference("Patient", patient_of_visit[visit_id]),
            "encounter": _reference("Encounter", visit_id),
        }
        if row["value"] is not None:
            resource["valueQuantity"] = {
                "value": float(row["value"]),
                "unit": unit,
                "system": UCUM,
                "code": UCUM_UNITS.get(unit, unit),
            }
        if taken and _text(row[taken]):
            resource["effectiveDateTime"] = _text(row[taken])
        yield resource


def to_fhir_bundle(
    patients: pd.DataFrame | None,
    visits: pd.DataFrame,
    labs: pd.DataFrame | None = None,
    *,
    vital_signs: bool = True,
):
    """Convert patients, visits and labs to a FHIR R4B collection Bundle.

    Each patient becomes a Patient, each visit an inpatient Encounter (class
    IMP, the ICD-10 code as its reason, the department as its service type),
    and each lab result an Observation with its LOINC code (``LAB_CODES``) and
    a UCUM quantity. With ``vital_signs``, each visit's systolic blood pressure
    (LOINC 8480-6, mmHg) and heart rate (8867-4, beats/minute) also become
    Observations. Entries are named by UUIDs derived from resource type and ID
    (``urn:uuid:...``) and reference each other by them.

    Parameters
    ----------
    patients : DataFrame or None
        Patients with ``patient_id`` (or ``patient_pseudonym``) and any of
        ``name``, ``sex``, ``birth_date`` (or ``birth_month``), ``phone``,
        ``national_id``, ``postcode``, ``address``. With None, one Patient is
        made for each patient of ``visits``, with the sex recorded there.
    visits : DataFrame
        Visits with ``visit_id`` (or ``record_id``), ``patient_id`` (or
        ``patient_pseudonym``) and any of ``admit_date`` (or ``admit_month``),
        ``discharge_date`` (or ``discharge_month``), ``length_of_stay`` (days),
        ``department``, ``icd10``, ``systolic_bp`` (mmHg), ``heart_rate``
        (beats/minute).
        Shared records work as they are.
    labs : DataFrame, optional
        Lab results with ``lab_id``, ``visit_id``, ``test``, ``value``, ``unit``
        and ``taken_date`` (or ``taken_month``). Their ``visit_id`` refers to
        the visit key of ``visits``.
    vital_signs : bool, default=True
        Whether to add the vital sign Observations.

    Returns
    -------
    fhir.resources.R4B.bundle.Bundle
        A Bundle of type "collection", validated by fhir.resources.

    Raises
    ------
    MissingColumnError
        If a table lacks its ID columns.
    FhirError
        If a visit's patient is not in ``patients``, a lab's test and unit have
        no LOINC code, or fhir.resources rejects a value (the message names the
        resource and field).
    """
    from fhir.resources.R4B.bundle import Bundle

    visit_key = _required(visits, "visits", "visit_id", "record_id")
    patient_key = _required(visits, "visits", "patient_id", "patient_pseudonym")
    if patients is None:
        patients = _patients_from_visits(visits, patient_key)
    resources = list(_patients(patients))

    # Every visit must point at a Patient of the bundle.
    known = {resource["id"] for resource in resources}
    visit_rows = list(_records(visits))
    for row in visit_rows:
        if str(row[patient_key]) not in known:
            raise FhirError(
                f"Visit {row[visit_key]!r} belongs to patient {row[patient_key]!r}, "
                "who is not in patients; pass every visit's patient, or patients=None."
            )
        resources.append(_encounter(row, visit_key, patient_key))
        if vital_signs:
            resources.extend(_vital_signs(row, visit_key, patient_key))
    if labs is not None:
        patient_of_visit = {str(r[visit_key]): str(r[patient_key]) for r in visit_rows}
        resources.extend(_lab_observations(labs, patient_of_visit))

    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": _full_url(r["resourceType"], r["id"]), "resource": r}
            for r in resources
        ],
    }
    try:
        result = Bundle.model_validate(bundle)
    except ValidationError as error:
        raise FhirError(_describe(error, resources)) from None
    logger.info("Built a FHIR bundle of %s", _count_types(resources))
    return result


def _count_types(resources: Sequence[dict]) -> str:
    counts = pd.Series([r["resourceType"] for r in resources]).value_counts(sort=False)
    return ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "no resources"


def _describe(error: ValidationError, resources: Sequence[dict]) -> str:
    first = error.errors()[0]
    where = [str(part) for part in first.get("loc", ())]
    resource = ""
    # Locations look like ("entry", 12, "resource", "birthDate", ...).
    if len(where) > 1 and where[0] == "entry" and where[1].isdigit():
        entry = resources[int(where[1])]
        resource = f"{entry['resourceType']} {entry['id']!r}, "
        where = where[3:]
    return (
        f"FHIR validation failed for {resource}field {'.'.join(where) or '?'}: "
        f"{first.get('msg')}. Check that value in the input tables "
        f"({error.error_count()} errors in all)."
    )
