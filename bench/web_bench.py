"""How fast the dashboard's pages answer with a million jobs kept.

    .venv/bin/python -m bench.web_bench --rows 1000000

Fills a scratch schema (``bench_web``) with jobs as retention keeps them: a
week of done ones (busier in the last hour, so the charts have a shape), 3 %
dead with a handful of distinct errors, a backlog of queued and delayed ones,
some running and cancelled; every job type's queue, real actor names and
payloads. Then serves the dashboard from this process (uvicorn, over loopback)
and times each page over HTTP, as a logged-in admin: the median and the
slowest of 7 requests after one warm-up. The overview's counts are cached for
15 s, so its first, uncached answer is timed apart.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import threading
import time

import psycopg2
from psycopg2 import sql

from bench.broker_bench import database_url

SCHEMA = "bench_web"
PIPELINE = "bench_web_pipeline"
QUEUES = {
    "process-bug-report": "process_bug_report", "analyze-codebase": "analyze_codebase",
    "execute-fix": "execute_fix", "cleanup-container": "cleanup_container",
    "send-notification": "send_notification", "maintenance": "prune_jobs",
}
ERRORS = [
    "TimeoutError: git clone timed out after 300s",
    "ConnectionError: SMTP server refused the connection",
    "RuntimeError: fixer exited with status 2",
    "ValueError: bug report has no usable text",
    "worker lost 4 times while running this job (last holder: w1:4242:ab12cd34)",
]
BATCH = 100_000


def fill(cur, rows: int) -> None:
    queues, actors = list(QUEUES), list(QUEUES.values())
    for start in range(0, rows, BATCH):
        cur.execute(sql.SQL(
            """
            WITH r AS (
                SELECT i, gen_random_uuid() AS id, 1 + i %% 6 AS q,
                       CASE WHEN i %% 1000 < 940 THEN 'done'
                            WHEN i %% 1000 < 970 THEN 'rejected'
                            WHEN i %% 1000 < 985 THEN 'queued'
                            WHEN i %% 1000 < 986 THEN 'consumed'
                            ELSE 'cancelled' END AS st,
                       -- a third of the jobs in the last hour, the rest over a week
                       CASE WHEN i %% 3 = 0 THEN now() - random() * interval '1 hour'
                            ELSE now() - random() * interval '7 days' END AS at
                FROM generate_series(%(start)s, %(stop)s) AS i
            )
            INSERT INTO {schema}."queue"
                (message_id, queue_name, "state", message, enqueued_at, available_at,
                 started_at, finished_at, attempts, last_error, lease_owner,
                 lease_expires_at, mtime)
            SELECT id, (%(queues)s::text[])[q], st::{schema}."state",
                   jsonb_build_object('queue_name', (%(queues)s::text[])[q],
                                      'actor_name', (%(actors)s::text[])[q], 'args', '[]'::jsonb,
                                      'kwargs', jsonb_build_object('bug_report_id', id),
                                      'options', '{{}}'::jsonb, 'message_id', id),
                   at,
                   CASE WHEN st = 'queued' AND i %% 2 = 0 THEN now() + interval '1 hour'
                        ELSE at END,
                   CASE WHEN st IN ('done', 'rejected', 'consumed') THEN at END,
                   CASE WHEN st IN ('done', 'rejected', 'cancelled')
                        THEN at + (0.02 + random() * random() * 30) * interval '1 second' END,
                   CASE WHEN st = 'rejected' THEN 4 WHEN st IN ('done', 'consumed') THEN 1
                        ELSE 0 END,
                   CASE WHEN st = 'rejected' THEN (%(errors)s::text[])[1 + i %% 5] END,
                   CASE WHEN st = 'consumed' THEN 'bench:' || (i %% 8) || ':0' END,
                   CASE WHEN st = 'consumed' THEN now() + interval '1 day' END,
                   at
            FROM r
            """).format(schema=sql.Identifier(SCHEMA)),
            {"start": start + 1, "stop": min(start + BATCH, rows), "queues": queues,
             "actors": actors, "errors": ERRORS})
        print(f"  {min(start + BATCH, rows):>9,} rows", flush=True)


def prepare(rows: int) -> None:
    from pgbroker import migrations
    from pipeline.db import MIGRATIONS

    conn = psycopg2.connect(database_url())
    with conn.cursor() as cur:
        for schema in (SCHEMA, PIPELINE):
            cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))
    conn.commit()
    migrations.migrate(conn, SCHEMA)
    migrations.migrate(conn, PIPELINE, MIGRATIONS)
    started = time.perf_counter()
    with conn.cursor() as cur:
        fill(cur, rows)
    conn.commit()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL('VACUUM ANALYZE {}."queue"').format(sql.Identifier(SCHEMA)))
    print(f"filled {rows:,} jobs in {time.perf_counter() - started:.0f} s")
    conn.close()


def serve(token: str, port: int):
    import uvicorn

    import actors  # noqa: F401
    from broker import broker
    from web.app import create_app
    from web.config import WebConfig
    from web.server import job_types, periodic_actors

    config = WebConfig(host="127.0.0.1", port=port, admin_token=token, viewer_token=None,
                       api_token=None, session_secret=secrets.token_hex(16),
                       session_max_age=3600, secure_cookies=False,
                       pipeline_schema=os.environ.get("JOBS_PIPELINE_SCHEMA", PIPELINE))
    app = create_app(broker, config, job_types=job_types(broker),
                     periodic=periodic_actors(broker))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server


def find(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found, pattern
    return found[1]


def timed(client, path: str, runs: int = 7) -> tuple[float, float]:
    client.get(path)  # warm-up: connections, plans, page cache
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="reuse the filled schema")
    args = parser.parse_args()
    os.environ.update(DATABASE_URL=database_url(), JOBS_SCHEMA_NAME=SCHEMA,
                      JOBS_PIPELINE_SCHEMA=PIPELINE)
    if not args.keep:
        prepare(args.rows)

    import httpx

    token, port = secrets.token_hex(8), 8499
    server = serve(token, port)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    login = client.get("/login").text
    csrf = find(r'name="csrf_token" value="([^"]+)"', login)
    client.post("/login", data={"csrf_token": csrf, "token": token})

    started = time.perf_counter()
    assert client.get("/").status_code == 200
    print(f"\n{'overview, counts not cached':<44} {(time.perf_counter() - started) * 1000:8.1f} ms")
    dead_id = find(r'href="/jobs/([0-9a-f-]{36})"', client.get("/jobs?state=dead").text)
    page20 = "/jobs"
    for _ in range(20):
        page20 = find(r'href="(/jobs\?[^"]*before=[^"]+)" rel="next"',
                      client.get(page20).text).replace("&amp;", "&")
    pages = {
        "overview (cached counts)": "/",
        "jobs, newest": "/jobs",
        "jobs, 21st page (keyset)": page20,
        "jobs, one queue": "/jobs?queue=execute-fix",
        "jobs, dead": "/jobs?state=dead",
        "jobs, dead of one queue": "/jobs?queue=send-notification&state=dead",
        "jobs, running": "/jobs?state=running",
        "jobs, one job type": "/jobs?job_type=analyze_codebase",
        "jobs, last 15 min": "/jobs?range=15m",
        "jobs, error contains 'SMTP'": "/jobs?error=SMTP",
        "jobs, error contains text no job has": "/jobs?error=no-such-text",
        "job page (dead job)": f"/jobs/{dead_id}",
        "dead letters by error": "/dead",
        "workers": "/workers",
        "schedules": "/schedules",
    }
    print(f"{'page':<44} {'median':>8}    {'max':>8}")
    for name, path in pages.items():
        median, worst = timed(client, path)
        print(f"{name:<44} {median:8.1f} ms {worst:8.1f} ms")
    server.should_exit = True


if __name__ == "__main__":
    main()
