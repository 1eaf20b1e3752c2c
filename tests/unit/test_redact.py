"""Secrets and e-mail addresses never reach a log line, whatever shape they take."""

from __future__ import annotations

import logging

import pytest
from dramatiq.broker import MessageProxy
from dramatiq.message import Message

from pgbroker.redact import (
    MASK,
    install_log_redaction,
    mask_email,
    redact,
    register_secrets,
    scrub,
)

PASSWORD = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    "text",
    [
        f"postgresql://app:{PASSWORD}@db:5432/jobs",
        f"postgress://app:{PASSWORD}@db:5432/jobs",  # a typo'd scheme
        f"postgresql://app@db/jobs?sslmode=require&password={PASSWORD}",
        f"host=db user=app password={PASSWORD} dbname=jobs",
        f"host=db user=app password='{PASSWORD} with space' dbname=jobs",
        f"dbname=jobs PASSWORD = {PASSWORD}",
        f"smtp://mailer:{PASSWORD}@smtp.example.com:587",
        f"could not connect: postgresql://app:{PASSWORD}@db:5432/jobs (timeout)",
        f"postgresql://app:{PASSWORD[:4]}@{PASSWORD[4:]}@db/jobs",  # an unencoded @
        f"PGPASSWORD={PASSWORD} psql -h db", f"SMTP_PASSWORD={PASSWORD}",
        f'{{"user": "app", "password": "{PASSWORD}"}}', f"{{'api_key': '{PASSWORD}'}}",
        f"Authorization: Bearer {PASSWORD}",
    ],
)
def test_password_shapes_are_masked_without_being_registered(text: str) -> None:
    masked = redact(text)
    assert PASSWORD not in masked
    assert PASSWORD[4:] not in masked
    assert MASK in masked


def test_registered_secret_is_masked_in_any_text_raw_or_percent_encoded() -> None:
    webhook = "https://hooks.example.com/services/T0/B0/xoxo-secret-path"
    register_secrets([webhook, "tok/en with+plus", None, ""])
    assert "xoxo-secret-path" not in redact(f"alert to {webhook} failed")
    assert "tok" not in redact("header Bearer tok%2Fen%20with%2Bplus")
    assert "tok" not in redact("form tok%2Fen+with%2Bplus")


def test_short_secrets_are_not_replaced_as_plain_text() -> None:
    register_secrets(["pw"])
    assert redact("a pwd of passwords") == "a pwd of passwords"


def test_email_addresses_are_masked_to_first_letter_and_domain() -> None:
    assert mask_email("private.person@example.com") == f"p{MASK}@example.com"
    assert scrub("to private.person@example.com, cc a.b+c@mail.example.org") == (
        f"to p{MASK}@example.com, cc a{MASK}@mail.example.org"
    )


def _message() -> Message:
    return Message(queue_name="send-notification", actor_name="send_notification", args=(),
                   kwargs={"recipient_email": "private.person@example.com"}, options={},
                   message_id="0c5d6f1e")


def test_log_records_of_any_logger_are_scrubbed_and_job_arguments_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_log_redaction()
    install_log_redaction()  # twice is harmless
    logger = logging.getLogger("some.library")
    with caplog.at_level(logging.INFO):
        logger.info("connecting to %s", f"postgresql://app:{PASSWORD}@db/jobs")
        logger.error("Failed to process message %s with unhandled exception.", _message())
        logger.error("Failed to process message %s.", MessageProxy(_message()))
        try:
            raise RuntimeError(f"dsn password={PASSWORD} refused for person@example.com")
        except RuntimeError:
            logger.exception("boom")
    text = caplog.text
    assert PASSWORD not in text
    assert "private.person" not in text and "person@example.com" not in text
    assert "send_notification(message_id=0c5d6f1e)" in text
    assert "RuntimeError" in text  # the traceback is kept, scrubbed


def test_a_record_with_a_broken_format_string_is_still_logged_scrubbed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_log_redaction()
    with caplog.at_level(logging.INFO):
        logging.getLogger("x").info("%d items for %s", f"password={PASSWORD}")
    assert caplog.records and PASSWORD not in caplog.text


def test_words_that_merely_contain_a_key_are_left_alone() -> None:
    assert redact("bypass=1 compass=2 token_count=") == "bypass=1 compass=2 token_count="


class _Hostile:
    def __getattr__(self, name: str) -> None:
        raise KeyError(name)

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__


def test_a_record_never_raises_into_the_caller_and_its_exception_is_scrubbed_for_good(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_log_redaction()
    logger = logging.getLogger("any.library")
    with caplog.at_level(logging.INFO):
        logger.info("odd argument %s", _Hostile())
        logger.info("%(dsn)s up", {"dsn": f"password={PASSWORD}"})
        try:
            raise RuntimeError(f"password={PASSWORD}")
        except RuntimeError:
            logger.exception("boom")
    hostile, mapping, failed = caplog.records
    assert "arguments not shown" in hostile.getMessage()
    assert mapping.getMessage() == "password=*** up"
    # exc_info is dropped once scrubbed into exc_text: a formatter of its own
    # (JSON, an error tracker) cannot format the raw exception again.
    assert failed.exc_info is None and PASSWORD not in (failed.exc_text or "")
    assert "RuntimeError" in (failed.exc_text or "")
