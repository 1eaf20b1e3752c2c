"""Dramatiq middleware of the job system, one per module."""

from .metrics import Metrics
from .periodic import Periodic

__all__ = ["Metrics", "Periodic"]
