def site_specs():
    """Return the cleaning specs of site B's patients, visits and labs."""
    missing = (*digitize.MISSING_TOKENS, "n/a", "不详")
    patient_id = IdFormat(prefix="B", digits=6)
    visit_id = IdFormat(prefix="ZY", digits=8, pad=False)
    traditional = {
        "心內科": "心内科",
        "呼吸內科": "呼吸内科",
        "內分泌科": "内分泌科",
        "急診科": "急诊科",
        "神經內科": "神经内科",
        "腎內科": "肾内科",
    }
    sex = {**digitize.PATIENTS.spellings["sex"], "男性": "M", "女性": "F"}
    departments = {**digitize.VISITS.spellings["department"], **traditional}
    units = digitize.LABS.units
    units = replace(
        units,
        factors={**units.factors, "NA": {"mmol/L": 1.0, "mEq/L": 1.0}},
        spellings={**units.spellings, "mEq/L": "mEq/L"},
    )
    # Slash dates are read day first, as at the first hospital.
    return {
        "patients": replace(
            digitize.PATIENTS,
            ids={"patient_id": patient_id},
            spellings={"sex": sex},
            missing_tokens=missing,
        ),
        "visits": replace(
            digitize.VISITS,
            ids={"visit_id": visit_id, "patient_id": patient_id},
            spellings={"department": departments},
            missing_tokens=missing,
        ),
        "labs": replace(
            digitize.LABS,
            ids={"lab_id": digitize.LABS.ids["lab_id"], "visit_id": visit_id},
            units=units,
            missing_tokens=missing,
        ),
    }
