"""A dramatiq-pg broker that claims with SKIP LOCKED and keeps jobs on leases.

It keeps dramatiq-pg's table (``<schema>.queue``) and message format, and
replaces what dramatiq-pg 0.12 was seen to get wrong (see
``shared/research/dramatiq-pitfalls.md``):

* claims are bounded batches with ``FOR UPDATE SKIP LOCKED``, best priority
  first, instead of one session advisory lock per message (which filled the lock
  table and stalled workers) and a read of the whole queue;
* every claim is a delivery with its own token: ack, nack, renewals, retries
  and results act only for the delivery that holds the message, and a
  delivery that lost it is stopped (``delivery.py``);
* a running job holds a lease renewed by a heartbeat; a worker whose session
  vanished is dead and its jobs go back at once, a silent one's when its lease
  lapses, but never because the database itself was away (``leases.py``);
* NOTIFY only wakes consumers up; they also poll, so nothing waits on luck;
* delays and retry backoffs are a due time on the row, not a worker's memory,
  and a consumer sleeps until the next one;
* messages and results go through Dramatiq's global encoder;
* ``send()`` gives up after ``enqueue_timeout`` with a clear error, and can
  enqueue on the caller's connection, inside the caller's transaction.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg2
import psycopg2.errors
from dramatiq.broker import Broker, MessageProxy
from dramatiq.errors import ConnectionError, DecodeError, QueueJoinTimeout
from dramatiq.message import Message
from dramatiq.middleware import Middleware, MiddlewareError, default_middleware
from psycopg2.extensions import connection as Connection
from psycopg2.extensions import cursor as Cursor
from psycopg2.extensions import quote_ident

from . import migrations
from .acks import GroupAcker
from .bulk import CopyStream
from .consumer import PostgresConsumer
from .db import DISCONNECTS, Pool, transaction
from .delivery import Delivery, current_delivery
from .encoding import decode, encode
from .errors import (
    EnqueueError,
    EnqueueTimeout,
    InvalidMessage,
    JobDeadLettered,
    unknown_actor,
)
from .failures import RecentFailures
from .health import worker_problem
from .leases import Inflight, LeaseKeeper
from .lifecycle import ActorReturned, WorkerLifecycle
from .listener import Listener
from .prepared import PreparedStatements
from .queries import channel_prefix, queries
from .redact import redact
from .registry import WorkerSession

logger = logging.getLogger(__name__)

T = TypeVar("T")

# PostgreSQL truncates identifiers, NOTIFY channels included, past 63 bytes.
MAX_CHANNEL_BYTES = 63
# A delayed batch goes to enqueue_many() this many messages a call (one due
# now streams through a single COPY).
ENQUEUE_PAGE_SIZE = 1000

# The statements run for every job, each planned once per connection (see
# pgbroker/prepared.py): planning them took longer than running them, the
# queue table having a dozen partial indexes to weigh. Parameters in order,
# with their types.
PREPARED: dict[str, list[tuple[str, str]]] = {
    "claim": [("queue_name", "text"), ("limit", "int"), ("owner", "text"),
              ("lease_seconds", "float8")],
    "ack_many": [("message_ids", "uuid[]"), ("delivery_ids", "uuid[]")],
    "enqueue_new": [("message_id", "uuid"), ("queue_name", "text"), ("message", "jsonb"),
                    ("message_bytes", "bytea"), ("priority", "smallint"),
                    ("delay_ms", "integer"), ("last_error", "text")],
}


class PostgresBroker(Broker):
    """Dramatiq broker on PostgreSQL, in dramatiq-pg's table and message format.
    Creates its schema on first use.

    It derives from Dramatiq's ``Broker``, not dramatiq-pg's, whose ``__init__``
    rewrites that package's module-global queries for one schema.

    Parameters:
        url: libpq connection URL. Workers need a direct or session-mode
            connection (they LISTEN); producers may go through a
            transaction-mode pooler.
        schema: schema of the queue table.
        middleware: the full middleware list, as for any dramatiq broker.
        pool_size: connections this process may open.
        enqueue_timeout: seconds ``send()`` may wait for the database.
        lease_timeout: seconds after which a job whose worker stopped renewing
            its lease is run again elsewhere.
        heartbeat_interval: seconds between lease renewals.
        rescue_interval: seconds between looks for dead workers' jobs: a
            SIGKILLed worker's jobs start again about this long after.
        poll_interval: seconds between claims when no NOTIFY arrives (a safety
            net: due times and NOTIFYs wake consumers on their own).
        max_rescues: times a job may lose its worker before it is dead-lettered.
        extra_migrations: (schema, directory) pairs of the application's own
            migrations, applied with the broker's on first use.
    """

    def __init__(
        self,
        *,
        url: str,
        schema: str = "dramatiq",
        middleware: list | None = None,
        pool_size: int = 20,
        enqueue_timeout: float = 5.0,
        lease_timeout: float = 20.0,
        heartbeat_interval: float = 5.0,
        rescue_interval: float = 1.0,
        poll_interval: float = 1.0,
        max_rescues: int = 3,
        extra_migrations: Sequence[tuple[str, Path]] = (),
    ) -> None:
        given = middleware if middleware is not None else [m() for m in default_middleware]
        # First: its before_ hooks run before the others' and its after_ hooks
        # (which Dramatiq runs in reverse) after them, so the job's delivery is
        # bound for all Retries, Results and callbacks write in its name.
        super().__init__(middleware=[WorkerLifecycle(), *given, ActorReturned()])
        self.pool = Pool(url, size=pool_size)
        self.url = url
        self.schema = schema
        self.queries = queries(schema)
        self._sql_text: dict[str, str] = {}
        self.prepared = PreparedStatements(PREPARED, self._text)
        self._notify: dict[str, str] = {}  # per queue, the NOTIFY that wakes its consumers
        self.enqueue_timeout = enqueue_timeout
        self.lease_timeout = lease_timeout
        self.poll_interval = poll_interval
        self.max_rescues = max_rescues
        self.extra_migrations = list(extra_migrations)
        # The worker options this broker enforces itself.
        self.actor_options.add("concurrency")

        self.listener = Listener(url)
        # Each queue's wake-up event (see _wake_queue).
        self._wakeups: dict[str, threading.Event] = {}
        self.inflight = Inflight(on_release=self._wake_queue)
        # The dramatiq Workers of this process (WorkerLifecycle keeps the list).
        self.workers: list[Any] = []
        self.leases = LeaseKeeper(
            session=lambda: WorkerSession(
                dsn=url, queries=self.queries, worker_id=self.owner,
                lease_seconds=lease_timeout, max_rescues=max_rescues,
            ),
            inflight=self.inflight,
            queues=self._consumed_queues,
            problem=lambda: worker_problem(list(self.workers), draining=self.draining),
            lease_seconds=lease_timeout,
            heartbeat_interval=heartbeat_interval,
            rescue_interval=rescue_interval,
        )
        # Acks of all this process's threads, grouped into one statement each flush.
        self.acker = GroupAcker(self._write_acks, release=self.inflight.discard)
        self.draining = False
        self._schema_lock = threading.Lock()
        self._owner_lock = threading.Lock()
        self._schema_ready = False
        self._owner: tuple[int, str] | None = None
        # Per hook name: the middleware list it was read from, and the
        # middleware that define the hook (see _hooked).
        self._hooks: dict[str, tuple[list, list]] = {}
        # For join(fail_fast=True): what the jobs this process dead-lettered raised.
        self.recent_failures = RecentFailures()

    def add_middleware(self, middleware: Any, *, before: Any = None, after: Any = None) -> None:
        """Dramatiq's ``add_middleware``; by default before :class:`ActorReturned`,
        which stays last (see there)."""
        if before is None and after is None and any(
                isinstance(m, ActorReturned) for m in self.middleware):
            before = ActorReturned
        super().add_middleware(middleware, before=before, after=after)

    def __repr__(self) -> str:
        return f"PostgresBroker({redact(self.url)!r}, schema={self.schema!r})"

    # -- middleware hooks --------------------------------------------------

    def emit_before(self, signal: str, *args: Any, **kwargs: Any) -> None:
        """Dramatiq's ``emit_before``, calling only the middleware that define the hook."""
        name = "before_" + signal
        for hook in self._hooked(name):
            try:
                hook(self, *args, **kwargs)
            except MiddlewareError:
                raise
            except Exception:
                self.logger.critical("Unexpected failure in %s of %r.", name,
                                     getattr(hook, "__self__", hook), exc_info=True)

    def emit_after(self, signal: str, *args: Any, **kwargs: Any) -> None:
        """Dramatiq's ``emit_after`` (in reverse order), calling only the
        middleware that define the hook."""
        name = "after_" + signal
        for hook in self._hooked(name):
            try:
                hook(self, *args, **kwargs)
            except Exception:
                self.logger.critical("Unexpected failure in %s of %r.", name,
                                     getattr(hook, "__self__", hook), exc_info=True)

    def _hooked(self, name: str) -> list[Callable[..., Any]]:
        """The hooks ``name`` of the middleware that define it (more than
        ``Middleware``'s no-op), bound, in the order Dramatiq calls them.

        The production stack has a dozen middleware, most of which define one
        or two of the hooks a job passes: calling the no-ops of the rest cost
        about 2 us an emit (an emit with none to call now takes 0.24 us). The
        list is read again whenever the middleware list changes.
        """
        cached = self._hooks.get(name)
        if cached is None or cached[0] != self.middleware:
            noop = getattr(Middleware, name, None)
            # getattr with a default: Dramatiq takes any object as middleware.
            chosen = [hook for m in self.middleware
                      if getattr(type(m), name, None) is not noop
                      or name in getattr(m, "__dict__", ())
                      if (hook := getattr(m, name, None)) is not None]
            if name.startswith("after_"):
                chosen.reverse()
            cached = self._hooks[name] = (list(self.middleware), chosen)
        return cached[1]

    # -- identity and names ------------------------------------------------

    @property
    def owner(self) -> str:
        """This process's name on the leases it takes: host, pid and a nonce."""
        pid = os.getpid()
        with self._owner_lock:  # consumers race here at boot: one name per process
            if self._owner is None or self._owner[0] != pid:
                self._owner = (pid, f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:8]}")
            return self._owner[1]

    def channel(self, queue_name: str) -> str:
        return channel_prefix(self.schema) + queue_name

    def declare_queue(self, queue_name: str) -> None:
        """Declare a queue, refusing names too long for a NOTIFY channel.

        Unlike dramatiq-pg, no ".DQ" delay queue is declared: delayed messages
        wait in the table with a due time, so no consumer is needed for them.
        """
        if queue_name in self.queues:
            return
        size = len(self.channel(queue_name).encode("utf-8"))
        if size > MAX_CHANNEL_BYTES:
            raise ValueError(
                f"queue name {queue_name!r} is too long: its channel "
                f"{self.channel(queue_name)!r} has {size} bytes, PostgreSQL allows "
                f"{MAX_CHANNEL_BYTES}"
            )
        self.emit_before("declare_queue", queue_name)
        self.queues[queue_name] = True
        self.emit_after("declare_queue", queue_name)

    def queue_limit(self, queue_name: str) -> int | None:
        """The lowest ``concurrency`` option of the queue's actors, if any sets one."""
        caps = [
            actor.options["concurrency"]
            for actor in self.actors.values()
            if actor.queue_name == queue_name and actor.options.get("concurrency")
        ]
        return min(caps) if caps else None

    # -- lifecycle ---------------------------------------------------------

    def _consumed_queues(self) -> set[str]:
        queues: set[str] = set()
        for worker in list(self.workers):
            queues.update(list(worker.consumers))
        return queues

    def close(self) -> None:
        self.flush_acks()
        self.leases.stop(all_users=True)
        self.listener.stop()
        self.pool.close()

    def ensure_schema(self) -> None:
        """Create or upgrade the schema once per process (safe to race)."""
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            self.migrate()
            self._schema_ready = True

    def migrate(self) -> list[str]:
        """Apply the broker's migrations and the extra ones. Returns ``schema.name`` of each."""
        applied = []
        with self.pool.connection(self.enqueue_timeout) as conn:
            for schema, directory in [(self.schema, migrations.MIGRATIONS_DIR),
                                      *self.extra_migrations]:
                names = [m.name for m in migrations.migrate(conn, schema, directory)]
                if names:
                    logger.info("schema %s: applied %s", schema, names)
                applied += [f"{schema}.{name}" for name in names]
        return applied

    # -- producing ---------------------------------------------------------

    def enqueue(
        self, message: Message, *, delay: int | None = None, connection: Connection | None = None
    ) -> Message:
        """Store ``message``, due after ``delay`` ms.

        With ``connection``, the message is written on that connection and
        becomes visible when the caller commits (and vanishes if it rolls back).

        Raises:
            InvalidMessage: the message cannot be stored as JSON.
            EnqueueTimeout: the database could not be reached in time.
            EnqueueError: the database refused the message.
        """
        if connection is not None or current_delivery() is not None:
            return self.enqueue_many([message], delay=delay, connection=connection)[0]
        return self._send(message, delay)

    def _send(self, message: Message, delay: int | None) -> Message:
        """``enqueue`` of one message outside a job, on our pool (a producer's
        ``send()``): ``enqueue_many``'s path for it, without the batch's
        bookkeeping. Each microsecond of Python here costs a send about three:
        it runs on caches the round trip before it left cold."""
        self.emit_before("enqueue", message, delay)
        if is_new_singleton(message):
            return self._enqueue_singleton(message, delay, None)
        row = self._row(message, delay)
        self._with_deadline(f"a message to {message.queue_name!r}",
                            lambda cur: self._insert_new(cur, row) or self._enqueue_one(cur, row))
        self.emit_after("enqueue", message, delay)
        return message

    def enqueue_many(
        self,
        messages: Sequence[Message],
        *,
        delay: int | None = None,
        connection: Connection | None = None,
    ) -> list[Message]:
        """Store many new messages in one transaction: those due now in one COPY,
        delayed ones 1,000 a statement.

        A new message with the option ``singleton_key`` is stored only if no job
        with that key is live on its queue (and, with ``singleton_seconds`` or
        ``singleton_slot``, none was sent in the same slot); otherwise the
        message returned in its place carries the existing job's id and the
        option ``deduplicated``.
        """
        for message in messages:
            self.emit_before("enqueue", message, delay)
        singletons = [m for m in messages if is_new_singleton(m)]
        if singletons:
            if len(singletons) != len(messages):
                raise InvalidMessage("send singleton messages one at a time, not in a batch")
            return [self._enqueue_singleton(m, delay, connection) for m in singletons]
        sender = current_delivery()
        try:
            self._write(messages, delay, connection, sender)
        except EnqueueTimeout:
            if sender is None or connection is not None:
                raise
            # A job's retry or follow-up while the database is away: Dramatiq
            # would log it and ack the job as done, losing it. The delivery
            # keeps it and sends it before its ack, which Dramatiq retries
            # until the database answers.
            sender.pending_sends.append(([_plain(m).copy() for m in messages], delay))
            logger.warning("message %s: %d message(s) it sent wait for the database; they "
                           "go out before its ack", sender.message_id, len(messages))
            raise
        for message in messages:
            self.emit_after("enqueue", message, delay)
        return list(messages)

    def _write(self, messages: Sequence[Message], delay: int | None,
               connection: Connection | None, sender: Delivery | None) -> None:
        # A producer's own batch of messages due now is encoded as COPY reads
        # it (see _copy), overlapping the server's inserts. The others are
        # encoded first: an invalid message then leaves the caller's
        # transaction as it was, and a job's sends kept while the database is
        # away (pending_sends) are known to be valid.
        if sender is not None and sender.gave_up:
            # Its job is to run again from the start: what it sends now (its
            # own retry, most likely) would go out twice.
            logger.warning("not sending %d message(s): delivery %s of message %s gave up "
                           "its lease", len(messages), sender.delivery_id, sender.message_id)
            return
        streamed = len(messages) > 1 and not delay and connection is None and sender is None
        rows = None if streamed else [self._row(message, delay) for message in messages]
        # The fence: the delivery of the job that sends, if a job sends.
        fence = (sender.message_id, sender.delivery_id) if sender else (None, None)
        queue_names = sorted({message.queue_name for message in messages})

        def insert(cur: Cursor) -> int:
            if rows is None:
                return self._copy(cur, (self._row(message, None) for message in messages),
                                  fence, queue_names)
            if len(rows) == 1:
                if sender is None and connection is None and self._insert_new(cur, rows[0]):
                    return 1
                return self._enqueue_one(cur, rows[0], fence)
            if not delay:
                return self._copy(cur, rows, fence, queue_names)
            written = 0
            query = self._text("enqueue_batch", cur.connection)
            for start in range(0, len(rows), ENQUEUE_PAGE_SIZE):
                columns = [list(column) for column in
                           zip(*rows[start:start + ENQUEUE_PAGE_SIZE], strict=True)]
                cur.execute(query, (*columns, *fence))
                written += cur.fetchone()[0]
            return written

        what = f"{len(messages)} message(s) to {queue_names}"
        written = self._produce(what, insert, connection, atomic=len(messages) > 1)
        if sender is None:
            return
        if written < len(messages):
            # The fence held them back: another delivery runs the job that sends.
            logger.warning("not sending %s: delivery %s of message %s lost its lease",
                           what, sender.delivery_id, sender.message_id)
        elif any(message.message_id == sender.message_id for message in messages):
            sender.requeued = True  # its retry: the next attempt is a new delivery

    def _copy(self, cur: Cursor, rows: Iterable[tuple], fence: tuple,
              queue_names: list[str]) -> int:
        """Store new messages due now with one COPY (see ``enqueue_copy``),
        fenced like ``enqueue_many()``, in the transaction of ``cur``. ``rows``
        may be made as COPY reads them; an error raised making one is raised
        here, after the COPY ends. Returns how many were written."""
        conn = cur.connection
        if fence[1] is not None:
            cur.execute(self._text("enqueue_fence_lost", conn), fence)
            if cur.fetchone()[0]:
                return 0
        stream = CopyStream((message_id, queue_name, "queued", message, data, priority, error)
                            for message_id, queue_name, message, data, priority, _, error in rows)
        try:
            cur.copy_expert(self._text("enqueue_copy", conn), stream)
        except psycopg2.Error:
            if stream.error is not None:
                raise stream.error from None
            raise
        cur.execute(self._text("enqueue_wake", conn), (queue_names,))
        return stream.rows

    def _enqueue_one(self, cur: Cursor, row: tuple, fence: tuple = (None, None)) -> int:
        """Store one message, or re-queue it if it is stored (a retry, or a
        message sent again), fenced by the sending delivery. Returns how many
        were written, 0 or 1."""
        cur.execute(self._text("enqueue", cur.connection), (*row, *fence))
        return cur.fetchone()[0]

    def _insert_new(self, cur: Cursor, row: tuple) -> bool:
        """Store one message sent outside a job, on a pool connection, and wake
        its queue's consumers: one prepared INSERT, with no function to call and
        no row to read back (pgbench: 125-163 us against ``enqueue``'s 173-207
        at synchronous_commit off). False if the message is stored already
        (sent again), which ``enqueue`` re-queues."""
        queue_name = row[1]
        wake = self._notify.get(queue_name)
        if wake is None:
            channel = quote_ident(self.channel(queue_name), cur.connection)
            wake = self._notify[queue_name] = f"NOTIFY {channel}"
        try:
            self.prepared.execute(cur, "enqueue_new", row, then=wake)
        except psycopg2.errors.UniqueViolation:
            return False
        return True

    def _send_pending(self, delivery: Delivery) -> None:
        """Send what the delivery's job could not while the database was away.

        Raises:
            EnqueueTimeout: still away (Dramatiq retries the ack later).
        """
        while delivery.pending_sends:
            messages, delay = delivery.pending_sends[0]
            self._write(messages, delay, None, delivery)
            delivery.pending_sends.pop(0)
            for message in messages:
                self.emit_after("enqueue", message, delay)

    def _enqueue_singleton(
        self, message: Message, delay: int | None, connection: Connection | None
    ) -> Message:
        options = message.options
        text, data = encode(message)
        params = {
            "message_id": message.message_id,
            "queue_name": message.queue_name,
            "message": text,
            "message_bytes": data,
            "priority": self._priority(message),
            "delay_ms": max(int(delay or 0), 0),
            "singleton_key": options["singleton_key"],
            "singleton_seconds": options.get("singleton_seconds"),
            "singleton_slot": options.get("singleton_slot"),
        }

        sender = current_delivery()

        def insert(cur: Cursor) -> str | None:
            if sender is not None and sender.gave_up:
                return None
            if sender is not None:  # fenced like every send of a job (see _copy)
                cur.execute(self._text("enqueue_fence_lost", cur.connection),
                            (sender.message_id, sender.delivery_id))
                if cur.fetchone()[0]:
                    return None
            # The holder may finish between our insert and our read of it; then
            # the key is free and the next insert goes through.
            for _ in range(3):
                cur.execute(self.queries["enqueue_singleton"], params)
                if cur.fetchone() is not None:
                    return message.message_id
                cur.execute(self.queries["singleton_holder"], params)
                held = cur.fetchone()
                if held is not None:
                    return held[0]
            raise EnqueueError(f"singleton {params['singleton_key']!r} is contended; try again")

        what = f"singleton {params['singleton_key']!r} to {message.queue_name}"
        job_id = self._produce(what, insert, connection)
        if job_id is None:
            assert sender is not None
            logger.warning("not sending %s: delivery %s of message %s lost its lease",
                           what, sender.delivery_id, sender.message_id)
            return message
        if job_id == message.message_id:
            self.emit_after("enqueue", message, delay)
            return message
        logger.info("%s: job %s already holds it", what, job_id)
        return message.copy(message_id=job_id, options={"deduplicated": True})

    def _priority(self, message: Message) -> int:
        # A producer may set one message's priority (the HTTP API does).
        if isinstance(message.options.get("priority"), int):
            return message.options["priority"]
        actor = self.actors.get(message.actor_name)
        return actor.priority if actor is not None else 0

    def _row(self, message: Message, delay: int | None) -> tuple:
        """The columns of ``message`` as ``enqueue_one()`` takes them."""
        if message.queue_name not in self.queues:
            self.declare_queue(message.queue_name)
        retried_after = message.options.get("traceback")
        text, data = encode(message)
        return (
            message.message_id,
            message.queue_name,
            text,
            data,
            self._priority(message),
            max(int(delay or 0), 0),
            last_line(retried_after) if retried_after else None,
        )

    def _produce(self, what: str, work: Callable[[Cursor], T], connection: Connection | None,
                 *, atomic: bool = False) -> T:
        """Run a producer's ``work`` on the caller's connection (inside its
        transaction), or on ours under the enqueue deadline."""
        if connection is None:
            return self._with_deadline(what, work, atomic=atomic)
        self.ensure_schema()
        with connection.cursor() as cur:
            return work(cur)

    def _with_deadline(self, what: str, work: Callable[[Cursor], T], *, atomic: bool = False) -> T:
        """Run ``work``, retrying lost connections until the deadline.

        Pool connections autocommit each statement; ``atomic`` wraps ``work``'s
        statements in one transaction instead.
        """
        deadline = time.monotonic() + self.enqueue_timeout
        pause = 0.05
        while True:
            remaining = deadline - time.monotonic()
            try:
                self.ensure_schema()
                with self.pool.connection(max(remaining, 0.01)) as conn:
                    if not atomic:
                        with conn.cursor() as cur:
                            return work(cur)
                    with transaction(conn), conn.cursor() as cur:
                        return work(cur)
            except DISCONNECTS as error:
                remaining = deadline - time.monotonic()
                if remaining <= pause:
                    raise EnqueueTimeout(
                        f"could not enqueue {what} within {self.enqueue_timeout:g}s: "
                        f"database unreachable ({str(error).strip()})"
                    ) from error
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
            except psycopg2.Error as error:
                raise EnqueueError(f"could not enqueue {what}: {str(error).strip()}") from error

    # -- consuming ---------------------------------------------------------

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 30000) -> PostgresConsumer:
        try:
            self.ensure_schema()
        except DISCONNECTS as error:
            # Dramatiq restarts a consumer that raises ConnectionError, a few
            # seconds later; anything else it logs as a bug.
            raise ConnectionError(str(error).strip()) from error
        cap = self.queue_limit(queue_name)
        limit = min(prefetch, cap) if cap else prefetch
        return PostgresConsumer(self, queue_name, limit=max(limit, 1), timeout_ms=timeout)

    def get_declared_delay_queues(self) -> set[str]:
        return set()

    def claim(self, queue_name: str, limit: int) -> tuple[list[tuple], float | None]:
        """Lease up to ``limit`` due messages of ``queue_name``, each a new delivery.

        Returns ([(delivery, message text, message bytes)], seconds until the
        queue's next delayed message is due, or None).
        """
        # The server starts each lease at its now(), after this moment.
        lease_until = time.monotonic() + self.lease_timeout
        rows = self.fetch(
            "claim", queue_name=queue_name, limit=limit, owner=self.owner,
            lease_seconds=self.lease_timeout,
        )
        next_due = rows[-1][4]
        claimed = [
            (Delivery(message_id, delivery_id, queue_name, lease_until=lease_until), text, data)
            for message_id, delivery_id, text, data, _ in rows[:-1]
        ]
        self.inflight.add(delivery for delivery, _, _ in claimed)
        return claimed, next_due

    def complete(self, message: MessageProxy) -> None:
        delivery: Delivery = message.delivery
        if delivery.gave_up:
            self._forget(delivery)
            return
        if delivery.pending_sends:
            with self._finishing(delivery, release=False):
                # Before the ack: a retry it could not send re-queues the row instead.
                self._send_pending(delivery)
        # Written behind this thread, grouped with the other threads' acks; the
        # delivery stays held (and leased) until its ack is committed, but its
        # slot is free: the consumer may claim the next job meanwhile.
        self.inflight.free_slot(delivery)
        self.acker.ack(delivery)

    def flush_acks(self) -> None:
        """Write the acks still queued, waiting up to a lease for the database."""
        if not self.acker.flush(self.lease_timeout):
            logger.warning("%d acks not written before shutdown; their jobs will run again",
                           self.acker.pending())

    def _write_acks(self, deliveries: Sequence[Delivery]) -> None:
        self.execute("ack_many", message_ids=[d.message_id for d in deliveries],
                     delivery_ids=[d.delivery_id for d in deliveries])

    def dead_letter(self, message: MessageProxy) -> None:
        delivery: Delivery = message.delivery
        if delivery.gave_up:
            self._forget(delivery)
            return
        self.recent_failures.record(delivery.message_id, getattr(message, "_exception", None))
        with self._finishing(delivery):
            self._send_pending(delivery)
            try:
                text, data = encode(message)
            except InvalidMessage:  # a middleware put something odd in its options
                text, data = encode(message._message.copy(options={}))
            self.execute(
                "nack",
                message_id=delivery.message_id,
                delivery_id=delivery.delivery_id,
                message=text,
                message_bytes=data,
                last_error=failure_text(message, self.actors),
            )

    def _forget(self, delivery: Delivery) -> None:
        """A given-up delivery's job is over: write nothing, hold it no more."""
        logger.warning("message %s: not acking delivery %s, given up; a rescuer returns it "
                       "once its lease lapses", delivery.message_id, delivery.delivery_id)
        self.inflight.discard(delivery)

    @contextmanager
    def _finishing(self, delivery: Delivery, *, release: bool = True) -> Iterator[None]:
        """Release the delivery once its ack or nack is written, or refused
        (without ``release``, only if refused: the ack flusher releases it).

        Not while the database is away: Dramatiq retries the ack until it
        answers, and meanwhile the heartbeat must keep renewing the lease, or
        a rescue would run the finished job again.
        """
        try:
            yield
        except (*DISCONNECTS, ConnectionError):
            raise
        except BaseException:
            self.inflight.discard(delivery)
            raise
        if release:
            self.inflight.discard(delivery)

    def reject(self, delivery: Delivery, reason: str) -> None:
        """Dead-letter a claimed row no worker may run, with ``reason`` as its error.

        Middleware with an ``after_reject_row(broker, delivery, reason)`` hook
        (the dead-letter alerts) hear of it once it is stored: such a row never
        reaches Dramatiq, so no ``after_nack`` follows.
        """
        logger.error("message %s dead-lettered unrun: %s", delivery.message_id, reason)
        try:
            stored = self.execute("reject", message_id=delivery.message_id,
                                  delivery_id=delivery.delivery_id, last_error=reason)
        finally:
            self.inflight.discard(delivery)
        if stored:
            for middleware in self.middleware:
                hook = getattr(middleware, "after_reject_row", None)
                if hook is None:
                    continue
                try:
                    hook(self, delivery, reason)
                except Exception:
                    logger.exception("after_reject_row of %r failed", middleware)

    def requeue(self, deliveries: list[Delivery]) -> None:
        """Give back deliveries that never started."""
        try:
            self.execute("requeue", message_ids=[d.message_id for d in deliveries],
                         delivery_ids=[d.delivery_id for d in deliveries])
        finally:
            for delivery in deliveries:
                self.inflight.discard(delivery)

    def rescue_expired(self) -> int:
        """Return dead workers' and lapsed leases' messages to their queues, once
        (the CLI's ``recover``). Returns how many."""
        session = WorkerSession(dsn=self.url, queries=self.queries, worker_id=self.owner,
                                lease_seconds=self.lease_timeout, max_rescues=self.max_rescues)
        try:
            self.ensure_schema()
            return session.rescue(watched=False)
        finally:
            session.close()

    def _wake_queue(self, queue_name: str) -> None:
        # Once a job: the listener keeps a channel's event for good.
        event = self._wakeups.get(queue_name)
        if event is None:
            event = self._wakeups[queue_name] = self.listener.event(self.channel(queue_name))
        event.set()

    # -- plumbing ----------------------------------------------------------

    def execute(self, name: str, **params: Any) -> int:
        """Run named query ``name`` (one statement, autocommitted). Returns the row count."""
        return self._run(name, params, lambda cur: cur.rowcount)

    def fetch(self, name: str, **params: Any) -> list[tuple]:
        """Run named query ``name`` (one statement, autocommitted). Returns its rows."""
        return self._run(name, params, lambda cur: cur.fetchall())

    def _run(self, name: str, params: dict[str, Any], result: Callable[[Cursor], T]) -> T:
        self.ensure_schema()
        with self.pool.connection(self.enqueue_timeout) as conn, conn.cursor() as cur:
            if name in PREPARED:
                self.prepared.execute(cur, name, [params[param] for param, _ in PREPARED[name]])
                return result(cur)
            cur.execute(self._text(name, conn), params)
            return result(cur)

    def _text(self, name: str, conn: Connection) -> str:
        """Query ``name`` as text, rendered once: composing its identifiers cost
        ~10 us a statement."""
        text = self._sql_text.get(name)
        if text is None:
            text = self._sql_text[name] = self.queries[name].as_string(conn)
        return text

    # -- dramatiq's testing helpers ----------------------------------------

    def flush(self, queue_name: str) -> None:
        """Delete every message of ``queue_name``."""
        self._with_deadline(
            f"flush of {queue_name}",
            lambda cur: cur.execute(
                self.queries["flush"], {"queue_name": queue_name}
            ),
        )

    def flush_all(self) -> None:
        for queue_name in self.queues:
            self.flush(queue_name)

    def join(self, queue_name: str, *, fail_fast: bool = False,
             timeout: int | None = None) -> None:
        """Wait until ``queue_name`` has nothing queued or running.

        With ``fail_fast``, as Dramatiq's StubBroker: once it has nothing left,
        raise if any of its messages was dead-lettered (since its last flush):
        the job's own exception if this process's worker dead-lettered it (see
        pgbroker/failures.py), else :class:`JobDeadLettered`.

        Raises:
            QueueJoinTimeout: after ``timeout`` ms.
            JobDeadLettered: with ``fail_fast``, for the first message dead-lettered.
        """
        deadline = None if timeout is None else time.monotonic() + timeout / 1000
        while True:
            (pending,) = self.fetch("pending_count", queue_name=queue_name)[0]
            if pending == 0:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise QueueJoinTimeout(queue_name)
            time.sleep(0.05)
        if fail_fast:
            for _, message_id, _, _, error in self.fetch("dead_letters", queue_name=queue_name):
                raised = self.recent_failures.get(message_id)
                raise raised or JobDeadLettered(queue_name, message_id, error) from None

    @property
    def dead_letters(self) -> list[Message]:
        """Every dead-lettered message, oldest first, as Dramatiq's StubBroker
        lists them for tests (rows no decoder can read are left out)."""
        return [message for _, message in self._dead_letters()]

    @property
    def dead_letters_by_queue(self) -> dict[str, list[Message]]:
        """:attr:`dead_letters` by queue name."""
        by_queue: dict[str, list[Message]] = defaultdict(list)
        for queue_name, message in self._dead_letters():
            by_queue[queue_name].append(message)
        return by_queue

    def _dead_letters(self) -> Iterator[tuple[str, Message]]:
        for queue_name, _, text, data, _ in self.fetch("dead_letters", queue_name=None):
            try:
                yield queue_name, decode(text, data)
            except DecodeError:
                continue


