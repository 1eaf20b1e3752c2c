"""The pipeline's tables, on the broker's connections.

A :class:`Database` runs the named queries of ``sql/queries.sql`` in the
pipeline's schema. Actors open a transaction, hand it to the pipeline's
functions, and enqueue the next job on the same connection
(``actor.send_in_transaction(tx.connection, ...)``): a crash between the two
can neither lose the job nor send it for a change that did not happen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import connection as Connection
from psycopg2.extras import RealDictCursor

from pgbroker.db import Pool, transaction
from pgbroker.queries import named_queries

QUERIES = Path(__file__).parent / "sql" / "queries.sql"
MIGRATIONS = Path(__file__).parent / "sql" / "migrations"

Row = dict[str, Any]


class Transaction:
    """Named queries on one open transaction; rows come back as dicts."""

    def __init__(self, cursor: RealDictCursor, queries: dict[str, sql.Composed]) -> None:
        self.cursor = cursor
        self.queries = queries

    @property
    def connection(self) -> Connection:
        """The transaction's connection: enqueue follow-up jobs on it."""
        return self.cursor.connection

    def execute(self, name: str, **params: Any) -> int:
        """Run statement ``name``; returns how many rows it touched."""
        self.cursor.execute(self.queries[name], params)
        return self.cursor.rowcount

    def one(self, name: str, **params: Any) -> Row | None:
        """The first row of query ``name``, or None."""
        self.cursor.execute(self.queries[name], params)
        row = self.cursor.fetchone()
        return None if row is None else dict(row)

    def all(self, name: str, **params: Any) -> list[Row]:
        """Every row of query ``name`` (none for a statement that returns none)."""
        self.cursor.execute(self.queries[name], params)
        return [dict(row) for row in self.cursor.fetchall()] if self.cursor.description else []


class Database:
    """The pipeline's schema on a connection pool.

    ``prepare`` runs before the first transaction of each call (the broker's
    ``ensure_schema``: the pipeline migrates with the queue, on first use).
    """

    def __init__(self, pool: Pool, *, schema: str, timeout: float,
                 prepare: Callable[[], None] = lambda: None) -> None:
        self.pool = pool
        self.schema = schema
        self.timeout = timeout
        self.prepare = prepare
        self.queries = named_queries(QUERIES, schema)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A transaction for the block, committed when it ends, rolled back if it raises."""
        self.prepare()
        with self.pool.connection(self.timeout) as conn, transaction(conn), \
                conn.cursor(cursor_factory=RealDictCursor) as cur:
            yield Transaction(cur, self.queries)

    def execute(self, name: str, **params: Any) -> int:
        """Statement ``name`` in a transaction of its own; how many rows it touched."""
        with self.transaction() as tx:
            return tx.execute(name, **params)

    def one(self, name: str, **params: Any) -> Row | None:
        """Query ``name`` in a transaction of its own; its first row, or None."""
        with self.transaction() as tx:
            return tx.one(name, **params)

    def all(self, name: str, **params: Any) -> list[Row]:
        """Query ``name`` in a transaction of its own; every row."""
        with self.transaction() as tx:
            return tx.all(name, **params)
