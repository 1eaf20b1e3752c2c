"""What fix jobs leave behind, removed once it can belong to no running attempt.

A container or sandbox directory is swept when it is older than
``sweep_after`` and its fix job is finished (succeeded or failed), missing,
or has had no heartbeat for ``sweep_after`` (its worker is gone: SIGKILLed,
its machine lost). A fix job whose heartbeat is fresh is never touched,
however old its sandbox.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .config import SandboxConfig
from .layout import SandboxLayout, sandbox_ids
from .runtime import Runtime

logger = logging.getLogger(__name__)
FINISHED = ("succeeded", "failed")


@dataclass(frozen=True)
class JobState:
    status: str
    # No heartbeat for sweep_after (by the database's clock).
    stale: bool


@dataclass(frozen=True)
class Sweep:
    containers: tuple[str, ...] = ()
    sandboxes: tuple[str, ...] = ()
    kept: int = 0


def sweep(runtime: Runtime, config: SandboxConfig,
          lookup: Callable[[list[str]], Mapping[str, JobState]],
          now: Callable[[], float] = time.time) -> Sweep:
    """Remove what finished or abandoned fix jobs left. Returns the fix job ids swept."""
    leftovers = runtime.leftovers()
    directories = {job: _mtime(config, job) for job in sandbox_ids(config.sandboxes_dir)}
    candidates = sorted(set(leftovers) | set(directories))
    if not candidates:
        return Sweep()
    states = lookup(candidates)
    bound = now() - config.sweep_after
    containers, sandboxes, kept = [], [], 0
    for job in candidates:
        state = states.get(job)
        abandoned = state is None or state.status in FINISHED or state.stale
        if not abandoned:
            kept += 1
            continue
        if job in leftovers and leftovers[job] < bound:
            runtime.cleanup(job)
            containers.append(job)
        if job in directories and directories[job] < bound:
            runtime.cleanup(job)  # a process left by the process runtime, first
            if SandboxLayout.of(config.sandboxes_dir, job).remove():
                sandboxes.append(job)
    if containers or sandboxes:
        logger.info("sweeper removed %d containers and %d sandboxes of finished or "
                    "abandoned fix jobs", len(containers), len(sandboxes))
    return Sweep(tuple(containers), tuple(sandboxes), kept)


def _mtime(config: SandboxConfig, job: str) -> float:
    try:
        return SandboxLayout.of(config.sandboxes_dir, job).root.lstat().st_mtime
    except OSError:
        return 0.0
