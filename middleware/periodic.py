"""Declares the ``periodic`` actor option that ``scheduler.py`` reads.

periodiq's own middleware also skipped messages older than 30 s when they ran,
retries included, marking them done without running them. The scheduler's
singleton keys already keep one job per periodic actor waiting at a time, so
nothing needs skipping here: this middleware only makes the option valid.
"""

from __future__ import annotations

from dramatiq.middleware import Middleware


class Periodic(Middleware):
    @property
    def actor_options(self) -> set[str]:
        return {"periodic"}
