"""cleanup-container: remove a fix job's sandbox once it is finished.

Idempotent: a sandbox already gone is success. Only paths inside the
workspace's sandboxes directory are ever removed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from uuid import UUID

from psycopg2.extensions import connection as Connection
from pydantic import StringConstraints

from pipeline.fixes import remove_sandbox

from . import runtime
from .base import Payload, PermanentError, job


class CleanupContainer(Payload):
    # The sandbox's path (a Docker runtime would put a container id here).
    container_id: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    fix_job_id: UUID


@job("cleanup_container", CleanupContainer, store_results=True)
def cleanup_container(payload: CleanupContainer) -> dict:
    try:
        removed = remove_sandbox(runtime.current().pipeline, payload.container_id)
    except ValueError as refused:
        raise PermanentError(str(refused)) from None
    return {"container_id": payload.container_id, "removed": removed}


def cleanup_in_transaction(connection: Connection, sandbox: Path, fix_job_id: str) -> None:
    """Enqueue the removal of ``sandbox`` on ``connection``, with the caller's commit."""
    cleanup_container.send_in_transaction(connection, container_id=str(sandbox),
                                          fix_job_id=fix_job_id)
