"""Fixtures for the dashboard: the app served by uvicorn on a free loopback port,
in this process, over the test broker; tokens of the test's own."""

from __future__ import annotations

import re
import secrets
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import PIPELINE_SCHEMA
from tests.support import wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def web_config():
    from web.config import WebConfig

    return WebConfig(
        host="127.0.0.1", port=free_port(),
        admin_token=f"admin-{secrets.token_hex(8)}", viewer_token=f"viewer-{secrets.token_hex(8)}",
        api_token=f"api-{secrets.token_hex(8)}", session_secret=secrets.token_hex(16),
        session_max_age=3600, secure_cookies=False, pipeline_schema=PIPELINE_SCHEMA,
        refresh_seconds=1,
    )


@pytest.fixture(scope="session")
def web_url(broker, web_config) -> Iterator[str]:
    import uvicorn

    import tests.actions_workload  # noqa: F401  (declares probe_spin)
    from scheduler import periodic_actors
    from web.app import create_app
    from web.server import job_types

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


def logged_in(web_url: str, token: str) -> httpx.Client:
    """A client holding a session opened with ``token``."""
    client = httpx.Client(base_url=web_url, follow_redirects=False, timeout=10)
    answer = client.post("/login", data={"csrf_token": csrf_of(client.get("/login").text),
                                         "token": token})
    assert answer.status_code == 303, answer.text
    return client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found[1]