def _plain(message: Message | MessageProxy) -> Message:
    return message if isinstance(message, Message) else message._message


def is_new_singleton(message: Message) -> bool:
    """A first send with a singleton key (a retry keeps its row and its key).

    Raises:
        InvalidMessage: the singleton options are malformed.
    """
    options = message.options
    if "singleton_key" not in options or "retries" in options:
        return False
    key, seconds, slot = (options.get(name) for name in
                          ("singleton_key", "singleton_seconds", "singleton_slot"))
    if not isinstance(key, str) or not 0 < len(key) <= 500:
        raise InvalidMessage("singleton_key must be a non-empty string of at most 500 chars")
    if seconds is not None and (not isinstance(seconds, int) or seconds <= 0):
        raise InvalidMessage("singleton_seconds must be a positive whole number of seconds")
    if slot is not None and not isinstance(slot, int):
        raise InvalidMessage("singleton_slot must be an integer")
    return True


def failure_text(message: MessageProxy, actors: Container[str]) -> str:
    """Why ``message`` is dead, in one line: its exception, or the reason it never ran."""
    exception = getattr(message, "_exception", None)
    if exception is not None:
        return f"{type(exception).__name__}: {exception}"
    if message.actor_name not in actors:
        return unknown_actor(message.actor_name)
    traceback = message.options.get("traceback")
    return last_line(traceback) if traceback else "rejected"


def last_line(traceback_text: str) -> str:
    """The ``Type: message`` line that ends a formatted traceback."""
    lines = [line for line in traceback_text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else traceback_text

