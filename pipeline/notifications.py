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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import db
from .mail import Mail, send_mail

logger = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"
TYPES = ("bug_received", "fix_started", "pr_created", "fix_failed")


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


def deliver(type_: str, bug_report_id: str, recipient: str, data: dict[str, Any]) -> str:
    """Send (or record) the notification unless it already went out.

    Returns ``"sent"``, ``"recorded"`` (no SMTP configured) or ``"already sent"``.
    Raises whatever the SMTP server raised; the job's retry sends it then.
    """
    from settings import settings

    key = dedupe_key(type_, bug_report_id, data)
    with db.transaction() as cur:
        params = {"dedupe_key": key, "type": type_, "bug_report_id": bug_report_id,
                  "recipient_email": recipient}
        cur.execute(db.query("notification_hold"), params)
        cur.execute(db.query("notification_lock"), params)
        row = cur.fetchone()
        if row["status"] in ("sent", "recorded"):
            logger.info("notification %s already %s", key, row["status"])
            return "already sent"
        cur.execute(db.query("bug_report_get"), {"id": bug_report_id})
        report = cur.fetchone() or {}
        rendered = render(type_, {"title": report.get("title") or "your report",
                                  "bug_report_id": bug_report_id, **data})
        status = "recorded"
        if settings.smtp_url is not None:
            mail = Mail(sender=settings.mail_from, recipient=recipient,
                        subject=rendered.subject, body=rendered.body, dedupe_key=key)
            send_mail(settings.smtp_url.get_secret_value(), mail,
                      tls=settings.smtp_tls, ca_file=settings.smtp_ca_file)
            status = "sent"
        cur.execute(db.query("notification_done"), {
            "dedupe_key": key, "status": status, "subject": rendered.subject,
            "body": rendered.body,
        })
    return status
