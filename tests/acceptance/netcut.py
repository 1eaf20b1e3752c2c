"""A network namespace joined to the host by a veth pair, and a PostgreSQL
listening on the host's end, so a test can really cut one worker off (or
crash the server)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import psutil


def server_binaries_present() -> bool:
    return any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


def _newest_server_binaries() -> Path:
    """Debian's ``postgresql`` package: /usr/lib/postgresql/<major>/bin, newest."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda path: int(path.parent.parent.name))
    if not found:
        raise RuntimeError("PostgreSQL's server binaries are missing: "
                           "apt-get install postgresql (.ci/run does)")
    return found[-1].parent


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


class NetworkNamespace:
    """``name``: a namespace whose only way out is a veth pair to the host."""

    def __init__(self, name: str) -> None:
        self.name = name
        subnet = 10 + zlib.crc32(name.encode()) % 200
        self.host_address = f"10.231.{subnet}.1"
        self.inner_address = f"10.231.{subnet}.2"
        self.host_link, inner_link = f"{name}h", f"{name}n"
        _run("ip", "netns", "add", name)
        _run("ip", "link", "add", self.host_link, "type", "veth", "peer", "name", inner_link)
        _run("ip", "link", "set", inner_link, "netns", name)
        _run("ip", "addr", "add", f"{self.host_address}/24", "dev", self.host_link)
        _run("ip", "link", "set", self.host_link, "up")
        for command in (["addr", "add", f"{self.inner_address}/24", "dev", inner_link],
                        ["link", "set", inner_link, "up"], ["link", "set", "lo", "up"]):
            _run("ip", "netns", "exec", name, "ip", *command)

    def link_down(self) -> None:
        """Cut the namespace off: packets are dropped, sockets stay open."""
        _run("ip", "link", "set", self.host_link, "down")

    def link_up(self) -> None:
        _run("ip", "link", "set", self.host_link, "up")

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_link], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def _is_wal_writer(process: psutil.Process) -> bool:
    try:
        return "walwriter" in " ".join(process.cmdline())
    except psutil.NoSuchProcess:  # a backend that just ended (a zombie too)
        return False


class TcpPostgres:
    """A PostgreSQL cluster of its own (Debian's ``postgresql`` binaries) on TCP
    at ``listen``, trusting that address's /24, which a test may stop and start."""

    def __init__(self, *, listen: str = "127.0.0.1") -> None:
        self.bin = _newest_server_binaries()
        self.data_dir = Path(tempfile.mkdtemp(prefix="pts-netcut-pg-"))
        user = pwd.getpwnam("postgres")
        os.chmod(self.data_dir, 0o700)
        os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data_dir), "-A", "trust",
                          "-U", "postgres", "--no-sync")
        subnet = listen.rsplit(".", 1)[0] + ".0/24"
        with open(self.data_dir / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {subnet} trust\n")
        self.listen = listen
        self.start()
        self.url = f"postgresql://postgres@{listen}:{self.port}/postgres"

    def start(self) -> None:
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data_dir), "-w", "-l",
            str(self.data_dir / "log"), "-o",
            f"-h {self.listen} -p {self.port} -k {self.data_dir} -c fsync=off", "start",
        )

    def stop(self) -> None:
        """Fast shutdown: sessions are cut, as in a crash or a failover."""
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast",
                          "-w", "stop")

    def crash(self) -> None:
        """Every process of the server killed at once, as when its machine dies:
        what it had not written out of its WAL buffers is lost. ``start``
        then recovers from the WAL."""
        postmaster = self._postmaster()
        postmaster.suspend()  # it forks no backend after its children are listed
        children = postmaster.children()
        for process in [*children, postmaster]:
            with contextlib.suppress(psutil.NoSuchProcess):  # a backend that just ended
                process.kill()
        psutil.wait_procs([*children, postmaster], timeout=10)

    @contextlib.contextmanager
    def wal_writer_stopped(self) -> Iterator[None]:
        """The WAL writer paused (SIGSTOP): a commit that does not wait for its
        flush (a claim) then stays in the WAL buffers until another commit
        flushes them, or a crash loses it."""
        postmaster = self._postmaster()
        (writer,) = [child for child in postmaster.children() if _is_wal_writer(child)]
        writer.suspend()
        try:
            yield
        finally:
            with contextlib.suppress(psutil.NoSuchProcess):
                writer.resume()

    def _postmaster(self) -> psutil.Process:
        return psutil.Process(int((self.data_dir / "postmaster.pid").read_text().split()[0]))

    def _as_postgres(self, *args: str) -> None:
        _run("runuser", "-u", "postgres", "--", *args)

    def close(self) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D",
                        str(self.data_dir), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)
