"""Producers through a transaction-mode pooler (Supabase's PgBouncer on 6543).

Producers only INSERT and NOTIFY inside one transaction, which PgBouncer's
transaction mode supports; workers LISTEN, which it does not, so workers connect
directly. Runs wherever the ``pgbouncer`` binary is installed (.ci/run installs it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pgbroker import PostgresBroker
from tests.support import free_port, job_in, require, wait_for
from tests.support.environment import DATABASE_URL, SCHEMA
from tests.support.fixtures import query
from tests.support.workload import probe_record

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@pytest.fixture
def transaction_pooler() -> Iterator[str]:
    require(os.path.exists(PGBOUNCER), "pgbouncer is not installed (apt-get install pgbouncer)")
    target = urlsplit(DATABASE_URL)
    query = dict(part.split("=", 1) for part in target.query.split("&") if "=" in part)
    host = query.get("host") or target.hostname or "127.0.0.1"
    dbname = target.path.lstrip("/") or "postgres"
    user = target.username or "postgres"
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    (workdir / "pgbouncer.ini").write_text(
        f"[databases]\n{dbname} = host={host} port={target.port or 5432} dbname={dbname}\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n"
        f"auth_type = trust\nauth_file = {workdir / 'users.txt'}\n"
        # Fewer server connections than the producers' threads: their
        # transactions move between them, prepared statements or not.
        "pool_mode = transaction\ndefault_pool_size = 3\nunix_socket_dir =\n"
        f"logfile = {workdir / 'pgbouncer.log'}\n"
    )
    (workdir / "users.txt").write_text(f'"{user}" ""\n')
    os.chmod(workdir, 0o755)
    # PgBouncer refuses to run as root: run it as a user who may reach the server
    # (the owner of an embedded server's socket directory).
    command = [PGBOUNCER, str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:
        runner = Path(host).owner() if host.startswith("/") else "nobody"
        command[1:1] = ["-u", runner]
        shutil.chown(workdir, runner)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return proc.poll() is not None

    wait_for(listening, timeout=10, what="pgbouncer to listen")
    assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
    yield f"postgresql://{user}@127.0.0.1:{port}/{dbname}"
    proc.terminate()
    proc.wait(timeout=10)
    if proc.stdout:
        proc.stdout.close()
    shutil.rmtree(workdir, ignore_errors=True)


def test_a_producer_behind_a_transaction_mode_pooler_enqueues_and_wakes_workers(
    transaction_pooler, worker
):
    producer = PostgresBroker(url=transaction_pooler, schema=SCHEMA, pool_size=4)
    try:
        messages = [producer.enqueue(probe_record.message(key=f"pooled{i}")) for i in range(20)]
        producer.enqueue_many([probe_record.message(key=f"batch{i}") for i in range(20)])
    finally:
        producer.close()

    for message in messages:
        job_in(message.message_id, "done")


def test_producer_threads_behind_a_transaction_pooler_store_every_message_once(
    transaction_pooler, broker
):
    producer = PostgresBroker(url=transaction_pooler, schema=SCHEMA, pool_size=8)
    sent: list[str] = []

    def produce(thread: int) -> None:
        for i in range(25):
            sent.append(producer.enqueue(probe_record.message(key=f"t{thread}-{i}")).message_id)

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        producer.close()

    assert not any(thread.is_alive() for thread in threads)
    assert len(sent) == 200
    stored = query('SELECT count(*) FROM {schema}."queue" WHERE message_id = ANY(%s::uuid[])',
                   sent)
    assert stored == [(200,)]
