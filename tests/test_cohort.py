"""Tests for medkit.course.cohort: synthetic cohorts and their expected points."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from medkit.course import _variants
from medkit.course.analytics import read_gradebook
from medkit.course.cohort import (
    DEFAULT_RATES,
    Cohort,
    CohortResult,
    VariantTable,
    answer_variants,
    grade_demo_cohort,
    load_variants,
    make_cohort,
    measure_variants,
    score_differences,
    variant_counts,
)
from medkit.course.grading import COURSE_DIR
from medkit.exceptions import GradingError

PS1 = "ps1_digitization"
FIXTURE_COURSE = Path(__file__).parent / "fixtures" / "course"

# The answer key of ps1: the test cells that fail when an answer cell is wrong
# or blank. test_to_missing and test_split_valid call read_raw first.
PS1_MAX = {
    "test_read_raw": 2.0,
    "test_to_missing": 2.0,
    "test_normalise_sex": 3.0,
    "test_parse_date": 3.0,
    "test_glucose_mmol": 2.0,
    "test_split_valid": 3.0,
    "answer_naive_cleaning": 4.0,
}
PS1_FAILS = {
    "read_raw": ["test_read_raw", "test_to_missing", "test_split_valid"],
    "to_missing": ["test_to_missing"],
    "normalise_sex": ["test_normalise_sex"],
    "parse_date": ["test_parse_date"],
    "glucose_mmol": ["test_glucose_mmol"],
    "split_valid": ["test_split_valid"],
    "answer_naive_cleaning": ["answer_naive_cleaning"],
}
PS1_VARIANTS = {
    "read_raw": ["solution", "blank"],
    "to_missing": ["solution", "fill_zero", "blank"],
    "normalise_sex": ["solution", "english_only", "blank"],
    "parse_date": ["solution", "month_first", "blank"],
    "glucose_mmol": ["solution", "blank"],
    "split_valid": ["solution", "fill_zero", "blank"],
    "answer_naive_cleaning": ["solution", "blank"],
}


def hand_table(
    max_scores: dict[str, float],
    fails: dict[str, list[str]],
    variants: dict[str, list[str]],
    manual: set[str],
) -> VariantTable:
    """Build a variant table from which test cells each wrong answer fails."""
    solution = {
        item: None if item in manual else points for item, points in max_scores.items()
    }
    table: dict[str, dict[str, dict[str, float | None]]] = {}
    for answer, names in variants.items():
        for name in names[1:]:
            points = dict(solution)
            for item in fails[answer]:
                # A written answer left blank scores 0 at once; a wrong written
                # answer still awaits manual grading.
                if item in manual and name != "blank":
                    continue
                points[item] = 0.0
            table.setdefault(answer, {})[name] = points
    return VariantTable(PS1, max_scores, solution, table)


PS1_TABLE = hand_table(PS1_MAX, PS1_FAILS, PS1_VARIANTS, {"answer_naive_cleaning"})


def expected_points(choices: pd.Series) -> dict[str, float]:
    """Apply the ps1 answer key to one trainee's variants."""
    points = {item: maximum for item, maximum in PS1_MAX.items()}
    points["answer_naive_cleaning"] = math.nan
    for answer, variant in choices.items():
        if variant != "solution":
            for item in PS1_FAILS[answer]:
                points[item] = 0.0
    return points


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def cell_source(cohort: Cohort, student: str, grade_id: str) -> str:
    path = cohort.directory / student / PS1 / f"{PS1}.ipynb"
    nb = nbformat.read(path, as_version=4)
    [cell] = [
        c
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id
    ]
    return cell.source


