"""The kernel side of the grading sandbox: limits applied before IPython starts.

The grading kernel manager runs ``python -m medkit.course._sandbox_kernel SETTINGS
-f CONNECTION_FILE``. This module applies what the operating system allows in the
kernel process, then starts ipykernel in the same process:

- ``RLIMIT_AS`` (memory), ``RLIMIT_FSIZE`` (size of a written file) and no core
  files;
- a new network namespace with only its own loopback interface. A notebook can
  run a server for itself on 127.0.0.1 but reaches no other host, the grader's
  machine included. The kernel talks to its manager over Unix sockets;
- ``PR_SET_PDEATHSIG``, so the kernel dies with the grading process;
- an audit hook (:pep:`578`) that rejects opening the protected paths (course,
  gradebooks, other submissions), writing outside the working and temporary
  folders, and starting processes;
- a per-cell output budget on ``stdout``, ``stderr`` and rich display output.

Inside the kernel, two comment-only cells drive the rest. ``#medkit:keep NAMES``
records the functions, classes and modules that a locked setup cell defined, and
``#medkit:restore NAMES`` puts those and the builtins back before a test cell, so
that an answer that redefines ``len`` or a helper cannot change what a test checks.

NOTE: the audit hook and the restores run in the same process as trainee code.
They stop mistakes and plain attacks; code that calls the C library through
ctypes, or rewrites IPython itself, passes them. The namespaces and resource
limits are enforced by the operating system.

This module imports only the standard library until it starts ipykernel, and it
never logs: its output would land in the kernel's stderr.
"""

from __future__ import annotations

import builtins
import ctypes
import ctypes.util
import fcntl
import json
import os
import resource
import signal
import socket
import struct
import sys
import tempfile
from collections.abc import Callable
from types import ModuleType
from typing import Any

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

KEEP_COMMAND = "#medkit:keep"
RESTORE_COMMAND = "#medkit:restore"

# Names that IPython and ipykernel bind while a cell runs, which a restore leaves alone.
IPYTHON_NAMES = frozenset(
    {"exit", "quit", "get_ipython", "display", "open", "input", "help"}
)
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
PROCESS_EVENTS = frozenset(
    {
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.fork",
        "os.forkpty",
        "pty.spawn",
    }
)
PATH_EVENTS = {
    # Audit event: positions of its path arguments, and whether the event writes.
    "os.listdir": ((0,), False),
    "os.scandir": ((0,), False),
    "os.chdir": ((0,), False),
    "os.remove": ((0,), True),
    "os.rmdir": ((0,), True),
    "os.mkdir": ((0,), True),
    "os.rename": ((0, 1), True),
    "os.link": ((0, 1), True),
    "os.symlink": ((0, 1), True),
    "os.truncate": ((0,), True),
    "os.chmod": ((0,), True),
    "os.chown": ((0,), True),
    "os.utime": ((0,), True),
    "shutil.rmtree": ((0,), True),
    "sqlite3.connect": ((0,), False),
}


class OutputLimitExceeded(BaseException):
    """Raised in a cell that wrote more output than the grading limit allows.

    It derives from BaseException so that ``except Exception`` in an answer does
    not hide it.
    """


def main(argv: list[str]) -> None:
    """Apply the settings in ``argv[0]`` (JSON), then run ipykernel with the rest."""
    settings = json.loads(argv[0])
    apply_limits(settings)

    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(argv[1:])
    _install_in_kernel(app, settings)
    app.start()


def apply_limits(settings: dict[str, Any]) -> dict[str, str]:
    """Apply the operating system limits in ``settings`` to this process.

    Returns
    -------
    dict of str to str
        For each limit, ``"applied"`` or the reason it could not be applied.
    """
    applied = {"parent_death_signal": _set_parent_death_signal()}
    for name, limit in [
        ("memory", resource.RLIMIT_AS),
        ("file_size", resource.RLIMIT_FSIZE),
    ]:
        value = settings.get(name)
        applied[name] = "not set" if value is None else _set_rlimit(limit, int(value))
    _set_rlimit(resource.RLIMIT_CORE, 0)
    # Past RLIMIT_FSIZE a write fails with EFBIG instead of killing the kernel.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if settings.get("network", False):
        applied["network"] = "allowed"
    else:
        applied["network"] = _leave_network()
    return applied


