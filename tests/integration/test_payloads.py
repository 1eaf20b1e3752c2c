"""Bad input is refused at send() and changes nothing; bad rows die in the worker."""

from __future__ import annotations

import time
import uuid

import pytest

from actors import analyze_codebase, send_notification
from actors.base import InvalidPayload
from pgbroker import InvalidMessage
from pgbroker.jobs import get_job
from tests.support import job_in
from tests.support.fixtures import db, query
from tests.support.workload import probe_record


def queued_rows() -> int:
    return query('SELECT count(*) FROM {schema}."queue"')[0][0]


def test_an_invalid_payload_is_refused_at_send_naming_the_field_and_nothing_is_enqueued(broker):
    with pytest.raises(InvalidPayload) as refused:
        send_notification.send(
            type="fix_started", bug_report_id=str(uuid.uuid4()), recipient_email="not-an-address"
        )

    assert "recipient_email" in str(refused.value)
    assert queued_rows() == 0


def test_the_specs_camel_case_field_names_are_accepted_and_stored_as_snake_case(broker):
    repo = uuid.uuid4()
    message = analyze_codebase.send(repoLinkId=str(repo), fullAnalysis=False, triggeredBy="webhook")

    assert message.kwargs == {
        "repo_link_id": str(repo), "full_analysis": False, "triggered_by": "webhook",
    }
    assert get_job(message.message_id).payload == message.kwargs


@pytest.mark.parametrize(
    ("key", "problem"),
    [("nul\x00byte", "NUL character"), (float("nan"), "not valid JSON")],
)
def test_unstorable_values_fail_fast_with_a_clear_error(broker, key, problem):
    message = probe_record.message(key="x")
    message.kwargs["key"] = key  # bypass the model, as a careless producer might
    started = time.monotonic()

    with pytest.raises(InvalidMessage, match=problem):
        broker.enqueue(message)

    assert time.monotonic() - started < 1
    assert queued_rows() == 0


def test_a_large_payload_is_delivered_whole(worker):
    key = "k" * 20_000  # NOTIFY payloads stop at 8,000 bytes; ours carry none
    message = probe_record.send(key=key)

    assert message.get_result(block=True, timeout=10_000) == key.upper()


def test_a_message_with_an_invalid_payload_in_the_queue_is_dead_at_once_and_the_worker_goes_on(
    worker,
):
    # Written by another producer, bypassing validation: SQL add_job().
    with db() as conn, conn.cursor() as cur:
        cur.execute(
            f'SELECT "{broker_schema()}".add_job(%s, %s, %s)',
            ("probe-record", "probe_record", '{"key": 42, "unexpected": true}'),
        )
        (bad_id,) = cur.fetchone()
    good = probe_record.send(key="after")

    bad = job_in(str(bad_id), "dead")
    assert bad.attempts == 1
    assert str(bad.last_error).startswith("InvalidPayload: invalid payload for probe_record:")
    assert "unexpected" in str(bad.last_error)
    assert good.get_result(block=True, timeout=10_000) == "AFTER"


def test_a_row_that_is_not_a_dramatiq_message_is_dead_lettered_and_the_worker_goes_on(worker):
    bad_id = str(uuid.uuid4())
    query(
        'INSERT INTO {schema}."queue" (message_id, queue_name, "state", message) '
        "VALUES (%s, 'probe-record', 'queued', '{{\"garbage\": true}}')",
        bad_id,
    )
    good = probe_record.send(key="still-here")

    assert good.get_result(block=True, timeout=10_000) == "STILL-HERE"
    bad = job_in(bad_id, "dead")
    assert str(bad.last_error).startswith("undecodable message")


def test_a_message_for_an_unknown_actor_is_dead_lettered_with_the_reason(worker):
    with db() as conn, conn.cursor() as cur:
        cur.execute(
            f'SELECT "{broker_schema()}".add_job(%s, %s, %s)',
            ("probe-record", "no_such_actor", "{}"),
        )
        (bad_id,) = cur.fetchone()

    bad = job_in(str(bad_id), "dead")
    assert "unknown actor 'no_such_actor'" in str(bad.last_error)


def broker_schema() -> str:
    from tests.support.environment import SCHEMA

    return SCHEMA
