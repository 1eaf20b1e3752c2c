"""sweep-sandboxes: remove what finished or abandoned fix jobs left, every 10 minutes.

Containers and sandbox directories of fix jobs that are finished, missing, or
without a heartbeat for ``JOBS_SANDBOX__SWEEP_AFTER`` (their worker is gone),
once older than that bound (``pipeline/sandbox/sweeper.py``). Counted in
``pts_sandbox_swept_total{kind="container"|"sandbox"}``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from middleware.periodic import cron
from pipeline import fixes
from pipeline.sandbox.sweeper import sweep

from . import runtime
from .base import Payload, job

_counter: Any = None


class SweepSandboxes(Payload):
    pass


def swept_counter() -> Any:
    """Created on first use, after the worker pointed prometheus_client at its files."""
    global _counter
    if _counter is None:
        import prometheus_client as prom

        _counter = prom.Counter("pts_sandbox_swept", "Fix job leftovers the sweeper removed.",
                                ["kind"])
    return _counter


@job("sweep_sandboxes", SweepSandboxes, periodic=cron("*/10 * * * *"), store_results=True)
def sweep_sandboxes(payload: SweepSandboxes) -> dict[str, Any]:
    run = runtime.current()
    config = run.pipeline.sandbox
    result = sweep(run.sandbox, config,
                   fixes.fix_job_states(run.db, timedelta(seconds=config.sweep_after)))
    counter = swept_counter()
    counter.labels("container").inc(len(result.containers))
    counter.labels("sandbox").inc(len(result.sandboxes))
    return {"containers": list(result.containers), "sandboxes": list(result.sandboxes),
            "kept": result.kept}
