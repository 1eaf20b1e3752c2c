"""Notifications without a database: whom to tell, what it says, when it is the same one."""

from __future__ import annotations

import uuid

import pytest

from pipeline.notifications import TYPES, Notice, dedupe_key, notice_for, render

REPORT = {"id": uuid.uuid4(), "reporter_email": "ada@example.com", "title": "Search crashes"}


def test_the_reporter_is_told_with_the_fix_job_named():
    notice = notice_for("fix_failed", REPORT, fix_job_id="f1", error="boom")

    assert notice == Notice("fix_failed", str(REPORT["id"]), "ada@example.com",
                            {"fix_job_id": "f1", "error": "boom"})


@pytest.mark.parametrize("address", [None, ""])
def test_a_report_without_an_address_tells_nobody(address):
    assert notice_for("bug_received", {**REPORT, "reporter_email": address}) is None


def test_one_notification_per_type_report_and_fix_job():
    bug = str(uuid.uuid4())

    assert dedupe_key("fix_started", bug, {"fix_job_id": "a"}) != dedupe_key(
        "fix_started", bug, {"fix_job_id": "b"})
    assert dedupe_key("bug_received", bug, {}) == dedupe_key("bug_received", bug, {"x": 1})


@pytest.mark.parametrize("type_", TYPES)
def test_every_template_renders_with_missing_values_left_empty(type_):
    rendered = render(type_, {"title": "Search crashes"})

    assert rendered.subject and "$" not in rendered.subject + rendered.body
    assert rendered.body.endswith("\n")
