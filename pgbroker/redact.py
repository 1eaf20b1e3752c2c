"""Secrets and e-mail addresses kept out of what people read: logs, errors, reprs.

Two nets, because neither alone is enough:

* **Known values.** The secrets this process was configured with (database
  password, SMTP password, tokens, webhook URLs) are registered once at start
  and replaced wherever they appear, in whatever text, raw or percent-encoded.
* **Shapes.** A password can also reach a log line in a form nobody registered:
  a URL written with a typo'd scheme (``postgress://u:pw@h``), a query string
  (``?password=pw``), a libpq key/value DSN (``password=pw host=h``). Those
  shapes are masked whatever their value.

:func:`install_log_redaction` applies both to every log record the process
creates, from any library, before any handler sees it; it also renders
Dramatiq messages as ``actor(message_id)`` so job arguments (bug reports,
recipients) are not logged unless a deployment asks for them.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from dramatiq.broker import MessageProxy
from dramatiq.message import Message

MASK = "***"

# scheme://user:password@ — any scheme, so typos and unknown drivers are caught
# too. The password runs to the last "@" of the word: an unencoded "@" inside
# it must not leak the rest (masking too much is the safe side).
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@?#'\"]*:)(?P<secret>[^\s'\"]*)(?=@)"
)
# password=... as a query parameter or a libpq key/value pair, quoted or not.
_SECRET_KEYS = (r"(?:[A-Za-z0-9]*_)?(?:[A-Za-z]*password|passwd|pwd|pass|secret|token"
                r"|api_?key|access_?token)")
# The key may end a longer name (PGPASSWORD=, SMTP_PASSWORD=, X_API_KEY=).
_KEY_VALUE = re.compile(
    rf"(?P<head>(?<![A-Za-z0-9_]){_SECRET_KEYS}\s*=\s*)"
    rf"(?P<secret>'(?:[^'\\]|\\.)*'|[^\s&;'\"]+)",
    re.IGNORECASE,
)
# "password": "..." in JSON or a Python dict's repr.
_QUOTED_KEY = re.compile(
    rf"(?P<head>[\"']{_SECRET_KEYS}[\"']\s*:\s*)"
    r"(?P<secret>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')",
    re.IGNORECASE,
)
# Authorization: Bearer <token> (or Basic <credentials>).
_AUTHORIZATION = re.compile(
    r"(?P<head>\b(?:Bearer|Basic)\s+)(?P<secret>[A-Za-z0-9._~+/=-]{8,})")
# user@example.com: kept to its domain and first letter, which is what an
# operator needs to tell addresses apart without learning them.
_EMAIL = re.compile(
    r"\b(?P<first>[A-Za-z0-9])[A-Za-z0-9._%+\-]*"
    r"@(?P<domain>[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,})\b"
)

_known: set[str] = set()
_known_lock = threading.Lock()
# Secrets shorter than this are not replaced as plain text: "a" or "pw" would
# turn every log line to confetti. The shapes above still mask them.
_SHORTEST_KNOWN = 4


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember secret values so :func:`redact` replaces them wherever they appear."""
    with _known_lock:
        for value in values:
            if value and len(value) >= _SHORTEST_KNOWN:
                _known.update({value, quote(value, safe=""), quote_plus(value, safe="")})


def redact(text: str) -> str:
    """``text`` with every registered secret and secret-shaped value masked."""
    if not text:
        return text
    for value in sorted(_known, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    for shape in (_URL_PASSWORD, _KEY_VALUE, _QUOTED_KEY, _AUTHORIZATION):
        text = shape.sub(lambda m: m["head"] + MASK, text)
    return text


def mask_email(address: str) -> str:
    """``private.person@example.com`` -> ``p***@example.com``."""
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return MASK
    return f"{local[0]}{MASK}@{domain}"


def mask_emails(text: str) -> str:
    """``text`` with every e-mail address in it masked as :func:`mask_email` does."""
    return _EMAIL.sub(lambda m: f"{m['first']}{MASK}@{m['domain']}", text)


def scrub(text: str) -> str:
    """Secrets and e-mail addresses masked: what may be shown in a log or an alert."""
    return mask_emails(redact(text))


def install_log_redaction(*, log_message_args: bool = False) -> None:
    """Scrub every log record of this process when it is created.

    A record factory, not a handler filter: it sees records of every logger,
    propagated or not, whichever handlers Dramatiq or a library installs later.
    Only records of enabled levels are made, so disabled debug logging costs
    nothing. Installing twice is harmless.
    """
    current = logging.getLogRecordFactory()
    if getattr(current, "redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        _scrub_record(record, log_message_args=log_message_args)
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


_formatter = logging.Formatter()


def _scrub_record(record: logging.LogRecord, *, log_message_args: bool) -> None:
    try:
        _scrub_fields(record, log_message_args=log_message_args)
    except Exception:  # an argument whose repr or getattr raises: keep the line, not it
        record.msg, record.args = scrub(f"{record.msg}"[:1000]) + " (arguments not shown)", ()
        record.exc_info = None


def _scrub_fields(record: logging.LogRecord, *, log_message_args: bool) -> None:
    args = record.args
    if args and not log_message_args:
        if isinstance(args, Mapping):  # logger.info("%(a)s", {"a": ...})
            record.args = {key: _without_job_arguments(value) for key, value in args.items()}
        else:
            record.args = tuple(_without_job_arguments(arg) for arg in args)
    try:
        message = record.getMessage()
    except Exception:  # a bad format string must not lose the record
        message = f"{record.msg!r} % {record.args!r}"
    record.msg, record.args = scrub(message), ()
    if record.exc_info:
        if not record.exc_text:
            record.exc_text = scrub(_formatter.formatException(record.exc_info))
        # Formatters print exc_text; one that formats exc_info itself (a JSON
        # logger, an error tracker) would see the exception's text unscrubbed.
        record.exc_info = None
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)


def _without_job_arguments(arg: Any) -> Any:
    # Dramatiq's Message and MessageProxy print as actor(args, kwargs): the
    # payload of a job is the reporter's data and stays out of the log.
    if not isinstance(arg, (Message, MessageProxy)):
        return arg
    actor_name = getattr(arg, "actor_name", None)
    message_id = getattr(arg, "message_id", None)
    if isinstance(actor_name, str) and isinstance(message_id, str):
        return f"{actor_name}(message_id={message_id})"
    return arg
