"""A worker whose threads die turns its host's health check red, not just its process's."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from pgbroker.jobs import unwell_workers
from tests.support import wait_for
from tests.support.environment import ROOT, TEST_ENV


def health() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import cli; raise SystemExit(cli.main())", "health"],
        cwd=ROOT, env={**os.environ, **TEST_ENV}, capture_output=True, text=True, timeout=60)


def test_health_is_green_while_the_threads_work_and_red_once_one_died(worker):
    host = socket.gethostname()
    wait_for(lambda: not unwell_workers(host), timeout=10, what="a well worker")
    assert health().returncode == 0

    dead = worker.workers[0]
    dead.stop()  # as an exception escaping it would: the thread ends
    dead.join(timeout=10)

    (problem,) = wait_for(lambda: unwell_workers(host), timeout=10,
                          what="the heartbeat to report the dead thread")
    assert "1 of 4 worker threads are dead" in problem
    answer = health()
    assert answer.returncode == 4 and "worker threads are dead" in answer.stderr
