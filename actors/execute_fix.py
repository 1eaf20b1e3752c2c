"""execute-fix: run the autonomous fix workflow for one bug (up to 45 minutes).

The state machine lives in ``pipeline/fixes.py``, the fixer's sandbox in
``pipeline/sandbox/``. This job sends fix_started, then pr_created (when the
fixer reports a PR) or, after its last attempt fails, fix_failed; it always
enqueues cleanup-container for its sandbox, in the same transaction as the
final status. Recording a success is inside the attempt's ``try``: should it
fail, the attempt is recorded as failed instead of staying ``running``.
"""

from __future__ import annotations

from uuid import UUID

from pipeline import fixes

from . import runtime
from .base import Payload, is_final_attempt, job
from .cleanup_container import cleanup_in_transaction
from .send_notification import notify_in_transaction


class ExecuteFix(Payload):
    fix_job_id: UUID
    bug_report_id: UUID
    repo_link_id: UUID
    codebase_knowledge_id: UUID


@job("execute_fix", ExecuteFix, store_results=True)
def execute_fix(payload: ExecuteFix) -> dict:
    run = runtime.current()
    fix_job_id = str(payload.fix_job_id)
    attempt = fixes.begin_attempt(run.db, run.pipeline, fix_job_id)
    if attempt is None:
        return {"status": "succeeded", "already": True}
    if attempt.number == 1:  # (delivery is deduplicated too, should this repeat)
        with run.db.transaction() as tx:
            notify_in_transaction(tx.connection, attempt.notice("fix_started"))
    try:
        fixed = fixes.run_attempt(run.db, run.pipeline, attempt, run.sandbox)
        with run.db.transaction() as tx:
            # The same transaction enqueues what follows the fix, so neither is lost.
            notice = fixes.record_success(tx, attempt, fixed)
            cleanup_in_transaction(tx.connection, fix_job_id)
            notify_in_transaction(tx.connection, notice)
    except BaseException as error:  # the time limit too: it ends this attempt
        final = is_final_attempt()
        with run.db.transaction() as tx:
            notice = fixes.record_failure(tx, attempt, error, final=final)
            if final:
                cleanup_in_transaction(tx.connection, fix_job_id)
                notify_in_transaction(tx.connection, notice)
        raise
    return {"status": "succeeded", "pr_url": fixed.pr_url, "tests": fixed.tests}


def queue_fix(bug_report_id: str) -> str:
    """Create a fix job for a parsed report and enqueue execute-fix, in one transaction.

    Returns the fix job's id.

    Raises:
        MissingRecord: no such report, it has no repository, or that was never analysed.
    """
    with runtime.current().db.transaction() as tx:
        fix = fixes.create_fix_job(tx, bug_report_id)
        execute_fix.send_in_transaction(tx.connection, **fix)
    return fix["fix_job_id"]
