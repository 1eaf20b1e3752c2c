"""The five handlers doing their Phase 0 work against PostgreSQL and real workers."""

from __future__ import annotations

import json
import random
import threading
import uuid
from pathlib import Path

import pytest

from actors import (
    analyze_codebase,
    cleanup_container,
    execute_fix,
    process_bug_report,
    send_notification,
)
from actors.process_bug_report import receive
from tests.support import job_in, wait_for
from tests.support.environment import WORKSPACE
from tests.support.fixtures import query
from tests.support.pipeline import (
    fixer,
    git,
    link_repo,
    make_repo,
    new_fix_job,
    rows,
    sandbox_of,
)


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def jobs_of(actor_name: str) -> list:
    return query("SELECT message->'kwargs', state::text FROM {schema}.\"queue\" "
                 "WHERE message->>'actor_name' = %s", actor_name)


def report(bug_report_id: str) -> dict:
    return rows("SELECT * FROM {schema}.bug_reports WHERE id = %s", bug_report_id)[0]


# process-bug-report

def test_a_received_report_is_parsed_and_its_notification_enqueued(worker):
    bug = receive(raw_text="Search crashes\nTypeError: q is null",
                  reporter_email="ada@example.com")

    job_in(process_bug_report.send(bug_report_id=bug).message_id, "done")

    stored = report(bug)
    assert (stored["status"], stored["error_type"], stored["severity"]) == (
        "PARSED", "TypeError", "high")
    ((kwargs, _),) = jobs_of("send_notification")
    assert kwargs["type"] == "bug_received" and kwargs["bug_report_id"] == bug


def test_a_report_with_nothing_usable_is_invalid_with_a_reason_and_not_retried(worker):
    bug = receive(raw_text="   ", raw_payload={"title": ""}, reporter_email="ada@example.com")

    job = job_in(process_bug_report.send(bug_report_id=bug).message_id, "done")

    assert job.attempts == 1
    assert report(bug)["status"] == "INVALID"
    assert "no text and no form fields" in report(bug)["invalid_reason"]
    assert jobs_of("send_notification") == []


def test_a_missing_report_is_dead_at_once_and_changes_nothing(worker):
    job = job_in(process_bug_report.send(bug_report_id=str(uuid.uuid4())).message_id, "dead")

    assert job.attempts == 1
    assert job.last_error.startswith("MissingRecord: no bug report")
    assert jobs_of("send_notification") == []


def test_the_same_bug_reported_twice_is_linked_to_the_first(worker):
    first = receive(raw_text="Crash\nKeyError: 'user 17'")
    second = receive(raw_text="It broke again\nKeyError: 'user 902'")
    for bug in (first, second):
        job_in(process_bug_report.send(bug_report_id=bug).message_id, "done")

    assert report(second)["duplicate_of"] == first
    assert report(first)["duplicate_of"] is None


def test_processing_a_report_twice_parses_and_notifies_once(worker):
    bug = receive(raw_text="Login fails", reporter_email="ada@example.com")
    first = process_bug_report.send(bug_report_id=bug)
    job_in(first.message_id, "done")

    again = process_bug_report.send(bug_report_id=bug)

    assert job_in(again.message_id, "done").result == '{"status": "PARSED", "already": true}'
    assert len(jobs_of("send_notification")) == 1


# analyze-codebase

def test_a_full_analysis_records_languages_manifests_test_command_and_layout(worker, tmp_path):
    link = link_repo(str(make_repo(tmp_path / "repo")))

    job = job_in(analyze_codebase.send(repo_link_id=link, triggered_by="link").message_id,
                 "done", timeout=20)

    (known,) = rows("SELECT * FROM {schema}.codebase_knowledge")
    assert known["commit_sha"] == git(tmp_path / "repo", "rev-parse", "HEAD").strip()
    assert known["languages"] == {"Markdown": {"files": 1, "lines": 1},
                                  "Python": {"files": 2, "lines": 7}}
    assert known["manifests"] == ["pyproject.toml"]
    assert known["test_command"] == "python -m pytest"
    assert known["layout"] == ["README.md", "pyproject.toml", "src", "tests"]
    assert (known["full_analysis"], known["triggered_by"]) == (True, "link")
    assert str(known["id"]) in str(job.result)


def test_an_incremental_analysis_recounts_only_what_changed(worker, tmp_path):
    repo = make_repo(tmp_path / "repo")
    link = link_repo(str(repo))
    job_in(analyze_codebase.send(repo_link_id=link).message_id, "done", timeout=20)
    base = git(repo, "rev-parse", "HEAD").strip()
    (repo / "src" / "extra.py").write_text("x = 1\ny = 2\n")
    (repo / "README.md").unlink()
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "more")

    message = analyze_codebase.send_with_options(
        kwargs={"repo_link_id": link, "full_analysis": False, "triggered_by": "webhook"},
        singleton_key="incremental")  # its own key: the first analysis is still in its window
    job_in(message.message_id, "done", timeout=20)

    latest = rows("SELECT * FROM {schema}.codebase_knowledge ORDER BY analyzed_at DESC")[0]
    assert (latest["full_analysis"], latest["base_commit_sha"]) == (False, base)
    assert sorted(latest["changed_files"]) == ["README.md", "src/extra.py"]
    assert latest["languages"] == {"Python": {"files": 3, "lines": 9}}


