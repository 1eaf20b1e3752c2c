"""Regression tests for what dramatiq-pg 0.12 was seen to get wrong.

Each test names the failure of issue 3 it guards against; the note in its
docstring says how plain dramatiq-pg fails it.
"""

from __future__ import annotations

import threading
import time
import uuid

import psycopg2
import pytest
from dramatiq.results import ResultTimeout

from pgbroker import EnqueueError, EnqueueTimeout, InvalidMessage, JobNotFound, PostgresBroker
from pgbroker.bulk import CopyStream
from pgbroker.jobs import get_job
from tests.support import job_in, wait_for
from tests.support.environment import DATABASE_URL, SCHEMA
from tests.support.fixtures import db, query, runs
from tests.support.workload import (
    probe_fails,
    probe_high,
    probe_low,
    probe_record,
    probe_sleep,
    probe_solo,
)


def advisory_locks() -> int:
    # This database's only: the server may be shared with other test runs.
    return query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                 "(SELECT oid FROM pg_database WHERE datname = current_database())")[0][0]


# 1. Advisory locks piled up until the worker stalled or the cluster failed.

def test_a_large_backlog_drains_completely_without_holding_advisory_locks(start_worker):
    """dramatiq-pg: one session lock per message; one worker stopped after ~12,850."""
    messages = probe_record.send_many({"key": f"b{i}"} for i in range(3000))
    start_worker(threads=8)
    peak = 0

    def drained() -> bool:
        nonlocal peak
        peak = max(peak, advisory_locks())
        return query("SELECT count(*) FROM {schema}.\"queue\" WHERE state <> 'done'")[0][0] == 0

    wait_for(drained, timeout=60, interval=0.05, what="3,000 jobs to drain")
    assert peak == 0
    assert query("SELECT count(*) FROM {schema}.test_runs")[0][0] == len(messages)


def test_delayed_messages_hold_no_lock_and_no_worker_memory(worker):
    """dramatiq-pg: each delayed message is claimed and locked for its whole delay."""
    for i in range(1000):
        probe_record.send_with_options(kwargs={"key": f"later{i}"}, delay=600_000)
    # One due job passes through the same consumer, so it has looked at the queue.
    probe_record.send(key="now").get_result(block=True, timeout=10_000)

    assert advisory_locks() == 0
    assert query(
        "SELECT count(*) FROM {schema}.\"queue\" WHERE state = 'queued' "
        "AND available_at > now() AND lease_owner IS NULL"
    )[0][0] == 1000
    assert worker.consumers["probe-record"].consumer.buffer == type(
        worker.consumers["probe-record"].consumer.buffer)()
    psycopg2.connect(DATABASE_URL).close()  # the cluster still accepts connections


# 2. Messages that missed their NOTIFY waited minutes for a random rescan.

def test_a_message_written_without_notify_is_picked_up_within_the_poll_interval(worker):
    """dramatiq-pg: found only by a 1-in-301-per-second rescan (waits of 94-597 s)."""
    with db() as conn, conn.cursor() as cur:
        cur.execute("SET LOCAL search_path TO " + SCHEMA)
        # add_job() with a notification suppressed: insert the row by hand.
        message = probe_record.message(key="silent")
        cur.execute(
            'INSERT INTO "queue" (message_id, queue_name, state, message) '
            "VALUES (%s, 'probe-record', 'queued', %s)",
            (message.message_id, message.encode().decode()),
        )
    started = time.monotonic()

    job_in(message.message_id, "done", timeout=5)
    assert time.monotonic() - started < 2  # poll interval is 0.2 s in tests


def test_workers_reconnect_after_their_listen_connection_dies_and_miss_nothing(worker):
    """dramatiq-pg: reconnects in place and skips the rescan, losing NOTIFYs."""
    probe_record.send(key="warm").get_result(block=True, timeout=10_000)
    killed = query(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = 'pts-jobs listener'"
    )[0][0]
    assert killed >= 1

    message = probe_record.send(key="after-reconnect")

    assert message.get_result(block=True, timeout=5_000) == "AFTER-RECONNECT"


