"""Check a submitted notebook before it is graded, and restore locked cells.

nbgrader explains some problems badly or not at all: a deleted test cell silently
scores 0 and waits for manual grading, a call to ``input()`` fails with
``StdinNotImplementedError``, a widget waits forever. :func:`check_notebook`
compares a submission with the released student version, cell by cell through
the nbgrader ``grade_id`` and checksum, reports each problem as a
:class:`Problem`, and returns the notebook with deleted graded cells and edited
locked cells put back as released. nbgrader then replaces test cells with their
full source, hidden tests included, as it always does.
"""

from __future__ import annotations

import ast
import copy
import logging
from dataclasses import dataclass
from functools import cache

from jupyter_client.kernelspec import KernelSpecManager
from nbformat import NotebookNode
from nbgrader import utils as nbgrader_utils

logger = logging.getLogger(__name__)

STDIN_CALLS = {
    "input",
    "getpass",
    "getpass.getpass",
    "sys.stdin.read",
    "sys.stdin.readline",
}
WIDGET_MODULES = {"ipywidgets", "ipywidgets.widgets"}
WIDGET_CALLS = {"interact", "interactive", "interact_manual"}
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@dataclass(frozen=True)
class Problem:
    """One problem found in a submission, before or while it was graded.

    Attributes
    ----------
    student : str
        The student ID.
    notebook : str
        The notebook name without ``.ipynb``.
    cell : str
        The cell's ``grade_id``, ``cell <n>`` (from 1), or ``""`` for the
        notebook as a whole.
    kind : str
        ``deleted``, ``edited``, ``duplicated``, ``stdin``, ``widget``,
        ``builtin``, ``kernel``, ``missing`` or ``unreadable`` before grading;
        the kind of a :class:`medkit.course._sandbox.LimitEvent` during it.
    message : str
        What is wrong and what the grader did about it.
    """

    student: str
    notebook: str
    cell: str
    kind: str
    message: str


def check_notebook(
    student: str,
    name: str,
    submitted: NotebookNode,
    released: NotebookNode,
    source: NotebookNode | None = None,
) -> tuple[NotebookNode, list[Problem]]:
    """Check a submitted notebook against its released version.

    Parameters
    ----------
    student : str
        The student ID, copied into each problem.
    name : str
        The notebook name without ``.ipynb``.
    submitted : NotebookNode
        The notebook as the trainee submitted it. It is not modified.
    released : NotebookNode
        The student version as released, with nbgrader checksums.
    source : NotebookNode, optional
        The instructor version. A locked cell equal to its source version, as
        in a notebook made from the model solution, is not reported as edited.

    Returns
    -------
    notebook : NotebookNode
        A copy of ``submitted`` with deleted graded and locked code cells
        inserted where they were released, and edited locked cells replaced.
    problems : list of Problem
        In the order found: structure, then answers, then the kernel.
    """
    notebook = copy.deepcopy(submitted)
    problems = _Checker(student, name).check(notebook, released, source)
    return notebook, problems


