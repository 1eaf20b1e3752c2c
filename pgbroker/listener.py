"""One LISTEN connection per process, turning NOTIFYs into wake-ups.

NOTIFY is only a hint here: a consumer woken by it claims with SKIP LOCKED, and
a consumer that hears nothing still polls. So a notification lost to a
reconnect costs at most one poll interval, never a job.
"""

from __future__ import annotations

import logging
import os
import select
import threading
from collections import defaultdict

from psycopg2 import sql
from psycopg2.extensions import ISOLATION_LEVEL_AUTOCOMMIT

from .db import DISCONNECTS, connect

logger = logging.getLogger(__name__)


class Listener:
    """Sets a per-channel :class:`threading.Event` whenever that channel is notified."""

    def __init__(self, dsn: str, *, reconnect_delay: float = 1.0) -> None:
        self.dsn = dsn
        self.reconnect_delay = reconnect_delay
        self._events: dict[str, threading.Event] = defaultdict(threading.Event)
        self._listening: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Written to when a channel is added, so the thread LISTENs at once.
        self._nudge_read, self._nudge_write = os.pipe()
        os.set_blocking(self._nudge_read, False)

    def event(self, channel: str) -> threading.Event:
        """The event set when ``channel`` is notified; starts listening if needed."""
        with self._lock:
            new = channel not in self._events
            event = self._events[channel]
            if new:
                os.write(self._nudge_write, b"!")
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="pg-listener", daemon=True)
                self._thread.start()
        return event

    def wake_all(self) -> None:
        with self._lock:
            events = list(self._events.values())
        for event in events:
            event.set()

    def stop(self) -> None:
        """Stop listening. A later :meth:`event` starts again."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        conn = None
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = connect(self.dsn, timeout=5, application_name="pts-jobs listener")
                    conn.set_isolation_level(ISOLATION_LEVEL_AUTOCOMMIT)
                    self._listening = set()
                    # Whatever was sent while we were away was never heard.
                    self.wake_all()
                self._listen_to_new_channels(conn)
                ready = select.select([conn, self._nudge_read], [], [], 0.5)[0]
                if self._nudge_read in ready:
                    os.read(self._nudge_read, 1024)
                if conn in ready:
                    conn.poll()
                    for notify in conn.notifies:
                        self._events[notify.channel].set()
                    conn.notifies.clear()
            except DISCONNECTS as error:
                logger.warning("listen connection lost (%s); reconnecting", str(error).strip())
                if conn is not None:
                    conn.close()
                conn = None
                self._stop.wait(self.reconnect_delay)
        if conn is not None:
            conn.close()

    def _listen_to_new_channels(self, conn) -> None:
        with self._lock:
            new = [channel for channel in self._events if channel not in self._listening]
        if not new:
            return
        with conn.cursor() as cur:
            for channel in new:
                cur.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        self._listening.update(new)
        # A message sent before this LISTEN was heard by no one: look once more.
        for channel in new:
            self._events[channel].set()
