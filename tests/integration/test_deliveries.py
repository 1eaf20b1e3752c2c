"""Per-delivery fencing, the worker registry and the outage guard, on the
broker's own API against a real PostgreSQL (no worker runs)."""

from __future__ import annotations

import socket
import time

import pytest
from dramatiq.broker import MessageProxy
from dramatiq.message import Message

from pgbroker import PostgresBroker, PostgresResults, jobs
from pgbroker.delivery import Delivery
from pgbroker.jobs import get_job, list_workers
from pgbroker.registry import RESCUE_BATCH, WorkerSession
from tests.support import wait_for
from tests.support.environment import DATABASE_URL, SCHEMA
from tests.support.fixtures import db, query

QUEUE = "fence-test"


@pytest.fixture
def own_broker(broker):
    """A broker of the test's own on the test schema: a 2 s lease, no worker."""
    made = PostgresBroker(url=DATABASE_URL, schema=SCHEMA, lease_timeout=2)
    made.declare_queue(QUEUE)
    yield made
    made.close()


def message(**options) -> Message:
    return Message(queue_name=QUEUE, actor_name="nobody", args=(), kwargs={},
                   options=options)


def claim_one(broker: PostgresBroker) -> Delivery:
    rows, _ = broker.claim(QUEUE, 1)
    assert len(rows) == 1
    return rows[0][0]


def state(message_id: str) -> tuple:
    return query('SELECT state::text, attempts, delivery_id::text FROM {schema}."queue" '
                 "WHERE message_id = %s", message_id)[0]


def session(broker: PostgresBroker, worker_id: str) -> WorkerSession:
    return WorkerSession(dsn=DATABASE_URL, queries=broker.queries, worker_id=worker_id,
                         lease_seconds=broker.lease_timeout, max_rescues=3)


def test_every_claim_is_a_delivery_of_its_own(own_broker):
    sent = own_broker.enqueue(message())
    first = claim_one(own_broker)
    own_broker.rescue_expired()  # the lease is fresh: nothing to take
    assert state(sent.message_id) == ("consumed", 1, first.delivery_id)


def test_a_claim_gives_the_next_due_time_over_every_priority(own_broker):
    """The consumer sleeps until the time the claim reports: the soonest delayed
    job of the queue, whatever its priority, or None when none is delayed."""
    own_broker.enqueue(message(priority=0), delay=60_000)
    own_broker.enqueue(message(priority=9), delay=3_000)  # the soonest, at the last priority
    own_broker.enqueue(message(priority=5), delay=30_000)
    due_now = own_broker.enqueue(message(priority=5))

    claimed, next_due = own_broker.claim(QUEUE, 10)

    assert [delivery.message_id for delivery, _, _ in claimed] == [due_now.message_id]
    assert next_due is not None and 2.0 < next_due <= 3.0
    query('DELETE FROM {schema}."queue" WHERE "state" = \'queued\'')
    assert own_broker.claim(QUEUE, 10) == ([], None)


def test_a_claim_hands_out_its_jobs_best_first(own_broker):
    """By priority, then due time: not in the order the rows were updated."""
    sent = [(priority, own_broker.enqueue(message(priority=priority)).message_id)
            for priority in (9, 0, 5, 9, 0, 5)]

    claimed, _ = own_broker.claim(QUEUE, 10)

    best_first = [message_id for _, message_id in sorted(sent, key=lambda s: s[0])]
    assert [delivery.message_id for delivery, _, _ in claimed] == best_first


def test_the_ack_of_a_retried_attempt_does_not_finish_the_next_attempt(own_broker):
    """Retries re-enqueues under the same id, then the worker acks attempt 1."""
    sent = own_broker.enqueue(message())
    attempt_1 = claim_one(own_broker)
    attempt_1.start()  # this thread runs attempt 1: its retry names it
    try:
        own_broker.enqueue(sent.copy(options={"retries": 1}))
    finally:
        attempt_1.finish()
    attempt_2 = claim_one(own_broker)

    assert own_broker.execute("ack", message_id=sent.message_id,
                              delivery_id=attempt_1.delivery_id) == 0
    assert state(sent.message_id) == ("consumed", 2, attempt_2.delivery_id)
    assert own_broker.execute("ack", message_id=sent.message_id,
                              delivery_id=attempt_2.delivery_id) == 1


