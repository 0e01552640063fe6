"""The ``medkit`` command: build the course, run lessons, grade, make datasets.

Each command calls one library function with that function's defaults, so
``medkit grade`` does what ``medkit.course.grading.grade_demos()`` does. Heavy
modules are imported inside the commands to keep ``medkit --version`` fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.contrib.logging import logging_redirect_tqdm

from medkit import __version__
from medkit.course._paths import BUILD_DIR, display_path
from medkit.exceptions import MedkitError

if TYPE_CHECKING:
    from medkit.course.analytics import ItemAnalysis
    from medkit.course.grading import CohortReport, GradeReport, Release
    from medkit.course.lessons import LessonResult

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``medkit`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after ``medkit``; by default ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 on success, 1 after a MedkitError or an operating
        system error such as a missing file, 130 when interrupted. Without
        ``-v`` an error prints one line, ``medkit: error: ...``, on stderr;
        with ``-v`` its traceback comes first.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        # Log lines go through tqdm, so a warning never lands inside a bar.
        with logging_redirect_tqdm():
            args.run(args)
    except (MedkitError, OSError) as error:
        if args.verbose:
            traceback.print_exc()
        message = " ".join(line.strip() for line in str(error).splitlines())
        print(f"medkit: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("medkit: interrupted", file=sys.stderr)
        return 130
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with one sub-command per course task."""
    parser = argparse.ArgumentParser(
        prog="medkit",
        description="Build and check the medkit digital healthcare course.",
    )
    parser.add_argument("--version", action="version", version=f"medkit {__version__}")
    _add_verbose(parser, default=0)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    course = _group(commands, "course", "build the whole course")
    build = course.add_parser(
        "build",
        help="check datasets, run lessons, release assignments and grade the demos",
    )
    build.add_argument(
        "--quick", action="store_true", help="run the lessons on small sizes"
    )
    build.set_defaults(run=_course_build)

    lessons = _group(commands, "lessons", "run lesson notebooks")
    run = lessons.add_parser("run", help="run the lessons in order into build/lessons/")
    run.add_argument(
        "--quick", action="store_true", help="inject quick = True into each lesson"
    )
    run.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only this lesson, e.g. 01_digitization or digitization (repeatable)",
    )
    run.set_defaults(run=_lessons_run)

    assignments = _group(commands, "assignments", "manage nbgrader assignments")
    release = assignments.add_parser(
        "release", help="generate the student versions into build/release/"
    )
    release.add_argument(
        "assignment", nargs="?", help="assignment ID (default: every assignment)"
    )
    release.set_defaults(run=_assignments_release)

    grade = commands.add_parser(
        "grade",
        help="autograde a cohort's submissions, or the demo submissions, and export "
        "build/grades/",
    )
    grade.add_argument(
        "assignment",
        nargs="?",
        help="assignment ID (default: every assignment; required with --submissions)",
    )
    grade.add_argument(
        "--submissions",
        type=Path,
        metavar="DIR",
        help="grade the cohort in DIR, laid out as DIR/<student>/ASSIGNMENT/ "
        "(default: grade the demo submissions)",
    )
    grade.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="number of submissions graded at once (default: the number of CPU cores)",
    )
    grade.add_argument(
        "--timeout",
        type=int,
        metavar="SECONDS",
        help="seconds one cell may run "
        "(default: Execute.timeout in nbgrader_config.py)",
    )
    grade.add_argument(
        "--course",
        type=Path,
        metavar="DIR",
        help="nbgrader course folder with source/ and nbgrader_config.py; it is "
        "only read (default: assignments/ of the project)",
    )
    grade.add_argument(
        "--build",
        type=Path,
        metavar="DIR",
        help="folder for the gradebook, grades and feedback (default: build/ for the "
        "demo submissions, build/class/ with --submissions)",
    )
    grade.add_argument(
        "--no-check",
        dest="check",
        action="store_false",
        help="report the demo scores without comparing them with expected.json",
    )
    grade.add_argument(
        "--no-feedback",
        dest="feedback",
        action="store_false",
        help="skip the feedback HTML in build/feedback/",
    )
    grade.set_defaults(run=_grade)

    datasets = _group(
        commands, "datasets", "check or build the synthetic hospital data"
    )
    check = datasets.add_parser(
        "check", help="check that dataset files equal what the generator makes"
    )
    _add_dataset_size(check)
    check.add_argument(
        "--dir",
        type=Path,
        metavar="DIR",
        help="folder to check (default: the shipped datasets/)",
    )
    check.set_defaults(run=_datasets_check)
    make = datasets.add_parser(
        "build",
        help="generate a synthetic hospital into a folder",
        description=(
            "Generate a synthetic hospital. --out is required so that the shipped "
            "datasets/ folder is only replaced on purpose (--out datasets)."
        ),
    )
    _add_dataset_size(make)
    make.add_argument(
        "--out", type=Path, metavar="DIR", required=True, help="output folder"
    )
    make.set_defaults(run=_datasets_build)

    digitize = commands.add_parser(
        "digitize", help="read, clean, encode and store the raw hospital exports"
    )
    digitize.add_argument(
        "--raw",
        type=Path,
        metavar="DIR",
        help="folder with patients.csv, visits.csv and labs.csv "
        "(default: the shipped datasets/raw/)",
    )
    digitize.add_argument(
        "--db",
        metavar="URL",
        default=f"sqlite:///{BUILD_DIR / 'medkit.db'}",
        help="SQLAlchemy database URL (default: %(default)s)",
    )
    digitize.set_defaults(run=_digitize)

    serve = _add_serve(commands)
    report = _add_report(commands)

    # Accept -v after the command too; unset there, it keeps the value given before.
    for command in (build, run, release, grade, check, make, digitize, serve, report):
        _add_verbose(command, default=argparse.SUPPRESS)
    return parser


