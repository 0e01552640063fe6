"""JupyterLab and headless Chromium for the browser tests of the course.

:func:`copy_course` writes a temporary copy of the course with ``quick = True``
injected into every lesson. :class:`LabServer` starts JupyterLab on 127.0.0.1 on
that copy, with Jupyter's per-user config, data and runtime folders in a
temporary folder, so the user's own settings are neither read nor written.
:func:`start_chromium` starts the browser that ``lab_page.LabPage`` drives.

Chromium and its driver come from the system (Debian's ``chromium`` and
``chromium-driver`` packages); nothing is downloaded.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service

from medkit.course.lessons import LESSONS_DIR, find_lessons

PROJECT_DIR = LESSONS_DIR.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SKIP_VARIABLE = "MEDKIT_SKIP_BROWSER"
INSTALL_HINT = (
    "Install Chromium and its driver with `apt-get install chromium chromium-driver`, "
    f"or set {SKIP_VARIABLE}=1 to skip the browser tests."
)
WINDOW_WIDTH = 1280
WINDOW_HEIGHT = 1000


class BrowserTestError(RuntimeError):
    """JupyterLab or Chromium failed to start, or a page did not reach a state."""


def find_browser() -> tuple[Path, Path]:
    """Return the Chromium and chromedriver executables.

    Raises
    ------
    BrowserTestError
        If either is missing or not executable.
    """
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            raise BrowserTestError(
                f"{path} is missing or not executable. {INSTALL_HINT}"
            )
    return CHROMIUM, CHROMEDRIVER


def copy_course(destination: Path) -> list[str]:
    """Copy the lessons and the nbgrader course into ``destination``.

    Each lesson gets papermill's ``injected-parameters`` cell with
    ``quick = True`` after its ``parameters`` cell. The root
    ``nbgrader_config.py`` and ``assignments/`` (without the demo submissions)
    are copied as they are, so that ``destination`` is laid out like the
    repository that ``make lab`` serves.

    Returns
    -------
    list of str
        The lesson names, such as ``"00_welcome"``, in teaching order.
    """
    notebooks = destination / "notebooks"
    notebooks.mkdir(parents=True)
    names = []
    for lesson in find_lessons():
        nb = parameterize_notebook(load_notebook_node(str(lesson)), {"quick": True})
        nbformat.write(nb, notebooks / lesson.name)
        names.append(lesson.stem)

    shutil.copy2(PROJECT_DIR / "nbgrader_config.py", destination)
    shutil.copytree(
        PROJECT_DIR / "assignments",
        destination / "assignments",
        ignore=shutil.ignore_patterns("demo", "gradebook.db", ".ipynb_checkpoints"),
    )
    return names


def jupyter_environment(home: Path) -> dict[str, str]:
    """Return the process environment with Jupyter's folders under ``home``.

    The Python prefix keeps its own config (server extensions), kernels and lab
    extensions. Only the per-user folders move.
    """
    folders = {
        "JUPYTER_CONFIG_DIR": home / "config",
        "JUPYTER_DATA_DIR": home / "data",
        "JUPYTER_RUNTIME_DIR": home / "runtime",
        "IPYTHONDIR": home / "ipython",
        "JUPYTERLAB_SETTINGS_DIR": home / "lab" / "user-settings",
        "JUPYTERLAB_WORKSPACES_DIR": home / "lab" / "workspaces",
    }
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    environment = dict(
        os.environ, **{name: str(path) for name, path in folders.items()}
    )
    environment.pop("JUPYTER_PATH", None)
    # nbgrader runs the `alembic` command by name when the formgrader creates the
    # gradebook, so the interpreter's scripts folder must be on PATH.
    scripts = sysconfig.get_path("scripts")
    environment["PATH"] = os.pathsep.join([scripts, environment.get("PATH", "")])
    return environment


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that no socket is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LabServer:
    """JupyterLab serving ``root`` on 127.0.0.1, with token authentication.

    Parameters
    ----------
    root : Path
        The folder served, laid out like the repository (see :func:`copy_course`).
    home : Path
        The folder for Jupyter's config, data and runtime files, the nbgrader
        exchange and the server log.
    """

    root: Path
    home: Path
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(24))
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home / "jupyterlab.log"

    @property
    def exchange(self) -> Path:
        return self.home / "exchange"

    def environment(self) -> dict[str, str]:
        """Return the environment of the server process."""
        return jupyter_environment(self.home)

    def configure(self) -> None:
        """Write the server, lab and nbgrader settings into the private folders."""
        environment = self.environment()
        config = Path(environment["JUPYTER_CONFIG_DIR"])
        settings = Path(environment["JUPYTERLAB_SETTINGS_DIR"])

        # No request leaves the machine: no news feed, no update check and no
        # PyPI extension listing.
        lab_config = {
            "LabApp": {
                "expose_app_in_browser": True,
                "news_url": None,
                "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
                "extension_manager": "readonly",
            }
        }
        (config / "jupyter_server_config.json").write_text(json.dumps(lab_config))

        # nbgrader's default exchange is /srv/nbgrader/exchange, so point it at a
        # private folder.
        self.exchange.mkdir(exist_ok=True)
        (config / "nbgrader_config.py").write_text(
            f"c = get_config()\nc.Exchange.root = {str(self.exchange)!r}\n"
        )

        # Attach every cell to the page, so that widgets below the fold render
        # and a screenshot shows the whole notebook.
        _write_settings(
            settings / "@jupyterlab" / "notebook-extension" / "tracker",
            {"windowingMode": "none", "scrollPastEnd": False},
        )
        # Unless this is set, a toast requests consent to fetch news and covers
        # part of every screenshot.
        _write_settings(
            settings / "@jupyterlab" / "apputils-extension" / "notification",
            {"fetchNews": "false", "checkForUpdates": False},
        )

    def start(self, timeout: float = 60) -> None:
        """Start JupyterLab and wait until its REST API responds.

        Raises
        ------
        BrowserTestError
            If the server exits or does not respond within ``timeout`` seconds.
        """
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.open_browser=False",
            f"--IdentityProvider.token={self.token}",
        ]
        if os.geteuid() == 0:
            command.append("--allow-root")
        with self.log_path.open("wb") as log:
            # The formgrader reads nbgrader_config.py from the working directory.
            # A session of its own lets stop() kill the kernels with the server.
            self.process = subprocess.Popen(
                command,
                cwd=self.root,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrowserTestError(
                    f"JupyterLab exited with code {self.process.returncode} while "
                    f"starting. Its log:\n{self.log()}"
                )
            if self._responds():
                return
            time.sleep(0.25)
        raise BrowserTestError(
            f"JupyterLab did not respond on {self.url} within {timeout:.0f} s. "
            f"Its log:\n{self.log()}"
        )

    def stop(self) -> None:
        """Stop the server, which shuts its kernels down.

        If the server has not exited after 10 s, its whole process group,
        kernels included, is killed.
        """
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log(self) -> str:
        """Return the server's output so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def _responds(self) -> bool:
        request = urllib.request.Request(
            f"{self.url}/api/status",
            headers={"Authorization": f"token {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False


def _write_settings(plugin: Path, values: dict[str, Any]) -> None:
    """Write JupyterLab user settings for one plugin, such as ``.../tracker``."""
    plugin.parent.mkdir(parents=True, exist_ok=True)
    plugin.with_suffix(".jupyterlab-settings").write_text(json.dumps(values))


def start_chromium(profile: Path) -> webdriver.Chrome:
    """Start headless Chromium through chromedriver with a private profile.

    Host names other than 127.0.0.1 do not resolve, so the browser reaches only
    the test server. Fontconfig gets the Noto Sans CJK font that the Python
    package ``noto-cjk-sans-otc`` ships, so Chinese text renders on machines
    without a system CJK font.

    Raises
    ------
    BrowserTestError
        If Chromium or chromedriver is missing or does not start.
    """
    chromium, chromedriver = find_browser()
    profile.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for argument in [
        "--headless=new",
        f"--window-size={WINDOW_WIDTH},{WINDOW_HEIGHT}",
        f"--user-data-dir={profile / 'profile'}",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
    ]:
        options.add_argument(argument)
    environment = dict(os.environ, FONTCONFIG_FILE=str(_fontconfig(profile)))
    service = Service(
        executable_path=str(chromedriver),
        log_output=str(profile / "chromedriver.log"),
        env=environment,
    )
    try:
        return webdriver.Chrome(service=service, options=options)
    except WebDriverException as error:
        raise BrowserTestError(
            f"Chromium did not start through {chromedriver}: {error.msg}. "
            f"{INSTALL_HINT}"
        ) from error


def _fontconfig(folder: Path) -> Path:
    """Write a fontconfig file: the system fonts plus the packaged CJK font."""
    cjk = importlib.resources.files("noto_cjk_sans_otc")
    config = folder / "fonts.conf"
    config.write_text(
        '<?xml version="1.0"?>\n'
        '<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">\n'
        "<fontconfig>\n"
        '  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>\n'
        f"  <dir>{cjk}</dir>\n"
        f"  <cachedir>{folder / 'fontconfig'}</cachedir>\n"
        "</fontconfig>\n",
        encoding="utf-8",
    )
    return config
