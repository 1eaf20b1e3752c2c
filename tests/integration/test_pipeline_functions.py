"""Pipeline functions called directly on the real tables, each test in a transaction
of its own that is rolled back (``rollback_db``): no worker, nothing left behind."""

from __future__ import annotations

import pytest

from actors import runtime
from pipeline import bug_reports, fixes
from pipeline.codebase import link_repository
from pipeline.errors import MissingRecord

CRASH = "Search crashes\nTypeError: q is null"


def test_a_second_report_of_the_same_crash_is_linked_to_the_first(rollback_db):
    first = bug_reports.receive(rollback_db, raw_text=CRASH, reporter_email="ada@example.com")
    second = bug_reports.receive(rollback_db, raw_text=CRASH)

    with rollback_db.transaction() as tx:
        told = bug_reports.process(tx, first)
        duplicate = bug_reports.process(tx, second)
        again = bug_reports.process(tx, first)

    assert told.result["duplicate_of"] is None and told.notice is not None
    assert duplicate.result["duplicate_of"] == first and duplicate.notice is None
    assert again.result == {"status": "PARSED", "already": True} and again.notice is None


def test_a_fix_job_needs_a_report_with_an_analysed_repository(rollback_db):
    link = link_repository(rollback_db, runtime.current().pipeline, "/nowhere")
    bug = bug_reports.receive(rollback_db, raw_text=CRASH, repo_link_id=link)

    with pytest.raises(MissingRecord, match="never analysed"), rollback_db.transaction() as tx:
        fixes.create_fix_job(tx, bug)
    with pytest.raises(MissingRecord, match="no repository"), rollback_db.transaction() as tx:
        fixes.create_fix_job(tx, bug_reports.receive(rollback_db, raw_text=CRASH))
