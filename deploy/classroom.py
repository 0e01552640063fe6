"""Set up the Unix accounts, nbgrader exchange and instructor course of a class.

A class on one JupyterHub server runs every single-user server as its own Unix
account, and nbgrader's exchange relies on those accounts' file permissions to
keep trainees' submissions apart. This script prepares them from a roster, a
CSV file with a header ``username,role`` and one row per member, where the role
is ``instructor`` or ``trainee``::

    username,role
    ada,instructor
    t01,trainee

Run it as root, with the Python environment that runs the hub:

``classroom.py setup ROSTER --exchange DIR [--course-repo REPO]``
    creates the missing accounts (home folders mode 0700), the group
    ``medkit-instructors`` of every instructor, the exchange folders, the
    first instructor's nbgrader course in ``~/course`` and, with
    ``--course-repo``, the git repository of the lessons. Running it again only
    repairs modes and adds what is new in the roster.
``classroom.py remove ROSTER --yes``
    deletes the roster's accounts and their home folders, for the end of term.

``jupyterhub_config.py`` reads the same roster to decide who may log in and
who is an instructor.
"""

from __future__ import annotations

import argparse
import csv
import grp
import logging
import os
import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medkit.exceptions import MedkitError

logger = logging.getLogger("medkit.classroom")

DEPLOY_DIR = Path(__file__).resolve().parent
PROJECT_DIR = DEPLOY_DIR.parent
ROLES = ("instructor", "trainee")
INSTRUCTORS_GROUP = "medkit-instructors"
COURSE_FOLDER = "course"
"""The instructor's nbgrader course root, below their home folder."""
COURSE_IGNORED = (
    "__pycache__",
    ".ipynb_checkpoints",
    "release",
    "submitted",
    "autograded",
    "feedback",
    "gradebook.db",
)
# Lower-case account names of at most 32 characters (useradd's limit) that start
# with a letter or '_'; JupyterHub uses such names unchanged.
USERNAME_PATTERN = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")

HOME_MODE = 0o700
# Every user may create entries in the exchange root (nbgrader checks that it is
# writable), and the sticky bit keeps them from removing one another's entries.
EXCHANGE_ROOT_MODE = 0o1777
COURSE_MODE = 0o2755
OUTBOUND_MODE = 0o2755
# Trainees may create submissions in inbound but not list it; the setgid bit
# gives every submission the instructors' group, which may read it.
INBOUND_MODE = 0o2733


class ClassroomError(MedkitError, RuntimeError):
    """A roster, account or folder that the class cannot be set up with."""


@dataclass(frozen=True)
class Member:
    """One row of the roster.

    Attributes
    ----------
    username : str
        The Unix account name, which is also the JupyterHub user name and the
        nbgrader student ID.
    role : str
        ``"instructor"`` or ``"trainee"``.
    """

    username: str
    role: str


