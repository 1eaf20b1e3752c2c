"""The workers' HTTP side: ``/metrics`` for Prometheus, ``/api/admin/job-queue`` for people.

``dramatiq`` starts :func:`serve` once per run (the ``Metrics`` middleware,
given it by ``broker.py``, declares a fork that runs it), on
``JOBS_METRICS_HOST:JOBS_METRICS_PORT``. Every queue of the policy table
reports, even empty; other queues report once they hold jobs.

* ``GET /metrics``: the counters of every worker process of the run, plus queue
  depth per queue and state and the age of the oldest waiting job, read from
  PostgreSQL at most once per ``JOBS_QUEUE_STATS_TTL`` however often it is
  scraped. With the database down those gauges are left out and
  ``dramatiq_queue_stats_up`` is 0; the endpoint itself keeps answering.
* ``GET /api/admin/job-queue``: the spec's admin endpoint, as JSON. It needs
  ``Authorization: Bearer <JOBS_ADMIN_TOKEN>``; without a configured token it is off.
* ``GET /healthz``: 200 while the worker processes of this host do their work;
  503, with the reasons, when a worker thread or consumer died or hung
  (``pgbroker/health.py``) or the database does not answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path
from typing import Any

from middleware.metrics import RUN_DIR_PREFIX, MetricsConfig, point_prometheus_client_at
from pgbroker.broker import PostgresBroker
from pgbroker.jobs import (
    list_dead,
    list_workers,
    queue_stats,
    unwell_workers,
    workers_alive_per_queue,
)
from pgbroker.redact import scrub

logger = logging.getLogger(__name__)
STATES = ("queued", "delayed", "running", "done", "dead")


class QueueStats:
    """Queue depth from PostgreSQL, cached so scrapes never pile queries up.

    Unfinished jobs are counted every ``ttl`` seconds; done and dead ones, whose
    count costs more as retention keeps more, every ``FINISHED_EVERY`` x ``ttl``.
    """

    FINISHED_EVERY = 12

    def __init__(self, broker: PostgresBroker, ttl: float, queues: tuple[str, ...] = ()) -> None:
        self.broker = broker
        self.ttl = ttl
        self.queues = queues
        self._lock = threading.Lock()
        self._pending: _Cached = _Cached(ttl)
        self._finished: _Cached = _Cached(ttl * self.FINISHED_EVERY)
        self._workers: _Cached = _Cached(ttl)

    def rows(self) -> list | None:
        """Rows of ``queue_stats``, or None when the database cannot be read."""
        with self._lock:  # one query at a time; the others reuse its answer
            try:
                pending = self._pending.get(
                    lambda: queue_stats(broker=self.broker, finished=False))
                finished = self._finished.get(
                    lambda: queue_stats(broker=self.broker, pending=False))
            except Exception as error:
                logger.warning("queue stats unavailable: %s", str(error).strip())
                self._pending.clear()
                self._finished.clear()
                return None
            return pending + finished

    def workers(self) -> dict[str, int] | None:
        """Live workers per queue, from the registry; None when it cannot be read."""
        with self._lock:
            try:
                return self._workers.get(
                    lambda: workers_alive_per_queue(list_workers(broker=self.broker)))
            except Exception as error:
                logger.warning("worker registry unavailable: %s", str(error).strip())
                self._workers.clear()
                return None

    def collect(self) -> Iterator[Any]:
        """prometheus_client collector protocol."""
        from prometheus_client.core import GaugeMetricFamily

        rows = self.rows()
        up = GaugeMetricFamily("dramatiq_queue_stats_up",
                               "1 if queue depth could be read from PostgreSQL.")
        up.add_metric([], 0 if rows is None else 1)
        yield up
        if rows is None:
            return
        depth = GaugeMetricFamily("dramatiq_queue_depth", "Jobs per queue and state.",
                                  labels=["queue_name", "state"])
        oldest = GaugeMetricFamily(
            "dramatiq_queue_oldest_message_age_seconds",
            "Seconds the oldest job due to run has waited (0 when none waits).",
            labels=["queue_name"],
        )
        counts = {(row.queue_name, row.state): row.messages for row in rows}
        waiting = {row.queue_name: row.oldest_seconds for row in rows if row.state == "queued"}
        for queue in sorted(set(self.queues) | {q for q, _ in counts}):
            for state in STATES:
                depth.add_metric([queue, state], counts.get((queue, state), 0))
            oldest.add_metric([queue], max(waiting.get(queue, 0.0), 0.0))
        yield depth
        yield oldest
        alive = self.workers()
        if alive is not None:
            workers = GaugeMetricFamily(
                "dramatiq_workers_alive",
                "Worker processes alive per queue they consume (the registry).",
                labels=["queue_name"],
            )
            for queue in sorted(set(self.queues) | set(alive)):
                workers.add_metric([queue], alive.get(queue, 0))
            yield workers


class _Cached:
    """One value, read again once it is ``ttl`` seconds old."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.value: Any = None
        self.read_at = float("-inf")

    def get(self, read: Any) -> Any:
        if time.monotonic() - self.read_at >= self.ttl:
            self.value = read()
            self.read_at = time.monotonic()
        return self.value

    def clear(self) -> None:
        self.read_at = float("-inf")


