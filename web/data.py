"""What the pages show, read from PostgreSQL and returned as plain values.

Counts that grow with the jobs kept (done and dead) are cached for a few
seconds: many open dashboards then cost the database one read, not one each.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pendulum
from psycopg2.extras import RealDictCursor

from pgbroker import JobNotFound, PostgresBroker, jobs
from pgbroker.queries import named_queries

SQL = Path(__file__).parent / "sql"
PAGE_SIZE = 50
STATES = ("queued", "delayed", "running", "done", "dead", "cancelled")
# The list's state filter, as the table stores it: (state, due now?).
DB_STATES: dict[str, tuple[str, bool | None]] = {
    "queued": ("queued", True), "delayed": ("queued", False), "running": ("consumed", None),
    "done": ("done", None), "dead": ("rejected", None), "cancelled": ("cancelled", None),
}


class Cache:
    """Values read again once ``ttl`` seconds old; one reader at a time per key
    (the others wait for its answer instead of asking the database too)."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[float, Any]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: str, ttl: float, read: Callable[[], Any]) -> Any:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            hit = self._values.get(key)
            if hit is not None and time.monotonic() - hit[0] < ttl:
                return hit[1]
            value = read()
            self._values[key] = (time.monotonic(), value)
            return value


@dataclass(frozen=True)
class JobFilter:
    queue_name: str | None = None
    state: str | None = None
    actor_name: str | None = None
    priority: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    error: str | None = None
    # Keyset cursor: the last row of the previous page.
    before_at: datetime | None = None
    before_id: str | None = None

    def params(self, limit: int) -> dict[str, Any]:
        db_state, due = DB_STATES.get(self.state or "", (None, None))
        like = None
        if self.error:
            escaped = self.error.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            like = f"%{escaped}%"
        return {
            "queue_name": self.queue_name, "db_state": db_state, "due": due,
            "actor_name": self.actor_name, "priority": self.priority, "since": self.since,
            "until": self.until,
            "error_like": like, "before_at": self.before_at,
            "before_id": self.before_id if self.before_at else None, "limit": limit,
        }


