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


def unknown_actor(actor_name: str) -> str:
    """Why a message for ``actor_name`` is dead: no worker of its queue declares it."""
    return f"unknown actor {actor_name!r:.80}: no worker on this queue defines it"