def test_a_long_job_that_is_alive_is_never_rescued(start_worker):
    """Leases are renewed by a heartbeat: a job may run far past the lease timeout."""
    start_worker(threads=2, queues={"probe-sleep"})
    message = probe_sleep.send(key="marathon", seconds=6)  # three lease timeouts

    job = job_in(message.message_id, "done", timeout=20)
    assert (job.rescues, job.attempts, runs("marathon", "start")) == (0, 1, 1)


# 3. A PostgreSQL outage let a running job be claimed again while it still ran:
#    tests/acceptance/test_worker_failures.py, with killed and frozen workers.

# 4. send() blocked for minutes on any database error.

def test_send_gives_up_after_the_enqueue_timeout_when_the_database_is_down(broker):
    """dramatiq-pg: retried 10 times with waits up to 30 s (still blocked after 300 s)."""
    down = PostgresBroker(url="postgresql://app:s3cret@127.0.0.1:9/db", enqueue_timeout=1.0)
    started = time.monotonic()

    with pytest.raises(EnqueueTimeout, match="within 1s") as error:
        down.enqueue(probe_record.message(key="lost"))

    assert time.monotonic() - started < 2.5
    assert "s3cret" not in str(error.value)


def test_send_fails_at_once_with_a_clear_error_when_the_table_is_missing(broker):
    """dramatiq-pg: retried a missing table for 62 s."""
    schema = f"pts_gone_{uuid.uuid4().hex[:6]}"
    gone = PostgresBroker(url=DATABASE_URL, schema=schema)
    gone.ensure_schema()
    query(f'DROP TABLE "{schema}"."queue" CASCADE')
    started = time.monotonic()
    try:
        with pytest.raises(EnqueueError, match="does not exist"):
            gone.enqueue(probe_record.message(key="nowhere"))
        assert time.monotonic() - started < 1
    finally:
        gone.close()
        query(f'DROP SCHEMA "{schema}" CASCADE')


# 5. Each consumer loaded every pending message of its queue.

def test_a_consumer_never_holds_more_than_its_limit_whatever_the_backlog(broker):
    """dramatiq-pg: the first poll read the whole queue (50k messages: +119 MB)."""
    probe_record.send_many({"key": f"m{i}"} for i in range(2000))
    consumer = broker.consume("probe-record", prefetch=4, timeout=100)
    try:
        first = next(consumer)
        assert first is not None
        assert len(consumer.buffer) + 1 <= 4
        assert broker.inflight.count("probe-record") <= 4
        assert query(
            "SELECT count(*) FROM {schema}.\"queue\" WHERE state = 'consumed'"
        )[0][0] <= 4
    finally:
        consumer.requeue([first, *consumer.buffer])
        consumer.buffer.clear()


# 6. Priority was ignored; delayed messages sat in one worker's memory.

def test_higher_priority_jobs_of_a_queue_run_first(broker, start_worker):
    """dramatiq-pg: ten priority-100 messages ran before three priority-0 ones."""
    for i in range(10):
        probe_low.send(key=f"low{i}")
    for i in range(3):
        probe_high.send(key=f"high{i}")

    start_worker(threads=1, queues={"probe-priority"})
    wait_for(lambda: query("SELECT count(*) FROM {schema}.test_runs")[0][0] == 13,
             timeout=15, what="all 13 jobs")

    order = [key for (key,) in query("SELECT key FROM {schema}.test_runs ORDER BY at")]
    assert sorted(order[:3]) == ["high0", "high1", "high2"]


