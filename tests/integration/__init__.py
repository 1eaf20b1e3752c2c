"""Integration tests: a real PostgreSQL (``TEST_DATABASE_URL`` or an embedded
server), with in-process workers (``worker``, ``start_worker``) and the CLI.

Each test that uses the broker starts from empty tables (``clean_tables``,
automatic; every table of the test schemas, read from the catalog). A pipeline
function called directly takes ``rollback_db``: one transaction per test,
rolled back after it.
"""
