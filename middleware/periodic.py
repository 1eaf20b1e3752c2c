"""The ``periodic`` actor option that ``scheduler.py`` reads, and its cron specs.

periodiq's own middleware also skipped messages older than 30 s when they ran,
retries included, marking them done without running them. The scheduler's
singleton keys already keep one job per periodic actor waiting at a time, so
nothing needs skipping here: this middleware only makes the option valid.
"""

from __future__ import annotations

from dramatiq.middleware import Middleware
from periodiq import CronSpec
from periodiq import cron as periodiq_cron


def cron(spec: str) -> CronSpec:
    """periodiq's cron, with Sunday matching both 0 and 7 (periodiq compares ISO 7 to 0).

    Declare a periodic actor with ``periodic=cron("*/10 * * * *")``.
    """
    parsed = periodiq_cron(spec)
    if {0, 7} & set(parsed.dow):
        parsed = parsed.replace(dow=sorted(set(parsed.dow) | {0, 7}))
        parsed.parsed_from = spec
    return parsed


class Periodic(Middleware):
    @property
    def actor_options(self) -> set[str]:
        return {"periodic"}
