"""One fixer attempt, whatever runs it: what goes in, what comes out.

A runtime (``container.DockerRuntime`` or ``process.ProcessRuntime``) runs a
:class:`FixerRun` to the end and returns a :class:`FixerResult`. Its contract:

* the fixer's environment is exactly FIX_JOB_ID, BUG_REPORT_JSON, SANDBOX and
  FIX_REPORT, plus the allow-listed variables of the configuration;
* it is stopped at ``deadline`` with everything it started;
* whatever ends the wait (the deadline, the broker's lost-lease stop, the
  job's TimeLimitExceeded, a bug of ours), a ``finally`` stops and removes the
  container, or kills the process tree, before the exception goes on;
* ``cleanup(fix_job_id)`` removes what any attempt of that fix job left, and
  is safe to call at any time, twice, or for a job that never ran.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

from .config import SandboxConfig
from .layout import SandboxLayout
from .report import FixerReport

logger = logging.getLogger(__name__)


class SandboxError(RuntimeError):
    """The sandbox could not be set up (no engine, no image): not the fixer's fault."""


@dataclass(frozen=True)
class FixerRun:
    fix_job_id: str
    attempt: int
    command: tuple[str, ...]
    layout: SandboxLayout
    # time.monotonic() by which the fixer must be stopped.
    deadline: float

    def environment(self, config: SandboxConfig, root: str, checkout: str) -> dict[str, str]:
        """The fixer contract, with paths as the fixer sees them, plus the allow-list."""
        return {
            **dict(config.extra_env),
            "FIX_JOB_ID": self.fix_job_id,
            "SANDBOX": checkout,
            "BUG_REPORT_JSON": f"{root}/bug.json",
            "FIX_REPORT": f"{root}/report.json",
        }

    def seconds_left(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0)


@dataclass(frozen=True)
class FixerResult:
    exit_code: int | None
    output: str
    output_cut: bool
    report: FixerReport
    timed_out: bool = False
    # Why it failed, in words, when a limit stopped it.
    limit_hit: str | None = None
    seconds: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.limit_hit is None

    def failure(self) -> str:
        """One line for the fix job's error."""
        if self.timed_out:
            return f"fixer stopped at its time limit after {self.seconds:.0f}s"
        if self.limit_hit:
            return self.limit_hit
        tail = self.output.strip().splitlines()[-1:] or [""]
        return f"fixer exited with {self.exit_code}: {tail[0][-500:]}"


class Runtime(Protocol):
    name: str
    #  Whether this runtime is a boundary for untrusted code.
    isolates: bool

    def confinement(self) -> str | None:
        """What confines a fixer here, or None if this runtime refuses to run one."""
        ...

    def run(self, run: FixerRun) -> FixerResult: ...

    def cleanup(self, fix_job_id: str) -> list[str]:
        """Remove every container or process of ``fix_job_id``; returns what was removed."""
        ...

    def leftovers(self) -> dict[str, float]:
        """Fix job id -> creation time (epoch seconds) of what is still around."""
        ...


def choose_runtime(config: SandboxConfig) -> Runtime:
    """The runtime the configuration names; ``auto`` is Docker when its engine answers.

    Raises:
        SandboxError: ``docker`` was asked for and the engine does not answer.
    """
    from .container import DockerRuntime, docker_client
    from .process import ProcessRuntime

    if config.runtime == "process":
        logger.warning("fixers run in the process runtime, which is not a boundary for "
                       "untrusted code (only the container runtime is)")
        return ProcessRuntime(config)
    try:
        client = docker_client(config)
    except SandboxError:
        if config.runtime == "docker":
            raise
        logger.warning("no Docker engine answers: fixers run in the process runtime, "
                       "which is not a boundary for untrusted code")
        return ProcessRuntime(config)
    return DockerRuntime(config, client)