def read_roster(path: str | Path) -> list[Member]:
    """Read and check a roster file.

    Parameters
    ----------
    path : str or Path
        A UTF-8 CSV file, with or without a byte order mark, with the header
        ``username,role``.

    Returns
    -------
    list of Member
        In file order.

    Raises
    ------
    ClassroomError
        If the file is missing, its header differs, a user name is not a valid
        account name or appears twice, a role is unknown, or no row is an
        instructor. Rows are counted as a spreadsheet does: the header is row 1.
    """
    path = Path(path)
    if not path.is_file():
        raise ClassroomError(
            f"Roster {path} not found; write a CSV file with the header "
            f"'username,role' and one row per member."
        )
    # utf-8-sig also reads the byte order mark that spreadsheet programs write.
    with path.open(newline="", encoding="utf-8-sig") as file:
        rows = list(csv.reader(file))
    if not rows or [cell.strip() for cell in rows[0]] != ["username", "role"]:
        header = ",".join(rows[0]) if rows else ""
        raise ClassroomError(
            f"Roster {path} row 1 is '{header}'; expected the header 'username,role'."
        )

    members = []
    seen: dict[str, int] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise ClassroomError(
                f"Roster {path} row {number} has {len(row)} cells; expected "
                f"username,role."
            )
        username, role = (cell.strip() for cell in row)
        if not USERNAME_PATTERN.fullmatch(username):
            raise ClassroomError(
                f"Roster {path} row {number}: '{username}' is not a valid account "
                f"name; use at most 32 lower-case letters, digits, '.', '-' and '_', "
                f"starting with a letter or '_'."
            )
        if role not in ROLES:
            raise ClassroomError(
                f"Roster {path} row {number}: role '{role}' of '{username}' is "
                f"unknown; use 'instructor' or 'trainee'."
            )
        if username in seen:
            raise ClassroomError(
                f"Roster {path} row {number}: '{username}' is already in row "
                f"{seen[username]}; list each member once."
            )
        seen[username] = number
        members.append(Member(username, role))

    if not any(member.role == "instructor" for member in members):
        raise ClassroomError(
            f"Roster {path} has no instructor; add a row with the role 'instructor'."
        )
    return members


def instructors(roster: Sequence[Member]) -> list[str]:
    """Return the instructors' user names, in roster order."""
    return [member.username for member in roster if member.role == "instructor"]


def trainees(roster: Sequence[Member]) -> list[str]:
    """Return the trainees' user names, in roster order."""
    return [member.username for member in roster if member.role == "trainee"]


def create_accounts(roster: Sequence[Member], *, comment: str = "") -> list[str]:
    """Create the roster's missing Unix accounts and repair the existing ones.

    Instructors get ``medkit-instructors`` as their primary group; trainees get
    a group of their own. Every home folder is set to mode 0700, because a
    trainee's working copy of an assignment lives there.

    Parameters
    ----------
    roster : sequence of Member
        The members, as returned by :func:`read_roster`.
    comment : str, default=""
        The GECOS comment of the accounts created.

    Returns
    -------
    list of str
        The user names of the accounts created.

    Raises
    ------
    ClassroomError
        If ``useradd``, ``groupadd`` or ``usermod`` fails.
    """
    _require_root()
    if not _group_exists(INSTRUCTORS_GROUP):
        _run(["groupadd", INSTRUCTORS_GROUP])
        logger.info("Created group %s", INSTRUCTORS_GROUP)

    created = []
    for member in roster:
        if _user_exists(member.username):
            if member.role == "instructor":
                add_to_group = ["usermod", "--append", "--groups", INSTRUCTORS_GROUP]
                _run([*add_to_group, member.username])
        else:
            group = (
                ["--gid", INSTRUCTORS_GROUP]
                if member.role == "instructor"
                else ["--user-group"]
            )
            options = ["--create-home", "--shell", "/bin/bash", "--comment", comment]
            _run(["useradd", *options, *group, member.username])
            created.append(member.username)
        os.chmod(pwd.getpwnam(member.username).pw_dir, HOME_MODE)
    logger.info(
        "Created %d accounts; %d already existed",
        len(created),
        len(roster) - len(created),
    )
    return created


def remove_accounts(roster: Sequence[Member]) -> list[str]:
    """Delete the roster's accounts with their home folders and mail spools.

    The group ``medkit-instructors`` is deleted too once no account uses it as
    its primary group.

    Returns
    -------
    list of str
        The user names of the accounts deleted; members without an account are
        skipped.
    """
    _require_root()
    removed = []
    for member in roster:
        if _user_exists(member.username):
            _run(["userdel", "--remove", member.username], allow_codes=(12,))
            removed.append(member.username)
    if _group_exists(INSTRUCTORS_GROUP):
        gid = grp.getgrnam(INSTRUCTORS_GROUP).gr_gid
        if not any(user.pw_gid == gid for user in pwd.getpwall()):
            _run(["groupdel", INSTRUCTORS_GROUP])
    logger.info("Deleted %d accounts", len(removed))
    return removed


