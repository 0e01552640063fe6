"""nbgrader settings for JupyterLab started in the repository root (``make lab``).

The course root is ``assignments/``; its own ``nbgrader_config.py`` contains the
course settings, loaded here so formgrader and the assignment list find them.
"""

from pathlib import Path

c = get_config()  # noqa: F821 (traitlets defines get_config when it loads this file)

project = Path(__file__).resolve().parent
course_root = project / "assignments"
c.CourseDirectory.root = str(course_root)
load_subconfig(str(course_root / "nbgrader_config.py"))  # noqa: F821 (traitlets)

# One person's exchange, so Release, Fetch and Submit work on a laptop. nbgrader's
# default, /srv/nbgrader/exchange, is for a shared server (see deploy/).
# The formgrader only warns, and disables Release and Collect, when the folder is
# missing, so it is made here.
exchange = project / "build" / "exchange"
exchange.mkdir(parents=True, exist_ok=True)
c.Exchange.root = str(exchange)
