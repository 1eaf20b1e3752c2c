"""PgQueuer's driver for bench/peers.py, run by the peers' virtualenv.

    python pgqueuer_bench.py ADMIN_URL setup|version|drop
    python pgqueuer_bench.py ADMIN_URL enqueue SINGLE BATCH
    python pgqueuer_bench.py ADMIN_URL fill COUNT [analyze]
    python pgqueuer_bench.py ADMIN_URL worker [EXPECT]     # until SIGTERM
    python pgqueuer_bench.py ADMIN_URL pickup SAMPLES

As its README and tools/benchmark.py do it: the asyncpg driver on uvloop (as
``pgq run`` runs), one ``PgQueuer`` woken by its LISTEN/NOTIFY channel, with 8
slots: ``run(max_concurrent_tasks=8)``, its worker-wide cap on jobs in flight
(``pgq run --max-concurrent-tasks``), and ``batch_size=4``, the largest that cap
allows (``run()`` refuses a cap under twice the batch; its default batch of 10
needs a cap of 20). Not ``entrypoint(concurrency_limit=8)`` with batches of 10:
that cap is fleet-wide per entrypoint, and since its status buffer flushes at
``batch_size`` finished jobs (or every 0.1 s), 8 finished jobs stay "picked",
holding the 8 slots, until the timer: 80 jobs/s. Without any cap (its
benchmark's way) it drains about twice as fast as here, with up to 10 and more
jobs in flight. Enqueue is ``Queries.enqueue``: one job a call, and its list
form for batches of 1,000. Tables are its default install (``durable``: all
logged, as ours). The drain's window is pgqueuer's own log: first ``picked``
row to last ``successful`` one.
"""

from __future__ import annotations

import asyncio
import json
import time
from importlib.metadata import version

import asyncpg
import uvloop
from peer_common import (
    Tally,
    database_url,
    dumps,
    pickups,
    ping_payload,
    recreate_database,
    say,
    stop_event,
)
from peer_common import main as peer_main
from pgqueuer import PgQueuer, Queries
from pgqueuer.db import AsyncpgDriver

DATABASE = "bench_pgqueuer"
# The worker's cap on jobs in flight (its ``--max-concurrent-tasks``), and the
# largest batch that cap allows (run() wants the cap >= 2 x the batch).
SLOTS = 8
BATCH = SLOTS // 2


async def setup(admin_url: str) -> str:
    url = recreate_database(admin_url, DATABASE)
    conn = await asyncpg.connect(url)
    await Queries(AsyncpgDriver(conn)).install()
    await conn.close()
    return url


async def enqueue(admin_url: str, single: int, batch: int) -> None:
    url = await setup(admin_url)
    conn = await asyncpg.connect(url)
    queries = Queries(AsyncpgDriver(conn))
    started = time.perf_counter()
    for i in range(single):
        await queries.enqueue("noop", dumps({"i": i}))
    one = single / (time.perf_counter() - started)
    started = time.perf_counter()
    for start in range(0, batch, 1000):
        payloads = [dumps({"i": i}) for i in range(start, start + 1000)]
        await queries.enqueue(["noop"] * 1000, payloads, [0] * 1000)
    many = batch / (time.perf_counter() - started)
    await conn.close()
    say("enqueue", one, many)


async def fill(admin_url: str, count: int, analyze: bool) -> None:
    url = await setup(admin_url)
    conn = await asyncpg.connect(url)
    queries = Queries(AsyncpgDriver(conn))
    for start in range(0, count, 1000):
        size = min(1000, count - start)
        await queries.enqueue(["noop"] * size, [dumps({"i": i}) for i in range(size)], [0] * size)
    if analyze:
        await conn.execute("ANALYZE")
    await conn.close()
    say("filled", count)


async def worker(admin_url: str, expect: int) -> None:
    url = database_url(admin_url, DATABASE)
    stop = stop_event()
    side = await asyncpg.connect(url)  # the bench's own writes and reads
    pgq = PgQueuer(AsyncpgDriver(await asyncpg.connect(url)))
    tally = Tally(expect)

    @pgq.entrypoint("noop")
    async def noop(job) -> None:
        tally.finished()

    @pgq.entrypoint("ping")
    async def ping(job) -> None:
        started_at = time.time()
        payload = json.loads(job.payload)
        await side.execute("INSERT INTO bench_pickups VALUES ($1, $2)",
                           payload["sent_at"], started_at)

    async def window() -> tuple[float, float, int] | None:
        if await side.fetchval("SELECT count(*) FROM pgqueuer WHERE entrypoint = 'noop'"):
            return None  # finished by the handler, not yet recorded by pgqueuer
        row = await side.fetchrow(
            "SELECT extract(epoch FROM min(created) FILTER (WHERE status = 'picked'))::float8,"
            " extract(epoch FROM max(created) FILTER (WHERE status = 'successful'))::float8,"
            " count(*) FILTER (WHERE status = 'successful')"
            " FROM pgqueuer_log WHERE entrypoint = 'noop'")
        return row[0], row[1], row[2]

    running = asyncio.create_task(pgq.run(batch_size=BATCH, max_concurrent_tasks=SLOTS))
    # Ready once its listener answers a NOTIFY round trip.
    while True:
        try:
            await pgq.qm.listener_healthy()
            break
        except Exception:
            if running.done():
                running.result()
            await asyncio.sleep(0.05)
    say("ready")
    reporter = asyncio.create_task(tally.report(window, stop))
    await stop.wait()
    pgq.qm.shutdown.set()
    pgq.sm.shutdown.set()
    await asyncio.wait_for(running, 15)
    await reporter


async def pickup(admin_url: str, samples: int) -> None:
    url = database_url(admin_url, DATABASE)
    conn = await asyncpg.connect(url)
    queries = Queries(AsyncpgDriver(conn))
    await pickups(url, samples,
                  lambda sent_at: queries.enqueue("ping", dumps(ping_payload(sent_at))))
    await conn.close()


def main() -> None:
    peer_main(__doc__, version=version("pgqueuer"), database=DATABASE, setup=setup,
              enqueue=enqueue, fill=fill, worker=worker, pickup=pickup, run=uvloop.run)


if __name__ == "__main__":
    main()
