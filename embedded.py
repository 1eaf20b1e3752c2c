"""The database URL to use, starting an embedded PostgreSQL when none is set.

With ``DATABASE_URL`` unset, a real PostgreSQL server from the ``pgserver`` wheel
runs on a Unix socket inside ``JOBS_EMBEDDED_DATA_DIR`` (default ``.pgdata``,
which git ignores). Every process that asks joins the same server; the last one
to exit stops it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # not at run time: importing settings reads the environment
    from settings import Settings

logger = logging.getLogger(__name__)


def database_url(settings: Settings) -> str:
    """``settings.database_url``, or the URL of the embedded server (started if needed)."""
    if settings.database_url:
        return settings.database_url.get_secret_value()
    try:
        import pgserver  # the [embedded] extra: only the embedded default needs it
    except ImportError:
        raise RuntimeError(
            "DATABASE_URL is not set and the embedded PostgreSQL is not installed: "
            "set DATABASE_URL, or pip install 'pts-jobs[embedded]'"
        ) from None

    data_dir = settings.embedded_data_dir.resolve()
    logger.info("DATABASE_URL is not set: using the embedded PostgreSQL in %s", data_dir)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    return server.get_uri()


class EmbeddedPostgres:
    """A pgserver PostgreSQL of its own in ``data_dir``, which can be stopped and
    started again (tests and the chaos run restart it under running workers).
    """

    def __init__(self, data_dir: Path) -> None:
        import pgserver

        self.server = pgserver.get_server(data_dir, cleanup_mode="delete")
        self.data_dir = data_dir
        self.url = self.server.get_uri()
        socket_path = self.server.get_postmaster_info().socket_path
        if socket_path is None:  # pragma: no cover - pgserver uses sockets on POSIX
            raise RuntimeError("pgserver is not listening on a Unix socket")
        self.socket_dir = socket_path.parent

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]  # generated

        pg_ctl(list(args), pgdata=self.data_dir, user=self.server.system_user, timeout=30)

    def stop(self) -> None:
        """Fast shutdown: sessions are cut, as in a crash or a failover."""
        self._pg_ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}",
                     "-l", str(self.data_dir / "log"), "start")

    def close(self) -> None:
        """Stop the server and delete its data."""
        self.server.cleanup()
