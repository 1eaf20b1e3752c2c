"""process-bug-report's work: parse a stored report and move it to PARSED or INVALID."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from psycopg2.extras import Json

from .db import Database, Transaction
from .errors import MissingRecord
from .notifications import Notice, notice_for
from .parsing import UnusableReport, parse_report

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Processed:
    """What processing a report did: the job's result, and whom to tell."""

    result: dict[str, Any]
    # bug_received, to send in the same transaction; None when nobody is told.
    notice: Notice | None = None


def receive(db: Database, *, raw_text: str | None = None, raw_payload: dict | None = None,
            reporter_email: str | None = None, repo_link_id: str | None = None) -> str:
    """Store a report as the intake receives it (RECEIVED) and return its id."""
    row = db.one("bug_report_insert", raw_text=raw_text,
                 raw_payload=None if raw_payload is None else Json(raw_payload),
                 reporter_email=reporter_email, repo_link_id=repo_link_id)
    assert row is not None
    return str(row["id"])


def process(tx: Transaction, bug_report_id: str) -> Processed:
    """Parse the report and store the result, in ``tx``.

    Idempotent: a report already PARSED or INVALID is left as it is (and nobody
    is told again).

    Raises:
        MissingRecord: no bug report has this id.
    """
    report = tx.one("bug_report_lock", id=bug_report_id)
    if report is None:
        raise MissingRecord(f"no bug report {bug_report_id}")
    if report["status"] != "RECEIVED":
        return Processed({"status": report["status"], "already": True})
    try:
        parsed = parse_report(report["raw_text"], report["raw_payload"])
    except UnusableReport as unusable:
        tx.execute("bug_report_invalid", id=bug_report_id, reason=str(unusable))
        logger.info("bug report %s is INVALID: %s", bug_report_id, unusable)
        return Processed({"status": "INVALID", "reason": str(unusable)})
    fields = dataclasses.asdict(parsed)
    stored = tx.one("bug_report_parsed", **{
        **fields,
        "id": bug_report_id,
        "steps_to_reproduce": Json(fields["steps_to_reproduce"]),
        "stack_frames": Json(fields["stack_frames"]),
        "environment": Json(fields["environment"]),
    })
    assert stored is not None
    duplicate_of = stored["duplicate_of"]
    return Processed(
        {"status": "PARSED", "severity": parsed.severity,
         "duplicate_of": str(duplicate_of) if duplicate_of else None},
        notice=notice_for("bug_received", report),
    )
