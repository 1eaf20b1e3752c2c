"""One bug report from intake to a finished fix, through `dramatiq actors` and PostgreSQL."""

from __future__ import annotations

from actors import analyze_codebase, process_bug_report
from actors.execute_fix import queue_fix
from actors.process_bug_report import receive
from tests.support import job_in, wait_for
from tests.support.fixtures import query
from tests.support.mail import smtp_server
from tests.support.pipeline import fixer, link_repo, make_repo, rows, sandbox_of

REPORT = """add() gives the wrong total

Steps to reproduce:
1. Call add(2, 2)

Expected: 4
Actual: 0

AssertionError: assert 0 == 4
  File "tests/test_app.py", line 5, in test_add
"""


def test_a_bug_report_goes_from_intake_to_a_finished_fix_with_every_notification(
    cli_worker, tmp_path
):
    with smtp_server() as inbox:
        worker = cli_worker("actors", threads=4, env={
            "JOBS_FIXER_COMMAND": fixer("fix_ok.py"), "JOBS_SMTP_URL": inbox.url,
            "JOBS_SMTP_TLS": "optional"})
        try:
            worker.wait_ready()
            link = link_repo(str(make_repo(tmp_path / "repo")))
            bug = receive(raw_text=REPORT, reporter_email="ada@example.com",
                          repo_link_id=link)

            job_in(process_bug_report.send(bug_report_id=bug).message_id, "done", timeout=20)
            job_in(analyze_codebase.send(repo_link_id=link, triggered_by="link").message_id,
                   "done", timeout=30)
            fix = queue_fix(bug)
            wait_for(lambda: rows("SELECT status FROM {schema}.fix_jobs")[0]["status"]
                     == "succeeded", timeout=60, what="the fix to succeed")
            wait_for(lambda: len(inbox.messages) == 3, timeout=30, what="three mails")
            wait_for(lambda: query("SELECT count(*) FROM {schema}.\"queue\" "
                                   "WHERE state <> 'done'")[0][0] == 0,
                     timeout=30, what="every job to finish")
        finally:
            worker.stop()

    (report,) = rows("SELECT * FROM {schema}.bug_reports")
    assert (report["status"], report["title"], report["error_type"]) == (
        "PARSED", "add() gives the wrong total", "AssertionError")
    assert report["steps_to_reproduce"] == ["Call add(2, 2)"]
    (knowledge,) = rows("SELECT * FROM {schema}.codebase_knowledge")
    assert knowledge["test_command"] == "python -m pytest"
    (fix_job,) = rows("SELECT * FROM {schema}.fix_jobs")
    assert (fix_job["id"], fix_job["attempts"], fix_job["test_outcome"]) == (fix, 1, "passed")
    assert "+    return a + b" in fix_job["patch"]
    assert fix_job["pr_url"].startswith("https://git.example/pulls/")
    assert not sandbox_of(fix).exists()
    assert sorted(n["type"] for n in rows(
        "SELECT type FROM {schema}.notifications WHERE status = 'sent'")) == [
        "bug_received", "fix_started", "pr_created"]
    assert sorted(m["Subject"].split(":")[0] for m in inbox.messages) == [
        "A fix is ready for review", "We are working on a fix", "We received your bug report"]
    jobs = dict(query("SELECT message->>'actor_name', count(*) FROM {schema}.\"queue\" "
                      "GROUP BY 1"))
    assert jobs == {"process_bug_report": 1, "analyze_codebase": 1, "execute_fix": 1,
                    "send_notification": 3, "cleanup_container": 1}
