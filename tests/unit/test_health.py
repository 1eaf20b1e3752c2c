"""What pgbroker.health reports for a process's Dramatiq workers."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from pgbroker.health import CONSUMER_STALE_AFTER, worker_problem


def _thread(alive: bool) -> threading.Thread:
    thread = threading.Thread(target=lambda: None)
    if alive:
        thread.is_alive = lambda: True  # type: ignore[method-assign]
    return thread  # never started: not alive


def _worker(threads: list[bool], consumers: dict[str, tuple[bool, float]]) -> SimpleNamespace:
    return SimpleNamespace(
        workers=[_thread(alive) for alive in threads],
        consumers={
            queue: SimpleNamespace(is_alive=lambda alive=alive: alive,
                                   consumer=SimpleNamespace(last_asked=asked))
            for queue, (alive, asked) in consumers.items()
        },
    )


def test_a_worker_whose_threads_and_consumers_run_is_well():
    now = time.monotonic()
    assert worker_problem([_worker([True, True], {"q": (True, now)})], draining=False) is None


def test_dead_threads_dead_and_hung_consumers_are_each_reported():
    now = time.monotonic()
    worker = _worker([True, False, False], {
        "alive": (True, now), "dead": (False, now),
        "hung": (True, now - CONSUMER_STALE_AFTER - 1),
    })
    assert worker_problem([worker], draining=False) == (
        "2 of 3 worker threads are dead; the consumer of dead is dead; "
        "the consumer of hung has hung")


def test_threads_stopping_during_a_shutdown_are_no_problem():
    assert worker_problem([_worker([False], {"q": (False, 0.0)})], draining=True) is None
