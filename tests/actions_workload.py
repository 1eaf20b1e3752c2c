"""Test actors for operators' actions: a job that runs until it is stopped."""

from __future__ import annotations

import time
from datetime import timedelta

from actors.base import job
from tests.workload import Probe, policy, record


@job("probe_spin", Probe, policy=policy("probe-spin", max_retries=3,
                                       time_limit=timedelta(seconds=60)))
def probe_spin(payload: Probe) -> None:
    record(payload.key, "start")
    deadline = time.monotonic() + payload.seconds
    while time.monotonic() < deadline:  # returns to Python often: a cancel lands
        time.sleep(0.02)
    record(payload.key, "end")
