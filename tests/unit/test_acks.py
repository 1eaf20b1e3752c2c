"""Group commit of acks: batched behind the job threads, released only once written."""

from __future__ import annotations

import threading

import psycopg2

from pgbroker.acks import GroupAcker
from pgbroker.delivery import Delivery
from tests.support import wait_for


def test_acks_queued_while_a_flush_runs_go_out_together_in_the_next_one():
    gate = threading.Event()
    batches: list[list[str]] = []
    released: list[Delivery] = []

    def write(deliveries):
        batches.append([d.message_id for d in deliveries])
        gate.wait(5)  # the first flush is slow: the others gather behind it

    acker = GroupAcker(write, release=released.append)
    acker.ack(Delivery("m0", "d0", "q"))
    wait_for(lambda: batches, timeout=5)
    for i in range(1, 6):
        acker.ack(Delivery(f"m{i}", f"d{i}", "q"))
    assert released == []  # nothing is released before its ack is written
    gate.set()
    assert acker.flush(5)
    assert batches == [["m0"], ["m1", "m2", "m3", "m4", "m5"]]
    assert [d.message_id for d in released] == [f"m{i}" for i in range(6)]


def test_acks_are_kept_and_written_again_while_the_database_is_away():
    failures = [2]
    written: list[str] = []
    released: list[Delivery] = []

    def write(deliveries):
        if failures[0]:
            failures[0] -= 1
            raise psycopg2.OperationalError("server closed the connection")
        written.extend(d.message_id for d in deliveries)

    acker = GroupAcker(write, release=released.append)
    acker.ack(Delivery("m", "d", "q"))
    assert acker.flush(5)
    assert written == ["m"] and [d.message_id for d in released] == ["m"]


def test_a_flush_that_cannot_finish_says_so_and_keeps_the_acks():
    def write(deliveries):
        raise psycopg2.OperationalError("could not connect")

    acker = GroupAcker(write, release=lambda d: None)
    acker.ack(Delivery("m", "d", "q"))
    assert acker.flush(0.3) is False
    assert acker.pending() == 1


def test_a_batch_that_fails_for_good_is_released_so_its_leases_lapse():
    released: list[Delivery] = []

    def write(deliveries):
        raise ValueError("a bug, not the network")

    acker = GroupAcker(write, release=released.append)
    acker.ack(Delivery("m", "d", "q"))
    assert acker.flush(5)
    assert [d.message_id for d in released] == ["m"]
