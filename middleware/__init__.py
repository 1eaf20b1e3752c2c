"""Dramatiq middleware of the job system, one per module."""

from .dead_letter_alerts import DeadLetterAlerts
from .metrics import Metrics, MetricsConfig
from .periodic import Periodic, cron

__all__ = ["DeadLetterAlerts", "Metrics", "MetricsConfig", "Periodic", "cron"]
