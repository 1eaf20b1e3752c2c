"""The exceptions of the last messages this process dead-lettered.

Dramatiq's StubBroker keeps every dead letter with its exception, and
``join(queue, fail_fast=True)`` raises that exception in the test's thread.
A worker running in the test's process gives ours the same: ``join`` raises
the job's own exception when this process dead-lettered it, and
:class:`~pgbroker.errors.JobDeadLettered` otherwise. Only a few are kept, and
each as a copy without its traceback, whose frames could hold whatever the
job had in hand: a long-running worker holds no more than that.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict

KEPT = 32


class RecentFailures:
    """Up to ``size`` (message id, exception) pairs, the newest kept. Thread-safe."""

    def __init__(self, size: int = KEPT) -> None:
        self.size = size
        self._exceptions: OrderedDict[str, BaseException] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, message_id: str, exception: BaseException | None) -> None:
        bare = _without_traceback(exception) if exception is not None else None
        if bare is None:
            return
        with self._lock:
            self._exceptions[message_id] = bare
            self._exceptions.move_to_end(message_id)
            while len(self._exceptions) > self.size:
                self._exceptions.popitem(last=False)

    def get(self, message_id: str) -> BaseException | None:
        with self._lock:
            return self._exceptions.get(message_id)


def _without_traceback(exception: BaseException) -> BaseException | None:
    # copy.copy rebuilds it from its class, args and __dict__: no traceback,
    # cause or context. An exception that cannot be rebuilt so is not kept.
    try:
        bare = copy.copy(exception)
    except Exception:
        return None
    return bare if type(bare) is type(exception) else None
