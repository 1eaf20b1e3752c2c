"""The consumer: leases due messages of one queue with SKIP LOCKED.

Dramatiq runs one consumer per queue in each worker process and calls
``__next__`` in a loop. Ours claims in bounded batches, never holds more than the
queue's concurrency cap, and sleeps on a wake-up event between polls. Nothing is
held in PostgreSQL for a job's life but the row's lease, which a heartbeat renews.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from dramatiq.broker import Consumer, MessageProxy
from dramatiq.errors import ConnectionError, DecodeError
from dramatiq.message import Message

from .db import DISCONNECTS

if TYPE_CHECKING:
    from .broker import PostgresBroker

logger = logging.getLogger(__name__)


class PostgresConsumer(Consumer):
    def __init__(
        self, broker: PostgresBroker, queue_name: str, *, limit: int, timeout_ms: int
    ) -> None:
        self.broker = broker
        self.queue_name = queue_name
        # Messages this process may hold from the queue at once, running or
        # waiting for a thread: the job type's concurrency cap.
        self.limit = limit
        self.timeout = timeout_ms / 1000
        self.buffer: deque[MessageProxy] = deque()
        self.wakeup = broker.listener.event(broker.channel(queue_name))
        self.next_poll = 0.0

    def __next__(self) -> MessageProxy | None:
        try:
            return self._next()
        except DISCONNECTS as error:
            # Dramatiq restarts a consumer that raises ConnectionError.
            raise ConnectionError(str(error).strip()) from error

    def _next(self) -> MessageProxy | None:
        if self.buffer:
            return self.buffer.popleft()
        if self.broker.draining:
            time.sleep(self.timeout)  # shutting down: claim nothing more
            return None

        free = self.limit - self.broker.inflight.count(self.queue_name)
        if free <= 0:
            # At the cap: wait for a slot, not for news of work. Finishing a job
            # sets the wake-up, and the claim that follows finds what was sent.
            self.wakeup.clear()
            if self.broker.inflight.count(self.queue_name) >= self.limit:
                self.wakeup.wait(self.timeout)
            return None
        now = time.monotonic()
        if not self.wakeup.is_set() and now < self.next_poll:
            self.wakeup.wait(min(self.timeout, self.next_poll - now))
            return None

        # Clear before claiming: a NOTIFY that lands during the claim sets it again.
        self.wakeup.clear()
        self.next_poll = now + self.broker.poll_interval
        self.buffer.extend(self._claim(free))
        return self.buffer.popleft() if self.buffer else None

    def _claim(self, limit: int) -> list[MessageProxy]:
        rows = self.broker.claim(self.queue_name, limit)
        messages = []
        for message_id, text in rows:
            try:
                message = Message.decode(text.encode("utf-8"))
            except DecodeError as error:
                # Written by something that is not dramatiq: dead, not retried.
                self.broker.reject_undecodable(message_id, text, error)
                continue
            messages.append(MessageProxy(message))
        if len(messages) < len(rows):
            self.wakeup.set()  # rejected rows freed slots: look again now
        return messages

    def ack(self, message: MessageProxy) -> None:
        self._finish(message, failed=False)

    def nack(self, message: MessageProxy) -> None:
        self._finish(message, failed=True)

    def _finish(self, message: MessageProxy, *, failed: bool) -> None:
        try:
            if failed:
                self.broker.dead_letter(message)
            else:
                self.broker.complete(message)
        except DISCONNECTS as error:
            # Dramatiq retries post-processing on ConnectionError; the lease
            # stays renewed meanwhile, so no one else takes the message.
            raise ConnectionError(str(error).strip()) from error

    def requeue(self, messages) -> None:
        ids = [message.message_id for message in messages]
        if ids:
            self.broker.requeue(self.queue_name, ids)

    def close(self) -> None:
        buffered, self.buffer = list(self.buffer), deque()
        try:
            self.requeue(buffered)
        except Exception:
            # Their leases run out and the rescuer returns them.
            logger.warning("could not return %d buffered messages", len(buffered), exc_info=True)

