"""Benchmark of stage 3: a 100,000-record upload, then single-record GET load.

The script generates the synthetic hospital with ``medkit.datasets.generate``
(34,000 patients by default), builds its shared records with
``medkit.privacy.shared_records`` and keeps the first ``--records`` (100,000 by
default). It starts ``medkit serve`` as a child process on 127.0.0.1, with a
SQLite file in a temporary folder, and measures:

* ``upload``: ``SiteClient.upload`` of all records in batches of
  ``--batch-size`` (500), ``--in-flight`` (2) at a time, from the DataFrame to
  the last acknowledged batch. The server scans every batch with
  ``medkit.privacy.scan`` and stores it in one transaction, synced to disk
  (target: at most 10 s);
* ``GET /records/{record_id}`` of random stored records over ``--connections``
  keep-alive connections, for ``--seconds`` or ``--max-requests``, whichever
  comes first. It counts requests per second (target: at least 1,000) and the
  99th percentile of the latency (target: at most 50 ms).

The GET load comes from wrk when it is on the PATH (``--load wrk``), otherwise
from a Python load generator in this process (``--load python``): one asyncio
task per connection, each sending a request, reading the whole response and
timing it. The script prints which one ran. Either way the load generator and
the server share the machine's cores, so on a 2-core machine the figures are a
lower bound of what the server alone can do. On Linux the script also prints
the server's CPU time, which depends less on other work on the machine than
wall-clock figures do.

Run it with ``python bench/network.py``; it stops the server and deletes the
database when it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

THROUGHPUT_TARGET = 1000.0
P99_TARGET_MS = 50.0
UPLOAD_TARGET_SECONDS = 10.0
SEED = 2026
START_TIMEOUT_SECONDS = 60.0


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def _shared_records(n_patients: int, n_records: int):
    from medkit import datasets, privacy

    data = datasets.generate(n_patients=n_patients, seed=SEED)
    key = bytes.fromhex(privacy.new_key())
    records = privacy.shared_records(
        data.answer_key["patients"], data.answer_key["visits"], key, "A"
    )
    if len(records) < n_records:
        raise SystemExit(
            f"{n_patients} patients give only {len(records)} records; raise "
            f"--patients to get {n_records}."
        )
    return records.iloc[:n_records].reset_index(drop=True)


def _start_server(folder: Path, token: str) -> tuple[subprocess.Popen, str]:
    log = folder / "server.log"
    command = [
        sys.executable,
        "-c",
        "import sys; from medkit.cli import main; sys.exit(main())",
        "serve",
        "--site",
        "A",
        "--port",
        "0",
        "--db",
        f"sqlite:///{folder / 'site.db'}",
    ]
    with open(log, "wb") as output:
        server = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MEDKIT_TOKEN": token},
        )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        found = re.search(r"serving on (http://\S+)", log.read_text())
        if found:
            return server, found.group(1)
        if server.poll() is not None:
            raise SystemExit(f"medkit serve ended:\n{log.read_text()}")
        time.sleep(0.1)
    server.kill()
    raise SystemExit(f"medkit serve did not start within {START_TIMEOUT_SECONDS} s")


def _cpu_seconds(pid: int) -> float | None:
    """Return the CPU time (user and system) of a process so far, on Linux."""
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():
        return None
    # Fields 14 and 15 of /proc/PID/stat, counted after the command name.
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_delta(pid: int, before: float | None) -> float | None:
    after = _cpu_seconds(pid)
    return None if before is None or after is None else after - before


def _stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


# Python load generator ---------------------------------------------------------


async def _connection_loop(
    host: str,
    port: int,
    requests: list[bytes],
    stop_at: float,
    budget: list[int],
    latencies: list[float],
    failures: list[str],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while budget[0] > 0 and time.perf_counter() < stop_at:
            budget[0] -= 1
            request = random.choice(requests)
            start = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if not status_line.startswith(b"HTTP/1.1 200"):
                failures.append(status_line.decode("latin-1").strip())
    finally:
        writer.close()


def _python_load(
    url: str, token: str, ids: list[str], connections: int, seconds: float, limit: int
) -> dict:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    requests = [
        (
            f"GET /records/{record_id} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode("ascii")
        for record_id in ids
    ]
    latencies: list[float] = []
    failures: list[str] = []

    async def run() -> float:
        start = time.perf_counter()
        budget = [limit]
        await asyncio.gather(
            *(
                _connection_loop(
                    host,
                    int(port),
                    requests,
                    start + seconds,
                    budget,
                    latencies,
                    failures,
                )
                for _ in range(connections)
            )
        )
        return time.perf_counter() - start

    elapsed = asyncio.run(run())
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "failures": len(failures),
    }


# wrk ---------------------------------------------------------------------------


def _wrk_load(
    wrk: str,
    url: str,
    token: str,
    ids: list[str],
    connections: int,
    seconds: float,
    folder: Path,
) -> dict:
    script = folder / "records.lua"
    listed = ", ".join(f'"{record_id}"' for record_id in ids)
    script.write_text(
        f"local ids = {{{listed}}}\n"
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        "request = function()\n"
        '  return wrk.format("GET", "/records/" .. ids[math.random(#ids)])\n'
        "end\n"
    )
    command = [
        wrk,
        "--threads",
        "1",
        "--connections",
        str(connections),
        "--duration",
        f"{max(1, round(seconds))}s",
        "--latency",
        "--script",
        str(script),
        url,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    elapsed = _wrk_seconds(re.search(r"requests in ([\d.]+\w+),", output).group(1))
    failures = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests": requests,
        "seconds": elapsed,
        "p50_ms": _wrk_ms(re.search(r"50%\s+([\d.]+\w+)", output).group(1)),
        "p99_ms": _wrk_ms(re.search(r"99%\s+([\d.]+\w+)", output).group(1)),
        "failures": int(failures.group(1)) if failures else 0,
    }


def _wrk_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _wrk_seconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(ms|s|m)", text).groups()
    return float(number) * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


# Main --------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--records", type=int, default=100_000, help="records to upload"
    )
    parser.add_argument(
        "--patients", type=int, default=34_000, help="patients to generate"
    )
    parser.add_argument(
        "--batch-size", type=int, default=500, help="records per upload request"
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=2,
        help="upload batches sent before the first is acknowledged",
    )
    parser.add_argument(
        "--connections", type=int, default=8, help="concurrent GET connections"
    )
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="longest GET load, in seconds"
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=50_000,
        help="maximum GET requests that the Python load generator sends",
    )
    parser.add_argument(
        "--load",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="GET load generator: wrk if installed (auto), or Python",
    )
    args = parser.parse_args()

    from medkit import network

    print(f"CPUs: {os.cpu_count()}; times are wall-clock seconds")
    start = time.perf_counter()
    records = _shared_records(args.patients, args.records)
    print(
        f"{len(records):,} shared records generated in "
        f"{time.perf_counter() - start:.1f} s"
    )

    wrk = shutil.which("wrk") if args.load in ("auto", "wrk") else None
    if args.load == "wrk" and wrk is None:
        raise SystemExit("wrk is not on the PATH; use --load python or install wrk.")
    token = network.new_token()
    with tempfile.TemporaryDirectory(prefix="medkit-bench-") as name:
        folder = Path(name)
        server, url = _start_server(folder, token)
        try:
            with network.SiteClient(url, token, timeout=60.0) as client:
                cpu = _cpu_seconds(server.pid)
                client_cpu = time.process_time()
                start = time.perf_counter()
                result = client.upload(
                    records, batch_size=args.batch_size, in_flight=args.in_flight
                )
                upload_seconds = time.perf_counter() - start
                client_cpu = time.process_time() - client_cpu
                upload_cpu = _cpu_delta(server.pid, cpu)
                stored = client.health()["records"]
            if stored != len(records) or result.stored != len(records):
                raise SystemExit(
                    f"The site stores {stored:,} records after uploading "
                    f"{len(records):,}."
                )
            ids = random.Random(SEED).sample(list(records["record_id"]), 1000)
            cpu = _cpu_seconds(server.pid)
            if wrk:
                label = f"wrk, 1 thread, {args.connections} connections"
                load = _wrk_load(
                    wrk, url, token, ids, args.connections, args.seconds, folder
                )
            else:
                label = f"Python asyncio load generator, {args.connections} connections"
                load = _python_load(
                    url, token, ids, args.connections, args.seconds, args.max_requests
                )
            get_cpu = _cpu_delta(server.pid, cpu)
        finally:
            _stop_server(server)

    rate = len(records) / upload_seconds
    print(
        f"upload: {len(records):,} records in {result.batches} batches of "
        f"{args.batch_size}, {args.in_flight} in flight: {upload_seconds:.2f} s "
        f"({rate:,.0f} records/s) "
        f"(target <= {UPLOAD_TARGET_SECONDS:g} s: "
        f"{_verdict(upload_seconds <= UPLOAD_TARGET_SECONDS)})"
    )
    if upload_cpu is not None:
        print(f"  CPU time: server {upload_cpu:.1f} s, client {client_cpu:.1f} s")
    throughput = load["requests"] / load["seconds"]
    print(
        f"GET /records/{{record_id}} with {label}: {load['requests']:,} requests "
        f"in {load['seconds']:.1f} s, {load['failures']} failed"
    )
    print(
        f"  throughput: {throughput:,.0f} requests/s (target >= "
        f"{THROUGHPUT_TARGET:,.0f}: {_verdict(throughput >= THROUGHPUT_TARGET)})"
    )
    print(f"  latency p50: {load['p50_ms']:.1f} ms")
    print(
        f"  latency p99: {load['p99_ms']:.1f} ms (target <= {P99_TARGET_MS:g} ms: "
        f"{_verdict(load['p99_ms'] <= P99_TARGET_MS)})"
    )
    if get_cpu is not None and load["requests"]:
        per_request = get_cpu / load["requests"] * 1000
        print(f"  server CPU time: {per_request:.2f} ms per request")
    print(
        f"ratios to target: throughput {throughput / THROUGHPUT_TARGET:.2f} "
        f"(met at >= 1), p99 {load['p99_ms'] / P99_TARGET_MS:.2f} (met at <= 1), "
        f"upload {upload_seconds / UPLOAD_TARGET_SECONDS:.2f} (met at <= 1)"
    )


if __name__ == "__main__":
    main()
