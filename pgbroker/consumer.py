"""The consumer: leases due messages of one queue with SKIP LOCKED.

Dramatiq runs one consumer per queue in each worker process and calls
``__next__`` in a loop. Ours claims in bounded batches, never holds more than the
queue's concurrency cap, and sleeps on a wake-up event until the queue's next
due time (every claim returns it), a NOTIFY, or the poll interval, whichever
comes first. Nothing is held in PostgreSQL for a job's life but the row's
lease, which a heartbeat renews.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from dramatiq.broker import Consumer, MessageProxy
from dramatiq.errors import ConnectionError
from dramatiq.message import Message

from .db import DISCONNECTS
from .encoding import MAX_MESSAGE_BYTES, decode
from .errors import unknown_actor

if TYPE_CHECKING:
    from .broker import PostgresBroker
    from .delivery import Delivery

logger = logging.getLogger(__name__)

GATHER_SECONDS = 0.005


class LeasedMessage(MessageProxy):
    """Dramatiq's proxy of a claimed message, with its delivery.

    The message's fields are attributes of the proxy itself: Dramatiq and the
    middleware read them some twenty times a job, each a ``__getattr__`` call
    through to the message otherwise (the message is frozen, so they cannot
    go stale).
    """

    def __init__(self, message: Message, delivery: Delivery) -> None:
        super().__init__(message)
        self.delivery = delivery
        self.queue_name = message.queue_name
        self.actor_name = message.actor_name
        self.message_id = message.message_id
        self.message_timestamp = message.message_timestamp
        self.args = message.args
        self.kwargs = message.kwargs
        self.options = message.options

    def __eq__(self, other: object) -> bool:
        # Dramatiq's work queue is a heap of (priority, message): at equal
        # priorities it compares messages, and a Message compares every field.
        # Messages with different ids differ: that is checked first.
        if type(other) is LeasedMessage:
            return self.message_id == other.message_id and self._message == other._message
        found = other._message if isinstance(other, MessageProxy) else other
        if isinstance(found, Message) and found.message_id != self.message_id:
            return False
        return self._message == found

    __hash__ = None  # type: ignore[assignment]  # as MessageProxy's


class PostgresConsumer(Consumer):
    def __init__(
        self, broker: PostgresBroker, queue_name: str, *, limit: int, timeout_ms: int
    ) -> None:
        self.broker = broker
        self.queue_name = queue_name
        # Messages this process may hold from the queue at once, running or
        # waiting for a thread: the job type's concurrency cap.
        self.limit = limit
        # While this process still holds some of the queue's jobs, claim once
        # half the limit is free, or GATHER_SECONDS after a slot freed: one
        # claim (one WAL flush) per several jobs, not one per finished job.
        self.batch = max(limit // 2, 1)
        self.gather_until: float | None = None
        self.timeout = timeout_ms / 1000
        self.buffer: deque[MessageProxy] = deque()
        self.wakeup = broker.listener.event(broker.channel(queue_name))
        # When to claim without a wake-up: the next due time, or the poll.
        self.next_claim = 0.0
        # When Dramatiq last asked for a message (time.monotonic()): the health
        # check's sign that this consumer still runs (pgbroker/health.py).
        self.last_asked = time.monotonic()

    def __next__(self) -> MessageProxy | None:
        self.last_asked = time.monotonic()
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

        held = self.broker.inflight.count(self.queue_name)
        free = self.limit - held
        if free <= 0:
            # At the cap: wait for a slot, not for news of work. Finishing a job
            # sets the wake-up, and the claim that follows finds what was sent.
            self.wakeup.clear()
            if self.broker.inflight.count(self.queue_name) >= self.limit:
                self.wakeup.wait(self.timeout)
            return None
        now = time.monotonic()
        if held and free < self.batch:
            # Jobs still held, few slots free: let a few milliseconds gather more
            # (each finished job sets the wake-up), then claim what is free.
            if self.gather_until is None:
                self.gather_until = now + GATHER_SECONDS
            if now < self.gather_until:
                self.wakeup.clear()
                self.wakeup.wait(self.gather_until - now)
                return None
        self.gather_until = None
        if not self.wakeup.is_set() and now < self.next_claim:
            self.wakeup.wait(min(self.timeout, self.next_claim - now))
            return None

        # Clear before claiming: a NOTIFY that lands during the claim sets it again.
        self.wakeup.clear()
        self.buffer.extend(self._claim(free, now))
        return self.buffer.popleft() if self.buffer else None

    def _claim(self, limit: int, now: float) -> list[MessageProxy]:
        rows, next_due = self.broker.claim(self.queue_name, limit)
        # Measured from before the claim, so a wake-up is never late: at worst
        # early, and the empty claim then reads a due time a moment away.
        wait = self.broker.poll_interval if next_due is None else min(
            max(next_due, 0.0), self.broker.poll_interval)
        self.next_claim = now + wait
        messages: list[MessageProxy] = []
        for index, (delivery, text, data) in enumerate(rows):
            try:
                message, problem = self._check(delivery, text, data)
                if message is None:
                    # Written by something that is not our producers: dead, with
                    # the reason, and never given to a worker thread it could kill.
                    self.broker.reject(delivery, problem)
                    continue
            except BaseException:
                # The database went away mid-batch (or worse): what was not yet
                # handed out goes back, so no delivery is stranded, leased forever.
                # (requeue releases them from this process even if it fails:
                # then their leases lapse and the rescuer returns them.)
                unstarted = [d for d, _, _ in rows[index:]]
                unstarted += [m.delivery for m in messages]
                with contextlib.suppress(Exception):
                    self.broker.requeue(unstarted)
                raise
            messages.append(LeasedMessage(message, delivery))
        if len(messages) < len(rows):
            self.wakeup.set()  # rejected rows freed slots: look again now
        return messages

    def _check(self, delivery: Delivery, text: str | None,
               data: bytes | None) -> tuple[Message | None, str]:
        """The row's message if a worker can run it, else None and why not.

        Any producer can write a row (SQL ``add_job``, another service, a
        hand-written INSERT). Dramatiq's worker trusts what it is given: a
        message naming another queue kills the thread that finishes it, an
        ``eta`` sends it to a delay queue this broker does not have.
        """
        if text is None and data is None:
            return None, "the row has no message"
        size = len(text or "") + len(data or b"")
        # The producer's limit counts compact UTF-8; PostgreSQL renders jsonb
        # with spaces. Twice the limit: a sanity bound, not the producer's check.
        if size > 2 * MAX_MESSAGE_BYTES:
            return None, f"message is {size:,} bytes, over the {MAX_MESSAGE_BYTES:,}-byte limit"
        try:
            message = decode(text or "", data)
            return (message, "") if (problem := self._mismatch(message, delivery)) is None \
                else (None, problem)
        except Exception as error:  # whatever a row can make a decoder or a check raise
            cause = error.__cause__ or error  # DecodeError's own text repeats the row
            return None, f"undecodable message: {type(cause).__name__}: {str(cause)[:200]}"

    def _mismatch(self, message: Message, delivery: Delivery) -> str | None:
        """Why this decoded message may not run from this row, or None."""
        if not (isinstance(message.actor_name, str) and isinstance(message.queue_name, str)
                and isinstance(message.message_id, str) and isinstance(message.options, dict)
                and isinstance(message.kwargs, dict)):
            return "message fields have the wrong types"
        actor = self.broker.actors.get(message.actor_name)
        if message.queue_name != self.queue_name:
            return (f"message names queue {message.queue_name!r:.80} but its row is on "
                    f"{self.queue_name!r}")
        if message.message_id != delivery.message_id:
            return f"message id {message.message_id!r:.80} is not its row's"
        if actor is None:
            return unknown_actor(message.actor_name)
        if actor.queue_name != self.queue_name:
            return f"actor {actor.actor_name!r} runs on {actor.queue_name!r}"
        if "eta" in message.options:
            return "option eta is not supported: delay with available_at (add_job's run_after)"
        return None

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
        deliveries = [message.delivery for message in messages]
        if deliveries:
            self.broker.requeue(deliveries)

    def close(self) -> None:
        buffered, self.buffer = list(self.buffer), deque()
        try:
            self.requeue(buffered)
        except Exception:
            # Their leases run out and the rescuer returns them.
            logger.warning("could not return %d buffered messages", len(buffered), exc_info=True)