def _set_rlimit(limit: int, value: int) -> str:
    try:
        _, hard = resource.getrlimit(limit)
        if hard != resource.RLIM_INFINITY and value > hard:
            value = hard
        resource.setrlimit(limit, (value, hard))
    except (OSError, ValueError) as error:
        return f"setrlimit failed: {error}"
    return "applied"


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None


def _set_parent_death_signal() -> str:
    libc = _libc()
    if libc is None or not sys.platform.startswith("linux"):
        return "prctl is only available on Linux"
    parent = os.getppid()
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return f"prctl failed: {os.strerror(ctypes.get_errno())}"
    if os.getppid() != parent:
        # The parent ended before the signal was armed.
        os._exit(1)
    return "applied"


def _leave_network() -> str:
    """Move this process into a new network namespace with only a loopback.

    The notebook can still reach servers it starts on 127.0.0.1, which is
    private to the namespace. Every other host, the grader's included, is
    unreachable.
    """
    libc = _libc()
    if libc is None or not sys.platform.startswith("linux"):
        return "network namespaces are only available on Linux"
    if libc.unshare(CLONE_NEWNET) == 0:
        return "applied" + _loopback_up()
    first_error = os.strerror(ctypes.get_errno())

    # Without CAP_SYS_ADMIN, a new user namespace grants it for the new network
    # namespace; the user and group IDs are mapped to themselves.
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        second_error = os.strerror(ctypes.get_errno())
        return f"unshare failed: {first_error}; in a user namespace: {second_error}"
    try:
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    except OSError as error:
        return f"applied in a user namespace without an ID map ({error})"
    return "applied in a user namespace" + _loopback_up()


def _loopback_up() -> str:
    """Bring the namespace's loopback interface up; return a note if that fails."""
    request = struct.pack("16sh", b"lo", 0)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            flags = struct.unpack("16sh", fcntl.ioctl(probe, SIOCGIFFLAGS, request))[1]
            up = struct.pack("16sh", b"lo", flags | IFF_UP)
            fcntl.ioctl(probe, SIOCSIFFLAGS, up)
    except OSError as error:
        return f", but its loopback interface stayed down ({error})"
    return ""


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as file:
        file.write(text)


# In-kernel guards ----------------------------------------------------------------


def _install_in_kernel(app: Any, settings: dict[str, Any]) -> None:
    """Install the guards that need the running IPython shell."""
    shell = app.shell
    state = _KernelState(dict(vars(builtins)))
    shell.events.register("pre_run_cell", state.on_pre_run_cell)
    limit = settings.get("output")
    if limit is not None:
        _limit_output(int(limit))
    writable = [os.getcwd(), tempfile.gettempdir(), os.devnull]
    readable = settings.get("readable")
    report_file = settings.get("report_file")
    guard = _FileGuard(
        protected=settings.get("protected", []),
        writable=writable,
        readable=None if readable is None else [*readable, *writable],
        allow_processes=bool(settings.get("processes", False)),
        report=open(report_file, "a", encoding="utf-8") if report_file else None,
    )
    sys.addaudithook(guard)


class _KernelState:
    """Builtins and helpers recorded at start, restored before each test cell."""

    def __init__(self, builtins_snapshot: dict[str, Any]) -> None:
        self.builtins = builtins_snapshot
        self.helpers: dict[str, Any] = {}

    def on_pre_run_cell(self, info: Any) -> None:
        command, _, rest = (info.raw_cell or "").strip().partition(" ")
        if command not in (KEEP_COMMAND, RESTORE_COMMAND):
            return
        namespace = get_user_namespace()
        names = rest.split()
        if command == KEEP_COMMAND:
            self.keep(namespace, names)
        else:
            self.restore(namespace, names)

    def keep(self, namespace: dict[str, Any], names: list[str]) -> None:
        for name in names:
            value = namespace.get(name)
            if isinstance(value, ModuleType | type) or callable(value):
                self.helpers[name] = value

    def restore(self, namespace: dict[str, Any], names: list[str]) -> None:
        for name in names:
            if name in IPYTHON_NAMES or name.startswith("_"):
                continue
            if name in self.helpers:
                namespace[name] = self.helpers[name]
            elif name in self.builtins:
                original = self.builtins[name]
                if vars(builtins).get(name) is not original:
                    setattr(builtins, name, original)
                if name in namespace and namespace[name] is not original:
                    del namespace[name]


def get_user_namespace() -> dict[str, Any]:
    """Return the running IPython shell's user namespace."""
    from IPython.core.interactiveshell import InteractiveShell

    return InteractiveShell.instance().user_ns


