"""Migrations: the schema creates itself, once, however many workers start."""

from __future__ import annotations

import threading
import uuid

import psycopg2
import pytest
from dramatiq_pg import generate_init_sql
from psycopg2 import sql

from pgbroker import migrations
from tests.support.environment import DATABASE_URL


@pytest.fixture
def fresh_schema():
    name = f"pts_mig_{uuid.uuid4().hex[:8]}"
    yield name
    with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def schema_shape(schema: str) -> list[tuple]:
    with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
        cur.execute(
            """
            SELECT table_name, column_name, data_type, column_default, is_nullable
            FROM information_schema.columns WHERE table_schema = %s
            UNION ALL
            SELECT 'index', indexname, indexdef, NULL, NULL FROM pg_indexes WHERE schemaname = %s
            UNION ALL
            SELECT 'function', p.proname, pg_get_functiondef(p.oid), NULL, NULL
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s
            ORDER BY 1, 2
            """,
            (schema, schema, schema),
        )
        return cur.fetchall()


def migrate(schema: str) -> list[str]:
    conn = psycopg2.connect(DATABASE_URL)
    try:
        return [m.name for m in migrations.migrate(conn, schema)]
    finally:
        conn.close()


def test_migrating_twice_changes_nothing(fresh_schema):
    first = migrate(fresh_schema)
    shape = schema_shape(fresh_schema)

    assert first == [m.name for m in migrations.available()]
    assert migrate(fresh_schema) == []
    assert schema_shape(fresh_schema) == shape


def test_workers_starting_together_apply_each_migration_exactly_once(fresh_schema):
    results: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def start() -> None:
        barrier.wait()
        try:
            results.append(migrate(fresh_schema))
        except BaseException as error:  # pragma: no cover - the failure we test for
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(len(r) for r in results) == [0] * 5 + [len(migrations.available())]


def test_the_first_migration_is_dramatiq_pgs_own_table(fresh_schema):
    reference = f"{fresh_schema}_ref"
    with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
        cur.execute(generate_init_sql(schema=reference))
    try:
        with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(fresh_schema)))
            cur.execute(migrations.bind(migrations.available()[0].path.read_text(), fresh_schema))
        ours = [row[:3] for row in schema_shape(fresh_schema) if row[0] == "queue"]
        theirs = [row[:3] for row in schema_shape(reference) if row[0] == "queue"]
        assert ours == theirs
    finally:
        with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
            cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(reference)))


def test_a_database_set_up_by_dramatiq_pg_init_is_upgraded_in_place(fresh_schema):
    # A deployment that ran `dramatiq-pg init` and has a delayed retry waiting.
    with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
        cur.execute(generate_init_sql(schema=fresh_schema))
        cur.execute(
            sql.SQL(
                "INSERT INTO {}.queue (message_id, queue_name, state, message) VALUES "
                "(%s, 'work.DQ', 'queued', %s)"
            ).format(sql.Identifier(fresh_schema)),
            (
                "00000000-0000-0000-0000-000000000001",
                '{"queue_name": "work.DQ", "actor_name": "a", "args": [], "kwargs": {},'
                ' "options": {"eta": 4102444800000}, "message_id":'
                ' "00000000-0000-0000-0000-000000000001", "message_timestamp": 0}',
            ),
        )

    assert migrate(fresh_schema) == [m.name for m in migrations.available()]

    with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "SELECT queue_name, message->>'queue_name', message->'options', "
                "available_at = to_timestamp(4102444800) FROM {}.queue"
            ).format(sql.Identifier(fresh_schema))
        )
        assert cur.fetchall() == [("work", "work", {}, True)]