def test_a_plain_resend_never_requeues_a_running_job(own_broker):
    sent = own_broker.enqueue(message())
    running = claim_one(own_broker)
    own_broker.enqueue(sent)  # not from the job's thread: no delivery named
    assert state(sent.message_id) == ("consumed", 1, running.delivery_id)


def test_a_delivery_that_lost_its_message_writes_nothing(own_broker, broker):
    sent = own_broker.enqueue(message())
    cut_off = claim_one(own_broker)
    # Its lease is taken (as the rescuer does after a cut) and claimed again.
    query('UPDATE {schema}."queue" SET state = \'queued\', delivery_id = NULL '
          "WHERE message_id = %s", sent.message_id)
    taker = claim_one(own_broker)
    follow_up = message()

    cut_off.start()
    try:
        own_broker.enqueue(sent.copy(options={"retries": 1}))  # its retry
        own_broker.enqueue(follow_up)  # a message the job sends
        PostgresResults(own_broker).store_result(sent, "stale", 60_000)
    finally:
        cut_off.finish()

    assert state(sent.message_id) == ("consumed", 2, taker.delivery_id)
    assert query('SELECT count(*) FROM {schema}."queue" WHERE message_id = %s',
                 follow_up.message_id)[0][0] == 0
    assert query("SELECT count(*) FROM {schema}.results")[0][0] == 0
    assert own_broker.execute("nack", message_id=sent.message_id,
                              delivery_id=cut_off.delivery_id, message="{}",
                              message_bytes=None, last_error="late") == 0


def test_a_delivery_that_lost_its_message_sends_no_batch(own_broker):
    """Both bulk paths (COPY for messages due now, enqueue_many() for delayed
    ones) are fenced like a single send."""
    sent = own_broker.enqueue(message())
    cut_off = claim_one(own_broker)
    query('UPDATE {schema}."queue" SET state = \'queued\', delivery_id = NULL '
          "WHERE message_id = %s", sent.message_id)
    claim_one(own_broker)

    cut_off.start()
    try:
        own_broker.enqueue_many([message(), message()])
        own_broker.enqueue_many([message(), message()], delay=60_000)
    finally:
        cut_off.finish()

    assert query('SELECT count(*) FROM {schema}."queue"')[0][0] == 1


def test_a_delivery_that_lost_its_message_sends_no_singleton(own_broker):
    sent = own_broker.enqueue(message())
    cut_off = claim_one(own_broker)
    query('UPDATE {schema}."queue" SET state = \'queued\', delivery_id = NULL '
          "WHERE message_id = %s", sent.message_id)
    running = claim_one(own_broker)

    for delivery in (cut_off, running):
        delivery.start()
        try:
            own_broker.enqueue(message(singleton_key=f"key-{delivery.delivery_id}"))
        finally:
            delivery.finish()

    assert [key for (key,) in query('SELECT singleton_key FROM {schema}."queue" '
                                    "WHERE singleton_key IS NOT NULL")] == [
        f"key-{running.delivery_id}"]


def test_a_given_up_delivery_writes_nothing_and_is_rescued_once_its_lease_lapses(own_broker):
    """The lease watch gives a delivery up on a guess (no renewal for most of a
    lease): its row may still be its own, so an ack would mark done a job that
    never ran, and a retry or result would be written twice."""
    sent = own_broker.enqueue(message())
    given_up = claim_one(own_broker)
    assert given_up.give_up("cut off, in this test")
    proxy = MessageProxy(sent)
    proxy.delivery = given_up  # type: ignore[attr-defined]

    given_up.start(proxy)
    try:
        own_broker.enqueue(message())  # a follow-up, or its own retry
    finally:
        given_up.finish()
    own_broker.complete(proxy)  # what Dramatiq does with a skipped or stopped job
    own_broker.dead_letter(proxy)
    own_broker.flush_acks()

    assert state(sent.message_id)[:2] == ("consumed", 1)
    assert query('SELECT count(*) FROM {schema}."queue"')[0][0] == 1
    assert own_broker.inflight.get(given_up.delivery_id) is None  # renewed no more
    wait_for(lambda: own_broker.rescue_expired() == 1, timeout=10, interval=0.2,
             what="the lease to lapse and the rescuer to return the job")
    assert state(sent.message_id)[0] == "queued"


