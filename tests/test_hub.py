"""Tests for deploy/: a class on JupyterHub, run on 127.0.0.1 with real accounts.

The module fixture runs one class from start to end and records what happened;
each test then checks one part of the record. The class: an instructor and 22
trainees as Unix accounts (``deploy/classroom.py setup``), the hub from
``deploy/jupyterhub_config.py`` with LocalProcessSpawner, and these steps:

1. the instructor's server releases ps1 to nbgrader's exchange (formgrader API);
2. trainees t01 and t02 fetch it, save an answer and submit it, all through
   their own servers (assignment list API): t01 the model solution, t02 a
   typical mistake;
3. t01 pulls the lessons with nbgitpuller, edits one, receives an instructor's
   update to another, and runs lesson 02 quick in a kernel, whose memory is
   measured;
4. 20 more trainees fetch and submit at once, each as their own account with
   the ``nbgrader`` commands, each submission marked with its trainee's name;
5. the instructor collects with ``nbgrader collect`` and grades with
   ``medkit grade --submissions``;
6. the idle culler stops the servers, the hub is stopped, and no process of
   the hub or the accounts may remain.

It needs root (accounts, setuid), configurable-http-proxy (``.ci/run`` installs
it into ``.venv/node``) and a Python that the accounts may run.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import psutil
import pytest
from hub_class import (
    DEPLOY_DIR,
    PROJECT_DIR,
    TEST_ACCOUNT_COMMENT,
    ClassHub,
    UserServer,
    classroom,
    foreign_accounts,
    remove_test_accounts,
    run_as,
    set_passwords,
    shared_environment,
    user_processes,
    write_roster,
)
from nbgrader.api import Gradebook

from medkit.course.demos import find_demos, write_submission
from medkit.course.grading import COURSE_DIR

ASSIGNMENT = "ps1_digitization"
COURSE_ID = "medkit"
INSTRUCTOR = "medkit-instructor"
SOLUTION_TRAINEE = "medkit-t01"
MISTAKE_TRAINEE = "medkit-t02"
MISTAKE = "month_first"
LOAD_TRAINEES = [f"medkit-t{number:02d}" for number in range(3, 23)]
ALL_TRAINEES = [SOLUTION_TRAINEE, MISTAKE_TRAINEE, *LOAD_TRAINEES]
DEMO_DIR = COURSE_DIR / "demo" / ASSIGNMENT
EXPECTED = json.loads((DEMO_DIR / "expected.json").read_text(encoding="utf-8"))
# The demo submissions, in the order the load trainees take them.
VARIANTS = sorted(EXPECTED)
MEMORY_LIMIT = 1024**3
"""deploy/jupyterhub_config.py's default MEDKIT_HUB_MEM_LIMIT, 1G."""
IDLE_TIMEOUT = 60
"""Seconds of inactivity before the culler stops a server during this test."""
CULL_WAIT_SECONDS = 150
LOAD_TIMEOUT_SECONDS = 150
MARKER_KEY = "medkit_hub_test_marker"
PROXY = Path(sys.prefix) / "node/node_modules/.bin/configurable-http-proxy"


@dataclass
class ClassRecord:
    """What happened during the class; the tests check it."""

    released: dict = field(default_factory=dict)
    hub_submissions: dict[str, dict] = field(default_factory=dict)
    logins: dict[str, int] = field(default_factory=dict)
    trainee_formgrader_status: int | None = None
    access: dict[str, str] = field(default_factory=dict)
    pulls: list[list[dict]] = field(default_factory=list)
    lesson_texts: dict[str, str] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)
    server_mem_limit: str | None = None
    variants: dict[str, str] = field(default_factory=dict)
    markers: dict[str, str] = field(default_factory=dict)
    load_results: dict[str, dict] = field(default_factory=dict)
    collected_markers: dict[str, str | None] = field(default_factory=dict)
    grade_output: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    culled: list[str] = field(default_factory=list)
    servers_after_culling: dict[str, bool] = field(default_factory=dict)
    leftover_processes: list[str] = field(default_factory=list)
    hub_exit_code: int | None = None
    accounts_left: list[str] = field(default_factory=list)


