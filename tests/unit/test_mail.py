"""Mail goes out encrypted and verified, never with a password in clear, in any script."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from pydantic import SecretStr

from pipeline.config import Mail
from pipeline.mail import Email, InsecureTransport, send_mail
from tests.support import free_port

EMAIL = Email(recipient="ada@example.com", subject="We received your report", body="Thanks.\n",
              dedupe_key="bug_received:1:")


def via(url: str, **options) -> Mail:
    return Mail(smtp_url=SecretStr(url), sender="no-reply@placetostand.example", **options)


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list = []
        self.logins: list[bytes] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        self.logins.append(auth_data.password)
        return AuthResult(success=True)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def _server_context(ca: trustme.CA, host: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(host).configure_cert(context)
    return context


@pytest.fixture
def smtp_server() -> Iterator:
    started: list[Controller] = []

    def start(**options) -> tuple[Inbox, int]:
        inbox = Inbox()
        port = free_port()
        controller = Controller(inbox, hostname="127.0.0.1", port=port,
                                authenticator=inbox.authenticate, **options)
        controller.start()
        started.append(controller)
        return inbox, port

    yield start
    for controller in started:
        controller.stop()


def test_starttls_is_used_and_verified_when_the_server_offers_it(smtp_server, ca, ca_file):
    inbox, port = smtp_server(tls_context=_server_context(ca, "127.0.0.1"),
                              auth_require_tls=True)
    send_mail(via(f"smtp://mailer:hunter22@127.0.0.1:{port}", ca_file=ca_file), EMAIL)
    assert [e.rcpt_tos for e in inbox.envelopes] == [["ada@example.com"]]
    assert inbox.logins == [b"hunter22"]  # logged in, over TLS (the server insists)


def test_a_server_without_starttls_is_refused_unless_tls_is_optional(smtp_server):
    inbox, port = smtp_server()
    with pytest.raises(InsecureTransport, match="offers no STARTTLS"):
        send_mail(via(f"smtp://127.0.0.1:{port}"), EMAIL)
    assert inbox.envelopes == []

    send_mail(via(f"smtp://127.0.0.1:{port}", tls="optional"), EMAIL)
    assert len(inbox.envelopes) == 1


def test_a_password_is_never_sent_in_clear_even_with_tls_optional(smtp_server):
    inbox, port = smtp_server(auth_require_tls=False)
    with pytest.raises(InsecureTransport, match="never sent in clear"):
        send_mail(via(f"smtp://mailer:hunter22@127.0.0.1:{port}", tls="optional"), EMAIL)
    assert inbox.logins == [] and inbox.envelopes == []


def test_a_certificate_for_another_host_is_refused_over_starttls(smtp_server, ca, ca_file):
    inbox, port = smtp_server(tls_context=_server_context(ca, "mail.elsewhere.example"))
    with pytest.raises(ssl.SSLCertVerificationError):
        send_mail(via(f"smtp://127.0.0.1:{port}", ca_file=ca_file), EMAIL)
    assert inbox.envelopes == []


def test_a_self_signed_certificate_is_refused_over_smtps(smtp_server, ca):
    # No ca_file: the system's CAs do not know this one.
    inbox, port = smtp_server(ssl_context=_server_context(ca, "127.0.0.1"))
    with pytest.raises(ssl.SSLCertVerificationError):
        send_mail(via(f"smtps://127.0.0.1:{port}"), EMAIL)
    assert inbox.envelopes == []


def test_smtps_with_a_verifying_certificate_delivers(smtp_server, ca, ca_file):
    inbox, port = smtp_server(ssl_context=_server_context(ca, "127.0.0.1"))
    send_mail(via(f"smtps://127.0.0.1:{port}", ca_file=ca_file), EMAIL)
    assert len(inbox.envelopes) == 1


def test_a_non_ascii_recipient_is_sent_with_smtputf8(smtp_server):
    inbox, port = smtp_server(enable_SMTPUTF8=True)
    to_jose = dataclasses.replace(EMAIL, recipient="josé@example.com")
    send_mail(via(f"smtp://127.0.0.1:{port}", tls="optional"), to_jose)
    (envelope,) = inbox.envelopes
    assert envelope.rcpt_tos == ["josé@example.com"] and "SMTPUTF8" in envelope.mail_options


def test_an_unknown_scheme_is_refused_without_connecting():
    with pytest.raises(InsecureTransport, match="smtp:// or smtps://"):
        send_mail(via("http://127.0.0.1:9/"), EMAIL)


def test_the_same_notification_sent_again_has_the_same_message_id(smtp_server):
    inbox, port = smtp_server()
    for _ in range(2):
        send_mail(via(f"smtp://127.0.0.1:{port}", tls="optional"), EMAIL)
    ids = {e.content.split(b"Message-ID: ")[1].split(b"\r\n")[0] for e in inbox.envelopes}
    assert len(inbox.envelopes) == 2 and len(ids) == 1
