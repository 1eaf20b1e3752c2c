"""Liveness: the deliveries this process holds, its heartbeat, and the rescuer.

Every message a worker claims carries a lease (``lease_owner``,
``lease_expires_at``) and a delivery token. While the process lives, its
heartbeat pushes every lease it holds forward, however long the job runs (a
45-minute fix included), and refreshes its row in the worker registry. A
delivery the heartbeat finds taken by another is stopped (see ``delivery.py``).

The rescuer runs more often than the heartbeat: a worker whose session
vanished is dead, and its jobs go back within about ``rescue_interval``; a
lapsed lease (a cut or frozen worker) is taken only once the database has been
up and watched for a full lease.

A worker cut off from the database cannot renew, and cannot learn that its
lease lapsed and its job was taken: it would run on beside the rescued copy.
So a watch, on a thread of its own (a renewal may hang on a cut network),
gives up every delivery whose lease this process cannot vouch for any more:
one heartbeat before the lease it last renewed runs out. A given-up job is
stopped and nothing more is written about it (``Delivery.give_up``): its
lease lapses and a rescuer returns it, as for a worker that died.

The watch gives up nothing while the server itself is known to be down
(``db.server_down``: its host refuses, or it says it is starting or
stopping), seen at most a few retries ago: then no worker can take the job,
and after the server is back every rescuer waits a full lease, in which this
one renews. So a PostgreSQL restart or outage stops nothing, and a cut-off
worker stops its jobs before anyone else may start them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable

from .db import DISCONNECTS, server_down
from .delivery import Delivery
from .registry import WorkerSession

logger = logging.getLogger(__name__)


class Inflight:
    """Deliveries this process has claimed and not yet finished. Thread-safe."""

    def __init__(self, on_release: Callable[[str], None]) -> None:
        self._deliveries: dict[str, Delivery] = {}
        self._counts: Counter[str] = Counter()
        # Held deliveries whose job is over, waiting for their ack's flush.
        self._slot_freed: set[str] = set()
        self._lock = threading.Lock()
        self._on_release = on_release

    def add(self, deliveries: Iterable[Delivery]) -> None:
        with self._lock:
            for delivery in deliveries:
                if delivery.delivery_id not in self._deliveries:
                    self._deliveries[delivery.delivery_id] = delivery
                    self._counts[delivery.queue_name] += 1

    def discard(self, delivery: Delivery) -> None:
        with self._lock:
            found = self._deliveries.pop(delivery.delivery_id, None)
            freed = found is not None and found.delivery_id not in self._slot_freed
            if freed:
                self._counts[delivery.queue_name] -= 1
            self._slot_freed.discard(delivery.delivery_id)
        if freed:
            self._on_release(delivery.queue_name)

    def free_slot(self, delivery: Delivery) -> None:
        """The job ran and its ack is queued: it no longer counts against its
        queue's limit, but stays held (and leased) until :meth:`discard`."""
        with self._lock:
            if (delivery.delivery_id not in self._deliveries
                    or delivery.delivery_id in self._slot_freed):
                return
            self._slot_freed.add(delivery.delivery_id)
            self._counts[delivery.queue_name] -= 1
        self._on_release(delivery.queue_name)

    def count(self, queue_name: str) -> int:
        """Deliveries of ``queue_name`` running or waiting for a thread."""
        with self._lock:
            return self._counts[queue_name]

    def held(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries.values())

    def ids(self) -> list[str]:
        """The message ids held."""
        with self._lock:
            return [d.message_id for d in self._deliveries.values()]

    def get(self, delivery_id: str) -> Delivery | None:
        with self._lock:
            return self._deliveries.get(delivery_id)