def test_a_retry_waits_in_postgres_visible_to_every_worker_not_in_one_workers_memory(
    start_worker,
):
    """dramatiq-pg: the retry sat on a ".DQ" queue, leased to one worker for the delay."""
    first = start_worker(threads=1, queues={"probe-fails"})
    message = probe_fails.send_with_options(kwargs={"key": "handover"}, min_backoff=1500)
    waiting = job_in(message.message_id, "delayed")
    assert waiting.lease_owner is None

    first.stop(timeout=5_000)  # the worker that ran it is gone
    start_worker(threads=1, queues={"probe-fails"})

    wait_for(lambda: runs("handover") == 2, timeout=10, what="the retry on the new worker")
    assert query("SELECT count(DISTINCT pid) FROM {schema}.test_runs")[0][0] == 1


# 7. No transactional enqueue.

def test_a_job_sent_in_a_transaction_exists_only_once_it_commits(worker):
    """dramatiq-pg: send() used its own connection; the job could run before the commit."""
    with db() as conn:
        message = probe_record.send_in_transaction(conn, key="committed")
        with pytest.raises(JobNotFound):
            get_job(message.message_id)  # invisible outside the transaction
    assert message.get_result(block=True, timeout=10_000) == "COMMITTED"


def test_a_job_sent_in_a_transaction_that_rolls_back_never_exists(broker):
    conn = psycopg2.connect(DATABASE_URL)
    try:
        message = probe_record.send_in_transaction(conn, key="rolled-back")
        conn.rollback()
    finally:
        conn.close()
    with pytest.raises(JobNotFound):
        get_job(message.message_id)


def test_sql_add_job_enqueues_in_the_callers_transaction(worker):
    with db() as conn, conn.cursor() as cur:
        cur.execute(f'SELECT "{SCHEMA}".add_job(%s, %s, %s)',
                    ("probe-record", "probe_record", '{"key": "from-sql"}'))
        (job_id,) = cur.fetchone()
    job_in(str(job_id), "done")

    conn = psycopg2.connect(DATABASE_URL)
    with conn.cursor() as cur:
        cur.execute(f'SELECT "{SCHEMA}".add_job(%s, %s, %s)',
                    ("probe-record", "probe_record", '{"key": "never"}'))
        (never_id,) = cur.fetchone()
    conn.rollback()
    conn.close()
    with pytest.raises(JobNotFound):
        get_job(str(never_id))


def test_sql_add_job_refuses_a_payload_that_is_not_an_object(broker):
    with pytest.raises(psycopg2.errors.InvalidParameterValue, match="JSON object"), \
            db() as conn, conn.cursor() as cur:
        cur.execute(f'SELECT "{SCHEMA}".add_job(%s, %s, %s)',
                    ("probe-record", "probe_record", "[1, 2]"))


# 8. Results that hang; names too long for a channel.

def test_waiting_for_a_result_that_never_comes_times_out(broker):
    """dramatiq-pg: a blocking get_result waited on a pooled connection, forever."""
    message = probe_record.send(key="unwatched")
    started = time.monotonic()

    with pytest.raises(ResultTimeout):
        message.get_result(block=True, timeout=500)

    assert time.monotonic() - started < 2


def test_a_queue_name_too_long_for_a_notify_channel_is_refused_at_definition(broker):
    """dramatiq-pg: failed at send time with `channel name too long`, 10 times over."""
    with pytest.raises(ValueError, match="too long"):
        broker.declare_queue("q" * 60)


# Singleton jobs (pg-boss's singletonKey / singletonSeconds).

def test_a_singleton_is_not_enqueued_while_one_with_its_key_is_live(broker):
    first = probe_record.send_with_options(kwargs={"key": "a"}, singleton_key="repo-1")
    second = probe_record.send_with_options(kwargs={"key": "b"}, singleton_key="repo-1")
    other = probe_record.send_with_options(kwargs={"key": "c"}, singleton_key="repo-2")

    assert second.message_id == first.message_id
    assert second.options["deduplicated"] is True
    assert other.message_id != first.message_id
    assert query('SELECT count(*) FROM {schema}."queue"')[0][0] == 2


