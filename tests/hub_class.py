"""A class hub on 127.0.0.1 for the tests: accounts, the hub, its REST APIs.

:class:`ClassHub` runs ``deploy/jupyterhub_config.py`` unchanged, with its
settings in ``MEDKIT_HUB_*`` variables and one addition: a test service whose
token has the scopes to start servers and to issue tokens for users. Everything
it writes lives under one work folder, apart from the Unix accounts and their
home folders, which :func:`remove_test_accounts` deletes.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import websocket

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEPLOY_DIR = PROJECT_DIR / "deploy"
sys.path.insert(0, str(DEPLOY_DIR))

import classroom  # noqa: E402

ENV_BIN = Path(sys.prefix) / "bin"
TEST_ACCOUNT_COMMENT = "medkit hub test account"
"""GECOS comment that marks accounts the tests may delete."""
TEST_SCOPES = ["admin:users", "admin:servers", "tokens", "access:servers"]
"""What the test service may do: start and stop servers, issue user tokens."""
HUB_START_SECONDS = 60
SERVER_START_SECONDS = 120


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shared_environment(folder: Path, username: str) -> Path:
    """Return a Python environment with medkit that the account can run.

    That is this environment when the account can run its interpreter. Otherwise
    the interpreter is in a folder that other users cannot enter, such as a pyenv
    build below /root. Then this function makes a virtual environment of the
    system's Python of the same minor version in ``folder``, with this
    environment's packages and console scripts.
    """
    try:
        check = run_as(username, [sys.executable, "-c", "import medkit"], env={})
    except PermissionError:
        check = None
    if check is not None and check.returncode == 0:
        return Path(sys.prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system_python = Path("/usr/bin") / version
    if not system_python.is_file():
        raise FileNotFoundError(
            f"{username} cannot run {sys.executable}, and {system_python} is missing"
        )
    subprocess.run(
        [str(system_python), "-m", "venv", "--without-pip", str(folder)], check=True
    )
    # This environment's site-packages becomes the new one's, so its .pth files
    # run and every tool that asks site for the package folders finds them.
    site_packages = folder / "lib" / version / "site-packages"
    site_packages.rmdir()
    site_packages.symlink_to(sysconfig.get_paths()["purelib"])

    # Jupyter finds its extensions' settings in etc/ and JupyterLab in share/.
    for name in ("etc", "share"):
        (folder / name).symlink_to(Path(sys.prefix) / name)

    # The console scripts, with this folder's interpreter in their first line.
    shebang = f"#!{ENV_BIN}/python"
    for script in ENV_BIN.iterdir():
        if not script.is_file() or (folder / "bin" / script.name).exists():
            continue
        try:
            first, rest = script.read_text(encoding="utf-8").split("\n", 1)
        except (UnicodeDecodeError, ValueError):
            continue
        if first.startswith(shebang):
            target = folder / "bin" / script.name
            target.write_text(f"#!{folder}/bin/python\n{rest}", encoding="utf-8")
            target.chmod(0o755)
    return folder


def write_roster(path: Path, instructor: str, trainee_names: list[str]) -> Path:
    """Write a roster with one instructor and the trainees."""
    lines = ["username,role", f"{instructor},instructor"]
    lines += [f"{name},trainee" for name in trainee_names]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def foreign_accounts(roster: list[classroom.Member]) -> list[str]:
    """Return the roster's user names that exist and are not test accounts."""
    foreign = []
    for member in roster:
        try:
            entry = pwd.getpwnam(member.username)
        except KeyError:
            continue
        if entry.pw_gecos != TEST_ACCOUNT_COMMENT:
            foreign.append(member.username)
    return foreign


def remove_test_accounts(roster: list[classroom.Member]) -> None:
    """Delete the roster's accounts that carry the test comment, and no other."""
    ours = [
        member for member in roster if member.username not in foreign_accounts(roster)
    ]
    classroom.remove_accounts(ours)


def set_passwords(passwords: dict[str, str]) -> None:
    """Set the accounts' passwords with chpasswd."""
    lines = "".join(f"{user}:{password}\n" for user, password in passwords.items())
    subprocess.run(["chpasswd"], input=lines, text=True, check=True)


