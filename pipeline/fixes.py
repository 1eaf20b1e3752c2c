"""execute-fix's work: a fix job as a state machine, and its sandbox.

queued -> preparing -> running -> succeeded, or back to queued for a retry,
or failed after the last one. Each step goes to ``fix_job_steps``; while the
fixer runs, a heartbeat updates ``heartbeat_at``.

The sandbox is a directory of the fix job's own,
``<workspace>/sandboxes/<fix job id>``, holding an isolated checkout of
the repository at the analysed commit (``checkout/``) and the files exchanged
with the fixer: a retry replaces it rather than leaking another, and
cleanup-container removes all of it. The fixer (the configured fixer command,
later the AI agent) runs inside it under the job's time limit, its whole process
tree killed at the limit. It may write a JSON report to ``$FIX_REPORT``: ``{"pr_url": ...,
"tests": "passed" | "failed" | "not_run", "summary": ...}``. The patch is the
sandbox's ``git diff`` against the analysed commit.

The actor owns the transactions that end an attempt and sends what follows
(cleanup-container, notifications); these functions say what to send.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import repository
from .codebase import cache_path
from .commands import run_command
from .config import PipelineConfig
from .db import Database, Row, Transaction
from .errors import MissingRecord
from .git import Git
from .notifications import Notice, notice_for

logger = logging.getLogger(__name__)
LOG_LIMIT = 200_000  # characters of fixer output kept


class FixFailed(RuntimeError):
    """The fixer ran and did not succeed (retried)."""


@dataclass(frozen=True)
class Attempt:
    """One attempt of a fix job, begun: the rows it works from and its sandbox."""

    fix_job_id: str
    number: int
    report: Row
    link: Row
    knowledge: Row
    sandbox: Path

    def notice(self, type_: str, **data: Any) -> Notice | None:
        """Notification ``type_`` about this fix for the reporter, if there is one."""
        return notice_for(type_, self.report, fix_job_id=self.fix_job_id, **data)


@dataclass(frozen=True)
class Fixed:
    """What a successful attempt produced."""

    patch: str
    logs: str
    pr_url: str | None
    tests: str


def sandbox_path(config: PipelineConfig, fix_job_id: str) -> Path:
    return config.sandboxes_dir / str(fix_job_id)


def create_fix_job(tx: Transaction, bug_report_id: str) -> dict[str, str]:
    """Create a fix job for a parsed report, from its repository's latest analysis.

    Returns the execute-fix payload of the new job.

    Raises:
        MissingRecord: no such report, it has no repository, or that was never analysed.
    """
    report = tx.one("bug_report_get", id=bug_report_id)
    if report is None or report["repo_link_id"] is None:
        raise MissingRecord(f"bug report {bug_report_id} is missing or has no repository")
    knowledge = tx.one("knowledge_latest", repo_link_id=report["repo_link_id"])
    if knowledge is None:
        raise MissingRecord(f"repository {report['repo_link_id']} was never analysed")
    row = tx.one("fix_job_insert", bug_report_id=bug_report_id,
                 repo_link_id=report["repo_link_id"], codebase_knowledge_id=knowledge["id"])
    assert row is not None
    return {"fix_job_id": str(row["id"]), "bug_report_id": bug_report_id,
            "repo_link_id": str(report["repo_link_id"]),
            "codebase_knowledge_id": str(knowledge["id"])}


def begin_attempt(db: Database, config: PipelineConfig, fix_job_id: str) -> Attempt | None:
    """Count a new attempt of the fix job; None if the job already succeeded.

    Raises:
        MissingRecord: the fix job, its report, repository or analysis is missing.
    """
    job, report, link, knowledge = _load(db, fix_job_id)
    if job["status"] == "succeeded":
        return None
    sandbox = sandbox_path(config, fix_job_id)
    row = db.one("fix_job_prepare", id=fix_job_id, sandbox_path=str(sandbox))
    return Attempt(fix_job_id, row["attempts"] if row else 1, report, link, knowledge, sandbox)


def run_attempt(db: Database, config: PipelineConfig, attempt: Attempt) -> Fixed:
    """Prepare the sandbox, run the fixer in it and take its patch.

    Each step is logged in ``fix_job_steps``. An exception (the job's time limit
    too) is logged as the ``failed`` step and raised with the fixer's output,
    if any, as its ``logs`` attribute.

    Raises:
        FixFailed, GitError, TimeLimitExceeded: the attempt failed.
    """
    fix_job_id, knowledge = attempt.fix_job_id, attempt.knowledge
    step = _StepLog(db, fix_job_id, attempt.number)
    heartbeat = _Heartbeat(db, fix_job_id, config.heartbeat_interval)
    git = config.git
    logs = ""
    try:
        step("preparing", f"sandbox {attempt.sandbox} at {knowledge['commit_sha'][:12]}")
        # This worker may not have analysed the repository: fetch it if needed.
        cache = cache_path(config, str(attempt.link["id"]))
        repository.sync(git, cache, attempt.link["url"], attempt.link["branch"],
                        config.read_limits)
        checkout = prepare_sandbox(git, config, attempt.sandbox, cache, knowledge["commit_sha"])
        db.execute("fix_job_running", id=fix_job_id)
        heartbeat.start()
        step("running", config.fixer_command or "(no fixer configured)")
        outcome, logs = run_fixer(attempt.sandbox, checkout, config.fixer_command, fix_job_id,
                                  attempt.report)
        heartbeat.stop()
        patch = diff(git, checkout, knowledge["commit_sha"])
        step("succeeded", f"patch of {len(patch.splitlines())} lines; tests {outcome['tests']}")
    except BaseException as error:  # the time limit too: it ends this attempt
        heartbeat.stop()
        step("failed", failure_reason(error))
        if logs and not getattr(error, "logs", ""):
            error.logs = logs  # type: ignore[attr-defined]
        raise
    return Fixed(patch=patch, logs=logs, pr_url=outcome.get("pr_url"), tests=outcome["tests"])


def failure_reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def record_success(tx: Transaction, attempt: Attempt, fixed: Fixed) -> Notice | None:
    """Mark the fix job succeeded; returns pr_created to send, when there is a PR."""
    tx.execute("fix_job_succeeded", id=attempt.fix_job_id, patch=fixed.patch, logs=fixed.logs,
               pr_url=fixed.pr_url, test_outcome=fixed.tests)
    if not fixed.pr_url:
        return None
    return attempt.notice("pr_created", pr_url=fixed.pr_url)


def record_failure(tx: Transaction, attempt: Attempt, error: BaseException, *,
                   final: bool) -> Notice | None:
    """Mark the attempt failed: queued for its retry, or failed after the final one.

    Returns fix_failed to send after the final attempt.
    """
    reason = failure_reason(error)
    tx.execute("fix_job_attempt_failed", id=attempt.fix_job_id, error=reason[:2000],
               logs=getattr(error, "logs", ""), final=final)
    return attempt.notice("fix_failed", error=reason[:500]) if final else None


def prepare_sandbox(git: Git, config: PipelineConfig, sandbox: Path, cache: Path,
                    commit: str) -> Path:
    """A fresh sandbox with a checkout of ``commit``, replacing any earlier one.

    Returns the checkout's path.
    """
    remove_sandbox(config, sandbox)
    sandbox.mkdir(parents=True)
    checkout = sandbox / "checkout"
    local = git.local()
    local.run(sandbox, "clone", "--quiet", "--shared", "--no-checkout", "--", str(cache),
              str(checkout))
    local.run(checkout, "checkout", "--quiet", "--detach", commit)
    return checkout


def remove_sandbox(config: PipelineConfig, sandbox: Path | str) -> bool:
    """Delete a sandbox; True if there was one.

    Raises:
        ValueError: ``sandbox`` is not inside the workspace's sandboxes directory.
    """
    root = config.sandboxes_dir
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


def diff(git: Git, checkout: Path, commit: str) -> str:
    """Everything the fixer changed, new files included, as one patch."""
    git.run(checkout, "add", "--all")
    patch = git.run(checkout, "diff", "--cached", "--no-ext-diff", "--no-textconv", commit)
    return patch.decode("utf-8", errors="replace")


def _load(db: Database, fix_job_id: str) -> tuple[Row, Row, Row, Row]:
    job = db.one("fix_job_get", id=fix_job_id)
    if job is None:
        raise MissingRecord(f"no fix job {fix_job_id}")
    report = db.one("bug_report_get", id=job["bug_report_id"])
    link = db.one("repo_link_get", id=job["repo_link_id"])
    knowledge = db.one("knowledge_get", id=job["codebase_knowledge_id"])
    if report is None or link is None or knowledge is None:
        raise MissingRecord(f"fix job {fix_job_id} names a row that does not exist")
    return job, report, link, knowledge


class _StepLog:
    def __init__(self, db: Database, fix_job_id: str, attempt: int) -> None:
        self.db, self.fix_job_id, self.attempt = db, fix_job_id, attempt

    def __call__(self, step: str, detail: str | None = None) -> None:
        logger.info("fix job %s attempt %d: %s %s", self.fix_job_id, self.attempt, step,
                    detail or "")
        self.db.execute("fix_job_step", id=self.fix_job_id, attempt=self.attempt, step=step,
                        detail=detail)


class _Heartbeat:
    """Updates the fix job's heartbeat_at while the fixer runs."""

    def __init__(self, db: Database, fix_job_id: str, interval: float) -> None:
        self.db, self.fix_job_id, self.interval = db, fix_job_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fix-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.db.execute("fix_job_heartbeat", id=self.fix_job_id)
            except Exception:
                logger.warning("fix job %s: heartbeat failed", self.fix_job_id, exc_info=True)
