"""The database URL to use, starting an embedded PostgreSQL when none is set.

With ``DATABASE_URL`` unset, a real PostgreSQL server from the ``pgserver`` wheel
runs on a Unix socket inside ``JOBS_EMBEDDED_DATA_DIR`` (default ``.pgdata``,
which git ignores). Every process that asks joins the same server; the last one
to exit stops it.
"""

from __future__ import annotations

import logging

from settings import Settings

logger = logging.getLogger(__name__)


def database_url(settings: Settings) -> str:
    """``settings.database_url``, or the URL of the embedded server (started if needed)."""
    if settings.database_url:
        return settings.database_url
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
