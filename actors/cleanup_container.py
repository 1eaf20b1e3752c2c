"""cleanup-container: remove a fix job's containers, processes and sandbox.

Everything is found from ``fix_job_id``: containers by their label, the
sandbox at ``<workspace>/sandboxes/<fix job id>``. ``container_id`` (the
spec's field) is informational and never used to find what to delete, so
a payload can never make this job remove another job's sandbox, or any other
path. Idempotent: what is already gone is success.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from psycopg2.extensions import connection as Connection
from pydantic import StringConstraints

from pipeline import fixes

from . import runtime
from .base import Payload, job


class CleanupContainer(Payload):
    # The name the fix job's containers start with (informational).
    container_id: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    fix_job_id: UUID


@job("cleanup_container", CleanupContainer, store_results=True)
def cleanup_container(payload: CleanupContainer) -> dict:
    run = runtime.current()
    return fixes.clean_up(run.pipeline, run.sandbox, str(payload.fix_job_id))


def cleanup_in_transaction(connection: Connection, fix_job_id: str) -> None:
    """Enqueue the removal of the fix job's sandbox on ``connection``, with the caller's commit."""
    cleanup_container.send_in_transaction(connection, container_id=f"pts-fix-{fix_job_id}",
                                          fix_job_id=fix_job_id)
