"""execute-fix's work: a fix job as a state machine, and its sandbox.

queued -> preparing -> running -> succeeded, or back to queued for a retry,
or failed after the last one. Each step goes to ``fix_job_steps``; while the
fixer runs, a heartbeat updates ``heartbeat_at``.

The fixer is untrusted code: it runs in ``pipeline.sandbox`` (a locked-down
container per attempt, or the restricted process runtime), in a directory of
the fix job's own, ``<workspace>/sandboxes/<fix job id>``, which a retry
replaces and cleanup-container removes, both found from the fix job id. It
may write a JSON report to ``$FIX_REPORT``: ``{"pr_url": "https://...",
"tests": "passed" | "failed" | "not_run", "summary": ...}``, checked field by
field. The patch is taken by the worker from a copy of the commit the fixer
never wrote to.

The actor owns the transactions that end an attempt and sends what follows
(cleanup-container, notifications); these functions say what to send.
"""

from __future__ import annotations

import logging
import shlex
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from . import repository
from .codebase import cache_path
from .commands import seconds_left
from .config import PipelineConfig
from .db import Database, Row, Transaction
from .errors import MissingRecord
from .notifications import Notice, notice_for
from .sandbox import Runtime as SandboxRuntime
from .sandbox import SandboxLayout
from .sandbox import attempt as sandbox_attempt
from .sandbox.report import clean_text
from .sandbox.sweeper import JobState

logger = logging.getLogger(__name__)


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
    return SandboxLayout.of(config.sandbox.sandboxes_dir, fix_job_id).root


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


def run_attempt(db: Database, config: PipelineConfig, attempt: Attempt,
                sandbox: SandboxRuntime) -> Fixed:
    """Prepare the sandbox, run the fixer in it and take its patch.

    Each step is logged in ``fix_job_steps``. An exception (the job's time limit
    too) is logged as the ``failed`` step and raised with the fixer's output,
    if any, as its ``logs`` attribute. Whatever the fixer did, this returns or
    raises: its container or processes are gone either way.

    Raises:
        FixFailed: the fixer failed, hit a limit or its time limit.
        GitError, PatchError, SandboxError, TimeLimitExceeded: the attempt failed.
    """
    fix_job_id, knowledge = attempt.fix_job_id, attempt.knowledge
    step = _StepLog(db, fix_job_id, attempt.number)
    heartbeat = _Heartbeat(db, fix_job_id, config.heartbeat_interval)
    git = config.git
    try:
        step("preparing", f"sandbox {attempt.sandbox} at {knowledge['commit_sha'][:12]}")
        if not config.fixer_command:
            raise FixFailed("no fixer configured (set JOBS_FIXER_COMMAND)")
        # This worker may not have analysed the repository: fetch it if needed.
        cache = cache_path(config, str(attempt.link["id"]))
        repository.sync(git, cache, attempt.link["url"], attempt.link["branch"],
                        config.read_limits)
        db.execute("fix_job_running", id=fix_job_id)
        heartbeat.start()
        step("running", f"{config.fixer_command} ({sandbox.name} runtime)")
        outcome = sandbox_attempt.run_attempt(
            sandbox, config.sandbox, fix_job_id=fix_job_id, attempt=attempt.number,
            command=tuple(shlex.split(config.fixer_command)), cache=cache,
            commit=knowledge["commit_sha"], bug_report=attempt.report,
            deadline=sandbox_attempt.fixer_deadline(config.sandbox, seconds_left()))
        heartbeat.stop()
        if not outcome.succeeded:
            failed = FixFailed(outcome.error or "the fixer failed")
            failed.logs = outcome.logs  # type: ignore[attr-defined]
            raise failed
        step("succeeded", f"patch of {len(outcome.patch.splitlines())} lines; "
                          f"tests {outcome.tests}")
    except BaseException as error:  # the time limit too: it ends this attempt
        heartbeat.stop()
        step("failed", clean_text(failure_reason(error), 2000))
        raise
    return Fixed(patch=outcome.patch, logs=outcome.logs, pr_url=outcome.pr_url,
                 tests=outcome.tests)


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
    # Clean: the reason may quote the fixer, and PostgreSQL refuses NUL in text.
    reason = clean_text(failure_reason(error), 2000)
    tx.execute("fix_job_attempt_failed", id=attempt.fix_job_id, error=reason,
               logs=clean_text(getattr(error, "logs", "") or ""), final=final)
    return attempt.notice("fix_failed", error=reason[:500]) if final else None


def clean_up(config: PipelineConfig, sandbox: SandboxRuntime, fix_job_id: str) -> dict:
    """Remove the fix job's containers, processes and sandbox; found from its id only.

    Raises:
        ValueError: ``fix_job_id`` is not a UUID.
    """
    return sandbox_attempt.clean_up(sandbox, config.sandbox, fix_job_id)


def fix_job_states(db: Database, bound: timedelta) -> Any:
    """For the sweeper: ids -> status, and no heartbeat for ``bound``."""

    def lookup(ids: list[str]) -> Mapping[str, JobState]:
        rows = db.all("fix_job_states", ids=ids, bound=bound)
        return {row["id"]: JobState(row["status"], bool(row["stale"])) for row in rows}

    return lookup


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
