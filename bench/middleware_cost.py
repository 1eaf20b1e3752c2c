"""What each middleware of the production stack costs a job, in microseconds.

    .venv/bin/python -m bench.middleware_cost [--jobs 20000]

Runs the hooks a successful job passes (before/after ``process_message``,
before/after ``ack``) of each middleware of ``broker.py``'s broker, one
middleware at a time, over ``--jobs`` messages of a no-op actor, in this
thread, and prints the cost per job of each and of the broker's emit of all of
them. Nothing connects to a database: the hooks of a job that succeeds and
stores no result do not (Results writes only for ``store_results`` actors).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware

HOOKS = [("before_process_message", {}), ("after_process_message", {"result": None}),
         ("before_ack", {}), ("after_ack", {})]


def defined_hooks(middleware: Middleware) -> list[tuple[str, dict]]:
    return [(name, kwargs) for name, kwargs in HOOKS
            if getattr(type(middleware), name, None) is not getattr(Middleware, name)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    args = parser.parse_args()
    os.environ.setdefault("JOBS_METRICS_DIR", tempfile.mkdtemp(prefix="bench-metrics-"))

    from broker import broker

    @dramatiq.actor(queue_name="bench-middleware", max_retries=0)
    def noop() -> None:
        pass

    for middleware in broker.middleware:
        if hasattr(middleware, "after_process_boot"):
            middleware.after_process_boot(broker)
    messages = [MessageProxy(noop.message()) for _ in range(args.jobs)]

    print(f"{'middleware':<24} {'hooks a job passes':<60} us/job")
    total = 0.0
    for middleware in broker.middleware:
        hooks = defined_hooks(middleware)
        if not hooks:
            continue
        calls = [(getattr(middleware, name), kwargs) for name, kwargs in hooks]
        started = time.perf_counter()
        for message in messages:
            for hook, kwargs in calls:
                hook(broker, message, **kwargs)
        cost = (time.perf_counter() - started) / args.jobs * 1e6
        total += cost
        names = ", ".join(name for name, _ in hooks)
        print(f"{type(middleware).__name__:<24} {names:<60} {cost:6.1f}")
    started = time.perf_counter()
    for message in messages:
        broker.emit_before("process_message", message)
        broker.emit_after("process_message", message, result=None)
        broker.emit_before("ack", message)
        broker.emit_after("ack", message)
    emitted = (time.perf_counter() - started) / args.jobs * 1e6
    print(f"{'sum of the above':<85} {total:6.1f}")
    print(f"{'the broker emitting all four hooks':<85} {emitted:6.1f}")


if __name__ == "__main__":
    main()
