"""process-bug-report: parse and enrich an incoming bug report.

RECEIVED -> PARSED (with bug_received enqueued in the same transaction), or
INVALID with the reason when nothing in it can be used (not retried). A missing
report is dead at once.
"""

from __future__ import annotations

from uuid import UUID

from pipeline.bug_reports import process

from .base import Payload, job


class ProcessBugReport(Payload):
    bug_report_id: UUID


@job("process_bug_report", ProcessBugReport, store_results=True)
def process_bug_report(payload: ProcessBugReport) -> dict:
    return process(str(payload.bug_report_id))
