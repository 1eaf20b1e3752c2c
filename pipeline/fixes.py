"""execute-fix's work: a fix job as a state machine, and its sandbox.

queued -> preparing -> running -> succeeded, or back to queued for a retry,
or failed after the last one. Each step goes to ``fix_job_steps``; while the
fixer runs, a heartbeat updates ``heartbeat_at``.

The sandbox is a directory of the fix job's own,
``JOBS_WORKSPACE_DIR/sandboxes/<fix job id>``, holding an isolated checkout of
the repository at the analysed commit (``checkout/``) and the files exchanged
with the fixer: a retry replaces it rather than leaking another, and
cleanup-container removes all of it. The fixer (``JOBS_FIXER_COMMAND``, later the AI agent)
runs inside it under the job's time limit, its whole process tree killed at the
limit. It may write a JSON report to ``$FIX_REPORT``: ``{"pr_url": ...,
"tests": "passed" | "failed" | "not_run", "summary": ...}``. The patch is the
sandbox's ``git diff`` against the analysed commit.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import threading
from pathlib import Path
from typing import Any

from actors.commands import run_command

from . import db
from .bug_reports import MissingRecord
from .codebase import git, sync_repository

logger = logging.getLogger(__name__)
LOG_LIMIT = 200_000  # characters of fixer output kept


class FixFailed(RuntimeError):
    """The fixer ran and did not succeed (retried)."""


def sandbox_path(fix_job_id: str) -> Path:
    from settings import settings

    return (settings.workspace_dir / "sandboxes" / str(fix_job_id)).resolve()


def queue_fix(bug_report_id: str) -> str:
    """Create a fix job for a parsed report and enqueue execute-fix, in one transaction.

    Uses the latest analysis of the report's repository. Returns the fix job's id.

    Raises:
        MissingRecord: no such report, it has no repository, or that was never analysed.
    """
    from actors.execute_fix import execute_fix

    with db.transaction() as cur:
        cur.execute(db.query("bug_report_get"), {"id": bug_report_id})
        report = cur.fetchone()
        if report is None or report["repo_link_id"] is None:
            raise MissingRecord(f"bug report {bug_report_id} is missing or has no repository")
        cur.execute(db.query("knowledge_latest"), {"repo_link_id": report["repo_link_id"]})
        knowledge = cur.fetchone()
        if knowledge is None:
            raise MissingRecord(f"repository {report['repo_link_id']} was never analysed")
        cur.execute(db.query("fix_job_insert"), {
            "bug_report_id": bug_report_id, "repo_link_id": report["repo_link_id"],
            "codebase_knowledge_id": knowledge["id"]})
        fix_job_id = str(cur.fetchone()["id"])
        execute_fix.send_in_transaction(
            cur.connection, fix_job_id=fix_job_id, bug_report_id=bug_report_id,
            repo_link_id=str(report["repo_link_id"]),
            codebase_knowledge_id=str(knowledge["id"]))
    return fix_job_id


def execute(fix_job_id: str, *, final_attempt: bool) -> dict[str, Any]:
    """Run one attempt of the fix job. Idempotent once the job succeeded.

    On failure the job goes back to ``queued`` for its retry, or, on the final
    attempt, to ``failed`` with ``fix_failed`` sent and its sandbox cleaned up.

    Raises:
        MissingRecord: the fix job, its report, repository or analysis is missing.
        FixFailed, GitError, TimeLimitExceeded: the attempt failed.
    """
    from actors.cleanup_container import cleanup_container
    from actors.send_notification import send_notification
    from settings import settings

    job, report, link, knowledge = _load(fix_job_id)
    if job["status"] == "succeeded":
        return {"status": "succeeded", "already": True}
    sandbox = sandbox_path(fix_job_id)
    attempt = db.fetch_one("fix_job_prepare", id=fix_job_id, sandbox_path=str(sandbox))
    number = attempt["attempts"] if attempt else 1
    step = _StepLog(fix_job_id, number)
    recipient = report["reporter_email"]
    if recipient and number == 1:  # (delivery is deduplicated too, should this repeat)
        _notify_in_transaction(send_notification, "fix_started", report, fix_job_id, {})

    heartbeat = _Heartbeat(fix_job_id, settings.heartbeat_interval.total_seconds())
    logs = ""
    try:
        step("preparing", f"sandbox {sandbox} at {knowledge['commit_sha'][:12]}")
        # This worker may not have analysed the repository: fetch it if needed.
        cache = sync_repository(settings.workspace_dir / "repos" / str(link["id"]),
                                link["url"], link["branch"])
        checkout = prepare_sandbox(sandbox, cache, knowledge["commit_sha"])
        db.run("fix_job_running", id=fix_job_id)
        heartbeat.start()
        step("running", settings.fixer_command or "(no fixer configured)")
        outcome, logs = run_fixer(sandbox, checkout, settings.fixer_command, fix_job_id, report)
        heartbeat.stop()
        patch = diff(checkout, knowledge["commit_sha"])
        step("succeeded", f"patch of {len(patch.splitlines())} lines; tests {outcome['tests']}")
    except BaseException as error:  # the time limit too: it ends this attempt
        heartbeat.stop()
        reason = f"{type(error).__name__}: {error}"
        step("failed", reason)
        _attempt_failed(fix_job_id, report, reason, logs or getattr(error, "logs", ""),
                        final=final_attempt, sandbox=sandbox)
        raise
    with db.transaction() as cur:
        cur.execute(db.query("fix_job_succeeded"), {
            "id": fix_job_id, "patch": patch, "logs": logs, "pr_url": outcome.get("pr_url"),
            "test_outcome": outcome["tests"],
        })
        # The same transaction enqueues what follows the fix, so neither is lost.
        cleanup_container.send_in_transaction(cur.connection, container_id=str(sandbox),
                                               fix_job_id=fix_job_id)
        if recipient and outcome.get("pr_url"):
            send_notification.send_in_transaction(
                cur.connection, type="pr_created", bug_report_id=str(report["id"]),
                recipient_email=recipient,
                data={"fix_job_id": fix_job_id, "pr_url": outcome["pr_url"]})
    return {"status": "succeeded", "pr_url": outcome.get("pr_url"), "tests": outcome["tests"]}


def prepare_sandbox(sandbox: Path, cache: Path, commit: str) -> Path:
    """A fresh sandbox with a checkout of ``commit``, replacing any earlier one.

    Returns the checkout's path.
    """
    remove_sandbox(sandbox)
    sandbox.mkdir(parents=True)
    checkout = sandbox / "checkout"
    git(sandbox, "clone", "--quiet", "--shared", "--no-checkout", str(cache), str(checkout))
    git(checkout, "checkout", "--quiet", "--detach", commit)
    return checkout


def remove_sandbox(sandbox: Path | str) -> bool:
    """Delete a sandbox; True if there was one. Refuses paths outside the workspace."""
    from settings import settings

    root = (settings.workspace_dir / "sandboxes").resolve()
    target = Path(sandbox).resolve()
    if root not in target.parents:
        raise ValueError(f"{sandbox} is not a sandbox under {root}")
    if not target.exists():
        return False
    shutil.rmtree(target)
    return True


def run_fixer(sandbox: Path, checkout: Path, command: str | None, fix_job_id: str,
              report: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Run the fixer in ``checkout``; returns its report and its output.

    The fixer gets ``FIX_JOB_ID``, ``BUG_REPORT_JSON`` (the parsed report),
    ``FIX_REPORT`` (where to write its own) and ``SANDBOX`` (the checkout).
    """
    if not command:
        raise FixFailed("no fixer configured (set JOBS_FIXER_COMMAND)")
    report_path = sandbox / "report.json"
    bug_path = sandbox / "bug.json"
    bug_path.write_text(json.dumps(report, default=str))
    env = {**os.environ, "FIX_JOB_ID": fix_job_id, "FIX_REPORT": str(report_path),
           "BUG_REPORT_JSON": str(bug_path), "SANDBOX": str(checkout)}
    result = run_command(shlex.split(command), cwd=checkout, env=env)  # job's time limit
    logs = (result.stdout + result.stderr)[-LOG_LIMIT:]
    outcome: dict[str, Any] = {}
    if report_path.exists():
        try:
            outcome = json.loads(report_path.read_text())
        except ValueError:
            logs += "\n(fixer report is not valid JSON)"
    if result.returncode != 0:
        error = FixFailed(f"fixer exited with {result.returncode}: {result.stderr.strip()[-500:]}")
        error.logs = logs  # type: ignore[attr-defined]
        raise error
    tests = outcome.get("tests") if outcome.get("tests") in ("passed", "failed") else "not_run"
    return {"pr_url": outcome.get("pr_url"), "tests": tests}, logs


