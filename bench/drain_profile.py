"""Where a drained job's cost goes: WAL, commits and CPU per job, server and workers.

    .venv/bin/python -m bench.drain_profile                  # 2 processes x 8 threads
    .venv/bin/python -m bench.drain_profile --processes 1 --jobs 50000
    .venv/bin/python -m bench.drain_profile --without-dashboard-index
    .venv/bin/python -m bench.drain_profile --analyze --drop-index queue_errored_idx
    .venv/bin/python -m bench.drain_profile --url postgresql://postgres@127.0.0.1:5499/postgres

Queues ``--jobs`` no-op jobs on a fresh ``pgserver`` cluster (initdb defaults),
drains them with this project's worker (the production middleware stack), and
prints, per job: WAL records, WAL bytes and WAL flushes (``pg_stat_wal``),
commits (``pg_stat_database``), and the CPU time of the server's processes and
of the worker's. ``--without-dashboard-index`` drops the dashboard's
``queue_listed_idx`` first, to show what it costs, and ``--drop-index`` any
index; ``--analyze`` gives the planner statistics of the queued jobs (as
autovacuum would within a minute), which changes its plans. ``--url`` uses a
server of one's own, which can load pg_stat_statements: each statement's time,
calls, rows and buffers are then printed as well. Backends report their
WAL counters about once a second, so a backlog drained in under a few seconds
undercounts; the rate is right at any size.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import psutil

from bench import broker_bench

DASHBOARD_INDEXES = ["queue_listed_idx"]
COUNTERS = """
SELECT wal_records, wal_bytes, wal_sync,
       (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())
FROM pg_stat_wal
"""
# What each statement cost, where the server has pg_stat_statements loaded
# (shared_preload_libraries; pgserver's build has not).
STATEMENTS = """
SELECT total_exec_time, calls, rows, shared_blks_hit + shared_blks_read,
       left(regexp_replace(query, '\\s+', ' ', 'g'), 60)
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY total_exec_time DESC
LIMIT 5
"""


def cpu_seconds(process: psutil.Process) -> float:
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--without-dashboard-index", action="store_true")
    parser.add_argument("--analyze", action="store_true",
                        help="ANALYZE the queued jobs first, as autovacuum soon would")
    parser.add_argument("--drop-index", action="append", default=[], metavar="NAME",
                        help="drop this index of the queue table first (repeatable)")
    parser.add_argument("--url", help="a server on this machine to use instead of a fresh "
                        "pgserver cluster (its schema bench_ours is replaced); with "
                        "pg_stat_statements there, each statement's cost is printed too")
    args = parser.parse_args()
    dropped = [*(DASHBOARD_INDEXES if args.without_dashboard_index else []), *args.drop_index]

    server = (contextlib.nullcontext(args.url) if args.url
              else broker_bench.fresh_server("bench-profile-"))
    with server as url:
        broker_bench.reset_schema(url, "ours")
        for index in dropped:
            broker_bench.execute(url, f"DROP INDEX {broker_bench.SCHEMAS['ours']}.{index}")
        broker_bench.fill(url, "ours", args.jobs)
        if args.analyze:
            broker_bench.execute(url, f"ANALYZE {broker_bench.SCHEMAS['ours']}.queue")
        # The checkpointer lives as long as the server (a backend of ours
        # would be gone once its connection closed); its parent is the postmaster.
        (checkpointer,) = broker_bench.execute(
            url, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")[0]
        postmaster = psutil.Process(checkpointer).parent()
        assert postmaster is not None
        # The server's counters from before the worker starts: a small backlog
        # is drained before start_worker returns. The worker's CPU counts from
        # its ready line, so its imports are left out.
        before = broker_bench.execute(url, COUNTERS)[0]
        (profiled,) = broker_bench.execute(
            url, "SELECT to_regclass('pg_stat_statements') IS NOT NULL")[0]
        if profiled:
            broker_bench.execute(url, "SELECT pg_stat_statements_reset()")
        server_cpu = cpu_seconds(postmaster)
        worker = broker_bench.start_worker(url, "ours", processes=args.processes)
        try:
            worker_cpu = cpu_seconds(psutil.Process(worker.pid))
            done = (f"SELECT count(*) FROM {broker_bench.SCHEMAS['ours']}.queue "
                    "WHERE state = 'done'")
            while broker_bench.execute(url, done)[0][0] < args.jobs:
                time.sleep(0.2)
            server_cpu = cpu_seconds(postmaster) - server_cpu
            worker_cpu = cpu_seconds(psutil.Process(worker.pid)) - worker_cpu
            after = broker_bench.execute(url, COUNTERS)[0]
            statements = broker_bench.execute(url, STATEMENTS) if profiled else []
        finally:
            broker_bench.stop_worker(worker)
        rate = args.jobs / broker_bench.processing_window(url, "ours")
    records, wal_bytes, flushes, commits = (
        (a - b) / args.jobs for a, b in zip(after, before, strict=True))
    print(f"{args.processes} process(es) x 8 threads, {args.jobs:,} jobs"
          f"{', analyzed' if args.analyze else ''}"
          f"{', without ' + ', '.join(dropped) if dropped else ''}: "
          f"{rate:,.0f} jobs/s")
    print(f"per job: {records:.1f} WAL records, {wal_bytes:,.0f} WAL bytes, "
          f"{flushes:.3f} WAL flushes, {commits:.3f} commits, "
          f"server CPU {server_cpu / args.jobs * 1e6:.0f} us, "
          f"worker CPU {worker_cpu / args.jobs * 1e6:.0f} us")
    for milliseconds, calls, rows, blocks, query in statements:
        print(f"  {milliseconds / args.jobs * 1e3:5.1f} us a job, {calls:,} calls, "
              f"{rows / calls:.1f} rows and {blocks / calls:.0f} buffers a call: {query}")


if __name__ == "__main__":
    main()
