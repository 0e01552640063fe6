"""Shared plumbing for running nbgrader inside medkit: config, log and environment."""

from __future__ import annotations

import logging
import os
import sysconfig
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SAWarning
from traitlets.config import Config
from traitlets.config.loader import ConfigFileNotFound, PyFileConfigLoader

from medkit.course._paths import display_path
from medkit.exceptions import GradingError

logger = logging.getLogger("medkit.course.grading")

CONFIG_FILE = "nbgrader_config.py"


class NbgraderLog(logging.LoggerAdapter):
    """Logger for nbgrader: its messages go to medkit's log at DEBUG, errors are kept.

    nbgrader logs an error, often a whole traceback, and then raises an exception
    with a generic message; the kept errors make the message of GradingError.
    """

    def __init__(self) -> None:
        super().__init__(logger, {})
        self.errors: list[str] = []

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = f"{msg} {args}"
        if level >= logging.ERROR:
            self.errors.append(text)
        self.logger.debug("nbgrader: %s", text)

    def summary(self) -> str:
        """Return the last line of the first logged traceback, or the first error."""
        tracebacks = [text for text in self.errors if text.startswith("Traceback")]
        for text in tracebacks + self.errors:
            lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
            if lines:
                return lines[-1]
        return "nbgrader logged no error; run with -vv to see its log."


@contextmanager
def nbgrader_environment() -> Iterator[None]:
    """Prepare the process for nbgrader: PATH, and its SQLAlchemy warnings.

    nbgrader's Gradebook runs the ``alembic`` command by name when it creates a
    database, and a virtual environment used without activation, as in
    ``.venv/bin/medkit``, does not have its scripts folder on PATH.
    """
    original = os.environ.get("PATH")
    scripts = sysconfig.get_path("scripts")
    os.environ["PATH"] = os.pathsep.join([scripts, original] if original else [scripts])
    try:
        with warnings.catch_warnings():
            # NOTE: nbgrader 0.9.6 on SQLAlchemy 2.x warns that objects are "not in
            # session" while it records grades. The stored grades are still
            # complete, which the demo score tests check.
            warnings.filterwarnings("ignore", category=SAWarning, module=r"nbgrader\.")
            yield
    finally:
        if original is None:
            del os.environ["PATH"]
        else:
            os.environ["PATH"] = original


def load_config(course_dir: Path) -> Config:
    """Load the course's ``nbgrader_config.py``, or an empty config without one."""
    if not (course_dir / CONFIG_FILE).is_file():
        return Config()
    try:
        return PyFileConfigLoader(CONFIG_FILE, path=str(course_dir)).load_config()
    except (ConfigFileNotFound, SyntaxError, NameError) as error:
        raise GradingError(
            f"Cannot load {display_path(course_dir / CONFIG_FILE)}: {error}"
        ) from error
