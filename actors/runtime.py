"""What the actors hand the pipeline: its database and configuration.

Built once per process from the broker the actors are bound to and from
``Settings``. Tests that need another configuration build their own
:class:`Runtime` and install it with :func:`use`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import broker as configured
import settings as configuration
from pgbroker import PostgresBroker
from pipeline.config import PipelineConfig
from pipeline.db import Database
from pipeline.sandbox import Runtime as SandboxRuntime
from pipeline.sandbox import choose_runtime
from settings import Settings


@dataclass(frozen=True)
class Retention:
    """How long finished jobs are kept (prune-jobs)."""

    keep_done_for: timedelta
    keep_dead_for: timedelta


@dataclass(frozen=True)
class Runtime:
    broker: PostgresBroker
    db: Database
    pipeline: PipelineConfig
    retention: Retention

    @classmethod
    def build(cls, broker: PostgresBroker, settings: Settings) -> Runtime:
        return cls(
            broker=broker,
            db=Database(broker.pool, schema=settings.pipeline_schema,
                        timeout=broker.enqueue_timeout, prepare=broker.ensure_schema),
            pipeline=PipelineConfig.from_settings(settings),
            retention=Retention(keep_done_for=settings.keep_done_for,
                                keep_dead_for=settings.keep_dead_for),
        )

    @functools.cached_property
    def sandbox(self) -> SandboxRuntime:
        """Where fixers run: chosen on first use (the Docker engine is asked once)."""
        return choose_runtime(self.pipeline.sandbox)

    def replace(self, **changes: Any) -> Runtime:
        """A copy with ``changes``; ``pipeline=`` takes a dict of PipelineConfig fields too."""
        pipeline = changes.get("pipeline")
        if isinstance(pipeline, dict):
            sandbox = pipeline.pop("sandbox", None)
            if isinstance(sandbox, dict):  # fields of SandboxConfig
                pipeline["sandbox"] = dataclasses.replace(self.pipeline.sandbox, **sandbox)
            elif sandbox is not None:
                pipeline["sandbox"] = sandbox
            changes["pipeline"] = dataclasses.replace(self.pipeline, **pipeline)
        return dataclasses.replace(self, **changes)


_lock = threading.Lock()
_current: Runtime | None = None


def current() -> Runtime:
    """This process's runtime, built on first use from the broker and the settings."""
    global _current
    with _lock:
        if _current is None:
            _current = Runtime.build(configured.broker, configuration.settings)
        return _current


@contextlib.contextmanager
def use(runtime: Runtime) -> Iterator[Runtime]:
    """Run the block's jobs (in this process) with ``runtime``; the previous one after."""
    global _current
    with _lock:
        previous, _current = _current, runtime
    try:
        yield runtime
    finally:
        with _lock:
            _current = previous
