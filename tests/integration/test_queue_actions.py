"""Operators' actions in the broker, against real workers: pause and resume a
queue, cancel a waiting or a running job, run a delayed job now, delete, replay
dead letters by error, and the attempt history the dashboard shows."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from pgbroker import JobNotFound, jobs
from tests.support import job_in, wait_for
from tests.support.fixtures import query
from tests.support.workload import probe_fails, probe_flaky, probe_record, probe_spin


@pytest.fixture(autouse=True)
def no_paused_queues(broker):
    yield
    query("DELETE FROM {schema}.queue_pauses")


def runs(key: str, note: str = "") -> int:
    return query("SELECT count(*) FROM {schema}.test_runs WHERE key = %s AND note = %s",
                 key, note)[0][0]


def claims_pass(broker) -> None:
    """Long enough for every consumer to have polled a few times (the poll
    interval bounds it: consumers look at least that often)."""
    time.sleep(broker.poll_interval * 4)


def test_a_paused_queue_is_claimed_by_no_worker_until_resumed(broker, worker):
    assert jobs.pause_queue("probe-record", by="test", broker=broker)
    assert not jobs.pause_queue("probe-record", by="test", broker=broker)  # already paused
    held = probe_record.send(key="held").message_id
    canary = probe_flaky.send(key="canary").message_id

    job_in(canary, "done")
    claims_pass(broker)
    assert jobs.get_job(held, broker=broker).state == "queued"
    assert [p.queue_name for p in jobs.paused_queues(broker=broker)] == ["probe-record"]

    assert jobs.resume_queue("probe-record", broker=broker)
    job_in(held, "done")
    assert not jobs.resume_queue("probe-record", broker=broker)


def test_a_cancelled_waiting_job_never_runs(broker, worker):
    assert jobs.pause_queue("probe-record", by="test", broker=broker)
    doomed = probe_record.send(key="doomed").message_id
    later = probe_record.send_with_options(kwargs={"key": "later"}, delay=60_000).message_id

    assert jobs.cancel(doomed, by="admin", broker=broker) == "queued"
    assert jobs.cancel(later, by="admin", broker=broker) == "delayed"
    jobs.resume_queue("probe-record", broker=broker)
    canary = probe_record.send(key="canary").message_id

    job_in(canary, "done")
    assert runs("doomed") == 0
    job = jobs.get_job(doomed, broker=broker)
    assert (job.state, job.last_error) == ("cancelled", "cancelled by admin")
    with pytest.raises(JobNotFound):
        jobs.cancel(doomed, by="admin", broker=broker)  # finished jobs cannot be cancelled


def test_a_cancelled_running_job_is_stopped_by_its_worker_and_not_retried(broker, worker):
    spinning = probe_spin.send(key="spin", seconds=30).message_id
    wait_for(lambda: runs("spin", "start"), what="the job to start")

    assert jobs.cancel(spinning, by="admin", broker=broker) == "running"

    # Stopped at the worker's next heartbeat: its thread is free for new work.
    after = probe_spin.send(key="after", seconds=0).message_id
    job_in(after, "done", timeout=10)
    claims_pass(broker)
    assert runs("spin", "end") == 0
    assert runs("spin", "start") == 1  # not retried
    job = jobs.get_job(spinning, broker=broker)
    assert job.state == "cancelled"
    assert [a.outcome for a in jobs.attempts(spinning, broker=broker)] == ["cancelled"]
    assert not broker.inflight.ids()


def test_a_delayed_job_runs_now_when_asked(broker, worker):
    later = probe_record.send_with_options(kwargs={"key": "soon"}, delay=3_600_000).message_id
    assert jobs.get_job(later, broker=broker).state == "delayed"

    jobs.run_now(later, broker=broker)

    job_in(later, "done")
    with pytest.raises(JobNotFound):
        jobs.run_now(later, broker=broker)  # no longer delayed


def test_deleting_a_job_removes_it_and_its_history_but_never_a_running_one(broker, worker):
    dead = probe_fails.send(key="gone").message_id
    job_in(dead, "dead", timeout=15)
    assert len(jobs.attempts(dead, broker=broker)) == 3

    jobs.delete(dead, broker=broker)

    with pytest.raises(JobNotFound):
        jobs.get_job(dead, broker=broker)
    assert jobs.attempts(dead, broker=broker) == []
    spinning = probe_spin.send(key="busy", seconds=30).message_id
    wait_for(lambda: runs("busy", "start"), what="the job to start")
    with pytest.raises(JobNotFound):
        jobs.delete(spinning, broker=broker)
    jobs.cancel(spinning, by="test", broker=broker)


def test_every_failed_attempt_keeps_its_error_traceback_and_retry_time(broker, worker):
    dead = probe_fails.send(key="history").message_id
    job_in(dead, "dead", timeout=15)

    history = jobs.attempts(dead, broker=broker)

    assert [(a.attempt, a.outcome) for a in history] == [(1, "failed"), (2, "failed"),
                                                        (3, "dead")]
    assert all(a.error == "RuntimeError: always fails: history" for a in history)
    assert all("Traceback" in (a.traceback or "") for a in history)
    assert all(a.retry_at is not None for a in history[:2]) and history[2].retry_at is None
    assert all(a.worker and a.started_at for a in history)


def test_dead_letters_group_by_error_and_replay_one_group(broker, worker):
    broker.actors["probe_fails"].options["max_retries"] = 0
    try:
        ids = [probe_fails.send(key=key).message_id for key in ("a", "a", "b")]
        for message_id in ids:
            job_in(message_id, "dead", timeout=15)
    finally:
        broker.actors["probe_fails"].options["max_retries"] = 2
    jobs.pause_queue("probe-fails", by="test", broker=broker)

    groups = {g.last_error: g.jobs for g in jobs.dead_groups(broker=broker)}
    assert groups == {"RuntimeError: always fails: a": 2, "RuntimeError: always fails: b": 1}

    replayed = jobs.replay_dead("probe-fails", last_error="RuntimeError: always fails: a",
                                broker=broker)

    assert replayed == 2
    assert [jobs.get_job(i, broker=broker).state for i in ids] == ["queued", "queued", "dead"]
    jobs.resume_queue("probe-fails", broker=broker)


def test_cancelled_jobs_are_purged_with_the_dead_ones(broker):
    kept = probe_record.send(key="kept").message_id
    old = probe_record.send(key="old").message_id
    for message_id in (kept, old):
        jobs.cancel(message_id, by="test", broker=broker)
    query("UPDATE {schema}.\"queue\" SET finished_at = now() - interval '40 days', "
          "mtime = now() - interval '40 days' WHERE message_id = %s", old)

    assert jobs.purge("dead", timedelta(days=30), broker=broker) == 1
    assert jobs.get_job(kept, broker=broker).state == "cancelled"
    with pytest.raises(JobNotFound):
        jobs.get_job(old, broker=broker)
