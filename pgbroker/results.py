"""Dramatiq's results interface, stored on the message's own row.

dramatiq-pg's backend waited for a NOTIFY on a connection it had already given
back to the pool (seen hanging forever) and sent results over NOTIFY, whose
8,000-byte limit dropped large ones. This one stores the result with an UPDATE
and lets dramatiq's ``get_result`` poll ``_get`` with backoff until its timeout:
a blocked reader always returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dramatiq.results import ResultBackend
from dramatiq.results.backend import Missing

if TYPE_CHECKING:
    from .broker import PostgresBroker


class PostgresResults(ResultBackend):
    def __init__(self, broker: PostgresBroker, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.broker = broker

    def build_message_key(self, message) -> str:
        # The message id is already unique, and is the row's primary key.
        return str(message.message_id)

    def _get(self, message_key: str) -> Any:
        rows = self.broker.fetch("get_result", message_id=message_key)
        if not rows:
            return Missing
        return self.encoder.decode(rows[0][0].encode("utf-8"))

    def _store(self, message_key: str, result: Any, ttl: int) -> None:
        self.broker.execute(
            "store_result",
            message_id=message_key,
            result=self.encoder.encode(result).decode("utf-8"),
            ttl_ms=ttl,
        )