@pytest.fixture(scope="module")
def cohort20(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    out = tmp_path_factory.mktemp("cohort20") / "submitted"
    return make_cohort(PS1, 20, out_dir=out, variants=PS1_TABLE)


# Dealing the variants -----------------------------------------------------------


@pytest.mark.parametrize(
    ("n_trainees", "variants", "rates", "expected"),
    [
        (24, ["solution", "blank"], DEFAULT_RATES, {"solution": 20, "blank": 4}),
        (
            24,
            ["solution", "fill_zero", "blank"],
            DEFAULT_RATES,
            {"solution": 14, "fill_zero": 6, "blank": 4},
        ),
        (
            7,
            ["solution", "a", "b", "blank"],
            DEFAULT_RATES,
            {"solution": 4, "a": 1, "b": 1, "blank": 1},
        ),
        (1, ["solution", "blank"], DEFAULT_RATES, {"solution": 1, "blank": 0}),
        (
            6,
            ["solution", "a", "blank"],
            DEFAULT_RATES,
            {"solution": 4, "a": 1, "blank": 1},
        ),
        (
            10,
            ["solution", "a", "blank"],
            {"solution": 1.0},
            {"solution": 10, "a": 0, "blank": 0},
        ),
        (
            5,
            ["solution", "a", "blank"],
            {"blank": 1.0},
            {"solution": 0, "a": 0, "blank": 5},
        ),
    ],
    ids=[
        "no-mistake-24",
        "one-mistake-24",
        "two-mistakes-7",
        "one-trainee",
        "remainders-6",
        "all-solution",
        "all-blank",
    ],
)
def test_variant_counts_largest_remainder(
    n_trainees: int, variants: list[str], rates: dict, expected: dict[str, int]
) -> None:
    assert variant_counts(n_trainees, variants, rates) == expected


@pytest.mark.parametrize(
    ("rates", "message"),
    [
        ({"solution": 0.5, "blank": 0.2}, r"sum to 0.7; they must sum to 1"),
        ({"solution": 1.2, "blank": -0.2}, r"rate of 'blank' is -0.2"),
        ({"solution": 0.9, "typo": 0.1}, r"Unknown rate 'typo'"),
        ({"solution": float("nan"), "blank": 1.0}, r"rate of 'solution' is nan"),
    ],
    ids=["sum", "negative", "unknown", "nan"],
)
def test_variant_counts_invalid_rates_raise(rates: dict, message: str) -> None:
    with pytest.raises(GradingError, match=message):
        variant_counts(10, ["solution", "blank"], rates)


def test_answer_variants_ps1() -> None:
    assert answer_variants(PS1) == PS1_VARIANTS


def test_answer_variants_fixture_course() -> None:
    assert answer_variants("ps0_vitals", FIXTURE_COURSE) == {
        "bmi_answer": ["solution", "fever_strict", "blank"],
        "fever_answer": ["solution", "fever_strict", "blank"],
        "units_answer": ["solution", "blank"],
    }


# Writing a cohort ---------------------------------------------------------------


def test_make_cohort_counts_exact(cohort20: Cohort) -> None:
    counts = cohort20.counts()

    assert counts.columns.tolist() == [
        "solution",
        "english_only",
        "fill_zero",
        "month_first",
        "blank",
    ]
    # 20 trainees: 0.85 and 0.15 of 20 are 17 and 3; 0.6, 0.25, 0.15 of 20 are
    # 12, 5 and 3.
    assert counts.loc["read_raw"].tolist() == [17, 0, 0, 0, 3]
    assert counts.loc["to_missing"].tolist() == [12, 0, 5, 0, 3]
    assert counts.loc["normalise_sex"].tolist() == [12, 5, 0, 0, 3]
    assert counts.loc["parse_date"].tolist() == [12, 0, 0, 5, 3]
    assert counts.loc["split_valid"].tolist() == [12, 0, 5, 0, 3]
    assert counts.loc["answer_naive_cleaning"].tolist() == [17, 0, 0, 0, 3]


def test_make_cohort_layout(cohort20: Cohort) -> None:
    students = sorted(path.name for path in cohort20.directory.iterdir())

    assert students == [f"trainee{number:02d}" for number in range(1, 21)]
    assert cohort20.students == students
    for student in students:
        files = sorted(p.name for p in (cohort20.directory / student / PS1).iterdir())
        assert files == [f"{PS1}.ipynb"]


def test_make_cohort_cells_hold_variants(cohort20: Cohort) -> None:
    demo = COURSE_DIR / "demo" / PS1
    source = nbformat.read(COURSE_DIR / "source" / PS1 / f"{PS1}.ipynb", as_version=4)
    solution = next(
        c.source
        for c in source.cells
        if c.metadata.get("nbgrader", {}).get("grade_id") == "to_missing"
    )
    choices = cohort20.choices["to_missing"]

    for student, variant in choices.items():
        text = cell_source(cohort20, student, "to_missing")
        if variant == "solution":
            assert text == solution
        elif variant == "fill_zero":
            expected = (demo / "fill_zero" / "to_missing.py").read_text(
                encoding="utf-8"
            )
            assert text == expected.rstrip("\n")
        else:
            assert text == (
                "def to_missing(series, tokens=MISSING):\n"
                '    """Replace the missing-value spellings in tokens by pd.NA."""\n'
                "    # YOUR CODE HERE\n"
                "    raise NotImplementedError()"
            )


def test_make_cohort_blank_written_answer_is_stub(cohort20: Cohort) -> None:
    blank = cohort20.choices.index[cohort20.choices["answer_naive_cleaning"] == "blank"]

    sources = {cell_source(cohort20, s, "answer_naive_cleaning") for s in blank}

    assert sources == {"YOUR ANSWER HERE"}


def test_make_cohort_same_seed_identical_files(tmp_path: Path) -> None:
    first = make_cohort(PS1, 12, out_dir=tmp_path / "a", variants=PS1_TABLE)
    second = make_cohort(PS1, 12, out_dir=tmp_path / "b", variants=PS1_TABLE)

    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")
    pd.testing.assert_frame_equal(first.choices, second.choices)
    pd.testing.assert_frame_equal(first.truth, second.truth)


def test_make_cohort_other_seed_differs(tmp_path: Path) -> None:
    first = make_cohort(PS1, 12, out_dir=tmp_path / "a", variants=PS1_TABLE)
    other = make_cohort(PS1, 12, seed=7, out_dir=tmp_path / "b", variants=PS1_TABLE)

    assert not first.choices.equals(other.choices)
    pd.testing.assert_frame_equal(first.counts(), other.counts())


def test_make_cohort_truth_follows_answer_key(cohort20: Cohort) -> None:
    truth = cohort20.truth

    assert truth.columns.tolist() == ["student", "item", "score", "max_score"]
    assert len(truth) == 20 * 7
    for student, choices in cohort20.choices.iterrows():
        rows = truth[truth["student"] == student].set_index("item")
        expected = expected_points(choices)
        assert rows.index.tolist() == list(PS1_MAX), student
        assert rows["score"].to_dict() == pytest.approx(expected, nan_ok=True), student
        assert rows["max_score"].to_dict() == PS1_MAX


def test_make_cohort_full_ability_nests_solutions(tmp_path: Path) -> None:
    rates = {"solution": 0.5, "mistake": 0.35, "blank": 0.15}
    cohort = make_cohort(
        PS1, 24, rates=rates, ability=1.0, out_dir=tmp_path, variants=PS1_TABLE
    )
    solved = cohort.choices == "solution"

    # With ability 1 every cell ranks the trainees alike, so the 12 who solve
    # to_missing solve every cell dealt to 12, and they are among the 20 who
    # solve read_raw.
    twelve = ["to_missing", "normalise_sex", "parse_date", "split_valid"]
    for answer in twelve:
        assert solved[answer].sum() == 12
        assert solved[answer].equals(solved["to_missing"]), answer
    assert (solved["read_raw"] | ~solved["to_missing"]).all()
    assert cohort.counts().loc["to_missing"].tolist() == [12, 0, 8, 0, 4]


def test_make_cohort_ability_keeps_counts(tmp_path: Path) -> None:
    independent = make_cohort(PS1, 24, out_dir=tmp_path / "a", variants=PS1_TABLE)
    able = make_cohort(
        PS1, 24, ability=0.85, out_dir=tmp_path / "b", variants=PS1_TABLE
    )

    pd.testing.assert_frame_equal(independent.counts(), able.counts())
    assert able.ability == 0.85


def test_make_cohort_nonempty_folder_raises(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep", encoding="utf-8")

    with pytest.raises(GradingError, match="is not empty; pass an empty folder"):
        make_cohort(PS1, 2, out_dir=tmp_path, variants=PS1_TABLE)

    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "keep"


def test_make_cohort_replace_deletes_old_files(tmp_path: Path) -> None:
    make_cohort(PS1, 3, out_dir=tmp_path, variants=PS1_TABLE)

    make_cohort(PS1, 2, out_dir=tmp_path, variants=PS1_TABLE, replace=True)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["trainee01", "trainee02"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_trainees": 0}, "n_trainees must be a whole number of at least 1; got 0"),
        ({"n_trainees": 2.5}, "got 2.5"),
        ({"ability": 1.5}, "ability must be from 0 to 1; got 1.5"),
        ({"rates": {"solution": 0.5}}, "sum to 0.5"),
    ],
    ids=["zero-trainees", "fractional-trainees", "ability", "rates"],
)
def test_make_cohort_invalid_options_raise(
    tmp_path: Path, options: dict, message: str
) -> None:
    arguments = {"n_trainees": 4, **options}

    with pytest.raises(GradingError, match=message):
        make_cohort(PS1, out_dir=tmp_path / "out", variants=PS1_TABLE, **arguments)

    assert not (tmp_path / "out").exists()


def test_make_cohort_unknown_assignment_raises(tmp_path: Path) -> None:
    with pytest.raises(GradingError, match="No source notebook of 'ps9' found"):
        make_cohort("ps9", 2, out_dir=tmp_path / "out")

    assert not (tmp_path / "out").exists()


def test_make_cohort_other_assignment_table_raises(tmp_path: Path) -> None:
    with pytest.raises(GradingError, match="variant table is of 'ps1_digitization'"):
        make_cohort("ps2_intelligence", 2, out_dir=tmp_path, variants=PS1_TABLE)


# Predicting points --------------------------------------------------------------


def test_variant_table_predicts_demo_scores() -> None:
    expected = json.loads((COURSE_DIR / "demo" / PS1 / "expected.json").read_text())
    demos = {
        "solution": {},
        "blank": dict.fromkeys(PS1_VARIANTS, "blank"),
        "month_first": {"parse_date": "month_first"},
        "fill_zero": {"to_missing": "fill_zero", "split_valid": "fill_zero"},
        "english_only": {"normalise_sex": "english_only"},
    }

    for name, choices in demos.items():
        points = PS1_TABLE.predict(choices)
        total = sum(value for value in points.values() if value is not None)
        assert total == expected[name], name


def test_variant_table_predict_smallest_points() -> None:
    points = PS1_TABLE.predict({"read_raw": "blank", "to_missing": "fill_zero"})

    assert points == {
        "test_read_raw": 0.0,
        "test_to_missing": 0.0,
        "test_normalise_sex": 3.0,
        "test_parse_date": 3.0,
        "test_glucose_mmol": 2.0,
        "test_split_valid": 0.0,
        "answer_naive_cleaning": None,
    }


def test_variant_table_unknown_variant_raises() -> None:
    with pytest.raises(GradingError, match="No measured variant 'typo' of answer"):
        PS1_TABLE.predict({"read_raw": "typo"})


def test_variant_table_json_round_trip() -> None:
    assert VariantTable.from_json(PS1_TABLE.to_json()) == PS1_TABLE


def test_load_variants_reads_matching_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fingerprint = _variants.AssignmentFiles(PS1, None).fingerprint()
    cached = VariantTable(
        PS1, PS1_MAX, PS1_TABLE.solution, PS1_TABLE.variants, fingerprint
    )
    (tmp_path / f"{PS1}.json").write_text(cached.to_json(), encoding="utf-8")

    def fail(*args: object, **kwargs: object) -> VariantTable:
        raise AssertionError("measure_variants ran although the cache matches")

    monkeypatch.setattr(_variants, "measure_variants", fail)

    assert load_variants(PS1, cache_dir=tmp_path) == cached


def test_load_variants_measures_stale_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / f"{PS1}.json").write_text(PS1_TABLE.to_json(), encoding="utf-8")
    calls = []

    def measure(assignment: str, **options: object) -> VariantTable:
        calls.append(assignment)
        return PS1_TABLE

    monkeypatch.setattr(_variants, "measure_variants", measure)

    table = load_variants(PS1, cache_dir=tmp_path)

    assert calls == [PS1]
    assert table.variants == PS1_TABLE.variants
    assert table.fingerprint == _variants.AssignmentFiles(PS1, None).fingerprint()
    written = VariantTable.from_json((tmp_path / f"{PS1}.json").read_text())
    assert written == table


