"""The Python floor on psycopg 3: bench/floor.py's queue, driven like the peers.

    python floor_psycopg3_bench.py ADMIN_URL setup|version|drop
    python floor_psycopg3_bench.py ADMIN_URL enqueue SINGLE BATCH
    python floor_psycopg3_bench.py ADMIN_URL fill COUNT [analyze]
    python floor_psycopg3_bench.py ADMIN_URL worker [EXPECT]     # until SIGTERM
    python floor_psycopg3_bench.py ADMIN_URL pickup SAMPLES

What bench/floor.py does on psycopg2, on psycopg 3 (``psycopg[binary]``, its C
implementation, from the peers' virtualenv) as a minimal program would use it:
the sync API, threads, connections made with ``autocommit=True`` and psycopg's
defaults otherwise: server-side binding (parameters go apart from the query, by
the extended protocol) and a query prepared on its connection once it has run 5
times (``prepare_threshold``). One table (``jobs``: bigserial id, jsonb payload)
in a database of its own (``bench_floor3``), ``json`` payloads, no middleware,
no leases, no retries.

Enqueue one by one is one statement a job, as bench/floor.py's
``INSERT ...; NOTIFY`` is: the extended protocol takes one statement per
execute, so the INSERT goes in a CTE and the statement's SELECT notifies
(``WITH job AS (INSERT ...) SELECT pg_notify('jobs', '')``): one round trip and
one transaction a job, as on psycopg2, not the two of two executes under
autocommit. Batches of 1,000 are bench/floor.py's insert of ``unnest`` over a
jsonb array (a list of ``json.dumps`` strings), in the same kind of CTE with its
one NOTIFY. ``fill`` is bench/floor.py's ``generate_series`` insert. The batch
is where the two drivers part most: psycopg 3 sends a ``%s`` list of str as a
text-format array literal, which it builds with a Python loop (about 4.4 ms per
1,000 strings here, three times their ``json.dumps``), so its batches come to
about half of psycopg2's rate or less. With ``%b`` (a binary ``text[]``, dumped in
C) the same batches ran about 290,000 jobs/s on this machine, above psycopg2's;
the floor keeps the default a minimal program would write.

The worker is bench/floor.py's: 8 threads, each with its own connection and
cursor, LISTEN, and a loop that claims one row and deletes it in one statement
(``DELETE ... WHERE id = (SELECT id ... ORDER BY id FOR UPDATE SKIP LOCKED LIMIT
1) RETURNING payload::text``, then ``json.loads``). A thread that finds nothing
waits for a notification with psycopg 3's ``Connection.notifies(timeout=0.5,
stop_after=1)``, so at most 0.5 s before it polls again. (psycopg 3 keeps the
notifications that arrive while a claim runs and hands them to the next
``notifies()``, where bench/floor.py's select on the socket sees only the new
ones.) The drain's window is the worker's own clock, as bench/floor.py's: first
claim to last job finished. Pickup is the peers' (``peer_common.pickups``):
each ping sent by the same one-statement enqueue, and the worker, right after
its claim, writes (sent_at, its time) into bench_pickups on its own connection.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time

import psycopg
from peer_common import (
    database_url,
    pickups,
    ping_payload,
    recreate_database,
    say,
)
from peer_common import main as peer_main

DATABASE = "bench_floor3"
THREADS = 8
CHANNEL = "jobs"
TABLE = "CREATE TABLE jobs (id bigserial PRIMARY KEY, payload jsonb NOT NULL)"
ENQUEUE = (f"WITH job AS (INSERT INTO jobs (payload) VALUES (%s))"
           f" SELECT pg_notify('{CHANNEL}', '')")
ENQUEUE_MANY = (f"WITH batch AS (INSERT INTO jobs (payload) SELECT * FROM unnest(%s::jsonb[]))"
                f" SELECT pg_notify('{CHANNEL}', '')")
CLAIM = """
DELETE FROM jobs
WHERE id = (SELECT id FROM jobs ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1)
RETURNING payload::text
"""


def setup(admin_url: str) -> str:
    url = recreate_database(admin_url, DATABASE)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(TABLE)
    return url


def enqueue(admin_url: str, single: int, batch: int) -> None:
    url = setup(admin_url)
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.cursor()
        started = time.perf_counter()
        for i in range(single):
            cur.execute(ENQUEUE, (json.dumps({"kind": "noop", "i": i}),))
        one = single / (time.perf_counter() - started)
        started = time.perf_counter()
        for start in range(0, batch, 1000):
            cur.execute(ENQUEUE_MANY, ([json.dumps({"kind": "noop", "i": i})
                                        for i in range(start, start + 1000)],))
        many = batch / (time.perf_counter() - started)
    say("enqueue", one, many)


def fill(admin_url: str, count: int, analyze: bool) -> None:
    url = setup(admin_url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO jobs (payload) SELECT jsonb_build_object("
                     "'kind', 'noop', 'i', i) FROM generate_series(1, %s) AS i", (count,))
        if analyze:
            conn.execute("ANALYZE jobs")
    say("filled", count)


class Worker:
    def __init__(self, url: str, expect: int, threads: int = THREADS) -> None:
        self.url = url
        self.expect = expect
        self.threads = threads
        self.stop = threading.Event()
        self.listening = threading.Semaphore(0)
        self.lock = threading.Lock()
        self.first: float | None = None
        self.last: float | None = None
        self.done = 0  # no-op jobs finished

    def run(self) -> None:
        workers = [threading.Thread(target=self.loop, daemon=True) for _ in range(self.threads)]
        for thread in workers:
            thread.start()
        for _ in workers:  # ready once every thread has said LISTEN
            if not self.listening.acquire(timeout=30):
                sys.exit("floor-psycopg3: a worker thread did not start")
        say("ready")
        reported = False
        while not self.stop.is_set():
            with self.lock:
                done, first, last = self.done, self.first, self.last
            say("progress", done)
            if not reported and self.expect and done >= self.expect:
                say("window", first, last, done)
                reported = True
            self.stop.wait(0.5)
        for thread in workers:
            thread.join(5)

    def loop(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.cursor()
            cur.execute(f"LISTEN {CHANNEL}")
            self.listening.release()
            while not self.stop.is_set():
                cur.execute(CLAIM)
                row = cur.fetchone()
                if row is None:
                    for _ in conn.notifies(timeout=0.5, stop_after=1):
                        pass
                    continue
                taken = time.time()
                payload = json.loads(row[0])
                if payload.get("kind") == "ping":
                    cur.execute("INSERT INTO bench_pickups VALUES (%s, %s)",
                                (payload["sent_at"], taken))
                    continue
                with self.lock:
                    self.first = taken if self.first is None else min(self.first, taken)
                    self.last = time.time()
                    self.done += 1


def worker(admin_url: str, expect: int) -> None:
    runner = Worker(database_url(admin_url, DATABASE), expect)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner.stop.set())
    runner.run()


async def pickup(admin_url: str, samples: int) -> None:
    url = database_url(admin_url, DATABASE)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = conn.cursor()

        async def send(sent_at: float) -> None:
            await cur.execute(ENQUEUE, (json.dumps(ping_payload(sent_at)),))

        await pickups(url, samples, send)


def main() -> None:
    peer_main(__doc__, version=psycopg.__version__, database=DATABASE, setup=setup,
              enqueue=enqueue, fill=fill, worker=worker, pickup=pickup)


if __name__ == "__main__":
    main()
