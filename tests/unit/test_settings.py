"""Settings: the spec's policy table, environment overrides, clear errors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from settings import Priority, SettingsError, load_settings


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("JOBS_POLICIES__"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_the_policies_are_the_specs(clean_env):
    rows = {
        name: (p.queue, p.max_retries, p.first_retry_after, p.backoff, p.time_limit,
               p.priority, p.concurrency)
        for name, p in load_settings().policies.by_actor().items()
    }
    minutes, seconds = timedelta(minutes=1), timedelta(seconds=1)
    assert rows == {
        "process_bug_report": ("process-bug-report", 3, 30 * seconds, "exponential",
                               10 * minutes, Priority.NORMAL, 5),
        "analyze_codebase": ("analyze-codebase", 2, 60 * seconds, "exponential",
                             30 * minutes, Priority.NORMAL, 2),
        "execute_fix": ("execute-fix", 3, 60 * seconds, "exponential", 45 * minutes,
                        Priority.HIGH, 1),
        "cleanup_container": ("cleanup-container", 5, 10 * seconds, "fixed", 5 * minutes,
                              Priority.NORMAL, 5),
        "send_notification": ("send-notification", 3, 30 * seconds, "fixed", 60 * minutes,
                              Priority.NORMAL, 10),
        # Ours, not the spec's: the sandbox sweeper and retention, run by the scheduler.
        "sweep_sandboxes": ("cleanup-container", 1, 60 * seconds, "fixed", 10 * minutes,
                            Priority.NORMAL, 1),
        "prune_jobs": ("maintenance", 3, 60 * seconds, "fixed", 10 * minutes,
                       Priority.NORMAL, 1),
    }


def test_fixed_backoff_never_grows_and_exponential_does(clean_env):
    policies = load_settings().policies
    assert policies.cleanup_container.max_backoff_ms == policies.cleanup_container.min_backoff_ms
    assert policies.execute_fix.max_backoff_ms > policies.execute_fix.min_backoff_ms


def test_one_field_of_one_policy_can_be_overridden_from_the_environment(clean_env):
    clean_env.setenv("JOBS_POLICIES__EXECUTE_FIX__TIME_LIMIT", "3600")
    clean_env.setenv("JOBS_POLICIES__SEND_NOTIFICATION__MAX_RETRIES", "7")

    policies = load_settings().policies

    assert policies.execute_fix.time_limit == timedelta(hours=1)
    assert policies.execute_fix.max_retries == 3
    assert policies.send_notification.max_retries == 7


def test_an_invalid_setting_fails_naming_its_environment_variable(clean_env):
    clean_env.setenv("JOBS_POLICIES__EXECUTE_FIX__CONCURRENCY", "zero")
    clean_env.setenv("JOBS_METRICS_PORT", "70000")

    with pytest.raises(SettingsError) as error:
        load_settings()

    assert "JOBS_POLICIES__EXECUTE_FIX__CONCURRENCY" in str(error.value)
    assert "JOBS_METRICS_PORT" in str(error.value)


def test_a_lease_shorter_than_two_heartbeats_is_refused(clean_env):
    clean_env.setenv("JOBS_HEARTBEAT_INTERVAL", "10")
    clean_env.setenv("JOBS_LEASE_TIMEOUT", "15")

    with pytest.raises(SettingsError, match="lease_timeout"):
        load_settings()