def user_processes(usernames: list[str]) -> list[psutil.Process]:
    """Return the running processes owned by any of the accounts."""
    uids = set()
    for name in usernames:
        try:
            uids.add(pwd.getpwnam(name).pw_uid)
        except KeyError:
            continue
    found = []
    for process in psutil.process_iter(["uids"]):
        uids_of = process.info["uids"]
        if uids_of is not None and uids_of.real in uids:
            found.append(process)
    return found


def run_as(
    username: str,
    command: list[str],
    *,
    env: dict[str, str],
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run a command as a Unix account with a clean environment."""
    entry = pwd.getpwnam(username)
    environment = {
        "HOME": entry.pw_dir,
        "USER": username,
        "LOGNAME": username,
        "PATH": f"{ENV_BIN}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        **env,
    }
    return subprocess.run(
        command,
        user=entry.pw_uid,
        group=entry.pw_gid,
        extra_groups=os.getgrouplist(username, entry.pw_gid),
        env=environment,
        cwd=cwd or entry.pw_dir,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class ClassHub:
    """A running hub, reached with the test service's token.

    Attributes
    ----------
    url : str
        The public URL, ``http://127.0.0.1:<port>``.
    process : subprocess.Popen
        The ``jupyterhub`` process.
    log_path : Path
        Where the hub, the proxy and the services write their log.
    token : str
        The test service's API token.
    """

    url: str
    process: subprocess.Popen
    log_path: Path
    token: str

    @classmethod
    def start(cls, workdir: Path, settings: dict[str, str]) -> ClassHub:
        """Start the hub and wait until its REST API responds."""
        port = free_port()
        token = secrets.token_hex(32)
        config = workdir / "jupyterhub_test_config.py"
        config.write_text(
            f"load_subconfig({str(DEPLOY_DIR / 'jupyterhub_config.py')!r})\n"
            "c.JupyterHub.services = [*c.JupyterHub.services, "
            f"{{'name': 'medkit-test', 'api_token': {token!r}}}]\n"
            "c.JupyterHub.load_roles = [*c.JupyterHub.load_roles, "
            f"{{'name': 'medkit-test', 'scopes': {TEST_SCOPES!r}, "
            "'services': ['medkit-test']}]\n",
            encoding="utf-8",
        )
        env = {
            **os.environ,
            "MEDKIT_HUB_BIND_URL": f"http://127.0.0.1:{port}",
            "MEDKIT_HUB_PORT": str(free_port()),
            "MEDKIT_HUB_PROXY_API_PORT": str(free_port()),
            "MEDKIT_HUB_STATE_DIR": str(workdir / "state"),
            **{f"MEDKIT_HUB_{key}": value for key, value in settings.items()},
            "PATH": f"{ENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        }
        log_path = workdir / "jupyterhub.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(ENV_BIN / "jupyterhub"), "-f", str(config)],
                cwd=workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        hub = cls(f"http://127.0.0.1:{port}", process, log_path, token)
        try:
            hub.wait_until_up()
        except BaseException:
            hub.stop()
            raise
        return hub

    def wait_until_up(self) -> None:
        """Wait until the hub's REST API responds; raise if the hub exits first."""
        deadline = time.monotonic() + HUB_START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"The hub exited:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/hub/api/", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"The hub did not answer in time:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        """Return the last lines of the hub's log, for error messages."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 60) -> None:
        """Stop the hub; JupyterHub stops the servers, services and proxy first."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)

    # The hub's REST API --------------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call the hub's REST API as the test service."""
        response = httpx.request(
            method,
            f"{self.url}/hub/api{path}",
            headers={"Authorization": f"token {self.token}"},
            timeout=60,
            **kwargs,
        )
        response.raise_for_status()
        return response

    def user_token(self, username: str) -> str:
        """Issue an API token that acts as the user."""
        response = self.api(
            "POST", f"/users/{username}/tokens", json={"note": "medkit hub test"}
        )
        return response.json()["token"]

    def start_server(self, username: str) -> None:
        """Ask the hub to start the user's server; :meth:`wait_for_server` waits."""
        response = httpx.post(
            f"{self.url}/hub/api/users/{username}/server",
            headers={"Authorization": f"token {self.token}"},
            timeout=60,
        )
        if response.status_code not in (201, 202):
            response.raise_for_status()

    def wait_for_server(self, username: str) -> dict[str, Any]:
        """Wait until the user's server is ready and return its model."""
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline:
            servers = self.api("GET", f"/users/{username}").json()["servers"]
            server = servers.get("")
            if server and server["ready"]:
                return server
            if not server:
                raise RuntimeError(
                    f"The server of {username} stopped while starting:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.5)
        raise RuntimeError(f"The server of {username} did not start in time.")

    def log_in(self, username: str, password: str) -> int:
        """Post the hub's login form; return the status code (302 on success)."""
        with httpx.Client(base_url=self.url, timeout=60) as client:
            client.get("/hub/login").raise_for_status()
            response = client.post(
                "/hub/login",
                data={
                    "username": username,
                    "password": password,
                    "_xsrf": client.cookies.get("_xsrf", ""),
                },
            )
        return response.status_code

    def processes(self) -> list[psutil.Process]:
        """Return the hub process and every process below it."""
        try:
            hub = psutil.Process(self.process.pid)
            return [hub, *hub.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def ready_server(self, username: str) -> UserServer:
        """Wait for the user's server and return it with a token of the user."""
        self.wait_for_server(username)
        return UserServer(self, username, self.user_token(username))

    def server_running(self, username: str) -> bool:
        """Whether the user's server is running or starting."""
        return bool(self.api("GET", f"/users/{username}").json()["servers"])


@dataclass
class UserServer:
    """A user's single-user server, reached through the hub's proxy with their token."""

    hub: ClassHub
    username: str
    token: str

    @property
    def base(self) -> str:
        return f"{self.hub.url}/user/{self.username}"

    def request(
        self, method: str, path: str, *, check: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """Send a request to the server; raise on an error status if ``check``."""
        response = httpx.request(
            method,
            f"{self.base}{path}",
            headers={"Authorization": f"token {self.token}"},
            timeout=kwargs.pop("timeout", 120),
            follow_redirects=False,
            **kwargs,
        )
        if check:
            response.raise_for_status()
        return response

    def assignment_action(self, action: str, course_id: str, assignment: str) -> Any:
        """Call the assignment list extension: ``fetch`` or ``submit``."""
        response = self.request(
            "POST",
            f"/assignments/{action}",
            data={"course_id": course_id, "assignment_id": assignment},
        )
        return response.json()

    def git_pull(self, repo: str, branch: str, targetpath: str) -> list[dict]:
        """Run nbgitpuller's sync API and return its events."""
        events = []
        params = {"repo": repo, "branch": branch, "targetpath": targetpath}
        with httpx.stream(
            "GET",
            f"{self.base}/git-pull/api",
            params=params,
            headers={"Authorization": f"token {self.token}"},
            timeout=120,
        ) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[len("data: ") :]))
        return events

    def execute(self, kernel_id: str, code: str, timeout: float = 300) -> dict:
        """Run code in a kernel over its websocket and return the execute_reply.

        Raises RuntimeError with the traceback when the code raises.
        """
        ws_url = self.base.replace("http://", "ws://", 1)
        connection = websocket.create_connection(
            f"{ws_url}/api/kernels/{kernel_id}/channels",
            header=[f"Authorization: token {self.token}"],
            timeout=timeout,
        )
        try:
            msg_id = uuid.uuid4().hex
            connection.send(json.dumps(_execute_request(msg_id, code)))
            errors = []
            while True:
                message = json.loads(connection.recv())
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if message["msg_type"] == "error":
                    errors.append("\n".join(message["content"]["traceback"]))
                if message["msg_type"] == "execute_reply":
                    if message["content"]["status"] != "ok":
                        raise RuntimeError("\n".join(errors) or str(message["content"]))
                    return message["content"]
        finally:
            connection.close()


def _execute_request(msg_id: str, code: str) -> dict:
    return {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "medkit-test",
            "session": uuid.uuid4().hex,
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "channel": "shell",
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
    }
