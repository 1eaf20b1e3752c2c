"""Helpers for tests: waiting on conditions with a deadline."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], T], *, timeout: float = 10, interval: float = 0.02,
             what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy; return that.

    Raises:
        AssertionError: ``timeout`` seconds passed first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def job_in(message_id: str, *states: str, timeout: float = 10):
    """The job once it is in one of ``states``.

    Raises:
        AssertionError: it was not within ``timeout`` seconds.
    """
    from pgbroker.jobs import Job, get_job

    found: list[Job] = []

    def reached() -> bool:
        job = get_job(message_id)
        found[:] = [job]
        return job.state in states

    wait_for(reached, timeout=timeout,
             what=f"job {message_id} to be {'/'.join(states)}")
    return found[0]
