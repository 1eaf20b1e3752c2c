"""What every job type shares: its payload model and the actor that checks it.

A job type is a pydantic model and a function decorated with :func:`job`::

    class CleanupContainer(Payload):
        container_id: str
        fix_job_id: UUID

    @job("cleanup_container", CleanupContainer)
    def cleanup_container(payload: CleanupContainer) -> None: ...

    cleanup_container.send(container_id="c1", fix_job_id=...)   # validated here

``send()`` validates the payload before anything reaches the database and raises
:class:`InvalidPayload` naming the wrong field. A worker validates again (another
producer may have written the row by hand or through SQL ``add_job``); a message
that does not validate is dead-lettered at once, without retries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

import dramatiq
from dramatiq.message import Message
from dramatiq.middleware import CurrentMessage
from psycopg2.extensions import connection as Connection
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from pgbroker import PostgresBroker
from pipeline.commands import time_budget
from pipeline.errors import PermanentError
from settings import JobPolicy, settings

__all__ = ["InvalidPayload", "JobActor", "Payload", "PermanentError", "is_final_attempt", "job"]

P = TypeVar("P", bound="Payload")


class Payload(BaseModel):
    """Base of the job payloads: frozen, no unknown fields.

    Fields are snake_case in Python; the spec's camelCase names (``bugReportId``)
    are accepted too, for producers written against the spec's TypeScript.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        loc_by_alias=False,  # errors name the Python field, as send() takes it
    )


class InvalidPayload(ValueError):
    """The payload does not match the job type's model. Never retried."""

    def __init__(self, actor_name: str, error: ValidationError | str) -> None:
        if isinstance(error, ValidationError):
            details = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(payload)'}: {e['msg']}"
                + (f" (got {e['input']!r})" if e["type"] != "missing" else "")
                for e in error.errors(include_url=False)
            )
            self.errors = error.errors(include_url=False)
        else:
            details, self.errors = error, []
        super().__init__(f"invalid payload for {actor_name}: {details}")


def is_final_attempt() -> bool:
    """True while the running job is on its last attempt (no retry follows a failure)."""
    message = CurrentMessage.get_current_message()
    if message is None:
        return True
    actor = dramatiq.get_broker().get_actor(message.actor_name)
    max_retries = message.options.get("max_retries", actor.options.get("max_retries", 20))
    return int(message.options.get("retries", 0)) >= max_retries


class JobActor(dramatiq.Actor, Generic[P]):
    """A Dramatiq actor whose keyword arguments are a validated :class:`Payload`."""

    def __init__(
        self,
        fn: Callable[[P], Any],
        *,
        payload_model: type[P],
        singleton: Callable[[P], tuple[str, int]] | None = None,
        **kwargs: Any,
    ) -> None:
        self.payload_model = payload_model
        self.singleton = singleton
        super().__init__(fn, **kwargs)

    def validate(self, args: tuple = (), kwargs: Mapping[str, Any] | None = None) -> P:
        """The payload as a model.

        Accepts keyword arguments, or a single model instance as argument.

        Raises:
            InvalidPayload: naming each field that is wrong.
        """
        kwargs = dict(kwargs or {})
        if len(args) == 1 and not kwargs and isinstance(args[0], self.payload_model):
            return args[0]
        if args:
            raise InvalidPayload(
                self.actor_name,
                f"pass the payload as keyword arguments or one {self.payload_model.__name__}",
            )
        try:
            return self.payload_model.model_validate(kwargs)
        except ValidationError as error:
            raise InvalidPayload(self.actor_name, error) from None

    def message_with_options(
        self, *, args: tuple = (), kwargs: dict[str, Any] | None = None, **options: Any
    ) -> Message:
        # Every send path goes through here: send, send_with_options, message.
        payload = self.validate(args, kwargs)
        if self.singleton is not None and "singleton_key" not in options:
            key, seconds = self.singleton(payload)
            options.update(singleton_key=key, singleton_seconds=seconds)
        return super().message_with_options(
            args=(), kwargs=payload.model_dump(mode="json"), **options
        )

    def send_many(self, payloads: Iterable[Mapping[str, Any] | P]) -> list[Message]:
        """Enqueue many jobs in one round trip; all are validated first."""
        messages = [
            self.message(p) if isinstance(p, BaseModel) else self.message(**p) for p in payloads
        ]
        return self._pg_broker.enqueue_many(messages)

    def send_in_transaction(self, connection: Connection, /, *args: Any, **kwargs: Any) -> Message:
        """Enqueue on ``connection``: the job exists once, and only if, its caller commits."""
        return self._pg_broker.enqueue(self.message(*args, **kwargs), connection=connection)

    @property
    def _pg_broker(self) -> PostgresBroker:
        if not isinstance(self.broker, PostgresBroker):
            raise TypeError(f"{self.actor_name} is not bound to a PostgresBroker")
        return self.broker

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        payload = self.validate(args, kwargs)
        message = CurrentMessage.get_current_message()
        # As dramatiq's TimeLimit: the message's own limit, else the actor's.
        time_limit_ms = (message.options if message else {}).get(
            "time_limit", self.options.get("time_limit"))
        with time_budget(None if time_limit_ms is None else time_limit_ms / 1000):
            return self.fn(payload)


def job(
    actor_name: str,
    payload_model: type[P],
    *,
    policy: JobPolicy | None = None,
    singleton: Callable[[P], tuple[str, int]] | None = None,
    broker: dramatiq.Broker | None = None,
    **options: Any,
) -> Callable[[Callable[[P], Any]], JobActor[P]]:
    """Declare the actor of job type ``actor_name`` with its policy.

    The queue, retries, backoff, time limit, priority and concurrency come from
    ``policy``, by default the row of ``settings.policies`` named ``actor_name``;
    ``singleton(payload)`` returns the (key, seconds) that makes sends of the
    same key within that window one job; ``broker`` is the one to declare it on
    (Dramatiq's global broker by default); ``options`` adds other Dramatiq actor
    options (``store_results=True``, ``periodic=cron(...)``, ...).
    """
    if policy is None:
        policy = settings.policies.by_actor()[actor_name]

    def decorator(fn: Callable[[P], Any]) -> JobActor[P]:
        target = broker or dramatiq.get_broker()
        actor_options = {
            "max_retries": policy.max_retries,
            "min_backoff": policy.min_backoff_ms,
            "max_backoff": policy.max_backoff_ms,
            "time_limit": policy.time_limit_ms,
            "concurrency": policy.concurrency,
            "throws": (InvalidPayload, PermanentError),
            **options,
        }
        unknown = set(actor_options) - target.actor_options
        if unknown:
            raise ValueError(f"actor options not supported by the broker: {sorted(unknown)}")
        return JobActor(
            fn,
            payload_model=payload_model,
            singleton=singleton,
            broker=target,
            actor_name=actor_name,
            queue_name=policy.queue,
            priority=int(policy.priority),
            options=actor_options,
        )

    return decorator
