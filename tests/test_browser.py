"""Tests of the course in a real browser: JupyterLab driven in headless Chromium.

JupyterLab serves a temporary copy of the course in which every lesson runs with
``quick = True``. Each lesson must run to the end without an error, and each of
its widgets must render. A screenshot of each lesson goes to
``build/screenshots/<lesson>.png``. The nbgrader pages must work for the course
too. Set ``MEDKIT_SKIP_BROWSER=1`` to skip these tests on a machine without
Chromium; otherwise a missing browser fails them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from browser import (
    SKIP_VARIABLE,
    BrowserTestError,
    LabServer,
    copy_course,
    find_browser,
    start_chromium,
)
from lab_page import WIDGET_MIME, LabPage
from nbformat.v4 import new_code_cell, new_notebook

from medkit.course._paths import BUILD_DIR
from medkit.course.grading import find_assignments
from medkit.course.lessons import find_lessons
from medkit.widgets import describe_stage

pytestmark = [
    pytest.mark.slow,
    pytest.mark.notebook,
    pytest.mark.skipif(
        os.environ.get(SKIP_VARIABLE) == "1", reason=f"{SKIP_VARIABLE}=1 is set"
    ),
]

LESSONS = [lesson.stem for lesson in find_lessons()]
SCREENSHOTS = BUILD_DIR / "screenshots"

# ipywidgets classes of controls a trainee can change.
CONTROLS = {
    "widget-button",
    "widget-checkbox",
    "widget-dropdown",
    "widget-radio",
    "widget-select",
    "widget-select-multiple",
    "widget-slider",
    "widget-text",
    "widget-textarea",
    "widget-toggle-buttons",
}

# The heading of the course map's description, an HTML widget.
DETAIL_HEADING = """
const heading = document.querySelector(".widget-html-content h4");
return heading ? heading.innerText.trim() : null;
"""


def write_notebook(course: Path, name: str, *sources: str) -> str:
    """Write a notebook of code cells into the served course and return its path."""
    path = course / "checks" / f"{name}.ipynb"
    path.parent.mkdir(exist_ok=True)
    nb = new_notebook(
        cells=[new_code_cell(source) for source in sources],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    nbformat.write(nb, path)
    return f"checks/{path.name}"


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("course")
    copy_course(root)
    return root


@pytest.fixture(scope="module")
def chromium() -> None:
    try:
        find_browser()
    except BrowserTestError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="module")
def lab(
    chromium: None, course: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabServer]:
    server = LabServer(course, tmp_path_factory.mktemp("jupyter"))
    server.configure()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page(lab: LabServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabPage]:
    try:
        driver = start_chromium(tmp_path_factory.mktemp("chromium"))
    except BrowserTestError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        lab_page = LabPage(driver, lab)
        lab_page.open_lab()
        yield lab_page
    finally:
        driver.quit()


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_runs_in_lab(page: LabPage, lesson: str) -> None:
    page.ensure_lab()
    with page.notebook(f"notebooks/{lesson}.ipynb"):
        completed = page.run_all_cells(timeout=240)
        report = page.wait_until_settled()
        page.save_notebook_screenshot(SCREENSHOTS / f"{lesson}.png")

    assert completed, report.errors
    assert report.errors == []
    assert report.stderr == []
    assert report.unexecuted == []
    assert report.kernel == "idle"
    assert report.widget_problems == []
    assert report.widget_outputs >= 1
    assert report.rendered_widgets == report.widget_outputs
    assert CONTROLS & set(report.controls), report.controls


def test_lab_page_reports_failures(page: LabPage, course: Path) -> None:
    notebook = write_notebook(
        course,
        "failing",
        "import ipywidgets as widgets",
        "widgets.IntSlider(value=3)",
        # A view of a model that the kernel never created.
        f"display({{{WIDGET_MIME!r}: {{'model_id': '0' * 32}}}}, raw=True)",
        "1 / 0",
        "print('not reached')",
    )
    page.ensure_lab()
    with page.notebook(notebook):
        completed = page.run_all_cells()
        report = page.wait_until_settled(timeout=5)

    assert not completed
    assert report.code_cells == 5
    assert report.errors == ["cell 4: ZeroDivisionError: division by zero"]
    assert len(report.stderr) == 1
    assert "ZeroDivisionError" in report.stderr[0]
    assert report.unexecuted == [5]
    assert report.widget_outputs == 2
    assert report.rendered_widgets == 1
    assert report.widget_problems == [
        "cell 3: Error displaying widget: model not found"
    ]


def test_course_map_button_updates_detail(page: LabPage, course: Path) -> None:
    notebook = write_notebook(
        course, "course_map", "from medkit import widgets\nwidgets.course_map()"
    )
    page.ensure_lab()
    with page.notebook(notebook):
        page.run_all_cells()
        page.wait_until_settled()
        first = page.wait_for(DETAIL_HEADING, bool, "the course map")
        page.click_button("Intelligent 智能化")
        second = page.wait_for(
            DETAIL_HEADING, lambda text: text != first, "the detail to change"
        )

    assert first == "Data-driven (数据化): D = E(R)"
    assert second == "Intelligent (智能化): S = A(R)"
    assert "<h4>Intelligent (智能化): <code>S = A(R)</code></h4>" in describe_stage(
        "intelligence"
    )


def test_formgrader_lists_course_assignments(page: LabPage, course: Path) -> None:
    rows = page.open_formgrader()

    assert [row.name for row in rows] == find_assignments(course / "assignments")
    assert page.formgrader_warnings() == []


def test_assignment_list_shows_released_assignment(page: LabPage, course: Path) -> None:
    assignment = find_assignments(course / "assignments")[0]
    page.open_formgrader()

    generated = page.click_formgrader_action(assignment, "assign")
    released = page.click_formgrader_action(assignment, "release")
    rows = {row.name: row.status for row in page.open_formgrader()}
    page.open_lab()
    # The lists load after the course list, so wait for the release to show.
    lists = page.open_assignment_list(
        until=lambda lists: assignment in lists["released"]
    )

    assert generated.startswith(
        f"Success: Successfully created the student version of '{assignment}'"
    )
    assert released == f"Success: Successfully released '{assignment}'."
    assert rows[assignment] == "released"
    assert lists["course"] == "medkit"
    assert lists["fetched"] == "There are no downloaded assignments."
    assert lists["submitted"] == "There are no submitted assignments."