def missing_requirement() -> str | None:
    """Return why the class cannot run on this machine, or None."""
    if os.geteuid() != 0:
        return "needs root to create the test accounts"
    if not PROXY.is_file() and shutil.which("configurable-http-proxy") is None:
        return (
            "configurable-http-proxy is missing; .ci/run installs it into "
            ".venv/node with npm"
        )
    if shutil.which("git") is None:
        return "git is missing; nbgitpuller needs it"
    for folder in PROJECT_DIR.parents:
        if not folder.stat().st_mode & stat.S_IXOTH:
            return (
                f"{folder} is closed to other users, so the test accounts cannot "
                f"reach the checkout; put it where every account can read it"
            )
    return None


@pytest.fixture(scope="module")
def class_record() -> ClassRecord:
    """Run the whole class once and return its record."""
    reason = missing_requirement()
    if reason:
        pytest.skip(reason)

    work = Path(tempfile.mkdtemp(prefix="medkit-hub-"))
    work.chmod(0o755)
    roster_path = write_roster(work / "roster.csv", INSTRUCTOR, [*ALL_TRAINEES])
    roster = classroom.read_roster(roster_path)
    foreign = foreign_accounts(roster)
    if foreign:
        shutil.rmtree(work)
        pytest.skip(f"accounts {', '.join(foreign)} exist and are not test accounts")

    record = ClassRecord()
    usernames = [member.username for member in roster]
    try:
        # Accounts and processes left by an interrupted run.
        _end_leftover_processes(usernames)
        remove_test_accounts(roster)
        run_class(work, roster_path, record)
    finally:
        try:
            _end_leftover_processes(usernames)
            remove_test_accounts(roster)
        finally:
            record.accounts_left = [name for name in usernames if _account_exists(name)]
            shutil.rmtree(work, ignore_errors=True)
    return record


def run_class(work: Path, roster_path: Path, record: ClassRecord) -> None:
    """Set up the class, run the hub through every step and stop it."""
    exchange = work / "exchange"
    course_repo = work / "course.git"
    classroom.setup(
        roster_path,
        exchange,
        COURSE_ID,
        course_repo=course_repo,
        comment=TEST_ACCOUNT_COMMENT,
    )
    password = uuid.uuid4().hex
    set_passwords({MISTAKE_TRAINEE: password})
    environment = shared_environment(work / "env", SOLUTION_TRAINEE)
    settings = {
        "ROSTER": str(roster_path),
        "EXCHANGE": str(exchange),
        "COURSE_ID": COURSE_ID,
        "SPAWNER": "local",
        "USER_ENV": str(environment),
        "IDLE_TIMEOUT": str(IDLE_TIMEOUT),
        "COURSE_REPO": str(course_repo),
    }
    user_env = {
        "MEDKIT_HUB_EXCHANGE": str(exchange),
        "MEDKIT_HUB_COURSE_ID": COURSE_ID,
        "PATH": f"{environment}/bin:/usr/bin:/bin",
    }

    hub = ClassHub.start(work, settings)
    processes = []
    try:
        record.logins = log_in(hub, MISTAKE_TRAINEE, password)
        for username in (INSTRUCTOR, SOLUTION_TRAINEE, MISTAKE_TRAINEE):
            hub.start_server(username)
        # The instructor releases as soon as their server is up, well before the
        # idle culler could stop it.
        instructor = hub.ready_server(INSTRUCTOR)
        release(instructor, record)
        trainees = {
            username: hub.ready_server(username)
            for username in (SOLUTION_TRAINEE, MISTAKE_TRAINEE)
        }
        processes = hub.processes()

        answers = write_answers(work / "answers")
        submit_through_hub(trainees, answers, record)
        check_access(exchange, record)
        pull_lessons(trainees[SOLUTION_TRAINEE], course_repo, user_env, record)
        measure_lesson_memory(trainees[SOLUTION_TRAINEE], record)

        submit_at_once(work, answers, environment, user_env, record)
        collect(user_env, record)
        grade(user_env, record)
        wait_for_culling(hub, [INSTRUCTOR, *trainees], record)
        processes = sorted({*processes, *hub.processes()}, key=lambda p: p.pid)
    finally:
        hub.stop()
        record.hub_exit_code = hub.process.returncode
    record.leftover_processes = describe_alive(
        processes + user_processes([INSTRUCTOR, *ALL_TRAINEES])
    )


# The steps ------------------------------------------------------------------


def log_in(hub: ClassHub, username: str, password: str) -> dict[str, int]:
    """Log in through the hub's login form, with the right and a wrong password."""
    return {
        "right": hub.log_in(username, password),
        "wrong": hub.log_in(username, password + "x"),
    }


