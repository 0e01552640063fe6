"""Run the lesson notebooks in order with papermill and render them as HTML.

Lessons are the notebooks named ``NN_*.ipynb`` in ``notebooks/``. Each must have
exactly one cell tagged ``parameters`` that declares ``quick``, so that a quick
run (``quick=True``) can shrink every lesson for testing.

Examples
--------
>>> from medkit.course.lessons import run_lessons
>>> results = run_lessons(quick=True)  # doctest: +SKIP
>>> [(r.name, round(r.seconds)) for r in results]  # doctest: +SKIP
[('00_welcome', 4), ('01_digitization', 11)]
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import papermill
from nbclient.exceptions import DeadKernelError
from nbconvert import HTMLExporter
from papermill.exceptions import PapermillExecutionError
from papermill.translators import PythonTranslator
from tqdm.auto import tqdm

from medkit.course._kernel import KERNEL_NAME, InterpreterKernelManager
from medkit.course._paths import BUILD_DIR, PROJECT_DIR, display_path
from medkit.exceptions import NotebookError

__all__ = [
    "LESSONS_DIR",
    "LessonResult",
    "find_lessons",
    "run_lesson",
    "run_lessons",
    "validate_lesson",
]

logger = logging.getLogger(__name__)

WARNING_PATTERN = re.compile(r"\b\w*Warning: .*")
"""A line that Python's warnings module writes, such as ``FutureWarning: ...``."""

LESSONS_DIR = PROJECT_DIR / "notebooks"
LESSON_PATTERN = "[0-9][0-9]_*.ipynb"
PARAMETERS_TAG = "parameters"
REQUIRED_PARAMETERS = ("quick",)


@dataclass(frozen=True)
class LessonResult:
    """One executed lesson.

    Attributes
    ----------
    name : str
        The notebook's file name without ``.ipynb``, e.g. ``"01_digitization"``.
    source : Path
        The lesson notebook that was run.
    notebook : Path
        The executed notebook, with outputs.
    html : Path or None
        The executed notebook rendered as HTML, or None when not rendered.
    seconds : float
        Wall-clock time of the papermill run, in seconds.
    parameters : dict
        The parameters injected into the notebook.
    """

    name: str
    source: Path
    notebook: Path
    html: Path | None
    seconds: float
    parameters: dict[str, Any] = field(default_factory=dict)


def find_lessons(directory: str | Path | None = None) -> list[Path]:
    """Find the lesson notebooks ``NN_*.ipynb`` in the order they are taught.

    Parameters
    ----------
    directory : str or Path, default=``notebooks/`` of the project
        The folder that contains the lessons.

    Returns
    -------
    list of Path
        The notebooks sorted by name, so ``00_welcome`` comes first.

    Raises
    ------
    NotebookError
        If the folder contains no lesson notebook.
    """
    directory = LESSONS_DIR if directory is None else Path(directory)
    lessons = sorted(directory.glob(LESSON_PATTERN))
    if not lessons:
        raise NotebookError(
            f"No lesson notebooks named {LESSON_PATTERN} found in "
            f"{display_path(directory)}."
        )
    return lessons


def validate_lesson(notebook: str | Path) -> list[str]:
    """Check a lesson's parameters cell and return the parameters it declares.

    Parameters
    ----------
    notebook : str or Path
        The lesson notebook.

    Returns
    -------
    list of str
        The names assigned in the ``parameters`` cell, as papermill inspects them.

    Raises
    ------
    NotebookError
        If the notebook cannot be read, has no cell tagged ``parameters`` or more
        than one, or its parameters cell does not declare ``quick``.
    """
    notebook = Path(notebook)
    shown_path = display_path(notebook)
    try:
        nb = nbformat.read(notebook, as_version=4)
    except (OSError, ValueError) as error:
        raise NotebookError(f"Cannot read lesson {shown_path}: {error}") from error

    tagged = [
        number
        for number, cell in enumerate(nb.cells, start=1)
        if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", [])
    ]
    if not tagged:
        raise NotebookError(
            f"Lesson {shown_path} has no cell tagged '{PARAMETERS_TAG}'; tag the cell "
            f"that sets quick and seed."
        )
    if len(tagged) > 1:
        cells = ", ".join(str(number) for number in tagged)
        raise NotebookError(
            f"Lesson {shown_path} has {len(tagged)} cells tagged '{PARAMETERS_TAG}' "
            f"(cells {cells}); keep the tag on one cell."
        )

    # The kernel is always Python (see run_lesson), so inspect with papermill's
    # Python translator whatever language the notebook metadata records.
    parameters_cell = nb.cells[tagged[0] - 1]
    declared = [
        parameter.name for parameter in PythonTranslator.inspect(parameters_cell)
    ]
    missing = [name for name in REQUIRED_PARAMETERS if name not in declared]
    if missing:
        raise NotebookError(
            f"The parameters cell of lesson {shown_path} does not set "
            f"{_quoted(missing)}; add for example `quick = False` to it."
        )
    return declared


