"""Actors for the benchmark, on either broker: ``BENCH_BROKER=ours|plain``.

``dramatiq bench.workers`` runs them. Both brokers get the same middleware and
the same plain ``dramatiq.actor`` declarations, so only the broker differs.
"""

from __future__ import annotations

import os
import threading
import time

import dramatiq
import dramatiq_pg
import psycopg2

import admin_server
import broker as ours
from middleware import Metrics, MetricsConfig
from settings import settings

KIND = os.environ.get("BENCH_BROKER", "ours")
SCHEMA = os.environ["JOBS_SCHEMA_NAME"]

if KIND == "plain":
    # The middleware that does per-message work in ours, minus what needs our
    # broker (results, alerts): the comparison is of the brokers.
    plain = dramatiq_pg.PostgresBroker(
        url=ours.broker.url, schema=SCHEMA, prefix="",
        middleware=ours.dramatiq_middleware(
            Metrics(MetricsConfig.from_settings(settings), serve=admin_server.serve)),
    )
    dramatiq.set_broker(plain)
    BROKER = plain
else:
    BROKER = ours.broker


@dramatiq.actor(queue_name="bench", max_retries=0)
def noop(i: int) -> None:
    pass


_local = threading.local()


@dramatiq.actor(queue_name="bench-ping", max_retries=0)
def ping(sent_at: float) -> None:
    # Pickup latency: from just before send() to the first line of the actor.
    started = time.time()
    if not hasattr(_local, "conn"):
        _local.conn = psycopg2.connect(ours.broker.url)
    with _local.conn, _local.conn.cursor() as cur:
        cur.execute(f'INSERT INTO "{SCHEMA}".pickups VALUES (%s, %s)', (sent_at, started))