class Dashboard:
    """The dashboard's reads, over one broker's connections."""

    def __init__(self, broker: PostgresBroker, pipeline_schema: str,
                 cache_seconds: float = 15.0) -> None:
        self.broker = broker
        self.cache_seconds = cache_seconds
        self.queries = named_queries(SQL / "dashboard.sql", broker.schema)
        self.pipeline = named_queries(SQL / "pipeline.sql", pipeline_schema)
        self.cache = Cache()

    # -- plumbing ----------------------------------------------------------

    def rows(self, query: Any, **params: Any) -> list[dict[str, Any]]:
        self.broker.ensure_schema()
        with self.broker.pool.connection(self.broker.enqueue_timeout) as conn, \
                conn.cursor(cursor_factory=RealDictCursor) as cur:
            cur.execute(query, params)
            return [dict(row) for row in cur.fetchall()]

    # -- overview ----------------------------------------------------------

    def overview(self, declared: list[str], actors_by_queue: dict[str, list[str]]) -> dict:
        """Every queue: counts by state, oldest wait, paused, per-minute charts;
        and run times per job type."""
        # The reads that grow with the jobs kept run side by side, each on its
        # own connection, and are cached; the cheap ones are read every time.
        reads: dict[str, tuple[float, Callable[[], Any]]] = {
            "finished": (self.cache_seconds,
                         lambda: jobs.queue_stats(broker=self.broker, pending=False)),
            "throughput": (self.cache_seconds, lambda: self.rows(self.queries["throughput"])),
            "run_times": (2 * self.cache_seconds, lambda: self.rows(self.queries["run_times"])),
        }
        with ThreadPoolExecutor(len(reads)) as pool:
            futures = {key: pool.submit(self.cache.get, key, ttl, read)
                       for key, (ttl, read) in reads.items()}
            pending = jobs.queue_stats(broker=self.broker, finished=False)
            finished, throughput, run_times = (futures[key].result() for key in reads)
        for row in run_times:
            row["actors"] = actors_by_queue.get(row["queue_name"], [])
            row["p50"], row["p95"] = (p.total_seconds() for p in row["percentiles"])
        paused = {p.queue_name: p for p in jobs.paused_queues(broker=self.broker)}

        names = sorted(set(declared) | {s.queue_name for s in pending + finished} | set(paused))
        queues: dict[str, dict[str, Any]] = {
            name: {"name": name, "counts": dict.fromkeys(STATES, 0), "oldest": 0.0,
                   "paused": paused.get(name), "done_per_min": [0] * 60,
                   "dead_per_min": [0] * 60, "actors": actors_by_queue.get(name, [])}
            for name in names}
        for stat in pending + finished:
            queue = queues[stat.queue_name]
            queue["counts"][stat.state] = stat.messages
            if stat.state == "queued":
                queue["oldest"] = stat.oldest_seconds
        this_minute = datetime.now(UTC).replace(second=0, microsecond=0)
        for row in throughput:
            charted = queues.get(row["queue_name"])
            minutes_ago = int((this_minute - row["minute"]).total_seconds() // 60)
            if charted is not None and 0 <= minutes_ago < 60:
                # Charts run oldest to newest, left to right.
                charted["done_per_min"][59 - minutes_ago] += row["done"]
                charted["dead_per_min"][59 - minutes_ago] += row["dead"]
        totals = dict.fromkeys(STATES, 0)
        for queue in queues.values():
            for state, count in queue["counts"].items():
                totals[state] += count
            queue["done_last_hour"] = sum(queue["done_per_min"])
            queue["dead_last_hour"] = sum(queue["dead_per_min"])
        # Queues with something to look at first, then the idle ones, by name.
        ordered = sorted(queues.values(), key=lambda q: (
            not (q["paused"] or q["done_last_hour"] or q["dead_last_hour"]
                 or any(q["counts"][s] for s in ("queued", "delayed", "running", "dead"))),
            q["name"]))
        return {"queues": ordered, "totals": totals, "run_times": run_times}

    # -- jobs --------------------------------------------------------------

    def job_list(self, where: JobFilter, limit: int = PAGE_SIZE) -> tuple[list[dict], str | None]:
        """A page of jobs and the cursor of the next page (None on the last)."""
        params = where.params(limit + 1)
        actor = self.broker.actors.get(params["actor_name"] or "")
        if params["queue_name"] is None and actor is not None:
            # A job type's jobs are on its actor's queue: read that queue's
            # jobs, not every queue's. (A row naming the actor on another queue
            # is a dead letter the consumer refused, listed with that queue.)
            params["queue_name"] = actor.queue_name
        found = self.rows(self.queries["job_list"], **params)
        page, more = found[:limit], len(found) > limit
        cursor = None
        if more:
            last = page[-1]
            cursor = f"{last['enqueued_at'].isoformat()}|{last['id']}"
        return page, cursor

    def job(self, job_id: str,
            max_retries_of: Callable[[str], int | None] = lambda name: None) -> dict:
        """One job with its history and what it serves in the pipeline.

        Raises:
            JobNotFound: no such job.
        """
        job = jobs.get_job(job_id, broker=self.broker)
        max_retries = max_retries_of(job.actor_name)
        detail = self.rows(self.queries["job_detail"], message_id=job.id)
        extra = detail[0] if detail else {}
        options = dict(extra.get("options") or {})
        traceback = options.pop("traceback", None)
        history = [dataclasses.asdict(a) for a in jobs.attempts(job.id, broker=self.broker)]
        result = job.result
        if result is not None:
            with contextlib.suppress(ValueError):
                result = json.loads(result)
        return {
            **dataclasses.asdict(job),
            "result": result,
            "options": options,
            "traceback": traceback,
            "cancelled_by": extra.get("cancelled_by"),
            # The message's own limit (send_with_options), else its actor's.
            "max_attempts": _attempts_allowed(options.get("max_retries", max_retries)),
            "singleton_key": extra.get("singleton_key"),
            "attempt_history": history,
            "timeline": timeline(job, history),
            "links": self.links(job.payload),
        }

    def links(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The bug report and fix job a pipeline job's payload names."""
        found: dict[str, Any] = {}
        ids = {key: payload.get(key) for key in ("bug_report_id", "fix_job_id")}
        try:
            if _is_uuid(ids["fix_job_id"]):
                rows = self.rows(self.pipeline["fix_job"], id=ids["fix_job_id"])
                if rows:
                    found["fix_job"] = rows[0]
                    found["fix_steps"] = self.rows(self.pipeline["fix_job_steps"],
                                                   id=ids["fix_job_id"])
            if _is_uuid(ids["bug_report_id"]):
                rows = self.rows(self.pipeline["bug_report"], id=ids["bug_report_id"])
                if rows:
                    found["bug_report"] = rows[0]
                    found["fix_jobs"] = self.rows(self.pipeline["fix_jobs_of_bug"],
                                                  id=ids["bug_report_id"])
        except Exception as error:  # no pipeline schema here: the job page still shows
            found["error"] = f"pipeline tables unavailable: {type(error).__name__}"
        return found

    def dead_groups(self) -> list[dict]:
        return [dataclasses.asdict(g) for g in jobs.dead_groups(broker=self.broker)]

    # -- workers and schedules --------------------------------------------

    def workers(self) -> dict:
        """Worker processes: from the broker's registry when it keeps one, else
        as seen through the leases of the jobs they hold."""
        present = self.rows(self.queries["registry_present"], schema=self.broker.schema)
        registry = self.rows(self.queries["registry_workers"]) if present[0]["present"] else None
        return {
            "registry": registry,
            "holding": self.rows(self.queries["workers_holding"]),
            "running": self.rows(self.queries["running_jobs"], limit=200),
            "recent": self.rows(self.queries["workers_recent"]),
        }

    def schedules(self, periodic: list[Any]) -> list[dict]:
        """Each periodic actor: its cron, its last tick's job and its next tick."""
        now = pendulum.now("UTC")
        found = []
        for actor in periodic:
            spec = actor.options["periodic"]
            last = self.rows(self.queries["last_tick"], queue_name=actor.queue_name,
                             singleton_key=f"periodic:{actor.actor_name}")
            found.append({
                "actor_name": actor.actor_name, "queue_name": actor.queue_name,
                "cron": getattr(spec, "parsed_from", None) or str(spec),
                "last": last[0] if last else None,
                "next_at": datetime.fromtimestamp(
                    spec.next_valid_date(now).timestamp(), tz=UTC),
            })
        return found


def timeline(job: jobs.Job, history: list[dict]) -> list[dict]:
    """The job's life as events, oldest first: enqueued, each attempt's start and
    end (with the retry's due time), the last start, and how it finished."""
    events: list[dict] = [{"at": job.enqueued_at, "what": "enqueued", "kind": "info",
                           "detail": f"on {job.queue_name}"}]
    for attempt in history:
        if attempt["started_at"]:
            events.append({"at": attempt["started_at"], "what": f"attempt {attempt['attempt']} "
                           "started", "kind": "info", "detail": attempt["worker"]})
        detail = attempt["error"] or ""
        if attempt["retry_at"]:
            detail += f"; retry due {attempt['retry_at']:%H:%M:%S}"
        events.append({"at": attempt["ended_at"], "what": attempt["outcome"],
                       "kind": attempt["outcome"], "detail": detail})
    ended = {a["started_at"] for a in history}
    if job.started_at and job.started_at not in ended:
        events.append({"at": job.started_at, "what": f"attempt {job.attempts} started",
                       "kind": "info", "detail": job.lease_owner or ""})
    if job.state == "done" and job.finished_at:
        took = (job.finished_at - job.started_at).total_seconds() if job.started_at else None
        events.append({"at": job.finished_at, "what": "done", "kind": "done",
                       "detail": f"after {took:.3f} s" if took is not None else ""})
    elif job.state == "cancelled" and job.finished_at and not any(
            a["outcome"] == "cancelled" for a in history):
        events.append({"at": job.finished_at, "what": "cancelled", "kind": "cancelled",
                       "detail": job.last_error or ""})
    elif job.state == "delayed":
        events.append({"at": job.available_at, "what": "due", "kind": "info",
                       "detail": "waits until then"})
    return sorted(events, key=lambda e: e["at"])


def _attempts_allowed(max_retries: Any) -> int | None:
    return int(max_retries) + 1 if isinstance(max_retries, int) else None


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return value is not None


__all__ = ["Dashboard", "JobFilter", "JobNotFound"]
