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
# A schema name is quoted as an identifier, but it also stands inside
# dollar-quoted function and DO bodies, where "$$" would end the body early:
# plain identifiers only.
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def check_schema_name(schema: str) -> str:
    """``schema`` if it is a plain SQL identifier.

    Raises:
        ValueError: naming the rule it breaks.
    """
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(
            f"schema name {schema!r} must be letters, digits and underscores, "
            "not starting with a digit, at most 63 characters"
        )
    return schema


def channel_prefix(schema: str) -> str:
    """NOTIFY channels are ``<schema>.<queue name>``."""
    return f"{schema}."


def bind(text: str, schema: str) -> sql.Composed:
    """``text`` with ``{schema}`` and ``{channel_prefix}`` filled in safely."""
    check_schema_name(schema)
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