def test_score_differences_cases() -> None:
    scores = pd.DataFrame(
        {
            "student": ["s1", "s1", "s2", "s2"],
            "item": ["a", "b", "a", "b"],
            "score": [2.0, np.nan, 0.0, 1.0],
        }
    )
    truth = pd.DataFrame(
        {
            "student": ["s1", "s1", "s2", "s3"],
            "item": ["a", "b", "a", "a"],
            "score": [2.0, np.nan, 2.0, 1.0],
        }
    )

    differences = score_differences(scores, truth)

    assert differences[["student", "item"]].values.tolist() == [
        ["s2", "a"],
        ["s2", "b"],
        ["s3", "a"],
    ]
    assert differences["score"].tolist()[:2] == [0.0, 1.0]
    assert differences["expected"].tolist()[0] == 2.0
    assert differences["missing"].tolist() == ["", "expected", "score"]


def test_score_differences_identical_empty() -> None:
    truth = pd.DataFrame(
        {
            "student": ["s1", "s1"],
            "item": ["test_read_raw", "answer_naive_cleaning"],
            "score": [2.0, np.nan],
        }
    )

    assert score_differences(truth, truth.copy()).empty


# Grading for real ---------------------------------------------------------------


@pytest.fixture(scope="module")
def graded6(tmp_path_factory: pytest.TempPathFactory) -> CohortResult:
    """Write, grade, check and report six ps1 trainees with grade_demo_cohort.

    The variant table cache holds the ps1 answer key, so only the six
    submissions are graded.
    """
    build = tmp_path_factory.mktemp("graded6")
    fingerprint = _variants.AssignmentFiles(PS1, None).fingerprint()
    cache = build / "cohort" / "variants" / f"{PS1}.json"
    cache.parent.mkdir(parents=True)
    table = VariantTable(
        PS1, PS1_MAX, PS1_TABLE.solution, PS1_TABLE.variants, fingerprint
    )
    cache.write_text(table.to_json(), encoding="utf-8")

    return grade_demo_cohort(
        PS1,
        6,
        rates=DEFAULT_RATES,
        ability=0.0,
        build_dir=build,
        jobs=2,
        progress=False,
    )


