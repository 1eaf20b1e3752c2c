"""Group commit of acks: the acks of a process's threads in one statement.

Every finished job used to cost its own UPDATE, autocommitted, so one WAL
flush each, and its thread waited for that fsync before taking the next job.
Here a finished job's ack is handed to one flusher thread per process, which
writes every ack waiting at that moment in one ``ack_many`` statement. Nothing
waits on a timer: while one flush runs, the next batch gathers behind it, so a
lone job is acked at once and a busy worker writes one statement (one WAL
flush) for many jobs.

Until its ack is committed a delivery stays in ``Inflight``: the heartbeat
keeps renewing its lease and the consumer counts it against the queue's
limit, and the row stays ``consumed`` for every reader (status, ``join()``,
the dashboard): a job counts as done only once its ack is durable. A crash
before the flush re-runs those jobs, as any crash before an ack does; while
the database is away the flusher keeps the acks and retries.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence

from .db import DISCONNECTS
from .delivery import Delivery

logger = logging.getLogger(__name__)

# One statement never carries more acks than this.
MAX_BATCH = 500


class GroupAcker:
    """Acks written behind the job threads, in batches, by ``write``.

    ``release`` is called for each delivery once its ack is committed, or
    given up (a non-connection error: its lease lapses and it is rescued).
    """

    def __init__(self, write: Callable[[Sequence[Delivery]], None],
                 release: Callable[[Delivery], None]) -> None:
        self._write = write
        self._release = release
        self._cond = threading.Condition()
        self._pending: list[Delivery] = []
        # Acks taken by the running flush, not yet committed.
        self._writing = 0
        self._thread: threading.Thread | None = None
        self._pid = 0

    def ack(self, delivery: Delivery) -> None:
        """Queue ``delivery``'s ack; it is written within a flush or two."""
        with self._cond:
            self._start_if_needed()
            self._pending.append(delivery)
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until every ack queued so far is written; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._writing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def pending(self) -> int:
        """Acks queued or being written."""
        with self._cond:
            return len(self._pending) + self._writing

    def _start_if_needed(self) -> None:
        # Per process: a forked worker inherits the object, never the thread.
        if self._thread is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self._pending, self._writing = [], 0
            self._thread = threading.Thread(target=self._run, name="ack-flusher", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        pause = 0.05
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                self._writing = len(batch)
            try:
                self._write(batch)
            except DISCONNECTS as error:
                # Kept, and retried: their leases stay renewed meanwhile.
                logger.warning("could not write %d acks (%s); retrying",
                               len(batch), str(error).strip())
                with self._cond:
                    self._pending[:0] = batch
                    self._writing = 0
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
                continue
            except Exception:
                # Not the network: a retry would fail the same way. Let go of
                # them; their leases lapse and the rescuer runs them again.
                logger.exception("could not write %d acks; their jobs will run again",
                                 len(batch))
            pause = 0.05
            for delivery in batch:
                self._release(delivery)
            with self._cond:
                self._writing = 0
                self._cond.notify_all()
