"""Server-side prepared statements on psycopg2 connections (SQL ``PREPARE``).

psycopg2 sends every statement as text, which the server parses and plans
each time. For the hot statements that is much of their server time: an
INSERT into the queue table, with its seven indexes, spends more in parse and
plan than in the insert. A prepared statement is planned once per connection.

A statement's name carries a digest of its text and parameter types, so one
name always means one statement: on a server connection shared through a
transaction-mode pooler (PgBouncer), another client, schema or release cannot
have prepared a different statement under it. Such a pooler may run each
transaction on a server connection that has not seen our PREPARE; the EXECUTE
then fails without running, the statement is prepared there, and a connection
on which it still cannot be found sends its statements as plain text from then
on.
"""

from __future__ import annotations

import hashlib
import logging
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import psycopg2.errors
from psycopg2.extensions import TRANSACTION_STATUS_INERROR
from psycopg2.extensions import connection as Connection
from psycopg2.extensions import cursor as Cursor

logger = logging.getLogger(__name__)

# A statement's parameters, in order: (name in its text's %(name)s, SQL type).
Params = list[tuple[str, str]]


def statement_name(name: str, text: str, params: Params) -> str:
    """The server-side name of query ``name`` rendered as ``text``, with
    ``params``: another text or parameter type is another name."""
    digest = hashlib.sha1(repr((text, params)).encode()).hexdigest()[:12]
    return f"pts_{name}_{digest}"


def prepare_statement(name: str, text: str, params: Params) -> str:
    """The PREPARE of query ``name`` from its rendered ``text``."""
    body = text
    for number, (param, _) in enumerate(params, start=1):
        body = body.replace(f"%({param})s", f"${number}")
    types = ", ".join(kind for _, kind in params)
    return (f"PREPARE {statement_name(name, text, params)} ({types}) "
            f"AS {body.replace('%%', '%')}")


def execute_statement(name: str, text: str, params: Params) -> str:
    """The EXECUTE of query ``name`` rendered as ``text``, its parameters as
    psycopg2's ``%s``."""
    marks = ", ".join(f"%s::{kind}" for _, kind in params)
    return f"EXECUTE {statement_name(name, text, params)} ({marks})"


class PreparedStatements:
    """The statements of ``specs``, prepared on each connection at first use.

    ``render(name, conn)`` gives a query's text with psycopg2's ``%(param)s``
    placeholders, the same text on every connection.
    """

    def __init__(self, specs: dict[str, Params], render: Callable[[str, Connection], str]) -> None:
        self.specs = specs
        self._render = render
        # Per connection: the names prepared on it.
        self._on: weakref.WeakKeyDictionary[Connection, set[str]] = weakref.WeakKeyDictionary()
        # The connections that send plain text instead (a pooler that keeps
        # losing their statements).
        self._plain_text: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._executes: dict[tuple[str, str], str] = {}

    def execute(self, cur: Cursor, name: str, values: Sequence[Any], then: str = "") -> None:
        """Run query ``name`` with ``values`` (in ``specs`` order) on ``cur``,
        followed in the same round trip by the statements ``then`` (no
        parameters; they may be utility statements such as NOTIFY, which
        cannot be prepared)."""
        conn = cur.connection
        if conn in self._plain_text:
            self._execute_plain(cur, name, values, then)
            return
        prepared = self._on.setdefault(conn, set())
        if name not in prepared:
            self._prepare(cur, name, prepared)
        try:
            cur.execute(self._execute(name, conn, then), values)
            return
        except psycopg2.errors.InvalidSqlStatementName:
            # Not on this server connection: a pooler moved us, or DISCARD ALL
            # ran. The EXECUTE failed before running anything.
            if _aborted(conn):
                # And took the caller's transaction with it: theirs to retry,
                # and the retry prepares it again.
                prepared.discard(name)
                raise
            logger.debug("statement %s was not on the server connection: preparing it again", name)
        self._prepare(cur, name, prepared)
        try:
            cur.execute(self._execute(name, conn, then), values)
        except psycopg2.errors.InvalidSqlStatementName:
            logger.info("statements are lost between transactions on this connection (a "
                        "transaction-mode pooler?): it sends them as plain text from now on")
            self._plain_text.add(conn)
            self._execute_plain(cur, name, values, then)

    def _prepare(self, cur: Cursor, name: str, prepared: set[str]) -> None:
        conn = cur.connection
        try:
            cur.execute(prepare_statement(name, self._render(name, conn), self.specs[name]))
        except psycopg2.errors.DuplicatePreparedStatement:
            # Prepared on this server connection already, from the same text
            # and types (the name says so), by us or another client of a pooler.
            if _aborted(conn):
                prepared.add(name)  # the caller's retry uses it
                raise
        prepared.add(name)

    def _execute(self, name: str, conn: Connection, then: str) -> str:
        key = (name, then)
        text = self._executes.get(key)
        if text is None:
            text = execute_statement(name, self._render(name, conn), self.specs[name])
            text = self._executes[key] = _followed(text, then)
        return text

    def _execute_plain(self, cur: Cursor, name: str, values: Sequence[Any], then: str) -> None:
        params = dict(zip((param for param, _ in self.specs[name]), values, strict=True))
        cur.execute(_followed(self._render(name, cur.connection), then), params)


def _aborted(conn: Connection) -> bool:
    return conn.get_transaction_status() == TRANSACTION_STATUS_INERROR


def _followed(text: str, then: str) -> str:
    # psycopg2 reads every "%" of the text as a placeholder or an escape.
    # A line of its own: a text that ends in a comment does not swallow it.
    return f"{text.rstrip().rstrip(';')};\n{then.replace('%', '%%')}" if then else text