def release(instructor: UserServer, record: ClassRecord) -> None:
    """Generate the student version and release it, through formgrader's API."""
    base = f"/formgrader/api/assignment/{ASSIGNMENT}"
    generated = instructor.request("POST", f"{base}/assign").json()
    released = instructor.request("POST", f"{base}/release").json()
    record.released = {"generate": generated, "release": released}


def submit_through_hub(
    servers: dict[str, UserServer], answers: dict[str, Path], record: ClassRecord
) -> None:
    """Two trainees fetch, save an answer and submit, each through their server."""
    for username, variant in (
        (SOLUTION_TRAINEE, "solution"),
        (MISTAKE_TRAINEE, MISTAKE),
    ):
        server = servers[username]
        fetched = server.assignment_action("fetch", COURSE_ID, ASSIGNMENT)
        notebook = marked_answer(answers[variant], username, record, variant)
        server.request(
            "PUT",
            f"/api/contents/{ASSIGNMENT}/{ASSIGNMENT}.ipynb",
            json={"type": "notebook", "format": "json", "content": notebook},
        )
        submitted = server.assignment_action("submit", COURSE_ID, ASSIGNMENT)
        record.hub_submissions[username] = {"fetch": fetched, "submit": submitted}

    trainee = servers[SOLUTION_TRAINEE]
    response = trainee.request("GET", "/formgrader/api/status", check=False)
    record.trainee_formgrader_status = response.status_code


def check_access(exchange: Path, record: ClassRecord) -> None:
    """Try to read each other's submissions and homes, as the accounts themselves."""
    inbound = exchange / COURSE_ID / "inbound"
    own = submission_file(inbound, SOLUTION_TRAINEE)
    other = submission_file(inbound, MISTAKE_TRAINEE)
    attempts = {
        "list inbound": (SOLUTION_TRAINEE, f"os.listdir({str(inbound)!r})"),
        "read own submission": (SOLUTION_TRAINEE, f"open({str(own)!r}).read()"),
        "read other submission": (SOLUTION_TRAINEE, f"open({str(other)!r}).read()"),
        "list other home": (SOLUTION_TRAINEE, f"os.listdir('/home/{MISTAKE_TRAINEE}')"),
        "instructor reads submission": (INSTRUCTOR, f"open({str(other)!r}).read()"),
    }
    for name, (username, statement) in attempts.items():
        code = (
            "import os\n"
            f"try:\n    {statement}\n    print('allowed')\n"
            "except PermissionError:\n    print('denied')\n"
        )
        result = run_as(username, ["/usr/bin/python3", "-c", code], env={})
        record.access[name] = result.stdout.strip() or result.stderr.strip()


def pull_lessons(
    server: UserServer, course_repo: Path, user_env: dict, record: ClassRecord
) -> None:
    """Pull, edit a lesson, let the instructor push an update, pull again."""
    repo = str(course_repo)
    record.pulls.append(server.git_pull(repo, "main", "medkit-course"))

    note = f"My own note {uuid.uuid4().hex}"
    edited = "/api/contents/medkit-course/notebooks/01_digitization.ipynb"
    notebook = server.request("GET", edited).json()["content"]
    notebook["cells"].append(nbformat.v4.new_markdown_cell(note))
    server.request(
        "PUT", edited, json={"type": "notebook", "format": "json", "content": notebook}
    )

    update = f"Lesson update {uuid.uuid4().hex}"
    push_lesson_update(course_repo, update, user_env)
    record.pulls.append(server.git_pull(repo, "main", "medkit-course"))

    for name, path in (
        ("note", edited),
        ("update", edited.replace("01_digitization", "00_welcome")),
    ):
        record.lesson_texts[name] = server.request("GET", path).text
    record.lesson_texts["expected note"] = note
    record.lesson_texts["expected update"] = update


def push_lesson_update(course_repo: Path, text: str, user_env: dict) -> None:
    """The instructor appends a cell to lesson 00 and pushes it."""
    clone = f"/home/{INSTRUCTOR}/lessons"
    lesson = f"{clone}/notebooks/00_welcome.ipynb"
    script = (
        "import nbformat\n"
        f"nb = nbformat.read({lesson!r}, as_version=4)\n"
        f"nb.cells.append(nbformat.v4.new_markdown_cell({text!r}))\n"
        f"nbformat.write(nb, {lesson!r})\n"
    )
    git = ["git", "-c", "user.name=Instructor", "-c", "user.email=instructor@localhost"]
    commands = [
        ["git", "clone", "--quiet", str(course_repo), clone],
        ["python", "-c", script],
        [*git, "-C", clone, "commit", "--quiet", "-am", "Add a note to lesson 00"],
        ["git", "-C", clone, "push", "--quiet", "origin", "HEAD:main"],
    ]
    for command in commands:
        result = run_as(INSTRUCTOR, command, env=user_env)
        assert result.returncode == 0, result.stderr


