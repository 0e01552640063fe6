"""Benchmark of cohort grading: 200 ps1 submissions, in parallel and one by one.

The script writes a synthetic cohort of ``--trainees`` submissions (200 by
default) of ``ps1_digitization`` with ``medkit.course.cohort.make_cohort``
(seed 2026, default rates) into a temporary folder, then grades the same files
twice in this run:

* ``grade_cohort``: ``medkit.course.grading.grade_cohort`` with ``--jobs``
  processes (2 by default), sandboxed, without feedback;
* ``nbgrader``: a plain nbgrader course folder (the course's
  ``nbgrader_config.py`` and ``source/``) where ``nbgrader generate_assignment``
  and then ``nbgrader autograde`` run as commands, one submission after the
  other.

Each time is the wall-clock time of the whole step, release included. The CPU
time beside it is that of the script and of the processes it waited for,
kernels included; it tells a busy machine (CPU time per submission unchanged)
from slower grading. The
script prints both times and the throughput ratio, which is nbgrader's time over
grade_cohort's (target: at least 1.8 on 2 cores). It then prints whether the two
gradebooks contain the same points for every graded cell ("scores identical", or
the cells that differ) and whether they equal the cohort's expected points
(``Cohort.truth``). The expected points come from the variant table cached in
``build/cohort/variants/``; the first run measures it, which the script times
separately.

The machine's other work moves both times; the script prints the load average
before and after. Run it with ``python bench/grading.py`` (about 10 minutes on 2
cores at full size) or ``--trainees 20`` for a quick check.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ASSIGNMENT = "ps1_digitization"
RATIO_TARGET = 1.8
SHOWN_DIFFERENCES = 10


def _cpu_seconds() -> float:
    """Return the CPU time of this process and of its finished child processes.

    A child counts once it has exited and been waited for, with the processes it
    waited for in turn, such as the kernels that grading starts.
    """
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _grade_parallel(submitted: Path, work: Path, jobs: int) -> tuple[Path, float]:
    from medkit.course.grading import grade_cohort

    start = time.perf_counter()
    report = grade_cohort(
        ASSIGNMENT,
        submitted,
        build_dir=work,
        jobs=jobs,
        feedback=False,
        progress=False,
    )
    seconds = time.perf_counter() - start
    if report.failed:
        raise SystemExit(f"grade_cohort failed on some submissions: {report.failed}")
    return Path(report.gradebook), seconds


def _grade_sequential(submitted: Path, root: Path) -> tuple[Path, float, float]:
    """Grade with the nbgrader commands in a plain course folder.

    Returns the gradebook, the seconds of generate_assignment and of autograde.
    """
    from medkit.course.grading import COURSE_DIR

    root.mkdir(parents=True)
    shutil.copy2(COURSE_DIR / "nbgrader_config.py", root)
    shutil.copytree(COURSE_DIR / "source" / ASSIGNMENT, root / "source" / ASSIGNMENT)
    shutil.copytree(submitted, root / "submitted")

    # The kernel spec runs "python", so this environment's scripts go first on
    # PATH; nbgrader also runs "alembic" from there.
    scripts = Path(sys.executable).parent
    environment = dict(
        os.environ, PATH=os.pathsep.join([str(scripts), os.environ["PATH"]])
    )
    seconds = []
    for command in ("generate_assignment", "autograde"):
        start = time.perf_counter()
        subprocess.run(
            [str(scripts / "nbgrader"), command, ASSIGNMENT],
            cwd=root,
            env=environment,
            check=True,
            capture_output=True,
        )
        seconds.append(time.perf_counter() - start)
    return root / "gradebook.db", seconds[0], seconds[1]


def _print_differences(same: str, differ: str, differences: pd.DataFrame) -> None:
    if differences.empty:
        print(same)
        return
    print(f"{differ}: {len(differences)} cells")
    print(differences.head(SHOWN_DIFFERENCES).to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trainees", type=int, default=200, help="submissions in the cohort"
    )
    parser.add_argument("--jobs", type=int, default=2, help="processes of grade_cohort")
    parser.add_argument("--seed", type=int, default=2026, help="cohort seed")
    args = parser.parse_args()

    from medkit.course.analytics import read_gradebook
    from medkit.course.cohort import load_variants, make_cohort, score_differences

    print(f"CPUs: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}")
    start = time.perf_counter()
    variants = load_variants(ASSIGNMENT)
    print(f"variant table of {ASSIGNMENT}: {time.perf_counter() - start:.1f} s")

    with tempfile.TemporaryDirectory(prefix="medkit-bench-") as folder:
        work = Path(folder)
        start = time.perf_counter()
        cohort = make_cohort(
            ASSIGNMENT,
            args.trainees,
            seed=args.seed,
            out_dir=work / "submitted",
            variants=variants,
        )
        print(
            f"cohort: {args.trainees} submissions of {ASSIGNMENT} written in "
            f"{time.perf_counter() - start:.1f} s"
        )

        cpu = _cpu_seconds()
        parallel_book, parallel = _grade_parallel(
            cohort.directory, work / "parallel", args.jobs
        )
        parallel_cpu = _cpu_seconds() - cpu
        cpu = _cpu_seconds()
        sequential_book, release, autograde = _grade_sequential(
            cohort.directory, work / "plain"
        )
        sequential_cpu = _cpu_seconds() - cpu
        sequential = release + autograde
        print(
            f"grade_cohort(jobs={args.jobs}):        {parallel:7.1f} s  "
            f"{args.trainees / parallel:5.2f} submissions/s  "
            f"CPU {parallel_cpu:6.1f} s"
        )
        print(
            f"nbgrader, one by one:        {sequential:7.1f} s  "
            f"{args.trainees / sequential:5.2f} submissions/s  "
            f"CPU {sequential_cpu:6.1f} s "
            f"(generate_assignment {release:.1f} s, autograde {autograde:.1f} s)"
        )
        ratio = sequential / parallel
        verdict = "met" if ratio >= RATIO_TARGET else "NOT met"
        print(f"throughput ratio: {ratio:.2f} (target >= {RATIO_TARGET:g}: {verdict})")

        parallel_scores = read_gradebook(parallel_book, ASSIGNMENT)
        sequential_scores = read_gradebook(sequential_book, ASSIGNMENT)
        cells = f"{len(sequential_scores):,} graded cells"
        _print_differences(
            f"scores identical: {cells}, grade_cohort and nbgrader",
            "scores differ between grade_cohort and nbgrader",
            score_differences(parallel_scores, sequential_scores),
        )
        _print_differences(
            f"expected points met: {cells} equal Cohort.truth",
            "grade_cohort's scores differ from Cohort.truth",
            score_differences(parallel_scores, cohort.truth),
        )
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
