"""Tests for grading hostile submissions: each earns the marks it earned, no more.

Every folder in tests/fixtures/hostile/ is one submission of ps1_digitization: the
model solution with some answer cells replaced by ``<grade_id>.py`` files, as in
the demo mistake folders, and optionally a ``patch.json`` that edits, deletes or
copies cells or changes the kernel. ``expected.json`` holds the score each one
earns under the limits below and the problem kinds the grader reports.

ps1_digitization has six test cells: read_raw 2, to_missing 2, normalise_sex 3,
parse_date 3, glucose_mmol 2, split_valid 3 points, in that order.
"""

from __future__ import annotations

import builtins
import copy
import hashlib
import html
import io
import json
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from medkit.course._feedback import hidden_test_lines
from medkit.course._sandbox import kernel_settings, probe_limits
from medkit.course._sandbox_kernel import (
    OutputLimitExceeded,
    _FileGuard,
    _KernelState,
    _OutputBudget,
)
from medkit.course.demos import DemoSubmission, write_submission
from medkit.course.grading import (
    COURSE_DIR,
    CohortReport,
    Limits,
    grade_cohort,
    release_assignments,
)

FIXTURES = Path(__file__).parent / "fixtures" / "hostile"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
ASSIGNMENT = "ps1_digitization"
SOURCE = COURSE_DIR / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
MIB = 1024**2
LIMITS = Limits(cell_timeout=5, memory=1536 * MIB, file_size=4 * MIB, output=100_000)
GLUCOSE_ANSWER = b"""
def glucose_mmol(value, unit):
    unit_key = unit.strip().casefold()
    if unit_key == "mmol/l":
        return round(float(value), 2)
    if unit_key == "mg/dl":
        return round(float(value) / 18.016, 2)
    raise ValueError(f"unknown glucose unit: {unit!r}")
"""


class AnswerServer:
    """A TCP server on 127.0.0.1 that sends the glucose answer to each client."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.socket.accept()
            except OSError:
                return
            self.connections += 1
            with client:
                client.sendall(GLUCOSE_ANSWER)

    def close(self) -> None:
        self.socket.close()


@pytest.fixture(scope="module")
def answer_server() -> Iterator[AnswerServer]:
    server = AnswerServer()
    yield server
    server.close()


def snapshot(folder: Path) -> dict[str, str]:
    """Map every file below ``folder`` to the SHA-256 of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def write_hostile(kind: str, release: Path, target: Path, port: int) -> None:
    """Write one hostile submission: answer files first, then the patch."""
    answers_dir = target.parent.parent / f".{kind}-answers"
    answers_dir.mkdir(parents=True)
    answers = {}
    for path in sorted((FIXTURES / kind).glob("*.py")) if kind != "solution" else []:
        text = path.read_text(encoding="utf-8").replace("HOSTILE_PORT", str(port))
        (answers_dir / path.name).write_text(text, encoding="utf-8")
        answers[path.stem] = answers_dir / path.name
    write_submission(DemoSubmission(kind, answers), SOURCE.parent, release, target)

    patch_file = FIXTURES / kind / "patch.json"
    if patch_file.is_file():
        notebook_path = target / f"{ASSIGNMENT}.ipynb"
        notebook = nbformat.read(notebook_path, as_version=4)
        apply_patch(notebook, json.loads(patch_file.read_text(encoding="utf-8")))
        nbformat.write(notebook, notebook_path)


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def apply_patch(notebook, patch: dict) -> None:
    """Edit, delete or copy cells by grade_id, or replace the kernelspec."""
    for name, source in patch.get("edit", {}).items():
        [cell] = [cell for cell in notebook.cells if grade_id(cell) == name]
        cell.source = source
    notebook.cells = [
        cell for cell in notebook.cells if grade_id(cell) not in patch.get("delete", [])
    ]
    for copy_spec in patch.get("duplicate", []):
        original = next(c for c in notebook.cells if grade_id(c) == copy_spec["cell"])
        duplicate = copy.deepcopy(original)
        duplicate["id"] = f"{original.get('id', 'cell')}-copy{len(notebook.cells)}"
        if "source" in copy_spec:
            duplicate.source = copy_spec["source"]
        if "at" in copy_spec:
            notebook.cells.insert(copy_spec["at"], duplicate)
        else:
            anchors = [
                index
                for index, cell in enumerate(notebook.cells)
                if grade_id(cell) == copy_spec["after"]
            ]
            notebook.cells.insert(anchors[-1] + 1, duplicate)
    if "kernel" in patch:
        notebook.metadata["kernelspec"] = patch["kernel"]


