"""Connections to PostgreSQL: a small blocking pool.

psycopg2's own pools raise ``PoolError`` at once when empty, which dramatiq-pg
never retries (messages were seen stuck ``consumed``). This pool waits, up to a
deadline, for a connection to come back, and forgets connections inherited
across a ``fork`` instead of sharing their sockets with the parent.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.extensions
from psycopg2.extensions import connection as Connection

logger = logging.getLogger(__name__)

# Errors after which a connection cannot be trusted and is closed.
DISCONNECTS = (psycopg2.OperationalError, psycopg2.InterfaceError)

# What libpq and the server say when the server itself is down: its host
# refuses the connection, its unix socket is gone, its name is gone from DNS
# (Compose drops a stopped container's), or the postmaster answers that it
# accepts none. Then no other worker is connected either, as long as every
# worker reaches PostgreSQL at the same address (no proxy of its own that could
# be down alone). Everything else (a timeout, no route, a connection closed
# midway) may be this process's path alone, the server up for everyone else.
_SERVER_DOWN = re.compile(
    r"failed: Connection refused"
    r"|on socket .* failed: No such file or directory"
    r"|could not translate host name .* Name or service not known"
    r"|the database system is (?:shutting down|starting up|in recovery mode"
    r"|not yet accepting connections|not accepting connections)")


def server_down(error: BaseException) -> bool:
    """Whether ``error`` shows the server down for every client, not just this one."""
    return _SERVER_DOWN.search(str(error)) is not None


# TCP keepalives let a dead server or a cut network surface as an error within
# about 30 s instead of hanging a consumer on a half-open socket.
KEEPALIVES = dict(keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3)


@contextmanager
def transaction(conn: Connection) -> Iterator[Connection]:
    """One transaction on ``conn`` for the block, even if ``conn`` autocommits.

    Committed when the block ends, rolled back if it raises; ``conn``'s
    autocommit setting is restored either way.
    """
    autocommit, conn.autocommit = conn.autocommit, False
    try:
        with conn:
            yield conn
    finally:
        conn.autocommit = autocommit


class PoolTimeout(psycopg2.OperationalError):
    """No connection could be had before the deadline."""


def connect(dsn: str, *, timeout: float, application_name: str = "pts-jobs") -> Connection:
    """Open one connection, failing after ``timeout`` seconds."""
    return psycopg2.connect(
        dsn,
        connect_timeout=max(1, math.ceil(timeout)),
        application_name=application_name,
        **KEEPALIVES,
    )


class Pool:
    """At most ``size`` autocommit connections, shared by the threads of one process."""

    def __init__(self, dsn: str, *, size: int, application_name: str = "pts-jobs") -> None:
        self.dsn = dsn
        self.size = size
        self.application_name = application_name
        self._idle: list[Connection] = []
        self._open = 0
        self._pid = os.getpid()
        self._cond = threading.Condition()

    def getconn(self, timeout: float) -> Connection:
        """A connection, new or reused.

        Raises:
            PoolTimeout: all ``size`` connections stayed busy for ``timeout`` s.
            psycopg2.OperationalError: the server could not be reached.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            self._forget_if_forked()
            while not self._idle and self._open >= self.size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PoolTimeout(f"all {self.size} connections busy for {timeout:.1f}s")
                self._cond.wait(remaining)
            if self._idle:
                return self._idle.pop()
            self._open += 1
        try:
            conn = connect(
                self.dsn,
                timeout=max(deadline - time.monotonic(), 0.1),
                application_name=self.application_name,
            )
            # Every broker query is one statement, atomic on its own: autocommit
            # spares the BEGIN and COMMIT round trips around it.
            conn.autocommit = True
            return conn
        except BaseException:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            raise

    def putconn(self, conn: Connection, *, broken: bool = False) -> None:
        """Give ``conn`` back; a broken one is closed and its slot freed."""
        if not broken and not conn.closed:
            try:
                if conn.info.transaction_status != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
                    conn.rollback()
            except DISCONNECTS:
                broken = True
        with self._cond:
            if os.getpid() != self._pid:
                return  # a parent's connection: never touch its socket
            if broken or conn.closed:
                self._open -= 1
                _close_quietly(conn)
            else:
                self._idle.append(conn)
            self._cond.notify()

    @contextmanager
    def connection(self, timeout: float) -> Iterator[Connection]:
        """A connection for the block; rolled back if the block did not commit."""
        conn = self.getconn(timeout)
        try:
            yield conn
        except DISCONNECTS:
            self.putconn(conn, broken=True)
            raise
        except BaseException:
            self.putconn(conn)
            raise
        else:
            self.putconn(conn)

    def close(self) -> None:
        """Close every idle connection; busy ones close when given back."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
        for conn in idle:
            _close_quietly(conn)

    def _forget_if_forked(self) -> None:
        # Closing an inherited connection would send a Terminate on the parent's
        # socket; drop the objects and start afresh instead.
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self._idle = []
            self._open = 0


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # pragma: no cover - closing a dead socket
        logger.debug("error while closing a connection", exc_info=True)
