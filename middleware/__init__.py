"""Dramatiq middleware of the job system, one per module."""

from .dead_letter_alerts import DeadLetterAlerts
from .metrics import Metrics
from .periodic import Periodic

__all__ = ["DeadLetterAlerts", "Metrics", "Periodic"]
