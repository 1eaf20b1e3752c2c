"""Plain dramatiq-pg 0.12 and our broker, side by side, on the same PostgreSQL.

    .venv/bin/python -m bench.broker_bench                 # everything (~5 min)
    .venv/bin/python -m bench.broker_bench --sizes 1000,20000 --only ours

Measures, for each broker: enqueue rate (single send() and batches), pickup
latency (p50/p99) of single jobs sent to an idle worker, and drain rate and peak
worker memory for a backlog of 1,000, 20,000 and 100,000 no-op jobs, drained by
one ``dramatiq`` worker process with 8 threads. A drain's rate is its jobs over
the time from the first job taken to the last one finished (worker start-up
excluded); a drain that makes no progress for 15 s is reported as stalled.
Uses ``DATABASE_URL``, else the server at 127.0.0.1:5432 if one answers, else
the embedded one.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg2
from psycopg2 import sql

ROOT = Path(__file__).resolve().parent.parent
LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/test"
SCHEMAS = {"ours": "bench_ours", "plain": "bench_plain"}


@dataclass
class Drain:
    queued: int
    done: int
    seconds: float
    peak_rss_mb: float
    stalled: bool

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0


@dataclass
class Results:
    enqueue_single: float = 0.0
    enqueue_batch: float | None = None
    pickup_ms: list[float] = field(default_factory=list)
    drains: dict[int, Drain] = field(default_factory=dict)


def database_url() -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
        return LOCAL_URL
    except OSError:
        import pgserver

        return pgserver.get_server(ROOT / ".pgdata", cleanup_mode="stop").get_uri()


@contextmanager
def fresh_server(prefix: str) -> Iterator[str]:
    """The URL of a new ``pgserver`` cluster (initdb defaults) in a temporary
    directory, stopped and deleted when the block ends."""
    import pgserver

    with tempfile.TemporaryDirectory(prefix=prefix) as data:
        server = pgserver.get_server(Path(data), cleanup_mode="stop")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


def execute(url: str, statement: sql.Composable | str, params: tuple = ()) -> list[tuple]:
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def reset_schema(url: str, kind: str) -> None:
    schema = SCHEMAS[kind]
    ident = sql.Identifier(schema)
    execute(url, sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(ident))
    if kind == "plain":
        from dramatiq_pg import generate_init_sql

        execute(url, generate_init_sql(schema=schema))
    else:
        from pgbroker import migrations

        conn = psycopg2.connect(url)
        migrations.migrate(conn, schema)
        conn.close()
    execute(url, sql.SQL("CREATE TABLE {}.pickups (sent_at float8, started_at float8)")
            .format(ident))


def fill(url: str, kind: str, count: int) -> None:
    """Queue ``count`` no-op messages directly in SQL (fast and the same for both)."""
    schema = sql.Identifier(SCHEMAS[kind])
    execute(url, sql.SQL(
        """
        INSERT INTO {}.queue (message_id, queue_name, state, message)
        SELECT id, 'bench', 'queued', jsonb_build_object(
            'queue_name', 'bench', 'actor_name', 'noop', 'args', jsonb_build_array(i),
            'kwargs', '{{}}'::jsonb, 'options', '{{}}'::jsonb, 'message_id', id::text,
            'message_timestamp', (extract(epoch FROM now()) * 1000)::bigint)
        FROM (SELECT gen_random_uuid() AS id, i FROM generate_series(1, %s) AS i) AS s
        """).format(schema), (count,))


def env_for(url: str, kind: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": url, "JOBS_SCHEMA_NAME": SCHEMAS[kind],
            "BENCH_BROKER": kind, "PYTHONPATH": str(ROOT)}


def start_worker(url: str, kind: str, threads: int = 8, processes: int = 1) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "bench.workers", "--processes", str(processes),
         "--threads", str(threads)],
        cwd=ROOT, env=env_for(url, kind), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,  # its own group: stopped as one, children included
    )
    assert proc.stdout is not None
    ready = 0
    for line in proc.stdout:
        ready += "is ready for action" in line
        if ready == processes:
            return proc
    raise RuntimeError(f"{kind} worker did not start")


def stop_worker(proc: subprocess.Popen) -> None:
    # A stalled plain dramatiq-pg worker may never finish its shutdown, and its
    # sessions would keep their locks: stop the whole group, promptly.
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def worker_rss_mb(proc: subprocess.Popen) -> float:
    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        # The busiest process is the worker; the parent only supervises.
        return max(p.memory_info().rss for p in family) / 2**20
    except psutil.NoSuchProcess:
        return 0.0


def measure_drain(url: str, kind: str, count: int, budget: float, processes: int = 1,
                  analyze: bool = False) -> Drain:
    reset_schema(url, kind)
    fill(url, kind, count)
    if analyze:  # planner statistics of the full queue, as autovacuum would take
        execute(url, sql.SQL("ANALYZE {}.queue").format(sql.Identifier(SCHEMAS[kind])))
    count_done = sql.SQL("SELECT count(*) FROM {}.queue WHERE state = 'done'").format(
        sql.Identifier(SCHEMAS[kind]))
    proc = start_worker(url, kind, processes=processes)
    started = time.monotonic()
    peak, done, last_progress, last_done = 0.0, 0, started, -1
    try:
        while True:
            time.sleep(0.25)  # coarse: the count must not load the server being measured
            peak = max(peak, worker_rss_mb(proc))
            done = execute(url, count_done)[0][0]
            now = time.monotonic()
            if done >= count:
                return Drain(count, done, processing_window(url, kind), peak, stalled=False)
            if done != last_done:
                last_done, last_progress = done, now
            # No progress for 15 s, or over budget: report how far it got.
            if now - last_progress > 15 or now - started > budget:
                return Drain(count, done, last_progress - started, peak, stalled=True)
    finally:
        stop_worker(proc)


def processing_window(url: str, kind: str) -> float:
    """Seconds from the first job taken to the last one finished, by the server's clock.

    Plain dramatiq-pg records only when a message was taken (mtime), so its
    window ends at the last take: a little in its favour.
    """
    span = ("max(finished_at) - min(started_at)" if kind == "ours"
            else "max(mtime) - min(mtime)")
    (seconds,) = execute(url, sql.SQL("SELECT extract(epoch FROM {})::float8 FROM {}.queue")
                         .format(sql.SQL(span), sql.Identifier(SCHEMAS[kind])))[0]
    return max(seconds, 1e-3)


def measure_enqueue(url: str, kind: str, single: int, batch: int) -> tuple[float, float | None]:
    reset_schema(url, kind)
    code = f"""
