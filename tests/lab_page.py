"""Drive JupyterLab in Chromium: run notebooks, inspect them, use nbgrader's pages.

The page talks to JupyterLab through ``window.jupyterapp``, which the server
exposes when ``LabApp.expose_app_in_browser`` is set (see ``browser.LabServer``).
The JavaScript below uses the JupyterLab 4 application API: its command
registry, the notebook panel's session and cell models.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from browser import BrowserTestError, LabServer
from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.by import By

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@dataclass(frozen=True)
class NotebookReport:
    """What a notebook shows after a run, read from its model and its page.

    Attributes
    ----------
    code_cells : int
        Code cells in the notebook.
    unexecuted : list of int
        Code cells (1-based, counting every cell) without an execution count.
    errors : list of str
        Error outputs, as ``"cell N: Name: value"``.
    stderr : list of str
        Outputs rendered as standard error, tracebacks included.
    widget_outputs : int
        Outputs that display a widget view.
    rendered_widgets : int
        Those of them whose page element contains a rendered widget.
    widget_problems : list of str
        Outputs whose text still contains "Loading widget" or "Error displaying
        widget".
    controls : dict of str to int
        Rendered widget elements by ipywidgets CSS class, such as
        ``widget-dropdown``.
    kernel : str
        The kernel status, ``"idle"`` when the run is over.
    """

    code_cells: int
    unexecuted: list[int]
    errors: list[str]
    stderr: list[str]
    widget_outputs: int
    rendered_widgets: int
    widget_problems: list[str]
    controls: dict[str, int]
    kernel: str


@dataclass(frozen=True)
class FormgraderRow:
    """One assignment in the formgrader's Manage Assignments table."""

    name: str
    status: str


