"""Metrics and the admin API, scraped over real HTTP from real workers."""

from __future__ import annotations

import json
import re
import socket
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from actors import send_notification
from admin_server import make_server
from pgbroker import PostgresBroker
from settings import load_settings
from tests.support import job_in, wait_for
from tests.workload import probe_fails, probe_record


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of every sample of metric ``name``."""
    found = {}
    for line in text.splitlines():
        match = re.match(rf"^{name}(\{{[^}}]*\}})? (\S+)$", line)
        if match:
            found[match[1] or ""] = float(match[2])
    return found


@pytest.fixture
def metrics_worker(cli_worker, tmp_path):
    port = free_port()
    worker = cli_worker("tests.workload", "actors", threads=4, env={
        "JOBS_METRICS_PORT": str(port), "JOBS_METRICS_DIR": str(tmp_path / "metrics"),
        "JOBS_ADMIN_TOKEN": "sesame",
    })
    worker.wait_ready()
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(base), timeout=15, what="the metrics server")
    return base


def _answers(base: str) -> bool:
    try:
        return get(base + "/healthz")[0] == 200
    except OSError:
        return False


def test_a_workers_metrics_show_counts_durations_and_depth_for_every_queue(metrics_worker):
    done = [probe_record.send(key=f"m{i}") for i in range(3)]
    dead = probe_fails.send_with_options(kwargs={"key": "metered"}, max_retries=1)
    for message in done:
        job_in(message.message_id, "done", timeout=15)
    job_in(dead.message_id, "dead", timeout=15)
    email = f"someone-{uuid.uuid4().hex[:6]}@example.com"
    send_notification.send(type="bug_received", bug_report_id=str(uuid.uuid4()),
                           recipient_email=email)

    def scraped() -> str:
        text = get(metrics_worker + "/metrics")[1]
        ok = samples(text, "dramatiq_messages_total").get(
            '{actor_name="probe_record",queue_name="probe-record"}') == 3
        return text if ok else ""

    text = wait_for(scraped, timeout=15, what="the counters to reach the endpoint")
    labels = '{actor_name="probe_fails",queue_name="probe-fails"}'
    assert samples(text, "dramatiq_message_errors_total")[labels] == 2
    assert samples(text, "dramatiq_message_retries_total")[labels] == 1
    assert samples(text, "dramatiq_message_rejects_total")[labels] == 1
    assert 'le="3.6e+06"' in text  # a bucket past the 45-minute time limit
    depth = samples(text, "dramatiq_queue_depth")
    for queue in ("process-bug-report", "analyze-codebase", "execute-fix",
                  "cleanup-container", "send-notification", "probe-record"):
        for state in ("queued", "delayed", "running", "done", "dead"):
            assert f'{{queue_name="{queue}",state="{state}"}}' in depth
    assert depth['{queue_name="probe-record",state="done"}'] == 3
    assert depth['{queue_name="probe-fails",state="dead"}'] == 1
    assert "dramatiq_queue_oldest_message_age_seconds" in text
    assert samples(text, "dramatiq_queue_stats_up") == {"": 1.0}
    assert email not in text


def test_the_admin_api_needs_the_token_and_reports_counts_and_failures(metrics_worker):
    dead = probe_fails.send_with_options(kwargs={"key": "reported"}, max_retries=0)
    job_in(dead.message_id, "dead", timeout=15)
    url = metrics_worker + "/api/admin/job-queue"

    assert get(url)[0] == 401
    status, body = get(url, token="wrong")
    assert status == 401 and "probe-fails" not in body

    status, body = get(url, token="sesame")
    report = json.loads(body)
    assert status == 200 and report["ok"] is True
    assert report["data"]["queues"]["probe-fails"]["failedCount"] == 1
    assert set(report["data"]["queues"]["execute-fix"]) == {
        "activeCount", "completedCount", "failedCount", "queuedCount", "delayedCount"}
    (failure,) = report["data"]["recentFailures"]
    assert failure["id"] == dead.message_id
    assert failure["error"] == "RuntimeError: always fails: reported"


@pytest.fixture
def server_on_a_dead_database(tmp_path) -> Iterator[str]:
    port = free_port()
    config = load_settings(metrics_port=port, queue_stats_ttl=0.1)
    down = PostgresBroker(url="postgresql://app:pw@127.0.0.1:9/db", enqueue_timeout=0.5)
    (tmp_path / "run").mkdir()
    server = make_server(down, config, tmp_path / "run")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


def test_with_the_database_down_depth_disappears_and_the_endpoint_still_answers(
    server_on_a_dead_database,
):
    status, text = get(server_on_a_dead_database + "/metrics")

    assert status == 200
    assert samples(text, "dramatiq_queue_stats_up") == {"": 0.0}
    assert "dramatiq_queue_depth{" not in text


def test_an_early_prometheus_client_import_hides_no_metric(cli_worker, tmp_path):
    port = free_port()
    worker = cli_worker("tests.early_prometheus_import", threads=2, env={
        "JOBS_METRICS_PORT": str(port), "JOBS_METRICS_DIR": str(tmp_path / "metrics")})
    worker.wait_ready()
    message = probe_record.send(key="early")
    job_in(message.message_id, "done", timeout=15)
    base = f"http://127.0.0.1:{port}"

    def counted() -> bool:
        try:
            text = get(base + "/metrics")[1]
        except OSError:
            return False
        return samples(text, "dramatiq_messages_total").get(
            '{actor_name="probe_record",queue_name="probe-record"}') == 1

    wait_for(counted, timeout=15, what="the message to be counted")
