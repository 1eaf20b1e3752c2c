"""Look up jobs, list and replay dead letters, purge old ones; operators' actions
(pause and resume a queue, cancel, run now, delete a job).

A job's id is its Dramatiq message id (``actor.send(...).message_id``). Every
function takes the broker to use, by default Dramatiq's global one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import dramatiq

from .broker import PostgresBroker
from .errors import JobNotFound

State = Literal["queued", "delayed", "running", "done", "dead", "cancelled"]
# The queue table keeps dramatiq-pg's names for the finished states.
STORED_STATE = {"done": "done", "dead": "rejected", "cancelled": "cancelled"}
REPLAY_BATCH = 500
PURGE_BATCH = 1000


@dataclass(frozen=True)
class Job:
    """A job's state, as the queue table knows it."""

    id: str
    queue_name: str
    actor_name: str
    # queued: waiting; delayed: waiting for its due time (a retry's backoff, or
    # send_with_options(delay=...)); running; done; dead: rejected for good;
    # cancelled: stopped by an operator, never retried.
    state: State
    attempts: int
    retries: int
    rescues: int
    priority: int
    payload: dict[str, Any]
    last_error: str | None
    enqueued_at: datetime
    # When the job is (or was) due: for a delayed job, when its retry starts.
    available_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    result: str | None


@dataclass(frozen=True)
class DeadJob:
    id: str
    queue_name: str
    actor_name: str
    attempts: int
    last_error: str | None
    enqueued_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class WorkerInfo:
    """One worker process of the registry (``<schema>.workers``)."""

    # The worker's name on its leases (queue.lease_owner): host:pid:nonce.
    id: str
    host: str
    pid: int
    queues: list[str]
    started_at: datetime
    last_heartbeat_at: datetime
    # Its heartbeat session, as pg_stat_activity shows it.
    backend_pid: int
    backend_start: datetime
    # Its session is open, or it beat within its lease.
    alive: bool
    # Jobs it runs now.
    running: int


@dataclass(frozen=True, order=True)
class QueueStat:
    queue_name: str
    state: State
    messages: int
    # For "queued": seconds the oldest job due to run has waited.
    oldest_seconds: float


def _broker(broker: PostgresBroker | None) -> PostgresBroker:
    found = broker or dramatiq.get_broker()
    if not isinstance(found, PostgresBroker):
        raise TypeError(f"expected a PostgresBroker, got {type(found).__name__}")
    return found


def _job_id(job_id: str) -> str:
    try:
        return str(uuid.UUID(str(job_id)))
    except ValueError:
        raise JobNotFound(f"{job_id!r} is not a job id (a UUID)") from None


def get_job(job_id: str, *, broker: PostgresBroker | None = None) -> Job:
    """The job with this id.

    Raises:
        JobNotFound: no such job (never sent, or purged after its retention).
    """
    rows = _broker(broker).fetch("job_by_id", message_id=_job_id(job_id))
    if not rows:
        raise JobNotFound(f"no job {job_id}")
    return Job(*rows[0])


def list_dead(
    queue_name: str | None = None, *, limit: int = 50, broker: PostgresBroker | None = None
) -> list[DeadJob]:
    """Dead jobs, newest first, of one queue or all."""
    rows = _broker(broker).fetch("dead_list", queue_name=queue_name, limit=limit)
    return [DeadJob(*row) for row in rows]


def replay(job_id: str, *, broker: PostgresBroker | None = None) -> None:
    """Send one dead job back to its queue with its attempts reset.

    Raises:
        JobNotFound: no dead job has this id.
    """
    rows = _broker(broker).fetch(
        "dead_replay", message_id=_job_id(job_id), queue_name=None, last_error=None, limit=1
    )
    if not rows:
        raise JobNotFound(f"no dead job {job_id}")


def replay_dead(
    queue_name: str | None = None,
    *,
    last_error: str | None = None,
    broker: PostgresBroker | None = None,
    progress: Any = None,
) -> int:
    """Replay every dead job of ``queue_name`` (all queues if None) whose last
    error is ``last_error`` (any if None), in batches.

    ``progress(n)`` is called after each batch. Returns how many were replayed.
    """
    return _in_batches(
        lambda: _broker(broker).fetch(
            "dead_replay", message_id=None, queue_name=queue_name, last_error=last_error,
            limit=REPLAY_BATCH,
        ),
        REPLAY_BATCH,
        progress,
    )


def purge(
    state: Literal["done", "dead"],
    older_than: timedelta,
    *,
    broker: PostgresBroker | None = None,
    progress: Any = None,
) -> int:
    """Delete finished jobs in ``state`` older than ``older_than``, in batches.

    Cancelled jobs are kept as long as dead ones and purged with them.
    """
    deleted = 0
    for db_state in {"done": ["done"], "dead": ["rejected", "cancelled"]}[state]:

        def batch(db_state: str = db_state) -> int:
            return _broker(broker).execute(
                "purge_finished", state=db_state,
                older_than_seconds=older_than.total_seconds(), limit=PURGE_BATCH,
            )

        deleted += _in_batches(batch, PURGE_BATCH, progress)
    return deleted