def admin_report(broker: PostgresBroker, stats: QueueStats, failures: int = 10) -> dict:
    """The spec's job-queue report: counts per job type and recent failures."""
    rows = stats.rows()
    if rows is None:
        raise ConnectionError("database unavailable")
    counts: dict[str, dict[str, int]] = {
        queue: dict.fromkeys(STATES, 0) for queue in stats.queues
    }
    for row in rows:
        counts.setdefault(row.queue_name, dict.fromkeys(STATES, 0))[row.state] = row.messages
    return {
        "ok": True,
        "data": {
            "queues": {
                queue: {
                    "activeCount": c["running"],
                    "completedCount": c["done"],
                    "failedCount": c["dead"],
                    "queuedCount": c["queued"],
                    "delayedCount": c["delayed"],
                }
                for queue, c in sorted(counts.items())
            },
            "recentFailures": [
                {
                    "id": job.id,
                    "name": job.queue_name,
                    "actor": job.actor_name,
                    "attempts": job.attempts,
                    "error": scrub(job.last_error) if job.last_error else None,
                    "failedAt": job.finished_at.isoformat() if job.finished_at else None,
                }
                for job in list_dead(limit=failures, broker=broker)
            ],
        },
    }


def make_server(broker: PostgresBroker, config: MetricsConfig,
                run_dir: Path) -> BoundedHttpServer:
    """The HTTP server (bound, not yet serving) for ``broker``, per ``config``."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    stats = QueueStats(broker, ttl=config.queue_stats_ttl, queues=config.queues)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(run_dir))
    registry.register(stats)  # a duck-typed collector: collect() yields metric families
    token = config.admin_token.get_secret_value() if config.admin_token else None
    # Probes are unauthenticated: answer them from one registry read per TTL.
    health, health_lock = _Cached(min(config.queue_stats_ttl, 2.0)), threading.Lock()

    def handle(path: str, headers: dict[str, str]) -> Response:
        if path == "/metrics":
            return Response(200, generate_latest(registry), CONTENT_TYPE_LATEST)
        if path == "/healthz":
            with health_lock:
                return health.get(lambda: _health(broker))
        if path.split("?")[0] == "/api/admin/job-queue":
            given = headers.get("authorization", "")
            if token is None or not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return Response.json(401, {"ok": False, "error": "unauthorized"})
            try:
                return Response.json(200, admin_report(broker, stats))
            except ConnectionError:
                return Response.json(503, {"ok": False, "error": "database unavailable"})
        return Response.json(404, {"ok": False, "error": "not found"})

    return BoundedHttpServer((config.host, config.port), handle)


def _health(broker: PostgresBroker) -> Response:
    # 200 while this host's workers do their work; 503 with the reasons when a
    # worker thread or consumer died or hung, or the database does not answer.
    try:
        problems = unwell_workers(socket.gethostname(), broker=broker)
    except Exception as error:
        logger.warning("health check cannot read the registry: %s", str(error).strip())
        return Response(503, b"database unavailable\n", "text/plain")
    if problems:
        return Response(503, ("\n".join(problems) + "\n").encode(), "text/plain")
    return Response(200, b"ok\n", "text/plain")


@dataclasses.dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str

    @classmethod
    def json(cls, status: int, body: dict) -> Response:
        return cls(status, json.dumps(body).encode(), "application/json")


class BoundedHttpServer:
    """A GET-only HTTP server on asyncio: a slow client costs a coroutine, not a thread.

    Each connection has ``head_timeout`` seconds to send a request head of at
    most ``MAX_HEAD`` bytes (or is closed unanswered), and as long to read the
    answer. At most ``max_connections`` are open at once: at the cap, the
    connection that has waited longest for its head is dropped to let the new
    one in, so a flood of idle clients (slowloris) never locks a Prometheus
    scrape out; when every open one is being answered, the new one is closed.
    Handlers, which may wait on PostgreSQL, run on a small thread pool and
    answer 503 after ``handler_timeout`` seconds.
    """

    MAX_HEAD = 16 * 1024

    def __init__(
        self,
        address: tuple[str, int],
        handle: Callable[[str, dict[str, str]], Response],
        *,
        max_connections: int = 512,
        head_timeout: float = 10.0,
        handler_timeout: float = 10.0,
        handler_threads: int = 4,
    ) -> None:
        self.handle = handle
        self.handler_timeout = handler_timeout
        self.max_connections = max_connections
        self.head_timeout = head_timeout
        self._socket = socket.create_server(address, backlog=128)
        self._pool = ThreadPoolExecutor(handler_threads, thread_name_prefix="http")
        self._waiting_for_head: dict[asyncio.StreamWriter, float] = {}
        self._open = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopped = threading.Event()

    @property
    def server_address(self) -> tuple[str, int]:
        return self._socket.getsockname()[:2]

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown` is called from another thread."""
        self._stopped.clear()
        try:
            asyncio.run(self._serve())
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` and wait until it has returned."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._stopped.wait()

    def server_close(self) -> None:
        self._socket.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(
            self._connection, sock=self._socket, limit=self.MAX_HEAD)
        async with server:
            await self._stop.wait()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._open >= self.max_connections:
            if not self._waiting_for_head:
                writer.transport.abort()  # every slot is answering: no room, for now
                return
            oldest = min(self._waiting_for_head, key=self._waiting_for_head.__getitem__)
            self._waiting_for_head.pop(oldest)
            oldest.transport.abort()
        self._open += 1
        self._waiting_for_head[writer] = time.monotonic()
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.head_timeout)
            self._waiting_for_head.pop(writer, None)
            response = await self._respond(head)
            writer.write(self._encode(response))
            await asyncio.wait_for(writer.drain(), self.head_timeout)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            pass  # a client that is too slow, too big or gone gets no answer
        finally:
            self._open -= 1
            self._waiting_for_head.pop(writer, None)
            writer.transport.abort()

    async def _respond(self, head: bytes) -> Response:
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return Response.json(400, {"ok": False, "error": "bad request"})
        if parts[0] != "GET":
            return Response.json(405, {"ok": False, "error": "only GET"})
        headers = {}
        for line in header_lines:
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        loop = asyncio.get_running_loop()
        try:
            # A handler stuck on the database answers 503; it finishes on its thread.
            return await asyncio.wait_for(
                loop.run_in_executor(self._pool, self.handle, parts[1], headers),
                self.handler_timeout)
        except TimeoutError:
            return Response.json(503, {"ok": False, "error": "timed out"})
        except Exception:
            logger.exception("HTTP handler failed for %s", parts[1].split("?")[0])
            return Response.json(500, {"ok": False, "error": "internal error"})

    @staticmethod
    def _encode(response: Response) -> bytes:
        reason = HTTPStatus(response.status).phrase
        return (
            f"HTTP/1.1 {response.status} {reason}\r\n"
            f"Content-Type: {response.content_type}\r\n"
            f"Content-Length: {len(response.body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode("latin-1") + response.body


def remove_stale_runs(root: Path) -> None:
    """Delete metric directories of ``dramatiq`` runs whose main process is gone."""
    for directory in root.glob(f"{RUN_DIR_PREFIX}*"):
        pid = directory.name.removeprefix(RUN_DIR_PREFIX)
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(directory, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def serve(broker: PostgresBroker, config: MetricsConfig, run_dir: Path) -> int:
    """Serve until interrupted; returns the exit code (1: cannot listen)."""
    point_prometheus_client_at(run_dir)
    remove_stale_runs(config.metrics_dir)
    try:
        server = make_server(broker, config, run_dir)
    except OSError as error:
        logger.critical("metrics server cannot listen on %s:%s: %s (set JOBS_METRICS_PORT)",
                        config.host, config.port, error)
        return 1
    logger.info("serving /metrics on %s:%s", config.host, config.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
