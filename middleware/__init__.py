"""Dramatiq middleware of the job system, one per module."""

from .metrics import Metrics

__all__ = ["Metrics"]
