"""The prepared statements keep their index plans once the queue table
has statistics, in their generic plan too: PostgreSQL may run that plan from a
statement's sixth run on (and always does with plan_cache_mode =
force_generic_plan). It cannot see the claim's LIMIT or the ack's array sizes,
and with a backlog of queued jobs it once hash-joined the claim with a scan of
the whole table."""

from __future__ import annotations

import uuid

import pytest

from pgbroker.broker import PREPARED
from pgbroker.prepared import execute_statement, prepare_statement
from tests.support.fixtures import db, query


@pytest.mark.parametrize("name", sorted(PREPARED))
def test_the_generic_plan_reads_no_whole_table(broker, name):
    query('INSERT INTO {schema}."queue" (message_id, queue_name, state, message, delivery_id) '
          "SELECT gen_random_uuid(), 'probe-record', "
          "CASE WHEN i %% 100 = 0 THEN 'consumed' ELSE 'queued' END::{schema}.state, "
          "'{{}}', gen_random_uuid() FROM generate_series(1, 20000) AS i")
    query('ANALYZE {schema}."queue"')
    running = query('SELECT array_agg(message_id::text), array_agg(delivery_id::text) '
                    'FROM {schema}."queue" WHERE state = \'consumed\'')[0]
    params = {"claim": ("probe-record", 16, "plan-test", 20.0), "ack_many": running,
              "enqueue_new": (str(uuid.uuid4()), "probe-record", "{}", None, 0, 0, None)}[name]
    with db() as conn, conn.cursor() as cur:
        cur.execute("SET plan_cache_mode = force_generic_plan")
        text = broker.queries[name].as_string(conn)
        cur.execute(prepare_statement(name, text, PREPARED[name]))
        cur.execute(f"EXPLAIN (FORMAT JSON) {execute_statement(name, text, PREPARED[name])}",
                    params)
        plan = cur.fetchone()[0][0]["Plan"]
        conn.rollback()

    assert "Seq Scan" not in scans_of_queue(plan), plan


def scans_of_queue(node: dict) -> list[str]:
    """The node types of every scan of the queue table in a JSON plan."""
    found = [node["Node Type"]] if node.get("Relation Name") == "queue" else []
    for child in node.get("Plans", []):
        found += scans_of_queue(child)
    return found