def test_analysing_the_same_commit_twice_keeps_one_record(worker, tmp_path):
    link = link_repo(str(make_repo(tmp_path / "repo")))
    for key in ("first", "second"):  # distinct keys: both are meant to run
        message = analyze_codebase.send_with_options(kwargs={"repo_link_id": link},
                                                     singleton_key=key)
        job_in(message.message_id, "done", timeout=20)

    assert len(rows("SELECT id FROM {schema}.codebase_knowledge")) == 1


def test_concurrent_analyses_of_one_repository_make_one_job(broker):
    link = link_repo("/nowhere/repo")
    ids: list[str] = []
    barrier = threading.Barrier(6)

    def send() -> None:
        barrier.wait()
        ids.append(analyze_codebase.send(repo_link_id=link).message_id)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(ids)) == 1
    assert len(jobs_of("analyze_codebase")) == 1


def test_an_unreachable_repository_fails_with_gits_own_words(worker, tmp_path):
    link = link_repo(str(tmp_path / "missing"))
    message = analyze_codebase.send_with_options(kwargs={"repo_link_id": link}, max_retries=0)

    job = job_in(message.message_id, "dead", timeout=20)

    assert job.last_error.startswith("GitError: git fetch failed:")
    assert "does not appear to be a git repository" in job.last_error
    assert rows("SELECT * FROM {schema}.codebase_knowledge") == []


@pytest.mark.parametrize("url, branch", [
    ("{repo}", "--upload-pack=touch${{IFS}}{marker};git-upload-pack"),
    ("--upload-pack=touch {marker}", "main"),
    ("ext::sh -c touch% {marker}", "main"),
])
def test_a_link_row_written_by_another_producer_with_an_option_runs_nothing(
    worker, tmp_path, url, branch
):
    # The row skips link_repository's checks, as a row written by SQL would.
    marker = tmp_path / "PWNED"
    repo = make_repo(tmp_path / "repo")
    (link,) = rows("INSERT INTO {schema}.repo_links (url, branch) VALUES (%s, %s) RETURNING id",
                   url.format(repo=repo, marker=marker), branch.format(marker=marker))
    message = analyze_codebase.send(repo_link_id=str(link["id"]))

    job = job_in(message.message_id, "dead", timeout=20)

    assert job.last_error.startswith("UnsafeRepository:")
    assert job.attempts == 1  # refused for good, not retried
    assert not marker.exists()


# execute-fix and cleanup-container

@pytest.fixture
def fix_ready(worker, tmp_path):
    """A parsed report, an analysed repository and a fix job, queued."""
    repo = make_repo(tmp_path / "repo")
    link = link_repo(str(repo))
    bug = receive(raw_text="add() subtracts\nAssertionError: 0 != 4",
                  reporter_email="ada@example.com", repo_link_id=link)
    job_in(process_bug_report.send(bug_report_id=bug).message_id, "done")
    result = job_in(analyze_codebase.send(repo_link_id=link).message_id, "done", timeout=20)
    knowledge = rows("SELECT id FROM {schema}.codebase_knowledge")[0]["id"]
    assert result.state == "done"
    fix = new_fix_job(bug, link, str(knowledge))
    return {"fix_job_id": fix, "bug_report_id": bug, "repo_link_id": link,
            "codebase_knowledge_id": str(knowledge)}


def fix_job(fix_job_id: str) -> dict:
    return rows("SELECT * FROM {schema}.fix_jobs WHERE id = %s", fix_job_id)[0]


def steps(fix_job_id: str) -> list[str]:
    return [r["step"] for r in rows(
        "SELECT step FROM {schema}.fix_job_steps WHERE fix_job_id = %s ORDER BY id", fix_job_id)]


def notification_types() -> list[str]:
    return sorted(k["type"] for k, _ in jobs_of("send_notification"))


def test_a_fix_runs_in_a_sandbox_stores_its_patch_and_cleans_up(fix_ready, configure):
    configure(fixer_command=fixer("fix_ok.py"))

    job = job_in(execute_fix.send(**fix_ready).message_id, "done", timeout=30)

    stored = fix_job(fix_ready["fix_job_id"])
    assert stored["status"] == "succeeded" and stored["test_outcome"] == "passed"
    assert "-    return a - b\n+    return a + b" in stored["patch"]
    assert "+fixed add()" in stored["patch"]  # new files are in the patch too
    assert "fixed src/app.py" in stored["logs"]
    assert stored["pr_url"].startswith("https://git.example/pulls/")
    assert steps(fix_ready["fix_job_id"]) == ["preparing", "running", "succeeded"]
    assert '"succeeded"' in str(job.result)
    assert notification_types() == ["bug_received", "fix_started", "pr_created"]
    ((cleanup_kwargs, _),) = jobs_of("cleanup_container")
    wait_for(lambda: not sandbox_of(fix_ready["fix_job_id"]).exists(), timeout=10,
             what="the sandbox to be cleaned up")
    assert cleanup_kwargs == {"container_id": f"pts-fix-{fix_ready['fix_job_id']}",
                              "fix_job_id": fix_ready["fix_job_id"]}


