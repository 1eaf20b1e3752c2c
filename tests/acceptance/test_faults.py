"""Faults with real worker processes: SIGKILL, a PostgreSQL outage, a network cut.

No job may run twice at once through a PostgreSQL outage, none may be lost; a
killed worker's jobs start again within seconds; a worker cut off from the
database has its job run once elsewhere, and its own copy is stopped when it
reconnects, its late ack changing nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

import dramatiq
import psycopg2
import pytest

from pgbroker import PostgresBroker
from tests.acceptance.netcut import NetworkNamespace, TcpPostgres, server_binaries_present
from tests.support import require, wait_for
from tests.support.environment import ROOT, SCHEMA, TEST_ENV
from tests.support.fixtures import prepare_database, query
from tests.support.workload import probe_long

# The shipped defaults (settings.py): what production gets.
DEFAULT_LIVENESS = {"JOBS_LEASE_TIMEOUT": "20", "JOBS_HEARTBEAT_INTERVAL": "5",
                    "JOBS_RESCUE_INTERVAL": "1", "JOBS_POLL_INTERVAL": "1"}


def notes(key: str, url: str | None = None) -> list[tuple[str, int, float]]:
    """(note, pid, epoch seconds) of every record of ``key``, in order."""
    extra = {"url": url} if url else {}
    return query("SELECT note, pid, extract(epoch FROM at)::float8 FROM {schema}.test_runs "
                 "WHERE key = %s ORDER BY at", key, **extra)


def count(key: str, note: str, url: str | None = None) -> int:
    return sum(1 for n, _, _ in notes(key, url) if n == note)


def job_row(message_id: str, url: str | None = None) -> tuple:
    extra = {"url": url} if url else {}
    return query('SELECT state::text, attempts, rescues FROM {schema}."queue" '
                 "WHERE message_id = %s", message_id, **extra)[0]


def test_a_sigkilled_workers_job_starts_again_within_3_seconds_with_default_settings(
    cli_worker
):
    victim = cli_worker("tests.support.workload", threads=2, env=DEFAULT_LIVENESS)
    victim.wait_ready()
    message = probe_long.send(key="killed", seconds=60)
    wait_for(lambda: count("killed", "start") == 1, timeout=15, what="the job to start")
    survivor = cli_worker("tests.support.workload", threads=2, env=DEFAULT_LIVENESS)
    survivor.wait_ready()

    victim.signal(signal.SIGKILL)
    killed_at = time.time()
    wait_for(lambda: count("killed", "start") == 2, timeout=10, what="the job to start again")

    restarted_at = notes("killed")[-1][2]
    print(f"\nSIGKILL: the job started again {restarted_at - killed_at:.2f} s after the kill")
    assert restarted_at - killed_at < 3.0, restarted_at - killed_at
    assert job_row(message.message_id)[1:] == (2, 1)
    # Its worker left no trace but a dead session: the registry forgot it.
    wait_for(lambda: query("SELECT count(*) FROM {schema}.workers")[0][0] == 1,
             timeout=5, what="the dead worker to leave the registry")


@pytest.fixture
def private_postgres():
    require(server_binaries_present(), "PostgreSQL's server binaries (apt-get install postgresql)")
    server = TcpPostgres()
    prepare_database(server.url)
    yield server
    server.close()


def test_a_postgres_outage_of_twice_the_lease_runs_no_job_twice_and_loses_none(
    private_postgres, cli_worker
):
    """Issue 10, 2: two of four 45-s jobs were started again during a 35-s outage."""
    url = private_postgres.url
    env = {"DATABASE_URL": url}
    workers = [cli_worker("tests.support.workload", threads=2, env=env) for _ in range(2)]
    for worker in workers:
        worker.wait_ready()
    producer = PostgresBroker(url=url, schema=SCHEMA, enqueue_timeout=10)
    keys = [f"outage-{i}" for i in range(4)]
    try:
        sent = [producer.enqueue(probe_long.message(key=key, seconds=12)) for key in keys]
        wait_for(lambda: all(count(key, "start", url) == 1 for key in keys), timeout=15,
                 what="four jobs to start")
        pids = {pid for key in keys for _, pid, _ in notes(key, url)}
        assert len(pids) == 2  # two on each worker (the cap of the job type is 2)

        private_postgres.stop()
        # The outage itself: twice the test lease (2 s), on purpose.
        time.sleep(2 * float(TEST_ENV["JOBS_LEASE_TIMEOUT"]))
        private_postgres.start()

        wait_for(lambda: all(count(key, "end", url) == 1 for key in keys), timeout=40,
                 what="every job to finish")
        for key in keys:
            assert [n for n, _, _ in notes(key, url)] == ["start", "end"], key
        ids = [message.message_id for message in sent]
        wait_for(lambda: all(job_row(i, url)[0] == "done" for i in ids), timeout=10,
                 what="the acks")
        assert [job_row(i, url) for i in ids] == [("done", 1, 0)] * 4
        print(f"\noutage: {len(keys)} jobs, each started once and finished once")
    finally:
        producer.close()
        for worker in workers:
            worker.stop()


def test_a_claim_lost_in_a_crash_never_runs_its_job_twice_at_once(
    private_postgres, cli_worker, tmp_path
):
    """Claims commit without waiting for their WAL flush (0022_claim_fence.sql).
    A crash loses one here for real, while its job runs: the job's row is queued
    again. Claims stay fenced for the longest lease, until the victim's
    heartbeat has found its claim lost and stopped its copy."""
    url = private_postgres.url
    # Autovacuum's commits would flush the WAL too, were one to fall in the moment.
    with contextlib.closing(psycopg2.connect(url)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("ALTER SYSTEM SET autovacuum = off")
            cur.execute("SELECT pg_reload_conf()")
    # The victim renews (and retries) every 4 s; the survivor claims within a
    # fraction of a second of the server's return (its consumer restarts after
    # 0.1 s, not 3): without the fence, it would start the job first.
    victim = cli_worker("tests.support.workload", threads=2, env={
        "DATABASE_URL": url, "JOBS_LEASE_TIMEOUT": "12", "JOBS_HEARTBEAT_INTERVAL": "4",
        "JOBS_RESCUE_INTERVAL": "4"})
    survivor = cli_worker("tests.support.workload", threads=2, env={
        "DATABASE_URL": url, "dramatiq_restart_delay": "100"})
    victim.wait_ready()
    survivor.wait_ready()
    producer = PostgresBroker(url=url, schema=SCHEMA)
    started = tmp_path / "started"

    def last_heartbeat() -> float:
        return query("SELECT extract(epoch FROM max(last_heartbeat_at))::float8 "
                     "FROM {schema}.workers WHERE lease_seconds = 12", url=url)[0][0]

    try:
        # Any commit flushes the WAL before it, the claim's too. So the job is
        # sent just after a heartbeat of the victim (4 s to its next), while
        # the survivor is frozen (it neither beats nor claims) and the WAL
        # writer paused: nothing writes the claim out before the crash.
        beat = last_heartbeat()
        wait_for(lambda: last_heartbeat() != beat, timeout=10, what="a heartbeat")
        survivor.signal(signal.SIGSTOP)
        try:
            with private_postgres.wal_writer_stopped():
                message = producer.enqueue(
                    probe_long.message(key="crash", seconds=20, start_file=str(started)))
                wait_for(started.exists, timeout=2, what="the job to start")
                private_postgres.crash()
            crashed_at = time.time()
            private_postgres.start()
        finally:
            survivor.signal(signal.SIGCONT)
        assert job_row(message.message_id, url) == ("queued", 0, 0)  # the claim was lost

        wait_for(lambda: count("crash", "lease-lost", url) == 1, timeout=20,
                 what="the victim to stop its copy")
        wait_for(lambda: count("crash", "end", url) == 1, timeout=60,
                 what="the job to run again, to its end")
        lost_at = next(moment for note, _, moment in notes("crash", url) if note == "lease-lost")
        starts = sorted(moment for note, _, moment in notes("crash", url) if note == "start")
        assert len(starts) == 2
        # The victim's copy stopped before the job started again.
        assert starts[0] < crashed_at < lost_at < starts[1]
        assert job_row(message.message_id, url) == ("done", 1, 0)
        print(f"\ncrash: the lost claim's copy stopped {lost_at - crashed_at:.1f} s after the "
              f"crash, and the job started again {starts[1] - crashed_at:.1f} s after it")
    finally:
        producer.close()
        victim.stop()
        survivor.stop()


@pytest.fixture
def cut_off_network():
    require(os.geteuid() == 0 and shutil.which("ip") is not None,
            "root and iproute2, for a network namespace")
    require(server_binaries_present(), "PostgreSQL's server binaries (apt-get install postgresql)")
    namespace = NetworkNamespace(f"pts{uuid.uuid4().hex[:6]}")
    yield namespace
    namespace.close()


def test_a_worker_cut_off_longer_than_the_lease_stops_its_job_before_it_runs_again_elsewhere(
    cut_off_network, cli_worker, tmp_path
):
    server = TcpPostgres(listen=cut_off_network.host_address)
    try:
        prepare_database(server.url)
        env = {**os.environ, **TEST_ENV, "DATABASE_URL": server.url}
        log = open(tmp_path / "cut-off.log", "w")  # noqa: SIM115 - closed below
        cut_off = subprocess.Popen(
            ["ip", "netns", "exec", cut_off_network.name, sys.executable, "-m", "dramatiq",
             "tests.support.workload", "--processes", "1", "--threads", "2",
             "--queues", "probe-long"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        producer = PostgresBroker(url=server.url, schema=SCHEMA)
        survivor = None
        try:
            wait_for(lambda: "Worker process is ready" in (tmp_path / "cut-off.log").read_text(),
                     timeout=30, what="the namespaced worker to boot")
            message = producer.enqueue(probe_long.message(key="cut", seconds=8))
            wait_for(lambda: count("cut", "start", server.url) == 1, timeout=15,
                     what="the job to start in the namespace")
            (_, cut_pid, _), = notes("cut", server.url)
            survivor = cli_worker("tests.support.workload", threads=2,
                                  env={"DATABASE_URL": server.url})
            survivor.wait_ready()

            cut_off_network.link_down()
            try:
                # Longer than the lease: the survivor takes the job over.
                wait_for(lambda: count("cut", "start", server.url) == 2, timeout=20,
                         what="the job to start again elsewhere")
            finally:
                cut_off_network.link_up()

            wait_for(lambda: count("cut", "lease-lost", server.url) == 1, timeout=120,
                     what="the cut-off copy to note that it stopped")
            wait_for(lambda: count("cut", "end", server.url) == 1, timeout=30,
                     what="the survivor's run to finish")
            wait_for(lambda: "could not renew its lease" in (tmp_path / "cut-off.log").read_text()
                     and job_row(message.message_id, server.url)[0] == "done",
                     timeout=20, what="the late ack")
            by_note = {(n, pid) for n, pid, _ in notes("cut", server.url)}
            survivor_pid = next(pid for n, pid in by_note if n == "end")
            assert survivor_pid != cut_pid
            assert by_note == {("start", cut_pid), ("stop-hook", cut_pid),
                               ("lease-lost", cut_pid), ("start", survivor_pid),
                               ("end", survivor_pid)}
            assert job_row(message.message_id, server.url) == ("done", 2, 1)
            at = {(n, pid): t for n, pid, t in notes("cut", server.url)}
            # Never two at once: the cut-off copy stopped (its container, say,
            # by the stop hook) before the survivor started the job.
            ahead = at["start", survivor_pid] - at["lease-lost", cut_pid]
            assert at["stop-hook", cut_pid] <= at["lease-lost", cut_pid] < at["start", survivor_pid]
            print(f"\nnetwork cut: job finished {count('cut', 'end', server.url)} time(s); the "
                  f"cut-off copy stopped {ahead:.1f} s before the rescued one started")
        finally:
            producer.close()
            if survivor is not None:
                survivor.stop()
            if cut_off.poll() is None:
                os.killpg(cut_off.pid, signal.SIGTERM)
                try:
                    cut_off.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(cut_off.pid, signal.SIGKILL)
                    cut_off.wait()
            log.close()
    finally:
        server.close()


def test_a_retry_sent_while_postgres_is_down_is_not_lost_but_sent_with_the_ack(
    private_postgres
):
    """Dramatiq logs a failed retry enqueue and acks the job as done: a lost job."""
    own = PostgresBroker(url=private_postgres.url, schema=SCHEMA, enqueue_timeout=1,
                         lease_timeout=2, heartbeat_interval=0.5, poll_interval=0.2)
    attempts: list[int] = []
    outage_started = threading.Event()

    @dramatiq.actor(broker=own, queue_name="outage-retry", actor_name="outage_retry",
                    max_retries=1, min_backoff=1, max_backoff=1)
    def fails_first(key: str) -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            private_postgres.stop()
            outage_started.set()
            raise RuntimeError("fails while the database is away")

    own.emit_after("process_boot")
    worker = dramatiq.Worker(own, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        message = fails_first.send("retried")
        assert outage_started.wait(15)
        # The retry's send times out (1 s); the ack then waits for the database.
        time.sleep(2)
        private_postgres.start()
        wait_for(lambda: attempts == [1, 2], timeout=30, what="the retry to run")
        wait_for(lambda: job_row(message.message_id, private_postgres.url)[0] == "done",
                 timeout=10, what="the retry's ack")
        # Its own retry ran it again, not a rescue (which would say rescues 1).
        assert job_row(message.message_id, private_postgres.url) == ("done", 2, 0)
    finally:
        worker.stop()
        own.close()
