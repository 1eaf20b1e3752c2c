"""Rows for PostgreSQL's COPY, in its text format.

``send_many`` of messages due now streams them with COPY, which the server
ingests about twice as fast as the same rows as arrays. Each field is escaped
as COPY's text format wants, so a queue name or a message with a tab, a
newline or a backslash in it arrives as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_SPECIAL = re.compile(r"[\\\t\n\r]")


def field(value: object) -> str:
    """One value as a COPY text field: NULL as ``\\N``, bytes as bytea hex."""
    if type(value) is str:
        # Most fields need no escape, and searching is cheaper than translating.
        return value.translate(_ESCAPES) if _SPECIAL.search(value) else value
    if value is None:
        return NULL
    if isinstance(value, bytes | bytearray | memoryview):
        # bytea's hex input, "\x..."; its backslash escaped like any other.
        return "\\\\x" + bytes(value).hex()
    return str(value).translate(_ESCAPES)


def copy_text(rows: Iterable[Sequence[object]]) -> str:
    """``rows`` as COPY text: a line a row, its fields split by tabs."""
    return "".join("\t".join(map(field, row)) + "\n" for row in rows)
