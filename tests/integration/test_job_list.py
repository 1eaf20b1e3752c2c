"""The dashboard's job list: a merge of the newest jobs of each (state, queue)
pair its filters allow (no index orders all jobs; 0021_one_listing_index.sql)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

from tests.support.environment import PIPELINE_SCHEMA
from tests.support.fixtures import query
from web.data import Dashboard, JobFilter

STATES = ["queued", "consumed", "done", "rejected", "cancelled"]
START = datetime(2026, 11, 1, tzinfo=UTC)


def add_jobs(queues: tuple[str, ...] = ("probe-record",)) -> list[tuple]:
    """40 jobs spread over every state and ``queues``; pairs share an
    enqueued_at, so the id breaks the tie; every third has an error.
    (enqueued_at, id, state, error, queue), newest first."""
    jobs = []
    for i in range(40):
        enqueued_at = START + timedelta(seconds=i // 2)
        error = f"boom {i}" if i % 3 == 0 else None
        jobs.append((enqueued_at, str(uuid.uuid4()), STATES[i * 7 % 5], error,
                     queues[i % len(queues)]))
    for enqueued_at, message_id, state, error, queue in jobs:
        query('INSERT INTO {schema}."queue" '
              "(message_id, queue_name, state, message, enqueued_at, last_error) "
              "VALUES (%s, %s, %s, '{{\"actor_name\": \"probe_record\"}}', %s, %s)",
              message_id, queue, state, enqueued_at, error)
    return sorted(jobs, key=lambda job: (job[0], uuid.UUID(job[1])), reverse=True)


def all_pages(dashboard: Dashboard, where: JobFilter, limit: int) -> list[str]:
    seen: list[str] = []
    while True:
        page, cursor = dashboard.job_list(where, limit=limit)
        seen += [row["id"] for row in page]
        if cursor is None:
            return seen
        where = dataclasses.replace(where, before_at=page[-1]["enqueued_at"],
                                    before_id=page[-1]["id"])


def test_every_job_is_listed_once_newest_first_across_states_and_queues(broker):
    newest_first = add_jobs(("probe-record", "probe-priority", "probe-a"))
    dashboard = Dashboard(broker, PIPELINE_SCHEMA, cache_seconds=0)

    assert all_pages(dashboard, JobFilter(), limit=7) == [job[1] for job in newest_first]


def test_a_state_filter_lists_that_states_jobs_of_every_queue(broker):
    newest_first = add_jobs(("probe-record", "probe-priority", "probe-a"))
    dashboard = Dashboard(broker, PIPELINE_SCHEMA, cache_seconds=0)

    found = all_pages(dashboard, JobFilter(state="dead"), limit=3)

    assert found == [job[1] for job in newest_first if job[2] == "rejected"]
    assert len({job[4] for job in newest_first if job[2] == "rejected"}) == 3


def test_a_queue_filter_lists_that_queues_jobs_of_every_state(broker):
    newest_first = add_jobs(("probe-record", "probe-priority"))
    dashboard = Dashboard(broker, PIPELINE_SCHEMA, cache_seconds=0)

    found = all_pages(dashboard, JobFilter(queue_name="probe-priority"), limit=5)

    assert found == [job[1] for job in newest_first if job[4] == "probe-priority"]
    assert {job[2] for job in newest_first if job[4] == "probe-priority"} == set(STATES)


def test_an_error_search_finds_failed_jobs_in_every_state(broker):
    newest_first = add_jobs()
    dashboard = Dashboard(broker, PIPELINE_SCHEMA, cache_seconds=0)

    found = all_pages(dashboard, JobFilter(error="boom"), limit=4)

    assert found == [job[1] for job in newest_first if job[3]]
    assert {job[2] for job in newest_first if job[3]} == set(STATES)


def test_a_job_type_filter_lists_that_actors_jobs_from_its_queue(broker):
    add_jobs()  # probe_record's, on probe-record
    placed = [("probe_low", "probe-priority"), ("probe_high", "probe-priority"),
              ("probe_low", "probe-priority"),
              # Refused by the consumer (not the actor's queue): a dead letter
              # of probe-record, listed with that queue, not with the job type.
              ("probe_low", "probe-record")]
    for actor, queue in placed:
        query('INSERT INTO {schema}."queue" (message_id, queue_name, state, message) '
              "VALUES (gen_random_uuid(), %s, 'done', %s)", queue, f'{{"actor_name": "{actor}"}}')
    dashboard = Dashboard(broker, PIPELINE_SCHEMA, cache_seconds=0)

    page, _ = dashboard.job_list(JobFilter(actor_name="probe_low"))

    assert [(row["actor_name"], row["queue_name"]) for row in page] == [
        ("probe_low", "probe-priority")] * 2


def test_the_filtered_and_the_unfiltered_list_give_the_same_rows(broker):
    """A queue filter names its pairs; no filter finds them in the index: the
    two must agree."""
    add_jobs()  # all on probe-record
    dashboard = Dashboard(broker, PIPELINE_SCHEMA, cache_seconds=0)

    everything, _ = dashboard.job_list(JobFilter(), limit=100)
    of_the_queue, _ = dashboard.job_list(JobFilter(queue_name="probe-record"), limit=100)

    assert of_the_queue == everything and len(everything) == 40
