"""Benchmark of stage 4: top-10 neighbours of 100,000 notes, and all pairs at 10,000.

The script generates the synthetic hospital with ``medkit.datasets.generate``
(100,000 patients, one admission note each, in English or Chinese) and writes
its notes to a temporary CSV file. Each measured task runs in a child process
of its own, which reads the notes, vectorizes them with
``medkit.personalize.vectorize_notes`` and then times one search:

* ``chunked``: ``medkit.personalize.nearest_neighbors`` with k=10 for every
  patient, at 100,000 notes (targets: at most 60 s and 2 GiB) and at the first
  10,000 notes;
* ``dense``: scikit-learn's ``cosine_similarity`` of all pairs of the first
  10,000 notes, which returns the dense N x N matrix.

Peak memory is the child's peak resident set size during the search minus its
size before the search; the peak is reset after vectorizing. For the 100,000
run the script also prints the peak of the whole child process, vectorizing
included. The 10,000 tasks run ``--repeat`` times, alternating; the fastest
time and the largest peak of each count. The script prints the dense task's
time and memory divided by the chunked task's (targets: memory ratio at least
10, time ratio at least 1, that is, chunked no slower).

Run it with ``python bench/personalize.py``. It reads ``/proc/self/status`` and
resets the peak through ``/proc/self/clear_refs``, so it runs on Linux only.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _measure import run_child

TIME_TARGET_SECONDS = 60.0
MEMORY_TARGET_MIB = 2048.0
MEMORY_RATIO_TARGET = 10.0
TIME_RATIO_TARGET = 1.0


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 2**10
    raise RuntimeError(f"/proc/self/status has no {field} line; run on Linux.")


def _reset_peak() -> None:
    # Writing 5 resets VmHWM to the current resident set size (Linux 4.0+).
    Path("/proc/self/clear_refs").write_text("5")


def _child(task: str, path: Path, n_notes: int) -> None:
    """Run one measured task and print its seconds and peak memory as JSON."""
    import pandas as pd
    from sklearn.metrics.pairwise import cosine_similarity

    from medkit import personalize

    notes = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=n_notes)
    start = time.perf_counter()
    vectors = personalize.vectorize_notes(notes)
    vectorize_seconds = time.perf_counter() - start

    setup_peak = _status_mib("VmHWM")
    _reset_peak()
    baseline = _status_mib("VmRSS")
    start = time.perf_counter()
    if task == "chunked":
        personalize.nearest_neighbors(vectors, k=10, progress=False)
    else:
        cosine_similarity(vectors.matrix)
    seconds = time.perf_counter() - start
    search_peak = _status_mib("VmHWM")
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mib": search_peak - baseline,
                "process_peak_mib": max(setup_peak, search_peak),
                "vectorize_seconds": vectorize_seconds,
            }
        )
    )


def _measure(task: str, path: Path, n_notes: int) -> dict[str, float]:
    return run_child(__file__, task, str(path), str(n_notes))


def _write_notes(
    directory: Path, n_patients: int, seed: int
) -> tuple[Path, int, float]:
    from medkit import datasets

    start = time.perf_counter()
    notes = datasets.generate(n_patients=n_patients, seed=seed).raw["notes"]
    path = directory / "notes.csv"
    notes.to_csv(path, index=False, lineterminator="\n", encoding="utf-8")
    chinese = int((notes["language"] == "zh").sum())
    return path, chinese, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--notes", type=int, default=100_000, help="notes of the large run"
    )
    parser.add_argument(
        "--compare", type=int, default=10_000, help="notes of the dense comparison"
    )
    parser.add_argument("--seed", type=int, default=2026, help="generator seed")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each comparison task, of which the fastest counts",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task, path, n_notes = args.child
        _child(task, Path(path), int(n_notes))
        return

    print(f"CPUs: {os.cpu_count()}; times are wall-clock seconds")
    with tempfile.TemporaryDirectory(prefix="medkit-bench-") as folder:
        path, chinese, generated = _write_notes(Path(folder), args.notes, args.seed)
        print(
            f"notes.csv: {args.notes:,} notes ({chinese:,} in Chinese), "
            f"generated in {generated:.1f} s"
        )

        large = _measure("chunked", path, args.notes)
        runs: dict[str, list[dict[str, float]]] = {"chunked": [], "dense": []}
        for _ in range(args.repeat):
            for task in runs:
                runs[task].append(_measure(task, path, args.compare))

    print(
        f"{args.notes:,} notes: vectorize {large['vectorize_seconds']:.1f} s; "
        f"top-10 neighbours of every patient {large['seconds']:.1f} s "
        f"(target <= {TIME_TARGET_SECONDS:g} s)"
    )
    print(
        f"  peak memory: {large['process_peak_mib']:,.0f} MiB for the whole process "
        f"(target <= {MEMORY_TARGET_MIB:,.0f} MiB), +{large['peak_mib']:,.0f} MiB "
        "during the search"
    )

    fastest = {task: min(run["seconds"] for run in done) for task, done in runs.items()}
    peak = {task: max(run["peak_mib"] for run in done) for task, done in runs.items()}
    print(f"{args.compare:,} notes, fastest of {args.repeat} runs:")
    for task, label in (
        ("chunked", "chunked nearest_neighbors, k=10:"),
        ("dense", "dense cosine_similarity, all pairs:"),
    ):
        print(f"  {label:<36} {fastest[task]:6.2f} s   peak +{peak[task]:,.0f} MiB")

    memory_ratio = peak["dense"] / max(peak["chunked"], 1.0)
    time_ratio = fastest["dense"] / fastest["chunked"]
    print(
        f"memory ratio dense/chunked: {memory_ratio:.1f} "
        f"(target >= {MEMORY_RATIO_TARGET:g})"
    )
    print(
        f"time ratio dense/chunked:   {time_ratio:.2f} "
        f"(target >= {TIME_RATIO_TARGET:g}: chunked no slower)"
    )


if __name__ == "__main__":
    main()
