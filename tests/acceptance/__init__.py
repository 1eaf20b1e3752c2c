"""Acceptance tests: the system as it runs, ``dramatiq`` worker processes
(``cli_worker``), schedulers, a PostgreSQL of the test's own that it stops
(``private_postgres``), chaos, end to end, and the deploy files.
"""
