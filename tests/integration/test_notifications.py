"""Notifications over real SMTP, at most once; dead-letter alerts to a webhook."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from actors import runtime, send_notification
from actors.process_bug_report import receive
from middleware import DeadLetterAlerts
from tests.support import free_port, job_in, wait_for
from tests.support.fixtures import good_message, insert_row
from tests.support.pipeline import rows
from tests.support.workload import probe_fails, probe_record


def notify(bug: str, type_: str = "bug_received", **data) -> str:
    return send_notification.send(type=type_, bug_report_id=bug,
                                  recipient_email="ada@example.com", data=data).message_id


def test_a_notification_is_rendered_and_mailed(worker, smtp):
    bug = receive(raw_payload={"title": "Cart total is wrong"})
    rows("UPDATE {schema}.bug_reports SET title = 'Cart total is wrong' WHERE id = %s", bug)

    job = job_in(notify(bug, "pr_created", fix_job_id="f1", pr_url="https://git.example/1"),
                 "done")

    (mail,) = smtp.messages
    assert mail["To"] == "ada@example.com"
    assert mail["Subject"] == "A fix is ready for review: Cart total is wrong"
    assert "https://git.example/1" in mail.get_payload()
    assert json.loads(job.result or "{}")["status"] == "sent"
    (stored,) = rows("SELECT status, attempts FROM {schema}.notifications")
    assert stored == {"status": "sent", "attempts": 1}


def test_the_same_notification_sent_twice_is_mailed_once(worker, smtp):
    bug = receive(raw_text="Slow page")

    first, second = notify(bug), notify(bug)

    assert job_in(first, "done") and job_in(second, "done")
    assert len(smtp.messages) == 1
    results = sorted(json.loads(job_in(m, "done").result or "{}")["status"]
                     for m in (first, second))
    assert results == ["already sent", "sent"]


def test_duplicates_running_at_the_same_moment_mail_once(start_worker, smtp):
    bug = receive(raw_text="Crash on save")
    messages = [notify(bug, "fix_failed", fix_job_id="f9", error="boom") for _ in range(6)]
    start_worker(threads=6)  # all six wait, then race

    for message in messages:
        job_in(message, "done")
    assert len(smtp.messages) == 1


def test_without_smtp_a_notification_is_recorded_not_mailed(worker):
    bug = receive(raw_text="Typo on the about page")

    job = job_in(notify(bug), "done")

    assert json.loads(job.result or "{}")["status"] == "recorded"
    (stored,) = rows("SELECT status, subject FROM {schema}.notifications")
    assert stored["status"] == "recorded" and stored["subject"].startswith("We received")


def test_an_smtp_server_that_is_down_fails_the_job_for_a_retry_and_records_nothing(
    worker, configure
):
    mail = runtime.current().pipeline.mail
    configure(mail=dataclasses.replace(
        mail, smtp_url=SecretStr(f"smtp://127.0.0.1:{free_port()}"), tls="optional"))
    bug = receive(raw_text="Mail me")
    message = send_notification.send_with_options(
        kwargs={"type": "bug_received", "bug_report_id": bug,
                "recipient_email": "ada@example.com"}, max_retries=1)

    job = job_in(message.message_id, "dead", timeout=20)

    assert job.attempts == 2 and "ConnectionRefusedError" in (job.last_error or "")
    assert rows("SELECT status FROM {schema}.notifications") == []  # rolled back whole


# Dead-letter alerts

class Hook:
    """A local Slack-style webhook that records what it receives."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                hook.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/slack"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def alerts_to(broker):
    (middleware,) = [m for m in broker.middleware if isinstance(m, DeadLetterAlerts)]
    original = middleware.webhook_url

    def point(url: str) -> None:
        middleware.webhook_url = url

    yield point
    middleware.webhook_url = original


def alert_on(alerts_to, kill: Callable[[], str]) -> tuple[dict, dict[str, str]]:
    """The webhook's one post once the job ``kill()`` returns the id of is dead:
    the body, and its fields by title."""
    hook = Hook()
    alerts_to(hook.url)
    try:
        job_in(kill(), "dead", timeout=20)
        wait_for(lambda: hook.bodies, timeout=10, what="the alert")
    finally:
        hook.close()
    (body,) = hook.bodies
    return body, {f["title"]: f["value"] for f in body["attachments"][0]["fields"]}


def test_a_job_that_dies_is_reported_to_the_webhook(worker, alerts_to):
    sent: list[str] = []

    def fail_twice() -> str:
        message = probe_fails.send_with_options(kwargs={"key": "alarm"}, max_retries=1)
        sent.append(message.message_id)
        return message.message_id

    body, fields = alert_on(alerts_to, fail_twice)

    assert body["text"].endswith("Job permanently failed: probe_fails")
    assert fields == {"Job": "probe_fails", "Queue": "probe-fails", "Job ID": sent[0],
                      "Attempts": "2", "Error": "RuntimeError: always fails: alarm"}


def test_a_queue_row_dead_lettered_unrun_is_reported_shown_literally(worker, alerts_to):
    message_id = str(uuid.uuid4())

    def insert_poison() -> str:
        # Another producer's row: an actor nobody defines, a name meant to ping a channel.
        return insert_row(good_message(message_id, actor_name="<!channel> no_such_actor"),
                          message_id=message_id)

    body, fields = alert_on(alerts_to, insert_poison)

    assert body["text"].endswith("A queue row was dead-lettered unrun on probe-record")
    assert (fields["Queue"], fields["Job ID"]) == ("probe-record", message_id)
    assert set(fields) == {"Queue", "Job ID", "Error"}
    # Shown literally: Slack pings nobody and renders no link from a row's text.
    assert "unknown actor '&lt;!channel&gt; no_such_actor'" in fields["Error"]
    assert "<" not in json.dumps(body) and ">" not in json.dumps(body)


@pytest.mark.parametrize("broken", ["500", "refused"])
def test_a_failing_webhook_neither_breaks_the_worker_nor_loses_the_job(worker, alerts_to,
                                                                      broken):
    hook = Hook(status=500) if broken == "500" else None
    alerts_to(hook.url if hook else f"http://127.0.0.1:{free_port()}/gone")
    try:
        dead = probe_fails.send_with_options(kwargs={"key": "x"}, max_retries=0)
        assert job_in(dead.message_id, "dead").state == "dead"
        after = probe_record.send(key=f"still-working-{uuid.uuid4().hex[:4]}")
        assert job_in(after.message_id, "done").state == "done"
    finally:
        if hook:
            hook.close()
