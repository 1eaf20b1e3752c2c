"""Retention: done jobs kept 7 days, dead ones 30, deleted in bounded batches."""

from __future__ import annotations

from datetime import timedelta

from actors import prune_jobs
from pgbroker import jobs
from tests.support import job_in
from tests.support.fixtures import query


def add_finished(state: str, age: timedelta, count: int) -> None:
    query(
        'INSERT INTO {schema}."queue" '
        "(message_id, queue_name, state, message, mtime, finished_at) "
        "SELECT gen_random_uuid(), 'probe-record', %s, '{{}}', now() - %s, now() - %s "
        "FROM generate_series(1, %s)",
        state, age, age, count,
    )


def counts() -> dict[str, int]:
    return dict(query('SELECT state::text, count(*) FROM {schema}."queue" '
                      "WHERE queue_name = 'probe-record' GROUP BY 1"))


def test_the_retention_job_deletes_only_what_is_past_its_retention(worker):
    add_finished("done", timedelta(days=8), 2500)   # more than one batch
    add_finished("done", timedelta(days=6), 10)
    add_finished("rejected", timedelta(days=31), 1200)
    add_finished("rejected", timedelta(days=8), 5)  # dead jobs are kept 30 days

    query("INSERT INTO {schema}.results (message_key, result, expires_at) "
          "VALUES ('expired', '1', now() - interval '1 second'), "
          "('kept', '2', now() + interval '1 hour')")
    message = prune_jobs.send()

    job = job_in(message.message_id, "done", timeout=30)
    assert counts() == {"done": 10, "rejected": 5}
    assert job.result == '{"dead": 1200, "done": 2500, "results": 1}'
    assert query("SELECT message_key FROM {schema}.results WHERE message_key <> %s",
                 message.message_id) == [("kept",)]


def test_purge_reports_progress_per_batch(broker):
    add_finished("done", timedelta(days=2), 2300)
    batches: list[int] = []

    deleted = jobs.purge("done", timedelta(days=1), progress=batches.append)

    assert deleted == 2300
    assert batches == [1000, 1000, 300]
