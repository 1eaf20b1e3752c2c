"""`pts-jobs`, run as an operator runs it, against the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from pgbroker.jobs import get_job
from tests.support import job_in, wait_for
from tests.support.environment import ROOT, TEST_ENV
from tests.support.workload import probe_fails, probe_record


def pts_jobs(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "cli.py", *args], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, **TEST_ENV, **(env or {})}, timeout=60,
    )


def test_show_prints_a_jobs_state_and_json_gives_the_same_fields(broker):
    message = probe_record.send(key="shown")

    human = pts_jobs("show", message.message_id)
    machine = json.loads(pts_jobs("--json", "show", message.message_id).stdout)

    assert human.returncode == 0
    assert "queued" in human.stdout and message.message_id in human.stdout
    assert machine["state"] == "queued" and machine["queue_name"] == "probe-record"


def test_dead_jobs_are_listed_and_retried_from_the_command_line(start_worker):
    worker = start_worker()
    doomed = [probe_fails.send_with_options(kwargs={"key": f"d{i}"}, max_retries=0)
              for i in range(3)]
    for message in doomed:
        job_in(message.message_id, "dead")
    worker.pause()  # replayed jobs must stay queued until we have looked at them

    listed = json.loads(pts_jobs("--json", "dead", "list", "--queue", "probe-fails").stdout)
    assert {row["id"] for row in listed} == {m.message_id for m in doomed}
    assert listed[0]["last_error"].startswith("RuntimeError: always fails")

    one = pts_jobs("--json", "dead", "retry", doomed[0].message_id)
    assert json.loads(one.stdout) == {"replayed": 1}
    rest = pts_jobs("--json", "dead", "retry", "--queue", "probe-fails")
    assert json.loads(rest.stdout) == {"replayed": 2}
    assert {get_job(m.message_id).state for m in doomed} == {"queued"}

    worker.resume()
    # The actor always fails: each runs once more and dies again.
    for message in doomed:
        assert job_in(message.message_id, "dead").attempts == 1


def test_stats_counts_jobs_per_queue_and_state(broker):
    for i in range(3):
        probe_record.send(key=f"s{i}")

    rows = json.loads(pts_jobs("--json", "stats").stdout)

    assert {
        k: v for k, v in rows[0].items() if k != "oldest_seconds"
    } == {"queue_name": "probe-record", "state": "queued", "messages": 3}


def test_a_bad_id_exits_1_and_an_unreachable_database_exits_3_without_the_password(broker):
    missing = pts_jobs("show", str(uuid.uuid4()))
    assert missing.returncode == 1 and "no job" in missing.stderr

    down = pts_jobs("stats", env={"DATABASE_URL": "postgresql://app:s3cret@127.0.0.1:9/db",
                                  "JOBS_ENQUEUE_TIMEOUT": "1"})
    assert down.returncode == 3
    assert "s3cret" not in down.stderr and "app:***@" in down.stderr


def test_workers_lists_each_live_worker_process_with_its_queues(start_worker):
    worker = start_worker(threads=2, queues={"probe-record"})

    def listed() -> list[dict]:
        rows = json.loads(pts_jobs("--json", "workers").stdout)
        return rows if rows and rows[0]["queues"] == ["probe-record"] else []

    (row,) = wait_for(listed, timeout=10, what="the worker in the registry")
    assert (row["alive"], row["running"], row["pid"]) == (True, 0, os.getpid())
    assert row["id"].startswith(f"{row['host']}:{row['pid']}:")
    assert "probe-record" in pts_jobs("workers").stdout  # the human table

    worker.stop()
    assert json.loads(pts_jobs("--json", "workers").stdout) == []  # a clean exit leaves
