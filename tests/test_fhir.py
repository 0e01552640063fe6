"""Tests of medkit._fhir: FHIR R4B bundles of patients, visits and labs."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest
from fhir.resources.R4B.bundle import Bundle

from medkit import datasets, privacy
from medkit._fhir import LAB_CODES, to_fhir_bundle
from medkit.exceptions import FhirError, MissingColumnError

KEY = b"a test key that is long enough"


@pytest.fixture
def patients() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": ["000001", "000002"],
            "name": ["王伟", "Mary Smith"],
            "sex": ["M", None],
            "birth_date": ["1960-02-10", "1934-07-01"],
            "phone": ["13812345678", None],
            "national_id": ["994097195603011927", "99010119800101105X"],
            "postcode": ["012345", "730945"],
            "address": ["青禾市东城区人民路1号", None],
        },
        dtype="str",
    )


@pytest.fixture
def visits() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "visit_id": ["V0000001", "V0000002", "V0000003"],
            "patient_id": ["000001", "000002", "000001"],
            "admit_date": ["2024-01-30", "2024-03-01", "2024-12-31"],
            "discharge_date": ["2024-02-02", "2024-03-01", "2025-01-05"],
            "department": ["心内科", "骨科", "心内科"],
            "icd10": ["I10", "S72.0", "I50.0"],
            "age": pd.array([64, 90, 65], dtype="int64"),
            "systolic_bp": pd.array([150, None, 130], dtype="Int64"),
            "heart_rate": pd.array([80, None, 95], dtype="Int64"),
            "readmit_30d": pd.array([0, 1, 1], dtype="int64"),
        }
    )


@pytest.fixture
def labs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lab_id": ["L00000001", "L00000002", "L00000003"],
            "visit_id": ["V0000001", "V0000001", "V0000002"],
            "test": ["GLU", "CREA", "NA"],
            "value": [6.6, 125.0, 139.0],
            "unit": ["mmol/L", "µmol/L", "mmol/L"],
            "taken_date": ["2024-01-30", "2024-01-31", "2024-03-01"],
        }
    )


def resource_counts(bundle: Bundle) -> Counter:
    return Counter(entry.resource.get_resource_type() for entry in bundle.entry)


def resources(bundle: Bundle, kind: str) -> list[dict]:
    data = json.loads(bundle.model_dump_json())
    return [
        e["resource"] for e in data["entry"] if e["resource"]["resourceType"] == kind
    ]


def test_to_fhir_bundle_counts(patients, visits, labs) -> None:
    bundle = to_fhir_bundle(patients, visits, labs)
    assert bundle.type == "collection"
    # 3 labs + systolic BP and heart rate of the 2 visits that have them.
    assert resource_counts(bundle) == {"Patient": 2, "Encounter": 3, "Observation": 7}


def test_to_fhir_bundle_without_vital_signs(patients, visits, labs) -> None:
    bundle = to_fhir_bundle(patients, visits, labs, vital_signs=False)
    assert resource_counts(bundle) == {"Patient": 2, "Encounter": 3, "Observation": 3}


def test_to_fhir_bundle_json_round_trip(patients, visits, labs) -> None:
    bundle = to_fhir_bundle(patients, visits, labs)
    text = bundle.model_dump_json()
    again = Bundle.model_validate_json(text)
    assert again == bundle
    assert again.model_dump_json() == text
    assert resource_counts(again) == {"Patient": 2, "Encounter": 3, "Observation": 7}


def test_to_fhir_bundle_deterministic(patients, visits, labs) -> None:
    first = to_fhir_bundle(patients, visits, labs).model_dump_json()
    second = to_fhir_bundle(patients, visits, labs).model_dump_json()
    assert first == second


def test_to_fhir_bundle_patient_fields(patients, visits) -> None:
    first, second = resources(to_fhir_bundle(patients, visits), "Patient")
    assert first["id"] == "000001"
    assert first["name"] == [{"text": "王伟"}]
    assert first["gender"] == "male"
    assert first["birthDate"] == "1960-02-10"
    assert first["telecom"] == [
        {"system": "phone", "value": "13812345678", "use": "mobile"}
    ]
    assert first["identifier"][1]["type"]["coding"][0]["code"] == "NI"
    assert first["address"] == [
        {"text": "青禾市东城区人民路1号", "postalCode": "012345"}
    ]
    assert second["gender"] == "unknown"
    assert "telecom" not in second
    assert second["address"] == [{"postalCode": "730945"}]


def test_to_fhir_bundle_encounter_fields(patients, visits) -> None:
    bundle = to_fhir_bundle(patients, visits)
    urls = {e.resource.id: e.fullUrl for e in bundle.entry}
    encounter = resources(bundle, "Encounter")[0]
    assert encounter["status"] == "finished"
    assert encounter["class"]["code"] == "IMP"
    assert encounter["subject"] == {"reference": urls["000001"]}
    assert encounter["period"] == {"start": "2024-01-30", "end": "2024-02-02"}
    assert encounter["serviceType"] == {"text": "心内科"}
    assert encounter["reasonCode"] == [
        {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10"}]}
    ]


def test_to_fhir_bundle_lab_observations(patients, visits, labs) -> None:
    bundle = to_fhir_bundle(patients, visits, labs, vital_signs=False)
    urls = {e.resource.id: e.fullUrl for e in bundle.entry}
    glucose, creatinine, sodium = resources(bundle, "Observation")
    assert glucose["code"]["coding"][0]["code"] == "14749-6"
    assert glucose["valueQuantity"] == {
        "value": 6.6,
        "unit": "mmol/L",
        "system": "http://unitsofmeasure.org",
        "code": "mmol/L",
    }
    assert glucose["subject"] == {"reference": urls["000001"]}
    assert glucose["encounter"] == {"reference": urls["V0000001"]}
    assert glucose["effectiveDateTime"] == "2024-01-30"
    assert creatinine["code"]["coding"][0]["code"] == "14682-9"
    assert creatinine["valueQuantity"]["code"] == "umol/L"
    assert sodium["code"]["coding"][0]["code"] == "2951-2"
    assert sodium["subject"] == {"reference": urls["000002"]}


def test_to_fhir_bundle_vital_signs(patients, visits) -> None:
    observations = resources(to_fhir_bundle(patients, visits), "Observation")
    assert [o["id"] for o in observations] == [
        "V0000001-systolic-bp",
        "V0000001-heart-rate",
        "V0000003-systolic-bp",
        "V0000003-heart-rate",
    ]
    systolic = observations[0]
    assert systolic["code"]["coding"][0]["code"] == "8480-6"
    assert systolic["valueQuantity"]["value"] == 150
    assert systolic["valueQuantity"]["code"] == "mm[Hg]"
    assert systolic["category"][0]["coding"][0]["code"] == "vital-signs"


def test_to_fhir_bundle_mass_units(patients, visits, labs) -> None:
    labs.loc[0, ["value", "unit"]] = [118.9, "mg/dL"]
    glucose = resources(to_fhir_bundle(patients, visits, labs), "Observation")[4]
    assert glucose["code"]["coding"][0]["code"] == LAB_CODES[("GLU", "mg/dL")][0]
    assert glucose["code"]["coding"][0]["code"] == "2345-7"


def test_to_fhir_bundle_shared_records(patients, visits) -> None:
    records = privacy.shared_records(patients, visits, KEY, "north")
    bundle = to_fhir_bundle(None, records)
    assert resource_counts(bundle) == {"Patient": 2, "Encounter": 3, "Observation": 4}
    first, second = resources(bundle, "Patient")
    assert first["id"] == records["patient_pseudonym"][0]
    assert "name" not in first
    assert first["gender"] == "male"
    assert second["gender"] == "unknown"
    encounter = resources(bundle, "Encounter")[0]
    assert encounter["period"] == {"start": "2024-01"}
    assert encounter["length"] == {
        "value": 3,
        "unit": "days",
        "system": "http://unitsofmeasure.org",
        "code": "d",
    }
    assert privacy.scan(json.loads(bundle.model_dump_json())).ok


def test_to_fhir_bundle_deidentified_tables(patients, visits, labs) -> None:
    bundle = to_fhir_bundle(
        privacy.deidentify(patients, "patients", KEY),
        privacy.deidentify(visits, "visits", KEY),
        privacy.deidentify(labs, "labs", KEY),
    )
    assert resource_counts(bundle) == {"Patient": 2, "Encounter": 3, "Observation": 7}
    patient = resources(bundle, "Patient")[0]
    assert set(patient) == {"resourceType", "id", "identifier", "gender", "birthDate"}
    assert patient["birthDate"] == "1960-02"
    encounter = resources(bundle, "Encounter")[0]
    assert encounter["period"] == {"start": "2024-01", "end": "2024-02"}


def test_to_fhir_bundle_unknown_patient(patients, visits) -> None:
    with pytest.raises(FhirError, match="Visit 'V0000002' belongs to patient '000002'"):
        to_fhir_bundle(patients.iloc[:1], visits)


def test_to_fhir_bundle_unknown_unit(patients, visits, labs) -> None:
    labs.loc[0, "unit"] = "mmol/mol"
    with pytest.raises(FhirError, match="'GLU' in 'mmol/mol', which has no LOINC"):
        to_fhir_bundle(patients, visits, labs)


def test_to_fhir_bundle_lab_without_visit(patients, visits, labs) -> None:
    labs.loc[2, "visit_id"] = "V0000009"
    with pytest.raises(FhirError, match="visit 'V0000009', which is not in visits"):
        to_fhir_bundle(patients, visits, labs)


def test_to_fhir_bundle_invalid_date(patients, visits) -> None:
    patients.loc[1, "birth_date"] = "1934-13-45"
    with pytest.raises(FhirError, match="Patient '000002', field birthDate"):
        to_fhir_bundle(patients, visits)


def test_to_fhir_bundle_missing_id_column(patients, visits) -> None:
    with pytest.raises(MissingColumnError, match="none of the columns visit_id"):
        to_fhir_bundle(patients, visits.drop(columns="visit_id"))


def test_to_fhir_bundle_shipped_sample() -> None:
    patients = datasets.load_answer_key("patients").iloc[:50]
    visits = datasets.load_answer_key("visits")
    visits = visits[visits["patient_id"].isin(patients["patient_id"])]
    labs = datasets.load_answer_key("labs")
    labs = labs[labs["visit_id"].isin(visits["visit_id"])]
    bundle = to_fhir_bundle(patients, visits, labs)
    vitals = int(
        visits["systolic_bp"].notna().sum() + visits["heart_rate"].notna().sum()
    )
    assert resource_counts(bundle) == {
        "Patient": 50,
        "Encounter": len(visits),
        "Observation": len(labs) + vitals,
    }