import time, sys
import bench.workers as w
n = {single}
t = time.perf_counter()
for i in range(n):
    w.noop.send(i)
single = n / (time.perf_counter() - t)
batch = None
if w.KIND == "ours":
    n = {batch}
    t = time.perf_counter()
    for start in range(0, n, 1000):
        w.BROKER.enqueue_many([w.noop.message(i) for i in range(start, start + 1000)])
    batch = n / (time.perf_counter() - t)
print(single, batch)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env_for(url, kind),
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[-2]), (None if out[-1] == "None" else float(out[-1]))


def measure_pickup(url: str, kind: str, samples: int) -> list[float]:
    reset_schema(url, kind)
    proc = start_worker(url, kind)
    code = f"""
import time
import bench.workers as w
import psycopg2
conn = psycopg2.connect(w.ours.broker.url); conn.autocommit = True
cur = conn.cursor()
for i in range({samples}):
    w.ping.send(time.time())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        cur.execute('SELECT count(*) FROM "{SCHEMAS[kind]}".pickups')
        if cur.fetchone()[0] > i:
            break
        time.sleep(0.005)
    time.sleep(0.01)  # let the worker go idle again
cur.execute('SELECT (started_at - sent_at) * 1000 FROM "{SCHEMAS[kind]}".pickups')
print(" ".join(str(r[0]) for r in cur.fetchall()))
"""
    try:
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env_for(url, kind),
                             capture_output=True, text=True, check=True).stdout
    finally:
        stop_worker(proc)
    return [float(x) for x in out.split()]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def report(results: dict[str, Results], sizes: list[int]) -> str:
    kinds = list(results)
    rows = [("measure", *kinds)]

    def cell(kind: str, fn) -> str:
        try:
            return fn(results[kind])
        except (KeyError, TypeError):
            return "n/a"

    rows.append(("enqueue, single send() (jobs/s)",
                 *(cell(k, lambda r: f"{r.enqueue_single:,.0f}") for k in kinds)))
    rows.append(("enqueue, batches of 1,000 (jobs/s)",
                 *(cell(k, lambda r: f"{r.enqueue_batch:,.0f}") for k in kinds)))
    rows.append(("pickup latency p50 (ms)",
                 *(cell(k, lambda r: f"{percentile(r.pickup_ms, 50):.1f}") for k in kinds)))
    rows.append(("pickup latency p99 (ms)",
                 *(cell(k, lambda r: f"{percentile(r.pickup_ms, 99):.1f}") for k in kinds)))
    for size in sizes:
        def drain_cell(r: Results, size: int = size) -> str:
            d = r.drains[size]
            text = f"{d.rate:,.0f}/s"
            if d.stalled:
                text += f" (stalled at {d.done:,})"
            return text

        rows.append((f"drain {size:,} queued, 1 process x 8 threads",
                     *(cell(k, drain_cell) for k in kinds)))
        rows.append((f"  peak worker RSS at {size:,} (MB)",
                     *(cell(k, lambda r, s=size: f"{r.drains[s].peak_rss_mb:.0f}") for k in kinds)))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,20000,100000")
    parser.add_argument("--only", choices=["ours", "plain"])
    parser.add_argument("--pickups", type=int, default=300)
    parser.add_argument("--plain-budget", type=float, default=60.0,
                        help="seconds plain dramatiq-pg may spend on one drain")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    url = database_url()
    kinds = [args.only] if args.only else ["ours", "plain"]
    results: dict[str, Results] = {}
    for kind in kinds:
        result = results[kind] = Results()
        print(f"[{kind}] enqueue ...", flush=True)
        result.enqueue_single, result.enqueue_batch = measure_enqueue(url, kind, 3000, 30000)
        print(f"[{kind}] pickup latency ...", flush=True)
        result.pickup_ms = measure_pickup(url, kind, args.pickups)
        for size in sizes:
            print(f"[{kind}] drain {size:,} ...", flush=True)
            budget = args.plain_budget if kind == "plain" else 600.0
            result.drains[size] = measure_drain(url, kind, size, budget)
        reset_schema(url, kind)
    print()
    print(report(results, sizes))


if __name__ == "__main__":
    main()
