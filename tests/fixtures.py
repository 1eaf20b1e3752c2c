"""Fixtures: the broker, a clean queue table, in-process and CLI workers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dramatiq
import psycopg2
import pytest
from psycopg2 import sql

from embedded import EmbeddedPostgres
from tests.conftest import DATABASE_URL, PIPELINE_SCHEMA, ROOT, SCHEMA, TEST_ENV, WORKSPACE
from tests.support import wait_for


@pytest.fixture(scope="session")
def broker():
    import actors  # noqa: F401  (declares the five job types)
    import tests.workload  # noqa: F401  (declares the test actors)
    from broker import broker as configured

    prepare_database(DATABASE_URL)
    configured.ensure_schema()
    # What the dramatiq CLI emits once per worker process; TimeLimit starts its
    # checker thread on it.
    configured.emit_after("process_boot")
    yield configured
    configured.close()
    with db() as conn, conn.cursor() as cur:
        for schema in (SCHEMA, PIPELINE_SCHEMA):
            cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))
    shutil.rmtree(WORKSPACE, ignore_errors=True)


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


@pytest.fixture(autouse=True)
def clean_tables(request):
    if "broker" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("broker")
    query('TRUNCATE {schema}."queue", {schema}.test_runs')
    with db() as conn, conn.cursor() as cur:
        cur.execute(sql.SQL(
            "TRUNCATE {0}.notifications, {0}.fix_job_steps, {0}.fix_jobs, "
            "{0}.codebase_knowledge, {0}.bug_reports, {0}.repo_links"
        ).format(sql.Identifier(PIPELINE_SCHEMA)))
    yield


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
def private_postgres(tmp_path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of the test's own, which it may stop and start."""
    server = EmbeddedPostgres(tmp_path / "pg")
    prepare_database(server.url)
    yield server
    server.close()
