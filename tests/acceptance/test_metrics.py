"""Metrics and the admin API, scraped over real HTTP from real workers."""

from __future__ import annotations

import json
import uuid

import pytest

from actors import send_notification
from tests.support import free_port, http_get, job_in, metric_samples, wait_for
from tests.support.workload import probe_fails, probe_record


@pytest.fixture
def metrics_worker(cli_worker, tmp_path):
    port = free_port()
    worker = cli_worker("tests.support.workload", "actors", threads=4, env={
        "JOBS_METRICS_PORT": str(port), "JOBS_METRICS_DIR": str(tmp_path / "metrics"),
        "JOBS_ADMIN_TOKEN": "sesame",
    })
    worker.wait_ready()
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(base), timeout=15, what="the metrics server")
    return base


def _answers(base: str) -> bool:
    try:
        return http_get(base + "/healthz")[0] == 200
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
        text = http_get(metrics_worker + "/metrics")[1]
        ok = metric_samples(text, "dramatiq_messages_total").get(
            '{actor_name="probe_record",queue_name="probe-record"}') == 3
        return text if ok else ""

    text = wait_for(scraped, timeout=15, what="the counters to reach the endpoint")
    labels = '{actor_name="probe_fails",queue_name="probe-fails"}'
    assert metric_samples(text, "dramatiq_message_errors_total")[labels] == 2
    assert metric_samples(text, "dramatiq_message_retries_total")[labels] == 1
    assert metric_samples(text, "dramatiq_message_rejects_total")[labels] == 1
    assert 'le="3.6e+06"' in text  # a bucket past the 45-minute time limit
    depth = metric_samples(text, "dramatiq_queue_depth")
    for queue in ("process-bug-report", "analyze-codebase", "execute-fix",
                  "cleanup-container", "send-notification", "probe-record"):
        for state in ("queued", "delayed", "running", "done", "dead"):
            assert f'{{queue_name="{queue}",state="{state}"}}' in depth
    assert depth['{queue_name="probe-record",state="done"}'] == 3
    assert depth['{queue_name="probe-fails",state="dead"}'] == 1
    assert "dramatiq_queue_oldest_message_age_seconds" in text
    assert metric_samples(text, "dramatiq_queue_stats_up") == {"": 1.0}
    # One worker process consumes every queue (the registry).
    alive = metric_samples(text, "dramatiq_workers_alive")
    assert alive['{queue_name="probe-record"}'] == alive['{queue_name="execute-fix"}'] == 1
    assert email not in text


def test_the_admin_api_needs_the_token_and_reports_counts_and_failures(metrics_worker):
    dead = probe_fails.send_with_options(kwargs={"key": "reported"}, max_retries=0)
    job_in(dead.message_id, "dead", timeout=15)
    url = metrics_worker + "/api/admin/job-queue"

    assert http_get(url)[0] == 401
    status, body = http_get(url, token="wrong")
    assert status == 401 and "probe-fails" not in body

    status, body = http_get(url, token="sesame")
    report = json.loads(body)
    assert status == 200 and report["ok"] is True
    assert report["data"]["queues"]["probe-fails"]["failedCount"] == 1
    assert set(report["data"]["queues"]["execute-fix"]) == {
        "activeCount", "completedCount", "failedCount", "queuedCount", "delayedCount"}
    (failure,) = report["data"]["recentFailures"]
    assert failure["id"] == dead.message_id
    assert failure["error"] == "RuntimeError: always fails: reported"


def test_an_early_prometheus_client_import_hides_no_metric(cli_worker, tmp_path):
    port = free_port()
    worker = cli_worker("tests.support.early_prometheus_import", threads=2, env={
        "JOBS_METRICS_PORT": str(port), "JOBS_METRICS_DIR": str(tmp_path / "metrics")})
    worker.wait_ready()
    message = probe_record.send(key="early")
    job_in(message.message_id, "done", timeout=15)
    base = f"http://127.0.0.1:{port}"

    def counted() -> bool:
        try:
            text = http_get(base + "/metrics")[1]
        except OSError:
            return False
        return metric_samples(text, "dramatiq_messages_total").get(
            '{actor_name="probe_record",queue_name="probe-record"}') == 1

    wait_for(counted, timeout=15, what="the message to be counted")
