"""Workers that die, freeze or lose PostgreSQL: their jobs run again, once.

``dramatiq`` processes killed with SIGKILL, stopped with SIGSTOP, or started
while the server is down; a PostgreSQL of the test's own restarted under them.
Each docstring says how plain dramatiq-pg fails.
"""

from __future__ import annotations

import signal
import threading
import time

from pgbroker import PostgresBroker
from tests.support import job_in, wait_for
from tests.support.environment import SCHEMA
from tests.support.fixtures import query, runs
from tests.support.workload import probe_record, probe_sleep


def test_a_killed_workers_job_runs_again_on_a_live_worker_within_the_lease_timeout(
    cli_worker, start_worker
):
    """dramatiq-pg: waits for a random rescan of the survivors (597 s observed)."""
    doomed = cli_worker("tests.support.workload", threads=1)
    doomed.wait_ready()
    message = probe_sleep.send(key="orphan", seconds=4)
    wait_for(lambda: runs("orphan", "start") == 1, timeout=15, what="the job to start")

    doomed.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    start_worker(threads=2, queues={"probe-sleep"})
    query("UPDATE {schema}.test_runs SET note = 'first' WHERE key = 'orphan'")
    wait_for(lambda: runs("orphan", "start") == 1, timeout=15, what="the rescued run")

    # Lease 2 s + heartbeat 0.5 s + poll 0.2 s in tests (20 s + 5 s + 1 s by default).
    assert time.monotonic() - killed_at < 6
    job = job_in(message.message_id, "done", timeout=10)
    assert (job.rescues, job.attempts) == (1, 2)


def test_a_frozen_or_cut_off_workers_job_runs_again_elsewhere(cli_worker, start_worker):
    """A host that vanishes without closing its connection: SIGSTOP keeps the socket
    open, as a network cut does, but no heartbeat gets through."""
    frozen = cli_worker("tests.support.workload", threads=1)
    frozen.wait_ready()
    message = probe_sleep.send(key="stranded", seconds=3)
    wait_for(lambda: runs("stranded", "start") == 1, timeout=15, what="the job to start")

    frozen.signal(signal.SIGSTOP)
    try:
        start_worker(threads=2, queues={"probe-sleep"})
        job = job_in(message.message_id, "done", timeout=15)
    finally:
        frozen.signal(signal.SIGKILL)
        frozen.signal(signal.SIGCONT)

    assert (job.rescues, job.attempts) == (1, 2)
    assert runs("stranded", "end") == 1  # the frozen worker never finished its copy


def test_a_postgres_restart_during_a_job_neither_reruns_it_nor_loses_a_job_sent_meanwhile(
    private_postgres, cli_worker
):
    """dramatiq-pg: the lock died with the server and the job ran twice at once."""
    env = {"DATABASE_URL": private_postgres.url}
    worker = cli_worker("tests.support.workload", threads=2, env=env)
    worker.wait_ready()
    producer = PostgresBroker(url=private_postgres.url, schema=SCHEMA, enqueue_timeout=10)
    try:
        long_job = probe_sleep.message(key="through-restart", seconds=4)
        producer.enqueue(long_job)
        wait_for(lambda: runs("through-restart", "start", private_postgres.url) == 1,
                 timeout=15, what="the long job to start")

        private_postgres.stop()
        sent_during = probe_record.message(key="sent-during-outage")
        restarter = threading.Timer(1.5, private_postgres.start)
        restarter.start()
        producer.enqueue(sent_during)  # waits for the server, up to enqueue_timeout
        restarter.join()

        def state(message) -> str:
            return query('SELECT state FROM {schema}."queue" WHERE message_id = %s',
                         message.message_id, url=private_postgres.url)[0][0]

        wait_for(lambda: state(long_job) == "done" and state(sent_during) == "done",
                 timeout=30, what="both jobs to finish after the restart")
        assert runs("through-restart", "start", private_postgres.url) == 1
        assert runs("sent-during-outage", "", private_postgres.url) == 1
    finally:
        producer.close()
        worker.stop()


def test_a_worker_started_while_postgres_is_down_waits_for_it_and_never_logs_the_password(
    private_postgres, cli_worker
):
    with_password = private_postgres.url.replace("postgres:@", "postgres:s3cret-pw@")
    private_postgres.stop()
    worker = cli_worker("tests.support.workload", threads=2, env={"DATABASE_URL": with_password})
    worker.wait_ready()
    wait_for(lambda: "connection error" in worker.output(), timeout=15,
             what="the worker to meet the outage")
    private_postgres.start()

    producer = PostgresBroker(url=with_password, schema=SCHEMA, enqueue_timeout=10)
    try:
        message = producer.enqueue(probe_record.message(key="after-outage"))
        wait_for(lambda: producer.fetch("job_by_id", message_id=message.message_id)[0][3]
                 == "done", timeout=20, what="the job to run once PostgreSQL is back")
    finally:
        producer.close()
    worker.stop()
    assert "s3cret-pw" not in worker.output()
