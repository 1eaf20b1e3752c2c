"""The periodic scheduler's sends: an old tick's retry, a database that is down."""

from __future__ import annotations

import time

import pendulum

from pgbroker import PostgresBroker
from scheduler import DedupingScheduler, tick_slot
from tests.support import wait_for
from tests.support.fixtures import query, ticks
from tests.support.workload import probe_tick


def test_a_periodic_jobs_retry_runs_even_when_the_tick_is_old(start_worker):
    long_ago = pendulum.now("UTC").subtract(minutes=30).replace(second=0, microsecond=0)
    DedupingScheduler(actors=[probe_tick]).send_actors([probe_tick], now=long_ago)
    # The tick carries no payload; make this one fail once through its options.
    query("UPDATE {schema}.\"queue\" SET message = jsonb_set(message, '{{kwargs}}', "
          "'{{\"fail_first\": true}}') WHERE message->>'actor_name' = 'probe_tick'")
    start_worker()  # only now: a worker already running could take the tick first

    wait_for(lambda: query("SELECT count(*) FROM {schema}.test_runs WHERE key = 'tick'")[0][0]
             == 2, timeout=15, what="the tick and its retry to run")
    assert ticks() == [(tick_slot(long_ago), 1)]


def test_a_send_while_the_database_is_down_is_logged_and_the_scheduler_goes_on(broker, caplog):
    dead = PostgresBroker(url="postgresql://app:pw@127.0.0.1:9/db", enqueue_timeout=0.5)
    probe_tick.broker = dead
    try:
        started = time.monotonic()
        DedupingScheduler(actors=[probe_tick]).send_actors([probe_tick], now=pendulum.now())
        elapsed = time.monotonic() - started
    finally:
        probe_tick.broker = broker

    assert elapsed < 2
    assert "could not send probe_tick" in caplog.text