def prepare_exchange(root: str | Path, course_id: str, owner: str) -> Path:
    """Create nbgrader's exchange folders for one course, with the modes it needs.

    Parameters
    ----------
    root : str or Path
        The exchange root, nbgrader's ``Exchange.root``.
    course_id : str
        nbgrader's ``CourseDirectory.course_id``.
    owner : str
        The instructor who releases and collects; nbgrader refuses to use
        course folders that the running user does not own.

    Returns
    -------
    Path
        ``root/course_id``.
    """
    _require_root()
    user = pwd.getpwnam(owner)
    gid = grp.getgrnam(INSTRUCTORS_GROUP).gr_gid
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    os.chown(root, 0, 0)
    os.chmod(root, EXCHANGE_ROOT_MODE)

    course = root / course_id
    folders = [
        (course, COURSE_MODE),
        (course / "outbound", OUTBOUND_MODE),
        (course / "inbound", INBOUND_MODE),
    ]
    for folder, mode in folders:
        folder.mkdir(exist_ok=True)
        os.chown(folder, user.pw_uid, gid)
        os.chmod(folder, mode)
    logger.info(
        "Prepared the exchange %s for %s, owned by %s", course, course_id, owner
    )
    return course


def prepare_course(owner: str, source: str | Path | None = None) -> Path:
    """Copy the nbgrader course root into the instructor's ``~/course``.

    Parameters
    ----------
    owner : str
        The instructor.
    source : str or Path, default=``assignments/`` of this checkout
        The course root: ``nbgrader_config.py``, ``source/`` and ``demo/``.
        Only what is missing in ``~/course`` is copied, so the instructor's own
        edits, releases and gradebook survive a second run.

    Returns
    -------
    Path
        The instructor's course root.
    """
    _require_root()
    source = PROJECT_DIR / "assignments" if source is None else Path(source)
    user = pwd.getpwnam(owner)
    target = Path(user.pw_dir) / COURSE_FOLDER
    shutil.copytree(
        source,
        target,
        dirs_exist_ok=True,
        copy_function=_copy_if_missing,
        # nbgrader's own output in the checkout belongs to another instructor.
        ignore=shutil.ignore_patterns(*COURSE_IGNORED),
    )
    for path in [target, *target.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
    logger.info("Prepared the course %s for %s", target, owner)
    return target


def prepare_course_repo(
    path: str | Path,
    owner: str,
    members: Sequence[Member],
    source: str | Path | None = None,
    branch: str = "main",
) -> Path:
    """Create the git repository of the lessons that nbgitpuller pulls from.

    Parameters
    ----------
    path : str or Path
        The bare repository, e.g. ``/srv/medkit/course.git``. When missing it is
        created with the history of ``source``'s current commit as ``branch``;
        otherwise it is left as it is.
    owner : str
        The instructor who pushes lesson updates to it.
    members : sequence of Member
        Everyone who pulls from it. git refuses a repository that another user
        owns unless the user's configuration lists it in ``safe.directory``, so
        this adds it to each member's ``~/.gitconfig``.
    source : str or Path, default=this checkout
        The repository whose current commit the lessons start from.
    branch : str, default="main"
        The branch to create, which is also the repository's default branch.

    Returns
    -------
    Path
        The repository.
    """
    _require_root()
    path = Path(path)
    source = PROJECT_DIR if source is None else Path(source)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _run(
            [
                "git",
                "init",
                "--quiet",
                "--bare",
                f"--initial-branch={branch}",
                str(path),
            ]
        )
        _run(
            [
                "git",
                "-C",
                str(source),
                "push",
                "--quiet",
                str(path),
                f"HEAD:refs/heads/{branch}",
            ]
        )
        user = pwd.getpwnam(owner)
        for item in [path, *path.rglob("*")]:
            os.chown(item, user.pw_uid, user.pw_gid, follow_symlinks=False)
            mode = item.lstat().st_mode
            os.chmod(item, mode | (0o055 if item.is_dir() else 0o044))
        logger.info("Created the lesson repository %s, owned by %s", path, owner)

    for member in members:
        if member.username != owner:
            _trust_repository(member.username, path)
    return path


def setup(
    roster_path: str | Path,
    exchange: str | Path,
    course_id: str = "medkit",
    *,
    course_repo: str | Path | None = None,
    comment: str = "medkit class member",
) -> list[Member]:
    """Create the accounts, the exchange, the first instructor's course and,
    on request, the lesson repository.

    Parameters
    ----------
    roster_path : str or Path
        The roster, see :func:`read_roster`.
    exchange : str or Path
        nbgrader's exchange root.
    course_id : str, default="medkit"
        nbgrader's course ID, as in the course's ``nbgrader_config.py``.
    course_repo : str or Path, optional
        The bare git repository of the lessons, see :func:`prepare_course_repo`.
    comment : str, default="medkit class member"
        The GECOS comment of the accounts created.

    Returns
    -------
    list of Member
        The roster.
    """
    roster = read_roster(roster_path)
    create_accounts(roster, comment=comment)
    owner = instructors(roster)[0]
    prepare_exchange(exchange, course_id, owner)
    prepare_course(owner)
    if course_repo is not None:
        prepare_course_repo(course_repo, owner, roster)
    return roster


def _trust_repository(username: str, repository: Path) -> None:
    """Add the repository to the account's git ``safe.directory`` list, once."""
    entry = pwd.getpwnam(username)
    command = ["git", "config", "--global"]
    environment = {"HOME": entry.pw_dir, "PATH": "/usr/bin:/bin"}
    listed = subprocess.run(
        [*command, "--get-all", "safe.directory"],
        user=entry.pw_uid,
        group=entry.pw_gid,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if str(repository) in listed.stdout.splitlines():
        return
    _run(
        [*command, "--add", "safe.directory", str(repository)],
        user=entry.pw_uid,
        group=entry.pw_gid,
        env=environment,
    )


def _copy_if_missing(source: str, target: str) -> str:
    if os.path.exists(target):
        return target
    return shutil.copy2(source, target)


def _require_root() -> None:
    if os.geteuid() != 0:
        raise ClassroomError(
            "Creating accounts and exchange folders needs root; run this script "
            "with sudo."
        )


def _user_exists(username: str) -> bool:
    try:
        pwd.getpwnam(username)
    except KeyError:
        return False
    return True


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _run(
    command: list[str], allow_codes: tuple[int, ...] = (), **kwargs: object
) -> None:
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, **kwargs
    )
    if result.returncode and result.returncode not in allow_codes:
        raise ClassroomError(
            f"'{' '.join(command)}' failed with exit status {result.returncode}: "
            f"{result.stderr.strip()}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("setup", help="create accounts, exchange, course")
    create.add_argument("roster", help="CSV file with the header username,role")
    create.add_argument(
        "--exchange",
        default="/srv/nbgrader/exchange",
        help="nbgrader's exchange root (default: %(default)s)",
    )
    create.add_argument(
        "--course-id", default="medkit", help="nbgrader course ID (default: medkit)"
    )
    create.add_argument(
        "--course-repo",
        help="bare git repository of the lessons for nbgitpuller, created from "
        "this checkout when missing (default: none)",
    )
    remove = commands.add_parser("remove", help="delete the roster's accounts")
    remove.add_argument("roster", help="CSV file with the header username,role")
    remove.add_argument(
        "--yes", action="store_true", help="confirm deleting the home folders"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    try:
        if args.command == "setup":
            setup(
                args.roster,
                args.exchange,
                args.course_id,
                course_repo=args.course_repo,
            )
        elif not args.yes:
            parser.error("remove deletes home folders; add --yes to confirm")
        else:
            remove_accounts(read_roster(args.roster))
    except (ClassroomError, OSError, KeyError) as error:
        print(f"classroom: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
