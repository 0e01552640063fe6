"""Tests for medkit.course._precheck: what a submission breaks, and its repair."""

from __future__ import annotations

import copy

import pytest
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.utils import compute_checksum

from medkit.course._precheck import Problem, check_notebook

TEST_SOURCE = (
    "# Checks that the dose is 5 mg per kg.\n"
    "assert dose(2) == 10\n"
    "### BEGIN HIDDEN TESTS\n"
    "assert sorted([dose(1), dose(3)]) == [5, 15]\n"
    "### END HIDDEN TESTS"
)
RELEASED_TEST = "# Checks that the dose is 5 mg per kg.\nassert dose(2) == 10"


def nbgrader(cell: NotebookNode, grade_id: str, **flags) -> NotebookNode:
    """Give a cell nbgrader metadata and the checksum generate_assignment writes."""
    metadata = {
        "grade": False,
        "grade_id": grade_id,
        "locked": False,
        "schema_version": 3,
        "solution": False,
        "task": False,
        **flags,
    }
    cell.metadata["nbgrader"] = metadata
    cell.metadata["nbgrader"]["checksum"] = compute_checksum(cell)
    return cell


def assignment(test_source: str, answer: str) -> NotebookNode:
    """Build a notebook: intro, setup, answer, test, written answer."""
    return new_notebook(
        cells=[
            nbgrader(new_markdown_cell("# Doses"), "intro", locked=True),
            nbgrader(new_code_cell("FACTOR = 5"), "setup", locked=True),
            nbgrader(new_code_cell(answer), "dose_answer", solution=True),
            nbgrader(
                new_code_cell(test_source),
                "test_dose",
                grade=True,
                locked=True,
                points=2,
            ),
            nbgrader(
                new_markdown_cell("YOUR ANSWER HERE"),
                "why_answer",
                grade=True,
                solution=True,
                points=1,
            ),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )


@pytest.fixture
def released() -> NotebookNode:
    return assignment(RELEASED_TEST, "def dose(kg):\n    raise NotImplementedError()")


@pytest.fixture
def source() -> NotebookNode:
    return assignment(TEST_SOURCE, "def dose(kg):\n    return FACTOR * kg")


def submitted_from(released: NotebookNode, answer: str) -> NotebookNode:
    notebook = copy.deepcopy(released)
    notebook.cells[2].source = answer
    return notebook


def grade_ids(notebook: NotebookNode) -> list[str | None]:
    return [
        cell.metadata.get("nbgrader", {}).get("grade_id") for cell in notebook.cells
    ]


def kinds(problems: list[Problem]) -> list[str]:
    return [problem.kind for problem in problems]


def test_check_notebook_clean_submission(released, source) -> None:
    submitted = submitted_from(released, "def dose(kg):\n    return 5 * kg")

    fixed, problems = check_notebook("s01", "doses", submitted, released, source)

    assert problems == []
    assert fixed == submitted


def test_check_notebook_leaves_input_unchanged(released) -> None:
    submitted = submitted_from(released, "def dose(kg):\n    return 5 * kg")
    del submitted.cells[3]
    before = copy.deepcopy(submitted)

    check_notebook("s01", "doses", submitted, released)

    assert submitted == before


def test_check_notebook_deleted_test_restored(released) -> None:
    submitted = submitted_from(released, "def dose(kg):\n    return 5 * kg")
    del submitted.cells[3]

    fixed, problems = check_notebook("s01", "doses", submitted, released)

    assert grade_ids(fixed) == [
        "intro",
        "setup",
        "dose_answer",
        "test_dose",
        "why_answer",
    ]
    assert fixed.cells[3] == released.cells[3]
    assert problems == [
        Problem(
            "s01",
            "doses",
            "test_dose",
            "deleted",
            "The graded cell 'test_dose' was deleted; it was put back as released "
            "and graded.",
        )
    ]


def test_check_notebook_deleted_setup_restored_first(released) -> None:
    submitted = submitted_from(released, "def dose(kg):\n    return 5 * kg")
    del submitted.cells[0:2]

    fixed, problems = check_notebook("s01", "doses", submitted, released)

    # The Markdown intro is not needed for grading, so it stays deleted.
    assert grade_ids(fixed) == ["setup", "dose_answer", "test_dose", "why_answer"]
    assert [(p.cell, p.kind) for p in problems] == [("setup", "deleted")]
    assert "locked cell 'setup'" in problems[0].message


def test_check_notebook_deleted_cells_keep_order(released) -> None:
    submitted = submitted_from(released, "def dose(kg):\n    return 5 * kg")
    del submitted.cells[3:5]

    fixed, problems = check_notebook("s01", "doses", submitted, released)

    assert grade_ids(fixed) == [
        "intro",
        "setup",
        "dose_answer",
        "test_dose",
        "why_answer",
    ]
    assert [p.cell for p in problems] == ["test_dose", "why_answer"]


def test_check_notebook_edited_test_restored(released) -> None:
    submitted = submitted_from(released, "def dose(kg):\n    return 5 * kg")
    submitted.cells[3].source = "pass"

    fixed, problems = check_notebook("s01", "doses", submitted, released)

    assert fixed.cells[3].source == RELEASED_TEST
    assert [(p.cell, p.kind) for p in problems] == [("test_dose", "edited")]
    assert problems[0].message == (
        "The test cell 'test_dose' was changed; it was graded as released."
    )


def test_check_notebook_edited_points_restored(released) -> None:
    submitted = submitted_from(released, "def dose(kg):\n    return 5 * kg")
    submitted.cells[3].metadata["nbgrader"]["points"] = 100

    fixed, problems = check_notebook("s01", "doses", submitted, released)

    assert fixed.cells[3].metadata["nbgrader"]["points"] == 2
    assert kinds(problems) == ["edited"]


def test_check_notebook_source_version_not_edited(released, source) -> None:
    # A submission made from the instructor version has the hidden tests.
    fixed, problems = check_notebook("s01", "doses", source, released, source)

    assert problems == []
    assert fixed.cells[3].source == TEST_SOURCE


def test_check_notebook_duplicated_test_copies_removed(released) -> None:
    submitted = submitted_from(released, "def dose(kg):\n    return 5 * kg")
    first = copy.deepcopy(submitted.cells[3])
    submitted.cells.insert(0, first)

    fixed, problems = check_notebook("s01", "doses", submitted, released)

    assert grade_ids(fixed) == [
        "intro",
        "setup",
        "dose_answer",
        "test_dose",
        "why_answer",
    ]
    assert fixed.cells[3].source == RELEASED_TEST
    assert [(p.cell, p.kind) for p in problems] == [("test_dose", "duplicated")]
    assert problems[0].message == (
        "The cell 'test_dose' appears 2 times; only the last copy is graded, and "
        "the other copies were removed."
    )


def test_check_notebook_duplicated_edited_last_copy(released) -> None:
    submitted = submitted_from(released, "def dose(kg):\n    return 5 * kg")
    copied = copy.deepcopy(submitted.cells[3])
    copied.source = "pass"
    submitted.cells.insert(4, copied)

    fixed, problems = check_notebook("s01", "doses", submitted, released)

    tests = [cell for cell in fixed.cells if grade_ids_of(cell) == "test_dose"]
    assert [cell.source for cell in tests] == [RELEASED_TEST]
    assert kinds(problems) == ["duplicated", "edited"]


def grade_ids_of(cell: NotebookNode) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def test_check_notebook_duplicated_answer_kept_as_plain_cell(released) -> None:
    submitted = submitted_from(released, "def dose(kg):\n    return 5 * kg")
    submitted.cells.insert(3, copy.deepcopy(submitted.cells[2]))

    fixed, problems = check_notebook("s01", "doses", submitted, released)

    assert grade_ids(fixed) == [
        "intro",
        "setup",
        None,
        "dose_answer",
        "test_dose",
        "why_answer",
    ]
    assert fixed.cells[2].source == "def dose(kg):\n    return 5 * kg"
    assert "the other copies run as ordinary cells" in problems[0].message


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param("kg = float(input('weight? '))", id="input"),
        pytest.param("import getpass\nkey = getpass.getpass()", id="getpass-module"),
        pytest.param("from getpass import getpass\nkey = getpass()", id="getpass"),
        pytest.param("import sys\nline = sys.stdin.readline()", id="stdin-readline"),
    ],
)
def test_check_notebook_stdin(released, answer: str) -> None:
    submitted = submitted_from(released, answer)

    _, problems = check_notebook("s01", "doses", submitted, released)

    assert [(p.cell, p.kind) for p in problems] == [("dose_answer", "stdin")]
    assert "there is no keyboard" in problems[0].message


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param("import ipywidgets as w\nslider = w.IntSlider()", id="import"),
        pytest.param(
            "from ipywidgets import interact\ninteract(print, x=1)", id="interact"
        ),
        pytest.param(
            "from ipywidgets import widgets\nw = widgets.Text()", id="from-import"
        ),
    ],
)
def test_check_notebook_widget(released, answer: str) -> None:
    submitted = submitted_from(released, answer)

    _, problems = check_notebook("s01", "doses", submitted, released)

    assert [(p.cell, p.kind) for p in problems] == [("dose_answer", "widget")]


