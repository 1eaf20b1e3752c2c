"""What the Docker tests share: the engine (or why there is none), the committed
tree, the docker CLI, a TCP proxy that can cut the database off, measurements.

The tests drive the ``docker`` and ``docker compose`` command lines, the way
users and CI run them, rather than an SDK that would build contexts its own way.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

from tests.support import require
from tests.support.environment import ROOT

# Figures the Docker tests measure, printed at the end of the run.
MEASURED: dict[str, str] = {}


def require_docker() -> None:
    """Skip without an engine on a developer's machine; fail in CI, which has one."""
    problem = None
    if shutil.which("docker") is None:
        problem = "the docker command is not installed"
    else:
        answer = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                                capture_output=True, text=True, timeout=30)
        if answer.returncode != 0:
            problem = f"no Docker engine answers ({answer.stderr.strip()[:200]})"
    hint = "; `sudo bash .ci/docker-engine` starts one and makes the base images"
    require(problem is None, f"{problem}{hint}")


def docker(*args: str, timeout: float = 120, check: bool = True, **kwargs: Any) -> str:
    """Run ``docker ARGS``; its stdout. Raises with stderr when it fails and ``check``."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True,
                            timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return result.stdout


def inspect(name: str) -> dict:
    return json.loads(docker("inspect", name))[0]


def health(name: str) -> str:
    """starting / healthy / unhealthy, or the container's status when it has stopped."""
    state = inspect(name)["State"]
    if state["Status"] != "running":
        return state["Status"]
    return state.get("Health", {}).get("Status", "none")


def committed_tree(into: Path) -> Path:
    """The checkout as committed (``git archive HEAD``) under ``into``: what CI's
    fresh clone holds, so an uncommitted file cannot make the image work here.
    Outside a git checkout, the working tree itself."""
    if not (ROOT / ".git").exists():
        return ROOT
    archive = into / "head.tar"
    with open(archive, "wb") as out:
        subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD"],
                       stdout=out, check=True, timeout=60)
    tree = into / "tree"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="tar")
    archive.unlink()
    return tree


def image_size_mb(image: str) -> float:
    return int(docker("image", "inspect", "--format", "{{.Size}}", image)) / 1e6


def database_upstream(url: str) -> Callable[[], socket.socket]:
    """Connects to the PostgreSQL of ``url``: TCP, or the unix socket of a
    ``?host=/dir`` URL (the embedded server listens only there)."""
    parts = urlsplit(url)
    params = parse_qs(parts.query)
    socket_dir = params.get("host", [parts.hostname or ""])[0]
    port = int(params.get("port", [parts.port or 5432])[0])
    if socket_dir.startswith("/"):
        path = f"{socket_dir}/.s.PGSQL.{port}"

        def unix() -> socket.socket:
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(5)
            sock.connect(path)
            return sock
        return unix
    return lambda: socket.create_connection((socket_dir or "127.0.0.1", port), timeout=5)


def url_through(url: str, port: int) -> str:
    """``url`` pointed at 127.0.0.1:``port`` (a proxy in front of its server)."""
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k not in ("host", "port")])
    netloc = f"{auth}@127.0.0.1:{port}" if auth else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``connect()``; ``cut()`` drops every
    connection and refuses new ones, as a database that went away; ``restore()``
    undoes it."""

    def __init__(self, connect: Callable[[], socket.socket]) -> None:
        self.connect = connect
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = self._listen(0)
        self.port = self._listener.getsockname()[1]

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return listener

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by cut()
            try:
                upstream = self.connect()
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def cut(self) -> None:
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            self._close(sock)

    def restore(self) -> None:
        self._listener = self._listen(self.port)

    def close(self) -> None:
        self.cut()


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self.started
