"""Unit tests: no database, no worker process; the whole folder runs in seconds.

Parsing, settings, payloads, cron, notices, actors on Dramatiq's StubBroker, and
pipeline functions on a real filesystem or git. Asking for a database fixture
here is an error (see ``conftest.py``).
"""
