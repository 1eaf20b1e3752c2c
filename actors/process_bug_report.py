"""process-bug-report: parse and enrich an incoming bug report.

RECEIVED -> PARSED (with bug_received enqueued in the same transaction), or
INVALID with the reason when nothing in it can be used (not retried). A missing
report is dead at once.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from pipeline import bug_reports

from . import runtime
from .base import InvalidPayload, Payload, job
from .send_notification import notify_in_transaction

logger = logging.getLogger(__name__)


class ProcessBugReport(Payload):
    bug_report_id: UUID


@job("process_bug_report", ProcessBugReport, store_results=True)
def process_bug_report(payload: ProcessBugReport) -> dict:
    bug_report_id = str(payload.bug_report_id)
    with runtime.current().db.transaction() as tx:
        processed = bug_reports.process(tx, bug_report_id)
        try:
            # Same transaction: the notification exists if, and only if, PARSED does.
            notify_in_transaction(tx.connection, processed.notice)
        except InvalidPayload as refused:
            logger.warning("bug report %s: no notification: %s", bug_report_id, refused)
    return processed.result


def receive(**report: Any) -> str:
    """Store a report as the intake receives it (RECEIVED); returns its id.

    Keywords as :func:`pipeline.bug_reports.receive`: ``raw_text``,
    ``raw_payload``, ``reporter_email``, ``repo_link_id``.
    """
    return bug_reports.receive(runtime.current().db, **report)
