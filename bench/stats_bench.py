"""How long the queue-depth query behind /metrics takes with millions of rows kept.

    .venv/bin/python -m bench.stats_bench --rows 1000000,5000000

Fills a scratch schema with finished jobs (done and dead, as retention keeps
them for 7 and 30 days) across the five queues and a backlog of 10,000 waiting
ones, then times both halves of the stats query at each size. /metrics runs the
pending half at most every 5 s and the finished half at most every minute.
"""

from __future__ import annotations

import argparse
import statistics
import time

import psycopg2
from psycopg2 import sql

from bench.broker_bench import database_url
from pgbroker import migrations
from pgbroker.queries import queries

SCHEMA = "bench_stats"
QUEUES = ["process-bug-report", "analyze-codebase", "execute-fix", "cleanup-container",
          "send-notification"]


def fill(conn, rows: int, already: int) -> None:
    with conn.cursor() as cur:
        cur.execute(sql.SQL(
            """
            INSERT INTO {}.queue (message_id, queue_name, state, message, mtime, finished_at)
            SELECT gen_random_uuid(), (%s::text[])[1 + i %% 5],
                   CASE WHEN i %% 50 = 0 THEN 'rejected' ELSE 'done' END::{}.state,
                   '{{"actor_name": "a"}}'::jsonb,
                   now() - (i %% 600000) * interval '1 second', now()
            FROM generate_series(%s, %s) AS i
            """).format(sql.Identifier(SCHEMA), sql.Identifier(SCHEMA)),
            (QUEUES, already + 1, rows))
    conn.commit()


def median_ms(cur, query) -> float:
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        cur.execute(query)
        cur.fetchall()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="1000000,5000000")
    args = parser.parse_args()
    conn = psycopg2.connect(database_url())
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    conn.commit()
    migrations.migrate(conn, SCHEMA)
    with conn.cursor() as cur:
        cur.execute(sql.SQL(
            "INSERT INTO {}.queue (message_id, queue_name, state, message) "
            "SELECT gen_random_uuid(), 'execute-fix', 'queued', '{{}}' "
            "FROM generate_series(1, 10000)").format(sql.Identifier(SCHEMA)))
    conn.commit()
    pending, finished = (queries(SCHEMA)[f"queue_stats_{part}"] for part in ("pending",
                                                                              "finished"))
    done = 0
    print(f"{'finished rows kept':>18} | {'pending query':>16} | {'finished query':>16}"
          "   (median of 5, ms)")
    for target in (int(n) for n in args.rows.split(",")):
        fill(conn, target, done)
        done = target
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("VACUUM ANALYZE {}.queue").format(sql.Identifier(SCHEMA)))
            medians = [median_ms(cur, query) for query in (pending, finished)]
        conn.autocommit = False
        print(f"{target:>18,} | {medians[0]:>16.1f} | {medians[1]:>16.1f}")
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(SCHEMA)))
    conn.commit()


if __name__ == "__main__":
    main()
