"""Many trainees fetch and submit an assignment at once, each as their own account.

Run as root: ``python hub_trainees.py PLAN.json``. The plan is a JSON object::

    {"assignment": "ps1_digitization",
     "environment": {"JUPYTER_CONFIG_PATH": "...", "MEDKIT_HUB_EXCHANGE": "..."},
     "timeout": 120,
     "trainees": [{"username": "t03", "answer": "/path/answer.ipynb",
                   "log": "/path/t03.log"}, ...]}

nbgrader is imported once; then one process per trainee is forked, all at once.
Each drops to the trainee's account and runs ``nbgrader fetch_assignment``,
copies its answer over the fetched notebook and runs ``nbgrader submit``, each
command in a process of its own, as the ``nbgrader`` command would. Forking after
the import keeps 20 trainees from importing nbgrader 40 times on a small
machine. Trainees still running at the timeout are killed. The script prints a
JSON object that maps each user name to ``{"fetch": status, "submit": status}``,
where a status is the exit code of that command, or None if it never finished.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

from nbgrader.apps.nbgraderapp import NbGraderApp


def main(plan_path: str) -> int:
    plan = json.loads(Path(plan_path).read_text(encoding="utf-8"))
    children = {}
    for trainee in plan["trainees"]:
        pid = os.fork()
        if pid == 0:
            _run_trainee(plan, trainee)
        children[pid] = trainee["username"]

    deadline = time.monotonic() + plan["timeout"]
    finished = {}
    while children and time.monotonic() < deadline:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            time.sleep(0.2)
            continue
        finished[children.pop(pid)] = os.waitstatus_to_exitcode(status)
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)

    results = {}
    for trainee in plan["trainees"]:
        result_file = Path(trainee["log"]).with_suffix(".json")
        if result_file.is_file():
            results[trainee["username"]] = json.loads(result_file.read_text())
        else:
            results[trainee["username"]] = {"fetch": None, "submit": None}
    print(json.dumps(results))
    return 0


def _run_trainee(plan: dict, trainee: dict) -> None:
    """Fetch, answer and submit as one trainee; never returns."""
    code = 1
    try:
        log = os.open(trainee["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        result_file = Path(trainee["log"]).with_suffix(".json")
        result = os.open(str(result_file), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        _become(trainee["username"], plan["environment"])

        assignment = plan["assignment"]
        statuses = {"fetch": _nbgrader(["fetch_assignment", assignment])}
        fetched = Path.cwd() / assignment / f"{assignment}.ipynb"
        if statuses["fetch"] == 0 and fetched.is_file():
            shutil.copyfile(trainee["answer"], fetched)
            statuses["submit"] = _nbgrader(["submit", assignment])
        else:
            statuses["submit"] = None
        os.write(result, json.dumps(statuses).encode())
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def _become(username: str, environment: dict[str, str]) -> None:
    """Switch this process to the account, its home folder and a clean environment."""
    entry = pwd.getpwnam(username)
    os.setgroups(os.getgrouplist(username, entry.pw_gid))
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    os.umask(0o022)
    os.environ.clear()
    os.environ.update(
        {
            "HOME": entry.pw_dir,
            "USER": username,
            "LOGNAME": username,
            "LANG": "C.UTF-8",
            "PATH": "/usr/bin:/bin",
            **environment,
        }
    )
    os.chdir(entry.pw_dir)


def _nbgrader(argv: list[str]) -> int:
    """Run one ``nbgrader`` command in a forked process and return its exit code."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            NbGraderApp.launch_instance(argv=argv)
        except SystemExit as error:
            code = error.code if isinstance(error.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