def measure_lesson_memory(server: UserServer, record: ClassRecord) -> None:
    """Run lesson 02 quick in a kernel of the trainee's server; record the RSS."""
    lesson = "/api/contents/medkit-course/notebooks/02_intelligence.ipynb"
    notebook = nbformat.from_dict(server.request("GET", lesson).json()["content"])
    kernel = server.request("POST", "/api/kernels", json={"name": "python3"}).json()
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        source = cell.source
        if "parameters" in cell.metadata.get("tags", []):
            source += "\nquick = True"
        server.execute(kernel["id"], source)

    for process in user_processes([server.username]):
        command = " ".join(process.cmdline())
        status = _proc_status(process.pid)
        if "jupyterhub-singleuser" in command:
            record.memory["server_rss_mib"] = status["VmRSS"] / 1024
            record.server_mem_limit = process.environ().get("MEM_LIMIT")
        elif "ipykernel_launcher" in command:
            record.memory["kernel_rss_mib"] = status["VmRSS"] / 1024
            record.memory["kernel_peak_mib"] = status["VmHWM"] / 1024
    server.request("DELETE", f"/api/kernels/{kernel['id']}")


def submit_at_once(
    work: Path,
    answers: dict[str, Path],
    environment: Path,
    user_env: dict,
    record: ClassRecord,
) -> None:
    """The load trainees fetch and submit at once, with nbgrader as themselves."""
    plan_trainees = []
    for number, username in enumerate(LOAD_TRAINEES):
        variant = VARIANTS[number % len(VARIANTS)]
        notebook = marked_answer(answers[variant], username, record, variant)
        path = work / "answers" / f"{username}.ipynb"
        nbformat.write(nbformat.from_dict(notebook), path)
        path.chmod(0o644)
        plan_trainees.append(
            {
                "username": username,
                "answer": str(path),
                "log": str(work / f"{username}.log"),
            }
        )
    plan = {
        "assignment": ASSIGNMENT,
        "environment": {**user_env, "JUPYTER_CONFIG_PATH": config_path("trainee")},
        "timeout": LOAD_TIMEOUT_SECONDS,
        "trainees": plan_trainees,
    }
    plan_path = work / "load_plan.json"
    plan_path.write_text(json.dumps(plan), encoding="utf-8")

    result = subprocess.run(
        [
            str(environment / "bin" / "python"),
            str(Path(__file__).parent / "hub_trainees.py"),
            str(plan_path),
        ],
        capture_output=True,
        text=True,
        timeout=LOAD_TIMEOUT_SECONDS + 30,
        check=True,
    )
    record.load_results = json.loads(result.stdout)


def collect(user_env: dict, record: ClassRecord) -> None:
    """The instructor collects every submission with ``nbgrader collect``."""
    env = {**user_env, "JUPYTER_CONFIG_PATH": config_path("instructor")}
    result = run_as(INSTRUCTOR, ["nbgrader", "collect", ASSIGNMENT], env=env)
    assert result.returncode == 0, result.stderr
    submitted = Path(f"/home/{INSTRUCTOR}/course/submitted")
    for student in sorted(path.name for path in submitted.iterdir()):
        notebook = submitted / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        metadata = json.loads(notebook.read_text(encoding="utf-8"))["metadata"]
        record.collected_markers[student] = metadata.get(MARKER_KEY)


def grade(user_env: dict, record: ClassRecord) -> None:
    """The instructor grades the collected folder with ``medkit grade``."""
    home = Path(f"/home/{INSTRUCTOR}")
    command = [
        "medkit", "grade", ASSIGNMENT,
        "--submissions", str(home / "course" / "submitted"),
        "--jobs", "2",
        "--build", str(home / "grading"),
        "--no-feedback",
    ]  # fmt: skip
    env = {**user_env, "JUPYTER_CONFIG_PATH": config_path("instructor")}
    result = run_as(INSTRUCTOR, command, env=env, cwd=home, timeout=600)
    record.grade_output = result.stdout + result.stderr
    assert result.returncode == 0, record.grade_output

    database = home / "grading" / "nbgrader" / "gradebook.db"
    with Gradebook(f"sqlite:///{database}", COURSE_ID) as gradebook:
        for student in record.collected_markers:
            submission = gradebook.find_submission(ASSIGNMENT, student)
            record.scores[student] = submission.score