def _add_serve(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    serve = commands.add_parser(
        "serve",
        help="run one site's record-sharing service until Ctrl+C",
        description=(
            "Run one site's record-sharing service. The write token comes from "
            "the MEDKIT_TOKEN environment variable; without it a new token is "
            "generated and printed. MEDKIT_READ_TOKENS may list read-only tokens "
            "for partner sites, separated by commas: they can read records, "
            "statistics and models but not upload. The service speaks plain HTTP, "
            "so tokens cross the network in clear text: keep the default address "
            "127.0.0.1, or put the service behind a TLS proxy (HTTPS) before "
            "binding to another address."
        ),
    )
    serve.add_argument("--site", required=True, metavar="NAME", help="site name")
    serve.add_argument(
        "--port",
        type=int,
        default=8000,
        metavar="P",
        help="TCP port; 0 picks a free one (default: %(default)s)",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; the default accepts this machine only, and "
        "any other address needs a TLS proxy in front (default: %(default)s)",
    )
    serve.add_argument(
        "--db",
        metavar="URL",
        help="SQLAlchemy database URL; a SQLite file's folder must exist "
        "(default: sqlite:///build/sites/NAME.db, folder created, file mode 0600)",
    )
    serve.set_defaults(run=_serve)
    return serve


def _add_report(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    report = commands.add_parser(
        "report",
        help="write the item analysis of an assignment's grades to build/report/",
        description=(
            "Analyse an assignment's autograded cells in an nbgrader gradebook: "
            "difficulty and discrimination of each item, Cronbach's alpha, mastery "
            "of each learning objective, and the items to reteach."
        ),
    )
    report.add_argument("assignment", help="assignment ID, e.g. ps1_digitization")
    report.add_argument(
        "--gradebook",
        metavar="PATH",
        help="nbgrader gradebook file or SQLAlchemy URL "
        "(default: build/class/nbgrader/gradebook.db, written by "
        "medkit grade --submissions)",
    )
    report.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="folder of the report; it goes to DIR/ASSIGNMENT/ "
        "(default: build/class/report)",
    )
    report.set_defaults(run=_report)
    return report


def _add_dataset_size(parser: argparse.ArgumentParser) -> None:
    # The defaults are medkit.datasets', which is imported only when it runs; a
    # test checks that these help texts name them.
    parser.add_argument(
        "--patients",
        type=int,
        metavar="N",
        help="number of clean patients (default: 2000, the shipped size)",
    )
    parser.add_argument(
        "--seed", type=int, metavar="S", help="random seed (default: 2026)"
    )


def _add_verbose(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default,
        help="log progress (-v) or every detail (-vv), and show tracebacks of errors",
    )


def _group(
    commands: argparse._SubParsersAction, name: str, help_text: str
) -> argparse._SubParsersAction:
    """Add a command that only groups sub-commands, such as ``medkit lessons``."""
    parser = commands.add_parser(name, help=help_text)
    return parser.add_subparsers(
        dest=f"{name}_command", required=True, metavar="COMMAND"
    )


def _configure_logging(verbose: int) -> None:
    # basicConfig adds a stderr handler only if the root logger has none yet.
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.getLogger().setLevel(level)


# Commands ---------------------------------------------------------------------


def _course_build(args: argparse.Namespace) -> None:
    from medkit.course.cohort import grade_demo_cohort
    from medkit.course.grading import grade_demos, release_assignments
    from medkit.course.lessons import run_lessons
    from medkit.datasets import check_datasets

    files = check_datasets()
    print(f"Datasets: {len(files)} files match the generator.")
    _print_lessons(run_lessons(quick=args.quick))
    _print_releases(release_assignments())
    _print_grades(grade_demos())
    result = grade_demo_cohort()
    print(
        f"Demonstration cohort: {len(result.cohort.students)} submissions of "
        f"{result.cohort.assignment} graded, checked against their expected points "
        f"and analysed in {result.seconds:.1f} s."
    )
    _print_analysis(result.analysis, result.report)


def _lessons_run(args: argparse.Namespace) -> None:
    from medkit.course.lessons import run_lessons

    _print_lessons(run_lessons(quick=args.quick, only=args.only))


def _assignments_release(args: argparse.Namespace) -> None:
    from medkit.course.grading import release_assignments

    _print_releases(release_assignments(args.assignment))


def _grade(args: argparse.Namespace) -> None:
    from medkit.course.grading import Limits, grade_cohort, grade_demos
    from medkit.exceptions import GradingError

    if args.jobs is not None and args.jobs < 1:
        raise GradingError(f"--jobs must be at least 1, got {args.jobs}.")
    if args.timeout is not None and args.timeout < 1:
        raise GradingError(
            f"--timeout must be a number of seconds of at least 1, got {args.timeout}."
        )
    limits = None if args.timeout is None else Limits(cell_timeout=args.timeout)
    options = _given(
        course_dir=args.course, build_dir=args.build, jobs=args.jobs, limits=limits
    )
    if args.submissions is None:
        reports = grade_demos(
            args.assignment, check=args.check, feedback=args.feedback, **options
        )
        _print_grades(reports, checked=args.check)
        return
    if args.assignment is None:
        raise GradingError(
            "medkit grade --submissions needs the assignment ID, e.g. "
            "medkit grade ps1_digitization --submissions DIR."
        )
    report = grade_cohort(
        args.assignment, args.submissions, feedback=args.feedback, **options
    )
    _print_cohort(report)
    if report.failed:
        # The other grades are stored, but a script that runs this command must
        # learn from the exit status that some submissions have no grade.
        raise GradingError(
            f"{len(report.failed)} of {len(report.failed) + len(report.scores)} "
            "submissions could not be graded; the FAILED lines above give the "
            "reasons. Fix those notebooks and grade them again."
        )


def _print_cohort(report: CohortReport) -> None:
    graded = len(report.scores)
    print(
        f"{report.assignment}: graded {graded} of {graded + len(report.failed)} "
        f"submissions in {report.seconds:.1f} s with {report.jobs} processes; "
        f"{len(report.failed)} failed."
    )
    print(f"  grades    {display_path(report.grades_csv)}")
    print(f"  gradebook {display_path(report.gradebook)}")
    if report.feedback_dir is not None:
        print(f"  feedback  {display_path(report.feedback_dir)}")
    kinds: dict[str, int] = {}
    for problem in report.problems:
        kinds[problem.kind] = kinds.get(problem.kind, 0) + 1
    if kinds:
        counts = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
        students = len({problem.student for problem in report.problems})
        print(f"  problems in {students} submissions: {counts}")
    for student, reason in report.failed.items():
        print(f"  FAILED {student}: {reason}")


def _datasets_check(args: argparse.Namespace) -> None:
    from medkit.datasets import check_datasets

    options = _given(n_patients=args.patients, seed=args.seed)
    files = check_datasets(args.dir, **options)
    print(f"Datasets: {len(files)} files match the generator.")


def _datasets_build(args: argparse.Namespace) -> None:
    from medkit.datasets import write_datasets

    options = _given(n_patients=args.patients, seed=args.seed)
    files = write_datasets(args.out, **options)
    print(f"Wrote {len(files)} files to {args.out}.")


def _digitize(args: argparse.Namespace) -> None:
    from medkit.digitize import digitize_hospital

    # A progress bar only helps on a terminal; in a pipe or a log it is noise.
    report = digitize_hospital(
        **_given(raw_dir=args.raw, url=args.db), progress=sys.stderr.isatty()
    )
    print(f"Stored in {report.url}:")
    print(report.counts.to_string())


def _serve(args: argparse.Namespace) -> None:
    from medkit.network import READ_TOKENS_ENV, TOKEN_ENV, new_token, serve

    # An empty MEDKIT_TOKEN counts as unset; one of spaces is rejected as blank.
    token = os.environ.get(TOKEN_ENV) or None
    generated = token is None
    if generated:
        token = new_token()
    read_tokens = [
        read.strip() for read in os.environ.get(READ_TOKENS_ENV, "").split(",")
    ]
    if args.db:
        db_url = args.db
    else:
        # Only the default folder is created; a given path's folder must exist.
        (BUILD_DIR / "sites").mkdir(parents=True, exist_ok=True)
        db_url = f"sqlite:///{BUILD_DIR / 'sites' / args.site}.db"
    if not args.verbose:
        # A service reports its starts, stops and rejected requests by default.
        logging.getLogger("medkit").setLevel(logging.INFO)

    def announce(url: str) -> None:
        # Printed once the settings are checked and the port is open.
        if generated:
            print(f"Token (set {TOKEN_ENV} to choose one): {token}", flush=True)
        print(f"Site {args.site} serving on {url} (Ctrl+C stops it)", flush=True)

    serve(
        args.site,
        token=token,
        read_tokens=[read for read in read_tokens if read],
        db_url=db_url,
        port=args.port,
        host=args.host,
        on_start=announce,
        access_log=args.verbose >= 2,
    )


def _report(args: argparse.Namespace) -> None:
    from medkit.course.analytics import item_analysis, write_report
    from medkit.course.grading import CLASS_DIR, gradebook_path

    gradebook = gradebook_path() if args.gradebook is None else args.gradebook
    out_dir = CLASS_DIR / "report" if args.out is None else args.out
    analysis = item_analysis(gradebook, args.assignment)
    _print_analysis(analysis, write_report(analysis, out_dir))


def _given(**options: Any) -> dict[str, Any]:
    """Drop the options left unset, so the library's defaults apply."""
    return {name: value for name, value in options.items() if value is not None}


# Summaries --------------------------------------------------------------------


def _print_lessons(results: list[LessonResult]) -> None:
    print(f"Lessons run: {len(results)}")
    for result in results:
        print(f"  {result.name:<28} {result.seconds:7.1f} s")


def _print_releases(releases: list[Release]) -> None:
    print(f"Assignments released: {len(releases)}")
    for release in releases:
        print(f"  {release.assignment:<28} {display_path(release.directory)}")


def _print_analysis(analysis: ItemAnalysis, index: Path) -> None:
    import math

    trainees = analysis.trainees
    # cronbach_alpha returns NaN where alpha is undefined, as for a single item.
    alpha = "n/a" if math.isnan(analysis.alpha) else f"{analysis.alpha:.2f}"
    print(f"Item analysis of {analysis.assignment}: {display_path(index)}")
    print(
        f"  {analysis.n_trainees} trainees; mean total {trainees['score'].mean():.1f} "
        f"of {trainees['max_score'].iloc[0]:g} autograded points; "
        f"Cronbach's alpha {alpha}"
    )
    if analysis.pending_items:
        print(f"  awaiting manual grading: {', '.join(analysis.pending_items)}")
    print(f"  to reteach: {len(analysis.reteach) or 'none'}")
    for item, row in analysis.reteach.iterrows():
        print(f"    {item} ({row['objective']}): {row['reason']}")


def _print_grades(reports: list[GradeReport], *, checked: bool = True) -> None:
    print("Demo scores (points, designed):")
    for report in reports:
        print(f"  {report.assignment}  ({display_path(report.grades_csv)})")
        for score in report.scores:
            if score.expected is None or not checked:
                designed, verdict = "-", ""
            else:
                designed = f"{score.expected:g}"
                verdict = "ok" if score.matches else "DIFFERS"
            points = f"{score.score:g} / {score.max_score:g}"
            print(
                f"    {score.submission:<24} {points:>9}   designed {designed:>4}  "
                f"{verdict}".rstrip()
            )
