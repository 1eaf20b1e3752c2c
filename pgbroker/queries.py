"""Named SQL, read once from ``.sql`` files and bound to a schema.

Each query in a file stands under a ``-- name --`` header. ``{schema}`` and
``{channel_prefix}`` are filled with a quoted identifier and a quoted literal, so
a schema name from settings never reaches SQL as raw text.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from psycopg2 import sql

SQL_DIR = Path(__file__).parent / "sql"
_HEADER = re.compile(r"^-- ([a-z_]+) --$", re.MULTILINE)


def channel_prefix(schema: str) -> str:
    """NOTIFY channels are ``<schema>.<queue name>``."""
    return f"{schema}."


def bind(text: str, schema: str) -> sql.Composed:
    """``text`` with ``{schema}`` and ``{channel_prefix}`` filled in safely."""
    return sql.SQL(text).format(
        schema=sql.Identifier(schema),
        channel_prefix=sql.Literal(channel_prefix(schema)),
    )


@functools.cache
def _parse(path: Path) -> dict[str, str]:
    parts = _HEADER.split(path.read_text())
    # parts = [preamble, name1, body1, name2, body2, ...]
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


@functools.cache
def named_queries(path: Path, schema: str) -> dict[str, sql.Composed]:
    """Every query of the file at ``path``, bound to ``schema``."""
    return {name: bind(body, schema) for name, body in _parse(path).items()}


def queries(schema: str) -> dict[str, sql.Composed]:
    """The broker's queries (``sql/queries.sql``), bound to ``schema``."""
    return named_queries(SQL_DIR / "queries.sql", schema)
