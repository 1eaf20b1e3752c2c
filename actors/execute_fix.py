"""execute-fix: run the autonomous fix workflow for one bug (up to 45 minutes).

The state machine, sandbox and fixer live in ``pipeline/fixes.py``. This job
sends fix_started, then pr_created (when the fixer reports a PR) or, after its
last attempt fails, fix_failed; it always enqueues cleanup-container for its
sandbox, in the same transaction as the final status.
"""

from __future__ import annotations

from uuid import UUID

from pipeline.fixes import execute

from .base import Payload, is_final_attempt, job


class ExecuteFix(Payload):
    fix_job_id: UUID
    bug_report_id: UUID
    repo_link_id: UUID
    codebase_knowledge_id: UUID


@job("execute_fix", ExecuteFix, store_results=True)
def execute_fix(payload: ExecuteFix) -> dict:
    return execute(str(payload.fix_job_id), final_attempt=is_final_attempt())