def wait_for_culling(hub: ClassHub, usernames: list[str], record: ClassRecord) -> None:
    """Wait until the idle culler has stopped every server, within a bound."""
    deadline = time.monotonic() + CULL_WAIT_SECONDS
    while time.monotonic() < deadline:
        if not any(hub.server_running(username) for username in usernames):
            break
        time.sleep(2)
    record.servers_after_culling = {
        username: hub.server_running(username) for username in usernames
    }
    log = hub.log_path.read_text(encoding="utf-8", errors="replace")
    record.culled = sorted(
        username
        for username in usernames
        if re.search(rf"DELETE /hub/api/users/{username}/server \(idle-culler@", log)
    )


# Helpers ----------------------------------------------------------------------


def write_answers(folder: Path) -> dict[str, Path]:
    """Write each demo submission of the assignment as a notebook; return paths."""
    course = Path(f"/home/{INSTRUCTOR}/course")
    source = course / "source" / ASSIGNMENT
    released = course / "release" / ASSIGNMENT
    answers = {}
    for demo in find_demos(DEMO_DIR):
        target = folder / demo.name
        write_submission(demo, source, released, target)
        answers[demo.name] = target / f"{ASSIGNMENT}.ipynb"
    return answers


def marked_answer(path: Path, username: str, record: ClassRecord, variant: str) -> dict:
    """Return the answer notebook with a marker naming its trainee."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    marker = f"{username}:{variant}:{uuid.uuid4().hex}"
    notebook["metadata"][MARKER_KEY] = marker
    record.markers[username] = marker
    record.variants[username] = variant
    return notebook


def submission_file(inbound: Path, username: str) -> Path:
    [folder] = inbound.glob(f"{username}+{ASSIGNMENT}+*")
    return folder / f"{ASSIGNMENT}.ipynb"


def config_path(role: str) -> str:
    return os.pathsep.join(
        [str(DEPLOY_DIR / "jupyter" / role), str(DEPLOY_DIR / "jupyter")]
    )


def describe_alive(processes: list[psutil.Process]) -> list[str]:
    """Describe the processes that still run (zombies count as ended)."""
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{process.pid} {' '.join(process.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            continue
    return alive


def _proc_status(pid: int) -> dict[str, int]:
    """Read the kB figures of /proc/PID/status."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if rest.strip().endswith("kB"):
            values[key] = int(rest.split()[0])
    return values


def _account_exists(username: str) -> bool:
    try:
        pwd.getpwnam(username)
    except KeyError:
        return False
    return True


def _end_leftover_processes(usernames: list[str]) -> None:
    """Kill what the accounts still run, so that they can be deleted."""
    for process in user_processes(usernames):
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(user_processes(usernames), timeout=10)


# The tests --------------------------------------------------------------------


@pytest.mark.slow
def test_hub_release_through_formgrader(class_record: ClassRecord) -> None:
    assert class_record.released["generate"]["success"] is True
    assert class_record.released["release"]["success"] is True


@pytest.mark.slow
@pytest.mark.parametrize("username", [SOLUTION_TRAINEE, MISTAKE_TRAINEE])
def test_hub_trainee_fetches_and_submits_through_server(
    class_record: ClassRecord, username: str
) -> None:
    steps = class_record.hub_submissions[username]
    assert steps["fetch"]["success"] is True
    assert steps["submit"]["success"] is True
    statuses = {item.get("status") for item in steps["submit"]["value"]}
    assert "submitted" in statuses


@pytest.mark.slow
def test_hub_login_checks_password(class_record: ClassRecord) -> None:
    assert class_record.logins["right"] == 302
    assert class_record.logins["wrong"] == 403


@pytest.mark.slow
def test_hub_trainee_server_has_no_formgrader(class_record: ClassRecord) -> None:
    assert class_record.trainee_formgrader_status == 404


@pytest.mark.slow
@pytest.mark.parametrize(
    ("attempt", "outcome"),
    [
        ("list inbound", "denied"),
        ("read other submission", "denied"),
        ("list other home", "denied"),
        ("read own submission", "allowed"),
        ("instructor reads submission", "allowed"),
    ],
)
def test_hub_submission_access(
    class_record: ClassRecord, attempt: str, outcome: str
) -> None:
    assert class_record.access[attempt] == outcome


