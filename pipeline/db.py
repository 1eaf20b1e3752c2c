"""Transactions on the pipeline's tables, on the broker's connections.

Handlers change rows and enqueue the next job in one transaction
(``actor.send_in_transaction(cur.connection, ...)``): a crash between the two
can neither lose the job nor send it for a change that did not happen.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from psycopg2.extras import RealDictCursor

from pgbroker.queries import named_queries

QUERIES = Path(__file__).parent / "sql" / "queries.sql"
MIGRATIONS = Path(__file__).parent / "sql" / "migrations"


def query(name: str) -> Any:
    """Named query ``name`` of ``sql/queries.sql``, bound to the pipeline schema."""
    from settings import settings

    return named_queries(QUERIES, settings.pipeline_schema)[name]


@contextmanager
def transaction() -> Iterator[RealDictCursor]:
    """A cursor (rows as dicts) in a transaction, committed when the block ends."""
    from broker import broker

    broker.ensure_schema()
    with broker.pool.connection(broker.enqueue_timeout) as conn:
        conn.autocommit = False
        try:
            with conn, conn.cursor(cursor_factory=RealDictCursor) as cur:
                yield cur
        finally:
            conn.autocommit = True


def fetch_one(name: str, **params: Any) -> dict[str, Any] | None:
    with transaction() as cur:
        cur.execute(query(name), params)
        return cur.fetchone()


def run(name: str, **params: Any) -> list[dict[str, Any]]:
    with transaction() as cur:
        cur.execute(query(name), params)
        return cur.fetchall() if cur.description else []
