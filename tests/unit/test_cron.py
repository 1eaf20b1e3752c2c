"""Cron specs of periodic actors: Sunday is 0 and 7, as in cron."""

from __future__ import annotations

import pendulum
import pytest

from middleware.periodic import cron

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
