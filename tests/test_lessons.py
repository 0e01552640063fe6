"""Tests for medkit.course.lessons: discovery, validation and papermill runs."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from medkit.course.lessons import (
    LESSON_PATTERN,
    LESSONS_DIR,
    find_lessons,
    run_lesson,
    run_lessons,
    validate_lesson,
)
from medkit.exceptions import NotebookError

FIXTURES = Path(__file__).parent / "fixtures"
LESSON = FIXTURES / "lessons" / "00_vitals.ipynb"
REAL_LESSONS = sorted(LESSONS_DIR.glob(LESSON_PATTERN))


def write_lesson(path: Path, *sources: str, parameters: str = "quick = False") -> Path:
    """Write a notebook whose second cell is the parameters cell."""
    parameters_cell = new_code_cell(parameters)
    parameters_cell.metadata["tags"] = ["parameters"]
    cells = [new_markdown_cell("# Lesson"), parameters_cell]
    cells += [new_code_cell(source) for source in sources]
    nb = new_notebook(
        cells=cells,
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    nbformat.write(nb, path)
    return path


def stdout_of(notebook: Path) -> str:
    """Return the concatenated stream output of an executed notebook."""
    nb = nbformat.read(notebook, as_version=4)
    return "".join(
        output.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream"
    )


def test_find_lessons_numbered_order(tmp_path: Path) -> None:
    for name in ["10_capstone", "01_digitization", "00_welcome", "scratch", "1_typo"]:
        write_lesson(tmp_path / f"{name}.ipynb")

    lessons = find_lessons(tmp_path)

    assert [path.stem for path in lessons] == [
        "00_welcome",
        "01_digitization",
        "10_capstone",
    ]


def test_find_lessons_empty_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(NotebookError, match=r"No lesson notebooks named .* found"):
        find_lessons(tmp_path)


def test_validate_lesson_declared_parameters() -> None:
    assert validate_lesson(LESSON) == ["quick", "seed"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param(
            "no_parameters",
            r"no_parameters\.ipynb has no cell tagged 'parameters'",
            id="none",
        ),
        pytest.param(
            "two_parameters",
            r"two_parameters\.ipynb has 2 cells tagged 'parameters' \(cells 2, 3\)",
            id="two",
        ),
    ],
)
def test_validate_lesson_bad_parameters_cell(name: str, message: str) -> None:
    with pytest.raises(NotebookError, match=message):
        validate_lesson(FIXTURES / "bad_lessons" / f"{name}.ipynb")


def test_validate_lesson_without_quick_raises(tmp_path: Path) -> None:
    lesson = write_lesson(tmp_path / "00_lesson.ipynb", parameters="seed = 2026")

    with pytest.raises(NotebookError, match=r"does not set 'quick'; add"):
        validate_lesson(lesson)


def test_validate_lesson_unreadable_raises(tmp_path: Path) -> None:
    lesson = tmp_path / "00_broken.ipynb"
    lesson.write_text("{not json", encoding="utf-8")

    with pytest.raises(NotebookError, match=r"Cannot read lesson .*00_broken\.ipynb"):
        validate_lesson(lesson)


def test_run_lesson_unknown_parameter_raises(tmp_path: Path) -> None:
    with pytest.raises(
        NotebookError,
        match=r"does not declare the parameter 'dose_mg'; its parameters cell sets "
        r"'quick', 'seed'",
    ):
        run_lesson(LESSON, tmp_path, {"quick": True, "dose_mg": 5})

    assert list(tmp_path.iterdir()) == []


def test_run_lessons_parameter_declared_nowhere_raises(tmp_path: Path) -> None:
    with pytest.raises(
        NotebookError, match=r"No selected lesson declares the parameter 'sede'"
    ):
        run_lessons(FIXTURES / "lessons", tmp_path, parameters={"sede": 1})


def test_run_lessons_only_unknown_name_raises(tmp_path: Path) -> None:
    with pytest.raises(
        NotebookError, match=r"No lesson named 'pulse'; the lessons are 00_vitals"
    ):
        run_lessons(FIXTURES / "lessons", tmp_path, only=["pulse"])


def test_run_lessons_checks_all_before_running(tmp_path: Path) -> None:
    write_lesson(tmp_path / "00_good.ipynb", "raise SystemExit('must not run')")
    write_lesson(tmp_path / "01_bad.ipynb", parameters="seed = 1")

    with pytest.raises(NotebookError, match=r"01_bad\.ipynb does not set 'quick'"):
        run_lessons(tmp_path, tmp_path / "out")

    assert not (tmp_path / "out").exists()


@pytest.mark.notebook
def test_run_lessons_quick_writes_outputs(tmp_path: Path) -> None:
    [result] = run_lessons(FIXTURES / "lessons", tmp_path, quick=True, progress=False)

    assert result.name == "00_vitals"
    assert result.parameters == {"quick": True}
    assert result.notebook == tmp_path / "00_vitals.ipynb"
    assert result.html == tmp_path / "00_vitals.html"
    assert result.seconds > 0
    assert stdout_of(result.notebook) == "2 readings, seed 2026\n"
    assert "2 readings, seed 2026" in result.html.read_text(encoding="utf-8")


@pytest.mark.notebook
def test_run_lessons_only_by_name_without_number(tmp_path: Path) -> None:
    results = run_lessons(
        FIXTURES / "lessons", tmp_path, only=["vitals"], html=False, progress=False
    )

    assert [result.name for result in results] == ["00_vitals"]
    assert results[0].html is None
    assert not (tmp_path / "00_vitals.html").exists()


@pytest.mark.notebook
def test_run_lesson_runs_in_notebook_folder(tmp_path: Path) -> None:
    # The lesson reads vitals.csv by a relative path, as it would in JupyterLab.
    result = run_lesson(LESSON, tmp_path, {"seed": 7}, html=False)

    assert stdout_of(result.notebook) == "3 readings, seed 7\n"


@pytest.mark.notebook
def test_run_lesson_kernel_is_current_python(tmp_path: Path) -> None:
    lesson = write_lesson(
        tmp_path / "00_kernel.ipynb", "import sys\nprint(sys.executable)"
    )

    result = run_lesson(lesson, tmp_path / "out", html=False)

    assert stdout_of(result.notebook) == f"{sys.executable}\n"


@pytest.mark.notebook
@pytest.mark.parametrize(
    "parameters",
    [pytest.param({}, id="as_written"), pytest.param({"quick": True}, id="injected")],
)
def test_run_lesson_failing_cell_raises(tmp_path: Path, parameters: dict) -> None:
    lesson = write_lesson(tmp_path / "03_fails.ipynb", "dose = 5", "dose / 0")

    with pytest.raises(
        NotebookError,
        match=r"03_fails\.ipynb failed in cell 4 \('dose / 0'\): "
        r"ZeroDivisionError: division by zero\. The executed notebook",
    ):
        run_lesson(lesson, tmp_path / "out", parameters)

    assert (tmp_path / "out" / "03_fails.ipynb").exists()


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.parametrize(
    "lesson",
    [pytest.param(path, id=path.stem) for path in REAL_LESSONS]
    or [
        pytest.param(
            None, marks=pytest.mark.skip(reason="notebooks/ has no lesson yet")
        )
    ],
)
def test_real_lesson_runs_quick(lesson: Path, tmp_path: Path) -> None:
    [result] = run_lessons(
        quick=True, only=[lesson.stem], output_dir=tmp_path, progress=False
    )

    assert result.name == lesson.stem
    assert result.notebook.exists()
    assert result.html is not None
    assert result.html.exists()


@pytest.mark.notebook
def test_run_lesson_warning_raises(tmp_path: Path) -> None:
    lesson = write_lesson(
        tmp_path / "00_warns.ipynb",
        "x = 1",
        "import warnings\nwarnings.warn('the old API', FutureWarning)",
    )

    with pytest.raises(
        NotebookError,
        match=r"printed a warning in cell 4: .*FutureWarning: the old API",
    ):
        run_lesson(lesson, tmp_path / "out", html=False)


@pytest.mark.notebook
def test_run_lessons_only_by_number(tmp_path: Path) -> None:
    results = run_lessons(
        FIXTURES / "lessons", tmp_path, only=["00"], html=False, progress=False
    )

    assert [result.name for result in results] == ["00_vitals"]
