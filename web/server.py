"""``pts-jobs web``: serve the dashboard and producer API with uvicorn.

Reads the settings once, declares the job types (the API validates against
their payload models; the Schedules page lists the periodic ones), and hands
all of it to :func:`web.app.create_app`.
"""

from __future__ import annotations

import logging
import sys

from .config import UnsafeBind, WebConfig

logger = logging.getLogger("pts_jobs.web")

# Job types the producer API does not offer: internal maintenance.
INTERNAL_JOB_TYPES = frozenset({"prune_jobs"})


def job_types(broker) -> dict:
    """The actors producers may enqueue over HTTP: every payload-checked job type."""
    return {name: actor for name, actor in broker.actors.items()
            if hasattr(actor, "payload_model") and name not in INTERNAL_JOB_TYPES}


def periodic_actors(broker) -> list:
    """The actors the scheduler sends on a cron (the Schedules page lists them)."""
    return [actor for actor in broker.actors.values() if "periodic" in actor.options]


def build():
    """The app and its config, from the settings and the declared actors."""
    import actors  # noqa: F401  (declares the job types on the broker)
    from broker import broker
    from settings import settings

    from .app import create_app

    config = WebConfig.from_settings(settings)
    app = create_app(broker, config, job_types=job_types(broker),
                     periodic=periodic_actors(broker))
    return app, config


def main(host: str | None = None, port: int | None = None) -> int:
    """Serve until interrupted. Returns the exit code."""
    import dataclasses

    import uvicorn

    app, config = build()
    config = dataclasses.replace(config, host=host or config.host, port=port or config.port)
    try:
        config.check_bind()
    except UnsafeBind as error:
        print(f"pts-jobs web: {error}", file=sys.stderr)
        return 2
    if not (config.admin_token or config.viewer_token):
        logger.warning("no JOBS_ADMIN_TOKEN or JOBS_VIEWER_TOKEN: nobody can log in")
    print(f"dashboard  http://{config.host}:{config.port}/", flush=True)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning",
                proxy_headers=False, server_header=False)
    return 0
