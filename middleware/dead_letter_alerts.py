"""Tells a Slack-compatible webhook about every job that dies.

When a job is dead-lettered after its last retry (or at once, for a permanent
error), ``JOBS_ALERT_WEBHOOK_URL`` receives its name, id, attempts and error, as
the spec's alerting sketch does. So it does for a queue row no worker may run
(written by another producer: undecodable, an unknown actor, another queue's),
which the consumer dead-letters unrun. Every text that may quote a payload or
a row (an error, the reason a row was refused) is scrubbed of secrets and
escaped, so Slack shows it literally: no ``<!channel>``, no disguised link.
Each post runs on a thread of its own with a short timeout: a slow or failing
webhook is logged, never retried into the worker's way, and the job is already
safe in the dead letters. At most ``MAX_IN_FLIGHT`` posts are on their way at
once; more are dropped and logged.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from typing import Any

from dramatiq.middleware import Middleware

from pgbroker.broker import failure_text
from pgbroker.redact import scrub

logger = logging.getLogger(__name__)
TIMEOUT = 5.0
# Posts on their way at once; past that an alert is dropped (and logged): a
# flood of bad rows must not become a flood of threads and posts.
MAX_IN_FLIGHT = 4


def slack_text(text: str) -> str:
    """``text`` as Slack shows it literally: no mention (``<!channel>``), no link
    markup (``<https://x|label>``). Slack's own escapes, scrubbed of secrets first."""
    return scrub(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_alert(headline: str, details: dict[str, str], error: str) -> dict[str, Any]:
    """A Slack message: a headline, short fields, and the error (which may quote a
    recipient, a URL, a payload or a row: scrubbed and escaped before it leaves)."""
    fields = [{"title": title, "value": value, "short": True}
              for title, value in details.items()]
    return {
        "text": f":rotating_light: {headline}",
        "attachments": [{
            "color": "danger",
            "fields": [*fields, {"title": "Error", "value": slack_text(error)[:1500]}],
        }],
    }


def alert_body(message: Any, error: str, attempts: int) -> dict[str, Any]:
    """The Slack message of a job that died."""
    return _slack_alert(f"Job permanently failed: {message.actor_name}", {
        "Job": message.actor_name, "Queue": message.queue_name,
        "Job ID": message.message_id, "Attempts": str(attempts)}, error)


def rejected_row_body(message_id: str, queue_name: str, reason: str) -> dict[str, Any]:
    """The Slack message of a row dead-lettered unrun (``reason`` may quote the row)."""
    return _slack_alert(f"A queue row was dead-lettered unrun on {queue_name}",
                        {"Queue": queue_name, "Job ID": message_id}, reason)


def post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"},
        method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            response.read()
    except (urllib.error.URLError, OSError, ValueError) as error:
        logger.warning("dead-letter alert not delivered: %s", error)


class DeadLetterAlerts(Middleware):
    def __init__(self, webhook_url: str | None) -> None:
        self.webhook_url = webhook_url
        self._slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)

    def after_nack(self, broker, message) -> None:
        if not self.webhook_url:
            return
        error = failure_text(message, broker.actors)
        self._send(message.message_id, self._alert, broker, message, error)

    def after_reject_row(self, broker: Any, delivery: Any, reason: str) -> None:
        """Fires (from ``PostgresBroker.reject``) when a row is dead-lettered unrun."""
        if not self.webhook_url:
            return
        body = rejected_row_body(delivery.message_id, delivery.queue_name, reason)
        self._send(delivery.message_id, post, self.webhook_url, body)

    def _send(self, message_id: str, work: Any, *args: Any) -> None:
        if not self._slots.acquire(blocking=False):
            logger.warning("dead-letter alert for %s dropped: %d alerts are being posted",
                           message_id, MAX_IN_FLIGHT)
            return

        def run() -> None:
            try:
                work(*args)
            finally:
                self._slots.release()

        threading.Thread(target=run, name="dead-letter-alert", daemon=True).start()

    def _alert(self, broker: Any, message: Any, error: str) -> None:
        assert self.webhook_url is not None
        try:
            # The queue table counts every delivery; dramatiq's options do not.
            attempts = broker.fetch("job_by_id", message_id=message.message_id)[0][4]
        except Exception:
            attempts = message.options.get("retries", 0) + 1
        post(self.webhook_url, alert_body(message, error, attempts))