@pytest.fixture(scope="module")
def hostile(
    tmp_path_factory: pytest.TempPathFactory, answer_server: AnswerServer
) -> tuple[CohortReport, Path, dict[str, str]]:
    """Grade every hostile submission once, two at a time.

    Returns the report, the build folder and a snapshot of the course folder
    taken before grading.
    """
    folder = tmp_path_factory.mktemp("hostile")
    before = snapshot(COURSE_DIR)
    [release] = release_assignments(ASSIGNMENT, build_dir=folder / "release")
    submitted = folder / "submitted"
    for kind in EXPECTED:
        write_hostile(
            kind, release.directory, submitted / kind / ASSIGNMENT, answer_server.port
        )
    report = grade_cohort(
        ASSIGNMENT,
        submitted,
        build_dir=folder / "build",
        jobs=2,
        progress=False,
        limits=LIMITS,
    )
    return report, folder / "build", before


@pytest.mark.slow
@pytest.mark.notebook
def test_limits_apply_on_this_machine() -> None:
    applied = probe_limits(kernel_settings(LIMITS, []))

    assert applied["memory"] == "applied"
    assert applied["file_size"] == "applied"
    assert applied["network"].startswith("applied")


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_hostile_submission_earns_designed_score(hostile, kind: str) -> None:
    report, _, _ = hostile

    assert report.scores[kind] == EXPECTED[kind]["score"]


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_hostile_submission_problem_kinds(hostile, kind: str) -> None:
    report, _, _ = hostile

    kinds = sorted({p.kind for p in report.problems if p.student == kind})

    assert kinds == sorted(EXPECTED[kind]["problems"])


@pytest.mark.slow
@pytest.mark.notebook
def test_hostile_cohort_has_no_failures(hostile) -> None:
    report, _, _ = hostile

    assert report.failed == {}
    assert report.jobs == 2
    assert report.max_score == 19.0


@pytest.mark.slow
@pytest.mark.notebook
def test_hostile_gradebook_row_counts(hostile) -> None:
    report, _, _ = hostile
    students = len(EXPECTED)

    with sqlite3.connect(report.gradebook) as connection:
        counts = {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("student", "submitted_assignment", "grade", "comment")
        }
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
    connection.close()

    # ps1 has 7 graded cells (6 tests, 1 written answer) and 7 answer cells.
    assert counts == {
        "student": students,
        "submitted_assignment": students,
        "grade": students * 7,
        "comment": students * 7,
    }
    assert integrity == "ok"


@pytest.mark.slow
@pytest.mark.notebook
def test_hostile_gradebook_scores_match_report(hostile) -> None:
    report, _, _ = hostile

    with Gradebook(f"sqlite:///{report.gradebook}", "medkit") as gradebook:
        stored = {
            student: gradebook.find_submission(ASSIGNMENT, student).score
            for student in EXPECTED
        }
        manual = [
            grade.manual_score
            for student in EXPECTED
            for notebook in gradebook.find_submission(ASSIGNMENT, student).notebooks
            for grade in notebook.grades
        ]

    assert stored == report.scores
    assert set(manual) == {None}


@pytest.mark.slow
@pytest.mark.notebook
def test_hostile_network_server_never_reached(hostile, answer_server) -> None:
    assert answer_server.connections == 0


@pytest.mark.slow
@pytest.mark.notebook
def test_hostile_course_folder_unchanged(hostile) -> None:
    _, _, before = hostile

    assert snapshot(COURSE_DIR) == before