def test_a_rescue_stops_between_batches_when_the_heartbeat_is_due(own_broker):
    """The lease keeper rescues on the thread that renews: a rescue of many
    lapsed leases yields to the next heartbeat between its batches."""
    own_broker.enqueue_many([message() for _ in range(RESCUE_BATCH + 100)])
    claimed = 0
    while claimed < RESCUE_BATCH + 100:
        rows, _ = own_broker.claim(QUEUE, 500)
        claimed += len(rows)
    rescuer = session(own_broker, "rescuer-under-test")
    try:
        wait_for(lambda: query('SELECT count(*) FROM {schema}."queue" '
                               "WHERE lease_expires_at < now()")[0][0] == claimed,
                 timeout=10, what="every lease to lapse")
        assert rescuer.rescue(watched=False, until=time.monotonic()) == RESCUE_BATCH
        assert rescuer.rescue(watched=False) == 100
    finally:
        rescuer.close()


def test_a_job_that_holds_its_message_sends_its_batches(own_broker):
    own_broker.enqueue(message())
    running = claim_one(own_broker)

    running.start()
    try:
        own_broker.enqueue_many([message(), message()])
        own_broker.enqueue_many([message(), message()], delay=60_000)
    finally:
        running.finish()

    assert query('SELECT count(*) FROM {schema}."queue" WHERE state = \'queued\'')[0][0] == 4


@pytest.mark.parametrize("delay", [None, 60_000], ids=["due now (COPY)", "delayed"])
def test_a_batch_stores_each_message_exactly_as_sent(own_broker, delay):
    awkward = ["tab\there", "line\nbreak", "carriage\rreturn", "back\\slash \\N",
               'quote " and \\"', "unicode \u00e9\u4e2d\U0001f600", "\\x00ff"]
    sent = [message(note=text) for text in awkward]

    own_broker.enqueue_many(sent, delay=delay)

    rows = dict(query('SELECT message_id::text, message::text FROM {schema}."queue" '
                      "WHERE (available_at > now() + interval '50 seconds') = %s",
                      delay is not None))
    assert len(rows) == len(sent)
    for original in sent:
        stored = Message.decode(rows[original.message_id].encode())
        assert stored.options["note"] == original.options["note"]


def test_the_heartbeat_names_each_delivery_to_stop_and_why(own_broker):
    for _ in range(3):
        own_broker.enqueue(message())
    kept, taken, cancelled = (claim_one(own_broker) for _ in range(3))
    query('UPDATE {schema}."queue" SET delivery_id = gen_random_uuid() WHERE message_id = %s',
          taken.message_id)
    jobs.cancel(cancelled.message_id, by="operator", broker=own_broker)
    keeper = session(own_broker, "test:keeper")
    try:
        to_stop = keeper.renew([(d.message_id, d.delivery_id) for d in (kept, taken, cancelled)])
    finally:
        keeper.close()
    assert to_stop == {taken.delivery_id: "taken", cancelled.delivery_id: "cancelled"}


def test_a_dead_workers_session_gives_its_jobs_back_at_once(own_broker):
    sent = own_broker.enqueue(message())
    doomed = session(own_broker, "doomed:1:x")
    rescuer = session(own_broker, "rescuer:2:y")
    try:
        doomed.heartbeat([QUEUE])
        claimed = claim_one(own_broker)
        query('UPDATE {schema}."queue" SET lease_owner = %s WHERE message_id = %s',
              doomed.worker_id, claimed.message_id)
        rescuer.heartbeat([QUEUE])
        assert rescuer.rescue() == 0  # alive, lease fresh: nothing to take

        (backend_pid,) = query("SELECT backend_pid FROM {schema}.workers "
                               "WHERE worker_id = %s", doomed.worker_id)[0]
        query("SELECT pg_terminate_backend(%s)", backend_pid)
        wait_gone(backend_pid)

        assert rescuer.rescue() == 1  # the lease (2 s) has not lapsed: the session told
        job = get_job(sent.message_id, broker=own_broker)
        assert (job.state, job.rescues) == ("queued", 1)
        assert [w.id for w in list_workers(broker=own_broker)] == [rescuer.worker_id]
    finally:
        doomed.close()
        rescuer.close()


