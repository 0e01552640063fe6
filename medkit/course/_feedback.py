"""Feedback HTML for one graded notebook, without the code of hidden tests.

nbgrader's own feedback shows each test cell as autograded, and the autograded
cell contains the hidden tests. This page shows, for each graded cell, what it
checks: the ``# Checks that ...`` first line of the released test cell. It also
shows the visible test code as released, whether the test passed and its points.
A failed test shows the error's name and message, unless the message quotes a
hidden test. Problems found before or during grading are listed first.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nbformat import NotebookNode
from nbgrader import utils as nbgrader_utils

from medkit.course._precheck import Problem

logger = logging.getLogger(__name__)

HIDDEN_TESTS = re.compile(
    r"^[ \t]*#+[ \t]*BEGIN HIDDEN TESTS.*?^[ \t]*#+[ \t]*END HIDDEN TESTS[^\n]*",
    re.MULTILINE | re.DOTALL,
)
HIDDEN_BEGIN = re.compile(r"^[ \t]*#+[ \t]*BEGIN HIDDEN TESTS")
HIDDEN_END = re.compile(r"^[ \t]*#+[ \t]*END HIDDEN TESTS")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
CELL_FRAME = re.compile(r"Cell In\[\d+\], line (\d+)")
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto;
       line-height: 1.45; color: #1b1b1b; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 1.6rem; }
.passed { color: #17663a; } .failed { color: #a3161a; } .pending { color: #6b5b00; }
pre { background: #f5f5f5; padding: .6rem; overflow-x: auto; font-size: .9rem; }
.cell { border-top: 1px solid #ddd; padding-top: .4rem; }
li { margin-bottom: .3rem; }
"""


@dataclass(frozen=True)
class CellGrade:
    """Points of one graded cell, as the gradebook stores them.

    Attributes
    ----------
    score : float or None
        Points awarded; None while a manually graded cell waits for a grader.
    max_score : float
        Points available.
    """

    score: float | None
    max_score: float


def write_feedback(
    path: Path,
    *,
    title: str,
    graded: NotebookNode,
    released: NotebookNode,
    grades: dict[str, CellGrade],
    problems: Iterable[Problem],
) -> Path:
    """Write the feedback page of one autograded notebook.

    Parameters
    ----------
    path : Path
        The HTML file to write; its folder is created.
    title : str
        The page heading, e.g. ``"ps1_digitization: feedback for s001"``.
    graded : NotebookNode
        The autograded notebook, with outputs. Its test cells contain the hidden
        tests, which are never written to the page.
    released : NotebookNode
        The released student version, the source of the visible test code.
    grades : dict of str to CellGrade
        Points by ``grade_id``.
    problems : iterable of Problem
        Problems of this notebook found before or during grading.

    Returns
    -------
    Path
        ``path``.
    """
    visible = {
        _grade_id(cell): cell.source for cell in released.cells if _grade_id(cell)
    }
    sections = [
        _cell_section(cell, visible.get(_grade_id(cell), ""), grades[_grade_id(cell)])
        for cell in graded.cells
        if nbgrader_utils.is_grade(cell) and _grade_id(cell) in grades
    ]
    total = sum(grade.score or 0 for grade in grades.values())
    available = sum(grade.max_score for grade in grades.values())
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p><strong>{total:g} of {available:g} points</strong> so far. Cells "
        "graded by hand count once a grader has marked them.</p>",
        _problem_list(list(problems)),
        *sections,
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        "<body>\n" + "\n".join(part for part in body if part) + "\n</body>\n</html>\n"
    )
    _check_no_hidden_tests(page, graded, released)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def hidden_test_lines(source: str) -> list[str]:
    """Return the non-blank lines inside the hidden-test blocks of a cell source."""
    lines = []
    for block in HIDDEN_TESTS.findall(source):
        for line in block.splitlines()[1:-1]:
            if line.strip():
                lines.append(line.strip())
    return lines


