"""Dramatiq's broker contract, on PostgreSQL with real worker threads.

What Dramatiq's own suite asks of a broker, written for ours: retries end dead
with the right attempt count however fast they come back, short delays run on
time, any encoder round-trips, results outlive their message rows, groups,
pipelines and callbacks compose, ``join`` waits for everything, and the
middleware hooks fire as often as on Dramatiq's StubBroker.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import threading
import time
import uuid
from collections import Counter

import dramatiq
import pytest
from dramatiq import group, pipeline
from dramatiq.brokers.stub import StubBroker
from dramatiq.encoder import JSONEncoder, PickleEncoder
from dramatiq.errors import QueueJoinTimeout
from dramatiq.middleware import Middleware, Retries, SkipMessage
from dramatiq.results import ResultMissing

from pgbroker import JobDeadLettered, PostgresBroker, PostgresResults
from tests.support import wait_for
from tests.support.environment import DATABASE_URL, SCHEMA
from tests.support.fixtures import query


class Runs:
    """What the contract actors did, by key. Thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count: Counter[str] = Counter()
        self.started: dict[str, float] = {}
        self.seen: dict[str, object] = {}

    def add(self, key: str, value: object = None) -> int:
        with self.lock:
            self.count[key] += 1
            self.started.setdefault(key, time.time())
            self.seen[key] = value
            return self.count[key]


@pytest.fixture(scope="module")
def contract(broker):
    """Actors of the contract's own, on queues of their own."""
    runs = Runs()
    actors = {}

    def actor(name: str, **options):
        def declare(fn):
            actors[name] = dramatiq.actor(fn, broker=broker, actor_name=f"contract_{name}",
                                          queue_name=f"contract-{name}", **options)
            return actors[name]
        return declare

    @actor("fails", max_retries=3)
    def fails(key: str) -> None:
        runs.add(key)
        raise RuntimeError(f"fails every time: {key}")

    @actor("record", store_results=True)
    def record(key: str, value=None):
        runs.add(key, value)
        return {"key": key, "value": value}

    @actor("add", store_results=True)
    def add(x: int, y: int = 0) -> int:
        return x + y

    @actor("boom", max_retries=0)
    def boom(key: str) -> None:
        runs.add(key)
        raise ValueError("boom")

    @actor("on_success")
    def on_success(message: dict, result) -> None:
        runs.add(f"success:{message['message_id']}", result)

    @actor("on_failure")
    def on_failure(message: dict, error: dict) -> None:
        runs.add(f"failure:{message['message_id']}", error["type"])

    return runs, actors


def queues(*names: str) -> set[str]:
    return {f"contract-{name}" for name in names}


@pytest.mark.parametrize("backoff_ms", [0, 1])
def test_retries_with_tiny_backoffs_under_many_threads_end_dead_after_every_attempt(
    contract, start_worker, backoff_ms
):
    """Issue 10, 1: an ack of attempt n used to finish attempt n+1 (15 of 300 'done')."""
    runs, actors = contract
    start_worker(threads=32, queues=queues("fails"))
    keys = [f"r{backoff_ms}-{i}" for i in range(200)]
    sent = [actors["fails"].send_with_options(args=(key,), min_backoff=backoff_ms,
                                              max_backoff=backoff_ms) for key in keys]
    ids = [m.message_id for m in sent]

    def finished() -> bool:
        (left,) = query('SELECT count(*) FROM {schema}."queue" WHERE message_id = ANY(%s::uuid[])'
                        " AND state IN ('queued', 'consumed')", ids)[0]
        return left == 0

    wait_for(finished, timeout=60, interval=0.05, what="every retry to run out")
    rows = query('SELECT state::text, attempts, (message #>> \'{{options,retries}}\')::int '
                 'FROM {schema}."queue" WHERE message_id = ANY(%s::uuid[])', ids)
    assert Counter(rows) == Counter({("rejected", 4, 4): len(keys)})
    assert Counter(runs.count[key] for key in keys) == Counter({4: len(keys)})


