"""Deliveries: one claim of one message, and how a job that lost it is stopped.

Every claim gets a delivery token. The broker names it on everything the job
writes (ack, nack, retries, results, follow-up messages), so a delivery whose
message was taken from it changes nothing. When the heartbeat learns that a
running delivery lost its message (its lease lapsed during a network cut and
another worker took it), the delivery is *stopped*: its stop hooks run (say, a
fix job's container is stopped) and its thread gets :class:`LeaseLost`, raised
the way Dramatiq's TimeLimit raises ``TimeLimitExceeded``. Code that holds a
resource for the job registers a hook::

    from pgbroker import current_delivery

    delivery = current_delivery()
    unregister = delivery.on_stop(lambda: stop_container(name)) if delivery else None

and puts the normal clean-up in a ``finally``: the exception reaches it.
The command runner needs no hook: it kills its process group on any exception.

A job an operator cancels (``pgbroker.jobs.cancel``) is stopped the same way,
with :class:`JobCancelled`, and is neither retried nor dead-lettered. A thread
blocked in C (a plain ``time.sleep``, a wait without a timeout) stops when the
call returns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dramatiq.threading import Interrupt, raise_thread_exception

logger = logging.getLogger(__name__)

_bound = threading.local()


class LeaseLost(Interrupt):
    """Raised in a job's thread when another delivery took its message.

    An ``Interrupt`` (a ``BaseException``), like ``TimeLimitExceeded``, so an
    ``except Exception`` in the job does not swallow it.
    """


class JobCancelled(Interrupt):
    """Raised in a job's thread when an operator cancelled the job. Never retried."""


@dataclass(eq=False)
class Delivery:
    """One claim of one message by this process."""

    message_id: str
    delivery_id: str
    queue_name: str
    # Until when (time.monotonic()) this process knows its lease holds: the
    # moment the claim or the last renewal was sent, plus the lease.
    lease_until: float = 0.0
    # The thread running the job, while it runs.
    thread_id: int | None = None
    # Stopped: taken by another delivery, cancelled, or given up.
    lost: bool = False
    cancelled: bool = False
    # Given up by this process (see give_up): nothing more is written about it.
    gave_up: bool = False
    # The MessageProxy, once a thread runs it.
    message: Any = None
    # The actor returned (or raised): no exception is raised into its thread
    # any more, as the middleware's after_ hooks run there now.
    returned: bool = False
    # The job ran and its middleware ran: losing the row now stops nothing.
    finished: bool = False
    # Its own retry re-queued its message: the next delivery taking it is no loss.
    requeued: bool = False
    # (messages, delay) the job sent while the database was away; the broker
    # sends them before the ack (see PostgresBroker.enqueue_many).
    pending_sends: list[tuple[list[Any], int | None]] = field(default_factory=list)
    _hooks: list[Callable[[], None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on_stop(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Call ``hook()`` if this delivery is stopped; returns the unregister function.

        A hook registered after the delivery was stopped runs at once.
        """
        with self._lock:
            run_now = self.lost
            if not run_now:
                self._hooks.append(hook)
        if run_now:
            _run_hook(self, hook)

        def unregister() -> None:
            with self._lock:
                if hook in self._hooks:
                    self._hooks.remove(hook)

        return unregister

    def start(self, message: Any = None) -> None:
        """The calling thread runs this delivery's job (``message``) now."""
        with self._lock:
            self.thread_id = threading.get_ident()
            self.message = message
        _bound.delivery = self

    def actor_returned(self) -> None:
        """The actor is done; the middleware's after_ hooks run next in its thread.

        An exception raised into the thread from here on would land in one of
        those hooks and, being a ``BaseException``, end the worker thread.
        """
        with self._lock:
            self.returned = True

    def finish(self) -> None:
        """The job's thread is done with it: no more exceptions for it, and
        what the thread writes next no longer names it."""
        with self._lock:
            if self.thread_id == threading.get_ident():
                self.thread_id = None
            self.finished = True
        if getattr(_bound, "delivery", None) is self:
            _bound.delivery = None

    def stop(self) -> None:
        """This delivery lost its message: run the hooks, interrupt the job.

        Safe to call more than once; only the first call acts.
        """
        if self._stop(LeaseLost):
            logger.warning("message %s: delivery %s lost its lease to another worker; "
                           "stopping it", self.message_id, self.delivery_id)

    def give_up(self, why: str) -> bool:
        """This process cannot vouch for the lease any more (``why``): stop the
        job as :meth:`stop` does, and write nothing more about its message (no
        ack, nack, retry or result), so its lease lapses and a rescuer returns
        it, as for a worker that died. The row may well be this delivery's
        still: an ack would mark done a job that never finished. Returns
        whether it acted (not for a job already finished).
        """
        if not self._stop(LeaseLost, give_up=True):
            return False
        logger.warning("message %s: delivery %s %s; stopping it, to be rescued",
                       self.message_id, self.delivery_id, why)
        return True

    def cancel(self) -> None:
        """An operator cancelled the job: stop it as :meth:`stop` does, with
        :class:`JobCancelled`, and mark it so it is neither retried nor
        dead-lettered."""
        if self._stop(JobCancelled):
            logger.warning("message %s was cancelled; stopping it", self.message_id)

    def _stop(self, exception: type[BaseException], *, give_up: bool = False) -> bool:
        with self._lock:
            if self.lost or self.finished or self.requeued:
                # Its own retry re-queued it and a new delivery took it before
                # this one's ack: nothing runs to stop, nothing was lost.
                return False
            self.lost = True
            self.gave_up = give_up
            self.cancelled = exception is JobCancelled
            if self.cancelled and self.message is not None:
                # Read by Retries when the exception lands: no retry.
                self.message.options["throws"] = (JobCancelled,)
            hooks, self._hooks = self._hooks, []
            thread_id = None if self.returned else self.thread_id
            if thread_id is not None:
                # Under the lock, so the job cannot finish and start another
                # message on this thread in between.
                raise_thread_exception(thread_id, exception)
        if hooks:
            # Off the heartbeat's thread: stopping a container may take seconds,
            # and the other deliveries' leases must still be renewed meanwhile.
            threading.Thread(target=_run_hooks, args=(self, hooks), daemon=True,
                             name=f"stop-{self.message_id}").start()
        return True


def current_delivery() -> Delivery | None:
    """The delivery whose job this thread runs, if any."""
    return getattr(_bound, "delivery", None)


def _run_hooks(delivery: Delivery, hooks: list[Callable[[], None]]) -> None:
    for hook in hooks:
        _run_hook(delivery, hook)


def _run_hook(delivery: Delivery, hook: Callable[[], None]) -> None:
    try:
        hook()
    except Exception:
        logger.exception("stop hook of message %s failed", delivery.message_id)
