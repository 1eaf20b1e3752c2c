"""This project beside its peers, in one run, on one PostgreSQL it starts itself.

    .venv/bin/python -m bench.peers                  # everything, median of 3 (~10 min)
    .venv/bin/python -m bench.peers --repeats 1 --only ours-1,floor

The server is a fresh ``pgserver`` cluster (initdb defaults) in a temporary
directory, stopped and deleted at the end; nothing else runs on it. Systems:

* ``ours-1``, ``ours-2``: this project's broker with the production middleware
  stack (``broker.py``), 1 and 2 ``dramatiq`` processes x 8 threads;
* ``dramatiq-pg``: plain dramatiq-pg 0.12 with the same Dramatiq middleware;
* ``floor``: ``bench/floor.py``, the least a Python queue on psycopg2 does
  (claim one row and delete it, 8 threads, LISTEN), the floor the others stand on.

The same measures for each: enqueue one by one (a job per statement, as a web
request sends one) and in batches of 1,000, drain of 20,000 queued no-op jobs
(from the first job taken to the last one finished), pickup latency of a job
sent to an idle worker (p50, p99), and the peak RSS of one worker process
during the drain. Each figure is the median of ``--repeats`` runs. The table is
printed and written to ``bench/results/peers-<date>.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg2

from bench import broker_bench, floor

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SYSTEMS = ["ours-1", "ours-2", "dramatiq-pg", "floor"]
LABELS = {
    "ours-1": "**this project**, 1 process x 8 threads",
    "ours-2": "this project, 2 processes x 8 threads",
    "dramatiq-pg": "plain dramatiq-pg 0.12, 1 process x 8 threads",
    "floor": "Python floor (psycopg2, claim 1 + delete, LISTEN, 8 threads)",
}


@dataclass
class Run:
    single: list[float] = field(default_factory=list)
    batch: list[float] = field(default_factory=list)
    drain: list[float] = field(default_factory=list)
    stalled: list[int] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# -- the floor ---------------------------------------------------------------

def floor_enqueue(url: str, single: int, batch: int) -> tuple[float, float]:
    floor.setup(url)
    conn = psycopg2.connect(url)
    conn.autocommit = True
    cur = conn.cursor()
    started = time.perf_counter()
    for i in range(single):
        cur.execute(floor.ENQUEUE, (json.dumps({"kind": "noop", "i": i}),))
    one = single / (time.perf_counter() - started)
    started = time.perf_counter()
    for start in range(0, batch, 1000):
        cur.execute(floor.ENQUEUE_MANY,
                    ([json.dumps({"kind": "noop", "i": i}) for i in range(start, start + 1000)],))
    many = batch / (time.perf_counter() - started)
    conn.close()
    return one, many


def floor_worker(url: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "bench.floor", "worker", url, "8"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def floor_stop(proc: subprocess.Popen) -> tuple[float, float, int]:
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    _, first, last, done = out.split()[-4:]
    return float(first), float(last), int(done)


def floor_drain(url: str, count: int) -> tuple[float, float]:
    floor.setup(url)
    floor.fill(url, count)
    proc = floor_worker(url)
    peak = 0.0
    conn = psycopg2.connect(url)
    conn.autocommit = True
    cur = conn.cursor()
    while True:
        time.sleep(0.25)
        peak = max(peak, psutil.Process(proc.pid).memory_info().rss / 2**20)
        cur.execute(f"SELECT count(*) FROM {floor.SCHEMA}.jobs")
        if cur.fetchone()[0] == 0:
            break
    conn.close()
    first, last, done = floor_stop(proc)
    return done / max(last - first, 1e-3), peak


def floor_pickup(url: str, samples: int) -> list[float]:
    floor.setup(url)
    proc = floor_worker(url)
    conn = psycopg2.connect(url)
    conn.autocommit = True
    cur = conn.cursor()
    try:
        for i in range(samples):
            cur.execute(floor.ENQUEUE, (json.dumps({"kind": "ping", "sent_at": time.time()}),))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                cur.execute(f"SELECT count(*) FROM {floor.SCHEMA}.pickups")
                if cur.fetchone()[0] > i:
                    break
                time.sleep(0.005)
            time.sleep(0.01)  # idle again, as for the brokers
        cur.execute(f"SELECT (started_at - sent_at) * 1000 FROM {floor.SCHEMA}.pickups")
        return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()
        floor_stop(proc)


# -- one run of one system ---------------------------------------------------

def run_once(url: str, system: str, run: Run, *, drain: int, single: int, batch: int,
             pickups: int) -> None:
    if system == "floor":
        one, many = floor_enqueue(url, single, batch)
        rate, peak = floor_drain(url, drain)
        latencies = floor_pickup(url, pickups)
        run.single.append(one)
        run.batch.append(many)
        run.drain.append(rate)
        run.rss.append(peak)
    else:
        kind = "plain" if system == "dramatiq-pg" else "ours"
        processes = 2 if system == "ours-2" else 1
        single_rate, batch_rate = broker_bench.measure_enqueue(url, kind, single, batch)
        run.single.append(single_rate)
        if batch_rate is not None:
            run.batch.append(batch_rate)
        result = broker_bench.measure_drain(url, kind, drain, budget=120.0, processes=processes)
        run.drain.append(result.rate)
        run.rss.append(result.peak_rss_mb)
        if result.stalled:
            run.stalled.append(result.done)
        latencies = broker_bench.measure_pickup(url, kind, pickups)
        broker_bench.reset_schema(url, kind)
    run.p50.append(broker_bench.percentile(latencies, 50))
    run.p99.append(broker_bench.percentile(latencies, 99))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = psutil.virtual_memory().total / 2**30
    return (f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, "
            f"{platform.system()} {platform.release()}")


def table(results: dict[str, Run], *, drain: int) -> str:
    def num(value: float | None, fmt: str = ",.0f") -> str:
        return "-" if value is None else format(value, fmt)

    lines = [
        f"| system | enqueue 1-by-1 /s | batch enqueue /s | drain {drain:,} /s "
        "| pickup p50 ms | pickup p99 ms | worker RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for system, run in results.items():
        drained = num(median(run.drain))
        if run.stalled:
            drained += f" (stalled at {int(statistics.median(run.stalled)):,})"
        lines.append(
            f"| {LABELS[system]} | {num(median(run.single))} | {num(median(run.batch))} "
            f"| {drained} | {num(median(run.p50), '.1f')} | {num(median(run.p99), '.1f')} "
            f"| {num(median(run.rss))} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(SYSTEMS),
                        help=f"comma-separated, of {', '.join(SYSTEMS)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--drain", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--pickups", type=int, default=200)
    args = parser.parse_args()
    systems = [s for s in args.only.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems: {sorted(unknown)}")

    import pgserver

    with tempfile.TemporaryDirectory(prefix="bench-peers-") as data:
        server = pgserver.get_server(Path(data), cleanup_mode="stop")
        try:
            url = server.get_uri()
            (version,) = broker_bench.execute(url, "SHOW server_version")[0]
            results = {system: Run() for system in systems}
            # Round-robin, so a slow moment of the machine falls on every system alike.
            for repeat in range(args.repeats):
                for system in systems:
                    print(f"[{repeat + 1}/{args.repeats}] {system} ...", flush=True)
                    run_once(url, system, results[system], drain=args.drain,
                             single=args.single, batch=args.batch, pickups=args.pickups)
        finally:
            server.cleanup()
    when = datetime.datetime.now(datetime.UTC)
    text = "\n".join([
        f"Measured {when:%Y-%m-%d %H:%M} UTC on {machine()}, PostgreSQL {version} "
        "(fresh cluster, initdb defaults), no-op jobs, median of "
        f"{args.repeats}; `python -m bench.peers`.",
        "",
        table(results, drain=args.drain),
        "",
    ])
    print()
    print(text)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"peers-{when:%Y%m%d-%H%M}.md"
    out.write_text(text)
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
