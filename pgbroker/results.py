"""Dramatiq's results interface, in a table of its own.

dramatiq-pg's backend waited for a NOTIFY on a connection it had already given
back to the pool (seen hanging forever), sent results over NOTIFY, whose
8,000-byte limit dropped large ones, and stored them on the message's row, so a
result of a flushed or purged message (or of one sent through another broker)
was lost. This one upserts into ``<schema>.results`` with its TTL, and lets
dramatiq's ``get_result`` poll ``_get`` with backoff until its timeout: a
blocked reader always returns.

A result stored from a job names the job's delivery: a delivery whose message
was taken by another (after a network cut) stores nothing.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from dramatiq.results import ResultBackend
from dramatiq.results.backend import Missing

from .delivery import current_delivery
from .encoding import as_json_text

if TYPE_CHECKING:
    from .broker import PostgresBroker

class PostgresResults(ResultBackend):
    def __init__(self, broker: PostgresBroker, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.broker = broker

    def build_message_key(self, message) -> str:
        # The message id is already unique, and is the queue row's primary key.
        return str(message.message_id)

    def _get(self, message_key: str) -> Any:
        rows = self.broker.fetch("get_result", message_key=message_key,
                                 message_id=_uuid_or_none(message_key))
        if not rows:
            return Missing
        text, data = rows[0]
        return self.encoder.decode(bytes(data) if data is not None else text.encode("utf-8"))

    def _store(self, message_key: str, result: Any, ttl: int) -> None:
        encoded = self.encoder.encode(result)
        text = as_json_text(encoded, objects_only=False)
        sender = current_delivery()
        if sender is not None and sender.gave_up:
            return  # the job runs again from the start (Delivery.give_up)
        self.broker.execute(
            "store_result",
            message_key=message_key,
            result=text,
            encoded=None if text is not None else encoded,
            ttl_ms=ttl,
            fence_message=sender.message_id if sender else None,
            fence_delivery=sender.delivery_id if sender else None,
        )


def _uuid_or_none(key: str) -> str | None:
    try:
        return str(uuid.UUID(key))
    except ValueError:
        return None
