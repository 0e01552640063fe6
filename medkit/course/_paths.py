"""Folders of the course checkout, and paths as messages show them."""

from __future__ import annotations

from pathlib import Path

# The repository checkout that contains notebooks/, assignments/ and build/. medkit is
# installed in editable mode (``pip install -e .``), so the package sits inside it.
PROJECT_DIR = Path(__file__).resolve().parents[2]
BUILD_DIR = PROJECT_DIR / "build"


def display_path(path: Path) -> str:
    """Return ``path`` relative to the working directory when it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
