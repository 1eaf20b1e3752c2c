"""The test suite, in three layers (each a folder; see its ``__init__``'s docstring):

* ``unit/``: no database, no worker; seconds in all.
* ``integration/``: a real PostgreSQL, in-process workers and the CLI.
* ``acceptance/``: real ``dramatiq`` processes, shutdown, chaos, end to end, deploy.

Shared helpers live in ``tests/support/`` (``wait_for``, ``job_in``,
``free_port``; the test actors in ``workload``; pipeline data in ``pipeline``);
the fixtures in ``tests/support/fixtures.py``. The environment is set here,
before any project module reads its settings; no PostgreSQL is started here.
"""

from __future__ import annotations

import os

from tests.support.environment import TEST_ENV

os.environ.update(TEST_ENV)

pytest_plugins = ["tests.support.fixtures", "tests.support.web"]