@pytest.mark.slow
@pytest.mark.parametrize(
    ("username", "variant"),
    [(SOLUTION_TRAINEE, "solution"), (MISTAKE_TRAINEE, MISTAKE)],
)
def test_hub_grade_equals_designed_score(
    class_record: ClassRecord, username: str, variant: str
) -> None:
    assert class_record.scores[username] == EXPECTED[variant]


@pytest.mark.slow
def test_hub_load_every_trainee_submits(class_record: ClassRecord) -> None:
    expected = {username: {"fetch": 0, "submit": 0} for username in LOAD_TRAINEES}
    assert class_record.load_results == expected


@pytest.mark.slow
def test_hub_load_submissions_collected_unmixed(class_record: ClassRecord) -> None:
    assert sorted(class_record.collected_markers) == sorted(ALL_TRAINEES)
    assert class_record.collected_markers == class_record.markers


@pytest.mark.slow
def test_hub_load_grades_follow_answers(class_record: ClassRecord) -> None:
    expected = {
        username: EXPECTED[class_record.variants[username]] for username in ALL_TRAINEES
    }
    assert class_record.scores == expected


@pytest.mark.slow
def test_hub_pull_keeps_edit_and_brings_update(class_record: ClassRecord) -> None:
    assert [events[-1]["phase"] for events in class_record.pulls] == [
        "finished",
        "finished",
    ]
    texts = class_record.lesson_texts
    assert texts["expected note"] in texts["note"]
    assert texts["expected update"] in texts["update"]


@pytest.mark.slow
def test_hub_lesson_fits_memory_limit(class_record: ClassRecord) -> None:
    memory = class_record.memory
    used_mib = memory["server_rss_mib"] + memory["kernel_peak_mib"]
    assert class_record.server_mem_limit == str(MEMORY_LIMIT)
    assert used_mib < MEMORY_LIMIT / 1024**2


@pytest.mark.slow
def test_hub_idle_servers_culled(class_record: ClassRecord) -> None:
    assert class_record.culled == sorted(
        [INSTRUCTOR, SOLUTION_TRAINEE, MISTAKE_TRAINEE]
    )
    assert not any(class_record.servers_after_culling.values())


@pytest.mark.slow
def test_hub_stop_leaves_no_process(class_record: ClassRecord) -> None:
    assert class_record.hub_exit_code == 0
    assert class_record.leftover_processes == []
    assert class_record.accounts_left == []


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_roster_members_in_order(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "roster.csv",
        "username,role",
        "wang.li,instructor",
        "t01,trainee",
        "",
        " t02 , trainee ",
    )
    roster = classroom.read_roster(path)

    assert roster == [
        classroom.Member("wang.li", "instructor"),
        classroom.Member("t01", "trainee"),
        classroom.Member("t02", "trainee"),
    ]
    assert classroom.instructors(roster) == ["wang.li"]
    assert classroom.trainees(roster) == ["t01", "t02"]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        pytest.param(
            ["name,role", "t01,trainee"],
            r"row 1 is 'name,role'; expected the header 'username,role'",
            id="header",
        ),
        pytest.param(
            ["username,role", "a,instructor", "T01,trainee"],
            r"row 3: 'T01' is not a valid account name",
            id="upper-case-name",
        ),
        pytest.param(
            ["username,role", "a,instructor", "t01,student"],
            r"row 3: role 'student' of 't01' is unknown",
            id="role",
        ),
        pytest.param(
            ["username,role", "a,instructor", "t01,trainee", "t01,trainee"],
            r"row 4: 't01' is already in row 3",
            id="duplicate",
        ),
        pytest.param(
            ["username,role", "a,instructor", "t01"],
            r"row 3 has 1 cells; expected username,role",
            id="cells",
        ),
        pytest.param(
            ["username,role", "t01,trainee"],
            r"has no instructor",
            id="no-instructor",
        ),
    ],
)
def test_read_roster_invalid_raises(
    tmp_path: Path, lines: list[str], message: str
) -> None:
    path = write_lines(tmp_path / "roster.csv", *lines)
    with pytest.raises(classroom.ClassroomError, match=message):
        classroom.read_roster(path)


def test_read_roster_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(classroom.ClassroomError, match=r"absent.csv not found"):
        classroom.read_roster(tmp_path / "absent.csv")
