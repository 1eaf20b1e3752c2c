"""The job system's Dramatiq broker: PostgreSQL, configured from ``settings``.

Importing this module sets Dramatiq's global broker, so actors declared after it
bind to PostgreSQL. The middleware stack is the list below, in order.
"""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from dramatiq.results import Results

from embedded import database_url
from middleware import DeadLetterAlerts, Metrics, Periodic
from pgbroker import PostgresBroker, PostgresResults
from pgbroker.redact import install_log_redaction, register_secrets
from pipeline.db import MIGRATIONS as PIPELINE_MIGRATIONS
from settings import Settings, settings


def build_broker(config: Settings) -> PostgresBroker:
    """A broker for ``config``; opens no connection until first used."""
    middleware = [
        # First, so it sees every message the others might skip or fail.
        Metrics(),
        AgeLimit(),
        # Actors set their own limits from the policy table; 10 min otherwise.
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        # Actors set their own retries and backoff from the policy table.
        Retries(),
        CurrentMessage(),
        Periodic(),
        DeadLetterAlerts(
            config.alert_webhook_url.get_secret_value() if config.alert_webhook_url else None),
    ]
    broker = PostgresBroker(
        url=database_url(config),
        schema=config.schema_name,
        middleware=middleware,
        pool_size=config.pool_size,
        enqueue_timeout=config.enqueue_timeout.total_seconds(),
        lease_timeout=config.lease_timeout.total_seconds(),
        heartbeat_interval=config.heartbeat_interval.total_seconds(),
        poll_interval=config.poll_interval.total_seconds(),
        max_rescues=config.max_rescues,
        # The pipeline's tables migrate with the queue's, on first use.
        extra_migrations=[(config.pipeline_schema, PIPELINE_MIGRATIONS)],
    )
    broker.add_middleware(Results(backend=PostgresResults(broker)))
    return broker


# Every process of the system imports this module first: from here on no log
# line of it carries a configured secret, a password or an e-mail address.
register_secrets(settings.secret_values())
install_log_redaction(log_message_args=settings.log_message_args)
broker = build_broker(settings)
dramatiq.set_broker(broker)
