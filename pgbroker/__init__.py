"""PostgreSQL broker for Dramatiq, built on dramatiq-pg's table and message format."""

from .broker import PostgresBroker
from .delivery import Delivery, JobCancelled, LeaseLost, current_delivery
from .errors import EnqueueError, EnqueueTimeout, InvalidMessage, JobDeadLettered, JobNotFound
from .lifecycle import WorkerLifecycle
from .results import PostgresResults

__all__ = [
    "Delivery",
    "EnqueueError",
    "EnqueueTimeout",
    "InvalidMessage",
    "JobCancelled",
    "JobDeadLettered",
    "JobNotFound",
    "LeaseLost",
    "PostgresBroker",
    "PostgresResults",
    "WorkerLifecycle",
    "current_delivery",
]
