"""sweep-sandboxes against PostgreSQL: what it removes is decided by the fix job's row."""

from __future__ import annotations

import json
import os
import time
import uuid

from actors import sweep_sandboxes
from actors.process_bug_report import receive
from tests.support import job_in
from tests.support.pipeline import link_repo, rows, sandbox_of


def old_sandbox(fix_job_id: str) -> None:
    root = sandbox_of(fix_job_id)
    (root / "work").mkdir(parents=True)
    then = time.time() - 3600
    os.utime(root, (then, then))


def fix_job_in(status: str, heartbeat: str | None) -> str:
    link = link_repo("/nonexistent")
    bug = receive(raw_text="x\nError: y", reporter_email=None, repo_link_id=link)
    knowledge = rows(
        "INSERT INTO {schema}.codebase_knowledge (repo_link_id, commit_sha, full_analysis,"
        " triggered_by, languages, manifests, layout) VALUES (%s, 'abc', true, 'link',"
        " '{}', '[]', '[]') RETURNING id", link)[0]["id"]
    return str(rows(
        "INSERT INTO {schema}.fix_jobs (bug_report_id, repo_link_id, codebase_knowledge_id,"
        " status, heartbeat_at) VALUES (%s, %s, %s, %s, " + (heartbeat or "NULL") + ")"
        " RETURNING id", bug, link, knowledge, status)[0]["id"])


def test_the_sweeper_removes_leftovers_of_finished_missing_and_silent_jobs_only(
        worker, configure):
    configure(sandbox={"sweep_after": 600.0})
    finished = fix_job_in("failed", None)
    silent = fix_job_in("running", "now() - interval '1 hour'")  # its worker is gone
    live = fix_job_in("running", "now()")
    missing = str(uuid.uuid4())
    for job in (finished, silent, live, missing):
        old_sandbox(job)

    result = json.loads(job_in(sweep_sandboxes.send().message_id, "done", timeout=20).result)

    assert sorted(result["sandboxes"]) == sorted([finished, silent, missing])
    assert result["kept"] == 1
    assert sandbox_of(live).exists()
    assert not any(sandbox_of(j).exists() for j in (finished, silent, missing))
