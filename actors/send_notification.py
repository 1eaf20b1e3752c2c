"""send-notification: tell someone where their bug report stands.

Rendered from ``pipeline/templates``, mailed when ``JOBS_SMTP_URL`` is set, and
recorded; a retried or duplicated job never sends the same notification twice.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import EmailStr

from pipeline.notifications import deliver

from .base import Payload, job

NotificationType = Literal["bug_received", "fix_started", "pr_created", "fix_failed"]


class SendNotification(Payload):
    type: NotificationType
    bug_report_id: UUID
    recipient_email: EmailStr
    data: dict[str, Any] = {}


@job("send_notification", SendNotification, store_results=True)
def send_notification(payload: SendNotification) -> dict:
    # The address is personal data: it goes to the database, never to metrics or logs.
    status = deliver(payload.type, str(payload.bug_report_id), payload.recipient_email,
                     payload.data)
    return {"type": payload.type, "status": status}
