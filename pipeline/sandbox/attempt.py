"""One fix attempt's sandbox work, start to end: checkout, fixer, patch.

The fix flow (``pipeline/fixes.py``) owns the fix job's states and
notifications; this owns everything that touches the fixer. What the fixer
does (a crash, a limit hit, a bad report, NUL bytes) comes back as an
:class:`AttemptOutcome`, never as an exception, so every attempt reaches a
final state. Only the sandbox's own failures (no engine, no image, git
failing on the worker's side) raise.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import checkout
from .config import SandboxConfig
from .layout import SandboxLayout
from .report import clean_text
from .runtime import FixerRun, Runtime

# What of a bug report the fixer is given: never the reporter's address.
BUG_FIELDS = ("id", "title", "description", "steps_to_reproduce", "expected_behavior",
              "actual_behavior", "error_type", "error_message", "stack_frames", "page_url",
              "environment", "severity", "raw_text")


@dataclass(frozen=True)
class AttemptOutcome:
    succeeded: bool
    # Safe to store: no NUL bytes, valid UTF-8.
    logs: str
    error: str | None = None
    patch: str = ""
    pr_url: str | None = None
    tests: str = "not_run"


def fixer_deadline(config: SandboxConfig, seconds_left: float | None,
                   now: float | None = None) -> float:
    """When the fixer must stop: the job's limit less a margin to record the outcome."""
    now = time.monotonic() if now is None else now
    if seconds_left is None:  # outside a job (a test, the demo): a generous hour
        seconds_left = 3600.0
    margin = min(config.finish_margin, seconds_left * 0.25)
    return now + max(seconds_left - margin, 0.0)


def run_attempt(runtime: Runtime, config: SandboxConfig, *, fix_job_id: str, attempt: int,
                command: tuple[str, ...], cache: Path, commit: str,
                bug_report: Mapping[str, Any], deadline: float) -> AttemptOutcome:
    """Prepare the sandbox, run the fixer in ``runtime``, take the patch.

    Raises:
        SandboxError: the runtime cannot run fixers (no engine, no image).
        PatchError: the worker's git failed preparing the checkout.
    """
    layout = SandboxLayout.of(config.sandboxes_dir, fix_job_id)
    checkout.prepare(layout, cache, commit, timeout=config.git_timeout)
    layout.bug_report.write_text(json.dumps(
        {k: bug_report.get(k) for k in BUG_FIELDS}, default=str))
    result = runtime.run(FixerRun(fix_job_id, attempt, command, layout, deadline))
    logs = result.output
    if result.report.problems:
        logs += "\n[report: " + "; ".join(result.report.problems) + "]"
    if not result.succeeded:
        return AttemptOutcome(False, logs, error=clean_text(result.failure(), 2000))
    if result.report.pr_url is None:
        # Exit 0 is not a fix: the reporter is told of a pull request, or of a failure.
        why = "; ".join(result.report.problems) or "no pr_url"
        return AttemptOutcome(False, logs, error=f"fixer reported no pull request ({why})")
    try:
        # Within the margin kept after the fixer's deadline: a checkout made
        # slow to index must not run the job past its time limit.
        patch = checkout.patch(layout, commit,
                               timeout=min(config.git_timeout, max(config.finish_margin / 2, 5)))
    except checkout.PatchError as error:
        return AttemptOutcome(False, logs, error=clean_text(str(error), 2000))
    return AttemptOutcome(True, logs, patch=patch, pr_url=result.report.pr_url,
                          tests=result.report.tests)


def clean_up(runtime: Runtime, config: SandboxConfig, fix_job_id: str) -> dict[str, Any]:
    """Remove every container, process and directory of ``fix_job_id``. Idempotent.

    Raises:
        ValueError: ``fix_job_id`` is not a UUID.
    """
    layout = SandboxLayout.of(config.sandboxes_dir, fix_job_id)
    removed = runtime.cleanup(layout.fix_job_id)
    return {"fix_job_id": layout.fix_job_id, "containers": removed,
            "sandbox_removed": layout.remove()}
