"""A job's life with a real worker: success, retries, dead letters, time limits."""

from __future__ import annotations

import os
import uuid

import pytest

from pgbroker.jobs import get_job, list_dead, replay, replay_dead
from tests.support import job_in
from tests.support.fixtures import query
from tests.support.workload import (
    probe_busy,
    probe_child,
    probe_fails,
    probe_flaky,
    probe_permanent,
    probe_record,
)


def runs(key: str, note: str = "") -> list:
    return query(
        "SELECT at, pid FROM {schema}.test_runs WHERE key = %s AND note = %s ORDER BY at",
        key, note,
    )


def processes_running(argv: list[str]) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[:-1] == [a.encode() for a in argv]:
                    found.append(int(pid))
        except OSError:
            pass
    return found


def test_a_sent_job_runs_once_and_its_result_and_status_can_be_read(worker):
    message = probe_record.send(key="hello")

    assert message.get_result(block=True, timeout=10_000) == "HELLO"
    job = job_in(message.message_id, "done")
    assert (job.actor_name, job.queue_name, job.attempts) == ("probe_record", "probe-record", 1)
    assert job.started_at <= job.finished_at
    assert len(runs("hello")) == 1


def test_a_failing_job_is_retried_with_exponential_backoff_until_it_succeeds(worker):
    message = probe_flaky.send(key="flaky", failures=2)

    job = job_in(message.message_id, "done")
    assert job.attempts == 3 and job.retries == 2
    assert job.last_error == "RuntimeError: flaky failure 2 of 2"
    first, second, third = (at for at, _ in runs("flaky"))
    # Dramatiq jitters each wait to 50-100% of first_retry_after * 2**n (0.2 s here);
    # the upper bound allows for the poll interval and a busy machine.
    assert 0.1 <= (second - first).total_seconds() <= 0.2 + 0.6
    assert 0.2 <= (third - second).total_seconds() <= 0.4 + 0.6


def test_a_job_waiting_for_its_retry_shows_as_delayed_with_its_due_time(broker, worker):
    message = probe_fails.send_with_options(kwargs={"key": "slow"}, min_backoff=3000)

    job = job_in(message.message_id, "delayed")
    assert job.available_at > job.started_at
    assert job.last_error == "RuntimeError: always fails: slow"


def test_a_job_that_exhausts_its_retries_is_dead_with_its_error_and_traceback(worker):
    message = probe_fails.send(key="doomed")

    job = job_in(message.message_id, "dead")
    assert job.attempts == 3  # max_retries=2 means three runs
    assert job.last_error == "RuntimeError: always fails: doomed"
    assert len(runs("doomed")) == 3
    (traceback,) = query(
        "SELECT message #>> '{{options,traceback}}' FROM {schema}.\"queue\" WHERE message_id = %s",
        message.message_id,
    )[0]
    assert "always fails: doomed" in traceback
    assert [d.id for d in list_dead("probe-fails")] == [message.message_id]


def test_a_permanent_error_is_dead_at_once_without_retries(worker):
    message = probe_permanent.send(key="never")

    job = job_in(message.message_id, "dead")
    assert job.attempts == 1
    assert job.last_error == "PermanentError: this input can never work"


def test_a_time_limit_stops_a_busy_job(worker):
    message = probe_busy.send(key="busy", seconds=30)

    job = job_in(message.message_id, "dead", timeout=15)
    assert "TimeLimitExceeded" in job.last_error
    assert runs("busy", "start") and not runs("busy", "end")
    assert (job.finished_at - job.started_at).total_seconds() < 5


def test_a_time_limit_kills_the_jobs_child_processes_too(worker):
    message = probe_child.send(key="child", seconds=61)

    job = job_in(message.message_id, "dead", timeout=15)
    assert "TimeLimitExceeded" in job.last_error
    # `sleep 61` would still be running if only the shell had been killed.
    assert processes_running(["sleep", "61"]) == []


def test_a_dead_job_replayed_runs_again_with_its_attempts_reset(worker):
    message = probe_flaky.send_with_options(kwargs={"key": "phoenix", "failures": 3},
                                            max_retries=1)
    job_in(message.message_id, "dead")

    replay(message.message_id)

    job = job_in(message.message_id, "done")
    assert len(runs("phoenix")) == 4  # 2 attempts dead, then 2 after the replay
    assert job.attempts == 2 and job.retries == 1


def test_replaying_all_dead_jobs_of_a_queue_leaves_other_queues_alone(worker):
    doomed = [probe_flaky.send_with_options(kwargs={"key": f"q{i}", "failures": 1},
                                            max_retries=0) for i in range(3)]
    other = probe_permanent.send(key="other")
    for message in [*doomed, other]:
        job_in(message.message_id, "dead")

    assert replay_dead("probe-flaky") == 3

    for message in doomed:
        job_in(message.message_id, "done")
    assert get_job(other.message_id).state == "dead"


def test_replaying_an_unknown_id_raises_job_not_found(broker):
    from pgbroker import JobNotFound

    with pytest.raises(JobNotFound):
        replay(str(uuid.uuid4()))
    with pytest.raises(JobNotFound):
        get_job("not-a-uuid")
