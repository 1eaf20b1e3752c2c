"""``pts-jobs``: look after the job queue from a shell.

    pts-jobs migrate                       create or upgrade the schema
    pts-jobs stats                         jobs per queue and state, oldest age
    pts-jobs show JOB_ID                   one job's state, attempts, error, result
    pts-jobs dead list [--queue Q]         dead jobs, newest first
    pts-jobs dead retry JOB_ID | --queue Q | --all
    pts-jobs purge [--older-than 7d] [--state done|dead]
    pts-jobs recover                       re-queue jobs whose worker's lease ran out
    pts-jobs workers                       live worker processes (the registry)
    pts-jobs health                        the database answers and this host's workers
                                           are well (the container health check)
    pts-jobs scheduler [MODULE ...]        run the periodic scheduler (default: actors)
    pts-jobs web [--host H] [--port P]     serve the dashboard and producer API
    pts-jobs sandbox                       where fixers would run here, and with what limits

``--json`` prints machine-readable output. Exit codes: 0 success, 1 no such job,
2 bad usage, 3 database unreachable or refusing, 4 a worker of this host is
unwell (dead threads, a hung consumer, no heartbeat).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import socket
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

EXIT_NOT_FOUND, EXIT_USAGE, EXIT_DATABASE, EXIT_UNHEALTHY = 1, 2, 3, 4


class Unhealthy(RuntimeError):
    """``pts-jobs health`` found a worker of this host unwell."""
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


# Longer than any retention anyone means; past it timedelta overflows.
_LONGEST = timedelta(days=100 * 365)


def duration(text: str) -> timedelta:
    """``30s``, ``15m``, ``12h`` or ``7d``, at most 100 years."""
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30s, 15m, 12h or 7d")
    try:
        value = timedelta(**{_UNITS[match[2]]: float(match[1])})
    except OverflowError:
        value = timedelta.max
    if value > _LONGEST:
        raise argparse.ArgumentTypeError(f"{text!r} is longer than 100 years")
    return value


def count(text: str, *, most: int = 10_000) -> int:
    """A whole number from 1 to ``most``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= most:
        raise argparse.ArgumentTypeError(f"{text} is not between 1 and {most}")
    return value


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="pts-jobs", description="Look after the job queue.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument("--json", action="store_true", help="machine-readable output")
    commands = root.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="create or upgrade the schema")
    commands.add_parser("stats", help="jobs per queue and state")
    show = commands.add_parser("show", help="one job")
    show.add_argument("job_id")

    dead = commands.add_parser("dead", help="dead letters").add_subparsers(
        dest="dead_command", required=True
    )
    dead_list = dead.add_parser("list", help="dead jobs, newest first")
    dead_list.add_argument("--queue")
    dead_list.add_argument("--limit", type=count, default=50, help="1 to 10000")
    retry = dead.add_parser("retry", help="replay dead jobs with attempts reset")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("job_id", nargs="?")
    which.add_argument("--queue")
    which.add_argument("--all", action="store_true")

    purge = commands.add_parser("purge", help="delete old finished jobs, in batches")
    purge.add_argument("--older-than", type=duration,
                       help="default: the retention setting of each state")
    purge.add_argument("--state", choices=["done", "dead"], action="append",
                       help="default: both")
    commands.add_parser("recover", help="re-queue jobs whose worker's lease ran out")
    commands.add_parser("workers", help="live worker processes: host, pid, queues, heartbeat")
    commands.add_parser("health", help="exit 0 if the database answers and this host's "
                        "workers are well; 3 if it does not answer, 4 if a worker is unwell")
    commands.add_parser(
        "sandbox", help="where fixers run; only the container runtime is for untrusted fixers")
    schedule = commands.add_parser("scheduler", help="run the periodic scheduler")
    schedule.add_argument("modules", nargs="*", default=["actors"])
    web = commands.add_parser("web", help="serve the dashboard and producer API")
    web.add_argument("--host", help="default: JOBS_WEB_HOST (127.0.0.1)")
    web.add_argument("--port", type=int, help="default: JOBS_WEB_PORT (8090)")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "sandbox":
        output(sandbox_report(), as_json=args.json)
        return 0
    if args.command == "scheduler":
        import logging

        import scheduler

        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return scheduler.main(args.modules)
    if args.command == "web":
        import logging

        from web.server import main as serve

        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return serve(args.host, args.port)
    import psycopg2
    from dramatiq.errors import ConnectionError as BrokerConnectionError

    from pgbroker import JobNotFound
    from pgbroker.redact import redact

    try:
        from broker import broker

        result = run(args, broker)
    except JobNotFound as error:
        print(f"pts-jobs: {error}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except Unhealthy as error:
        print(f"pts-jobs: unhealthy: {error}", file=sys.stderr)
        return EXIT_UNHEALTHY
    except (psycopg2.Error, BrokerConnectionError, OSError) as error:
        url = redact(getattr(locals().get("broker"), "url", "") or "")
        print(f"pts-jobs: database error ({url}): {redact(str(error).strip())}", file=sys.stderr)
        return EXIT_DATABASE
    output(result, as_json=args.json)
    return 0


def sandbox_report(settings: Any = None) -> dict[str, Any]:
    """The runtime this machine's settings pick for fixers, and what it isolates."""
    from pipeline.sandbox import SandboxConfig, SandboxError, choose_runtime

    if settings is None:
        from settings import settings
    config = SandboxConfig.from_settings(settings)
    try:
        runtime: Any = choose_runtime(config)
    except SandboxError as error:
        return {"runtime": None, "error": str(error)}
    limits = config.limits
    return {
        "runtime": runtime.name,
        "isolates_untrusted_code": runtime.isolates,
        "note": ("a locked-down container per fix attempt" if runtime.isolates else
                 "NOT for untrusted fixers: use the container runtime"),
        # None: this runtime would refuse to run a fixer on this machine.
        "confinement": runtime.confinement(),
        "image": config.image if runtime.isolates else None,
        "network": config.network or "none",
        "env_allow": [name for name, _ in config.extra_env],
        "memory_mib": limits.memory // 2**20, "cpus": limits.cpus, "pids": limits.pids,
    }


def run(args: argparse.Namespace, broker: Any) -> Any:
    from pgbroker import jobs

    if args.command == "migrate":
        schemas = [broker.schema, *(schema for schema, _ in broker.extra_migrations)]
        return {"schemas": schemas, "applied": broker.migrate()}
    if args.command == "stats":
        return jobs.queue_stats(broker=broker)
    if args.command == "show":
        return jobs.get_job(args.job_id, broker=broker)
    if args.command == "dead" and args.dead_command == "list":
        return jobs.list_dead(args.queue, limit=args.limit, broker=broker)
    if args.command == "dead":
        if args.job_id:
            jobs.replay(args.job_id, broker=broker)
            return {"replayed": 1}
        with Progress("replayed") as progress:
            return {"replayed": jobs.replay_dead(args.queue, broker=broker, progress=progress)}
    if args.command == "purge":
        from settings import settings

        retention = {"done": settings.keep_done_for, "dead": settings.keep_dead_for}
        deleted = {}
        for state in args.state or ["done", "dead"]:
            with Progress(f"deleted {state}") as progress:
                deleted[state] = jobs.purge(state, args.older_than or retention[state],
                                            broker=broker, progress=progress)
        return {"deleted": deleted}
    if args.command == "recover":
        return {"recovered": broker.rescue_expired()}
    if args.command == "workers":
        return jobs.list_workers(broker=broker)
    if args.command == "health":
        problems = jobs.unwell_workers(socket.gethostname(), broker=broker)
        if problems:
            raise Unhealthy("; ".join(problems))
        return {"database": "ok", "workers": "ok"}
    raise AssertionError(args.command)  # pragma: no cover - argparse forbids it


class Progress:
    """A running count on stderr while a long batch operation goes on."""

    def __init__(self, label: str) -> None:
        self.label, self.done = label, 0
        self.live = sys.stderr.isatty()

    def __call__(self, count: int) -> None:
        self.done += count
        if self.live:
            print(f"\r{self.label}: {self.done}", end="", file=sys.stderr, flush=True)

    def __enter__(self) -> Callable[[int], None]:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live and self.done:
            print(file=sys.stderr)


def output(result: Any, *, as_json: bool) -> None:
    rows = result if isinstance(result, list) else [result]
    plain = [
        dataclasses.asdict(r) if dataclasses.is_dataclass(r) and not isinstance(r, type) else r
        for r in rows
    ]
    if as_json:
        print(json.dumps(plain if isinstance(result, list) else plain[0], default=str, indent=2))
    elif isinstance(result, list):
        print(table(plain) if plain else "(none)")
    else:
        width = max(map(len, plain[0]))
        for key, value in plain[0].items():
            print(f"{key:<{width}}  {fmt(value)}")


def table(rows: list[dict]) -> str:
    headers = list(rows[0])
    cells = [[fmt(row[h]) for h in headers] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ",".join(value)
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


if __name__ == "__main__":
    sys.exit(main())
