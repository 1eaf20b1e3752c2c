"""execute-fix through real workers with the container runtime: a fix, a hostile
report, and a worker SIGKILLed in the middle of a fix."""

from __future__ import annotations

import random
import signal

import pytest

from actors import analyze_codebase, execute_fix, process_bug_report
from actors.process_bug_report import receive
from pipeline.sandbox.container import LABEL_ATTEMPT, LABEL_JOB
from tests.support import job_in, wait_for
from tests.support.fixtures import query
from tests.support.pipeline import link_repo, make_repo, new_fix_job, rows, sandbox_of
from tests.support.sandbox import IMAGE_FIXERS, processes_with


@pytest.fixture
def fix_ready(broker, tmp_path):
    """A bug report on a linked repository."""
    link = link_repo(str(make_repo(tmp_path / "repo")))
    bug = receive(raw_text="add() subtracts\nAssertionError: 0 != 4",
                  reporter_email="ada@example.com", repo_link_id=link)
    return {"link": link, "bug": bug}


def analysed(fix_ready) -> dict:
    job_in(process_bug_report.send(bug_report_id=fix_ready["bug"]).message_id, "done",
           timeout=20)
    job_in(analyze_codebase.send(repo_link_id=fix_ready["link"]).message_id, "done", timeout=30)
    knowledge = str(rows("SELECT id FROM {schema}.codebase_knowledge")[0]["id"])
    fix = new_fix_job(fix_ready["bug"], fix_ready["link"], knowledge)
    return {"fix_job_id": fix, "bug_report_id": fix_ready["bug"],
            "repo_link_id": fix_ready["link"], "codebase_knowledge_id": knowledge}


def fix_job(fix_job_id: str) -> dict:
    return rows("SELECT * FROM {schema}.fix_jobs WHERE id = %s", fix_job_id)[0]


def notifications() -> list[str]:
    return sorted(r[0] for r in query("SELECT message->'kwargs'->>'type' FROM {schema}.\"queue\""
                                      " WHERE message->>'actor_name' = 'send_notification'"))


def containers_of(docker, fix_job_id: str) -> list[dict]:
    return docker.api.containers(all=True, filters={"label": f"{LABEL_JOB}={fix_job_id}"})


def test_a_fix_runs_in_a_container_and_leaves_nothing_behind(
        fix_ready, worker, configure, docker, fixer_image):
    configure(fixer_command=f"python3 {IMAGE_FIXERS}/fix_ok.py",
              sandbox={"runtime": "docker", "image": fixer_image})
    payload = analysed(fix_ready)

    job_in(execute_fix.send(**payload).message_id, "done", timeout=60)

    stored = fix_job(payload["fix_job_id"])
    assert stored["status"] == "succeeded" and stored["test_outcome"] == "passed"
    assert "+    return a + b" in stored["patch"]
    assert notifications() == ["bug_received", "fix_started", "pr_created"]
    wait_for(lambda: not sandbox_of(payload["fix_job_id"]).exists(), timeout=20,
             what="the sandbox to be cleaned up")
    assert containers_of(docker, payload["fix_job_id"]) == []


def test_a_hostile_report_ends_the_fix_failed_with_fix_failed_sent_and_its_sandbox_cleaned(
        fix_ready, worker, configure, docker, fixer_image):
    configure(fixer_command=f"python3 {IMAGE_FIXERS}/attacks/bad_report.py",
              sandbox={"runtime": "docker", "image": fixer_image})
    payload = analysed(fix_ready)

    job = job_in(execute_fix.send_with_options(kwargs=payload, max_retries=0).message_id,
                 "dead", timeout=60)

    stored = fix_job(payload["fix_job_id"])
    assert stored["status"] == "failed" and stored["finished_at"] is not None
    assert "fixer reported no pull request (pr_url is longer than 500" in stored["error"]
    assert "nul \ufffd and \ufffd bytes" in stored["logs"]
    assert "FixFailed" in job.last_error
    assert notifications() == ["bug_received", "fix_failed", "fix_started"]
    wait_for(lambda: not sandbox_of(payload["fix_job_id"]).exists(), timeout=20,
             what="the sandbox to be cleaned up")


def test_a_worker_sigkilled_mid_fix_leaves_a_container_the_next_attempt_removes_first(
        fix_ready, cli_worker, docker, fixer_image):
    marker = f"{900 + random.random():.6f}"
    env = {"JOBS_SANDBOX__RUNTIME": "docker", "JOBS_SANDBOX__IMAGE": fixer_image,
           "JOBS_FIXER_COMMAND": f"python3 {IMAGE_FIXERS}/attacks/sleep_forever.py {marker}"}
    first = cli_worker("actors", threads=2, env=env)
    first.wait_ready()
    payload = analysed(fix_ready)
    execute_fix.send_with_options(kwargs=payload, max_retries=0, time_limit=8000)
    fix = payload["fix_job_id"]
    wait_for(lambda: processes_with(marker), timeout=30, what="the first attempt's fixer")

    first.signal(signal.SIGKILL)
    first.proc.wait()
    # The engine may still say "created" an instant after the fixer's process runs.
    (left,) = wait_for(lambda: [c for c in containers_of(docker, fix) if c["State"] == "running"],
                       timeout=10, what="the engine to report the container running")
    assert left["Labels"][LABEL_ATTEMPT] == "1"

    second = cli_worker("actors", threads=2, env=env)
    second.wait_ready()
    # Once the second attempt's container exists, the first one's is already gone.
    wait_for(lambda: any(c["Labels"][LABEL_ATTEMPT] == "2" for c in containers_of(docker, fix)),
             timeout=30, what="the second attempt's container")
    assert [c["Labels"][LABEL_ATTEMPT] for c in containers_of(docker, fix)] == ["2"]
    wait_for(lambda: fix_job(fix)["status"] == "failed", timeout=30,
             what="the second attempt to stop at its time limit")
    wait_for(lambda: not containers_of(docker, fix) and not sandbox_of(fix).exists(),
             timeout=20, what="the final cleanup")
    assert not processes_with(marker)
    assert "time limit" in fix_job(fix)["error"]
