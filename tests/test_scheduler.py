"""The periodic scheduler: one job per tick, Sundays, retries, a database that is down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pendulum
import pytest

from pgbroker import PostgresBroker
from scheduler import DedupingScheduler, cron, tick_slot
from tests.conftest import ROOT, TEST_ENV
from tests.fixtures import query
from tests.support import wait_for
from tests.workload import probe_tick

SUNDAY = pendulum.datetime(2026, 11, 29, 0, 0, tz="UTC")  # a Sunday


@pytest.mark.parametrize("spec", ["0 0 * * 0", "0 0 * * 7", "0 0 * * sun", "@weekly"])
def test_sunday_schedules_fire_on_sunday(spec):
    schedule = cron(spec)

    assert schedule.validate(SUNDAY)
    assert not schedule.validate(SUNDAY.add(days=1))
    assert schedule.next_valid_date(SUNDAY.subtract(days=3)) == SUNDAY


def test_weekday_schedules_are_unchanged():
    schedule = cron("30 9 * * mon-fri")

    assert schedule.validate(SUNDAY.add(days=1, hours=9, minutes=30))
    assert not schedule.validate(SUNDAY.add(hours=9, minutes=30))


def ticks() -> list[tuple[int, int]]:
    """(slot, jobs) per tick of probe_tick."""
    return query(
        "SELECT singleton_slot, count(*) FROM {schema}.\"queue\" "
        "WHERE message->>'actor_name' = 'probe_tick' GROUP BY 1 ORDER BY 1"
    )


class SchedulerProcess:
    def __init__(self, log_path) -> None:
        self.log_path = log_path
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "cli.py", "scheduler", "tests.workload"], cwd=ROOT,
            env={**os.environ, **TEST_ENV}, stdout=self.log, stderr=subprocess.STDOUT,
        )

    def said(self, text: str) -> bool:
        return text in self.log_path.read_text()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def schedulers(broker, tmp_path):
    started: list[SchedulerProcess] = []

    def start() -> SchedulerProcess:
        process = SchedulerProcess(tmp_path / f"scheduler-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.stop()


def test_two_schedulers_running_at_once_send_each_tick_once(schedulers):
    first, second = schedulers(), schedulers()

    wait_for(lambda: first.said("probe_tick at") and second.said("probe_tick at"),
             timeout=30, what="both schedulers to send their first tick")

    assert ticks() and all(jobs == 1 for _, jobs in ticks())
    assert first.said("already sent") or second.said("already sent")


def test_a_scheduler_restarted_within_a_minute_does_not_send_the_tick_again(schedulers):
    first = schedulers()
    wait_for(lambda: first.said("sent probe_tick at"), timeout=30, what="the first tick")
    first.stop()

    again = schedulers()
    wait_for(lambda: again.said("probe_tick at"), timeout=30, what="the restart's tick")

    assert all(jobs == 1 for _, jobs in ticks())


def test_a_periodic_jobs_retry_runs_even_when_the_tick_is_old(worker):
    long_ago = pendulum.now("UTC").subtract(minutes=30).replace(second=0, microsecond=0)
    DedupingScheduler(actors=[probe_tick]).send_actors([probe_tick], now=long_ago)
    # The tick carries no payload; make this one fail once through its options.
    query("UPDATE {schema}.\"queue\" SET message = jsonb_set(message, '{{kwargs}}', "
          "'{{\"fail_first\": true}}') WHERE message->>'actor_name' = 'probe_tick'")

    wait_for(lambda: query("SELECT count(*) FROM {schema}.test_runs WHERE key = 'tick'")[0][0]
             == 2, timeout=15, what="the tick and its retry to run")
    assert ticks() == [(tick_slot(long_ago), 1)]


def test_a_send_while_the_database_is_down_is_logged_and_the_scheduler_goes_on(broker, caplog):
    dead = PostgresBroker(url="postgresql://app:pw@127.0.0.1:9/db", enqueue_timeout=0.5)
    probe_tick.broker = dead
    try:
        started = time.monotonic()
        DedupingScheduler(actors=[probe_tick]).send_actors([probe_tick], now=pendulum.now())
        elapsed = time.monotonic() - started
    finally:
        probe_tick.broker = broker

    assert elapsed < 2
    assert "could not send probe_tick" in caplog.text