def list_workers(*, broker: PostgresBroker | None = None) -> list[WorkerInfo]:
    """The worker processes in the registry, by host and pid."""
    return [WorkerInfo(*row) for row in _broker(broker).fetch("workers_list")]


def unwell_workers(host: str, *, broker: PostgresBroker | None = None) -> list[str]:
    """What is wrong with the worker processes registered from ``host``, one line each.

    Empty when every one is well (or none is registered there).
    """
    return [f"worker {pid} ({worker_id}): {problem}"
            for worker_id, pid, problem in _broker(broker).fetch("workers_unwell", host=host)]


def workers_alive_per_queue(workers: list[WorkerInfo]) -> dict[str, int]:
    """How many live workers consume each queue."""
    counts: dict[str, int] = {}
    for worker in workers:
        if worker.alive:
            for queue_name in worker.queues:
                counts[queue_name] = counts.get(queue_name, 0) + 1
    return counts


def purge_expired_results(*, broker: PostgresBroker | None = None) -> int:
    """Delete results past their TTL, in batches. Returns how many."""
    return _in_batches(
        lambda: _broker(broker).execute("results_purge_expired", limit=PURGE_BATCH),
        PURGE_BATCH, None,
    )


def queue_stats(
    *, broker: PostgresBroker | None = None, pending: bool = True, finished: bool = True
) -> list[QueueStat]:
    """Jobs per queue and state, sorted.

    ``pending`` (queued, delayed, running) reads small indexes and is cheap;
    ``finished`` (done, dead) counts every row retention keeps, which grows with
    throughput, so callers on a timer may read it less often.
    """
    found = _broker(broker)
    rows = []
    if pending:
        rows += found.fetch("queue_stats_pending")
    if finished:
        rows += found.fetch("queue_stats_finished")
    return sorted(QueueStat(*row) for row in rows)


@dataclass(frozen=True)
class DeadGroup:
    """Dead letters of one queue that died of the same error."""

    queue_name: str
    last_error: str | None
    jobs: int
    last_failed_at: datetime | None


@dataclass(frozen=True)
class Attempt:
    """A delivery of a job that did not succeed."""

    attempt: int
    worker: str | None
    started_at: datetime | None
    ended_at: datetime
    # failed (retried at retry_at), dead, rescued (worker lost), cancelled.
    outcome: str
    error: str | None
    traceback: str | None
    retry_at: datetime | None


@dataclass(frozen=True)
class Pause:
    queue_name: str
    paused_at: datetime
    paused_by: str | None


def dead_groups(*, limit: int = 50, broker: PostgresBroker | None = None) -> list[DeadGroup]:
    """Dead letters grouped by queue and last error, largest group first."""
    return [DeadGroup(*row) for row in _broker(broker).fetch("dead_groups", limit=limit)]


def attempts(job_id: str, *, broker: PostgresBroker | None = None) -> list[Attempt]:
    """The failed, rescued or cancelled deliveries of a job, oldest first."""
    rows = _broker(broker).fetch("job_attempts", message_id=_job_id(job_id))
    return [Attempt(*row) for row in rows]


def pause_queue(queue_name: str, *, by: str, broker: PostgresBroker | None = None) -> bool:
    """Stop every worker claiming ``queue_name``'s jobs (running ones finish).

    Returns False if it was paused already.
    """
    return bool(_broker(broker).fetch("queue_pause", queue_name=queue_name, paused_by=by))


def resume_queue(queue_name: str, *, broker: PostgresBroker | None = None) -> bool:
    """Let workers claim ``queue_name`` again. Returns False if it was not paused."""
    return bool(_broker(broker).fetch("queue_resume", queue_name=queue_name))


def paused_queues(*, broker: PostgresBroker | None = None) -> list[Pause]:
    return [Pause(*row) for row in _broker(broker).fetch("queue_pauses")]


def cancel(job_id: str, *, by: str, broker: PostgresBroker | None = None) -> State:
    """Cancel a queued, delayed or running job; returns the state it was in.

    A running job is stopped by its worker at its next heartbeat.

    Raises:
        JobNotFound: no job with this id is queued, delayed or running.
    """
    rows = _broker(broker).fetch("job_cancel", message_id=_job_id(job_id), cancelled_by=by)
    if not rows:
        raise JobNotFound(f"no queued, delayed or running job {job_id}")
    return rows[0][0]


def run_now(job_id: str, *, broker: PostgresBroker | None = None) -> None:
    """Make a delayed job due now.

    Raises:
        JobNotFound: no delayed job has this id.
    """
    if not _broker(broker).fetch("job_run_now", message_id=_job_id(job_id)):
        raise JobNotFound(f"no delayed job {job_id}")


def delete(job_id: str, *, broker: PostgresBroker | None = None) -> None:
    """Delete a job and its history; a running job must be cancelled first.

    Raises:
        JobNotFound: no job with this id, or it is running.
    """
    if not _broker(broker).fetch("job_delete", message_id=_job_id(job_id)):
        raise JobNotFound(f"no job {job_id} that is not running")


def _in_batches(run_batch: Any, size: int, progress: Any) -> int:
    total = 0
    while True:
        result = run_batch()
        count = result if isinstance(result, int) else len(result)
        total += count
        if progress is not None and count:
            progress(count)
        if count < size:
            return total