def run_lesson(
    notebook: str | Path,
    output_dir: str | Path | None = None,
    parameters: Mapping[str, Any] | None = None,
    *,
    html: bool = True,
) -> LessonResult:
    """Execute one lesson with papermill and write its outputs.

    The kernel runs in the notebook's folder, as it does in JupyterLab, with the
    Python interpreter that runs medkit.

    Parameters
    ----------
    notebook : str or Path
        The lesson notebook.
    output_dir : str or Path, default=``build/lessons/`` of the project
        Where the executed ``.ipynb`` and the ``.html`` are written.
    parameters : mapping, optional
        Values injected after the ``parameters`` cell, e.g. ``{"quick": True}``.
        Every name must be declared in that cell.
    html : bool, default=True
        Whether to render the executed notebook as HTML too.

    Returns
    -------
    LessonResult
        Paths of the outputs and the run time.

    Raises
    ------
    NotebookError
        If the notebook is invalid (see :func:`validate_lesson`), a parameter is
        not declared by it, a cell fails, or a cell prints a Python warning. A
        warning in a lesson is a bug, because trainees copy what the lesson does.
    """
    notebook = Path(notebook)
    output_dir = BUILD_DIR / "lessons" if output_dir is None else Path(output_dir)
    parameters = dict(parameters or {})

    # papermill only logs "Passed unknown parameter" and runs on; reject instead.
    declared = validate_lesson(notebook)
    unknown = [name for name in parameters if name not in declared]
    if unknown:
        raise NotebookError(
            f"Lesson {display_path(notebook)} does not declare the parameter "
            f"{_quoted(unknown)}; its parameters cell sets {_quoted(declared)}."
        )

    output_dir.mkdir(parents=True, exist_ok=True)
    executed = output_dir / notebook.name
    started = time.perf_counter()
    nb = _execute(notebook, executed, parameters)
    seconds = time.perf_counter() - started
    logger.info("Ran %s in %.1f s; wrote %s", notebook.name, seconds, executed)
    _reject_warnings(notebook, nb, injected=bool(parameters))

    html_path = None
    if html:
        html_path = executed.with_suffix(".html")
        exporter = HTMLExporter()
        exporter.log.addFilter(_drop_alt_text_warning)
        body, _ = exporter.from_notebook_node(nb)
        html_path.write_text(body, encoding="utf-8")
        logger.info("Wrote %s", html_path)

    return LessonResult(
        name=notebook.stem,
        source=notebook,
        notebook=executed,
        html=html_path,
        seconds=seconds,
        parameters=parameters,
    )


