"""prune-jobs: retention, run by the scheduler every 10 minutes.

Deletes done jobs older than ``JOBS_KEEP_DONE_FOR`` (7 days) and dead ones older
than ``JOBS_KEEP_DEAD_FOR`` (30 days), 1,000 rows a statement, so a purge never
holds long locks on the queue table.
"""

from __future__ import annotations

import logging

from middleware.periodic import cron
from pgbroker.jobs import purge, purge_expired_results

from . import runtime
from .base import Payload, job

logger = logging.getLogger(__name__)


class PruneJobs(Payload):
    pass


@job("prune_jobs", PruneJobs, periodic=cron("*/10 * * * *"), store_results=True)
def prune_jobs(payload: PruneJobs) -> dict[str, int]:
    run = runtime.current()
    deleted = {
        "done": purge("done", run.retention.keep_done_for, broker=run.broker),
        "dead": purge("dead", run.retention.keep_dead_for, broker=run.broker),
        "results": purge_expired_results(broker=run.broker),
    }
    if any(deleted.values()):
        logger.info("retention deleted %(done)d done and %(dead)d dead jobs", deleted)
    return deleted
