"""Rows written by other producers: a bad one is dead-lettered with its reason, unrun.

Each row here is what an SQL producer, another service or a hand-written INSERT
could leave in the queue table. None may crash a consumer, kill a worker
thread, hold a slot, or touch another job; the good jobs after it still run.
"""

from __future__ import annotations

import json
import uuid

import psycopg2
import pytest

from pgbroker.jobs import get_job
from tests.support import job_in, wait_for
from tests.support.environment import SCHEMA
from tests.support.fixtures import db, good_message, insert_row, query, runs
from tests.support.workload import probe_record


def threads_alive(worker) -> bool:
    return all(thread.is_alive() for thread in worker.workers) and all(
        thread.is_alive() for thread in worker.consumers.values())


def after_poison_the_worker_still_runs_every_good_job(worker) -> None:
    # More than the queue's concurrency: a slot held by a bad row would show.
    sent = [probe_record.send(key=f"after-{uuid.uuid4().hex[:6]}") for _ in range(12)]
    for message in sent:
        job_in(message.message_id, "done", timeout=20)
    assert threads_alive(worker)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda mid: None, "the row has no message"),
        (lambda mid: good_message(mid, queue_name="send-notification"),
         "names queue 'send-notification' but its row is on 'probe-record'"),
        (lambda mid: good_message(mid, queue_name="nowhere"), "names queue 'nowhere'"),
        (lambda mid: good_message(mid, actor_name="no_such_actor"),
         "unknown actor 'no_such_actor': no worker on this queue defines it"),
        (lambda mid: good_message(mid, actor_name="probe_flaky"),
         "actor 'probe_flaky' runs on 'probe-flaky'"),
        (lambda mid: good_message(mid, options={"eta": 1}), "option eta is not supported"),
        (lambda mid: {"not": "a dramatiq message"}, "undecodable message"),
        (lambda mid: good_message(mid, options=None), "fields have the wrong types"),
        (lambda mid: good_message(mid, actor_name=["probe_record"]), "wrong types"),
    ],
    ids=["null", "other-queue", "unknown-queue", "unknown-actor", "actor-of-another-queue",
         "eta", "not-a-message", "null-options", "list-actor"],
)
def test_a_poison_row_is_dead_lettered_unrun_and_the_worker_carries_on(worker, make, reason):
    message_ids = [str(uuid.uuid4()) for _ in range(4)]  # four killed four threads at HEAD
    for message_id in message_ids:
        insert_row(make(message_id), message_id=message_id)

    for message_id in message_ids:
        job = job_in(message_id, "dead", timeout=20)
        assert reason in (job.last_error or ""), job.last_error
        assert runs(f"poison-{message_id[:8]}") == 0
    after_poison_the_worker_still_runs_every_good_job(worker)


def test_a_row_naming_another_jobs_id_never_touches_that_job(worker):
    victim = probe_record.send(key=f"victim-{uuid.uuid4().hex[:6]}")
    result = job_in(victim.message_id, "done").result
    assert result is not None
    intruder = insert_row(good_message(victim.message_id, kwargs={"key": "overwritten"}))

    job = job_in(intruder, "dead", timeout=20)

    assert "is not its row's" in (job.last_error or "")
    assert get_job(victim.message_id).result == result
    assert runs("overwritten") == 0


def test_an_oversized_row_is_dead_lettered_once_not_rescued_in_a_loop(worker):
    big = insert_row(good_message("x", kwargs={"key": "big", "pad": "x" * 3_000_000}))

    job = job_in(big, "dead", timeout=20)

    assert "over the 1,048,576-byte limit" in (job.last_error or "")
    assert (job.attempts, job.rescues) == (1, 0)
    after_poison_the_worker_still_runs_every_good_job(worker)


def add_job(*args):
    with db() as conn, conn.cursor() as cur:
        cur.execute(f'SELECT "{SCHEMA}".add_job(%s, %s, %s::jsonb, %s::interval, %s::smallint, '
                    "%s::jsonb)",
                    args)
        return cur.fetchone()[0]


def queue_size() -> int:
    return query('SELECT count(*) FROM {schema}."queue"')[0][0]


def test_add_job_refuses_a_payload_over_the_size_limit_and_enqueues_nothing(broker):
    before = queue_size()
    with pytest.raises(psycopg2.errors.ProgramLimitExceeded, match="over the 1048576 byte"):
        add_job("probe-record", "probe_record", json.dumps({"key": "x" * 2_000_000}),
                "0", 0, "{}")
    assert queue_size() == before


@pytest.mark.parametrize("options", [
    {"time_limit": 10**12}, {"max_retries": 10**6}, {"retries": -1}, {"eta": 0},
    {"pipe_target": {"actor_name": "send_notification"}},
])
def test_add_job_takes_no_execution_option_from_sql(broker, options):
    before = queue_size()
    with pytest.raises(psycopg2.errors.InvalidParameterValue, match="not accepted from SQL"):
        add_job("probe-record", "probe_record", json.dumps({"key": "x"}), "0", 0,
                json.dumps(options))
    assert queue_size() == before


def test_a_delayed_add_job_wakes_the_consumer_at_its_due_time(worker):
    # No poll interval in the path: the NOTIFY tells the consumer the due time.
    key = f"due-{uuid.uuid4().hex[:6]}"
    job_id = add_job("probe-record", "probe_record", json.dumps({"key": key}),
                     "150 milliseconds", 0, "{}")
    wait_for(lambda: runs(key) == 1, timeout=10, what="the delayed job to run")
    job = job_in(str(job_id), "done")
    assert job.state == "done"
