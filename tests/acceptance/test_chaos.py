"""The chaos run, short: workers killed and PostgreSQL restarted, nothing lost.

``python -m bench.chaos`` runs the long version (10,000 jobs).
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.environment import ROOT


def test_no_job_is_lost_while_workers_are_killed_and_postgres_restarts(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBS_")}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--jobs", "1200", "--rate", "150",
         "--workers", "2", "--interval", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    report = dict(
        line.strip().split(": ", 1) for line in result.stdout.splitlines() if ": " in line
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert report["sent"] == "1,200"
    assert report["lost"] == "0"
    assert int(report["kills"]) + int(report["terms"]) >= 4
    assert report["postgres_restarts"] == "1"
