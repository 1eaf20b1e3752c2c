"""Test set-up: a real PostgreSQL, one fresh schema per run, short timings.

The server is ``TEST_DATABASE_URL`` when set, otherwise an embedded one
(pgserver) started for the run. The environment is set here, before any project
module reads its settings.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _database_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    import pgserver

    data_dir = Path(tempfile.gettempdir()) / f"pts-jobs-test-pg-{os.getuid()}"
    return pgserver.get_server(data_dir, cleanup_mode="stop").get_uri()


DATABASE_URL = _database_url()
RUN = uuid.uuid4().hex[:8]
SCHEMA = f"pts_test_{RUN}"
PIPELINE_SCHEMA = f"pts_pipeline_{RUN}"
WORKSPACE = Path(tempfile.gettempdir()) / f"pts-jobs-test-workspace-{RUN}"

TEST_ENV = {
    "DATABASE_URL": DATABASE_URL,
    "JOBS_SCHEMA_NAME": SCHEMA,
    "JOBS_PIPELINE_SCHEMA": PIPELINE_SCHEMA,
    "JOBS_WORKSPACE_DIR": str(WORKSPACE),
    # Fast liveness so rescue tests take seconds, not minutes.
    "JOBS_HEARTBEAT_INTERVAL": "0.5",
    "JOBS_LEASE_TIMEOUT": "2",
    "JOBS_POLL_INTERVAL": "0.2",
    "JOBS_ENQUEUE_TIMEOUT": "3",
    # Short backoffs: the spec's 30-60 s first retries would make tests crawl.
    **{
        f"JOBS_POLICIES__{name}__FIRST_RETRY_AFTER": "0.2"
        for name in (
            "PROCESS_BUG_REPORT", "ANALYZE_CODEBASE", "EXECUTE_FIX",
            "CLEANUP_CONTAINER", "SEND_NOTIFICATION",
        )
    },
}
os.environ.update(TEST_ENV)
sys.path.insert(0, str(ROOT))

pytest_plugins = ["tests.fixtures"]
