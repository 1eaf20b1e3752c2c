"""Procrastinate's driver for bench/peers.py, run by the peers' virtualenv.

    python procrastinate_bench.py ADMIN_URL setup|version|drop
    python procrastinate_bench.py ADMIN_URL enqueue SINGLE BATCH
    python procrastinate_bench.py ADMIN_URL fill COUNT [analyze]
    python procrastinate_bench.py ADMIN_URL worker [EXPECT]     # until SIGTERM
    python procrastinate_bench.py ADMIN_URL pickup SAMPLES

As its docs say for throughput: async tasks and one worker with
``concurrency=8`` (its sub-workers), LISTEN/NOTIFY on (its default) with the
polling fallback at its default 5 s, on the psycopg 3 connector
(``PsycopgConnector``) whose pool is sized for the sub-workers (its default,
psycopg_pool's 4 connections, one of them held by the listener, would starve 8
sub-workers). Enqueue is ``defer_async`` one job a call and ``batch_defer_async``
for batches of 1,000. Jobs are kept when done (its default ``delete_jobs``).
The drain's window is procrastinate's own event log: first ``started`` event
to last ``succeeded`` one. Of the peers its fetch is the one that most needs
the jobs table's planner statistics: without them (a table filled moments
ago) it drains about a quarter as fast (see ``--analyze`` in bench/peers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from importlib.metadata import version

import psycopg
from peer_common import (
    Tally,
    database_url,
    pickups,
    recreate_database,
    say,
    stop_event,
)
from peer_common import main as peer_main
from procrastinate import App, PsycopgConnector

DATABASE = "bench_procrastinate"
CONCURRENCY = 8
POOL = CONCURRENCY + 2  # the sub-workers, the listener, the heartbeat and abort polls


def make_app(url: str, pool: int = POOL) -> App:
    return App(connector=PsycopgConnector(conninfo=url, min_size=1, max_size=pool))


class Bench:
    def __init__(self, url: str, pool: int = POOL) -> None:
        self.app = make_app(url, pool)
        self.tally = Tally(0)
        self.side: psycopg.AsyncConnection | None = None

        @self.app.task(name="noop", queue="bench")
        async def noop(i: int) -> None:
            self.tally.finished()

        @self.app.task(name="ping", queue="bench")
        async def ping(sent_at: float) -> None:
            started_at = time.time()
            assert self.side is not None
            await self.side.execute("INSERT INTO bench_pickups VALUES (%s, %s)",
                                    (sent_at, started_at))

        self.noop = noop
        self.ping = ping


async def setup(admin_url: str) -> str:
    url = recreate_database(admin_url, DATABASE)
    bench = Bench(url, pool=1)
    async with bench.app.open_async():
        await bench.app.schema_manager.apply_schema_async()
    return url


async def enqueue(admin_url: str, single: int, batch: int) -> None:
    url = await setup(admin_url)
    bench = Bench(url, pool=1)
    async with bench.app.open_async():
        started = time.perf_counter()
        for i in range(single):
            await bench.noop.defer_async(i=i)
        one = single / (time.perf_counter() - started)
        started = time.perf_counter()
        for start in range(0, batch, 1000):
            await bench.noop.batch_defer_async(*({"i": i} for i in range(start, start + 1000)))
        many = batch / (time.perf_counter() - started)
    say("enqueue", one, many)


async def fill(admin_url: str, count: int, analyze: bool) -> None:
    url = await setup(admin_url)
    bench = Bench(url, pool=1)
    async with bench.app.open_async():
        for start in range(0, count, 1000):
            await bench.noop.batch_defer_async(
                *({"i": i} for i in range(start, min(start + 1000, count))))
    if analyze:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute("ANALYZE")
    say("filled", count)


async def worker(admin_url: str, expect: int) -> None:
    url = database_url(admin_url, DATABASE)
    stop = stop_event()
    bench = Bench(url)
    bench.tally.expect = expect
    side = bench.side = await psycopg.AsyncConnection.connect(url, autocommit=True)

    async def window() -> tuple[float, float, int] | None:
        cur = await side.execute(
            "SELECT count(*) FILTER (WHERE status IN ('todo', 'doing')) FROM procrastinate_jobs"
            " WHERE task_name = 'noop'")
        if (await cur.fetchone() or (1,))[0]:
            return None
        cur = await side.execute(
            "SELECT extract(epoch FROM min(e.at) FILTER (WHERE e.type = 'started'))::float8,"
            " extract(epoch FROM max(e.at) FILTER (WHERE e.type = 'succeeded'))::float8,"
            " count(*) FILTER (WHERE e.type = 'succeeded')"
            " FROM procrastinate_events e JOIN procrastinate_jobs j ON j.id = e.job_id"
            " WHERE j.task_name = 'noop'")
        row = await cur.fetchone()
        assert row is not None
        return row[0], row[1], row[2]

    async with bench.app.open_async():
        running = asyncio.create_task(bench.app.run_worker_async(
            queues=["bench"], concurrency=CONCURRENCY, install_signal_handlers=False))
        # Ready once its listener has said LISTEN.
        while True:
            cur = await side.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND query ILIKE 'LISTEN%%'")
            if (await cur.fetchone() or (0,))[0]:
                break
            if running.done():
                running.result()
            await asyncio.sleep(0.05)
        say("ready")
        reporter = asyncio.create_task(bench.tally.report(window, stop))
        await stop.wait()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(running, 15)
        await reporter
    await side.close()


async def pickup(admin_url: str, samples: int) -> None:
    url = database_url(admin_url, DATABASE)
    bench = Bench(url, pool=1)
    async with bench.app.open_async():
        await pickups(url, samples, lambda sent_at: bench.ping.defer_async(sent_at=sent_at))


def main() -> None:
    peer_main(__doc__, version=version("procrastinate"), database=DATABASE, setup=setup,
              enqueue=enqueue, fill=fill, worker=worker, pickup=pickup)


if __name__ == "__main__":
    main()
