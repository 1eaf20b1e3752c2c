"""Prometheus metrics of the workers, under Dramatiq's own metric names.

Dramatiq's ``Prometheus`` middleware is close, but its top duration bucket is 15
minutes (our fix jobs run 45), it binds 0.0.0.0 unasked, and it keeps counters
of earlier runs in a shared directory. This one keeps the names (so dashboards
built for Dramatiq work), and:

* buckets reach past the longest time limit (an hour);
* every ``dramatiq`` run writes to a directory of its own, and removes those of
  runs that are gone, so a SIGKILLed worker never leaves an in-progress count;
* the exposition server binds to the configured host (``JOBS_METRICS_HOST``).

The server itself is handed in (``serve``, by ``broker.py``: the admin server);
:func:`serve_forever`, the fork Dramatiq starts once per run, finds it on the
run's broker and imports nothing of the application.

Labels are queue and actor names only: never payloads or addresses.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dramatiq.cli import import_broker, make_argument_parser
from dramatiq.middleware import Middleware
from pydantic import SecretStr

if TYPE_CHECKING:  # the type only: importing settings reads the environment
    from settings import Settings

# Milliseconds, like Dramatiq's histogram; the last finite bucket is one hour.
DURATION_BUCKETS = (
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000,
    300_000, 600_000, 900_000, 1_800_000, 2_700_000, 3_600_000, float("inf"),
)
RUN_DIR_PREFIX = "run-"


@dataclass(frozen=True)
class MetricsConfig:
    # Where the per-run metric directories live.
    metrics_dir: Path
    host: str
    port: int
    # Queue depth is read from PostgreSQL at most this often (seconds).
    queue_stats_ttl: float
    # Bearer token of the admin API; None turns it off.
    admin_token: SecretStr | None
    # The queues that always report, even empty: the policy table's.
    queues: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> MetricsConfig:
        return cls(
            metrics_dir=settings.metrics_dir,
            host=settings.metrics_host,
            port=settings.metrics_port,
            queue_stats_ttl=settings.queue_stats_ttl.total_seconds(),
            admin_token=settings.admin_token,
            queues=tuple(sorted({p.queue for p in settings.policies.by_actor().values()})),
        )


# The exposition server: given the broker, the configuration and the run's
# directory, serves until stopped and returns the process's exit code.
Serve = Callable[[Any, MetricsConfig, Path], int]


def run_directory(metrics_dir: Path) -> Path:
    """This ``dramatiq`` run's directory: named after the run's main process.

    Worker processes and the exposition server are all children of that process.
    """
    return metrics_dir / f"{RUN_DIR_PREFIX}{os.getppid()}"


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

    def __init__(self, config: MetricsConfig, serve: Serve | None = None) -> None:
        self.config = config
        self.serve = serve
        self.started: dict[str, float] = {}
        self.metrics: dict[str, Any] = {}
        self.children: dict[tuple[str, str], dict[str, Any]] = {}

    @property
    def forks(self) -> list:
        return [serve_forever] if self.serve is not None else []

    def after_process_boot(self, broker) -> None:
        point_prometheus_client_at(run_directory(self.config.metrics_dir))
        import prometheus_client as prom

        labels = ["queue_name", "actor_name"]
        registry = prom.CollectorRegistry()  # multiprocess files are what get served

        def counter(name: str, doc: str) -> Any:
            return prom.Counter(name, doc, labels, registry=registry)

        self.children = {}
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
            self._children(message)["inprogress"].inc()
            self.started[message.message_id] = time.monotonic()

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        if not self.metrics:
            return
        children = self._children(message)
        started = self.started.pop(message.message_id, None)
        if started is not None:
            children["duration"].observe((time.monotonic() - started) * 1000)
            children["inprogress"].dec()
        children["messages"].inc()
        if exception is not None:
            children["errors"].inc()

    # A message skipped by middleware (AgeLimit's, past its max_age) still counts as processed.
    after_skip_message = after_process_message

    def _inc(self, name: str, message) -> None:
        self._children(message)[name].inc()

    def _children(self, message) -> dict[str, Any]:
        # labels() takes a lock and hashes its arguments on every call; the
        # children of a (queue, actor) pair are kept instead (few pairs exist),
        # found with one lookup a hook.
        key = (message.queue_name, message.actor_name)
        children = self.children.get(key)
        if children is None:
            children = self.children[key] = {
                name: metric.labels(*key) for name, metric in self.metrics.items()}
        return children


def serve_forever() -> int:
    """The fork ``dramatiq`` starts once per run: the Metrics middleware's server.

    It loads the run's broker as Dramatiq's workers do, from the run's own
    command line, and serves with the ``Metrics`` middleware installed on it.
    """
    args = make_argument_parser().parse_args(sys.argv[1:])
    _, broker = import_broker(args.broker)
    (metrics,) = [m for m in broker.middleware if isinstance(m, Metrics)]
    assert metrics.serve is not None  # forks is empty without it
    return metrics.serve(broker, metrics.config, run_directory(metrics.config.metrics_dir))
