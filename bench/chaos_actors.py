"""Actors for bench/chaos.py: three job types of different lengths and habits.

Each records its completion in ``chaos_runs`` just before returning, so a job
that completes twice (killed after the record, before the ack) shows up as a
duplicate run.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

from psycopg2 import sql

from actors.base import Payload, job
from broker import broker
from settings import JobPolicy


class Work(Payload):
    key: int
    seconds: float = 0.0


def chaos_policy(queue: str, concurrency: int) -> JobPolicy:
    return JobPolicy(queue=queue, max_retries=5, first_retry_after=timedelta(seconds=0.2),
                     backoff="exponential", max_retry_after=timedelta(seconds=2),
                     time_limit=timedelta(seconds=60), concurrency=concurrency)


def complete(payload: Work) -> None:
    time.sleep(payload.seconds)
    with broker.pool.connection(10) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("INSERT INTO {} (key, pid) VALUES (%s, %s)").format(
            sql.Identifier(broker.schema, "chaos_runs")), (payload.key, os.getpid()))


def first_attempt(payload: Work) -> bool:
    with broker.pool.connection(10) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("INSERT INTO {} VALUES (%s) RETURNING "
                            "(SELECT count(*) FROM {} WHERE key = %s)").format(
            sql.Identifier(broker.schema, "chaos_attempts"),
            sql.Identifier(broker.schema, "chaos_attempts")), (payload.key, payload.key))
        return cur.fetchone()[0] == 0


@job("chaos_quick", Work, policy=chaos_policy("chaos-quick", 8))
def chaos_quick(payload: Work) -> None:
    complete(payload)


@job("chaos_slow", Work, policy=chaos_policy("chaos-slow", 3))
def chaos_slow(payload: Work) -> None:
    complete(payload)


@job("chaos_flaky", Work, policy=chaos_policy("chaos-flaky", 4))
def chaos_flaky(payload: Work) -> None:
    if first_attempt(payload):
        raise RuntimeError(f"first attempt of {payload.key} fails")
    complete(payload)
