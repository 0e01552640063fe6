"""Run trainee notebooks under limits: the kernel manager and Execute step.

:class:`SandboxKernelManager` starts each kernel through
:mod:`medkit.course._sandbox_kernel`, which applies the memory, file size and
network limits and the file guard in the kernel process. :class:`SandboxExecute`
is nbgrader's Execute step with what a cohort needs on top:

- a cell that passes the time limit is interrupted, and a kernel that ignores the
  interrupt is stopped;
- a kernel that dies (``os._exit``, a memory kill) fails its cell, and the cells
  after it are marked as not run, so the marks earned before it stand;
- output past the limit is dropped in the kernel and, as a second line of
  defence, in the grader;
- builtins and setup helpers are restored before each test cell;
- every limit a cell hit is recorded as a :class:`LimitEvent`.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import os
import shutil
import site
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import zmq
from jupyter_client.kernelspec import KernelSpec
from jupyter_core.utils import ensure_async, run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader import utils as nbgrader_utils
from nbgrader.preprocessors import Execute
from traitlets import Dict

from medkit.course._kernel import InterpreterKernelManager
from medkit.course._paths import PROJECT_DIR
from medkit.course._sandbox_kernel import KEEP_COMMAND, RESTORE_COMMAND
from medkit.exceptions import GradingSettingError

logger = logging.getLogger(__name__)

GIB = 1024**3
MIB = 1024**2
# A single kernel message larger than this is dropped by the grader's sockets. It
# stays well above the output limit, so it only stops output that bypassed it.
MESSAGE_SIZE_FACTOR = 8
MIN_MESSAGE_SIZE = 64 * MIB
SYSTEM_FOLDERS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/dev")
SYSTEM_FOLDERS += ("/proc", "/sys", "/opt")
HOME_SETTINGS = (".ipython", ".jupyter", ".config", ".cache", ".matplotlib")
HOME_SETTINGS += (".local/share/jupyter/kernels", ".local/share/jupyter/nbextensions")
# Thread pools of numerical libraries in the kernel: one thread each, because the
# cohort is graded by several processes side by side.
SINGLE_THREAD_ENV = {
    name: "1"
    for name in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
    )
}
# Error names in cell outputs and the limit each shows.
ERROR_KINDS = {
    "CellTimeoutError": "timeout",
    "OutputLimitExceeded": "output",
    "MemoryError": "memory",
    "StdinNotImplementedError": "stdin",
}


@dataclass(frozen=True)
class Limits:
    """Limits on each trainee notebook while it is graded.

    Attributes
    ----------
    cell_timeout : int or None, default=None
        Seconds one cell may run before it is interrupted and fails. None uses
        ``Execute.timeout`` from the course's ``nbgrader_config.py``.
    memory : int or None, default=2 GiB
        Bytes of address space of the kernel process (``RLIMIT_AS``); an answer
        that allocates more gets a MemoryError. None sets no limit.
    file_size : int or None, default=64 MiB
        Bytes of the largest file the kernel may write (``RLIMIT_FSIZE``).
    output : int or None, default=1_000_000
        Characters of output one cell may print or display; past it the cell
        fails with OutputLimitExceeded.
    network : bool, default=False
        Whether the kernel may open network connections. When False it runs in
        a network namespace of its own, with no usable interface.
    """

    cell_timeout: int | None = None
    memory: int | None = 2 * GIB
    file_size: int | None = 64 * MIB
    output: int | None = 1_000_000
    network: bool = False

    def __post_init__(self) -> None:
        for name in ("cell_timeout", "memory", "file_size", "output"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value <= 0):
                raise GradingSettingError(
                    f"Limits.{name} must be a positive number or None, got {value!r}.",
                    name=name,
                    value=value,
                )


@dataclass(frozen=True)
class LimitEvent:
    """A limit that one cell of a submission hit while it was graded.

    Attributes
    ----------
    notebook : str
        The notebook name without ``.ipynb``.
    cell : str
        The cell's ``grade_id``, or ``cell <n>`` (from 1) for a cell without one.
    kind : str
        ``timeout``, ``output``, ``memory``, ``stdin``, ``kernel_died``,
        ``not_run`` or ``sandbox`` (file access or a process start rejected).
    message : str
        What happened, in a sentence the trainee can read.
    """

    notebook: str
    cell: str
    kind: str
    message: str


def kernel_settings(
    limits: Limits, protected: list[Path], readable: list[Path] | None = None
) -> dict[str, Any]:
    """Return the settings that :mod:`medkit.course._sandbox_kernel` applies.

    Parameters
    ----------
    limits : Limits
        The limits of each kernel.
    protected : list of Path
        Folders and files the kernel may never open.
    readable : list of Path, optional
        When given, the only folders the kernel may read, besides its working
        and temporary folders; see :func:`readable_folders`.
    """
    settings: dict[str, Any] = asdict(limits)
    settings.pop("cell_timeout")
    settings["protected"] = [str(path) for path in protected]
    if readable is not None:
        settings["readable"] = [str(path) for path in readable]
    return settings


def readable_folders() -> list[Path]:
    """Return the folders a trainee's kernel needs to read, and no more.

    These are the Python installation with its packages, the medkit package and
    its datasets, the system folders for libraries, fonts and time zones, and
    the user's IPython, Jupyter and Matplotlib settings. Course folders, build
    folders and other copies of the course fall outside them.
    """
    # The same folder as medkit.datasets.data_dir(), without importing pandas.
    data_dir = Path(os.environ.get("MEDKIT_DATA_DIR") or PROJECT_DIR / "datasets")
    home = Path.home()
    folders = [
        Path(sys.prefix),
        Path(sys.base_prefix),
        Path(sys.exec_prefix),
        *(Path(path) for path in site.getsitepackages()),
        Path(site.getusersitepackages()),
        Path(__file__).resolve().parents[1],
        data_dir,
        *(Path(path) for path in SYSTEM_FOLDERS),
        *(home / name for name in HOME_SETTINGS),
        *(Path(path) for path in os.environ.get("PYTHONPATH", "").split(os.pathsep)),
    ]
    return sorted({folder.resolve() for folder in folders if str(folder) != "."})


def probe_limits(settings: dict[str, Any]) -> dict[str, str]:
    """Apply the kernel limits in a short child process and report each one.

    Returns
    -------
    dict of str to str
        For each limit, ``"applied"`` (or ``"applied in a user namespace"``), or
        the reason it could not be applied on this machine.
    """
    code = (
        "import json, sys\n"
        "from medkit.course._sandbox_kernel import apply_limits\n"
        "print(json.dumps(apply_limits(json.loads(sys.argv[1]))))\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, json.dumps(settings)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return json.loads(done.stdout)
    except (subprocess.SubprocessError, json.JSONDecodeError) as error:
        return {"all limits": f"the probe failed: {error}"}


class SandboxKernelManager(InterpreterKernelManager):
    """Kernel manager that starts ipykernel inside the grading sandbox.

    Each kernel gets a private folder with its Unix sockets, the report of what
    its file guard rejected, and its ``TMPDIR``. The kernel talks over Unix
    sockets because, in a network namespace of its own, it cannot reach the
    grader's loopback interface. The folder is removed with the kernel.
    """

    sandbox = Dict(help="Settings for medkit.course._sandbox_kernel.").tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        self.private_dir = Path(tempfile.mkdtemp(prefix="medkit-kernel-"))
        (self.private_dir / "tmp").mkdir()
        kwargs.setdefault("transport", "ipc")
        # The socket paths must be absolute: the kernel runs in another folder.
        kwargs.setdefault("ip", str(self.private_dir / "kernel"))
        super().__init__(**kwargs)

    @property
    def report_file(self) -> Path:
        """JSON lines of the file accesses the kernel's guard rejected."""
        return self.private_dir / "rejected.jsonl"

    @property
    def kernel_spec(self) -> KernelSpec:
        """The ipykernel spec, started through the sandbox module."""
        if self._kernel_spec is None:
            spec = super().kernel_spec
            settings = {**self.sandbox, "report_file": str(self.report_file)}
            argv = [
                sys.executable,
                "-m",
                "medkit.course._sandbox_kernel",
                json.dumps(settings),
                *spec.argv[spec.argv.index("-f") :],
            ]
            env = {
                **spec.env,
                **SINGLE_THREAD_ENV,
                "TMPDIR": str(self.private_dir / "tmp"),
            }
            self._kernel_spec = KernelSpec(
                resource_dir=spec.resource_dir,
                argv=argv,
                display_name=spec.display_name,
                language=spec.language,
                env=env,
            )
        return self._kernel_spec

    def client(self, **kwargs: Any) -> Any:
        """Return a client whose sockets drop messages far past the output limit."""
        client = super().client(**kwargs)
        output = self.sandbox.get("output")
        if output:
            largest = max(MIN_MESSAGE_SIZE, int(output) * MESSAGE_SIZE_FACTOR)
            client.context.setsockopt(zmq.MAXMSGSIZE, largest)
        return client

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            shutil.rmtree(self.private_dir, ignore_errors=True)

    cleanup_resources = _async_cleanup_resources