@pytest.mark.slow
@pytest.mark.notebook
def test_hostile_grades_csv_rows(hostile) -> None:
    report, _, _ = hostile

    lines = report.grades_csv.read_text(encoding="utf-8").splitlines()

    assert lines[0] == (
        "student,score,max_score,test_read_raw,test_to_missing,test_normalise_sex,"
        "test_parse_date,test_glucose_mmol,test_split_valid,answer_naive_cleaning"
    )
    assert "os_exit,7,19,2,2,3,0,0,0," in lines
    assert "read_source,2,19,2,0,0,0,0,0," in lines
    assert len(lines) == len(EXPECTED) + 1


@pytest.mark.slow
@pytest.mark.notebook
def test_hostile_feedback_never_shows_hidden_tests(hostile) -> None:
    report, _, _ = hostile
    source = nbformat.read(SOURCE, as_version=4)
    # Lines such as "pass" or "else:" do not show what a test checks.
    hidden = [
        line
        for cell in source.cells
        for line in hidden_test_lines(cell.source)
        if len(line) >= 10
    ]
    pages = sorted(report.feedback_dir.glob(f"*/{ASSIGNMENT}.html"))

    assert len(pages) == len(EXPECTED)
    assert len(hidden) == 39
    for page in pages:
        text = html.unescape(page.read_text(encoding="utf-8"))
        shown = [line for line in hidden if line in text]
        assert shown == [], page.parent.name


@pytest.mark.slow
@pytest.mark.notebook
def test_hostile_feedback_explains_limits(hostile) -> None:
    report, _, _ = hostile
    page = report.feedback_dir / "os_exit" / f"{ASSIGNMENT}.html"

    text = html.unescape(page.read_text(encoding="utf-8"))

    assert "7 of 19 points" in text
    assert "Checks ISO, day-first and Chinese dates" in text
    assert "The kernel stopped while this cell ran (exit status 3)" in text
    assert "did not run, because the kernel stopped in cell 'test_parse_date'" in text


@pytest.mark.slow
@pytest.mark.notebook
def test_hostile_feedback_solution_passes_every_test(hostile) -> None:
    report, _, _ = hostile
    page = report.feedback_dir / "solution" / f"{ASSIGNMENT}.html"

    text = html.unescape(page.read_text(encoding="utf-8"))

    assert text.count("Passed") == 6
    assert "Failed" not in text
    assert "Checks that IDs keep their leading zeros" in text
    assert "Graded by hand: waiting for a grader." in text


@pytest.mark.slow
@pytest.mark.notebook
def test_hostile_autograded_copies_restored(hostile) -> None:
    _, build, _ = hostile
    autograded = build / "nbgrader" / "autograded"

    deleted = nbformat.read(
        autograded / "deleted_test" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4
    )
    ids = [grade_id(cell) for cell in deleted.cells]

    assert ids.count("test_split_valid") == 1
    assert ids.index("test_split_valid") == ids.index("split_valid") + 1


@pytest.mark.slow
@pytest.mark.notebook
def test_hostile_submissions_folder_unchanged(hostile) -> None:
    report, build, _ = hostile
    submitted = build.parent / "submitted" / "edited_test" / ASSIGNMENT

    notebook = nbformat.read(submitted / f"{ASSIGNMENT}.ipynb", as_version=4)
    [test] = [c for c in notebook.cells if grade_id(c) == "test_normalise_sex"]

    assert test.source.endswith("\npass")


# The sandbox's in-kernel guards, tested in this process -------------------------


