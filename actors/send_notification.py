"""send-notification: tell someone where their bug report stands.

Rendered from ``pipeline/templates``, mailed when ``JOBS_SMTP_URL`` is set, and
recorded; a retried or duplicated job never sends the same notification twice.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from psycopg2.extensions import connection as Connection
from pydantic import EmailStr

from pipeline.notifications import Notice, deliver

from . import runtime
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
    run = runtime.current()
    notice = Notice(payload.type, str(payload.bug_report_id), payload.recipient_email,
                    payload.data)
    return {"type": payload.type, "status": deliver(run.db, run.pipeline.mail, notice)}


def notify_in_transaction(connection: Connection, notice: Notice | None) -> None:
    """Enqueue ``notice`` on ``connection``: it is sent if, and only if, the caller commits.

    Raises:
        InvalidPayload: the notice does not make a valid payload (say, a bad address).
    """
    if notice is not None:
        send_notification.send_in_transaction(
            connection, type=notice.type, bug_report_id=notice.bug_report_id,
            recipient_email=notice.recipient_email, data=notice.data)
