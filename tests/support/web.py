"""Fixtures for the dashboard: the app served by uvicorn on a free loopback port,
in this process, over the test broker; tokens of the test's own."""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.support import free_port, wait_for
from tests.support.environment import PIPELINE_SCHEMA


@pytest.fixture(scope="session")
def web_config():
    from web.config import WebConfig

    return WebConfig(
        host="127.0.0.1", port=free_port(),
        admin_token=f"admin-{secrets.token_hex(8)}", viewer_token=f"viewer-{secrets.token_hex(8)}",
        api_token=f"api-{secrets.token_hex(8)}", session_secret=secrets.token_hex(16),
        session_max_age=3600, secure_cookies=False, pipeline_schema=PIPELINE_SCHEMA,
        refresh_seconds=1, cache_seconds=0,  # every test starts from empty tables
    )


@pytest.fixture(scope="session")
def web_url(broker, web_config) -> Iterator[str]:
    import uvicorn

    from web.app import create_app
    from web.server import job_types, periodic_actors

    app = create_app(broker, web_config, job_types=job_types(broker),
                     periodic=periodic_actors(broker))
    server = uvicorn.Server(uvicorn.Config(app, host=web_config.host, port=web_config.port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="web", daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=15, what="the web server to listen")
    yield f"http://{web_config.host}:{web_config.port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def web_client(web_url) -> Iterator:
    """Make HTTP clients of the dashboard, logged in with a token if given;
    all are closed at the end of the test."""
    opened: list[httpx.Client] = []

    def make(token: str | None = None, **options) -> httpx.Client:
        client = httpx.Client(base_url=web_url, follow_redirects=False, timeout=10, **options)
        opened.append(client)
        if token is not None:
            answer = client.post("/login", data={
                "csrf_token": csrf_of(client.get("/login").text), "token": token})
            assert answer.status_code == 303, answer.text
        return client

    yield make
    for client in opened:
        client.close()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found[1]
