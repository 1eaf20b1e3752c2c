"""Job types on Dramatiq's StubBroker: policies become options, bad input dies at once."""

from __future__ import annotations

from datetime import timedelta

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.message import Message

from actors.base import InvalidPayload, Payload, PermanentError, job
from pipeline.commands import seconds_left
from pipeline.errors import MissingRecord
from settings import JobPolicy, Priority


class Probe(Payload):
    key: str


POLICY = JobPolicy(queue="probe", max_retries=2, first_retry_after=timedelta(seconds=0.01),
                   backoff="fixed", time_limit=timedelta(seconds=30), concurrency=3,
                   priority=Priority.HIGH)


@pytest.fixture
def stub() -> StubBroker:
    broker = StubBroker()
    broker.actor_options.add("concurrency")  # PostgresBroker enforces it itself
    broker.emit_after("process_boot")
    return broker


@pytest.fixture
def stub_worker(stub: StubBroker):
    worker = dramatiq.Worker(stub, worker_timeout=50)
    worker.start()
    yield worker
    worker.stop()


def test_a_job_type_takes_queue_retries_backoff_limit_and_priority_from_its_policy(stub):
    @job("probe", Probe, policy=POLICY, broker=stub)
    def probe(payload: Probe) -> None:
        pass

    assert (probe.queue_name, probe.priority) == ("probe", int(Priority.HIGH))
    assert {k: probe.options[k] for k in ("max_retries", "min_backoff", "max_backoff",
                                          "time_limit", "concurrency")} == {
        "max_retries": 2, "min_backoff": 10, "max_backoff": 10, "time_limit": 30_000,
        "concurrency": 3}
    assert probe.options["throws"] == (InvalidPayload, PermanentError)


def test_an_option_the_broker_does_not_know_is_refused_at_declaration(stub):
    with pytest.raises(ValueError, match="periodic"):
        job("probe", Probe, policy=POLICY, broker=stub, periodic="* * * * *")(lambda p: None)


def test_a_message_whose_payload_does_not_validate_dies_without_a_retry(stub, stub_worker):
    runs: list[str] = []

    @job("probe", Probe, policy=POLICY, broker=stub)
    def probe(payload: Probe) -> None:
        runs.append(payload.key)

    # Another producer wrote it by hand: the worker validates again.
    stub.enqueue(Message(queue_name="probe", actor_name="probe", args=(),
                         kwargs={"key": 42, "extra": True}, options={}))
    stub.join("probe", fail_fast=False)
    stub_worker.join()

    (dead,) = stub.dead_letters
    assert runs == [] and dead.options.get("retries", 0) == 0


@pytest.mark.parametrize("error", [PermanentError("never"), MissingRecord("no row")])
def test_a_permanent_error_dies_at_once_and_another_error_is_retried(stub, stub_worker, error):
    attempts: list[str] = []

    @job("probe", Probe, policy=POLICY, broker=stub)
    def probe(payload: Probe) -> None:
        attempts.append(payload.key)
        raise error if payload.key == "permanent" else RuntimeError("try again")

    probe.send(key="permanent")
    probe.send(key="transient")
    stub.join("probe", fail_fast=False)
    stub_worker.join()

    assert attempts.count("permanent") == 1
    assert attempts.count("transient") == POLICY.max_retries + 1


def test_a_running_job_sees_what_is_left_of_its_time_limit(stub):
    @job("probe", Probe, policy=POLICY, broker=stub)
    def probe(payload: Probe) -> float | None:
        return seconds_left()

    left = probe(key="x")

    assert left is not None and 29 < left <= 30
    assert seconds_left() is None  # outside a job: no limit
