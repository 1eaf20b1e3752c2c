"""Errors the broker raises to producers and admin callers."""

from __future__ import annotations

from dramatiq.errors import BrokerError, ConnectionError


class InvalidMessage(BrokerError, ValueError):
    """A message cannot be stored: not JSON, NaN, a NUL character, a bad queue."""


class EnqueueError(BrokerError):
    """The database refused the message (for example: the schema is missing)."""


class EnqueueTimeout(ConnectionError):
    """The database could not be reached within the enqueue timeout."""


class JobNotFound(LookupError):
    """No job has this id."""


class JobDeadLettered(Exception):
    """``join(..., fail_fast=True)``: a message of the queue was dead-lettered.

    Dramatiq's StubBroker raises the job's own exception there, which only a
    worker in the same process has; this one carries what the row keeps, so it
    works whichever process ran the job.
    """

    def __init__(self, queue_name: str, message_id: str, error: str | None) -> None:
        super().__init__(f"message {message_id} of queue {queue_name!r} was dead-lettered: "
                         f"{error or 'no error recorded'}")
        self.queue_name = queue_name
        self.message_id = message_id
        self.error = error


def unknown_actor(actor_name: str) -> str:
    """Why a message for ``actor_name`` is dead: no worker of its queue declares it."""
    return f"unknown actor {actor_name!r:.80}: no worker on this queue defines it"
