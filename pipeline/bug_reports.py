"""process-bug-report's work: parse a stored report and move it to PARSED or INVALID."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from psycopg2.extras import Json

from actors.base import PermanentError

from . import db
from .parsing import UnusableReport, parse_report

logger = logging.getLogger(__name__)


class MissingRecord(PermanentError, LookupError):
    """The row a job names does not exist: retrying cannot help, so no retry."""


def receive(*, raw_text: str | None = None, raw_payload: dict | None = None,
            reporter_email: str | None = None, repo_link_id: str | None = None) -> str:
    """Store a report as the intake receives it (RECEIVED) and return its id."""
    row = db.fetch_one("bug_report_insert", raw_text=raw_text,
                       raw_payload=None if raw_payload is None else Json(raw_payload),
                       reporter_email=reporter_email, repo_link_id=repo_link_id)
    assert row is not None
    return str(row["id"])


def process(bug_report_id: str) -> dict[str, Any]:
    """Parse the report, store the result, and enqueue ``bug_received`` with it.

    Idempotent: a report already PARSED or INVALID is left as it is.

    Raises:
        MissingRecord: no bug report has this id.
    """
    from actors.base import InvalidPayload
    from actors.send_notification import send_notification

    with db.transaction() as cur:
        cur.execute(db.query("bug_report_lock"), {"id": bug_report_id})
        report = cur.fetchone()
        if report is None:
            raise MissingRecord(f"no bug report {bug_report_id}")
        if report["status"] != "RECEIVED":
            return {"status": report["status"], "already": True}
        try:
            parsed = parse_report(report["raw_text"], report["raw_payload"])
        except UnusableReport as unusable:
            cur.execute(db.query("bug_report_invalid"),
                        {"id": bug_report_id, "reason": str(unusable)})
            logger.info("bug report %s is INVALID: %s", bug_report_id, unusable)
            return {"status": "INVALID", "reason": str(unusable)}
        fields = dataclasses.asdict(parsed)
        cur.execute(db.query("bug_report_parsed"), {
            **fields,
            "id": bug_report_id,
            "steps_to_reproduce": Json(fields["steps_to_reproduce"]),
            "stack_frames": Json(fields["stack_frames"]),
            "environment": Json(fields["environment"]),
        })
        stored = cur.fetchone()
        if report["reporter_email"]:
            try:
                # Same transaction: the notification exists if, and only if, PARSED does.
                send_notification.send_in_transaction(
                    cur.connection, type="bug_received", bug_report_id=bug_report_id,
                    recipient_email=report["reporter_email"], data={},
                )
            except InvalidPayload as refused:
                logger.warning("bug report %s: no notification: %s", bug_report_id, refused)
    return {"status": "PARSED", "severity": parsed.severity,
            "duplicate_of": str(stored["duplicate_of"]) if stored["duplicate_of"] else None}