def test_a_singleton_window_holds_after_the_job_finished_and_expires_with_its_slot(worker):
    first = probe_record.send_with_options(kwargs={"key": "w1"}, singleton_key="win",
                                           singleton_seconds=3600)
    job_in(first.message_id, "done")

    again = probe_record.send_with_options(kwargs={"key": "w2"}, singleton_key="win",
                                           singleton_seconds=3600)
    next_slot = probe_record.send_with_options(kwargs={"key": "w3"}, singleton_key="win",
                                               singleton_slot=-1)

    assert again.message_id == first.message_id
    assert next_slot.message_id != first.message_id


def test_concurrent_singleton_sends_enqueue_exactly_one_job(broker):
    barrier = threading.Barrier(8)
    ids: list[str] = []

    def send(i: int) -> None:
        barrier.wait()
        message = probe_record.send_with_options(kwargs={"key": f"r{i}"},
                                                 singleton_key="race", singleton_seconds=300)
        ids.append(message.message_id)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(ids)) == 1
    assert query('SELECT count(*) FROM {schema}."queue"')[0][0] == 1


def test_a_retried_singleton_keeps_its_key_and_is_not_mistaken_for_a_duplicate(worker):
    message = probe_fails.send_with_options(kwargs={"key": "single-retry"},
                                            singleton_key="retry-me", max_retries=2)

    job = job_in(message.message_id, "dead")

    assert job.attempts == 3


def test_a_batch_is_written_whole_or_not_at_all(broker):
    stored = probe_record.send(key="already")
    batch = [probe_record.message(key=f"new{i}") for i in range(3)]
    batch.append(probe_record.message(key="again").copy(message_id=stored.message_id))

    with pytest.raises(EnqueueError, match="duplicate key"):
        broker.enqueue_many(batch)

    assert query('SELECT count(*) FROM {schema}."queue"')[0][0] == 1


def test_an_invalid_message_late_in_a_batch_stores_none_of_it(broker, monkeypatch):
    """A batch is encoded as COPY reads it: the bad message comes up after
    hundreds of rows have reached the server, and must still undo them all."""
    batch = [probe_record.message(key=f"new{i}") for i in range(1500)]
    batch[1400] = batch[1400].copy(kwargs={"key": float("nan")})
    reads: list[int] = []  # rows made before each read of the COPY
    read = CopyStream.read

    def counted(stream: CopyStream, size: int = -1) -> str:
        reads.append(stream.rows)
        return read(stream, size)

    monkeypatch.setattr(CopyStream, "read", counted)

    with pytest.raises(InvalidMessage, match="not valid JSON"):
        broker.enqueue_many(batch)

    assert max(reads) > 1000  # streamed: most rows had gone to the server
    assert query('SELECT count(*) FROM {schema}."queue"')[0][0] == 0
    broker.enqueue_many(batch[:3])  # and the broker still sends
    assert query('SELECT count(*) FROM {schema}."queue"')[0][0] == 3


def test_a_consumer_at_its_cap_waits_instead_of_spinning_while_work_arrives(broker):
    """With a job held and more sent, the consumer must sleep until a slot frees."""
    consumer = broker.consume("probe-solo", prefetch=4, timeout=100)  # probe_solo's cap: 1
    probe_solo.send(key="held", seconds=0)
    taken = [wait_for(lambda: next(consumer), timeout=5, what="the first claim")]
    try:
        for i in range(5):
            probe_solo.send(key=f"later{i}", seconds=0)  # each NOTIFYs the consumer
        calls, deadline = 0, time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert next(consumer) is None
            calls += 1
        assert calls <= 15  # about one per 100 ms timeout; a spin makes thousands

        consumer.ack(taken.pop())  # a slot frees: the next call claims at once
        started = time.monotonic()
        taken.append(wait_for(lambda: next(consumer), timeout=2, what="the next claim"))
        assert time.monotonic() - started < 0.5
    finally:
        for message in taken:
            consumer.ack(message)
        consumer.close()
