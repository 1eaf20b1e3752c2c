"""Prepared statements where the server forgets them or another client made
them first, and the prepared send's fallback for a message stored already."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.errors
import pytest
from dramatiq.message import Message

from pgbroker.broker import PREPARED
from pgbroker.prepared import PreparedStatements, statement_name
from pgbroker.queries import queries
from tests.support.environment import DATABASE_URL
from tests.support.fixtures import db, query

QUEUE = "prepared-test"


def message() -> Message:
    return Message(queue_name=QUEUE, actor_name="nobody", args=(), kwargs={}, options={})


def row_of(message_id: str) -> tuple:
    return (message_id, QUEUE, "{}", None, 0, 0, None)


def stored(*message_ids: str) -> int:
    return query('SELECT count(*) FROM {schema}."queue" WHERE message_id = ANY(%s::uuid[])',
                 list(message_ids))[0][0]


@contextmanager
def autocommitted() -> Iterator:
    """A cursor on a connection of the test's own, each statement its own
    transaction, as on the broker's pool."""
    conn = psycopg2.connect(DATABASE_URL)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


@contextmanager
def in_transactions() -> Iterator[tuple]:
    """A connection of the test's own and its cursor, statements in
    transactions the test commits or rolls back."""
    conn = psycopg2.connect(DATABASE_URL)
    try:
        with conn.cursor() as cur:
            yield conn, cur
    finally:
        conn.close()


def stored_on_the_retry(conn, cur, statements: PreparedStatements, row: tuple,
                        error: type[Exception]) -> None:
    """The caller's part: its first try raises ``error``, which aborts its
    transaction; after a rollback, its retry stores ``row``."""
    with pytest.raises(error):
        statements.execute(cur, "enqueue_new", row)
    conn.rollback()
    statements.execute(cur, "enqueue_new", row)
    conn.commit()


def prepared_names(cur) -> list[str]:
    cur.execute("SELECT name FROM pg_prepared_statements ORDER BY name")
    return [name for (name,) in cur.fetchall()]


def test_a_statement_the_server_forgot_is_prepared_again(broker):
    statements = PreparedStatements(PREPARED, broker._text)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    with autocommitted() as cur:
        statements.execute(cur, "enqueue_new", row_of(first))
        cur.execute("DEALLOCATE ALL")  # what a pooler's DISCARD ALL does
        statements.execute(cur, "enqueue_new", row_of(second))
        names = prepared_names(cur)

    assert stored(first, second) == 2
    assert len(names) == 1 and names[0].startswith("pts_enqueue_new_")


def test_a_statement_another_client_prepared_on_the_connection_is_used(broker):
    """Two clients of one pooled server connection: the second's PREPARE finds
    the name taken, by the same text."""
    ours, theirs = (PreparedStatements(PREPARED, broker._text) for _ in range(2))
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    with autocommitted() as cur:
        theirs.execute(cur, "enqueue_new", row_of(first))
        ours.execute(cur, "enqueue_new", row_of(second))
        names = prepared_names(cur)

    assert stored(first, second) == 2
    assert len(names) == 1


def test_statements_of_two_schemas_have_two_names(broker):
    other = queries("other_schema")["enqueue_new"]
    with db() as conn:
        texts = {broker._text("enqueue_new", conn), other.as_string(conn)}
    params = PREPARED["enqueue_new"]
    assert len({statement_name("enqueue_new", text, params) for text in texts}) == 2
    wider = [(param, "bigint" if param == "delay_ms" else kind) for param, kind in params]
    assert statement_name("enqueue_new", min(texts), wider) != statement_name(
        "enqueue_new", min(texts), params)


def test_inside_a_transaction_a_lost_statement_is_prepared_again_on_the_retry(broker):
    """The failed EXECUTE aborts the caller's transaction, which is the
    caller's to retry: after its rollback, the retry prepares it again."""
    statements = PreparedStatements(PREPARED, broker._text)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    with in_transactions() as (conn, cur):
        statements.execute(cur, "enqueue_new", row_of(first))
        conn.commit()
        cur.execute("DEALLOCATE ALL")
        stored_on_the_retry(conn, cur, statements, row_of(second),
                            psycopg2.errors.InvalidSqlStatementName)

    assert stored(first, second) == 2


def test_inside_a_transaction_a_statement_found_prepared_is_used_on_the_retry(broker):
    ours, theirs = (PreparedStatements(PREPARED, broker._text) for _ in range(2))
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    with in_transactions() as (conn, cur):
        theirs.execute(cur, "enqueue_new", row_of(first))
        conn.commit()
        stored_on_the_retry(conn, cur, ours, row_of(second),
                            psycopg2.errors.DuplicatePreparedStatement)

    assert stored(first, second) == 2


def test_a_message_sent_again_after_it_finished_is_queued_again(broker):
    sent = broker.enqueue(message())
    query('UPDATE {schema}."queue" SET state = \'done\' WHERE message_id = %s', sent.message_id)

    broker.enqueue(sent)

    assert query('SELECT state::text FROM {schema}."queue" WHERE message_id = %s',
                 sent.message_id) == [("queued",)]


def test_a_message_sent_twice_while_queued_is_stored_once(broker):
    sent = broker.enqueue(message())
    broker.enqueue(sent)
    assert stored(sent.message_id) == 1