def test_a_crashing_fixer_is_retried_then_failed_with_fix_failed_sent_and_no_sandbox_left(
    fix_ready, configure
):
    configure(fixer_command=fixer("fix_crash.py"))

    message = execute_fix.send_with_options(kwargs=fix_ready, max_retries=1)
    job = job_in(message.message_id, "dead", timeout=30)

    stored = fix_job(fix_ready["fix_job_id"])
    assert (stored["status"], stored["attempts"], job.attempts) == ("failed", 2, 2)
    assert "fixer crashed: model unavailable" in stored["error"]
    assert steps(fix_ready["fix_job_id"]) == ["preparing", "running", "failed"] * 2
    assert notification_types() == ["bug_received", "fix_failed", "fix_started"]
    wait_for(lambda: not sandbox_of(fix_ready["fix_job_id"]).exists(), timeout=10,
             what="the sandbox to be cleaned up")


def processes_with(needle: str) -> list[int]:
    return [int(p.name) for p in Path("/proc").glob("[0-9]*")
            if _argv(p).count(needle.encode()) and running(int(p.name))]


def _argv(proc: Path) -> list[bytes]:
    try:
        return (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def test_a_hanging_fixer_is_killed_with_its_children_at_the_time_limit(fix_ready, configure):
    seconds = f"{300 + random.random():.6f}"
    configure(fixer_command=fixer("fix_hang.sh"),
              sandbox={"extra_env": (("HANG_SECONDS", seconds),)})

    message = execute_fix.send_with_options(kwargs=fix_ready, max_retries=0, time_limit=3000)
    wait_for(lambda: processes_with(seconds), timeout=10, what="the fixer's sleeps")
    job = job_in(message.message_id, "dead", timeout=30)

    assert "FixFailed: fixer stopped at its time limit" in job.last_error
    wait_for(lambda: not processes_with(seconds), timeout=5, what="every sleep to end")
    assert fix_job(fix_ready["fix_job_id"])["status"] == "failed"
    assert notification_types() == ["bug_received", "fix_failed", "fix_started"]


def test_a_retry_replaces_its_sandbox_instead_of_leaking_one(fix_ready, configure):
    configure(fixer_command=fixer("fix_crash.py"))
    job_in(execute_fix.send_with_options(kwargs=fix_ready, max_retries=2).message_id, "dead",
           timeout=30)

    sandbox = sandbox_of(fix_ready["fix_job_id"])
    wait_for(lambda: not sandbox.exists(), timeout=10, what="the final cleanup")
    # Three attempts, one sandbox path; nothing else of this job's is left.
    assert {r["detail"].split()[1] for r in rows(
        "SELECT detail FROM {schema}.fix_job_steps WHERE step = 'preparing'")} == {str(sandbox)}
    assert not [p for p in (WORKSPACE / "sandboxes").iterdir()
                if p.name.startswith(fix_ready["fix_job_id"])]


def test_a_fix_job_that_already_succeeded_is_not_run_again(fix_ready, configure):
    configure(fixer_command=fixer("fix_ok.py"))
    job_in(execute_fix.send(**fix_ready).message_id, "done", timeout=30)

    again = execute_fix.send(**fix_ready)

    assert job_in(again.message_id, "done").result == '{"status": "succeeded", "already": true}'
    assert fix_job(fix_ready["fix_job_id"])["attempts"] == 1


def test_cleaning_up_a_sandbox_twice_succeeds_twice(worker):
    fix = str(uuid.uuid4())
    sandbox = sandbox_of(fix)
    (sandbox / "work").mkdir(parents=True)

    first = cleanup_container.send(container_id=f"pts-fix-{fix}", fix_job_id=fix)
    assert json.loads(job_in(first.message_id, "done").result) == {
        "fix_job_id": fix, "containers": [], "sandbox_removed": True}
    second = cleanup_container.send(container_id=f"pts-fix-{fix}", fix_job_id=fix)
    assert json.loads(job_in(second.message_id, "done").result) == {
        "fix_job_id": fix, "containers": [], "sandbox_removed": False}
    assert not sandbox.exists()


def test_cleanup_never_removes_a_path_named_in_its_payload(worker, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    other = str(uuid.uuid4())
    (sandbox_of(other) / "work").mkdir(parents=True)  # another fix job's sandbox

    for named in (str(precious), str(sandbox_of(other)), "../../..", "/"):
        message = cleanup_container.send(container_id=named, fix_job_id=str(uuid.uuid4()))
        assert job_in(message.message_id, "done").state == "done"

    assert precious.exists() and sandbox_of(other).exists()


# send-notification

def test_a_recipient_that_is_not_an_address_is_refused_at_send(broker):
    from actors.base import InvalidPayload

    with pytest.raises(InvalidPayload, match="recipient_email"):
        send_notification.send(type="fix_started", bug_report_id=str(uuid.uuid4()),
                               recipient_email="ada at example dot com")
    assert jobs_of("send_notification") == []