def test_check_notebook_widget_output(released) -> None:
    submitted = submitted_from(released, "show()")
    submitted.cells[2].outputs = [
        {
            "output_type": "display_data",
            "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "1"}},
            "metadata": {},
        }
    ]

    _, problems = check_notebook("s01", "doses", submitted, released)

    assert kinds(problems) == ["widget"]


@pytest.mark.parametrize(
    "answer, names",
    [
        pytest.param("def sorted(values):\n    return [5, 15]", "sorted", id="def"),
        pytest.param("sorted = list", "sorted", id="assign"),
        pytest.param("import builtins\nbuiltins.sorted = list", "sorted", id="module"),
    ],
)
def test_check_notebook_redefined_builtin(
    released, source, answer: str, names: str
) -> None:
    submitted = submitted_from(released, answer)

    _, problems = check_notebook("s01", "doses", submitted, released, source)

    assert [(p.cell, p.kind) for p in problems] == [("dose_answer", "builtin")]
    assert problems[0].message == (
        f"The cell redefines {names}, which the tests use; the tests ran with the "
        "built-in versions."
    )


def test_check_notebook_builtin_unused_by_tests(released, source) -> None:
    submitted = submitted_from(released, "max = 3\ndef dose(kg):\n    return 5 * kg")

    _, problems = check_notebook("s01", "doses", submitted, released, source)

    assert problems == []


def test_check_notebook_kernel_not_installed(released) -> None:
    submitted = submitted_from(released, "def dose(kg):\n    return 5 * kg")
    submitted.metadata["kernelspec"] = {"name": "ir", "display_name": "R"}

    _, problems = check_notebook("s01", "doses", submitted, released)

    assert problems == [
        Problem(
            "s01",
            "doses",
            "",
            "kernel",
            "The notebook asks for the kernel 'ir', which is not installed; it was "
            "graded with the assignment's kernel 'python3'.",
        )
    ]


def test_check_notebook_syntax_error_answer(released) -> None:
    submitted = submitted_from(released, "def dose(kg) return 5 * kg")

    fixed, problems = check_notebook("s01", "doses", submitted, released)

    assert problems == []
    assert fixed.cells[2].source == "def dose(kg) return 5 * kg"
