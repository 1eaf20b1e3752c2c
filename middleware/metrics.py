"""Prometheus metrics of the workers, under Dramatiq's own metric names.

Dramatiq's ``Prometheus`` middleware is close, but its top duration bucket is 15
minutes (our fix jobs run 45), it binds 0.0.0.0 unasked, and it keeps counters
of earlier runs in a shared directory. This one keeps the names (so dashboards
built for Dramatiq work), and:

* buckets reach past the longest time limit (an hour);
* every ``dramatiq`` run writes to a directory of its own, and removes those of
  runs that are gone, so a SIGKILLed worker never leaves an in-progress count;
* the exposition server (``admin_server``) binds to ``JOBS_METRICS_HOST``.

Labels are queue and actor names only: never payloads or addresses.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from dramatiq.middleware import Middleware

# Milliseconds, like Dramatiq's histogram; the last finite bucket is one hour.
DURATION_BUCKETS = (
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000,
    300_000, 600_000, 900_000, 1_800_000, 2_700_000, 3_600_000, float("inf"),
)
_RUN_DIR_PREFIX = "run-"


def metrics_root() -> Path:
    """Where the per-run metric directories live."""
    from settings import settings

    return settings.metrics_dir


def run_directory() -> Path:
    """This ``dramatiq`` run's directory: named after the run's main process.

    Worker processes and the exposition server are all children of that process.
    """
    return metrics_root() / f"{_RUN_DIR_PREFIX}{os.getppid()}"


def point_prometheus_client_at(directory: Path) -> None:
    """Make prometheus_client write (and read) multiprocess files in ``directory``.

    prometheus_client picks its value class when imported; if anything imported
    it before this, the class is chosen again so no metric is lost.
    """
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    from prometheus_client import values

    values.ValueClass = values.get_value_class()


class Metrics(Middleware):
    """Counts messages, errors, retries, dead letters, in-progress and durations."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.metrics: dict[str, Any] = {}

    @property
    def forks(self) -> list:
        from admin_server import serve_forever

        return [serve_forever]

    def after_process_boot(self, broker) -> None:
        point_prometheus_client_at(run_directory())
        import prometheus_client as prom

        labels = ["queue_name", "actor_name"]
        registry = prom.CollectorRegistry()  # multiprocess files are what get served

        def counter(name: str, doc: str) -> Any:
            return prom.Counter(name, doc, labels, registry=registry)

        self.metrics = {
            "messages": counter("dramatiq_messages_total", "Messages processed."),
            "errors": counter("dramatiq_message_errors_total", "Messages that raised."),
            "retries": counter("dramatiq_message_retries_total", "Messages sent back to retry."),
            "rejects": counter("dramatiq_message_rejects_total", "Messages dead-lettered."),
            "inprogress": prom.Gauge(
                "dramatiq_messages_inprogress", "Messages being processed.", labels,
                registry=registry, multiprocess_mode="livesum",
            ),
            "duration": prom.Histogram(
                "dramatiq_message_duration_milliseconds", "Time spent processing messages.",
                labels, buckets=DURATION_BUCKETS, registry=registry,
            ),
        }

    def after_worker_shutdown(self, broker, worker) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())

    def after_enqueue(self, broker, message, delay) -> None:
        # Retries re-enqueue the message with its retry count set.
        if self.metrics and "retries" in message.options:
            self._inc("retries", message)

    def after_nack(self, broker, message) -> None:
        if self.metrics:
            self._inc("rejects", message)

    def before_process_message(self, broker, message) -> None:
        if self.metrics:
            self.metrics["inprogress"].labels(message.queue_name, message.actor_name).inc()
            self.started[message.message_id] = time.monotonic()

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        if not self.metrics:
            return
        labels = (message.queue_name, message.actor_name)
        started = self.started.pop(message.message_id, None)
        if started is not None:
            self.metrics["duration"].labels(*labels).observe((time.monotonic() - started) * 1000)
            self.metrics["inprogress"].labels(*labels).dec()
        self.metrics["messages"].labels(*labels).inc()
        if exception is not None:
            self.metrics["errors"].labels(*labels).inc()

    # A message skipped by middleware (an invalid payload) still counts as processed.
    after_skip_message = after_process_message

    def _inc(self, name: str, message) -> None:
        self.metrics[name].labels(message.queue_name, message.actor_name).inc()
