"""The unit layer touches no database: a test that asks for one fails at once."""

from __future__ import annotations

import pytest

DATABASE_FIXTURES = {"database", "broker", "worker", "start_worker", "cli_worker",
                     "private_postgres"}


@pytest.fixture(autouse=True)
def _no_database(request: pytest.FixtureRequest) -> None:
    wanted = DATABASE_FIXTURES & set(request.fixturenames)
    if wanted:
        pytest.fail(f"unit tests use no database: move this test to tests/integration "
                    f"(it asks for {sorted(wanted)})")
