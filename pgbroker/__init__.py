"""PostgreSQL broker for Dramatiq, built on dramatiq-pg's table and message format."""

from .broker import PostgresBroker
from .errors import EnqueueError, EnqueueTimeout, InvalidMessage, JobNotFound
from .results import PostgresResults

__all__ = [
    "EnqueueError",
    "EnqueueTimeout",
    "InvalidMessage",
    "JobNotFound",
    "PostgresBroker",
    "PostgresResults",
]