@pytest.fixture
def guard_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Make a working folder, a protected course and a folder outside both."""
    folders = {name: tmp_path / name for name in ("work", "course", "elsewhere")}
    for folder in folders.values():
        folder.mkdir()
    (folders["course"] / "solution.ipynb").write_text("{}", encoding="utf-8")
    (folders["elsewhere"] / "copy.ipynb").write_text("{}", encoding="utf-8")
    monkeypatch.chdir(folders["work"])
    return folders


def make_guard(folders: dict[str, Path], report=None, readable=True) -> _FileGuard:
    return _FileGuard(
        protected=[str(folders["course"])],
        writable=[str(folders["work"])],
        readable=[str(folders["work"])] if readable else None,
        allow_processes=False,
        report=report,
    )


def test_file_guard_allows_working_folder(guard_folders) -> None:
    guard = make_guard(guard_folders)

    guard("open", (str(guard_folders["work"] / "data.csv"), "w", 0))
    guard("open", ("notes.txt", "r", 0))
    guard("os.listdir", (".",))


@pytest.mark.parametrize(
    "event, args",
    [
        pytest.param("open", ("../course/solution.ipynb", "r", 0), id="read-relative"),
        pytest.param(
            "open", ("{course}/solution.ipynb", None, os.O_RDONLY), id="os-open"
        ),
        pytest.param("open", ("{elsewhere}/copy.ipynb", "r", 0), id="not-readable"),
        pytest.param("sqlite3.connect", ("{course}/gradebook.db",), id="sqlite"),
        pytest.param("os.listdir", ("{course}",), id="listdir"),
        pytest.param("os.remove", ("{course}/solution.ipynb",), id="remove"),
    ],
)
def test_file_guard_rejects_course_access(guard_folders, event: str, args) -> None:
    guard = make_guard(guard_folders)
    args = tuple(a.format(**guard_folders) if isinstance(a, str) else a for a in args)

    with pytest.raises(PermissionError, match="is not allowed while grading"):
        guard(event, args)


def test_file_guard_rejects_write_outside(guard_folders) -> None:
    guard = make_guard(guard_folders, readable=False)
    target = guard_folders["elsewhere"] / "out.txt"

    guard("open", (str(target), "r", 0))
    with pytest.raises(PermissionError, match=r"Writing to .*out\.txt is not allowed"):
        guard("open", (str(target), "a", 0))
    with pytest.raises(PermissionError, match="Writing to"):
        guard("open", (str(target), None, os.O_WRONLY | os.O_CREAT))


def test_file_guard_rejects_symlink_to_course(guard_folders) -> None:
    guard = make_guard(guard_folders)
    link = guard_folders["work"] / "link.ipynb"
    link.symlink_to(guard_folders["course"] / "solution.ipynb")

    with pytest.raises(PermissionError, match="solution.ipynb is not allowed"):
        guard("open", (str(link), "r", 0))


def test_file_guard_rejects_processes_and_reports(guard_folders) -> None:
    report = io.StringIO()
    guard = make_guard(guard_folders, report=report)

    with pytest.raises(PermissionError, match=r"Starting processes is not allowed"):
        guard("subprocess.Popen", ("cat", ["cat"], None, None))
    with pytest.raises(PermissionError):
        guard("open", (str(guard_folders["course"] / "solution.ipynb"), "r", 0))

    lines = [json.loads(line) for line in report.getvalue().splitlines()]
    assert lines == [
        {"event": "subprocess.Popen", "path": ""},
        {"event": "read", "path": str(guard_folders["course"] / "solution.ipynb")},
    ]


def test_kernel_state_restores_builtins_and_helpers() -> None:
    original_sorted = builtins.sorted
    state = _KernelState(dict(vars(builtins)))
    namespace = {"check": print, "list": lambda values: [0, 1]}
    state.keep(namespace, ["check", "RAW"])
    namespace["check"] = lambda *args: None
    builtins.sorted = lambda values: [3, 5]
    try:
        state.restore(namespace, ["check", "list", "sorted", "len", "display"])
        restored = builtins.sorted
    finally:
        builtins.sorted = original_sorted

    assert restored is original_sorted
    assert namespace == {"check": print}
    assert state.helpers == {"check": print}


def test_output_budget_raises_past_limit() -> None:
    budget = _OutputBudget(10)
    first = {"msg_id": "a"}

    budget.spend(first, 6)
    budget.spend({"msg_id": "b"}, 9)
    with pytest.raises(OutputLimitExceeded, match="more than 10 characters"):
        budget.spend({"msg_id": "b"}, 2)
