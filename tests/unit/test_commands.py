"""Commands run within the job's time budget, their whole process group killed at the end."""

from __future__ import annotations

import time

import pytest
from dramatiq.middleware.time_limit import TimeLimitExceeded

from pipeline.commands import CommandTimeout, run_command, time_budget


def test_a_command_returns_its_exit_code_and_output():
    result = run_command(["sh", "-c", "echo out; echo err >&2; exit 3"])

    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")


def test_a_command_past_the_jobs_time_budget_is_killed_as_the_time_limit():
    started = time.monotonic()

    with time_budget(0.5), pytest.raises(TimeLimitExceeded):
        run_command(["sh", "-c", "sleep 30 & wait"])

    assert time.monotonic() - started < 5


def test_a_command_past_its_own_timeout_is_killed_with_what_it_printed():
    with pytest.raises(CommandTimeout) as timed_out:
        run_command(["sh", "-c", "echo started; sleep 30"], timeout=0.4)

    assert timed_out.value.stdout == "started\n"