@pytest.mark.parametrize("delay_ms", [50, 75, 100])
def test_short_delays_run_on_time_not_at_the_next_poll(contract, start_worker, delay_ms):
    """Issue 10, 4: Retry(delay=100) ran after about a second (the poll interval)."""
    runs, actors = contract
    start_worker(threads=4, queues=queues("record"))
    sent = {}
    for i in range(10):
        key = f"d{delay_ms}-{i}"
        sent[key] = actors["record"].send_with_options(args=(key,), delay=delay_ms)
        time.sleep(0.013)  # due times apart, not one batch
    wait_for(lambda: all(key in runs.started for key in sent), timeout=10,
             what="every delayed message to start")

    due = dict(query('SELECT message_id::text, extract(epoch FROM available_at)::float8 '
                     'FROM {schema}."queue" WHERE message_id = ANY(%s::uuid[])',
                     [m.message_id for m in sent.values()]))
    lateness = [runs.started[key] - due[m.message_id] for key, m in sent.items()]
    assert min(lateness) >= -0.002  # never early (the 2 ms are clock rounding)
    # The poll interval is 200 ms here: a claim that waited for it would fail this.
    assert statistics.median(lateness) < 0.03, lateness
    assert max(lateness) < 0.1, lateness


class DatetimeEncoder(JSONEncoder):
    """A JSON encoder of one's own: datetimes travel as tagged ISO strings."""

    def encode(self, data):
        return json.dumps(data, default=self._default, separators=(",", ":")).encode()

    def decode(self, data):
        return json.loads(data, object_hook=self._hook)

    @staticmethod
    def _default(value):
        if isinstance(value, dt.datetime):
            return {"$datetime": value.isoformat()}
        raise TypeError(f"cannot encode {type(value).__name__}")

    @staticmethod
    def _hook(obj):
        return dt.datetime.fromisoformat(obj["$datetime"]) if set(obj) == {"$datetime"} else obj


@pytest.fixture
def encoder():
    """Set Dramatiq's global encoder for the test; the JSON encoder again after."""
    def use(chosen):
        dramatiq.set_encoder(chosen)
        return chosen
    yield use
    dramatiq.set_encoder(JSONEncoder())


@pytest.mark.parametrize("chosen", [DatetimeEncoder, PickleEncoder])
def test_messages_round_trip_through_the_global_encoder(contract, start_worker, encoder, chosen):
    """Issue 10, 5: send() ignored the encoder; pickled messages were dead-lettered."""
    runs, actors = contract
    encoder(chosen())
    start_worker(threads=2, queues=queues("record"))
    when = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
    key = f"enc-{chosen.__name__}"
    sent = actors["record"].send(key, {"when": when})

    wait_for(lambda: key in runs.seen, timeout=10, what="the message to run")
    assert runs.seen[key] == {"when": when}
    actor_name, has_bytes = query(
        'SELECT message ->> \'actor_name\', message_bytes IS NOT NULL '
        'FROM {schema}."queue" WHERE message_id = %s', sent.message_id)[0]
    wait_for(lambda: query('SELECT state::text FROM {schema}."queue" WHERE message_id = %s',
                           sent.message_id)[0][0] == "done", timeout=5, what="the ack")
    # Pickle is kept as bytes, with the routing fields readable from SQL.
    assert (actor_name, has_bytes) == ("contract_record", chosen is PickleEncoder)


def test_a_result_is_kept_for_a_message_whose_row_is_gone_and_expires_with_its_ttl(broker):
    """Issue 10, 6: results were an UPDATE of the message row, lost without one."""
    backend = PostgresResults(broker)
    unknown: dramatiq.Message = dramatiq.Message(
        queue_name="elsewhere", actor_name="unknown", args=(), kwargs={}, options={})
    backend.store_result(unknown, {"answer": 42}, 60_000)
    short = unknown.copy(message_id=str(uuid.uuid4()))
    backend.store_result(short, "brief", 50)
    # A key that is not a UUID (a backend of someone else's naming).
    other = unknown.copy(message_id="not-a-uuid")
    backend.store_result(other, [1, 2], 60_000)

    assert backend.get_result(unknown) == {"answer": 42}
    assert backend.get_result(other) == [1, 2]
    wait_for(lambda: _missing(backend, short), timeout=5, what="the short TTL to pass")


