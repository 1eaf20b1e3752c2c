"""send-notification: tell someone where their bug report stands."""

from __future__ import annotations

import logging
from typing import Any, Literal
from uuid import UUID

from pydantic import EmailStr

from .base import Payload, job

logger = logging.getLogger(__name__)

NotificationType = Literal["bug_received", "fix_started", "pr_created", "fix_failed"]


class SendNotification(Payload):
    type: NotificationType
    bug_report_id: UUID
    recipient_email: EmailStr
    data: dict[str, Any] = {}


@job("send_notification", SendNotification, store_results=True)
def send_notification(payload: SendNotification) -> dict:
    # The address is personal data: it goes to the log line, never to metrics.
    logger.info("notification %s for bug report %s", payload.type, payload.bug_report_id)
    return {"type": payload.type, "bug_report_id": str(payload.bug_report_id)}
