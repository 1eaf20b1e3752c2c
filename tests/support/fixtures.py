"""Fixtures of the integration and acceptance layers: PostgreSQL, the broker,
empty tables per test, in-process and CLI workers, a PostgreSQL of a test's own.

Nothing here runs until a test asks: the unit layer never starts PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import dramatiq
import psycopg2
import psycopg2.errors
import pytest
from psycopg2 import sql
from psycopg2.extras import RealDictCursor
from pydantic import SecretStr

from pgbroker.queries import named_queries
from pipeline.db import QUERIES, Database, Transaction
from tests.support import wait_for
from tests.support.environment import (
    DATABASE_URL,
    EMBEDDED,
    EMBEDDED_DATA_DIR,
    PIPELINE_SCHEMA,
    ROOT,
    SCHEMA,
    TEST_ENV,
    WORKSPACE,
)


@pytest.fixture(scope="session")
def database() -> Iterator[str]:
    """The URL of the test server, started here when it is the embedded one."""
    if EMBEDDED:
        import pgserver

        server = pgserver.get_server(EMBEDDED_DATA_DIR, cleanup_mode="stop")
        assert server.get_uri() == DATABASE_URL, (
            f"the embedded server's socket is not in {EMBEDDED_DATA_DIR} "
            f"({server.get_uri()}): set TEST_DATABASE_URL")
    prepare_database(DATABASE_URL)
    yield DATABASE_URL
    with db() as conn, conn.cursor() as cur:
        for schema in (SCHEMA, PIPELINE_SCHEMA):
            cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))
    shutil.rmtree(WORKSPACE, ignore_errors=True)


@pytest.fixture(scope="session")
def broker(database):
    import actors  # noqa: F401  (declares the job types)
    import tests.support.workload  # noqa: F401  (declares the test actors)
    from broker import broker as configured

    configured.ensure_schema()
    # What the dramatiq CLI emits once per worker process; TimeLimit starts its
    # checker thread on it.
    configured.emit_after("process_boot")
    yield configured
    configured.close()


def prepare_database(url: str) -> None:
    """The test schemas on the server at ``url``: migrated, with ``test_runs``."""
    from pgbroker import migrations
    from pipeline.db import MIGRATIONS

    conn = psycopg2.connect(url)
    try:
        migrations.migrate(conn, SCHEMA)
        migrations.migrate(conn, PIPELINE_SCHEMA, MIGRATIONS)
    finally:
        conn.close()
    with db(url) as conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.test_runs ("
                " key text NOT NULL, note text, pid integer,"
                " at timestamptz NOT NULL DEFAULT clock_timestamp())"
            ).format(sql.Identifier(SCHEMA))
        )


@contextmanager
def db(url: str = DATABASE_URL) -> Iterator[psycopg2.extensions.connection]:
    """A connection of the test's own, committed at the end of the block."""
    conn = psycopg2.connect(url)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def query(text: str, *params, url: str = DATABASE_URL) -> list[tuple]:
    """Run SQL with ``{schema}`` filled in; returns rows, if any."""
    with db(url) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL(text).format(schema=sql.Identifier(SCHEMA)), params)
        return cur.fetchall() if cur.description else []


def runs(key: str, note: str = "", url: str = DATABASE_URL) -> int:
    """How many runs of ``key`` (with ``note``) the test actors recorded."""
    return query("SELECT count(*) FROM {schema}.test_runs WHERE key = %s AND note = %s",
                 key, note, url=url)[0][0]


def ticks() -> list[tuple[int, int]]:
    """(slot, jobs) per tick of the test actor probe_tick."""
    return query(
        "SELECT singleton_slot, count(*) FROM {schema}.\"queue\" "
        "WHERE message->>'actor_name' = 'probe_tick' GROUP BY 1 ORDER BY 1"
    )


def empty_tables(url: str = DATABASE_URL) -> None:
    """Empty every table of the test schemas but the migrations' record, and open
    the claim fence (an empty one is what a crash leaves: 0022_claim_fence.sql).

    The tables are read from the catalog, so a migration's new table is emptied too.
    A worker a module keeps running (a container, say) may hold one table while it
    waits for another that TRUNCATE holds: PostgreSQL then ends one of the two,
    and if it is the TRUNCATE, it is tried again.
    """
    for attempt in range(5):
        try:
            with db(url) as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT schemaname, tablename FROM pg_tables"
                    " WHERE schemaname = ANY(%s) AND tablename <> 'schema_migrations'",
                    ([SCHEMA, PIPELINE_SCHEMA],))
                found = set(cur.fetchall())
                tables = [sql.Identifier(schema, table) for schema, table in found
                          if table != "claims_open"]
                if tables:
                    cur.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(tables)))
                # Open, as a test that closed it may have left it.
                if (SCHEMA, "claims_open") in found:
                    cur.execute(sql.SQL(
                        "INSERT INTO {} (since) VALUES ('-infinity') "
                        "ON CONFLICT (only_row) DO UPDATE SET since = EXCLUDED.since").format(
                            sql.Identifier(SCHEMA, "claims_open")))
            return
        except psycopg2.errors.DeadlockDetected:
            if attempt == 4:
                raise


@pytest.fixture(autouse=True)
def clean_tables(request):
    """Every test that uses the broker starts from empty tables."""
    if "broker" in request.fixturenames:
        request.getfixturevalue("broker")
        empty_tables()
    yield


