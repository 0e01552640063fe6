"""nbgrader settings of an instructor's server: the course root is ``~/course``.

``classroom.py setup`` copies the course there; its own ``nbgrader_config.py``
contains the course settings and is loaded after this file's.
"""

from pathlib import Path

c = get_config()  # noqa: F821 (traitlets defines get_config when it loads this file)

course_root = Path.home() / "course"
c.CourseDirectory.root = str(course_root)
if (course_root / "nbgrader_config.py").is_file():
    load_subconfig(str(course_root / "nbgrader_config.py"))  # noqa: F821 (traitlets)
