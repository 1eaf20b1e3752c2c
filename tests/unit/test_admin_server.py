"""The workers' HTTP side without a database: it keeps answering, and knows its queues."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator

import pytest

from admin_server import make_server
from middleware.metrics import MetricsConfig
from pgbroker import PostgresBroker
from settings import load_settings
from tests.support import free_port, http_get, metric_samples


@pytest.fixture
def server_on_a_dead_database(tmp_path) -> Iterator[str]:
    port = free_port()
    config = dataclasses.replace(MetricsConfig.from_settings(load_settings()), port=port,
                                 queue_stats_ttl=0.1)
    down = PostgresBroker(url="postgresql://app:pw@127.0.0.1:9/db", enqueue_timeout=0.5)
    (tmp_path / "run").mkdir()
    server = make_server(down, config, tmp_path / "run")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()
    down.close()


def test_with_the_database_down_depth_disappears_and_the_endpoint_still_answers(
    server_on_a_dead_database,
):
    status, text = http_get(server_on_a_dead_database + "/metrics")

    assert status == 200
    assert metric_samples(text, "dramatiq_queue_stats_up") == {"": 0.0}
    assert "dramatiq_queue_depth{" not in text


def test_the_queues_that_always_report_are_the_policy_tables():
    config = MetricsConfig.from_settings(load_settings())

    assert config.queues == ("analyze-codebase", "cleanup-container", "execute-fix",
                             "maintenance", "process-bug-report", "send-notification")