class SandboxExecute(Execute):
    """nbgrader's Execute step with the limits described in the module docstring.

    The events of the last notebook run in this process are in
    :func:`take_events`.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("kernel_manager_class", SandboxKernelManager)
        super().__init__(**kwargs)
        self._stopped_at: str | None = None
        self._output_size = 0
        self._interrupted = False
        self._report_offset = 0

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None):
        self._notebook = (resources or {}).get("nbgrader", {}).get("notebook", "")
        self._stopped_at = None
        self._report_offset = 0
        return super().preprocess(nb, resources, km)

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int):
        """Run one cell, restoring test names first and catching a stopped kernel."""
        if cell.cell_type != "code" or not cell.source.strip():
            return super().preprocess_cell(cell, resources, index)
        name = _cell_name(cell, index)
        if self._stopped_at is not None:
            self._fail(
                cell,
                name,
                "not_run",
                "NotRun",
                f"This cell did not run, because the kernel stopped in "
                f"{self._stopped_at}.",
                record=nbgrader_utils.is_grade(cell),
            )
            return cell, self.resources

        self._output_size = 0
        self._interrupted = False
        try:
            is_test = nbgrader_utils.is_grade(cell) and not nbgrader_utils.is_solution(
                cell
            )
            if is_test and not self._command(RESTORE_COMMAND, _used_names(cell.source)):
                self._kill_kernel()
                self._stop(
                    cell,
                    name,
                    "timeout",
                    "CellTimeoutError",
                    "The kernel stopped responding before this cell ran, so it was "
                    "stopped.",
                )
                return cell, self.resources
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self._stop(cell, name, "kernel_died", "KernelDied", _death_message(self))
            return cell, self.resources
        except CellTimeoutError:
            self._kill_kernel()
            self._stop(
                cell,
                name,
                "timeout",
                "CellTimeoutError",
                f"The cell ran past the {self.timeout} s limit and did not stop when "
                "interrupted, so its kernel was stopped.",
            )
            return cell, self.resources

        if self._interrupted:
            self._fail(
                cell,
                name,
                "output",
                "OutputLimitExceeded",
                "The cell wrote far more output than the limit; it was interrupted.",
            )
        else:
            self._record_errors(cell, name)
        self._record_rejections(name)
        if nbgrader_utils.is_locked(cell) and not nbgrader_utils.is_grade(cell):
            try:
                self._command(KEEP_COMMAND, _bound_names(cell.source))
            except DeadKernelError:
                self._stopped_at = f"cell '{name}'"
        return cell, resources

    def output(
        self,
        outs: list[NotebookNode],
        msg: dict[str, Any],
        display_id: str | None,
        cell_index: int,
    ) -> NotebookNode | None:
        """Keep an output unless the cell is far past the output limit."""
        limit = self._output_limit()
        if limit is not None:
            self._output_size += _message_size(msg)
            if self._output_size > limit * 2:
                if not self._interrupted and self.km is not None:
                    self._interrupted = True
                    asyncio.ensure_future(ensure_async(self.km.interrupt_kernel()))
                return None
        return super().output(outs, msg, display_id, cell_index)

    def _output_limit(self) -> int | None:
        if self.km is None:
            return None
        value = getattr(self.km, "sandbox", {}).get("output")
        return None if value is None else int(value)

    def _command(self, command: str, names: list[str]) -> bool:
        """Run a comment-only cell that the sandbox kernel acts on.

        Returns whether the kernel replied within the cell time limit.
        """
        if not names or self.kc is None:
            return True
        msg_id = self.kc.execute(
            f"{command} {' '.join(names)}", silent=False, store_history=False
        )
        return self.wait_for_reply(msg_id) is not None

    def _stop(
        self, cell: NotebookNode, name: str, kind: str, ename: str, message: str
    ) -> None:
        self._fail(cell, name, kind, ename, message)
        self._stopped_at = f"cell '{name}'" if not name.startswith("cell ") else name

    def _fail(
        self,
        cell: NotebookNode,
        name: str,
        kind: str,
        ename: str,
        message: str,
        *,
        record: bool = True,
    ) -> None:
        cell.setdefault("outputs", []).append(
            NotebookNode(
                output_type="error",
                ename=ename,
                evalue=message,
                traceback=[f"{ename}: {message}"],
            )
        )
        if record:
            _EVENTS.append(LimitEvent(self._notebook, name, kind, message))

    def _record_errors(self, cell: NotebookNode, name: str) -> None:
        for output in cell.get("outputs", []):
            if output.get("output_type") != "error":
                continue
            kind = ERROR_KINDS.get(output.get("ename", ""))
            if kind is None and "not allowed while grading" in output.get("evalue", ""):
                kind = "sandbox"
            if kind is not None:
                _EVENTS.append(
                    LimitEvent(self._notebook, name, kind, _error_text(output, kind))
                )
                return

    def _record_rejections(self, name: str) -> None:
        """Record what the kernel's file guard rejected while the cell ran."""
        report = getattr(self.km, "report_file", None)
        if report is None or not report.is_file():
            return
        with report.open(encoding="utf-8") as file:
            file.seek(self._report_offset)
            lines = file.readlines()
            self._report_offset = file.tell()
        rejected: list[str] = []
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            what = entry.get("path") or entry.get("event")
            if isinstance(what, str) and what not in rejected:
                rejected.append(what)
        if rejected:
            shown = ", ".join(rejected[:3]) + (", ..." if len(rejected) > 3 else "")
            message = (
                "The cell tried to open files outside its folder or to start a "
                f"process ({shown}); grading rejected it."
            )
            _EVENTS.append(LimitEvent(self._notebook, name, "sandbox", message))

    def _kill_kernel(self) -> None:
        if self.km is not None:
            try:
                run_sync(self.km.shutdown_kernel)(now=True)
            except RuntimeError as error:
                logger.debug("Stopping an unresponsive kernel failed: %s", error)