class RollbackDatabase(Database):
    """A pipeline ``Database`` whose every transaction is a savepoint of one
    outer transaction, rolled back when the test ends: nothing it writes stays,
    and nothing else (no worker) can see it."""

    def __init__(self, conn: psycopg2.extensions.connection) -> None:
        self.conn = conn
        self.schema = PIPELINE_SCHEMA
        self.queries = named_queries(QUERIES, PIPELINE_SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.conn.cursor(cursor_factory=RealDictCursor) as cur:
            cur.execute("SAVEPOINT test_transaction")
            try:
                yield Transaction(cur, self.queries)
            except BaseException:
                cur.execute("ROLLBACK TO SAVEPOINT test_transaction")
                raise
            cur.execute("RELEASE SAVEPOINT test_transaction")


@pytest.fixture
def rollback_db(database) -> Iterator[RollbackDatabase]:
    """The pipeline's tables in a transaction of the test's own, rolled back after it.

    For pipeline functions called directly (no worker): pass it where they take a
    ``Database``; ``.transaction()`` gives what they take as a ``Transaction``.
    """
    conn = psycopg2.connect(database)
    try:
        yield RollbackDatabase(conn)
    finally:
        conn.rollback()
        conn.close()


@pytest.fixture
def start_worker(broker) -> Iterator[Callable[..., dramatiq.Worker]]:
    """Start in-process workers; all are stopped at the end of the test."""
    started: list[dramatiq.Worker] = []

    def start(threads: int = 4, queues: set[str] | None = None) -> dramatiq.Worker:
        worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100,
                                 queues=queues)
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop(timeout=10_000)
    # Worker.start() adds a middleware of its own that stop() leaves behind.
    broker.middleware[:] = [
        m for m in broker.middleware if type(m).__name__ != "_WorkerMiddleware"
    ]
    broker.draining = False


@pytest.fixture
def worker(start_worker) -> dramatiq.Worker:
    return start_worker()


@pytest.fixture
def configure(broker):
    """``configure(fixer_command=...)``: this test's in-process jobs run with these
    pipeline settings (fields of ``PipelineConfig``), the usual ones after it."""
    from actors import runtime

    with ExitStack() as stack:

        def apply(**pipeline):
            changed = runtime.current().replace(pipeline=pipeline)
            return stack.enter_context(runtime.use(changed))

        yield apply


@pytest.fixture
def smtp(configure):
    """A real SMTP server that this test's in-process jobs mail through."""
    from actors import runtime
    from tests.support.mail import smtp_server

    with smtp_server() as inbox:
        mail = runtime.current().pipeline.mail
        # The loopback server speaks no TLS: the mail goes in clear to it.
        configure(mail=dataclasses.replace(mail, smtp_url=SecretStr(inbox.url), tls="optional"))
        yield inbox


class CliWorker:
    """``dramatiq`` run as users run it, in a subprocess of its own group."""

    def __init__(self, *modules: str, processes: int = 1, threads: int = 2,
                 extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None,
                 log: Path) -> None:
        self.log_path = log
        self.log = open(log, "w")  # noqa: SIM115 - open for the worker's life; stop() closes it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", *modules, "--processes", str(processes),
             "--threads", str(threads), "--worker-shutdown-timeout", "30000", *extra_args],
            cwd=ROOT, env={**os.environ, **TEST_ENV, **(env or {})},
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text()

    def wait_ready(self, timeout: float = 30) -> None:
        wait_for(lambda: "Worker process is ready" in self.output()
                 or self.proc.poll() is not None, timeout=timeout, what="worker boot")
        assert self.proc.poll() is None, self.output()

    def signal(self, sig: int) -> None:
        """SIGKILL, SIGSTOP and SIGCONT go to every process of the worker; others to
        the main process, which passes them on as dramatiq does."""
        if sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCONT):
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def cli_worker(broker, tmp_path) -> Iterator[Callable[..., CliWorker]]:
    """Start ``dramatiq`` processes (default module: ``actors``); stopped at the end."""
    started: list[CliWorker] = []

    def start(*modules: str, **kwargs) -> CliWorker:
        worker = CliWorker(*(modules or ("actors",)),
                           log=tmp_path / f"worker-{len(started)}.log", **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def private_postgres(tmp_path):
    """A PostgreSQL of the test's own, which it may stop and start."""
    from embedded import EmbeddedPostgres

    server = EmbeddedPostgres(tmp_path / "pg")
    prepare_database(server.url)
    yield server
    server.close()


# Rows another producer could write (see tests/integration/test_poison_rows.py).

def insert_row(message: dict | None, *, queue: str = "probe-record",
               message_id: str | None = None) -> str:
    message_id = message_id or str(uuid.uuid4())
    query('INSERT INTO {schema}."queue" (message_id, queue_name, "state", message) '
          "VALUES (%s, %s, 'queued', %s)",
          message_id, queue, None if message is None else json.dumps(message))
    with db() as conn, conn.cursor() as cur:
        cur.execute(f"NOTIFY \"{SCHEMA}.{queue}\"")
    return message_id


def good_message(message_id: str, **changes) -> dict:
    return {"queue_name": "probe-record", "actor_name": "probe_record", "args": [],
            "kwargs": {"key": f"poison-{message_id[:8]}"}, "options": {},
            "message_id": message_id, "message_timestamp": 0, **changes}
