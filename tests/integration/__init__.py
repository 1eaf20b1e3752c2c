"""Integration tests: a real PostgreSQL (``TEST_DATABASE_URL`` or an embedded
server), with in-process workers (``worker``, ``start_worker``) and the CLI.

Each test starts from empty tables (``clean_tables``, automatic with ``broker``).
"""
