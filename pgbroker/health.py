"""Is this worker process doing its work? What ``/healthz`` and ``pts-jobs health`` ask.

A worker's heartbeat thread can beat on while the threads that do the work are
gone: an exception that escaped a worker thread, a consumer thread that died
or hangs. Every heartbeat therefore writes what is wrong, if anything, into the
process's registry row (``workers.problem``); the health checks of a host read
those rows, so a container whose worker no longer works turns unhealthy even
though its process and database are fine.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

# A consumer returns to Dramatiq at least every poll interval; one that has not
# asked for a message in this long is hung (a blocked query, a deadlock).
CONSUMER_STALE_AFTER = 120.0


def worker_problem(workers: Iterable[Any], *, draining: bool) -> str | None:
    """What is wrong with this process's Dramatiq workers, or None.

    ``workers`` are ``dramatiq.Worker`` objects. While draining (shutting
    down), threads stopping is expected and nothing is reported.
    """
    if draining:
        return None
    problems = []
    now = time.monotonic()
    for worker in workers:
        threads = list(getattr(worker, "workers", []))
        dead = sum(1 for thread in threads if not thread.is_alive())
        if dead:
            problems.append(f"{dead} of {len(threads)} worker threads are dead")
        for queue_name, thread in list(getattr(worker, "consumers", {}).items()):
            consumer = getattr(thread, "consumer", None)
            if not thread.is_alive():
                problems.append(f"the consumer of {queue_name} is dead")
            elif consumer is not None and \
                    now - getattr(consumer, "last_asked", now) > CONSUMER_STALE_AFTER:
                problems.append(f"the consumer of {queue_name} has hung")
    return "; ".join(problems) or None
