"""Every write that makes work claimable wakes the queue's consumers (NOTIFY)."""

from __future__ import annotations

import select
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
from dramatiq.message import Message
from psycopg2 import sql

from pgbroker import PostgresBroker, jobs
from pgbroker.registry import WorkerSession
from tests.support.environment import DATABASE_URL, SCHEMA
from tests.support.fixtures import query

QUEUE = "wake-test"


@contextmanager
def heard(channel: str) -> Iterator[list[str]]:
    """The channels notified while the block runs (read after it)."""
    conn = psycopg2.connect(DATABASE_URL)
    conn.autocommit = True
    conn.cursor().execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
    found: list[str] = []
    try:
        yield found
        deadline = time.monotonic() + 2
        while not found and time.monotonic() < deadline:
            select.select([conn], [], [], 0.1)
            conn.poll()
            found += [n.channel for n in conn.notifies]
    finally:
        conn.close()


def message(**options) -> Message:
    return Message(queue_name=QUEUE, actor_name="nobody", args=(), kwargs={}, options=options)


def test_a_rescue_wakes_the_queue(broker):
    own = PostgresBroker(url=DATABASE_URL, schema=SCHEMA, lease_timeout=2)
    try:
        own.declare_queue(QUEUE)
        own.enqueue(message())
        own.claim(QUEUE, 1)
        query('UPDATE {schema}."queue" SET lease_expires_at = now() - interval \'1 minute\'')
        rescuer = WorkerSession(dsn=DATABASE_URL, queries=own.queries, worker_id="r",
                                lease_seconds=2, max_rescues=3)
        with heard(own.channel(QUEUE)) as channels:
            assert rescuer.rescue(watched=False) == 1
        rescuer.close()
        assert channels == [own.channel(QUEUE)]
    finally:
        own.close()


def test_a_dead_letter_replay_wakes_the_queue(broker):
    sent = broker.enqueue(message())
    query('UPDATE {schema}."queue" SET state = \'rejected\' WHERE message_id = %s',
          sent.message_id)
    with heard(broker.channel(QUEUE)) as channels:
        jobs.replay(sent.message_id, broker=broker)
    assert channels == [broker.channel(QUEUE)]


def test_a_singleton_send_and_a_delayed_send_wake_the_queue(broker):
    with heard(broker.channel(QUEUE)) as channels:
        broker.enqueue(message(singleton_key="one"))
    assert channels == [broker.channel(QUEUE)]
    # Delayed too: a consumer that hears it sleeps until the new due time.
    with heard(broker.channel(QUEUE)) as channels:
        broker.enqueue(message(), delay=60_000)
    assert channels == [broker.channel(QUEUE)]
