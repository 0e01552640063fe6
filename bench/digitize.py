"""Benchmark of stage 1 on about 1,000,000 visit rows.

The script generates the synthetic hospital with ``medkit.datasets.generate``
(340,000 patients by default, about 1,020,000 visits) and writes its visits
export, which is GB18030 text. It then times, in separate child processes so
that each starts with the same memory:

* ``pandas.read_csv`` of the file alone, with its default type inference;
* ``read -> clean -> encode -> store`` of the same file into a SQLite file. The
  file is read by ``medkit._reading.read_categorical``, the reader that
  ``digitize_hospital`` uses: ``read_table`` with the columns whose values
  repeat as categoricals of their text, which ``clean`` accepts as well.

Each task runs ``--repeat`` times, alternating, and the fastest run counts. The
script prints both times and their ratio (target: at most 3), and the CPU time
of the same runs, which other processes on the machine disturb less than the
elapsed time. It also prints the peak memory of each task, which is the increase
of the child's peak resident set size over its size after imports, and the
pipeline's peak as a multiple of the file size (target: at most 4).

Run it with ``make bench`` or ``python bench/digitize.py --patients 340000``.
The peak resident set size comes from ``/proc/self/status`` on Linux and from
``resource.getrusage`` elsewhere, so the script runs on Linux and macOS only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _measure import peak_rss_mib, run_child

TIME_TARGET = 3.0
MEMORY_TARGET = 4.0


def _child(task: str, path: Path, database: Path) -> None:
    """Run one measured task and print its seconds, CPU seconds and peak memory
    as JSON."""
    import pandas as pd

    from medkit import datasets
    from medkit._reading import read_categorical
    from medkit.digitize import VISITS, clean, encode, store

    baseline = peak_rss_mib()
    steps = {}
    start = time.perf_counter()
    cpu_start = time.process_time()
    if task == "read_csv":
        pd.read_csv(path, encoding=datasets.RAW_ENCODINGS["visits"])
    else:
        result = clean(read_categorical(path, VISITS), VISITS)
        steps["read + clean"] = time.perf_counter() - start
        codes, codebook = encode(result.frame, list(VISITS.categorical), table="visits")
        steps["encode"] = time.perf_counter() - start - sum(steps.values())
        store(
            {
                "visits": codes,
                "codebook": codebook.entries,
                "quarantine": result.quarantine,
                "duplicates": result.duplicates,
            },
            f"sqlite:///{database}",
            keys={"visits": "visit_id"},
        )
        steps["store"] = time.perf_counter() - start - sum(steps.values())
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    peak = peak_rss_mib() - baseline
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "peak_mib": peak,
                "steps": steps,
            }
        )
    )


def _measure(task: str, path: Path, database: Path) -> dict[str, float]:
    return run_child(__file__, task, str(path), str(database))


def _write_visits(
    directory: Path, n_patients: int, seed: int
) -> tuple[Path, int, float]:
    from medkit import datasets

    start = time.perf_counter()
    data = datasets.generate(n_patients=n_patients, seed=seed)
    path = directory / "visits.csv"
    data.raw["visits"].to_csv(
        path,
        index=False,
        lineterminator="\n",
        encoding=datasets.RAW_ENCODINGS["visits"],
    )
    return path, len(data.raw["visits"]), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--patients", type=int, default=340_000, help="patients to generate"
    )
    parser.add_argument("--seed", type=int, default=2026, help="generator seed")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each task, of which the fastest counts",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task, path, database = args.child
        _child(task, Path(path), Path(database))
        return

    with tempfile.TemporaryDirectory(prefix="medkit-bench-") as folder:
        directory = Path(folder)
        path, rows, generated = _write_visits(directory, args.patients, args.seed)
        size_mib = path.stat().st_size / 2**20
        print(
            f"visits.csv: {rows:,} rows, {size_mib:.1f} MiB (GB18030), "
            f"generated in {generated:.1f} s"
        )

        database = directory / "medkit.db"
        runs: dict[str, list[dict[str, float]]] = {"read_csv": [], "pipeline": []}
        for _ in range(args.repeat):
            for task in runs:
                # Every pipeline run writes a new database file.
                database.unlink(missing_ok=True)
                runs[task].append(_measure(task, path, database))

    fastest = {
        task: min(done, key=lambda run: run["seconds"]) for task, done in runs.items()
    }
    peak = {task: max(run["peak_mib"] for run in done) for task, done in runs.items()}
    for task, label in (
        ("read_csv", "pandas.read_csv alone:           "),
        ("pipeline", "read -> clean -> encode -> store:"),
    ):
        print(
            f"{label} {fastest[task]['seconds']:6.2f} s "
            f"(CPU {fastest[task]['cpu_seconds']:.2f} s)   peak +{peak[task]:.0f} MiB "
            f"({peak[task] / size_mib:.1f} x file size)"
        )
    for step, seconds in fastest["pipeline"]["steps"].items():
        print(f"  {step:<14} {seconds:6.2f} s")

    ratio = fastest["pipeline"]["seconds"] / fastest["read_csv"]["seconds"]
    cpu_ratio = fastest["pipeline"]["cpu_seconds"] / fastest["read_csv"]["cpu_seconds"]
    memory_ratio = peak["pipeline"] / size_mib
    print(f"time ratio:   {ratio:.2f} (target <= {TIME_TARGET:g}; CPU {cpu_ratio:.2f})")
    print(f"memory ratio: {memory_ratio:.2f} x file size (target <= {MEMORY_TARGET:g})")


if __name__ == "__main__":
    main()