def _cell_section(cell: NotebookNode, visible_source: str, grade: CellGrade) -> str:
    grade_id = _grade_id(cell)
    points = f"{grade.max_score:g}" if grade.score is None else f"{grade.score:g}"
    if cell.cell_type != "code" or nbgrader_utils.is_solution(cell):
        status = (
            ("pending", "waiting for a grader")
            if grade.score is None
            else ("passed", f"{points} of {grade.max_score:g} points")
        )
        css_class, text = status
        return (
            f'<div class="cell"><h2>{html.escape(grade_id)}: written answer</h2>'
            f'<p class="{css_class}">Graded by hand: {html.escape(text)}.</p></div>'
        )

    passed = grade.score is not None and grade.score >= grade.max_score
    checks = _checks_line(visible_source) or f"Test cell '{grade_id}'."
    verdict = "passed" if passed else "failed"
    parts = [
        f'<div class="cell"><h2>{html.escape(grade_id)}</h2>',
        f"<p>{html.escape(checks)}</p>",
        f'<p class="{verdict}"><strong>{verdict.capitalize()}</strong>: '
        f"{grade.score or 0:g} of {grade.max_score:g} points.</p>",
    ]
    if not passed:
        parts.append(f"<p>{html.escape(_error_summary(cell))}</p>")
    code = HIDDEN_TESTS.sub("", visible_source).strip()
    if code:
        parts.append(
            f"<details><summary>Visible test code</summary><pre>{html.escape(code)}"
            "</pre></details>"
        )
    parts.append("</div>")
    return "\n".join(parts)


def _checks_line(source: str) -> str:
    first = source.strip().splitlines()[0] if source.strip() else ""
    return first.lstrip("#").strip() if first.startswith("#") else ""


def _error_summary(cell: NotebookNode) -> str:
    """Say which error failed a test cell and where, without hidden test code."""
    hidden = hidden_test_lines(cell.source)
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            ename = output.get("ename", "Error")
            evalue = str(output.get("evalue", "")).strip()
            line = _failing_line(cell.source, output.get("traceback", []))
            if line is None:
                where = " in a hidden check of this cell"
            elif line:
                where = f" at the visible line `{line}`"
            else:
                where = ""
            if evalue and not _quotes_hidden(evalue, hidden):
                return f"{ename}{where}: {evalue}"
            return f"{ename}{where}."
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            return "The cell wrote to stderr, which nbgrader counts as a failure."
    return "The cell did not earn full marks."


def _failing_line(source: str, traceback: list[str]) -> str | None:
    """Return the test line that raised, None inside hidden tests, "" if unknown.

    IPython's traceback names the running cell first, as ``Cell In[7], line 6``.
    """
    text = ANSI_ESCAPE.sub("", "\n".join(traceback))
    match = CELL_FRAME.search(text)
    lines = source.splitlines()
    if match is None or not 0 < int(match.group(1)) <= len(lines):
        return ""
    number = int(match.group(1))
    inside_hidden = False
    for index, line in enumerate(lines, start=1):
        if HIDDEN_BEGIN.match(line):
            inside_hidden = True
        elif HIDDEN_END.match(line):
            inside_hidden = False
        if index == number:
            return None if inside_hidden else line.strip()
    return ""


def _quotes_hidden(text: str, hidden: list[str]) -> bool:
    return any(line in text or (len(text) > 8 and text in line) for line in hidden)


def _problem_list(problems: list[Problem]) -> str:
    if not problems:
        return ""
    items = "".join(
        f"<li><strong>{html.escape(problem.cell or problem.notebook)}</strong> "
        f"({html.escape(problem.kind)}): {html.escape(problem.message)}</li>"
        for problem in problems
    )
    return f"<h2>Problems found while grading</h2><ul>{items}</ul>"


def _check_no_hidden_tests(
    page: str, graded: NotebookNode, released: NotebookNode
) -> None:
    """Raise if a hidden test line reached the page; the writer is then wrong."""
    text = html.unescape(page)
    visible = {
        line.strip() for cell in released.cells for line in cell.source.splitlines()
    }
    for cell in graded.cells:
        for line in hidden_test_lines(cell.get("source", "")):
            # A hidden line that is part of a visible one, such as the opening
            # "x, y = f(" of a call the visible tests also make, reveals nothing.
            shown_anyway = any(line in visible_line for visible_line in visible)
            if len(line) > 12 and not shown_anyway and line in text:
                raise RuntimeError(
                    f"Feedback for cell '{_grade_id(cell)}' would show a hidden test."
                )


def _grade_id(cell: NotebookNode) -> str:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
