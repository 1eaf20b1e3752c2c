"""Stopping a delivery that lost its lease: the job's thread and its stop hooks."""

from __future__ import annotations

import threading
import time

from pgbroker import JobCancelled, LeaseLost, current_delivery
from pgbroker.delivery import Delivery
from tests.support import wait_for


def test_the_jobs_thread_gets_lease_lost_and_its_finally_runs():
    delivery = Delivery("m", "d", "q")
    started, seen = threading.Event(), []

    def job() -> None:
        delivery.start()
        try:
            started.set()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # in slices, as the command runner waits
                time.sleep(0.01)
            seen.append("ran out")
        except LeaseLost:
            seen.append("lease lost")
        finally:
            seen.append("finally: container stopped")
            delivery.finish()

    thread = threading.Thread(target=job)
    thread.start()
    started.wait(5)
    delivery.stop()
    thread.join(5)
    assert seen == ["lease lost", "finally: container stopped"]


def test_stop_hooks_run_once_off_the_callers_thread_and_late_ones_at_once():
    delivery = Delivery("m", "d", "q")
    calls: list[tuple[str, bool]] = []
    caller = threading.get_ident()

    def hook(name: str):
        return lambda: calls.append((name, threading.get_ident() == caller))

    delivery.on_stop(hook("container"))
    unregister = delivery.on_stop(hook("removed"))
    unregister()
    delivery.stop()
    delivery.stop()
    wait_for(lambda: calls, timeout=5, what="the hook")
    delivery.on_stop(hook("late"))
    assert calls == [("container", False), ("late", True)]


def test_a_finished_delivery_that_loses_its_row_stops_nothing():
    """Its own retry re-queued it and the next attempt took it before its ack."""
    delivery = Delivery("m", "d", "q")
    calls: list[str] = []
    delivery.on_stop(lambda: calls.append("stopped"))
    delivery.start()
    delivery.finish()
    delivery.stop()
    assert (delivery.lost, calls) == (False, [])


def test_a_thread_names_its_delivery_only_while_the_job_runs():
    delivery = Delivery("m", "d", "q")
    assert current_delivery() is None
    delivery.start()
    assert current_delivery() is delivery
    delivery.finish()
    assert current_delivery() is None


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_stopped_jobs_command_and_its_children_are_killed(tmp_path):
    from pipeline.commands import run_command

    delivery = Delivery("m", "d", "q")
    pids_file = tmp_path / "pids"
    outcome: list[str] = []

    def job() -> None:
        delivery.start()
        try:
            run_command(["sh", "-c", f"echo $$ > {pids_file}; sleep 30 & echo $! >> {pids_file};"
                         " wait"], timeout=60)
        except LeaseLost:
            outcome.append("lease lost")
        finally:
            delivery.finish()

    thread = threading.Thread(target=job)
    thread.start()
    def both_started() -> list[int]:
        words = pids_file.read_text().split() if pids_file.exists() else []
        return [int(word) for word in words] if len(words) == 2 else []

    pids = wait_for(both_started, timeout=10, what="the command and its child to start")
    delivery.stop()
    thread.join(15)
    assert outcome == ["lease lost"]
    wait_for(lambda: not any(_running(pid) for pid in pids), timeout=10,
             what="the shell and its sleep to be killed")


def test_a_cancelled_jobs_thread_gets_job_cancelled_and_retries_are_told_not_to_retry():
    class Proxy:
        options: dict = {}

    delivery, message = Delivery("m", "d", "q"), Proxy()
    started, seen = threading.Event(), []

    def job() -> None:
        delivery.start(message)
        try:
            started.set()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                time.sleep(0.01)
        except JobCancelled:
            seen.append("cancelled")
        finally:
            delivery.finish()

    thread = threading.Thread(target=job)
    thread.start()
    started.wait(5)
    delivery.cancel()
    thread.join(5)
    assert seen == ["cancelled"]
    assert (delivery.cancelled, message.options["throws"]) == (True, (JobCancelled,))


def test_once_the_actor_returned_a_stop_raises_nothing_into_its_thread():
    """Its thread now runs Retries and Results: an exception there would end it."""
    delivery = Delivery("m", "d", "q")
    delivery.start()
    delivery.actor_returned()
    try:
        delivery.stop()
        time.sleep(0.05)  # an async exception would land here
    finally:
        delivery.finish()
    assert delivery.lost