_EVENTS: list[LimitEvent] = []


def take_events() -> list[LimitEvent]:
    """Return and forget the limit events recorded in this process."""
    events = list(_EVENTS)
    _EVENTS.clear()
    return events


def _cell_name(cell: NotebookNode, index: int) -> str:
    grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    return grade_id or f"cell {index + 1}"


def _error_text(output: NotebookNode, kind: str) -> str:
    if kind == "timeout":
        return "The cell ran past the time limit and was interrupted."
    if kind == "memory":
        return "The cell ran out of memory under the grading memory limit."
    if kind == "stdin":
        return "The cell called input(), and grading has no keyboard."
    return f"{output.get('ename')}: {output.get('evalue', '')}"


def _death_message(client: SandboxExecute) -> str:
    code = None
    provisioner = getattr(client.km, "provisioner", None)
    process = getattr(provisioner, "process", None)
    if process is not None:
        code = process.poll()
    ending = "" if code is None else f" (exit status {code})"
    return (
        f"The kernel stopped while this cell ran{ending}, for example through "
        "os._exit() or a memory kill."
    )


def _message_size(msg: dict[str, Any]) -> int:
    content = msg.get("content", {})
    size = len(content.get("text", "") or "")
    for value in (content.get("data") or {}).values():
        size += len(value) if isinstance(value, str | bytes) else len(str(value))
    return size + sum(len(line) for line in content.get("traceback", []) or [])


def _used_names(source: str) -> list[str]:
    """Return the names a cell reads, sorted; empty if it is not valid Python."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    return sorted(names)


def _bound_names(source: str) -> list[str]:
    """Return the names a cell binds at its top level: defs, classes, imports."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                names.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names.add(target.id)
    return sorted(names - {"*"})
