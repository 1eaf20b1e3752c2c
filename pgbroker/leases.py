"""Liveness: which messages this process holds, a heartbeat, and the rescuer.

Every message a worker claims carries a lease (``lease_owner``,
``lease_expires_at``). While the process lives, its heartbeat pushes every lease
it holds forward, however long the job runs (a 45-minute fix included). When the
process dies, is frozen, or loses its network, its leases simply run out, and the
rescuer in any live worker puts those messages back on their queue. No session
state (advisory locks) is involved, so a PostgreSQL restart or a pooler in
between changes nothing.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable

from .db import DISCONNECTS

logger = logging.getLogger(__name__)


class Inflight:
    """Message ids this process has leased, by queue. Thread-safe."""

    def __init__(self, on_release: Callable[[str], None]) -> None:
        self._queue_of: dict[str, str] = {}
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._on_release = on_release

    def add(self, queue_name: str, message_ids: Iterable[str]) -> None:
        with self._lock:
            for message_id in message_ids:
                if message_id not in self._queue_of:
                    self._queue_of[message_id] = queue_name
                    self._counts[queue_name] += 1

    def discard(self, message_id: str) -> None:
        with self._lock:
            queue_name = self._queue_of.pop(message_id, None)
            if queue_name is not None:
                self._counts[queue_name] -= 1
        if queue_name is not None:
            self._on_release(queue_name)

    def count(self, queue_name: str) -> int:
        with self._lock:
            return self._counts[queue_name]

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._queue_of)


class LeaseKeeper:
    """A thread that renews this process's leases and rescues expired ones."""

    def __init__(
        self,
        *,
        interval: float,
        renew: Callable[[list[str]], set[str]],
        rescue: Callable[[], int],
        inflight: Inflight,
        on_lost: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.interval = interval
        # Told of leases newly lost, once each (the broker stops cancelled jobs).
        self._on_lost = on_lost
        self._renew = renew
        self._rescue = rescue
        self._inflight = inflight
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported_lost: set[str] = set()

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def beat(self) -> None:
        """Renew, then rescue: one heartbeat."""
        held = self._inflight.ids()
        if held:
            renewed = self._renew(held)
            # Still ours in memory but no longer ours in the table: finished a
            # moment ago, or taken over after our lease lapsed (a long outage).
            still_held = set(self._inflight.ids())
            lost = [m for m in held if m not in renewed and m in still_held]
            # Said once per message: the job runs on here until it returns.
            newly_lost = [m for m in lost if m not in self._reported_lost]
            self._reported_lost = set(lost)
            if newly_lost and self._on_lost is not None:
                self._on_lost(newly_lost)
            if newly_lost:
                logger.warning("lease lost for %d running messages (another worker may run "
                               "them too): %s", len(newly_lost), newly_lost[:5])
        rescued = self._rescue()
        if rescued:
            logger.warning("rescued %d messages from workers that stopped renewing", rescued)

    def _run(self) -> None:
        # Beat at once: a worker restarted after a crash rescues what is due.
        while True:
            try:
                self.beat()
            except DISCONNECTS as error:
                logger.warning("heartbeat failed (%s); will retry", str(error).strip())
            except Exception:
                logger.exception("heartbeat failed")
            if self._stop.wait(self.interval):
                return
