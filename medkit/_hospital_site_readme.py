"""The data dictionary of the second hospital, site B, rendered from its data.

It lists how site B's exports differ from the first hospital's, then every
file, every fault and the answer-key counts, all read from the generated data.
Column meanings are those of the first hospital's data dictionary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medkit import _hospital_site as site
from medkit._hospital_faults import MISSING_TOKENS as FIRST_MISSING_TOKENS
from medkit._hospital_readme import _ENCODING_NAMES, _cell, _table

if TYPE_CHECKING:
    from medkit.datasets import SiteData


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"`{value}`" if value else '`""` (empty)' for value in values)


def _differences() -> list[tuple[str, str, str]]:
    traditional = ", ".join(
        f"`{t}` ({s})" for s, t in site.TRADITIONAL_DEPARTMENTS.items()
    )
    sex = ", ".join(
        f"`{spelling}`"
        for spellings in site.SEX_SPELLINGS.values()
        for spelling in spellings
    )
    return [
        ("patient_id", "6 digits: `000123`", "`B` and 6 digits: `B000123`"),
        ("visit_id", "`V` and 7 digits: `V0000042`", "`ZY` and 8 digits: `ZY00000042`"),
        (
            "slash dates",
            "day first: `07/03/1956` is 7 March",
            "month first: `03/07/1956` is 7 March",
        ),
        ("ISO dates", "`1956-03-07`", "also without leading zeros: `1956-3-7`"),
        ("missing values", _quoted(FIRST_MISSING_TOKENS), _quoted(site.MISSING_TOKENS)),
        ("sex", "`M`, `F`, `male`, `女` and other spellings", f"`M`, `F`, {sex}"),
        (
            "department",
            "simplified characters",
            f"simplified, traditional ({traditional}), or with full-width spaces",
        ),
        (
            "sodium unit",
            "`mmol/L`",
            f"`mmol/L` or `{site.SODIUM_UNIT}` (equal numbers)",
        ),
        ("repeated stays", "never", "a stay exported again with another heart rate"),
    ]


def render_site_readme(data: SiteData) -> str:
    """Render the data dictionary of site B as Markdown."""
    lines = [
        "# Second synthetic hospital: site B",
        "",
        "These files are the exports of a second fictional hospital, made for the "
        "medkit course by `medkit.datasets.generate_site`. Every name, identifier, "
        "address, phone number and clinical note is synthetic, and no record "
        "describes a real person.",
        "",
        f"This build: `n_patients={data.n_patients}`, `seed={data.seed}`. Rebuild it "
        f"with `medkit.datasets.write_site(DIR, {data.n_patients}, {data.seed})`; the "
        "same arguments always give the same bytes.",
        "",
        "Patients, stays, laboratory results, notes and services follow the same "
        "clinical model as the first hospital (`datasets/README.md`), and the "
        "columns mean the same. The clean tables in `answer_key/` have the first "
        "hospital's schema, with site B's IDs and departments in simplified "
        "characters.",
        "",
        "## How site B's exports differ",
        "",
    ]
    lines += _table(
        ("column or convention", "first hospital", "site B"), _differences()
    )
    lines += ["", *_files_section(data), "", *_faults_section(data)]
    lines += ["", *_answer_key_section(data)]
    return "\n".join(lines) + "\n"


def _files_section(data: SiteData) -> list[str]:
    files = [
        (f"raw/{name}.csv", _ENCODING_NAMES[site.ENCODINGS[name]], len(data.raw[name]))
        for name in site.ENCODINGS
    ]
    files += [
        (f"answer_key/{name}.csv", "UTF-8", len(frame))
        for name, frame in data.answer_key.items()
    ]
    return ["## Files", "", *_table(("file", "encoding", "records"), files)]


def _faults_section(data: SiteData) -> list[str]:
    lines = [
        "## Faults",
        "",
        "Each row is a fault injected into a raw file and the number of raw records "
        "that carry it; a duplicate of a faulty record carries the fault too. The "
        "outcome is what Stage 1 cleaning does once its specs describe site B.",
        "",
    ]
    rows = [
        (row.table, row.column, _cell(row.fault), row.count, row.outcome)
        for row in data.faults.itertuples(index=False)
    ]
    return lines + _table(("table", "column", "fault", "records", "outcome"), rows)


def _answer_key_section(data: SiteData) -> list[str]:
    key = data.answer_key
    counts = []
    for table in ("patients", "visits", "labs"):
        quarantined = int((key["quarantine"]["table"] == table).sum())
        duplicates = int((key["duplicates"]["table"] == table).sum())
        counts.append(
            (table, len(data.raw[table]), len(key[table]), quarantined, duplicates)
        )
    lines = [
        "## Answer key",
        "",
        "Raw records = clean rows + quarantined rows + duplicate rows, for each table:",
        "",
    ]
    header = ("table", "raw records", "clean", "quarantined", "duplicates")
    return lines + _table(header, counts)
