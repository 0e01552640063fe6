"""The data dictionary ``datasets/README.md``, rendered from a generated hospital.

Counts, codes and coefficients are read from the data and the templates, so the
README always matches the files shipped beside it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medkit import _hospital_phrases as phrases
from medkit import _hospital_templates as tpl
from medkit._hospital_export import CREATININE_MG_DL_FACTOR
from medkit._hospital_faults import MISSING_TOKENS
from medkit._hospital_truth import MAX_VISITS
from medkit._privacy_records import ROLES

if TYPE_CHECKING:
    from medkit.datasets import HospitalData

_DEPARTMENTS = sorted({d.department for d in tpl.DIAGNOSES})
_ICD10 = ", ".join(d.icd10 for d in tpl.DIAGNOSES)
_SERVICE_CODES = f"{tpl.SERVICES[0][0]} to {tpl.SERVICES[-1][0]}"

# Per raw file: column, meaning, type, unit, allowed values (of the clean data).
COLUMNS: dict[str, list[tuple[str, str, str, str, str]]] = {
    "patients": [
        ("patient_id", "patient identifier", "text", "", "6 digits, zero-padded"),
        ("name", "full name, Chinese or English", "text", "", ""),
        ("sex", "sex recorded at registration", "text", "", "M, F or missing"),
        ("birth_date", "date of birth", "date", "", "ISO YYYY-MM-DD"),
        ("phone", "mobile phone number", "text", "", "11 digits or missing"),
        (
            "national_id",
            "resident ID number (region code 99, never a real one)",
            "text",
            "",
            "17 digits and a check digit or X",
        ),
        ("postcode", "postal code", "text", "", "6 digits, may start with 0"),
        ("address", "home address, Chinese or English", "text", "", "or missing"),
    ],
    "visits": [
        ("visit_id", "inpatient stay identifier", "text", "", "V and 7 digits"),
        ("patient_id", "patient of the stay", "text", "", "a patient_id in patients"),
        ("admit_date", "date of admission", "date", "", "ISO YYYY-MM-DD"),
        ("discharge_date", "date of discharge", "date", "", "not before admit_date"),
        ("department", "admitting department", "text", "", ", ".join(_DEPARTMENTS)),
        ("icd10", "main diagnosis, ICD-10", "text", "", _ICD10),
        ("age", "age at admission", "integer", "years", "18 to 100"),
        (
            "systolic_bp",
            "systolic blood pressure at admission",
            "integer",
            "mmHg",
            "85 to 230 or missing",
        ),
        (
            "heart_rate",
            "heart rate at admission",
            "integer",
            "beats per minute",
            "40 to 170 or missing",
        ),
        (
            "readmit_30d",
            "readmitted within 30 days of discharge",
            "integer",
            "",
            "0 or 1",
        ),
    ],
    "labs": [
        ("lab_id", "lab result identifier", "text", "", "L and 8 digits"),
        (
            "visit_id",
            "stay in which the sample was taken",
            "text",
            "",
            "a visit_id in visits",
        ),
        (
            "test",
            "test code",
            "text",
            "",
            "GLU (glucose), CREA (creatinine), NA (sodium)",
        ),
        (
            "value",
            "result in the unit of the row",
            "number",
            "see unit",
            "GLU 1-40, CREA 20-2000, NA 100-180",
        ),
        ("unit", "unit of value", "text", "", "mmol/L for GLU and NA, µmol/L for CREA"),
        ("taken_date", "date the sample was taken", "date", "", "ISO YYYY-MM-DD"),
    ],
    "notes": [
        ("note_id", "note identifier", "text", "", "N and 7 digits"),
        ("patient_id", "patient the note is about", "text", "", "a patient_id"),
        ("visit_id", "stay the note was written in", "text", "", "a visit_id"),
        ("language", "language of the text", "text", "", "en or zh"),
        ("text", "free-text admission note", "text", "", ""),
    ],
    "services": [
        ("service_code", "service identifier", "text", "", _SERVICE_CODES),
        ("name_en", "service name in English", "text", "", ""),
        ("name_zh", "service name in Chinese", "text", "", ""),
        (
            "category",
            "kind of service",
            "text",
            "",
            ", ".join(sorted({s[3] for s in tpl.SERVICES})),
        ),
    ],
    "patient_services": [
        ("patient_id", "patient who received the service", "text", "", "a patient_id"),
        ("service_code", "service received", "text", "", "a service_code"),
        ("received_date", "date of the service", "date", "", "ISO YYYY-MM-DD"),
    ],
}

_ENCODING_NAMES = {
    "utf-8-sig": "UTF-8 with byte order mark",
    "gb18030": "GB18030",
    "utf-8": "UTF-8",
}


def _table(header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_readme(data: HospitalData) -> str:
    """Render the data dictionary of ``data`` as Markdown."""
    from medkit.datasets import RAW_ENCODINGS

    raw, key = data.raw, data.answer_key
    lines = [
        "# Synthetic hospital datasets",
        "",
        "These files are the exports of a fictional hospital, made for the medkit "
        "course. Every name, identifier, address, phone number and clinical note was "
        "generated by `medkit.datasets`, and no record describes a real person.",
        "",
        f"This build: `n_patients={data.n_patients}`, `seed={data.seed}`. "
        f"Rebuild it with `medkit datasets build --patients {data.n_patients} "
        f"--seed {data.seed} --out DIR` (Python: `medkit.datasets.write_datasets(DIR, "
        f"{data.n_patients}, {data.seed})`). `medkit datasets check --dir DIR "
        f"--patients {data.n_patients} --seed {data.seed}` regenerates the files in "
        "memory and fails if any byte differs.",
        "",
        "## Files",
        "",
    ]
    files = [
        (f"raw/{name}.csv", _ENCODING_NAMES[RAW_ENCODINGS[name]], len(raw[name]))
        for name in RAW_ENCODINGS
    ]
    files += [
        (f"answer_key/{name}.csv", "UTF-8", len(frame)) for name, frame in key.items()
    ]
    lines += _table(("file", "encoding", "records"), files)
    lines += [
        "",
        "Raw files are CSV with a header row and `\\n` line ends. Read every column "
        "as text: IDs and postcodes start with zeros, and `NA` is the sodium test "
        "code, not a missing value.",
        "",
        "## Columns",
        "",
        "Types and allowed values describe the clean data. The raw files break them "
        "as listed under Faults.",
        "",
        "The privacy role says what `medkit.privacy.deidentify` does with a column "
        "before records leave the hospital: a direct identifier is dropped, a key "
        "is replaced by a keyed pseudonym, a quasi-identifier is generalised (age "
        "bands, months, postcode prefixes), and sensitive and other values are kept.",
    ]
    header = ("column", "meaning", "type", "unit", "allowed values", "privacy role")
    for name, columns in COLUMNS.items():
        roles = ROLES.get(name, {})
        rows = [(*column, roles.get(column[0], "")) for column in columns]
        lines += ["", f"### raw/{name}.csv", ""]
        lines += _table(header, rows)
    lines += ["", *_faults_section(data), "", *_answer_key_section(data)]
    lines += ["", *_model_section(data), "", *_notes_section()]
    return "\n".join(lines) + "\n"


def _faults_section(data: HospitalData) -> list[str]:
    tokens = ", ".join(f'"{token}"' for token in MISSING_TOKENS)
    lines = [
        "## Faults",
        "",
        "Each row below is a fault injected into a raw file, with the number of raw "
        "records that carry it. A duplicate of a faulty record carries the fault "
        "too, so the counts can be checked by counting rows in the raw files. The "
        "outcome is what Stage 1 cleaning does. Its rules run in this order: "
        "whitespace, missing, duplicates, ids, categories, dates, units, ranges, "
        "required, and then references between tables.",
        "",
    ]
    rows = [
        (row.table, row.column, _cell(row.fault), row.count, row.outcome)
        for row in data.faults.itertuples(index=False)
    ]
    lines += _table(("table", "column", "fault", "records", "outcome"), rows)
    lines += [
        "",
        f"- Missing values are written as any of {tokens} (empty). In `labs.test`, "
        "`NA` is the sodium code and is never missing.",
        "- Day-first dates (`07/03/1956`) are day/month/year. Chinese dates read "
        "`1956年3月7日`.",
        "- Near duplicates repeat an earlier patient record with the name in upper "
        "or lower case, a doubled space in the name, or spaces around "
        "`patient_id`. The earlier record is kept.",
        "- Units convert as canonical = round(raw value x factor, 2): GLU mg/dL "
        f"factor 1/18.016, CREA mg/dL factor {CREATININE_MG_DL_FACTOR}, and 1 for "
        "a canonical unit in another spelling. Raw mg/dL numbers are chosen so that "
        "no result lies on a rounding tie.",
        "- Quarantined visits never have lab results, and quarantined patients never "
        "have visits, so a quarantine does not cascade into other tables.",
    ]
    return lines


def _answer_key_section(data: HospitalData) -> list[str]:
    key = data.answer_key
    rows = []
    for table in ("patients", "visits", "labs"):
        quarantined = int((key["quarantine"]["table"] == table).sum())
        duplicates = int((key["duplicates"]["table"] == table).sum())
        rows.append(
            (table, len(data.raw[table]), len(key[table]), quarantined, duplicates)
        )
    lines = [
        "## Answer key",
        "",
        "`answer_key/` contains what a correct Stage 1 run produces from `raw/`:",
        "",
        "- `patients.csv`, `visits.csv`, `labs.csv`: the clean tables in UTF-8, rows "
        "in raw-file order, ISO dates, canonical units, missing values empty.",
        "- `quarantine.csv` (`table,row,rule`): rows that fail a rule. `row` counts "
        "as a spreadsheet does: the header is row 1 and the first record row 2.",
        "- `duplicates.csv` (`table,row,duplicate_of`): rows removed as duplicates "
        "and the earlier row each repeats.",
        "- `faults.csv`: the fault table above.",
        "",
        "For each table, raw records = clean rows + quarantined rows + duplicate rows:",
        "",
    ]
    lines += _table(
        ("table", "raw records", "clean", "quarantined", "duplicates"), rows
    )
    return lines


def _model_section(data: HospitalData) -> list[str]:
    rate = data.answer_key["visits"]["readmit_30d"].mean()
    lines = [
        "## Readmission model",
        "",
        "`readmit_30d` is drawn from a logistic model, so a classifier can learn it:",
        "",
        "```",
        f"log-odds = {tpl.READMIT_INTERCEPT}",
        f"         + {tpl.READMIT_AGE_PER_10_YEARS} * (age - 65) / 10",
        "         + diagnosis term (table below)",
        f"         + {tpl.READMIT_STAY_PER_DAY} * (length of stay in days - 5)",
        f"         + {tpl.READMIT_GLUCOSE_PER_MMOL} * (glucose in mmol/L - 6)",
        f"         + {tpl.READMIT_PRIOR_PER_VISIT} * min(prior visits, "
        f"{tpl.READMIT_PRIOR_CAP})",
        "```",
        "",
        "Length of stay is discharge_date - admit_date. Glucose is the visit's GLU "
        "result. A result exported in mg/dL differs from the value the model used "
        "by the conversion rounding, less than 0.1 mmol/L. Prior visits counts the "
        "patient's earlier stays. A readmitted patient's next stay starts 1 to 30 "
        "days after discharge, and other patients return after 31 days or more, "
        f"except that no patient has more than {MAX_VISITS} stays. "
        f"In this build, {rate:.1%} of clean visits have `readmit_30d` = 1.",
        "",
    ]
    rows = [
        (d.icd10, d.name_en, d.name_zh, d.department, f"{d.readmit_logit:+.2f}")
        for d in tpl.DIAGNOSES
    ]
    lines += _table(("icd10", "diagnosis", "诊断", "department", "term"), rows)
    return lines


def _notes_section() -> list[str]:
    abbreviations = ", ".join(
        f"{short} ({long})" for long, short in phrases.ABBREVIATIONS
    )
    return [
        "## Notes and services",
        "",
        "Each patient has one admission note, written for their last stay with their "
        "main diagnosis (or their last stay, if none has it). The note is built "
        "from phrases of that diagnosis (symptoms, history, examination, plan), "
        "so patients with the same "
        "condition have similar notes. Most patients with Chinese names have notes "
        "in Chinese. About 40% of English notes use clinical abbreviations. "
        f"The abbreviations are {abbreviations}.",
        "",
        "Services received depend on the same diagnosis (for example type 2 "
        "diabetes leads to diabetes education, retinal screening and foot care), "
        "so similar patients share services. A pharmacist's medication review and "
        "telehealth follow-up can go to anyone. Notes, services and services "
        "received are exported without faults.",
    ]
