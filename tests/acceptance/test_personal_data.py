"""A reporter's e-mail address reaches no log line, alert or admin API answer."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from actors import send_notification
from actors.process_bug_report import receive
from tests.support import free_port, job_in, wait_for

ADDRESS = "private.person@example.com"


class RefusingInbox:
    """An SMTP server that refuses the recipient: its error quotes the address."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        return "550 5.1.1 no such user here"


class Hook(ThreadingHTTPServer):
    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hook.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def _admin_report(port: int) -> str | None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/admin/job-queue",
                                     headers={"Authorization": "Bearer sesame"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read().decode()
    except OSError:  # the metrics server is still starting
        return None


def test_a_failing_notification_leaves_the_address_out_of_logs_alerts_and_api(
    cli_worker, tmp_path
):
    smtp_port, metrics_port = free_port(), free_port()
    smtp = Controller(RefusingInbox(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    hook = Hook()
    try:
        worker = cli_worker("actors", threads=2, env={
            "JOBS_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}", "JOBS_SMTP_TLS": "optional",
            "JOBS_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{hook.server_port}/hook",
            "JOBS_METRICS_PORT": str(metrics_port), "JOBS_ADMIN_TOKEN": "sesame",
            "JOBS_METRICS_DIR": str(tmp_path / "metrics"),
        })
        worker.wait_ready()
        bug = receive(raw_text="It broke")
        message = send_notification.send_with_options(
            kwargs={"type": "bug_received", "bug_report_id": bug, "recipient_email": ADDRESS},
            max_retries=0)
        dead = job_in(message.message_id, "dead", timeout=30)
        wait_for(lambda: hook.bodies, timeout=15, what="the dead-letter alert")
        report = wait_for(lambda: _admin_report(metrics_port) or "", timeout=15,
                          what="the admin API")
    finally:
        hook.shutdown()
        hook.server_close()
        smtp.stop()

    assert "SMTPRecipientsRefused" in (dead.last_error or "")  # the job itself keeps it
    alert = json.loads(hook.bodies[0])["attachments"][0]["fields"]
    assert "p***@example.com" in json.dumps(alert)
    failures = json.loads(report)["data"]["recentFailures"]
    assert failures and "p***@example.com" in failures[0]["error"]
    for shown in (worker.output(), hook.bodies[0].decode(), report):
        assert ADDRESS not in shown and "private.person" not in shown
    assert f"send_notification(message_id={message.message_id})" in worker.output()
