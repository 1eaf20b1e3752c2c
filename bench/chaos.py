"""Chaos run: send many jobs while workers are killed and PostgreSQL restarts.

    .venv/bin/python -m bench.chaos                      # 10,000 jobs, a few minutes
    .venv/bin/python -m bench.chaos --jobs 1000 --workers 2

On a PostgreSQL of its own (embedded, so it can be restarted), it starts
``--workers`` ``dramatiq`` workers, sends ``--jobs`` jobs of three kinds (quick,
slow, failing once) at ``--rate`` a second, in batches and one by one, and
meanwhile every
``--interval`` seconds kills a random worker, with SIGKILL or SIGTERM, and
starts a new one; halfway through it restarts PostgreSQL. Then it waits for the
queue to drain and reports sent, completed, dead, lost and duplicated runs.
Exits 1 if any job was lost.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = "chaos"
FAST_LIVENESS = {
    "JOBS_HEARTBEAT_INTERVAL": "0.5", "JOBS_LEASE_TIMEOUT": "3", "JOBS_POLL_INTERVAL": "0.2",
    # Killed often on purpose: let a job lose its worker a few more times.
    "JOBS_MAX_RESCUES": "10",
}


@dataclass
class Report:
    sent: int
    completed: int
    dead: int
    lost: int
    duplicated_runs: int
    kills: int
    terms: int
    postgres_restarts: int
    seconds: float

    def __str__(self) -> str:
        return "\n".join(f"{name:>18}: {value:,}" if isinstance(value, int)
                         else f"{name:>18}: {value:.1f}"
                         for name, value in vars(self).items())


class Workers:
    """``dramatiq`` worker processes, each in its own process group."""

    def __init__(self, env: dict[str, str], log_dir: Path, metrics_port: int = 19300) -> None:
        self.env = env
        self.metrics_port = metrics_port
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []
        self.started = 0

    def start(self) -> None:
        log = open(self.log_dir / f"worker-{self.started}.log", "w")  # noqa: SIM115
        # Workers share this host: each serves its metrics on a port of its own.
        port = str(self.metrics_port + self.started)
        self.started += 1
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "bench.chaos_actors", "--processes", "1",
             "--threads", "4", "--worker-shutdown-timeout", "5000"],
            cwd=ROOT, env={**self.env, "JOBS_METRICS_PORT": port}, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        ))

    def stop_one(self, sig: int) -> None:
        proc = self.procs.pop(random.randrange(len(self.procs)))
        os.killpg(proc.pid, sig)
        if sig == signal.SIGTERM:
            # Running jobs may finish; do not wait for them before starting anew.
            threading.Thread(target=proc.wait, daemon=True).start()

    def stop_all(self) -> None:
        for proc in self.procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def send_all(jobs: int, rate: float, sent_keys: list[int], stop: threading.Event) -> None:
    """Send ``jobs`` jobs at about ``rate`` a second, riding out the PostgreSQL restart."""
    from bench import chaos_actors as chaos
    from broker import broker
    from pgbroker import EnqueueTimeout

    rng = random.Random(7)
    key = 0
    started = time.monotonic()
    while key < jobs and not stop.is_set():
        batch = []
        for _ in range(min(50, jobs - key)):
            kind = rng.random()
            if kind < 0.7:
                batch.append(chaos.chaos_quick.message(key=key, seconds=rng.uniform(0, 0.02)))
            elif kind < 0.9:
                batch.append(chaos.chaos_flaky.message(key=key, seconds=rng.uniform(0, 0.05)))
            else:
                batch.append(chaos.chaos_slow.message(key=key, seconds=rng.uniform(0.1, 0.8)))
            key += 1
        while True:
            try:
                if rng.random() < 0.5:
                    broker.enqueue_many(batch)
                else:  # one by one, as most producers send
                    for message in batch:
                        broker.enqueue(message)
                break
            except EnqueueTimeout:
                # The server is restarting. Messages keep their ids: resend only
                # those that did not make it.
                time.sleep(0.5)
                batch_left = missing(batch)
                sent_keys.extend(m.kwargs["key"] for m in batch if m not in batch_left)
                batch = batch_left
        sent_keys.extend(m.kwargs["key"] for m in batch)
        ahead = key / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)


def query(text: str, *params) -> list[tuple]:
    """Run chaos bookkeeping SQL on the run's database, waiting out its restart."""
    import psycopg2

    for _ in range(60):
        try:
            conn = psycopg2.connect(os.environ["DATABASE_URL"], connect_timeout=2)
        except psycopg2.OperationalError:
            time.sleep(0.5)
            continue
        try:
            with conn, conn.cursor() as cur:
                cur.execute(text.replace("{schema}", f'"{SCHEMA}"'), params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()
    raise RuntimeError("the chaos database did not come back")


def missing(messages: list) -> list:
    """Those of ``messages`` that are not in the queue table."""
    rows = query('SELECT message_id::text FROM {schema}."queue" WHERE message_id = ANY(%s::uuid[])',
                 [m.message_id for m in messages])
    present = {message_id for (message_id,) in rows}
    return [m for m in messages if m.message_id not in present]


def run(jobs: int, rate: float, workers: int, interval: float, drain_timeout: float) -> Report:
    from embedded import EmbeddedPostgres

    workdir = Path(tempfile.mkdtemp(prefix="pts-chaos-"))
    postgres = EmbeddedPostgres(workdir / "pg")
    env = {**os.environ, "DATABASE_URL": postgres.url, "JOBS_SCHEMA_NAME": SCHEMA,
           "PYTHONPATH": str(ROOT), **FAST_LIVENESS}
    os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
    from broker import broker

    broker.ensure_schema()
    query("CREATE TABLE {schema}.chaos_runs (key integer, pid integer)")
    query("CREATE TABLE {schema}.chaos_attempts (key integer)")

    pool = Workers(env, workdir)
    for _ in range(workers):
        pool.start()
    sent_keys: list[int] = []
    stop = threading.Event()
    producer = threading.Thread(target=send_all, args=(jobs, rate, sent_keys, stop))
    started = time.monotonic()
    producer.start()
    kills = terms = restarts = 0
    try:
        while producer.is_alive() or (restarts == 0):
            time.sleep(interval)
            if restarts == 0 and len(sent_keys) >= jobs // 2:
                print(f"restarting PostgreSQL after {len(sent_keys):,} sent", flush=True)
                postgres.stop()
                time.sleep(2)
                postgres.start()
                restarts += 1
            sig = random.choice([signal.SIGKILL, signal.SIGTERM])
            pool.stop_one(sig)
            kills, terms = (kills + 1, terms) if sig == signal.SIGKILL else (kills, terms + 1)
            pool.start()
        producer.join()
        print(f"sent {len(sent_keys):,}; {kills} SIGKILLs, {terms} SIGTERMs; draining",
              flush=True)
        deadline = time.monotonic() + drain_timeout
        while time.monotonic() < deadline:
            (pending,) = query("SELECT count(*) FROM {schema}.\"queue\" "
                               "WHERE state IN ('queued', 'consumed')")[0]
            if pending == 0:
                break
            time.sleep(0.5)
        seconds = time.monotonic() - started
        completed, duplicates, dead = query(
            """
            SELECT (SELECT count(DISTINCT key) FROM {schema}.chaos_runs),
                   (SELECT count(*) - count(DISTINCT key) FROM {schema}.chaos_runs),
                   (SELECT count(*) FROM {schema}."queue" AS q WHERE state = 'rejected'
                      AND NOT EXISTS (SELECT 1 FROM {schema}.chaos_runs AS r
                                      WHERE r.key = (q.message #>> ARRAY['kwargs', 'key'])::int))
            """)[0]
    finally:
        stop.set()
        pool.stop_all()
        broker.close()
        postgres.close()
    return Report(sent=len(sent_keys), completed=completed, dead=dead,
                  lost=len(set(sent_keys)) - completed - dead, duplicated_runs=duplicates,
                  kills=kills, terms=terms, postgres_restarts=restarts, seconds=seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=200, help="jobs sent a second")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--interval", type=float, default=1.5,
                        help="seconds between kills (default 1.5)")
    parser.add_argument("--drain-timeout", type=float, default=180)
    args = parser.parse_args()
    report = run(args.jobs, args.rate, args.workers, args.interval, args.drain_timeout)
    print(report)
    sys.exit(1 if report.lost else 0)


if __name__ == "__main__":
    main()