def run_lessons(
    directory: str | Path | None = None,
    output_dir: str | Path | None = None,
    *,
    quick: bool = False,
    only: Iterable[str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    html: bool = True,
    progress: bool | None = None,
) -> list[LessonResult]:
    """Validate every lesson, then run them in order.

    Parameters
    ----------
    directory : str or Path, default=``notebooks/`` of the project
        The folder that contains the lessons.
    output_dir : str or Path, default=``build/lessons/`` of the project
        Where executed notebooks and HTML are written.
    quick : bool, default=False
        Inject ``quick = True`` so each lesson runs on small sizes.
    only : iterable of str, optional
        Run just these lessons, named by file stem (``"01_digitization"``), by
        the part after the number (``"digitization"``) or by the number (``"01"``).
    parameters : mapping, optional
        Further values to inject. Each lesson gets the ones its parameters cell
        declares, so a parameter can target one lesson.
    html : bool, default=True
        Whether to render each executed notebook as HTML too.
    progress : bool, optional
        Show a progress bar over the lessons; by default only on a terminal.

    Returns
    -------
    list of LessonResult
        One per lesson run, in order.

    Raises
    ------
    NotebookError
        If a lesson is invalid or fails, ``only`` names no lesson, or a parameter
        is declared by none of the selected lessons.
    """
    lessons = _select(find_lessons(directory), only)
    requested = dict(parameters or {})
    if quick:
        requested["quick"] = True

    # Check every lesson before running any, so a bad last lesson fails fast.
    declared = {lesson: validate_lesson(lesson) for lesson in lessons}
    unused = [
        name
        for name in requested
        if not any(name in names for names in declared.values())
    ]
    if unused:
        raise NotebookError(
            f"No selected lesson declares the parameter {_quoted(unused)}; "
            f"check the name against the lessons' parameters cells."
        )

    results = []
    for lesson in tqdm(lessons, desc="lessons", unit="lesson", disable=_off(progress)):
        own = {
            name: value for name, value in requested.items() if name in declared[lesson]
        }
        results.append(run_lesson(lesson, output_dir, own, html=html))
    return results


def _execute(
    notebook: Path, executed: Path, parameters: dict[str, Any]
) -> nbformat.NotebookNode:
    """Run papermill and turn its failures into NotebookError."""
    shown_path = display_path(notebook)
    try:
        return papermill.execute_notebook(
            str(notebook),
            str(executed),
            parameters=parameters,
            kernel_name=KERNEL_NAME,
            language="python",
            kernel_manager_class=InterpreterKernelManager,
            cwd=str(notebook.parent),
            progress_bar=False,
        )
    except PapermillExecutionError as error:
        number = _source_cell_number(notebook, error.cell_index, bool(parameters))
        first_line = (
            error.source.strip().splitlines()[0] if error.source.strip() else ""
        )
        raise NotebookError(
            f"Lesson {shown_path} failed in cell {number} ({first_line!r}): "
            f"{error.ename}: {error.evalue}. The executed notebook with the "
            f"traceback is {display_path(executed)}."
        ) from error
    except DeadKernelError as error:
        raise NotebookError(
            f"The kernel running lesson {shown_path} died ({error}); the notebook may "
            f"use more memory than this machine has."
        ) from error


def _drop_alt_text_warning(record: logging.LogRecord) -> bool:
    # NOTE: nbconvert 7 has no way to take alt text from a notebook output, so it
    # fills in a generic one and warns once per lesson with a plot.
    return not record.getMessage().startswith("Alternative text is missing")


def _reject_warnings(
    notebook: Path, nb: nbformat.NotebookNode, *, injected: bool
) -> None:
    """Raise NotebookError if any cell wrote a Python warning to stderr."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") != "stream" or output.get("name") != "stderr":
                continue
            match = WARNING_PATTERN.search(output.get("text", ""))
            if match:
                number = _source_cell_number(notebook, index, injected)
                raise NotebookError(
                    f"Lesson {display_path(notebook)} printed a warning in cell "
                    f"{number}: {match.group(0).strip()}. Change the cell so that "
                    "it runs without the warning."
                )


def _source_cell_number(notebook: Path, index: int, injected: bool) -> int:
    """Map a cell index in papermill's output to a 1-based cell in the source."""
    if not injected:
        return index + 1
    nb = nbformat.read(notebook, as_version=4)
    tags = [cell.get("metadata", {}).get("tags", []) for cell in nb.cells]
    parameters_index = next(
        i for i, cell_tags in enumerate(tags) if PARAMETERS_TAG in cell_tags
    )
    # papermill inserts the injected-parameters cell right after the parameters
    # cell; a failure in the injected cell is reported as the parameters cell.
    return index if index > parameters_index else index + 1


def _select(lessons: list[Path], only: Iterable[str] | None) -> list[Path]:
    """Keep the lessons in ``only``, by stem, by name without number or by number."""
    if only is None:
        return lessons
    requested = list(only)
    names = {lesson: {lesson.stem, *lesson.stem.split("_", 1)} for lesson in lessons}
    selected = [lesson for lesson in lessons if names[lesson] & set(requested)]
    known = set().union(*names.values())
    unknown = [name for name in requested if name not in known]
    if unknown:
        available = ", ".join(lesson.stem for lesson in lessons)
        raise NotebookError(
            f"No lesson named {_quoted(unknown)}; the lessons are {available}."
        )
    return selected


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def _off(progress: bool | None) -> bool | None:
    """Translate ``progress`` to tqdm's ``disable``, where None means "not a tty"."""
    return None if progress is None else not progress
