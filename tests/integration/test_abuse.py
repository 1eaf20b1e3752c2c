"""Bad input and abuse: each gets a clear error or a dead letter, and work goes on."""

from __future__ import annotations

import time
import uuid

import psycopg2
import pytest

from pgbroker import InvalidMessage, PostgresBroker
from tests.support import job_in
from tests.support.environment import DATABASE_URL
from tests.support.fixtures import query
from tests.support.workload import probe_record

ODD_UNICODE = [
    "emoji 🐛🔧 and flags 🇫🇷",
    "right-to-left: שלום עולם",
    "combining: e\u0301 and zero\u200bwidth",
    "line\u2028separator and \u00a0no-break",
]


def stored() -> int:
    return query('SELECT count(*) FROM {schema}."queue"')[0][0]


def test_an_oversized_payload_is_refused_at_send_with_its_size(broker):
    started = time.monotonic()

    with pytest.raises(InvalidMessage, match="over the 1,048,576-byte limit"):
        probe_record.send(key="x" * 2_000_000)

    assert time.monotonic() - started < 1
    assert stored() == 0


@pytest.mark.parametrize("text", ODD_UNICODE)
def test_odd_unicode_goes_through_unchanged(worker, text):
    assert probe_record.send(key=text).get_result(block=True, timeout=10_000) == text.upper()


def test_a_lone_surrogate_is_refused_at_send(broker):
    with pytest.raises(InvalidMessage, match="not valid Unicode"):
        probe_record.send(key="broken \ud800 half")
    assert stored() == 0


def test_a_row_set_to_running_by_hand_without_a_lease_is_rescued_and_run(worker):
    message = probe_record.message(key="hand-edited")
    query('INSERT INTO {schema}."queue" (message_id, queue_name, state, message) '
          "VALUES (%s, 'probe-record', 'consumed', %s)",
          message.message_id, message.encode().decode())

    job = job_in(message.message_id, "done", timeout=10)
    assert job.rescues == 1


def test_a_schema_name_that_is_no_plain_identifier_is_refused_before_any_sql(broker):
    # Quoting alone is not enough: the name also stands inside the dollar-quoted
    # bodies of the migrations, where "$$" would end them early.
    for schema in (f'pts "odd"; schema {uuid.uuid4().hex[:4]}', "pts$$odd"):
        with pytest.raises(ValueError, match="letters, digits and underscores"):
            PostgresBroker(url=DATABASE_URL, schema=schema)
        with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,))
            assert cur.fetchone() == (0,)