class _Checker:
    def __init__(self, student: str, name: str) -> None:
        self.student = student
        self.name = name
        self.problems: list[Problem] = []

    def add(self, cell: str, kind: str, message: str) -> None:
        self.problems.append(Problem(self.student, self.name, cell, kind, message))

    def check(
        self,
        notebook: NotebookNode,
        released: NotebookNode,
        source: NotebookNode | None,
    ) -> list[Problem]:
        released_cells = {
            _grade_id(cell): cell for cell in released.cells if _grade_id(cell)
        }
        source_checksums = {
            _grade_id(cell): _checksum(cell)
            for cell in (source.cells if source is not None else [])
            if _grade_id(cell)
        }
        last = self._check_duplicates(notebook)
        self._restore_edited(notebook, last, released_cells, source_checksums)
        self._restore_deleted(notebook, last, released)
        self._check_answers(notebook, source if source is not None else released)
        self._check_kernel(notebook, released)
        return self.problems

    def _check_duplicates(self, notebook: NotebookNode) -> dict[str, NotebookNode]:
        """Keep the last copy of each grade_id; return the last cell of each.

        nbgrader also grades the last copy, but it empties the metadata of the
        others and then rejects the notebook as "too old", so the copies are
        handled here: locked ones are removed, answers become ordinary cells.
        """
        cells: dict[str, list[NotebookNode]] = {}
        for cell in notebook.cells:
            if _grade_id(cell) and _is_nbgrader_cell(cell):
                cells.setdefault(_grade_id(cell), []).append(cell)
        for grade_id, copies in cells.items():
            if len(copies) == 1:
                continue
            extra = copies[:-1]
            if nbgrader_utils.is_locked(copies[-1]):
                notebook.cells = [c for c in notebook.cells if not _among(c, extra)]
                fate = "the other copies were removed"
            else:
                for cell in extra:
                    del cell.metadata["nbgrader"]
                fate = "the other copies run as ordinary cells"
            self.add(
                grade_id,
                "duplicated",
                f"The cell '{grade_id}' appears {len(copies)} times; only the last "
                f"copy is graded, and {fate}.",
            )
        return {grade_id: copies[-1] for grade_id, copies in cells.items()}

    def _restore_edited(
        self,
        notebook: NotebookNode,
        last: dict[str, NotebookNode],
        released_cells: dict[str, NotebookNode],
        source_checksums: dict[str, str | None],
    ) -> None:
        for grade_id, cell in last.items():
            original = released_cells.get(grade_id)
            if original is None or not nbgrader_utils.is_locked(original):
                continue
            checksum = _checksum(cell)
            if checksum in (_checksum(original), source_checksums.get(grade_id)):
                continue
            what = "test cell" if nbgrader_utils.is_grade(original) else "locked cell"
            self.add(
                grade_id,
                "edited",
                f"The {what} '{grade_id}' was changed; it was graded as released.",
            )
            index = _index_of(notebook, cell)
            notebook.cells[index] = copy.deepcopy(original)
            last[grade_id] = notebook.cells[index]

    def _restore_deleted(
        self,
        notebook: NotebookNode,
        last: dict[str, NotebookNode],
        released: NotebookNode,
    ) -> None:
        insert_at = 0
        for original in released.cells:
            grade_id = _grade_id(original)
            if not grade_id:
                continue
            if grade_id in last:
                insert_at = _index_of(notebook, last[grade_id]) + 1
                continue
            graded = nbgrader_utils.is_grade(original)
            if not graded and not (
                nbgrader_utils.is_locked(original) and original.cell_type == "code"
            ):
                continue
            restored = copy.deepcopy(original)
            notebook.cells.insert(insert_at, restored)
            last[grade_id] = restored
            insert_at += 1
            what = "graded cell" if graded else "locked cell"
            self.add(
                grade_id,
                "deleted",
                f"The {what} '{grade_id}' was deleted; it was put back as released "
                "and graded.",
            )

    def _check_answers(self, notebook: NotebookNode, tests: NotebookNode) -> None:
        test_names = set()
        for cell in tests.cells:
            if cell.cell_type == "code" and nbgrader_utils.is_grade(cell):
                test_names |= _names(cell.source)
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code" or nbgrader_utils.is_locked(cell):
                continue
            name = _grade_id(cell) or f"cell {index + 1}"
            calls, bound, imports = _inspect(cell.source)
            stdin = sorted(calls & STDIN_CALLS)
            if stdin:
                self.add(
                    name,
                    "stdin",
                    f"The cell calls {stdin[0]}(), which fails while grading "
                    "because there is no keyboard; remove it.",
                )
            called = {dotted.rsplit(".", 1)[-1] for dotted in calls}
            uses_widgets = bool(imports & WIDGET_MODULES or called & WIDGET_CALLS)
            if uses_widgets or any(
                WIDGET_MIME in output.get("data", {})
                for output in cell.get("outputs", [])
            ):
                self.add(
                    name,
                    "widget",
                    "The cell uses a widget, which nobody can operate while grading; "
                    "a cell that waits for it runs into the time limit.",
                )
            shadowed = sorted(bound & test_names & _builtin_names())
            if shadowed:
                self.add(
                    name,
                    "builtin",
                    f"The cell redefines {', '.join(shadowed)}, which the tests use; "
                    "the tests ran with the built-in versions.",
                )

    def _check_kernel(self, notebook: NotebookNode, released: NotebookNode) -> None:
        wanted = notebook.metadata.get("kernelspec", {}).get("name")
        expected = released.metadata.get("kernelspec", {}).get("name", "python3")
        if wanted is None or wanted in installed_kernels():
            return
        self.add(
            "",
            "kernel",
            f"The notebook asks for the kernel '{wanted}', which is not installed; "
            f"it was graded with the assignment's kernel '{expected}'.",
        )


def _grade_id(cell: NotebookNode) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _is_nbgrader_cell(cell: NotebookNode) -> bool:
    return (
        nbgrader_utils.is_grade(cell)
        or nbgrader_utils.is_solution(cell)
        or nbgrader_utils.is_locked(cell)
    )


def _checksum(cell: NotebookNode) -> str | None:
    try:
        return nbgrader_utils.compute_checksum(cell)
    except (KeyError, TypeError, ValueError):
        return None


def _among(cell: NotebookNode, cells: list[NotebookNode]) -> bool:
    return any(cell is other for other in cells)


def _index_of(notebook: NotebookNode, cell: NotebookNode) -> int:
    return next(index for index, other in enumerate(notebook.cells) if other is cell)


def _names(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def _inspect(source: str) -> tuple[set[str], set[str], set[str]]:
    """Return the dotted names a cell calls, binds at top level, and imports."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set(), set(), set()
    calls, bound, imports = set(), set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            dotted = _dotted(node.func)
            if dotted:
                calls.add(dotted)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            module = getattr(node, "module", None)
            if module:
                imports.add(module)
            for alias in node.names:
                imports.add(alias.name)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    bound.add(target.id)
                elif _dotted(target).startswith("builtins."):
                    bound.add(_dotted(target).split(".", 1)[1])
    return calls, bound, imports


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


@cache
def _builtin_names() -> frozenset[str]:
    import builtins

    return frozenset(name for name in dir(builtins) if not name.startswith("_"))


@cache
def installed_kernels() -> frozenset[str]:
    """Return the names of the Jupyter kernels installed, read once per process."""
    return frozenset(KernelSpecManager().find_kernel_specs())
