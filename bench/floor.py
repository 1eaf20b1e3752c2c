"""The Python floor: the least a PostgreSQL job queue in Python can do per job.

One table, claim one row and delete it (``FOR UPDATE SKIP LOCKED``), LISTEN to
wake up, 8 threads with a connection each, ``json`` payloads, no middleware,
no leases, no retries. What this costs per job is what any broker on the same
driver costs at least; the gap to it is the broker's own price.

    python -m bench.floor worker URL [THREADS]   # until SIGTERM; prints its window
"""

from __future__ import annotations

import json
import select
import signal
import sys
import threading
import time

import psycopg2

SCHEMA = "bench_floor"
SETUP = f"""
DROP SCHEMA IF EXISTS {SCHEMA} CASCADE;
CREATE SCHEMA {SCHEMA};
CREATE TABLE {SCHEMA}.jobs (id bigserial PRIMARY KEY, payload jsonb NOT NULL);
CREATE TABLE {SCHEMA}.pickups (sent_at float8, started_at float8);
"""
ENQUEUE = f"INSERT INTO {SCHEMA}.jobs (payload) VALUES (%s); NOTIFY {SCHEMA}"
ENQUEUE_MANY = f"""
INSERT INTO {SCHEMA}.jobs (payload) SELECT * FROM unnest(%s::jsonb[]);
NOTIFY {SCHEMA}
"""
CLAIM = f"""
DELETE FROM {SCHEMA}.jobs
WHERE id = (SELECT id FROM {SCHEMA}.jobs ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1)
RETURNING payload::text
"""


def setup(url: str) -> None:
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(SETUP)
    conn.close()


def fill(url: str, count: int) -> None:
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(f"INSERT INTO {SCHEMA}.jobs (payload) SELECT jsonb_build_object("
                    "'kind', 'noop', 'i', i) FROM generate_series(1, %s) AS i", (count,))
    conn.close()


class Worker:
    def __init__(self, url: str, threads: int) -> None:
        self.url = url
        self.threads = threads
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.first: float | None = None
        self.last: float | None = None
        self.done = 0

    def run(self) -> None:
        workers = [threading.Thread(target=self.loop, daemon=True) for _ in range(self.threads)]
        for thread in workers:
            thread.start()
        print("ready", flush=True)
        self.stop.wait()
        for thread in workers:
            thread.join(5)
        print(f"window {self.first or 0} {self.last or 0} {self.done}", flush=True)

    def loop(self) -> None:
        conn = psycopg2.connect(self.url)
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute(f"LISTEN {SCHEMA}")
        while not self.stop.is_set():
            cur.execute(CLAIM)
            row = cur.fetchone()
            if row is None:
                select.select([conn], [], [], 0.5)
                conn.poll()
                conn.notifies.clear()
                continue
            taken = time.time()
            self.perform(json.loads(row[0]), cur, taken)
            with self.lock:
                self.first = taken if self.first is None else min(self.first, taken)
                self.last = time.time()
                self.done += 1

    @staticmethod
    def perform(payload: dict, cur, taken: float) -> None:
        if payload.get("kind") == "ping":
            cur.execute(f"INSERT INTO {SCHEMA}.pickups VALUES (%s, %s)",
                        (payload["sent_at"], taken))


def main() -> None:
    _, command, url, *rest = sys.argv
    assert command == "worker"
    worker = Worker(url, int(rest[0]) if rest else 8)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop.set())
    worker.run()


if __name__ == "__main__":
    main()
