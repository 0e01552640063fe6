"""Table specifications: the configurable cleaning rules of each hospital table.

A :class:`TableSpec` states, for one table, the kind of each column, which columns
must have a value, how IDs and codes look, the spellings of each category, the
plausible ranges, the units and whether slash dates put the day first. The
hospital defaults :data:`PATIENTS`, :data:`VISITS` and :data:`LABS` describe the
exports in ``datasets/raw``. Change a rule with :func:`dataclasses.replace`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

KINDS = ("id", "code", "category", "date", "integer", "number", "text")
"""Column kinds that :class:`TableSpec` accepts."""

MISSING_TOKENS = ("", "NA", "N/A", "NULL", "-", "未知")
"""Spellings of a missing value in the hospital exports. ``未知`` means unknown."""

RULES = (
    "whitespace",
    "missing",
    "duplicates",
    "ids",
    "categories",
    "dates",
    "units",
    "ranges",
    "required",
    "references",
)
"""Cleaning rules in the order :func:`medkit.digitize.clean` applies them."""

ICD10_PATTERN = r"[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?"
"""An ICD-10 code after upper-casing: a letter, two digits, optional subcodes."""


def _frozen(mapping: Mapping | None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class IdFormat:
    """The written form of an ID column, such as ``V0000123`` or ``000123``.

    Parameters
    ----------
    prefix : str, default=""
        Letters before the digits, compared after upper-casing.
    digits : int, default=6
        Number of digits after the prefix.
    pad : bool, default=True
        Zero-pad shorter numbers to ``digits``. Spreadsheets drop the leading zeros
        of number-like IDs, so this suits IDs without a prefix.
    """

    prefix: str = ""
    digits: int = 6
    pad: bool = True

    @property
    def pattern(self) -> str:
        """Regular expression that a valid ID matches in full."""
        return f"{re.escape(self.prefix)}[0-9]{{{self.digits}}}"


@dataclass(frozen=True)
class UnitRule:
    """Unit conversion for a measurement whose unit depends on another column.

    Parameters
    ----------
    value : str
        Column with the measured number.
    unit : str
        Column with the unit as written.
    by : str
        Column naming what was measured, such as a lab test code. The canonical
        unit, the conversion factors and the plausible range depend on it.
    canonical : mapping of str to str
        Canonical unit of each test, such as ``{"GLU": "mmol/L"}``.
    factors : mapping of str to mapping of str to float
        Factor from each accepted unit to the canonical one, per test. The
        canonical unit has factor 1.
    spellings : mapping of str to str
        Unit as written, compared case-insensitively, to its standard spelling.
    ranges : mapping of str to tuple of float
        Plausible ``(low, high)`` per test in the canonical unit, inclusive.
    decimals : int, default=2
        Decimal places of converted values.
    """

    value: str
    unit: str
    by: str
    canonical: Mapping[str, str]
    factors: Mapping[str, Mapping[str, float]]
    spellings: Mapping[str, str]
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    decimals: int = 2

    def __post_init__(self) -> None:
        folded = {
            spelling.casefold(): unit for spelling, unit in self.spellings.items()
        }
        object.__setattr__(self, "spellings", _frozen(folded))
        object.__setattr__(self, "canonical", _frozen(self.canonical))
        factors = {test: _frozen(units) for test, units in self.factors.items()}
        object.__setattr__(self, "factors", _frozen(factors))
        object.__setattr__(self, "ranges", _frozen(self.ranges))
        for test, unit in self.canonical.items():
            if self.factors.get(test, {}).get(unit) != 1:
                raise ValueError(
                    f"UnitRule: the canonical unit {unit!r} of test {test!r} needs "
                    "factor 1 in factors."
                )


@dataclass(frozen=True)
class TableSpec:
    """Cleaning rules for one table.

    Parameters
    ----------
    name : str
        Table name, used in the quarantine, the codebook and the database.
    kinds : mapping of str to str
        Every expected column and its kind, one of :data:`KINDS`. The file must
        contain each of these columns.
    key : str, optional
        Column that identifies a record. Rows whose key repeats an earlier row
        with different values are quarantined by the ``ids`` rule.
    required : tuple of str, default=()
        Columns that must have a value; rows without one are quarantined.
    ids : mapping of str to IdFormat
        Format of each ``id`` column.
    codes : mapping of str to str
        Regular expression that each ``code`` column matches after upper-casing.
    spellings : mapping of str to mapping of str to str
        For each ``category`` column, every accepted spelling, compared
        case-insensitively, and the label it stands for.
    missing_tokens : tuple of str, default=MISSING_TOKENS
        Values that mean missing, compared after stripping spaces.
    literal_columns : tuple of str, default=()
        Columns where missing tokens are ordinary values, such as the lab test
        code ``NA`` (sodium).
    dayfirst : bool, default=True
        Read ``07/03/1956`` as 7 March (True) or as 3 July (False).
    date_order : tuple of tuple of str, default=()
        Pairs ``(earlier, later)`` of date columns; a row whose later date comes
        before the earlier one is quarantined, such as a discharge before the
        admission.
    ranges : mapping of str to tuple of float
        Plausible inclusive ``(low, high)`` of ``integer`` and ``number`` columns.
    units : UnitRule, optional
        Unit conversion of a measurement column.
    categorical : tuple of str, default=()
        Columns that :func:`medkit.digitize.encode` turns into integer codes.
    """

    name: str
    kinds: Mapping[str, str]
    key: str | None = None
    required: tuple[str, ...] = ()
    ids: Mapping[str, IdFormat] = field(default_factory=dict)
    codes: Mapping[str, str] = field(default_factory=dict)
    spellings: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    missing_tokens: tuple[str, ...] = MISSING_TOKENS
    literal_columns: tuple[str, ...] = ()
    dayfirst: bool = True
    date_order: tuple[tuple[str, str], ...] = ()
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    units: UnitRule | None = None
    categorical: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        spellings = {
            column: _frozen({raw.casefold(): label for raw, label in values.items()})
            for column, values in self.spellings.items()
        }
        object.__setattr__(self, "kinds", _frozen(self.kinds))
        object.__setattr__(self, "ids", _frozen(self.ids))
        object.__setattr__(self, "codes", _frozen(self.codes))
        object.__setattr__(self, "spellings", _frozen(spellings))
        object.__setattr__(self, "ranges", _frozen(self.ranges))
        self._check()

    def _check(self) -> None:
        for column, kind in self.kinds.items():
            if kind not in KINDS:
                raise ValueError(
                    f"TableSpec {self.name!r}: column {column!r} has kind {kind!r}; "
                    f"expected one of {', '.join(KINDS)}."
                )
        details = {"id": self.ids, "code": self.codes, "category": self.spellings}
        for kind, mapping in details.items():
            for column in self.columns_of(kind):
                if column not in mapping:
                    raise ValueError(
                        f"TableSpec {self.name!r}: {kind} column {column!r} has no "
                        f"entry in {_DETAIL_FIELD[kind]}; add one."
                    )
        named = [
            *([self.key] if self.key else []),
            *self.required,
            *self.literal_columns,
            *self.ranges,
            *self.categorical,
            *(column for pair in self.date_order for column in pair),
        ]
        if self.units is not None:
            named += [self.units.value, self.units.unit, self.units.by]
        unknown = sorted(set(named) - set(self.kinds))
        if unknown:
            raise ValueError(
                f"TableSpec {self.name!r} names columns that are not in kinds: "
                f"{', '.join(unknown)}; add them to kinds."
            )

    @property
    def columns(self) -> list[str]:
        """Expected columns in order."""
        return list(self.kinds)

    def columns_of(self, kind: str) -> list[str]:
        """Return the columns of one kind, in order."""
        return [column for column, found in self.kinds.items() if found == kind]


_DETAIL_FIELD = {"id": "ids", "code": "codes", "category": "spellings"}

SEX_SPELLINGS = {
    "M": "M",
    "male": "M",
    "男": "M",
    "F": "F",
    "female": "F",
    "女": "F",
}
"""Spellings of sex in the patient export, compared case-insensitively."""

DEPARTMENTS = ("心内科", "呼吸内科", "内分泌科", "急诊科", "骨科", "神经内科", "肾内科")
"""Departments of the synthetic hospital, named in Chinese as in its exports."""

LAB_UNITS = UnitRule(
    value="value",
    unit="unit",
    by="test",
    canonical={"GLU": "mmol/L", "CREA": "µmol/L", "NA": "mmol/L"},
    factors={
        "GLU": {"mmol/L": 1.0, "mg/dL": 1 / 18.016},
        "CREA": {"µmol/L": 1.0, "mg/dL": 88.42},
        "NA": {"mmol/L": 1.0},
    },
    spellings={
        "mmol/L": "mmol/L",
        "mg/dL": "mg/dL",
        "µmol/L": "µmol/L",
        "μmol/L": "µmol/L",
        "umol/L": "µmol/L",
    },
    ranges={"GLU": (1.0, 40.0), "CREA": (20.0, 2000.0), "NA": (100.0, 180.0)},
)
"""Lab units: glucose in mmol/L, creatinine in µmol/L, sodium in mmol/L."""

PATIENTS = TableSpec(
    name="patients",
    kinds={
        "patient_id": "id",
        "name": "text",
        "sex": "category",
        "birth_date": "date",
        "phone": "text",
        "national_id": "text",
        "postcode": "text",
        "address": "text",
    },
    key="patient_id",
    required=("patient_id", "name", "birth_date"),
    ids={"patient_id": IdFormat(digits=6)},
    spellings={"sex": SEX_SPELLINGS},
    categorical=("sex",),
)
"""Hospital default rules for ``patients.csv``."""

VISITS = TableSpec(
    name="visits",
    kinds={
        "visit_id": "id",
        "patient_id": "id",
        "admit_date": "date",
        "discharge_date": "date",
        "department": "category",
        "icd10": "code",
        "age": "integer",
        "systolic_bp": "integer",
        "heart_rate": "integer",
        "readmit_30d": "integer",
    },
    key="visit_id",
    required=(
        "visit_id",
        "patient_id",
        "admit_date",
        "discharge_date",
        "department",
        "icd10",
        "age",
        "readmit_30d",
    ),
    ids={
        "visit_id": IdFormat(prefix="V", digits=7, pad=False),
        "patient_id": IdFormat(digits=6),
    },
    codes={"icd10": ICD10_PATTERN},
    spellings={"department": {name: name for name in DEPARTMENTS}},
    date_order=(("admit_date", "discharge_date"),),
    ranges={
        "age": (0, 120),
        "systolic_bp": (50, 260),
        "heart_rate": (20, 250),
        "readmit_30d": (0, 1),
    },
    categorical=("department", "icd10"),
)
"""Hospital default rules for ``visits.csv``: blood pressure in mmHg, heart rate
in beats per minute, age in years."""

LABS = TableSpec(
    name="labs",
    kinds={
        "lab_id": "id",
        "visit_id": "id",
        "test": "category",
        "value": "number",
        "unit": "text",
        "taken_date": "date",
    },
    key="lab_id",
    required=("lab_id", "visit_id", "test", "value", "unit", "taken_date"),
    ids={
        "lab_id": IdFormat(prefix="L", digits=8, pad=False),
        "visit_id": IdFormat(prefix="V", digits=7, pad=False),
    },
    spellings={"test": {"GLU": "GLU", "CREA": "CREA", "NA": "NA"}},
    literal_columns=("test",),
    units=LAB_UNITS,
    categorical=("test", "unit"),
)
"""Hospital default rules for ``labs.csv``, where the test code ``NA`` is sodium."""

HOSPITAL = MappingProxyType({spec.name: spec for spec in (PATIENTS, VISITS, LABS)})
"""Default specs by table name, in load order: patients, visits, labs."""

REFERENCES = MappingProxyType(
    {"visits": ("patient_id", "patients"), "labs": ("visit_id", "visits")}
)
"""Foreign keys between the hospital tables: child table to (column, parent)."""
