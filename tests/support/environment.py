"""The test run's environment: names of its own and short timings.

Imported by ``tests/conftest.py`` before any project module, so the settings
every module reads (and every worker subprocess inherits) are these. Nothing
here connects to or starts PostgreSQL: the ``database`` fixture does, for the
integration and acceptance layers only.

The server is ``TEST_DATABASE_URL`` when set, otherwise an embedded one
(pgserver) whose socket lives in ``EMBEDDED_DATA_DIR``, so its URL is known
before it starts.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXERS = ROOT / "tests" / "fixers"

EMBEDDED_DATA_DIR = Path(tempfile.gettempdir()) / f"pts-jobs-test-pg-{os.getuid()}"
# pgserver puts the socket in the data directory when its path is short enough.
EMBEDDED_URL = f"postgresql://postgres:@/postgres?host={EMBEDDED_DATA_DIR}"
DATABASE_URL = os.environ.get("TEST_DATABASE_URL") or EMBEDDED_URL
EMBEDDED = DATABASE_URL == EMBEDDED_URL

RUN = uuid.uuid4().hex[:8]
SCHEMA = f"pts_test_{RUN}"
PIPELINE_SCHEMA = f"pts_pipeline_{RUN}"
WORKSPACE = Path(tempfile.gettempdir()) / f"pts-jobs-test-workspace-{RUN}"

TEST_ENV = {
    "DATABASE_URL": DATABASE_URL,
    "JOBS_SCHEMA_NAME": SCHEMA,
    "JOBS_PIPELINE_SCHEMA": PIPELINE_SCHEMA,
    "JOBS_WORKSPACE_DIR": str(WORKSPACE),
    # Test repositories are local paths; deployments allow https only.
    "JOBS_GIT_PROTOCOLS": "https,file",
    # Fast liveness so rescue tests take seconds, not minutes.
    "JOBS_HEARTBEAT_INTERVAL": "0.5",
    "JOBS_LEASE_TIMEOUT": "2",
    "JOBS_POLL_INTERVAL": "0.2",
    "JOBS_ENQUEUE_TIMEOUT": "3",
    # The pipeline's tests run host fixers (tests/fixers) in the process runtime;
    # the container runtime's are in tests/acceptance (test_sandbox_*).
    "JOBS_SANDBOX__RUNTIME": "process",
    # Short backoffs: the spec's 30-60 s first retries would make tests crawl.
    **{
        f"JOBS_POLICIES__{name}__FIRST_RETRY_AFTER": "0.2"
        for name in (
            "PROCESS_BUG_REPORT", "ANALYZE_CODEBASE", "EXECUTE_FIX",
            "CLEANUP_CONTAINER", "SEND_NOTIFICATION",
        )
    },
}