class LabPage:
    """One Chromium session on a :class:`browser.LabServer`.

    Parameters
    ----------
    driver : selenium.webdriver.Chrome
        The browser, from :func:`browser.start_chromium`.
    server : LabServer
        The running server.
    """

    def __init__(self, driver: webdriver.Chrome, server: LabServer) -> None:
        self.driver = driver
        self.server = server
        driver.set_script_timeout(120)

    # JupyterLab

    def open_lab(self, timeout: float = 120) -> None:
        """Load JupyterLab and wait until it has restored its layout."""
        self.driver.get(f"{self.server.url}/lab?token={self.server.token}")
        self.wait_for(
            "return Boolean(window.jupyterapp)", bool, "JupyterLab to load", timeout
        )
        self.driver.execute_async_script(
            "const done = arguments[0];"
            "window.jupyterapp.restored.then(() => done(true));"
        )
        self.driver.execute_script(PREPARE_LAB)

    def ensure_lab(self) -> None:
        """Load JupyterLab unless the browser shows it already."""
        if not self.driver.execute_script("return Boolean(window.jupyterapp)"):
            self.open_lab()

    @contextmanager
    def notebook(self, path: str, timeout: float = 120) -> Iterator[None]:
        """Open a notebook and wait for its kernel, then shut both down on exit.

        Parameters
        ----------
        path : str
            The notebook's path below the server root, with ``/`` separators.
        timeout : float, default=120
            Seconds to wait for the kernel to start.
        """
        opened = self.driver.execute_async_script(OPEN_NOTEBOOK, path)
        if "error" in opened:
            raise BrowserTestError(f"JupyterLab did not open {path}: {opened['error']}")
        try:
            self.wait_for(
                KERNEL_STATUS, "idle".__eq__, f"the kernel of {path} to start", timeout
            )
            yield
        finally:
            self.driver.execute_async_script(CLOSE_NOTEBOOK)

    def run_all_cells(self, timeout: float = 180) -> bool:
        """Run Run > Run All Cells in the open notebook and wait until it finishes.

        Returns
        -------
        bool
            JupyterLab's result: False if a cell failed and the run stopped there.
        """
        self.driver.execute_script(RUN_ALL)
        run = self.wait_for(
            "return window.medkitRun",
            lambda run: run["finished"],
            "Run All Cells to finish",
            timeout,
        )
        if run["error"] is not None:
            raise BrowserTestError(f"Run All Cells failed: {run['error']}")
        return bool(run["result"])

    def wait_until_settled(self, timeout: float = 30) -> NotebookReport:
        """Wait until the kernel is idle and every widget output has rendered.

        Returns the report of the last check even if ``timeout`` passes first,
        so that a test can report what did not settle.
        """
        deadline = time.monotonic() + timeout
        while True:
            report = self.inspect()
            settled = (
                report.kernel == "idle"
                and report.rendered_widgets == report.widget_outputs
                and not any("Loading widget" in text for text in report.widget_problems)
            )
            if settled or time.monotonic() > deadline:
                return report
            time.sleep(0.25)

    def inspect(self) -> NotebookReport:
        """Return what the open notebook shows now."""
        report = self.driver.execute_script(INSPECT_NOTEBOOK, WIDGET_MIME)
        return NotebookReport(**report)

    def click_button(self, label: str) -> None:
        """Click the widget button in the open notebook whose text is ``label``."""
        for button in self.driver.find_elements(By.CSS_SELECTOR, ".jupyter-button"):
            if button.text.strip() == label:
                button.click()
                return
        raise BrowserTestError(f"The notebook shows no widget button {label!r}.")

    def save_notebook_screenshot(self, path: Path) -> tuple[int, int]:
        """Save the whole open notebook as one PNG, stitched from scrolled views.

        Returns
        -------
        tuple of int
            The image's width and height in pixels.
        """
        area = self.driver.execute_script(SCROLLER_GEOMETRY)
        left, top = area["left"], area["top"]
        box = (left, top, left + area["width"], top + area["height"])
        image = Image.new("RGB", (area["width"], area["scroll_height"]), "white")
        offset = 0
        while True:
            # The browser stops the last scroll at the bottom, short of offset.
            scroll_top = self.driver.execute_async_script(SCROLL_NOTEBOOK, offset)
            frame = Image.open(io.BytesIO(self.driver.get_screenshot_as_png()))
            image.paste(frame.crop(box), (0, scroll_top))
            if scroll_top + area["height"] >= area["scroll_height"]:
                break
            offset = scroll_top + area["height"]
        self.driver.execute_async_script(SCROLL_NOTEBOOK, 0)

        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        return image.size

    def open_assignment_list(
        self,
        until: Callable[[dict[str, str]], bool] = bool,
        timeout: float = 30,
    ) -> dict[str, str]:
        """Open Nbgrader > Assignment List and return the text of its lists.

        Parameters
        ----------
        until : callable, default=bool
            Called with the lists each time they are read, with none of them
            loading. The lists are returned once it returns True.
        timeout : float, default=30
            Seconds to wait for ``until``.

        Returns
        -------
        dict of str to str
            ``released``, ``fetched`` and ``submitted``: the text of each list;
            ``course``: the course the lists are for.
        """
        self.driver.execute_script(
            "window.jupyterapp.commands.execute('nbgrader:open-assignment-list');"
        )
        return self.wait_for(
            ASSIGNMENT_LIST,
            lambda lists: bool(lists) and until(lists),
            "the assignment list",
            timeout,
        )

    # The formgrader, a page of its own

    def open_formgrader(self, timeout: float = 60) -> list[FormgraderRow]:
        """Load the formgrader's Manage Assignments page and return its rows."""
        self.driver.get(f"{self.server.url}/formgrader?token={self.server.token}")
        self.wait_for(
            "return Boolean(window.models && window.models.loaded)",
            bool,
            "the formgrader's assignment table",
            timeout,
        )
        rows = self.driver.execute_script(FORMGRADER_ROWS)
        return [FormgraderRow(**row) for row in rows]

    def formgrader_warnings(self) -> list[str]:
        """Return the configuration warnings that the formgrader page shows."""
        return self.driver.execute_script(
            "return [...document.querySelectorAll('.alert-warning')]"
            ".filter(node => node.offsetParent !== null)"
            ".map(node => node.innerText.trim());"
        )

    def click_formgrader_action(
        self, assignment: str, action: str, timeout: float = 60
    ) -> str:
        """Click one of an assignment's buttons in the formgrader and confirm.

        Parameters
        ----------
        assignment : str
            The assignment's name, such as ``"ps1_digitization"``.
        action : str
            The class of the button's table cell: ``"assign"`` (Generate) or
            ``"release"`` (Release).
        timeout : float, default=60
            Seconds to wait for the formgrader's response.

        Returns
        -------
        str
            The title and message of the dialog that reports the result, such
            as ``"Success: Successfully released 'ps1_digitization'."``.
        """
        clicked = self.driver.execute_script(
            CLICK_FORMGRADER_ACTION, assignment, action
        )
        if not clicked:
            raise BrowserTestError(
                f"The formgrader shows no {action!r} button for {assignment!r}."
            )
        message = self.wait_for(
            FORMGRADER_DIALOG, bool, f"the result of {action} {assignment}", timeout
        )
        self.driver.execute_script(
            "document.querySelector('.modal.in .modal-footer button').click();"
        )
        self.wait_for(
            "return document.querySelector('.modal') === null",
            bool,
            "the formgrader dialog to close",
            timeout,
        )
        return message

    def wait_for(
        self,
        script: str,
        condition: Callable[[Any], bool],
        description: str,
        timeout: float = 30,
    ) -> Any:
        """Run ``script`` until ``condition`` holds for its value, and return it.

        Raises
        ------
        BrowserTestError
            If ``timeout`` seconds pass first; the message shows the last value.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = self.driver.execute_script(script)
            if condition(value):
                return value
            if time.monotonic() > deadline:
                raise BrowserTestError(
                    f"Timed out after {timeout:.0f} s waiting for {description}. "
                    f"The last check returned {value!r}."
                )
            time.sleep(0.25)


# Opens a notebook, waits for its session and leaves the panel in
# window.medkitPanel. Arguments: path, then the callback.
OPEN_NOTEBOOK = """
const [path, done] = arguments;
const app = window.jupyterapp;
(async () => {
  const panel = await app.commands.execute(
    "docmanager:open", {path, factory: "Notebook"}
  );
  await panel.context.ready;
  await panel.sessionContext.ready;
  app.shell.activateById(panel.id);
  window.medkitPanel = panel;
  return panel.id;
})().then(id => done({id}), error => done({error: String(error)}));
"""

# Hides the side panels and the toolbar shadow, which would repeat on every
# frame of a stitched screenshot.
PREPARE_LAB = """
const app = window.jupyterapp;
app.shell.collapseLeft();
app.shell.collapseRight();
const style = document.createElement("style");
style.textContent = ".jp-Toolbar { box-shadow: none !important; }";
document.head.append(style);
"""

# Shuts the kernel down and disposes of the panel. Disposing closes the panel
# without the dialog that offers to save the changes. Argument: the callback.
CLOSE_NOTEBOOK = """
const done = arguments[0];
const panel = window.medkitPanel;
window.medkitPanel = null;
if (!panel) { done(false); return; }
panel.sessionContext.shutdown().finally(() => { panel.dispose(); done(true); });
"""

KERNEL_STATUS = """
const kernel = window.medkitPanel.sessionContext.session?.kernel;
return kernel ? kernel.status : "no kernel";
"""

# Starts Run All Cells. window.medkitRun records when it finishes.
RUN_ALL = """
const app = window.jupyterapp;
const run = window.medkitRun = {finished: false, result: null, error: null};
app.shell.activateById(window.medkitPanel.id);
app.commands.execute("notebook:run-all-cells").then(
  result => { run.result = result; run.finished = true; },
  error => { run.error = String(error); run.finished = true; },
);
"""

# Collects what the notebook shows, from its model and its DOM. Argument: the
# widget view MIME type.
INSPECT_NOTEBOOK = """
const widgetMime = arguments[0];
const panel = window.medkitPanel;
const report = {
  code_cells: 0, unexecuted: [], errors: [], stderr: [], widget_outputs: 0,
  rendered_widgets: 0, widget_problems: [], controls: {},
  kernel: panel.sessionContext.session?.kernel?.status ?? "no kernel",
};
panel.content.widgets.forEach((cell, index) => {
  if (cell.model.type !== "code") return;
  const where = `cell ${index + 1}`;
  report.code_cells += 1;
  if (cell.model.executionCount === null) report.unexecuted.push(index + 1);
  for (const output of cell.model.outputs.toJSON()) {
    if (output.output_type === "error") {
      report.errors.push(`${where}: ${output.ename}: ${output.evalue}`);
    }
    if (output.data && widgetMime in output.data) report.widget_outputs += 1;
  }
  // Only the cell's own outputs count, because Output widgets nest output areas.
  const own = ":scope > .jp-OutputArea-child > .jp-OutputArea-output";
  for (const node of cell.outputArea.node.querySelectorAll(own)) {
    if (node.querySelector(":scope > .jupyter-widgets")) report.rendered_widgets += 1;
  }
  for (const node of cell.node.querySelectorAll(".jp-OutputArea-output")) {
    const text = node.innerText;
    if (node.getAttribute("data-mime-type") === "application/vnd.jupyter.stderr") {
      report.stderr.push(`${where}: ${text.slice(0, 500)}`);
    }
    if (/Error displaying widget|Loading widget/.test(text)) {
      report.widget_problems.push(`${where}: ${text.slice(0, 300)}`);
    }
  }
});
const parts = panel.node.querySelectorAll(".jp-OutputArea-output [class*='widget-']");
for (const node of parts) {
  for (const name of node.classList) {
    if (name.startsWith("widget-")) {
      report.controls[name] = (report.controls[name] ?? 0) + 1;
    }
  }
}
return report;
"""

# Returns the notebook's scrolling element and its place on the page.
SCROLLER_GEOMETRY = """
const notebook = window.medkitPanel.content.node;
const scroller = notebook.querySelector(".jp-WindowedPanel-outer") ?? notebook;
const box = scroller.getBoundingClientRect();
return {
  left: Math.round(box.left), top: Math.round(box.top),
  width: scroller.clientWidth, height: scroller.clientHeight,
  scroll_height: scroller.scrollHeight,
};
"""

# Scrolls the notebook and calls back after the next frame is painted.
# Arguments: the scroll offset in CSS pixels, then the callback.
SCROLL_NOTEBOOK = """
const [offset, done] = arguments;
const notebook = window.medkitPanel.content.node;
const scroller = notebook.querySelector(".jp-WindowedPanel-outer") ?? notebook;
scroller.scrollTop = offset;
requestAnimationFrame(() => requestAnimationFrame(() => done(scroller.scrollTop)));
"""

# The lists of nbgrader's Assignment List panel, once none is loading.
ASSIGNMENT_LIST = """
const root = document.getElementById("nbgrader-assignment-list");
if (!root) return null;
const lists = {};
for (const name of ["released", "fetched", "submitted"]) {
  const list = root.querySelector(`#${name}_assignments_list`);
  if (!list || !list.querySelector(".list_loading").hidden) return null;
  lists[name] = list.innerText.trim();
}
lists.course = root.querySelector("#course_list_default").innerText.trim();
return lists;
"""

FORMGRADER_ROWS = """
const rows = [...document.querySelectorAll("#main-table tr")];
return rows.filter(row => row.querySelector(".name")).map(row => ({
  name: row.querySelector(".name").innerText.trim(),
  status: row.querySelector(".status").innerText.trim(),
}));
"""

# Arguments: assignment name, then the cell class of the button.
CLICK_FORMGRADER_ACTION = """
const [assignment, action] = arguments;
for (const row of document.querySelectorAll("#main-table tr")) {
  if (row.querySelector(".name")?.innerText.trim() !== assignment) continue;
  const button = row.querySelector(`td.${action} a`);
  if (!button) return false;
  button.click();
  return true;
}
return false;
"""

# The title and message of the open formgrader dialog, once it is shown.
FORMGRADER_DIALOG = """
const dialog = document.querySelector(".modal.in");
if (!dialog) return null;
const title = dialog.querySelector(".modal-title").innerText.trim();
const message = dialog.querySelector(".modal-body p")?.innerText.trim() ?? "";
const traceback = dialog.querySelector(".panel-danger pre")?.innerText.trim();
return `${title}: ${message}` + (traceback ? `\n${traceback}` : "");
"""
