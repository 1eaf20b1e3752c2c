"""process-bug-report: parse and enrich an incoming bug report."""

from __future__ import annotations

import logging
from uuid import UUID

from .base import Payload, job

logger = logging.getLogger(__name__)


class ProcessBugReport(Payload):
    bug_report_id: UUID


@job("process_bug_report", ProcessBugReport, store_results=True)
def process_bug_report(payload: ProcessBugReport) -> dict:
    logger.info("processing bug report %s", payload.bug_report_id)
    return {"bug_report_id": str(payload.bug_report_id), "status": "PARSED"}
