"""Helpers shared by the test layers: waiting on conditions, ports, HTTP.

Fixtures are in ``tests/support/fixtures.py``; the test actors in
``tests/support/workload.py``; pipeline test data in ``tests/support/pipeline.py``.
"""

from __future__ import annotations

import os
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TypeVar

import pytest

from pgbroker.jobs import Job, get_job

T = TypeVar("T")


def require(present: bool, missing: str) -> None:
    """Go on if ``present``; else skip on a laptop, fail in CI (where ``CI`` is set).

    For tests that need a tool a laptop may lack (pgbouncer, promtool, Chromium,
    Docker): CI installs each, so there a missing one is a broken CI, not a skip.
    """
    if present:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run this test, but {missing}", pytrace=False)
    pytest.skip(missing)


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
    found: list[Job] = []

    def reached() -> bool:
        job = get_job(message_id)
        found[:] = [job]
        return job.state in states

    wait_for(reached, timeout=timeout,
             what=f"job {message_id} to be {'/'.join(states)}")
    return found[0]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, token: str | None = None) -> tuple[int, str]:
    """GET ``url`` (with a bearer ``token``); returns the status and the body."""
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def metric_samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of every sample of metric ``name`` in a Prometheus exposition."""
    found = {}
    for line in text.splitlines():
        match = re.match(rf"^{name}(\{{[^}}]*\}})? (\S+)$", line)
        if match:
            found[match[1] or ""] = float(match[2])
    return found
