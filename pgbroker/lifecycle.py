"""The broker's part of a worker's life, as a Dramatiq middleware.

The broker installs it itself, first in the stack, so every worker gets it:

* ``after_worker_boot``: migrate the schema, join the worker registry, start
  the heartbeat that renews leases and rescues other workers' jobs;
* ``before_worker_shutdown``: stop claiming, so running jobs finish and
  prefetched ones go back;
* ``after_worker_shutdown``: stop the heartbeat and leave the registry;
* ``before_process_message`` / ``after_process_message``: tie the job's thread
  to its delivery, so a delivery that loses its lease can be stopped, and what
  the job writes through the broker names it.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from dramatiq.middleware import Middleware, SkipMessage

from .db import DISCONNECTS
from .delivery import JobCancelled, LeaseLost

if TYPE_CHECKING:
    from .broker import PostgresBroker

logger = logging.getLogger(__name__)


class ActorReturned(Middleware):
    """Kept last in the stack by the broker, so its ``after_process_message``
    runs first (Dramatiq runs after_ hooks in reverse): it marks the job's
    delivery as returned, after which a stop raises nothing into the thread,
    whose remaining after_ hooks (Retries, Results) must not be interrupted."""

    def after_process_message(
        self, broker: PostgresBroker, message: Any, *, result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """Fires in the job's thread right after the actor, before other middleware."""
        self._returned(message)

    def after_skip_message(self, broker: PostgresBroker, message: Any) -> None:
        """Fires when a middleware skipped the message."""
        self._returned(message)

    @staticmethod
    def _returned(message: Any) -> None:
        delivery = getattr(message, "delivery", None)
        if delivery is None:
            return
        # Raised an instant before: the job is over anyway, and the thread must
        # live on to run the other hooks and the next job.
        with contextlib.suppress(LeaseLost, JobCancelled):
            delivery.actor_returned()


class WorkerLifecycle(Middleware):
    """Leases, draining and the worker registry of a :class:`PostgresBroker`."""

    def after_worker_boot(self, broker: PostgresBroker, worker: Any) -> None:
        """Fires when a worker has started its threads."""
        try:
            broker.ensure_schema()
        except DISCONNECTS as error:
            # Not fatal: consumers and the heartbeat retry until the database answers.
            logger.warning("database unreachable at worker boot (%s); retrying",
                           str(error).strip())
        broker.draining = False
        broker.workers.append(worker)
        broker.leases.start()

    def before_worker_shutdown(self, broker: PostgresBroker, worker: Any) -> None:
        """Fires when a worker is asked to stop: claim nothing more."""
        broker.draining = True
        broker.listener.wake_all()

    def after_worker_shutdown(self, broker: PostgresBroker, worker: Any) -> None:
        """Fires when a worker has stopped, after its prefetched messages went back.

        What still runs keeps its lease until it lapses.
        """
        if worker in broker.workers:
            broker.workers.remove(worker)
        # Before the heartbeat stops: an ack not yet written keeps its lease.
        broker.flush_acks()
        broker.leases.stop()

    def before_process_message(self, broker: PostgresBroker, message: Any) -> None:
        """Fires in the job's thread before the actor runs."""
        delivery = getattr(message, "delivery", None)
        if delivery is None:
            return
        if delivery.lost:
            # Prefetched, then taken by another worker or cancelled before it started.
            raise SkipMessage(f"delivery {delivery.delivery_id} was stopped before it ran")
        delivery.start(message)

    def after_process_message(
        self, broker: PostgresBroker, message: Any, *, result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """Fires in the job's thread after the actor and every other middleware."""
        delivery = getattr(message, "delivery", None)
        if delivery is not None and (delivery.cancelled or delivery.gave_up):
            # Cancelled by an operator: acked (a no-op on its cancelled row), not
            # nacked, so no dead-letter alert or reject count follows. Given up
            # (cut off past its lease): not failed either, only to be rescued.
            message.failed = False
        self._finish(message)

    def after_skip_message(self, broker: PostgresBroker, message: Any) -> None:
        """Fires when a middleware skipped the message."""
        self._finish(message)

    @staticmethod
    def _finish(message: Any) -> None:
        delivery = getattr(message, "delivery", None)
        if delivery is not None:
            delivery.finish()
