"""Figures of the broker's liveness: SIGKILL rescue time and due-time lateness.

    .venv/bin/python -m bench.broker_faults --url postgresql://.../db [--kills 5]

* rescue: two ``dramatiq`` workers with the shipped liveness defaults (lease
  20 s, heartbeat 5 s, rescue 1 s); one runs a long job and is SIGKILLed; the
  time from the kill to the job's second start (server clock) is reported.
* lateness: 200 messages sent with ``delay=100`` ms, 10 ms apart, on one
  in-process worker; start (actor's first line) minus due time, p50/p99/max.

The outage and network-cut figures come from the acceptance tests:
``pytest tests/acceptance/test_faults.py`` (each asserts 0 jobs run twice).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import dramatiq
import psycopg2
from psycopg2 import sql

ROOT = Path(__file__).resolve().parent.parent
DEFAULTS = {"JOBS_LEASE_TIMEOUT": "20", "JOBS_HEARTBEAT_INTERVAL": "5",
            "JOBS_RESCUE_INTERVAL": "1", "JOBS_POLL_INTERVAL": "1"}


def rescue_times(url: str, schema: str, kills: int) -> list[float]:
    env = {**os.environ, **DEFAULTS, "DATABASE_URL": url, "JOBS_SCHEMA_NAME": schema,
           "JOBS_PIPELINE_SCHEMA": f"{schema}_pipeline"}
    logs = Path(tempfile.mkdtemp(prefix="broker-faults-"))
    print(f"worker logs: {logs}", file=sys.stderr)

    def worker(name: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "bench.fault_actors", "--processes", "1",
             "--threads", "2", "--queues", "fault-hold"],
            cwd=ROOT, env=env, stdout=open(logs / f"{name}.log", "w"),
            stderr=subprocess.STDOUT, start_new_session=True)

    def wait(condition, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {what} (logs in {logs})")
            time.sleep(0.01)

    def starts(key: str) -> list[float]:
        rows = run(url, "SELECT extract(epoch FROM at)::float8 FROM {}.fault_runs"
                        " WHERE key = %s ORDER BY at", schema, key)
        return [at for (at,) in rows]

    from bench.fault_actors import fault_hold

    results = []
    for attempt in range(kills):
        victim = worker(f"victim{attempt}")
        survivor = None
        try:
            wait(lambda a=attempt: "ready" in (logs / f"victim{a}.log").read_text(), "the victim")
            key = f"kill-{attempt}"
            fault_hold.send(key=key, seconds=120)
            wait(lambda k=key: len(starts(k)) == 1, "the job to start")
            survivor = worker(f"survivor{attempt}")
            wait(lambda a=attempt: "ready" in (logs / f"survivor{a}.log").read_text(),
                 "the survivor")
            os.killpg(victim.pid, signal.SIGKILL)
            killed = time.time()
            wait(lambda k=key: len(starts(k)) == 2, "the job to start again")
            results.append(starts(key)[1] - killed)
            print(f"killed at {killed:.3f}, started again at {starts(key)[1]:.3f}", file=sys.stderr)
        finally:
            for process in (victim, survivor):
                if process is not None and process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            run(url, 'TRUNCATE {0}."queue", {0}.workers', schema)
    return results


def lateness(url: str, schema: str, count: int = 200) -> list[float]:
    from broker import broker

    started: dict[str, float] = {}
    lock = threading.Lock()

    @dramatiq.actor(broker=broker, queue_name="fault-late", actor_name="fault_late")
    def late(key: str) -> None:
        now = time.time()
        with lock:
            started[key] = now

    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=8, worker_timeout=100, queues={"fault-late"})
    worker.start()
    try:
        time.sleep(1)  # the worker's consumer is listening
        sent = {}
        for i in range(count):
            sent[f"l{i}"] = late.send_with_options(args=(f"l{i}",), delay=100)
            time.sleep(0.01)
        deadline = time.monotonic() + 30
        while len(started) < count and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    due = dict(run(url, 'SELECT message_id::text, extract(epoch FROM available_at)::float8 '
                        'FROM {}."queue" WHERE queue_name = %s', schema, "fault-late"))
    return sorted(started[key] - due[m.message_id] for key, m in sent.items() if key in started)


def run(url: str, text: str, schema: str, *params) -> list[tuple]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL(text).format(sql.Identifier(schema)), params)
        return cur.fetchall() if cur.description else []


def percentile(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--kills", type=int, default=5)
    args = parser.parse_args()
    schema = f"faults_{uuid.uuid4().hex[:6]}"
    os.environ.update({"DATABASE_URL": args.url, "JOBS_SCHEMA_NAME": schema,
                       "JOBS_PIPELINE_SCHEMA": f"{schema}_pipeline", **DEFAULTS})
    sys.path.insert(0, str(ROOT))
    from broker import broker

    broker.ensure_schema()
    run(args.url, "CREATE TABLE {}.fault_runs (key text, pid int, "
                  "at timestamptz DEFAULT clock_timestamp())", schema)
    try:
        late = lateness(args.url, schema)
        ms = [x * 1000 for x in late]
        print(f"due-time lateness, {len(ms)} messages delayed 100 ms: "
              f"p50 {statistics.median(ms):.1f} ms, p99 {percentile(ms, 99):.1f} ms, "
              f"max {max(ms):.1f} ms, min {min(ms):.1f} ms")
        times = rescue_times(args.url, schema, args.kills)
        print(f"SIGKILL to restart, {len(times)} kills (default settings): "
              + ", ".join(f"{t:.2f} s" for t in times)
              + f"; max {max(times):.2f} s")
    finally:
        broker.close()
        for name in (schema, f"{schema}_pipeline"):
            run(args.url, "DROP SCHEMA IF EXISTS {} CASCADE", name)


if __name__ == "__main__":
    main()
