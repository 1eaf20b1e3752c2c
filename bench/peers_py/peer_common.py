"""What the Python peers' drivers share: their database, the worker's report, pickups.

The drivers run under the peers' own virtualenv (``.bench-peers/venv``, made by
``bench/peers.py``), never the project's: they import only the standard library,
psycopg 3 and the peer itself. Each peer gets a database of its own on the
bench's cluster, made fresh by ``setup`` and dropped by ``drop``.

What a driver prints on stdout, one line each, is all ``bench/peers.py`` reads:

    version X.Y.Z
    enqueue <single jobs/s> <batch jobs/s>
    filled <count>
    ready                              # the worker listens and takes jobs
    progress <noop jobs finished>      # the worker, twice a second
    window <first taken> <last finished> <count>   # epoch seconds, once all are done
    pickups <ms> <ms> ...
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import signal
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

PICKUPS = "CREATE TABLE IF NOT EXISTS bench_pickups (sent_at float8, started_at float8)"


def database_url(admin_url: str, name: str) -> str:
    """The cluster's URL with the database ``name`` (and no empty password: asyncpg
    reads ``user:@`` as a host)."""
    parts = urllib.parse.urlsplit(admin_url)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        if user.endswith(":"):
            user = user[:-1]
        netloc = f"{user}@{host}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, path=f"/{name}"))


def recreate_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = database_url(admin_url, name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(PICKUPS)
    return url


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def say(*words: object) -> None:
    print(*words, flush=True)


class Tally:
    """The worker's count of finished no-op jobs, and its report."""

    def __init__(self, expect: int) -> None:
        self.expect = expect
        self.done = 0

    def finished(self) -> None:
        self.done += 1

    async def report(self, window: Callable[[], Awaitable[tuple[float, float, int] | None]],
                     stop: asyncio.Event) -> None:
        """Progress twice a second; once ``expect`` jobs are done and the peer has
        recorded them all (``window`` answers), their window by the peer's record."""
        reported = False
        while not stop.is_set():
            say("progress", self.done)
            if not reported and self.expect and self.done >= self.expect:
                result = await window()
                if result is not None:
                    say("window", *result)
                    reported = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)


def stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def pickups(url: str, samples: int, send: Callable[[float], Awaitable[object]]) -> None:
    """``samples`` pings, one at a time, each to an idle worker; print their latencies.

    ``send(sent_at)`` sends one ping with the peer's own API; the worker's handler
    writes (sent_at, its first line's time) into bench_pickups.
    """
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for i in range(samples):
            await send(time.time())
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                cur = await conn.execute("SELECT count(*) FROM bench_pickups")
                (count,) = await cur.fetchone() or (0,)
                if count > i:
                    break
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.01)  # idle again, as for the others
        cur = await conn.execute("SELECT (started_at - sent_at) * 1000 FROM bench_pickups")
        rows = await cur.fetchall()
    say("pickups", *(row[0] for row in rows))


def ping_payload(sent_at: float) -> dict:
    return {"kind": "ping", "sent_at": sent_at}


def usage(doc: str | None) -> None:
    sys.exit(doc or "usage: ADMIN_URL setup|enqueue|fill|worker|pickup|drop|version ...")


def main(doc: str | None, *, version: str, database: str, setup: Callable,
         enqueue: Callable, fill: Callable, worker: Callable, pickup: Callable,
         run: Callable[[Any], Any] = asyncio.run) -> None:
    """A driver's command line (``ADMIN_URL COMMAND ARGS``, see this module's
    docstring), the same for every peer. A command that returns a coroutine is
    run by ``run`` (``asyncio.run``, or the peer's own loop such as ``uvloop.run``)."""
    if len(sys.argv) < 3:
        usage(doc)
    admin_url, command, *rest = sys.argv[1:]
    commands: dict[str, Callable[[], Any]] = {
        "version": lambda: say("version", version),
        "setup": lambda: setup(admin_url),
        "drop": lambda: drop_database(admin_url, database),
        "enqueue": lambda: enqueue(admin_url, int(rest[0]), int(rest[1])),
        "fill": lambda: fill(admin_url, int(rest[0]), rest[1:] == ["analyze"]),
        "worker": lambda: worker(admin_url, int(rest[0]) if rest else 0),
        "pickup": lambda: pickup(admin_url, int(rest[0])),
    }
    if command not in commands:
        usage(doc)
    result = commands[command]()
    if inspect.iscoroutine(result):
        run(result)


def dumps(value: object) -> bytes:
    return json.dumps(value).encode()
