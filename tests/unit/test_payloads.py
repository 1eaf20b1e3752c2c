"""Payloads are checked in the producer: a wrong field is named before anything is sent.

These call ``send()`` on the real broker with no database to reach: a payload
that got past the check would fail with EnqueueTimeout instead.
"""

from __future__ import annotations

import uuid

import pytest

from actors import analyze_codebase, send_notification
from actors.base import InvalidPayload
from pgbroker import InvalidMessage
from pgbroker.broker import encode
from tests.support.workload import probe_record


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "repo_link_id"),
        ({"repo_link_id": "42"}, "repo_link_id"),
        ({"repo_link_id": str(uuid.uuid4()), "triggered_by": "cron"}, "triggered_by"),
        ({"repo_link_id": str(uuid.uuid4()), "surprise": 1}, "surprise"),
    ],
)
def test_each_kind_of_invalid_payload_is_refused_at_send_naming_its_field(payload, field):
    with pytest.raises(InvalidPayload, match=field):
        analyze_codebase.send(**payload)


def test_an_address_that_is_not_one_is_refused_at_send():
    with pytest.raises(InvalidPayload, match="recipient_email"):
        send_notification.send(type="fix_started", bug_report_id=str(uuid.uuid4()),
                                  recipient_email="ada at example dot com")


def test_positional_arguments_are_refused_at_send():
    with pytest.raises(InvalidPayload, match="keyword arguments"):
        analyze_codebase.send(str(uuid.uuid4()))


def test_camel_case_names_become_the_snake_case_fields_of_the_message():
    repo = uuid.uuid4()

    message = analyze_codebase.message(repoLinkId=str(repo), fullAnalysis=False,
                                       triggeredBy="webhook")

    assert message.kwargs == {"repo_link_id": str(repo), "full_analysis": False,
                              "triggered_by": "webhook"}


def test_an_analysis_is_one_job_per_repository_for_five_minutes():
    repo = uuid.uuid4()

    message = analyze_codebase.message(repo_link_id=str(repo))

    assert (message.options["singleton_key"], message.options["singleton_seconds"]) == (
        f"analyze-{repo}", 300)


@pytest.mark.parametrize(
    ("key", "problem"),
    [("nul\x00byte", "NUL character"), (float("nan"), "not valid JSON"),
     ("\ud800", "not valid Unicode"), ("k" * 1_100_000, "over the 1,048,576-byte limit")],
)
def test_a_message_that_cannot_be_stored_is_refused_with_the_reason(key, problem):
    message = probe_record.message(key="x")
    message.kwargs["key"] = key  # bypass the model, as a careless producer might

    with pytest.raises(InvalidMessage, match=problem):
        encode(message)