class LeaseKeeper:
    """A thread that renews this process's leases, keeps its registry row fresh,
    and rescues other workers' jobs."""

    def __init__(
        self,
        *,
        session: Callable[[], WorkerSession],
        inflight: Inflight,
        queues: Callable[[], Iterable[str]],
        problem: Callable[[], str | None] = lambda: None,
        lease_seconds: float,
        heartbeat_interval: float,
        rescue_interval: float,
    ) -> None:
        self._session_factory = session
        self._session: WorkerSession | None = None
        self._inflight = inflight
        self._queues = queues
        self._problem = problem
        self.lease_seconds = lease_seconds
        self.heartbeat_interval = heartbeat_interval
        self.rescue_interval = rescue_interval
        # After a failed beat, the next try comes this much later.
        self.retry_interval = min(rescue_interval, heartbeat_interval)
        # A delivery is stopped this long before its lease may lapse.
        self.stop_margin = min(heartbeat_interval, lease_seconds / 4)
        # When a failed beat last showed the server down for everyone (monotonic).
        self._server_down_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch_thread: threading.Thread | None = None
        self._users = 0
        self._users_lock = threading.Lock()

    def start(self) -> None:
        """Start the thread (counted: in-process tests run several workers)."""
        with self._users_lock:
            self._users += 1
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._session = self._session_factory()
            self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
            self._thread.start()
            self._watch_thread = threading.Thread(target=self._watch, name="lease-watch",
                                                  daemon=True)
            self._watch_thread.start()

    def stop(self, *, forget: bool = True, all_users: bool = False) -> None:
        """Stop when the last user stops (or at once, with ``all_users``); with
        ``forget``, leave the registry."""
        with self._users_lock:
            self._users = 0 if all_users else max(self._users - 1, 0)
            if self._users or self._thread is None:
                return
            self._stop.set()
            self._thread.join(timeout=10)
            self._thread = None
            if self._watch_thread is not None:
                self._watch_thread.join(timeout=10)
                self._watch_thread = None
            session, self._session = self._session, None
        if session is None:
            return
        if forget:
            try:
                session.forget()
            except DISCONNECTS as error:
                logger.warning("could not leave the worker registry (%s)", str(error).strip())
        session.close()

    def beat(self, session: WorkerSession) -> None:
        """Renew leases, stop lost deliveries, refresh the registry row."""
        held = self._inflight.held()
        # The server pushes each lease to its now() plus a lease: after this moment.
        lease_until = time.monotonic() + self.lease_seconds
        to_stop = session.renew([(d.message_id, d.delivery_id) for d in held])
        for delivery in held:
            why = to_stop.get(delivery.delivery_id)
            if why == "taken":
                delivery.stop()
            elif why == "cancelled":
                delivery.cancel()
            else:
                delivery.lease_until = max(delivery.lease_until, lease_until)
        # After the leases: the watch must never see the server up and a lease old.
        self._server_down_at = None
        session.heartbeat(self._queues(), self._problem())

    def watch(self, now: float) -> list[Delivery]:
        """Give up the deliveries whose lease may lapse before the next look;
        returns those it stopped."""
        down_at = self._server_down_at
        if down_at is not None and now - down_at <= 3 * self.retry_interval:
            return []  # nobody can take a job from a server that is down
        why = (f"could not renew its lease for {self.lease_seconds - self.stop_margin:g} s, "
               "and another worker may take it")
        stopped = [d for d in self._inflight.held()
                   if now >= d.lease_until - self.stop_margin and d.give_up(why)]
        for delivery in stopped:
            # Renewed no more: its lease must lapse for a rescuer to return it.
            self._inflight.discard(delivery)
        return stopped

    def _watch(self) -> None:
        while not self._stop.wait(self.stop_margin / 5):
            try:
                self.watch(time.monotonic())
            except Exception:  # pragma: no cover - a bug here must not end the watch
                logger.exception("lease watch failed")

    def _run(self) -> None:
        session = self._session
        assert session is not None
        # Beat at once: a restarted worker registers before anything else.
        next_beat = next_rescue = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.heartbeat_interval
                    self.beat(session)
                if time.monotonic() >= next_rescue:
                    next_rescue = time.monotonic() + self.rescue_interval
                    rescued = session.rescue(until=next_beat)
                    if rescued:
                        logger.warning("rescued %d messages from workers that are gone", rescued)
            except DISCONNECTS as error:
                self._server_down_at = time.monotonic() if server_down(error) else None
                logger.warning("heartbeat failed (%s); will retry", str(error).strip())
                next_beat = 0.0  # renew first thing after reconnecting
                self._stop.wait(self.retry_interval)
            except Exception:
                self._server_down_at = None
                logger.exception("heartbeat failed")
                self._stop.wait(self.retry_interval)
            self._stop.wait(max(min(next_beat, next_rescue) - time.monotonic(), 0.001))
