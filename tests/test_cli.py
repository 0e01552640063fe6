"""Tests for medkit.cli: argument wiring, summaries, errors and exit codes."""

from __future__ import annotations

import logging
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import medkit.course.analytics as analytics
import medkit.course.cohort as cohort
import medkit.course.grading as grading
import medkit.course.lessons as lessons
from medkit import __version__
from medkit.cli import main
from medkit.course._paths import BUILD_DIR
from medkit.course.grading import DemoScore, GradeReport, Release
from medkit.course.lessons import LessonResult
from medkit.exceptions import GradingError, NotebookError

MEDKIT_SCRIPT = Path(sys.executable).parent / "medkit"


class Recorder:
    """Stand-in for a library function: records its calls, returns a fixed value."""

    def __init__(self, result: Any = None, error: Exception | None = None) -> None:
        self.result = result
        self.error = error
        self.calls: list[tuple[tuple, dict]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        if self.error is not None:
            raise self.error
        return self.result


def lesson_result(name: str, seconds: float) -> LessonResult:
    return LessonResult(
        name, Path(f"{name}.ipynb"), Path(f"{name}.ipynb"), None, seconds
    )


def grade_report(score: float, expected: float) -> GradeReport:
    scores = [
        DemoScore("solution", 9.0, 11.0, 9.0),
        DemoScore("zero_fill", score, 11.0, expected),
    ]
    return GradeReport(
        "ps1_digitization", scores, Path("build/grades/ps1_digitization.csv")
    )


def fake_module(monkeypatch: pytest.MonkeyPatch, name: str, **functions: Any) -> None:
    """Install a module under ``name`` so the CLI's lazy import finds ``functions``."""
    module = types.ModuleType(name)
    for attribute, function in functions.items():
        setattr(module, attribute, function)
    monkeypatch.setitem(sys.modules, name, module)


@pytest.fixture(autouse=True)
def restore_log_level():
    """Undo the root log level that main() sets from -v."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


def test_main_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])

    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"medkit {__version__}\n"


def test_main_without_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])

    assert exit_info.value.code == 2
    assert "the following arguments are required: COMMAND" in capsys.readouterr().err


def test_main_error_prints_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    error = NotebookError(
        "Lesson 01_digitization.ipynb failed in cell 4.\nSee the log."
    )
    monkeypatch.setattr(lessons, "run_lessons", Recorder(error=error))

    status = main(["lessons", "run"])

    captured = capsys.readouterr()
    assert status == 1
    assert captured.out == ""
    assert captured.err == (
        "medkit: error: Lesson 01_digitization.ipynb failed in cell 4. See the log.\n"
    )


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["-v", "grade"], id="before"),
        pytest.param(["grade", "-v"], id="after"),
    ],
)
def test_main_verbose_shows_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    monkeypatch.setattr(
        grading, "grade_demos", Recorder(error=GradingError("scores differ"))
    )

    status = main(argv)

    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith("Traceback (most recent call last):")
    assert err.endswith("medkit: error: scores differ\n")


def test_main_other_exceptions_propagate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grading, "grade_demos", Recorder(error=KeyError("bug")))

    with pytest.raises(KeyError, match="bug"):
        main(["grade"])


def test_console_script_error_exit_status(tmp_path: Path) -> None:
    completed = subprocess.run(
        [str(MEDKIT_SCRIPT), "lessons", "run", "--only", "no_such_lesson"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )

    assert completed.returncode == 1
    assert completed.stdout == ""
    assert completed.stderr.startswith("medkit: error: ")
    assert completed.stderr.count("\n") == 1


def test_lessons_run_passes_options(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_lessons = Recorder([lesson_result("00_welcome", 3.25)])
    monkeypatch.setattr(lessons, "run_lessons", run_lessons)

    status = main(
        ["lessons", "run", "--quick", "--only", "welcome", "--only", "01_digitization"]
    )

    assert status == 0
    assert run_lessons.calls == [
        ((), {"quick": True, "only": ["welcome", "01_digitization"]})
    ]
    assert capsys.readouterr().out == (
        "Lessons run: 1\n  00_welcome                       3.2 s\n"
    )


def test_lessons_run_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    run_lessons = Recorder([])
    monkeypatch.setattr(lessons, "run_lessons", run_lessons)

    main(["lessons", "run"])

    assert run_lessons.calls == [((), {"quick": False, "only": None})]


def test_assignments_release_passes_assignment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = Path("build/release/ps1_digitization")
    release = Recorder(
        [Release("ps1_digitization", directory, ["ps1_digitization.ipynb"])]
    )
    monkeypatch.setattr(grading, "release_assignments", release)

    main(["assignments", "release", "ps1_digitization"])

    assert release.calls == [(("ps1_digitization",), {})]
    assert capsys.readouterr().out == (
        f"Assignments released: 1\n  ps1_digitization             {directory}\n"
    )


def test_grade_passes_options(monkeypatch: pytest.MonkeyPatch) -> None:
    grade = Recorder([grade_report(6.0, 6.0)])
    monkeypatch.setattr(grading, "grade_demos", grade)

    main(["grade", "ps1_digitization", "--no-check", "--no-feedback"])

    assert grade.calls == [(("ps1_digitization",), {"check": False, "feedback": False})]


def test_grade_cohort_passes_course_and_build(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    recorder = Recorder(error=GradingError("stop"))
    monkeypatch.setattr(grading, "grade_cohort", recorder)

    main(
        [
            "grade",
            "ps1_digitization",
            "--submissions",
            str(tmp_path / "submitted"),
            "--course",
            str(tmp_path / "course"),
            "--build",
            str(tmp_path / "build"),
        ]
    )

    [(args, kwargs)] = recorder.calls
    assert args == ("ps1_digitization", tmp_path / "submitted")
    assert kwargs["course_dir"] == tmp_path / "course"
    assert kwargs["build_dir"] == tmp_path / "build"


def test_grade_cohort_failed_submission_exits_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = types.SimpleNamespace(
        assignment="ps1_digitization",
        scores={"t01": 15.0},
        failed={"t06": "ps1_digitization.ipynb is not a valid notebook"},
        problems=[],
        seconds=2.0,
        jobs=2,
        grades_csv=BUILD_DIR / "class" / "grades" / "ps1_digitization.csv",
        gradebook=BUILD_DIR / "class" / "nbgrader" / "gradebook.db",
        feedback_dir=None,
    )
    monkeypatch.setattr(grading, "grade_cohort", Recorder(report))

    status = main(["grade", "ps1_digitization", "--submissions", "submitted"])

    captured = capsys.readouterr()
    assert status == 1
    assert "graded 1 of 2 submissions" in captured.out
    assert (
        "  FAILED t06: ps1_digitization.ipynb is not a valid notebook\n" in captured.out
    )
    assert captured.err == (
        "medkit: error: 1 of 2 submissions could not be graded; the FAILED lines "
        "above give the reasons. Fix those notebooks and grade them again.\n"
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--jobs", "0"], "medkit: error: --jobs must be at least 1, got 0.\n"),
        (
            ["--timeout", "-1"],
            "medkit: error: --timeout must be a number of seconds of at least 1, "
            "got -1.\n",
        ),
    ],
    ids=["jobs-zero", "timeout-negative"],
)
def test_grade_invalid_option_prints_one_line(
    option: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["grade", "ps1_digitization", "--submissions", "x", *option])

    assert status == 1
    assert capsys.readouterr().err == message


def test_grade_summary_marks_differences(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    grade = Recorder([grade_report(5.0, 6.0)])
    monkeypatch.setattr(grading, "grade_demos", grade)

    main(["grade"])

    assert grade.calls == [((None,), {"check": True, "feedback": True})]
    assert capsys.readouterr().out.splitlines() == [
        "Demo scores (points, designed):",
        "  ps1_digitization  (build/grades/ps1_digitization.csv)",
        "    solution                    9 / 11   designed    9  ok",
        "    zero_fill                   5 / 11   designed    6  DIFFERS",
    ]


def test_datasets_build_passes_options(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write = Recorder([tmp_path / "raw" / "patients.csv", tmp_path / "README.md"])
    fake_module(
        monkeypatch, "medkit.datasets", write_datasets=write, data_dir=Recorder()
    )

    main(
        ["datasets", "build", "--patients", "50", "--seed", "7", "--out", str(tmp_path)]
    )

    assert write.calls == [((tmp_path,), {"n_patients": 50, "seed": 7})]
    assert capsys.readouterr().out == f"Wrote 2 files to {tmp_path}.\n"


def test_datasets_build_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write = Recorder([])
    fake_module(monkeypatch, "medkit.datasets", write_datasets=write)

    main(["datasets", "build", "--out", str(tmp_path)])

    assert write.calls == [((tmp_path,), {})]


def test_datasets_build_without_out_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Writing into the shipped datasets/ must be asked for with --out datasets.
    with pytest.raises(SystemExit) as caught:
        main(["datasets", "build", "--patients", "100"])

    assert caught.value.code == 2
    assert "the following arguments are required: --out" in capsys.readouterr().err


def test_datasets_help_names_library_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from medkit.datasets import DEFAULT_PATIENTS, DEFAULT_SEED

    with pytest.raises(SystemExit):
        main(["datasets", "build", "--help"])

    help_text = " ".join(capsys.readouterr().out.split())
    assert f"(default: {DEFAULT_PATIENTS}, the shipped size)" in help_text
    assert f"(default: {DEFAULT_SEED})" in help_text


def test_datasets_check_counts_files(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    check = Recorder([Path("raw/patients.csv"), Path("raw/visits.csv")])
    fake_module(monkeypatch, "medkit.datasets", check_datasets=check)

    main(["datasets", "check"])

    assert check.calls == [((None,), {})]
    assert capsys.readouterr().out == "Datasets: 2 files match the generator.\n"


def test_digitize_passes_options(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    counts = pd.DataFrame(
        {"read": [12], "stored": [10], "quarantined": [1], "duplicates": [1]},
        index=pd.Index(["patients"], name="table"),
    )
    report = types.SimpleNamespace(counts=counts, url="sqlite:///:memory:")
    digitize = Recorder(report)
    fake_module(monkeypatch, "medkit.digitize", digitize_hospital=digitize)

    main(["digitize", "--raw", str(tmp_path), "--db", "sqlite:///:memory:"])

    # Under pytest stderr is not a terminal, so no progress bar is drawn.
    assert digitize.calls == [
        ((), {"raw_dir": tmp_path, "url": "sqlite:///:memory:", "progress": False})
    ]
    assert capsys.readouterr().out.splitlines() == [
        "Stored in sqlite:///:memory::",
        "          read  stored  quarantined  duplicates",
        "table                                          ",
        "patients    12      10            1           1",
    ]


def test_digitize_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    report = types.SimpleNamespace(
        counts=pd.DataFrame(), url="sqlite:///build/medkit.db"
    )
    digitize = Recorder(report)
    fake_module(monkeypatch, "medkit.digitize", digitize_hospital=digitize)

    main(["digitize"])

    assert digitize.calls == [
        ((), {"url": f"sqlite:///{BUILD_DIR / 'medkit.db'}", "progress": False})
    ]


def test_datasets_check_passes_folder_and_size(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    check = Recorder([])
    fake_module(monkeypatch, "medkit.datasets", check_datasets=check)

    main(["datasets", "check", "--dir", str(tmp_path), "--patients", "300"])

    assert check.calls == [((tmp_path,), {"n_patients": 300})]


def test_main_missing_file_prints_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no_such_folder"

    status = main(["digitize", "--raw", str(missing), "--db", "sqlite://"])

    error = capsys.readouterr().err
    assert status == 1
    assert error.startswith("medkit: error: ")
    assert error.count("\n") == 1
    assert str(missing) in error


def test_course_build_runs_steps_in_order(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    steps: list[str] = []

    def step(name: str, result: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            steps.append(name)
            return result

        return run

    fake_module(
        monkeypatch, "medkit.datasets", check_datasets=step("datasets", [Path("a")])
    )
    monkeypatch.setattr(
        lessons, "run_lessons", step("lessons", [lesson_result("00_w", 1.0)])
    )
    release = Release("ps1_digitization", Path("build/release/ps1_digitization"), [])
    monkeypatch.setattr(grading, "release_assignments", step("release", [release]))
    monkeypatch.setattr(grading, "grade_demos", step("grade", [grade_report(6.0, 6.0)]))
    scores = pd.DataFrame(
        {
            "student": ["t1", "t1", "t2", "t2"],
            "item": ["a", "b", "a", "b"],
            "objective": ["read", "read", "read", "read"],
            "score": [1.0, 1.0, 0.0, 0.0],
            "max_score": [1.0, 1.0, 1.0, 1.0],
        }
    )
    cohort_result = types.SimpleNamespace(
        cohort=types.SimpleNamespace(
            students=["t1", "t2"], assignment="ps1_digitization"
        ),
        seconds=3.0,
        analysis=analytics.analyse_scores(scores, "ps1_digitization"),
        report=Path("build/report/ps1_digitization/index.html"),
    )
    monkeypatch.setattr(cohort, "grade_demo_cohort", step("cohort", cohort_result))

    status = main(["course", "build"])

    output = capsys.readouterr().out
    assert status == 0
    assert steps == ["datasets", "lessons", "release", "grade", "cohort"]
    assert output.startswith("Datasets: 1 files match the generator.\nLessons run: 1\n")
    assert "Assignments released: 1\n" in output
    assert "zero_fill                   6 / 11   designed    6  ok\n" in output
    assert "Demonstration cohort: 2 submissions of ps1_digitization graded" in output
    assert output.endswith("  to reteach: none\n")


def test_course_build_stops_at_failed_step(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_module(monkeypatch, "medkit.datasets", check_datasets=Recorder([]))
    error = NotebookError("Lesson 00_welcome.ipynb failed in cell 3")
    monkeypatch.setattr(lessons, "run_lessons", Recorder(error=error))
    release = Recorder([])
    monkeypatch.setattr(grading, "release_assignments", release)

    status = main(["course", "build"])

    assert status == 1
    assert release.calls == []
    assert capsys.readouterr().err == (
        "medkit: error: Lesson 00_welcome.ipynb failed in cell 3\n"
    )
