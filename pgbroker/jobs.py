"""Look up jobs, list and replay dead letters, purge old ones.

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

State = Literal["queued", "delayed", "running", "done", "dead"]
# The queue table keeps dramatiq-pg's names for the finished states.
STORED_STATE = {"done": "done", "dead": "rejected"}
REPLAY_BATCH = 500
PURGE_BATCH = 1000


@dataclass(frozen=True)
class Job:
    """A job's state, as the queue table knows it."""

    id: str
    queue_name: str
    actor_name: str
    # queued: waiting; delayed: waiting for its due time (a retry's backoff, or
    # send_with_options(delay=...)); running; done; dead: rejected for good.
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
        "dead_replay", message_id=_job_id(job_id), queue_name=None, limit=1
    )
    if not rows:
        raise JobNotFound(f"no dead job {job_id}")


def replay_dead(
    queue_name: str | None = None,
    *,
    broker: PostgresBroker | None = None,
    progress: Any = None,
) -> int:
    """Replay every dead job of ``queue_name`` (all queues if None), in batches.

    ``progress(n)`` is called after each batch. Returns how many were replayed.
    """
    return _in_batches(
        lambda: _broker(broker).fetch(
            "dead_replay", message_id=None, queue_name=queue_name, limit=REPLAY_BATCH
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
    """Delete finished jobs in ``state`` older than ``older_than``, in batches."""
    db_state = STORED_STATE[state]

    def batch() -> int:
        return _broker(broker).execute(
            "purge_finished", state=db_state,
            older_than_seconds=older_than.total_seconds(), limit=PURGE_BATCH,
        )

    return _in_batches(batch, PURGE_BATCH, progress)


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
