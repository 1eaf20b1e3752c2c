"""The periodic scheduler as it runs: ``pts-jobs scheduler`` processes, two at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.support import wait_for
from tests.support.environment import ROOT, TEST_ENV
from tests.support.fixtures import ticks


class SchedulerProcess:
    def __init__(self, log_path) -> None:
        self.log_path = log_path
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "cli.py", "scheduler", "tests.support.workload"], cwd=ROOT,
            env={**os.environ, **TEST_ENV}, stdout=self.log, stderr=subprocess.STDOUT,
        )

    def said(self, text: str) -> bool:
        return text in self.log_path.read_text()

    def stop(self, sig: int = signal.SIGINT) -> int | None:
        """Its exit code, or None when it had to be killed."""
        self.proc.send_signal(sig)
        try:
            code: int | None = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        self.log.close()
        return code


@pytest.fixture
def schedulers(broker, tmp_path):
    started: list[SchedulerProcess] = []

    def start() -> SchedulerProcess:
        process = SchedulerProcess(tmp_path / f"scheduler-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.stop()


def test_two_schedulers_running_at_once_send_each_tick_once(schedulers):
    first, second = schedulers(), schedulers()

    wait_for(lambda: first.said("probe_tick at") and second.said("probe_tick at"),
             timeout=30, what="both schedulers to send their first tick")

    assert ticks() and all(jobs == 1 for _, jobs in ticks())
    assert first.said("already sent") or second.said("already sent")


def test_a_scheduler_restarted_within_a_minute_does_not_send_the_tick_again(schedulers):
    first = schedulers()
    wait_for(lambda: first.said("sent probe_tick at"), timeout=30, what="the first tick")
    first.stop()

    again = schedulers()
    wait_for(lambda: again.said("probe_tick at"), timeout=30, what="the restart's tick")

    assert all(jobs == 1 for _, jobs in ticks())


def test_sigterm_stops_the_scheduler_cleanly(schedulers):
    scheduler = schedulers()
    wait_for(lambda: scheduler.said("probe_tick at"), timeout=30, what="the first tick")

    assert scheduler.stop(signal.SIGTERM) == 0
    assert scheduler.said("scheduler stopped")
