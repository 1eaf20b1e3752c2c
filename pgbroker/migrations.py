"""Numbered, forward-only SQL migrations, applied once each.

``NNNN_name.sql`` files (the broker's in ``sql/migrations/``) run in order inside
one transaction that first takes an advisory lock, so workers starting together
apply each migration exactly once: the first one applies, the others wait and
then find nothing to do. ``{schema}`` in a file is the quoted schema name.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from psycopg2 import sql
from psycopg2.extensions import connection as Connection

from .db import transaction
from .queries import SQL_DIR, bind

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = SQL_DIR / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def available(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration in ``directory`` (by default the broker's), in order."""
    found = []
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match:
            found.append(Migration(int(match[1]), match[2], path))
    return sorted(found, key=lambda m: m.version)


def migrate(
    conn: Connection, schema: str, directory: Path = MIGRATIONS_DIR
) -> list[Migration]:
    """Bring ``schema`` up to date with ``directory`` and commit.

    Returns the migrations applied. Each schema records its own in
    ``<schema>.schema_migrations``.
    """
    # One transaction for all of it, even on an autocommit connection.
    with transaction(conn):
        return _migrate(conn, schema, directory)


def _migrate(conn: Connection, schema: str, directory: Path) -> list[Migration]:
    applied_now = []
    with conn.cursor() as cur:
        # Serialises concurrent starts; released at commit.
        cur.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"pts-jobs migrate {schema}",)
        )
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        cur.execute(
            bind(
                """
                CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """,
                schema,
            )
        )
        cur.execute(bind("SELECT version FROM {schema}.schema_migrations", schema))
        done = {version for (version,) in cur.fetchall()}
        for migration in available(directory):
            if migration.version in done:
                continue
            logger.info("applying migration %04d_%s", migration.version, migration.name)
            cur.execute(bind(migration.path.read_text(), schema))
            cur.execute(
                bind("INSERT INTO {schema}.schema_migrations (version, name) VALUES (%s, %s)",
                     schema),
                (migration.version, migration.name),
            )
            applied_now.append(migration)
    return applied_now
