"""Measuring helpers shared by the benchmark scripts in this folder."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path


def peak_rss_mib() -> float:
    """Return the peak resident set size of this process image, in MiB."""
    # On Linux, ru_maxrss survives fork and exec, so a child would start with the
    # parent's peak. VmHWM is the peak of this process image alone.
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # macOS: bytes


def run_child(script: str, task: str, *arguments: str) -> dict:
    """Run ``script --child task arguments`` and return the JSON its last line prints.

    Each measured task runs in a fresh process, so every task starts from the
    same memory. A failed child ends the benchmark with its error output.
    """
    command = [sys.executable, script, "--child", task, *arguments]
    child = subprocess.run(command, capture_output=True, text=True, check=False)
    if child.returncode:
        raise SystemExit(f"The {task} run failed:\n{child.stderr}")
    return json.loads(child.stdout.splitlines()[-1])