def _missing(backend, message) -> bool:
    try:
        backend.get_result(message)
    except ResultMissing:
        return True
    return False


def test_a_result_outlives_a_flush_of_its_queue(contract, start_worker, broker):
    _, actors = contract
    start_worker(threads=2, queues=queues("record"))
    sent = actors["record"].send("flushed")
    assert sent.get_result(block=True, timeout=10_000) == {"key": "flushed", "value": None}
    broker.flush("contract-record")
    assert sent.get_result() == {"key": "flushed", "value": None}


def test_results_of_any_encoding_round_trip(broker):
    backend = PostgresResults(broker, encoder=PickleEncoder())
    message: dramatiq.Message = dramatiq.Message(
        queue_name="q", actor_name="a", args=(), kwargs={}, options={})
    backend.store_result(message, {1, 2, 3}, 60_000)
    assert backend.get_result(message) == {1, 2, 3}


def test_groups_pipelines_and_callbacks_compose(contract, start_worker):
    runs, actors = contract
    start_worker(threads=4, queues=queues("add", "record", "boom", "on_success", "on_failure"))
    add = actors["add"]

    g = group(add.message(i, i) for i in range(5)).run()
    assert sorted(g.get_results(block=True, timeout=10_000)) == [0, 2, 4, 6, 8]

    p = pipeline([add.message(1, 2), add.message(10), add.message(100)]).run()
    assert p.get_result(block=True, timeout=10_000) == 113

    good = actors["record"].send_with_options(args=("cb-good",), on_success="contract_on_success")
    bad = actors["boom"].send_with_options(args=("cb-bad",), on_failure="contract_on_failure")
    wait_for(lambda: f"success:{good.message_id}" in runs.seen
             and f"failure:{bad.message_id}" in runs.seen, timeout=10, what="both callbacks")
    assert runs.seen[f"success:{good.message_id}"] == {"key": "cb-good", "value": None}
    assert runs.seen[f"failure:{bad.message_id}"] == "ValueError"


def test_join_waits_for_delayed_and_running_messages_and_times_out(contract, start_worker,
                                                                   broker):
    runs, actors = contract
    keys = [f"join-{i}" for i in range(5)]
    for i, key in enumerate(keys):
        actors["record"].send_with_options(args=(key,), delay=100 * i)
    with pytest.raises(QueueJoinTimeout):
        broker.join("contract-record", timeout=100)  # no worker yet
    start_worker(threads=2, queues=queues("record"))
    broker.join("contract-record", timeout=10_000)
    assert all(runs.count[key] == 1 for key in keys)


def dead_letter_row(message_id: str, error: str, seconds_ago: int) -> None:
    """Mark a stored message dead, as another process's worker would have."""
    query('UPDATE {schema}."queue" SET "state" = \'rejected\', last_error = %s, '
          "finished_at = now() - %s * interval '1 second' WHERE message_id = %s",
          error, seconds_ago, message_id)


def test_join_fail_fast_raises_the_exception_of_a_job_this_process_dead_lettered(
        contract, start_worker, broker):
    """As StubBroker's join(fail_fast=True): the job's own exception, in the joining thread."""
    runs, actors = contract
    start_worker(threads=2, queues=queues("boom"))
    actors["boom"].send("fail-fast")
    with pytest.raises(ValueError, match=r"^boom$") as raised:
        broker.join("contract-boom", fail_fast=True, timeout=10_000)
    # Raised by join: the job's own frames are not kept (pgbroker/failures.py).
    assert [entry.name for entry in raised.traceback][-1] == "join"
    assert runs.count["fail-fast"] == 1
    broker.join("contract-boom", timeout=10_000)  # without fail_fast: nothing left, no error


