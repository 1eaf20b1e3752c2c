"""One e-mail out over SMTP, encrypted and verified unless a deployment says otherwise.

``smtps://`` connects with TLS; ``smtp://`` upgrades with STARTTLS. Both verify
the server's certificate and host name against the system's CAs (or the
config's ``ca_file``). With ``tls="required"`` (the default) a server that
offers no STARTTLS is refused; with ``"optional"`` the mail goes in clear to
such a server (a local catcher such as mailpit), but a password never does:
AUTH is only ever sent over TLS.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from .config import Mail
from .errors import PermanentError


class InsecureTransport(PermanentError):
    """The server cannot be reached the way the settings require; retrying will not help."""


@dataclass(frozen=True)
class Email:
    recipient: str
    subject: str
    body: str
    # Stable across retries, so a mail sent twice is one message to mail clients.
    dedupe_key: str


def send_mail(config: Mail, email: Email, *, timeout: float = 30) -> None:
    """Send ``email`` from ``config.sender`` through the SMTP server at ``config.smtp_url``.

    Raises:
        InsecureTransport: TLS is required (or a password is to be sent) and the
            server offers none; or the URL is not smtp:// or smtps://.
        smtplib.SMTPException, OSError, ssl.SSLError: from the server or network,
            including a certificate that does not verify.
    """
    if config.smtp_url is None:
        raise InsecureTransport("no SMTP server is configured (JOBS_SMTP_URL)")
    parts = urlsplit(config.smtp_url.get_secret_value())
    if parts.scheme not in ("smtp", "smtps"):
        raise InsecureTransport(
            f"JOBS_SMTP_URL must start with smtp:// or smtps://, not {parts.scheme}://")
    host = parts.hostname or "localhost"
    context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    message = _message(config.sender, email)
    if parts.scheme == "smtps":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            host, parts.port or 465, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(host, parts.port or 25, timeout=timeout)
    with client as smtp:
        smtp.ehlo()
        encrypted = parts.scheme == "smtps"
        if not encrypted and smtp.has_extn("starttls"):
            smtp.starttls(context=context)
            smtp.ehlo()
            encrypted = True
        if not encrypted and (config.tls == "required" or parts.username):
            raise InsecureTransport(
                f"the SMTP server {host} offers no STARTTLS; "
                + ("a password is never sent in clear" if parts.username
                   else "set JOBS_SMTP_TLS=optional to mail it in clear"))
        if parts.username:
            smtp.login(unquote(parts.username), unquote(parts.password or ""))
        # send_message asks for SMTPUTF8 itself when an address is not ASCII,
        # and raises SMTPNotSupportedError when the server cannot take it.
        smtp.send_message(message)


def _message(sender: str, email: Email) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, email.recipient, email.subject
    digest = hashlib.sha256(email.dedupe_key.encode()).hexdigest()[:32]
    # From the dedupe key alone (make_msgid would add time and randomness), so a
    # mail sent again after a crash is the same message to mail clients.
    message["Message-ID"] = f"<{digest}@pts-jobs>"
    message.set_content(email.body)
    return message
