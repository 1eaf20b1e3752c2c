"""The worker's own session: registry row, lease renewals, rescues.

Each worker process keeps one connection open for its whole life (reopened
only when it breaks). Its backend pid and start time go into the ``workers``
table on every heartbeat, so other workers can tell, from
``pg_stat_activity``, that this process died the moment its session vanishes.
The same session runs the rescuer, whose outage guard reads its
``backend_start``: a rescuer that just reconnected has not watched the
database for a full lease, and takes nothing on lapsed leases yet.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from psycopg2.extensions import connection as Connection
from psycopg2.extensions import cursor as Cursor
from psycopg2.sql import Composed

from .db import DISCONNECTS, connect

logger = logging.getLogger(__name__)

T = TypeVar("T")
RESCUE_BATCH = 500


class WorkerSession:
    """The long-lived connection of one worker process. One thread uses it."""

    def __init__(
        self,
        *,
        dsn: str,
        queries: dict[str, Composed],
        worker_id: str,
        lease_seconds: float,
        max_rescues: int,
        connect_timeout: float = 5.0,
    ) -> None:
        self.dsn = dsn
        self.queries = queries
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.max_rescues = max_rescues
        self.connect_timeout = connect_timeout
        self._conn: Connection | None = None

    def _run(self, name: str, params: dict[str, Any], result: Callable[[Cursor], T]) -> T:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.dsn, timeout=self.connect_timeout,
                                 application_name="pts-jobs worker")
            self._conn.autocommit = True
            with self._conn.cursor() as cur:
                # This session is the worker's pulse: never end it for idling.
                cur.execute("SET idle_session_timeout = 0")
        try:
            with self._conn.cursor() as cur:
                cur.execute(self.queries[name], params)
                return result(cur)
        except DISCONNECTS:
            self.close()
            raise

    def heartbeat(self, queues: Iterable[str], problem: str | None = None) -> None:
        """Write this worker's registry row (insert or refresh), with what is
        wrong with it, if anything (pgbroker/health.py). The first heartbeat
        after a crash of the server reopens claims a lease later."""
        fenced_until = self._run("worker_heartbeat", {
            "worker_id": self.worker_id, "host": socket.gethostname(), "pid": os.getpid(),
            "queues": sorted(queues), "lease_seconds": self.lease_seconds, "problem": problem,
        }, lambda cur: (cur.fetchone() or (None,))[0])
        if fenced_until is not None:
            logger.warning("the server lost its claim fence (a crash, or a failover): no "
                           "worker claims a job until %s, a lease from now, so that no job "
                           "whose claim was lost runs twice (0022_claim_fence.sql)",
                           fenced_until.isoformat(timespec="seconds"))

    def renew(self, held: list[tuple[str, str]]) -> dict[str, str]:
        """Renew the leases of ``held`` (message id, delivery id) pairs.

        Returns {delivery id: "taken" or "cancelled"} for the deliveries to stop:
        another delivery has their message, or an operator cancelled it.
        """
        if not held:
            return {}
        rows = self._run("renew_leases", {
            "message_ids": [message_id for message_id, _ in held],
            "delivery_ids": [delivery_id for _, delivery_id in held],
            "lease_seconds": self.lease_seconds,
        }, lambda cur: cur.fetchall())
        return dict(rows)

    def rescue(self, *, watched: bool = True, until: float | None = None) -> int:
        """Return dead workers' and lapsed leases' messages to their queues.

        ``watched``: lapsed leases are taken only once this session has been
        connected for a full lease (False for a one-off rescue: then only the
        server's own uptime counts). ``until`` (``time.monotonic()``): no new
        batch after then; the rest waits for the next call (the heartbeat's
        renewals must not wait behind a large rescue). Returns how many.
        """
        total = 0
        while True:
            rows = self._run("rescue", {
                "owner": self.worker_id, "limit": RESCUE_BATCH,
                "max_rescues": self.max_rescues, "lease_seconds": self.lease_seconds,
                "watched": watched,
            }, lambda cur: cur.fetchall())
            for message_id, queue_name, state in rows:
                outcome = "dead-lettered" if state == "rejected" else "re-queued"
                logger.warning("message %s on %s lost its worker: %s", message_id,
                               queue_name, outcome)
            total += len(rows)
            if len(rows) < RESCUE_BATCH or (until is not None and time.monotonic() >= until):
                break
        self._run("workers_forget_gone", {"worker_id": self.worker_id}, lambda cur: None)
        return total

    def forget(self) -> None:
        """Leave the registry (a clean shutdown)."""
        self._run("worker_forget", {"worker_id": self.worker_id}, lambda cur: None)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # pragma: no cover - closing a dead socket
                logger.debug("error closing the worker session", exc_info=True)