def _limit_output(limit: int) -> None:
    """Raise OutputLimitExceeded in a cell once its output passes ``limit`` chars."""
    from ipykernel.iostream import OutStream
    from ipykernel.zmqshell import ZMQDisplayPublisher

    budget = _OutputBudget(limit)
    write = OutStream.write
    publish = ZMQDisplayPublisher.publish

    def limited_write(self: OutStream, string: str) -> int | None:
        budget.spend(self.parent_header, len(string) if isinstance(string, str) else 0)
        return write(self, string)

    def limited_publish(self: ZMQDisplayPublisher, data: Any, *args, **kwargs) -> None:
        size = sum(
            len(value) for value in (data or {}).values() if hasattr(value, "__len__")
        )
        budget.spend(getattr(self, "parent_header", {}), size)
        return publish(self, data, *args, **kwargs)

    OutStream.write = limited_write
    ZMQDisplayPublisher.publish = limited_publish


class _OutputBudget:
    """Characters of output written so far for the current execute request."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.request: object = None
        self.spent = 0

    def spend(self, parent_header: dict[str, Any] | None, size: int) -> None:
        request = (parent_header or {}).get("msg_id")
        if request != self.request:
            self.request, self.spent = request, 0
        self.spent += size
        if self.spent > self.limit:
            raise OutputLimitExceeded(
                f"the cell wrote more than {self.limit} characters of output; "
                "the rest was dropped"
            )


class _FileGuard:
    """Audit hook that rejects file access and process starts the grader forbids.

    A path below ``protected`` is never opened, except below the working folder.
    With ``readable`` set, only paths below one of those folders are opened at
    all, so that copies of the course elsewhere on the machine stay out of reach.
    Writes go only below ``writable``. Each rejection is also written as one
    JSON line to ``report``, at most ``MAX_REPORTED`` of them.
    """

    MAX_REPORTED = 50

    def __init__(
        self,
        protected: list[str],
        writable: list[str],
        allow_processes: bool,
        readable: list[str] | None = None,
        report: Any = None,
    ) -> None:
        self.protected = [os.path.realpath(path) for path in protected]
        self.writable = [os.path.realpath(path) for path in writable]
        self.readable = (
            None if readable is None else [os.path.realpath(p) for p in readable]
        )
        self.allowed = os.path.realpath(os.getcwd())
        self.allow_processes = allow_processes
        self.report = report
        self.reported = 0
        self.handlers: dict[str, Callable[[tuple], None]] = {"open": self._on_open}
        for event in PATH_EVENTS:
            self.handlers[event] = self._handler_for(event)

    def __call__(self, event: str, args: tuple) -> None:
        handler = self.handlers.get(event)
        if handler is not None:
            handler(args)
        elif event in PROCESS_EVENTS and not self.allow_processes:
            self._reject(
                event, "", f"Starting processes is not allowed while grading ({event})."
            )

    def _handler_for(self, event: str) -> Callable[[tuple], None]:
        positions, writes = PATH_EVENTS[event]

        def handle(args: tuple) -> None:
            for position in positions:
                if position < len(args):
                    self._check(args[position], writes)

        return handle

    def _on_open(self, args: tuple) -> None:
        path, mode, flags = (tuple(args) + (None, None, None))[:3]
        writes = bool(isinstance(flags, int) and flags & WRITE_FLAGS)
        if isinstance(mode, str) and any(letter in mode for letter in "wax+"):
            writes = True
        self._check(path, writes)

    def _check(self, path: object, writes: bool) -> None:
        if isinstance(path, int) or path is None:
            return
        try:
            resolved = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return
        if _inside(resolved, self.allowed):
            return
        if any(_inside(resolved, folder) for folder in self.protected) or (
            self.readable is not None
            and not any(_inside(resolved, folder) for folder in self.readable)
        ):
            self._reject(
                "read", resolved, f"Access to {resolved} is not allowed while grading."
            )
        if writes and not any(_inside(resolved, folder) for folder in self.writable):
            self._reject(
                "write",
                resolved,
                f"Writing to {resolved} is not allowed while grading; write below "
                "the notebook's folder or the temporary folder.",
            )

    def _reject(self, event: str, path: str, message: str) -> None:
        if self.report is not None and self.reported < self.MAX_REPORTED:
            self.reported += 1
            self.report.write(json.dumps({"event": event, "path": path}) + "\n")
            self.report.flush()
        raise PermissionError(message)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


if __name__ == "__main__":
    main(sys.argv[1:])