@pytest.mark.slow
@pytest.mark.notebook
def test_grade_demo_cohort_scores_equal_truth(graded6: CohortResult) -> None:
    cohort = graded6.cohort

    scores = read_gradebook(graded6.grading.gradebook, PS1)

    assert graded6.grading.failed == {}
    assert scores["student"].unique().tolist() == cohort.students
    assert len(scores) == 6 * 7
    assert score_differences(scores, cohort.truth).empty
    assert graded6.differences.empty


@pytest.mark.slow
@pytest.mark.notebook
def test_grade_demo_cohort_report_figures(graded6: CohortResult) -> None:
    cohort, analysis = graded6.cohort, graded6.analysis
    solved = cohort.choices == "solution"
    expected_totals = {
        student: sum(
            points
            for item, points in expected_points(row).items()
            if item != "answer_naive_cleaning"
        )
        for student, row in cohort.choices.iterrows()
    }

    # Six trainees: cells without a mistake are dealt 5 solutions and 1 blank,
    # cells with one mistake 4 solutions, 1 mistake and 1 blank.
    difficulty = analysis.items["difficulty"]
    assert difficulty["test_read_raw"] == 5 / 6
    assert difficulty["test_glucose_mmol"] == 5 / 6
    assert difficulty["test_normalise_sex"] == 4 / 6
    assert difficulty["test_parse_date"] == 4 / 6
    both = (solved["read_raw"] & solved["to_missing"]).mean()
    assert difficulty["test_to_missing"] == pytest.approx(both)
    assert analysis.pending_items == ["answer_naive_cleaning"]
    assert analysis.trainees["score"].to_dict() == expected_totals

    html = graded6.report.read_text(encoding="utf-8")
    mean = sum(expected_totals.values()) / 6
    assert "<dt>Trainees</dt><dd>6</dd>" in html
    assert f"<dt>Mean total</dt><dd>{mean:.2f} of 15 points" in html
    assert "<dt>Awaiting manual grading</dt><dd>answer_naive_cleaning</dd>" in html
    assert {path.name for path in graded6.report.parent.iterdir()} == {
        "index.html",
        "totals.png",
        "items.png",
        "objectives.png",
    }


@pytest.mark.slow
@pytest.mark.notebook
def test_measure_variants_fixture_course(tmp_path: Path) -> None:
    table = measure_variants(
        "ps0_vitals", course_dir=FIXTURE_COURSE, work_dir=tmp_path, jobs=2
    )

    assert table.max_scores == {"test_bmi": 2.0, "test_fever": 1.0, "units_answer": 2.0}
    assert table.solution == {"test_bmi": 2.0, "test_fever": 1.0, "units_answer": None}
    assert table.variants == {
        # fever_strict keeps the model bmi, written without its docstring.
        "bmi_answer": {
            "fever_strict": {"test_bmi": 2.0, "test_fever": 1.0, "units_answer": None},
            "blank": {"test_bmi": 0.0, "test_fever": 1.0, "units_answer": None},
        },
        "fever_answer": {
            "fever_strict": {"test_bmi": 2.0, "test_fever": 0.0, "units_answer": None},
            "blank": {"test_bmi": 2.0, "test_fever": 0.0, "units_answer": None},
        },
        "units_answer": {
            "blank": {"test_bmi": 2.0, "test_fever": 1.0, "units_answer": 0.0},
        },
    }
