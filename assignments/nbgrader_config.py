"""nbgrader settings of the medkit course.

``medkit assignments release`` and ``medkit grade`` load this file and run nbgrader
on a copy of this folder under build/nbgrader/. To use nbgrader by hand, run it
from this folder, for example ``nbgrader generate_assignment ps1_digitization``.
"""

c = get_config()  # noqa: F821 (traitlets defines get_config when it loads this file)

c.CourseDirectory.course_id = "medkit"

# The stubs that replace solutions in the student version.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Seconds one cell may run while autograding before it is interrupted and
# marked as failed. Assignment cells read the shipped datasets, which takes
# seconds, not minutes.
c.Execute.timeout = 120