def test_join_fail_fast_names_a_job_another_process_dead_lettered(contract, broker):
    _, actors = contract
    older, newer = actors["boom"].send("elsewhere-1"), actors["boom"].send("elsewhere-2")
    dead_letter_row(newer.message_id, "RuntimeError: far away", seconds_ago=1)
    dead_letter_row(older.message_id, "KeyError: 'older'", seconds_ago=2)
    with pytest.raises(JobDeadLettered, match="KeyError: 'older'") as raised:
        broker.join("contract-boom", fail_fast=True, timeout=1_000)
    assert (raised.value.queue_name, raised.value.message_id) == ("contract-boom",
                                                                  older.message_id)


def test_dead_letters_lists_the_dead_messages_oldest_first_by_queue(contract, broker):
    _, actors = contract
    first, second = actors["boom"].send("dead-1"), actors["fails"].send("dead-2")
    alive = actors["boom"].send("alive")
    unreadable = str(uuid.uuid4())
    query('INSERT INTO {schema}."queue" (message_id, queue_name, "state", message, finished_at) '
          "VALUES (%s, 'contract-boom', 'rejected', %s, now())",
          unreadable, json.dumps({"not": "a message"}))
    dead_letter_row(second.message_id, "RuntimeError: second", seconds_ago=1)
    dead_letter_row(first.message_id, "ValueError: first", seconds_ago=2)

    assert broker.dead_letters == [first, second]  # the unreadable row is left out
    assert broker.dead_letters_by_queue == {"contract-boom": [first],
                                            "contract-fails": [second]}
    assert alive not in broker.dead_letters


class HookCounter(Middleware):
    """Counts every message hook that fires."""

    HOOKS = ("before_enqueue", "after_enqueue", "before_process_message",
             "after_process_message", "after_skip_message", "before_ack", "after_ack",
             "before_nack", "after_nack")

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        for hook in self.HOOKS:
            setattr(self, hook, self._counter(hook))

    def _counter(self, hook):
        def count(*args, **kwargs):
            with self.lock:
                self.counts[hook] += 1
        return count


class SkipSome(Middleware):
    def before_process_message(self, broker, message):
        if message.args and str(message.args[0]).startswith("skip"):
            raise SkipMessage()


def run_workload(broker, counter: HookCounter, queue: str) -> None:
    """Successes, failures without retries and skipped messages, on ``broker``."""
    @dramatiq.actor(broker=broker, queue_name=queue, actor_name=f"{queue}_work", max_retries=0)
    def work(key: str) -> None:
        if key.startswith("fail"):
            raise RuntimeError(key)

    worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=100, queues={queue})
    worker.start()
    try:
        for i in range(6):
            for kind in ("ok", "fail", "skip"):
                work.send(f"{kind}-{i}")
        broker.join(queue, timeout=20_000)
        worker.join()
        # Acks land after the message leaves the queue: wait for all 18.
        wait_for(lambda: counter.counts["after_ack"] + counter.counts["after_nack"] == 18,
                 timeout=10, what="every ack and nack")
    finally:
        worker.stop()


def test_middleware_hooks_fire_as_often_as_on_dramatiqs_stub_broker(broker):
    stub_counter, ours_counter = HookCounter(), HookCounter()
    stub = StubBroker(middleware=[stub_counter, SkipSome(), Retries()])
    stub.emit_after("process_boot")
    run_workload(stub, stub_counter, "contract-hooks")

    ours = PostgresBroker(url=DATABASE_URL, schema=SCHEMA,
                          middleware=[ours_counter, SkipSome(), Retries()])
    try:
        ours.emit_after("process_boot")
        run_workload(ours, ours_counter, "contract-hooks")
    finally:
        ours.close()
    assert ours_counter.counts == stub_counter.counts
    assert ours_counter.counts["after_skip_message"] == 6
