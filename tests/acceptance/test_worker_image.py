"""Dockerfile.worker, built from the committed checkout and run for real.

The container shares the host's network namespace and reaches the test's
PostgreSQL (TCP or the embedded one's unix socket) through a TCP proxy on
loopback that the test can cut, to see the health check notice a database that
went away. Notifications go to an
SMTP server in the test whose DATA answer takes a while, to have a job in
flight when the container is stopped.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller

from tests.acceptance.docker_support import (
    MEASURED,
    Stopwatch,
    TcpProxy,
    database_upstream,
    docker,
    health,
    image_size_mb,
    inspect,
    url_through,
)
from tests.support import free_port, http_get, job_in, wait_for
from tests.support.environment import DATABASE_URL, ROOT, RUN, SCHEMA, TEST_ENV
from tests.support.fixtures import db

GRACE_S = 30  # docker stop's grace in these tests
SHUTDOWN_TIMEOUT_MS = 20_000  # < the grace: jobs get 20 s, the container 30 s


@dataclass
class SlowSmtp:
    """Accepts mail, answering DATA only after ``delay`` seconds."""

    delay: float = 0.0
    messages: list[bytes] = field(default_factory=list)
    receiving: int = 0  # DATA commands being held
    accepted_at: list[float] = field(default_factory=list)  # time.monotonic()

    async def handle_DATA(self, server, session, envelope):
        self.receiving += 1
        await asyncio.sleep(self.delay)
        self.receiving -= 1
        self.messages.append(envelope.content)
        self.accepted_at.append(time.monotonic())
        return "250 OK"


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[SlowSmtp, int]]:
    handler, port = SlowSmtp(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@dataclass
class Worker:
    name: str
    proxy: TcpProxy
    metrics_port: int

    def metrics(self) -> str:
        status, text = http_get(f"http://127.0.0.1:{self.metrics_port}/metrics")
        assert status == 200
        return text


@pytest.fixture(scope="module")
def start_container(worker_image, broker, smtp) -> Iterator:
    """Start the image as `docker run` would, with the test's database and SMTP.

    The health check is the image's own command, polled every second instead of
    every 30 so its changes show in seconds.
    """
    started: list[Worker] = []

    def start(label: str) -> Worker:
        proxy = TcpProxy(database_upstream(DATABASE_URL))
        worker = Worker(f"pts-accept-{RUN}-{label}", proxy, free_port())
        env = {**TEST_ENV, "DATABASE_URL": url_through(DATABASE_URL, proxy.port),
               "JOBS_SMTP_URL": f"smtp://127.0.0.1:{smtp[1]}", "JOBS_SMTP_TLS": "optional",
               "JOBS_METRICS_PORT": str(worker.metrics_port),
               "DRAMATIQ_PROCESSES": "1", "DRAMATIQ_THREADS": "2",
               "DRAMATIQ_SHUTDOWN_TIMEOUT_MS": str(SHUTDOWN_TIMEOUT_MS)}
        started.append(worker)
        docker("run", "--detach", "--name", worker.name, "--network", "host",
               *[arg for key, value in env.items() for arg in ("--env", f"{key}={value}")],
               "--health-interval", "1s", "--health-timeout", "5s", "--health-retries", "2",
               "--health-start-period", "1s", worker_image)
        wait_for(lambda: health(worker.name) in ("healthy", "exited"), timeout=60,
                 interval=0.2, what=f"{worker.name} to be healthy")
        assert health(worker.name) == "healthy", docker("logs", worker.name)
        wait_for(lambda: "is ready for action" in logs(worker.name), timeout=30,
                 what="the worker to boot")
        return worker

    yield start
    for worker in started:
        docker("rm", "--force", worker.name, check=False)
        worker.proxy.close()


@pytest.fixture(scope="module")
def container(start_container) -> Worker:
    return start_container("main")


def logs(name: str) -> str:
    """stdout and stderr of the container (dramatiq logs to stderr)."""
    result = subprocess.run(["docker", "logs", name], capture_output=True, text=True, timeout=30)
    return result.stdout + result.stderr


def messages_processed(metrics: str, actor: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("dramatiq_messages_total{") and f'actor_name="{actor}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_the_image_runs_its_worker_as_a_non_root_user(container):
    assert inspect(container.name)["Config"]["User"] == "worker"
    uids = docker("top", container.name, "-o", "pid,uid,args")
    worker_lines = [line for line in uids.splitlines() if "dramatiq" in line]
    assert worker_lines and all(line.split()[1] != "0" for line in worker_lines), uids
    assert docker("exec", container.name, "id", "-u").strip() != "0"


def test_a_job_sent_with_actor_send_completes_inside_the_container(container):
    import actors
    from actors.process_bug_report import receive

    before = messages_processed(container.metrics(), "process_bug_report")
    message = actors.process_bug_report.send(bug_report_id=receive(raw_text="Login does nothing"))
    job_in(message.message_id, "done", timeout=30)
    # Counted by the container's worker: no other worker runs in this test.
    wait_for(lambda: messages_processed(container.metrics(), "process_bug_report") > before,
             timeout=10, what="the container to count the job")


def test_a_job_added_with_sql_add_job_completes_inside_the_container(container):
    from actors.process_bug_report import receive

    bug = receive(raw_text="Checkout crashes on submit")
    with db() as conn, conn.cursor() as cur:
        cur.execute(f'SELECT "{SCHEMA}".add_job(%s, %s, %s)',
                    ("process-bug-report", "process_bug_report",
                     json.dumps({"bug_report_id": bug})))
        (job_id,) = cur.fetchone()
    job_in(str(job_id), "done", timeout=30)


def test_metrics_answer_from_the_container(container):
    text = container.metrics()
    assert re.search(r"^dramatiq_messages_inprogress", text, re.M), text[:2000]
    assert "# TYPE dramatiq_messages_total counter" in text


def test_the_health_check_turns_unhealthy_when_the_database_is_unreachable(start_container):
    worker = start_container("health")
    try:
        worker.proxy.cut()
        wait_for(lambda: health(worker.name) != "healthy", timeout=30, interval=0.2,
                 what="the health check to notice the database is gone")
        assert health(worker.name) == "unhealthy"
        worker.proxy.restore()
        wait_for(lambda: health(worker.name) == "healthy", timeout=30, interval=0.2,
                 what="the health check to see the database back")
    finally:
        # One worker container at a time: the other tests know who ran their jobs.
        docker("rm", "--force", worker.name)


def test_docker_stop_lets_a_job_in_flight_finish_and_the_container_exits_0(container, smtp):
    import actors
    from actors.process_bug_report import receive

    handler, _ = smtp
    handler.delay, sent_before = 4.0, len(handler.messages)
    bug = receive(raw_text="Search returns nothing")
    message = actors.send_notification.send(type="bug_received", bug_report_id=bug,
                                            recipient_email=f"{uuid.uuid4().hex}@example.com")
    job_in(message.message_id, "running", timeout=30)
    wait_for(lambda: handler.receiving, timeout=10, what="the job to be sending its mail")

    with Stopwatch() as stop:
        docker("stop", "--time", str(GRACE_S), container.name, timeout=GRACE_S + 30)
    state, output = inspect(container.name)["State"], logs(container.name)

    assert state["ExitCode"] == 0, output[-3000:]
    assert stop.seconds < GRACE_S, "the container was killed, not stopped"
    assert len(handler.messages) == sent_before + 1, output[-3000:]
    assert job_in(message.message_id, "done", timeout=5).attempts == 1
    assert "Traceback" not in output
    after_job = stop.started + stop.seconds - handler.accepted_at[-1]
    MEASURED["docker stop -> exit, job in flight"] = (
        f"{stop.seconds:.1f} s, of which {after_job:.1f} s after the job finished")


def test_the_image_holds_the_worker_and_nothing_of_development(worker_image):
    installed = docker("run", "--rm", "--network", "none", worker_image,
                       "pip", "list", "--format", "freeze")
    assert "pts-jobs==" in installed
    assert "pgserver" not in installed and "pytest" not in installed
    leftovers = docker("run", "--rm", "--network", "none", worker_image, "sh", "-c",
                       "ls -d /src /wheels /home/worker/.venv 2>/dev/null || true")
    assert leftovers.strip() == ""
    # git, which analyses and fixes clone with (about 100 MB with the perl it needs).
    assert docker("run", "--rm", "--network", "none", worker_image,
                  "git", "--version").startswith("git version")
    added = image_size_mb(worker_image) - image_size_mb("python:3.11-slim")
    MEASURED["worker image layers over python:3.11-slim"] = f"{added:.0f} MB"
    assert added < 170, f"the project adds {added:.0f} MB to its base image"


def test_the_build_context_leaves_out_what_a_checkout_accumulates(docker_engine, tmp_path):
    """The working tree as `docker build .` sends it, through .dockerignore."""
    tag = f"pts-accept-context-{RUN}"
    dockerfile = "FROM python:3.11-slim\nCOPY . /context\n"
    docker("build", "-q", "-f", "-", "-t", tag, str(ROOT), input=dockerfile, timeout=300)
    try:
        sent = set(docker("run", "--rm", "--network", "none", tag,
                          "ls", "-A", "/context").split())
    finally:
        docker("rmi", "--force", tag, check=False)
    assert {"pyproject.toml", "constraints.txt", "actors", "pgbroker"} <= sent
    assert not sent & {".git", ".venv", ".pgdata", ".env", ".workspace", "build", "tests",
                       ".pytest_cache", ".mypy_cache", "pts_jobs.egg-info"}, sent


REFUSED_FIX = """
import time, uuid
from pathlib import Path
from pipeline.sandbox import FixerRun, SandboxConfig, SandboxError, SandboxLayout, choose_runtime
config = SandboxConfig(workspace_dir=Path("/tmp/workspace"), runtime="process")
fix = str(uuid.uuid4())
layout = SandboxLayout.of(config.sandboxes_dir, fix)
layout.create()
layout.checkout.mkdir()
command = ("sh", "-c", "cat /proc/1/environ > /tmp/stolen")
try:
    choose_runtime(config).run(FixerRun(fix, 1, command, layout, time.monotonic() + 60))
except SandboxError as error:
    print("refused:", error)
print("stolen" if Path("/tmp/stolen").exists() else "nothing stolen")
"""


def test_in_the_image_as_its_own_user_the_process_runtime_refuses_to_run_a_fixer(worker_image):
    # As users run it: non-root, Docker's default seccomp profile (no user
    # namespaces). A fixer here would be the worker's user, beside PID 1.
    out = docker("run", "--rm", "--network", "none", "-e",
                 "DATABASE_URL=postgresql://u:hunter2@db/x", worker_image,
                 "python", "-c", REFUSED_FIX)
    assert "refused: the process runtime cannot confine a fixer here" in out, out
    assert out.strip().endswith("nothing stolen"), out
