"""Render, mail and record the four notifications, each at most once.

Every notification has a dedupe key (type, bug report, fix job). Its row is
locked while it is sent and marked sent in the same transaction, so a retried
or duplicated job finds it sent and stops. The one gap: a worker killed after
the SMTP server accepted the mail and before the commit sends it again on
retry; the Message-ID is derived from the dedupe key, so mail clients see the
same message.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Mail
from .db import Database
from .mail import Email, send_mail

logger = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"
TYPES = ("bug_received", "fix_started", "pr_created", "fix_failed")


@dataclass(frozen=True)
class Notice:
    """A notification to send: the send-notification job's payload."""

    type: str
    bug_report_id: str
    recipient_email: str
    data: dict[str, Any] = field(default_factory=dict)


def notice_for(type_: str, report: Mapping[str, Any], **data: Any) -> Notice | None:
    """Notification ``type_`` for the reporter of ``report`` (a bug_reports row).

    None when the report has no reporter address: nobody to tell.
    """
    recipient = report.get("reporter_email")
    if not recipient:
        return None
    return Notice(type_, str(report["id"]), recipient, data)


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


def dedupe_key(type_: str, bug_report_id: str, data: dict[str, Any]) -> str:
    """One notification per type, bug report and (for fix events) fix job."""
    return f"{type_}:{bug_report_id}:{data.get('fix_job_id', '')}"


def render(type_: str, values: dict[str, Any]) -> Rendered:
    """The notification from ``templates/<type>.txt``: first line subject, then body.

    Missing values render as empty, never as a crash.
    """
    text = (TEMPLATES / f"{type_}.txt").read_text()
    subject, _, body = text.partition("\n")
    fields = _Blank({k: "" if v is None else str(v) for k, v in values.items()})
    return Rendered(string.Template(subject).safe_substitute(fields).strip(),
                    string.Template(body).substitute(fields).strip() + "\n")


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def deliver(db: Database, mail: Mail, notice: Notice) -> str:
    """Send (or record) the notification unless it already went out.

    Returns ``"sent"``, ``"recorded"`` (no SMTP configured) or ``"already sent"``.
    Raises whatever the SMTP server raised; the job's retry sends it then.
    """
    key = dedupe_key(notice.type, notice.bug_report_id, notice.data)
    with db.transaction() as tx:
        params = {"dedupe_key": key, "type": notice.type, "bug_report_id": notice.bug_report_id,
                  "recipient_email": notice.recipient_email}
        tx.execute("notification_hold", **params)
        row = tx.one("notification_lock", **params)
        assert row is not None  # notification_hold made it
        if row["status"] in ("sent", "recorded"):
            logger.info("notification %s already %s", key, row["status"])
            return "already sent"
        report = tx.one("bug_report_get", id=notice.bug_report_id) or {}
        rendered = render(notice.type, {"title": report.get("title") or "your report",
                                        "bug_report_id": notice.bug_report_id, **notice.data})
        status = "recorded"
        if mail.smtp_url is not None:
            email = Email(recipient=notice.recipient_email, subject=rendered.subject,
                          body=rendered.body, dedupe_key=key)
            send_mail(mail, email)
            status = "sent"
        tx.execute("notification_done", dedupe_key=key, status=status,
                   subject=rendered.subject, body=rendered.body)
    return status
