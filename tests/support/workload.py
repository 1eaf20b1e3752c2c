"""Actors used only by tests, on queues of their own, with short policies.

Each run writes a row to ``test_runs`` so tests (and workers in other
processes) can see exactly what ran, when, and where. Importable by a
``dramatiq tests.support.workload`` subprocess: it reads everything from settings.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from pathlib import Path

from psycopg2 import sql

from actors.base import Payload, PermanentError, job
from broker import broker
from middleware.periodic import cron
from pipeline.commands import run_command
from settings import JobPolicy, Priority


class Probe(Payload):
    key: str
    failures: int = 0
    seconds: float = 0.0
    # probe_long: mark the start by creating this file, its note written only
    # when the job ends or stops (a commit at the start would also flush the
    # WAL of the claim before it: test_faults' crash).
    start_file: str | None = None


def policy(queue: str, **overrides) -> JobPolicy:
    values = dict(
        queue=queue, max_retries=3, first_retry_after=timedelta(seconds=0.2),
        backoff="exponential", time_limit=timedelta(seconds=30), concurrency=8,
    )
    return JobPolicy(**{**values, **overrides})


def record(key: str, note: str = "", at: float | None = None) -> int:
    """Store one run of ``key`` (``at``: when it happened, epoch seconds, if
    not now); returns how many runs it has now."""
    with broker.pool.connection(5) as conn, conn, conn.cursor() as cur:
        table = sql.Identifier(broker.schema, "test_runs")
        cur.execute(sql.SQL("INSERT INTO {} (key, note, pid, at) VALUES "
                            "(%s, %s, %s, coalesce(to_timestamp(%s), clock_timestamp()))"
                            ).format(table), (key, note, os.getpid(), at))
        cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE key = %s AND note = %s").format(table),
                    (key, note))
        return cur.fetchone()[0]


@job("probe_record", Probe, policy=policy("probe-record"), store_results=True)
def probe_record(payload: Probe) -> str:
    record(payload.key)
    return payload.key.upper()


@job("probe_flaky", Probe, policy=policy("probe-flaky"))
def probe_flaky(payload: Probe) -> None:
    runs = record(payload.key)
    if runs <= payload.failures:
        raise RuntimeError(f"flaky failure {runs} of {payload.failures}")


@job("probe_fails", Probe, policy=policy("probe-fails", max_retries=2))
def probe_fails(payload: Probe) -> None:
    record(payload.key)
    raise RuntimeError(f"always fails: {payload.key}")


@job("probe_permanent", Probe, policy=policy("probe-permanent"))
def probe_permanent(payload: Probe) -> None:
    record(payload.key)
    raise PermanentError("this input can never work")


@job("probe_busy", Probe, policy=policy("probe-busy", max_retries=0,
                                       time_limit=timedelta(seconds=1)))
def probe_busy(payload: Probe) -> None:
    record(payload.key, "start")
    deadline = time.monotonic() + payload.seconds
    while time.monotonic() < deadline:  # pure Python: TimeLimit can interrupt it
        pass
    record(payload.key, "end")


@job("probe_child", Probe, policy=policy("probe-child", max_retries=0,
                                        time_limit=timedelta(seconds=1)))
def probe_child(payload: Probe) -> None:
    record(payload.key, "start")
    # A shell whose own child sleeps: both must die with the job.
    run_command(["sh", "-c", f"sleep {payload.seconds} & echo $! ; wait"])
    record(payload.key, "end")


@job("probe_sleep", Probe, policy=policy("probe-sleep", concurrency=2))
def probe_sleep(payload: Probe) -> None:
    record(payload.key, "start")
    time.sleep(payload.seconds)
    record(payload.key, "end")


# Two job types sharing one queue, to see priority order within a queue.
@job("probe_low", Probe, policy=policy("probe-priority", priority=Priority.LOW))
def probe_low(payload: Probe) -> None:
    record(payload.key)


@job("probe_high", Probe, policy=policy("probe-priority", priority=Priority.HIGH))
def probe_high(payload: Probe) -> None:
    record(payload.key)


class Tick(Payload):
    fail_first: bool = False


@job("probe_tick", Tick, policy=policy("probe-tick"), periodic=cron("* * * * *"))
def probe_tick(payload: Tick) -> None:
    runs = record("tick")
    if payload.fail_first and runs == 1:
        raise RuntimeError("first tick fails")


@job("probe_solo", Probe, policy=policy("probe-solo", concurrency=1))
def probe_solo(payload: Probe) -> None:
    record(payload.key, "start")
    time.sleep(payload.seconds)
    record(payload.key, "end")


@job("probe_spin", Probe, policy=policy("probe-spin", max_retries=3,
                                       time_limit=timedelta(seconds=60)))
def probe_spin(payload: Probe) -> None:
    """Runs until its time is up or it is cancelled (returns to Python often)."""
    record(payload.key, "start")
    deadline = time.monotonic() + payload.seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)


@job("probe_long", Probe, policy=policy("probe-long", concurrency=2,
                                       time_limit=timedelta(seconds=120)))
def probe_long(payload: Probe) -> None:
    """A long job that can be interrupted (it sleeps in slices, as the command
    runner waits), recording what happens to it, by pid."""
    from pgbroker import LeaseLost, current_delivery

    delivery = current_delivery()
    assert delivery is not None
    # As a sandbox would stop the job's container: at once, database or not.
    stopped_at: list[float] = []
    hook_ran = threading.Event()

    def note_stop() -> None:
        stopped_at.append(time.time())
        hook_ran.set()

    delivery.on_stop(note_stop)
    quiet_start = [time.time()] if payload.start_file else []
    if payload.start_file:
        Path(payload.start_file).touch()
    else:
        record(payload.key, "start")

    def note_quiet_start() -> None:
        if quiet_start:
            record(payload.key, "start", at=quiet_start[0])
            quiet_start.clear()

    try:
        deadline = time.monotonic() + payload.seconds
        while time.monotonic() < deadline:
            time.sleep(0.05)
    except LeaseLost:
        lost_at = time.time()
        hook_ran.wait(10)  # the hooks run on a thread of their own
        # Cut off from the database, the job stops before it can say so: its
        # notes keep the moments they happened and wait for the database.
        deadline = time.monotonic() + 90
        while True:
            try:
                note_quiet_start()
                if stopped_at:
                    record(payload.key, "stop-hook", at=stopped_at[0])
                    stopped_at.clear()
                record(payload.key, "lease-lost", at=lost_at)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        raise
    note_quiet_start()
    record(payload.key, "end")
