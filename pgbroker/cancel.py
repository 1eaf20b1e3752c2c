"""Stopping a running job that an operator cancelled.

Cancelling marks the job's row ``cancelled``, so its worker can no longer renew
the lease. At its next heartbeat the worker asks which of the leases it lost
were cancelled and raises :class:`JobCancelled` in the thread running each job,
as dramatiq's ``TimeLimit`` raises ``TimeLimitExceeded``: at the next Python
bytecode that thread runs (a thread blocked in C, such as a wait on a
subprocess, stops when the call returns). A cancelled job still waiting in the
consumer's buffer is skipped when its turn comes.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Iterable

from dramatiq.broker import MessageProxy

logger = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Raised inside a running job that an operator cancelled. Never retried."""


class Running:
    """Which thread of this process runs which message. Thread-safe."""

    def __init__(self) -> None:
        self._threads: dict[str, tuple[int, MessageProxy]] = {}
        # Cancelled before they started: skipped when a thread picks them up.
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()

    def started(self, message: MessageProxy) -> bool:
        """Record that this thread runs ``message``; False if it was cancelled."""
        with self._lock:
            if message.message_id in self._cancelled:
                self._cancelled.discard(message.message_id)
                return False
            self._threads[message.message_id] = (threading.get_ident(), message)
            return True

    def finished(self, message: MessageProxy) -> None:
        with self._lock:
            self._threads.pop(message.message_id, None)

    def cancel(self, message_ids: Iterable[str]) -> list[str]:
        """Stop the jobs ``message_ids``; returns the ones that were running."""
        stopped = []
        with self._lock:
            for message_id in message_ids:
                held = self._threads.pop(message_id, None)
                if held is None:
                    self._cancelled.add(message_id)
                    continue
                thread_id, message = held
                # Retries must not send it again, and no dead-letter alert follows.
                message.options["throws"] = (JobCancelled,)
                message.options["cancelled"] = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(thread_id), ctypes.py_object(JobCancelled))
                stopped.append(message_id)
        if stopped:
            logger.warning("stopped %d cancelled jobs: %s", len(stopped), stopped[:5])
        return stopped
