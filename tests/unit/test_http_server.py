"""The workers' HTTP server stays answerable when clients are slow, many or hostile."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from admin_server import BoundedHttpServer, Response


def _hello(path: str, headers: dict[str, str]) -> Response:
    return Response(200, f"hello {path}".encode(), "text/plain")


@pytest.fixture
def serve() -> Iterator:
    started: list[BoundedHttpServer] = []

    def start(**options) -> tuple[str, int]:
        server = BoundedHttpServer(("127.0.0.1", 0), _hello, **options)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server.server_address

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def _get(address: tuple[str, int], path: str = "/metrics", timeout: float = 5) -> bytes:
    with urllib.request.urlopen(f"http://{address[0]}:{address[1]}{path}", timeout=timeout) as r:
        return r.read()


def _slow_clients(address: tuple[str, int], count: int) -> list[socket.socket]:
    clients = []
    for _ in range(count):
        client = socket.create_connection(address, timeout=5)
        client.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        clients.append(client)
    return clients


def test_a_scrape_answers_at_once_with_a_thousand_slow_clients_connected(serve) -> None:
    address = serve(max_connections=512, head_timeout=30)
    threads_before = threading.active_count()
    clients = _slow_clients(address, 1000)
    try:
        started = time.monotonic()
        assert _get(address) == b"hello /metrics"
        took = time.monotonic() - started
        # Slow clients cost coroutines, not threads.
        assert threading.active_count() <= threads_before + 4
    finally:
        for client in clients:
            client.close()
    assert took < 1.0, f"scrape took {took:.3f} s behind slow clients"


def test_a_client_that_never_finishes_its_request_is_disconnected(serve) -> None:
    address = serve(head_timeout=0.3)
    (client,) = _slow_clients(address, 1)
    with client:
        started = time.monotonic()
        assert client.recv(1024) == b""  # closed by the server, unanswered
        assert time.monotonic() - started < 3


def test_an_oversized_request_head_is_closed_unanswered(serve) -> None:
    address = serve()
    with socket.create_connection(address, timeout=5) as client:
        client.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        assert client.recv(1024) == b""
    assert _get(address) == b"hello /metrics"  # and the server still serves


@pytest.mark.parametrize("request_line", [b"POST /metrics HTTP/1.1", b"nonsense", b"GET /"])
def test_malformed_or_non_get_requests_get_a_4xx(serve, request_line: bytes) -> None:
    address = serve()
    with socket.create_connection(address, timeout=5) as client:
        client.sendall(request_line + b"\r\n\r\n")
        answer = client.recv(1024)
    assert answer.split(b" ")[1] in (b"400", b"405")


def test_a_failing_handler_answers_500_and_logs_no_details_to_the_client(serve) -> None:
    def broken(path: str, headers: dict[str, str]) -> Response:
        raise RuntimeError("password=hunter22 leaked?")

    server = BoundedHttpServer(("127.0.0.1", 0), broken)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as error:
            _get(server.server_address)
        assert error.value.code == 500
        assert b"hunter22" not in error.value.read()
    finally:
        server.shutdown()
        server.server_close()


def test_a_handler_stuck_on_the_database_answers_503_and_the_server_still_serves(serve) -> None:
    release = threading.Event()

    def stuck(path: str, headers: dict[str, str]) -> Response:
        if path == "/stuck":
            release.wait(10)
        return Response(200, b"fine", "text/plain")

    server = BoundedHttpServer(("127.0.0.1", 0), stuck, handler_timeout=0.3)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as error:
            _get(server.server_address, "/stuck")
        assert error.value.code == 503
        error.value.close()
        assert _get(server.server_address, "/other") == b"fine"
    finally:
        release.set()
        server.shutdown()
        server.server_close()
