#!/usr/bin/env python3
"""Stand-in for Mailpit: catches SMTP on :1025, serves what it caught on :8025.

The HTTP side is the part of Mailpit's API the tests read: GET /api/v1/messages
(newest first), GET /api/v1/message/ID, DELETE /api/v1/messages, /readyz, /livez.
`mailpit readyz` is the image's health check, as in Mailpit's own image. Mail is
kept in memory and never relayed.
"""

import json
import signal
import sys
import threading
import urllib.request
import uuid
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.utils import getaddresses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

MESSAGES: list[dict] = []
LOCK = threading.Lock()


def addresses(header) -> list[dict]:
    return [{"Name": name, "Address": addr} for name, addr in getaddresses([str(header or "")])]


class Catcher:
    async def handle_DATA(self, server, session, envelope):
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        body = parsed.get_body(preferencelist=("plain",))
        html = parsed.get_body(preferencelist=("html",))
        text = body.get_content() if body else ""
        message = {
            "ID": uuid.uuid4().hex,
            "MessageID": str(parsed.get("Message-ID", "")).strip("<>"),
            "From": (addresses(parsed.get("From")) or [{"Name": "", "Address": ""}])[0],
            "To": addresses(parsed.get("To")),
            "Subject": str(parsed.get("Subject", "")),
            "Snippet": " ".join(text.split())[:250],
            "Created": datetime.now(UTC).isoformat(),
            "Text": text,
            "HTML": html.get_content() if html else "",
        }
        with LOCK:
            MESSAGES.insert(0, message)
        return "250 Message accepted"


SUMMARY = ("ID", "MessageID", "From", "To", "Subject", "Snippet", "Created")


class Api(BaseHTTPRequestHandler):
    def reply(self, status: int, body: object = None) -> None:
        data = json.dumps(body).encode() if body is not None else b"ok"
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if body is not None else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        with LOCK:
            messages = list(MESSAGES)
        if path in ("/readyz", "/livez"):
            self.reply(200)
        elif path == "/api/v1/messages":
            summaries = [{key: m[key] for key in SUMMARY} for m in messages]
            self.reply(200, {"total": len(messages), "count": len(messages),
                             "messages": summaries})
        elif path.startswith("/api/v1/message/"):
            found = [m for m in messages if m["ID"] == path.rsplit("/", 1)[1]]
            self.reply(200, found[0]) if found else self.reply(404, {"error": "not found"})
        else:
            self.reply(404, {"error": "not found"})

    def do_DELETE(self):
        if self.path.split("?", 1)[0] == "/api/v1/messages":
            with LOCK:
                MESSAGES.clear()
            self.reply(200)
        else:
            self.reply(404, {"error": "not found"})

    def log_message(self, *args):  # requests are not worth a log line each
        pass


def main() -> int:
    if sys.argv[1:] == ["readyz"]:
        try:
            with urllib.request.urlopen("http://127.0.0.1:8025/readyz", timeout=3) as answer:
                return 0 if answer.status == 200 else 1
        except OSError:
            return 1
    # As PID 1 the process has no default SIGTERM action: without this, docker
    # stop would wait out its grace and kill it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    controller = Controller(Catcher(), hostname="0.0.0.0", port=1025)
    controller.start()
    print("mailpit stand-in: SMTP :1025, HTTP :8025", flush=True)
    try:
        ThreadingHTTPServer(("0.0.0.0", 8025), Api).serve_forever()
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