def diff(checkout: Path, commit: str) -> str:
    """Everything the fixer changed, new files included, as one patch."""
    git(checkout, "add", "--all")
    return git(checkout, "diff", "--cached", commit)


def _load(fix_job_id: str) -> tuple[dict, dict, dict, dict]:
    job = db.fetch_one("fix_job_get", id=fix_job_id)
    if job is None:
        raise MissingRecord(f"no fix job {fix_job_id}")
    report = db.fetch_one("bug_report_get", id=job["bug_report_id"])
    link = db.fetch_one("repo_link_get", id=job["repo_link_id"])
    knowledge = db.fetch_one("knowledge_get", id=job["codebase_knowledge_id"])
    if report is None or link is None or knowledge is None:
        raise MissingRecord(f"fix job {fix_job_id} names a row that does not exist")
    return job, report, link, knowledge


def _attempt_failed(fix_job_id: str, report: dict, reason: str, logs: str, *, final: bool,
                    sandbox: Path) -> None:
    from actors.cleanup_container import cleanup_container
    from actors.send_notification import send_notification

    with db.transaction() as cur:
        cur.execute(db.query("fix_job_attempt_failed"), {
            "id": fix_job_id, "error": reason[:2000], "logs": logs, "final": final})
        if final:
            cleanup_container.send_in_transaction(cur.connection, container_id=str(sandbox),
                                                   fix_job_id=fix_job_id)
            if report["reporter_email"]:
                send_notification.send_in_transaction(
                    cur.connection, type="fix_failed", bug_report_id=str(report["id"]),
                    recipient_email=report["reporter_email"],
                    data={"fix_job_id": fix_job_id, "error": reason[:500]})


def _notify_in_transaction(actor: Any, type_: str, report: dict, fix_job_id: str,
                           data: dict) -> None:
    with db.transaction() as cur:
        actor.send_in_transaction(cur.connection, type=type_, bug_report_id=str(report["id"]),
                                  recipient_email=report["reporter_email"],
                                  data={"fix_job_id": fix_job_id, **data})


class _StepLog:
    def __init__(self, fix_job_id: str, attempt: int) -> None:
        self.fix_job_id, self.attempt = fix_job_id, attempt

    def __call__(self, step: str, detail: str | None = None) -> None:
        logger.info("fix job %s attempt %d: %s %s", self.fix_job_id, self.attempt, step,
                    detail or "")
        db.run("fix_job_step", id=self.fix_job_id, attempt=self.attempt, step=step,
               detail=detail)


class _Heartbeat:
    """Updates the fix job's heartbeat_at while the fixer runs."""

    def __init__(self, fix_job_id: str, interval: float) -> None:
        self.fix_job_id, self.interval = fix_job_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fix-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                db.run("fix_job_heartbeat", id=self.fix_job_id)
            except Exception:
                logger.warning("fix job %s: heartbeat failed", self.fix_job_id, exc_info=True)
