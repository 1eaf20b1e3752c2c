"""Lose nothing when workers stop: SIGTERM, a second SIGTERM, caps on concurrency."""

from __future__ import annotations

import os
import signal
import time

from pgbroker.jobs import get_job
from tests.support import job_in, wait_for
from tests.support.fixtures import query
from tests.support.workload import probe_sleep, probe_solo


def started(key: str) -> bool:
    return bool(query("SELECT 1 FROM {schema}.test_runs WHERE key = %s AND note = 'start'", key))


def ran_in(key: str) -> list[int]:
    return [pid for (pid,) in query(
        "SELECT pid FROM {schema}.test_runs WHERE key = %s AND note = 'end'", key)]


def test_sigterm_lets_the_running_job_finish_and_returns_the_prefetched_one(
    cli_worker, start_worker
):
    leaving = cli_worker("tests.support.workload", threads=1)
    leaving.wait_ready()
    running = probe_sleep.send(key="running", seconds=2)
    wait_for(lambda: started("running"), timeout=15, what="the first job to start")
    waiting = probe_sleep.send(key="waiting", seconds=0)
    # One thread: the second job is leased to the leaving worker but waits for it.
    wait_for(lambda: get_job(waiting.message_id).state == "running", timeout=10,
             what="the second job to be prefetched")

    leaving.signal(signal.SIGTERM)
    assert leaving.proc.wait(timeout=30) == 0

    assert job_in(running.message_id, "done").attempts == 1
    requeued = get_job(waiting.message_id)
    assert (requeued.state, requeued.attempts, requeued.lease_owner) == ("queued", 0, None)
    start_worker(queues={"probe-sleep"})
    picked_up = time.monotonic()
    job_in(waiting.message_id, "done", timeout=10)
    assert time.monotonic() - picked_up < 2  # woken by NOTIFY, not found by a rescan
    (first_pid,) = ran_in("running")
    assert first_pid != os.getpid()  # finished by the leaving worker
    assert ran_in("waiting") == [os.getpid()]  # run by the one started here


def test_a_second_sigterm_exits_at_once_and_the_job_runs_again_elsewhere(
    cli_worker, start_worker
):
    leaving = cli_worker("tests.support.workload", threads=1)
    leaving.wait_ready()
    message = probe_sleep.send(key="interrupted", seconds=4)
    wait_for(lambda: started("interrupted"), timeout=15, what="the job to start")

    leaving.signal(signal.SIGTERM)
    time.sleep(0.5)  # dramatiq treats a signal within its first handler as the second
    leaving.signal(signal.SIGTERM)
    stopped_at = time.monotonic()
    leaving.proc.wait(timeout=10)
    assert time.monotonic() - stopped_at < 5

    query("UPDATE {schema}.test_runs SET note = 'first' WHERE key = 'interrupted'")
    start_worker(queues={"probe-sleep"})
    job = job_in(message.message_id, "done", timeout=15)
    assert (job.rescues, job.attempts) == (1, 2)
    assert ran_in("interrupted") == [os.getpid()]


def test_a_worker_never_runs_more_of_a_job_type_than_its_cap_whatever_its_threads(
    start_worker,
):
    start_worker(threads=8, queues={"probe-sleep"})  # probe_sleep's cap is 2
    messages = [probe_sleep.send(key=f"c{i}", seconds=0.5) for i in range(6)]
    for message in messages:
        job_in(message.message_id, "done", timeout=15)

    # The running count: +1 per start, -1 per end, in time order.
    events = query("SELECT note FROM {schema}.test_runs ORDER BY at")
    level = highest = 0
    for (note,) in events:
        level += 1 if note == "start" else -1
        highest = max(highest, level)
    assert highest == 2


def test_a_job_over_a_workers_cap_stays_queued_for_another_worker(start_worker, cli_worker):
    other = cli_worker("tests.support.workload", threads=1, extra_args=("--queues", "probe-solo"))
    start_worker(threads=8, queues={"probe-solo"})  # probe_solo's cap is 1 per process
    first = probe_solo.send(key="solo1", seconds=6)
    wait_for(lambda: started("solo1"), timeout=10, what="the first job to start")
    second = probe_solo.send(key="solo2", seconds=0)

    other.wait_ready()
    job_in(second.message_id, "done", timeout=10)

    assert get_job(first.message_id).state == "running"
    assert ran_in("solo2") != [os.getpid()]  # the other process took it
