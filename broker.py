"""The job system's Dramatiq broker: PostgreSQL, configured from ``settings``.

Importing this module sets Dramatiq's global broker, so actors declared after it
bind to PostgreSQL (``actors/`` imports it first). The middleware stack is
:func:`build_broker`'s list, in order.
"""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from dramatiq.results import Results

import admin_server
from embedded import database_url
from middleware import DeadLetterAlerts, Metrics, MetricsConfig, Periodic
from pgbroker import PostgresBroker, PostgresResults
from pgbroker.redact import install_log_redaction, register_secrets
from pipeline.db import MIGRATIONS as PIPELINE_MIGRATIONS
from settings import Settings, settings


def dramatiq_middleware(metrics: Metrics) -> list[Middleware]:
    """``metrics`` and the Dramatiq middleware every message passes, in order.

    The benchmark's plain dramatiq-pg broker runs the same list.
    """
    return [
        # First, so it sees every message the others might skip or fail.
        metrics,
        AgeLimit(),
        # Actors set their own limits from the policy table; 10 min otherwise.
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        # Actors set their own retries and backoff from the policy table.
        Retries(),
        CurrentMessage(),
    ]


def build_broker(config: Settings) -> PostgresBroker:
    """A broker for ``config``; opens no connection until first used."""
    metrics = Metrics(MetricsConfig.from_settings(config), serve=admin_server.serve)
    middleware = [
        *dramatiq_middleware(metrics),
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
        rescue_interval=config.rescue_interval.total_seconds(),
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
