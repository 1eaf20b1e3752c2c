"""Actors for bench/broker_faults.py: a long job that records when it starts."""

from __future__ import annotations

import os
import time
from datetime import timedelta

from psycopg2 import sql

from actors.base import Payload, job
from broker import broker
from settings import JobPolicy


class Hold(Payload):
    key: str
    seconds: float


@job("fault_hold", Hold, policy=JobPolicy(
    queue="fault-hold", max_retries=0, first_retry_after=timedelta(seconds=1),
    backoff="fixed", time_limit=timedelta(seconds=600), concurrency=4))
def fault_hold(payload: Hold) -> None:
    with broker.pool.connection(10) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("INSERT INTO {} (key, pid) VALUES (%s, %s)").format(
            sql.Identifier(broker.schema, "fault_runs")), (payload.key, os.getpid()))
    deadline = time.monotonic() + payload.seconds
    while time.monotonic() < deadline:  # in slices, so a LeaseLost can land
        time.sleep(0.05)