def test_a_lapsed_lease_is_not_taken_by_a_rescuer_connected_for_less_than_a_lease(own_broker):
    """After an outage every worker gets a full lease to reconnect and renew."""
    sent = own_broker.enqueue(message())
    claim_one(own_broker)
    query('UPDATE {schema}."queue" SET lease_expires_at = now() - interval \'1 minute\' '
          "WHERE message_id = %s", sent.message_id)
    fresh = session(own_broker, "fresh:3:z")
    try:
        assert fresh.rescue() == 0
        # The same rows, from a rescuer that has watched the server long enough
        # (here: a one-off rescue, which counts the server's uptime only).
        assert fresh.rescue(watched=False) == 1
    finally:
        fresh.close()
    assert state(sent.message_id)[0] == "queued"


def test_the_registry_row_names_the_session_the_worker_keeps_open(own_broker):
    worker = session(own_broker, "w:4:q")
    try:
        worker.heartbeat(["b", "a"])
        (found,) = list_workers(broker=own_broker)
        assert worker._conn is not None
        with worker._conn.cursor() as cur:  # the session itself
            cur.execute("SELECT pg_backend_pid()")
            (own_pid,) = cur.fetchone()
        assert (found.host, found.queues, found.backend_pid, found.alive) == (
            socket.gethostname(), ["a", "b"], own_pid, True)
        worker.forget()
        assert list_workers(broker=own_broker) == []
    finally:
        worker.close()


def test_after_a_crash_claims_wait_a_lease_from_the_first_heartbeat(own_broker):
    """A crash empties the unlogged claims_open (tests/acceptance/test_faults.py
    crashes a server for real; here the table is emptied as the crash leaves it)."""
    sent = own_broker.enqueue(message())
    worker = session(own_broker, "w:5:q")
    try:
        query("TRUNCATE {schema}.claims_open")
        assert own_broker.claim(QUEUE, 1)[0] == []  # fenced, until a heartbeat reopens it

        worker.heartbeat([QUEUE])
        reopened_at = time.monotonic()
        ((ahead,),) = query("SELECT extract(epoch FROM since - now()) FROM {schema}.claims_open")
        assert 1.5 < ahead <= 2.0  # the lease: 2 s here
        assert own_broker.claim(QUEUE, 1)[0] == []
        worker.heartbeat([QUEUE])  # a no-op once open
        assert query("SELECT count(*) FROM {schema}.claims_open") == [(1,)]

        delivery = wait_for(lambda: own_broker.claim(QUEUE, 1)[0], timeout=5,
                            what="claims to open")[0][0]
        assert time.monotonic() - reopened_at >= 1.5
        assert delivery.message_id == sent.message_id
    finally:
        worker.close()


def test_a_claim_waits_for_its_flush_only_while_an_older_worker_is_registered(own_broker):
    """An older release claims without the fence (0022_claim_fence.sql)."""
    worker = session(own_broker, "w:6:q")

    def claim_commits_with() -> str:
        own_broker.enqueue(message())
        with db() as conn, conn.cursor() as cur:  # the claim's own transaction, kept open
            cur.execute(own_broker.queries["claim"], {
                "queue_name": QUEUE, "limit": 1, "owner": "w:6:q", "lease_seconds": 2})
            assert len(cur.fetchall()) == 2  # the job, and the next due time
            cur.execute("SHOW synchronous_commit")
            (setting,) = cur.fetchone()
            conn.rollback()
        return setting

    try:
        worker.heartbeat([QUEUE])
        assert claim_commits_with() == "off"
        query("INSERT INTO {schema}.workers (worker_id, host, pid, lease_seconds, backend_pid, "
              "backend_start) VALUES ('old:1:q', 'h', 1, 2, 1, now())")  # as 0008 wrote it
        assert claim_commits_with() == "on"
    finally:
        worker.close()


def wait_gone(backend_pid: int) -> None:
    wait_for(lambda: not query("SELECT 1 FROM pg_stat_activity WHERE pid = %s", backend_pid),
             timeout=5, what="the terminated session to go")

