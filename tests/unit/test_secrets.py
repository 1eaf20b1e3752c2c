"""A configured secret never shows in a repr, an error message or the CLI's output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Zebra-Hunter-2.2"


def test_settings_repr_shows_no_url_token_or_webhook() -> None:
    config = load_settings(
        database_url=f"postgresql://app:{PASSWORD}@db/jobs",
        alert_webhook_url="https://hooks.example.com/services/T/B/webhook-credential",
        admin_token="admin-token-value", smtp_url=f"smtp://m:{PASSWORD}@mail:587",
    )
    shown = repr(config) + str(config) + str(config.model_dump())
    for secret in (PASSWORD, "webhook-credential", "admin-token-value", "app:"):
        assert secret not in shown
    assert PASSWORD in config.secret_values()


@pytest.mark.parametrize(
    "url",
    [
        f"postgress://app:{PASSWORD}@127.0.0.1:9/jobs",  # a typo'd scheme: libpq echoes it
        f"postgresql://app@127.0.0.1:9/jobs?password={PASSWORD}",
        f"host=127.0.0.1 port=9 user=app password={PASSWORD} dbname=jobs",
        f"host=127.0.0.1 port=9 password='{PASSWORD}' dbname=jobs connect_timeout=oops",
    ],
)
def test_the_cli_prints_no_password_whatever_form_the_database_url_takes(url: str) -> None:
    env = {**os.environ, "DATABASE_URL": url, "JOBS_ENQUEUE_TIMEOUT": "1"}
    result = subprocess.run(
        [sys.executable, "-c", "import cli; raise SystemExit(cli.main())", "stats"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert "database error" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
